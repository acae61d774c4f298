"""Benchmark: PPO on CartPole-v1 with PureJaxRL's default configuration, ours against
PureJaxRL's ``ppo.py`` run beside it. Prints one JSON line.

The configuration (PureJaxRL's ``ppo.py`` ``__main__``): 4 envs x 128 steps, 5e5
steps per seed, 4 epochs x 4 minibatches, lr 2.5e-4 annealed, gamma 0.99, lambda
0.95, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5, two 64-unit tanh layers.
Each (implementation, seed count) runs in its own process. A run is timed as the
ahead-of-time ``lower().compile()`` (``compile_s``), then calls of the compiled
function: up to ``--repeats`` (5) while their total stays under ``--repeat-budget-s``
(30 s), so five at one seed and one at 64 here; ``run_s`` is their median (one
timed call swings by about ±10% on this host) and ``run_s_all`` lists them. The two
processes of a seed count compile one after the other and then alternate their calls
(``purejaxrl_baseline.compare``; ``speedup_rounds``: each round's ratio), so both are
timed over the same minutes of a host whose speed drifts; ``--unpaired`` times one
process's calls after the other's instead. steps/s = seeds x steps / run_s.
Ours runs as we recommend on a CPU host:
``jrl.sweep.run_sweep(..., devices=jax.devices())`` with one XLA device per core
(``jrl.host.use_cpu_cores()``, which also sets jrl's recommended XLA:CPU flags),
each vmapping its share of the seeds, compiled with ``jrl.host.compiler_options()`` as
jrl compiles its own runs; a single seed runs unbatched. On a GPU host ours runs on
its GPUs instead (``jrl_device_count``), and each process also reports
``peak_device_mb``, its devices' peak memory (``device_memory``;
``gpu_seeds.sh`` runs both benchmarks at 2048 seeds on a lent GPU). PureJaxRL
runs as its ``ppo.py`` does: ``jit(make_train(config))(key)`` for one seed, and
``jit(vmap(...))`` over the keys on one device for several. At more than one seed a
third process runs ours on one CPU device too (``jrl_one_device``; the row's
``speedup_one_device``), since the recommended run uses both cores and PureJaxRL's
one device program does not (``--no-one-device`` leaves it out). ``final_return``: the
mean return at the end, averaged over seeds — for both, the mean over the episodes that
ended in the last 5% of updates (ours from each update's mean and count of episodes,
PureJaxRL's from its per-step episode records). ``steps_per_s`` counts the steps run:
whole updates of 4 x 128 (5e5 asked, 499,712 run). ``peak_rss_mb``: the process's peak
resident memory. ``speedup`` (per seed count) = our steps/s / PureJaxRL's; the
top-level ``speedup`` is the smaller.

    PUREJAXRL_DIR=/path/to/purejaxrl python experiments/benchmarks/ppo_cartpole.py \
        [--seeds 1 64] [--steps 500000] [--repeats 5] [--repeat-budget-s 30] [--unpaired] \
        [--no-one-device]

Without PUREJAXRL_DIR only ours is measured (no speedup is reported).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import purejaxrl_baseline as baseline  # noqa: E402

import jrl.host  # noqa: E402

PUREJAXRL_CONFIG = {
    "LR": 2.5e-4,
    "NUM_ENVS": 4,
    "NUM_STEPS": 128,
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


def jrl_config(steps: int):
    """(PPOConfig, PPOHParams): PureJaxRL's PPO configuration for CartPole-v1 in ours
    (jrl's defaults)."""
    from jrl.agents.ppo import PPOConfig, PPOHParams

    return PPOConfig(total_timesteps=steps), PPOHParams()


def jrl_train(steps: int):
    """(train, hparams): our PPO on CartPole-v1 in PureJaxRL's configuration."""
    from jrl.agents.ppo import make_train
    from jrl.envs import make

    config, hparams = jrl_config(steps)
    return make_train(config, *make("CartPole-v1")), hparams


def measure(impl: str, num_seeds: int, steps: int, timing: dict) -> dict:
    devices = baseline.child_devices(impl)
    import jax

    if impl != "purejaxrl":
        from jrl.host import compiler_options
        from jrl.sweep import run_sweep, stack_grid

        train, hparams = jrl_train(steps)
        grid = stack_grid([hparams])
        if num_seeds % devices:
            devices = 1
        shards = jax.devices()[:devices] if devices > 1 else None
        fn = jax.jit(
            lambda key: run_sweep(train, key, grid, num_seeds, jit=False, devices=shards)[1],
            compiler_options=compiler_options(),
        )
        times, metrics = baseline.time_compiled(
            fn, jax.random.key(0), after_compile=jrl.host.release_unused_memory, **timing
        )
        final = baseline.final_return(metrics.episode_return[0], counts=metrics.num_episodes[0])
    else:
        module = baseline.load_purejaxrl("ppo")
        train = module.make_train({**PUREJAXRL_CONFIG, "TOTAL_TIMESTEPS": steps})
        keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
        if num_seeds == 1:  # as its __main__ runs it: jit(train)(key), no vmap
            times, out = baseline.time_compiled(jax.jit(train), keys[0], **timing)
            out = jax.tree.map(lambda x: x[None], out)
        else:
            times, out = baseline.time_compiled(jax.jit(jax.vmap(train)), keys, **timing)
        info = out["metrics"]
        final = baseline.final_return(info["returned_episode_returns"], info["returned_episode"])
    return {
        "devices": devices,
        **times,
        "steps_per_s": round(num_seeds * steps_run(steps) / times["run_s"]),
        "final_return": round(final, 1),
        "peak_rss_mb": round(baseline.peak_rss_mb()),
        **baseline.device_memory(),
    }


def steps_run(steps: int) -> int:
    """The steps per seed both PPOs take for ``steps`` asked: whole updates of NUM_ENVS x
    NUM_STEPS (4 x 128), the remainder dropped (5e5 asked: 499,712 run)."""
    batch = PUREJAXRL_CONFIG["NUM_ENVS"] * PUREJAXRL_CONFIG["NUM_STEPS"]
    return steps // batch * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--child", choices=baseline.IMPLEMENTATIONS, help=argparse.SUPPRESS)
    baseline.add_timing_arguments(parser)
    args = parser.parse_args()
    if args.child:
        timing = baseline.timing_options(args)
        print(json.dumps(measure(args.child, args.seeds[0], args.steps, timing)))
    else:
        options = baseline.compare_options(args)
        report = baseline.compare(
            __file__,
            "ppo_cartpole",
            args.seeds,
            args.steps,
            steps_run=steps_run(args.steps),
            **options,
        )
        print(json.dumps(report))


if __name__ == "__main__":
    from compile_times import no_persistent_cache  # (this script's directory)

    no_persistent_cache()
    main()
