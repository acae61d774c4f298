"""Benchmark: PPO on CartPole-v1 with PureJaxRL's default configuration, ours against
PureJaxRL's ``ppo.py`` run beside it. Prints one JSON line.

The configuration (PureJaxRL's ``ppo.py`` ``__main__``): 4 envs x 128 steps, 5e5
steps per seed, 4 epochs x 4 minibatches, lr 2.5e-4 annealed, gamma 0.99, lambda
0.95, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5, two 64-unit tanh layers.
Each (implementation, seed count) runs in its own process, so compile caches and
peak resident memory (``ru_maxrss``) are its own. A run is timed twice: the first
call's ahead-of-time ``lower().compile()`` (``compile_s``), then the compiled call
(``run_s``); steps/s = seeds x steps / run_s. Ours runs as we recommend on a CPU
host: ``jrl.sweep.run_sweep(..., devices=jax.devices())`` with one XLA device per
core, each vmapping its share of the seeds (PureJaxRL vmaps all seeds on one
device). ``final_return``: the mean return of the episodes that ended in the last 5%
of updates, averaged over seeds.
``speedup`` (per seed count) = our steps/s / PureJaxRL's; the top-level ``speedup``
is the smaller of them.

    PUREJAXRL_DIR=/path/to/purejaxrl python experiments/benchmarks/ppo_cartpole.py \
        [--seeds 1 64] [--steps 500000]

Without PUREJAXRL_DIR only ours is measured (no speedup is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FINAL_FRACTION = 0.05


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def final_return(returns, ended=None) -> float:
    """Mean over seeds of the mean return of episodes ending in the last 5% of updates.

    returns: [seeds, updates] per-update means (NaN: none ended), or with ``ended``
    [seeds, updates, ...] per-step returns and a mask of the steps that ended one."""
    import numpy as np

    returns = np.asarray(returns, np.float64)
    last = max(1, int(round(returns.shape[1] * FINAL_FRACTION)))
    if ended is None:
        return float(np.mean(np.nanmean(returns[:, -last:], axis=1)))
    ended = np.asarray(ended, bool)[:, -last:]
    per_seed = [r[-last:][e].mean() for r, e in zip(returns, ended, strict=True)]
    return float(np.mean(per_seed))


def measure(impl: str, num_seeds: int, steps: int) -> dict:
    if impl == "jrl":
        # One CPU device per core (before jax initialises): seeds are split over them.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={os.cpu_count()}"
        )
    import jax

    if impl == "jrl":
        from jrl.agents.ppo import PPOConfig, PPOHParams, make_train
        from jrl.envs import make
        from jrl.sweep import run_sweep, stack_grid

        env, env_params = make("CartPole-v1")
        train = make_train(PPOConfig(total_timesteps=steps), env, env_params)
        grid = stack_grid([PPOHParams()])
        devices = jax.devices() if num_seeds % jax.device_count() == 0 else None
        keys = jax.random.key(0)
        fn = jax.jit(
            lambda key: run_sweep(train, key, grid, num_seeds, jit=False, devices=devices)[
                1
            ].episode_return[0]
        )
        read = lambda out: final_return(out)  # noqa: E731
    else:
        keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
        sys.path.insert(0, str(HERE))
        from purejaxrl_baseline import load_purejaxrl

        module = load_purejaxrl("ppo")
        config = {
            "LR": 2.5e-4,
            "NUM_ENVS": 4,
            "NUM_STEPS": 128,
            "TOTAL_TIMESTEPS": steps,
            "UPDATE_EPOCHS": 4,
            "NUM_MINIBATCHES": 4,
            "GAMMA": 0.99,
            "GAE_LAMBDA": 0.95,
            "CLIP_EPS": 0.2,
            "ENT_COEF": 0.01,
            "VF_COEF": 0.5,
            "MAX_GRAD_NORM": 0.5,
            "ACTIVATION": "tanh",
            "ENV_NAME": "CartPole-v1",
            "ANNEAL_LR": True,
            "DEBUG": False,
        }
        train = module.make_train(config)
        fn = jax.jit(jax.vmap(train))

        def read(out):
            info = out["metrics"]
            return final_return(info["returned_episode_returns"], info["returned_episode"])

    start = time.perf_counter()
    compiled = fn.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    return {
        "compile_s": round(compile_s, 2),
        "run_s": round(run_s, 2),
        "steps_per_s": round(num_seeds * steps / run_s),
        "final_return": round(read(out), 1),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def in_subprocess(impl: str, num_seeds: int, steps: int) -> dict:
    command = [sys.executable, __file__, "--child", impl, "--seeds", str(num_seeds)]
    command += ["--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{impl} with {num_seeds} seeds failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--child", choices=["jrl", "purejaxrl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.seeds[0], args.steps)))
        return

    sys.path.insert(0, str(HERE))
    from purejaxrl_baseline import purejaxrl_dir

    baseline = purejaxrl_dir() is not None
    report: dict = {"benchmark": "ppo_cartpole", "steps_per_seed": args.steps}
    speedups = []
    for num_seeds in args.seeds:
        row = {"jrl": in_subprocess("jrl", num_seeds, args.steps)}
        if baseline:
            row["purejaxrl"] = in_subprocess("purejaxrl", num_seeds, args.steps)
            row["speedup"] = round(row["jrl"]["steps_per_s"] / row["purejaxrl"]["steps_per_s"], 2)
            row["compile_ratio"] = round(row["jrl"]["compile_s"] / row["purejaxrl"]["compile_s"], 2)
            row["memory_ratio"] = round(
                row["jrl"]["peak_rss_mb"] / row["purejaxrl"]["peak_rss_mb"], 2
            )
            speedups.append(row["speedup"])
        report[f"seeds_{num_seeds}"] = row
    if speedups:
        report["speedup"] = min(speedups)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
