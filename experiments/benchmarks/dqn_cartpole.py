"""Benchmark: DQN on CartPole-v1 with PureJaxRL's default configuration, ours against
PureJaxRL's ``dqn.py`` run beside it. Prints one JSON line.

The configuration (PureJaxRL's ``dqn.py`` ``main``): 10 envs, 5e5 steps per seed,
replay of 10,000 transitions, batches of 128, one gradient step per vector step (10
transitions) once 10,000 steps are taken, target copied every 500 steps, Adam
2.5e-4, epsilon 1 -> 0.05 over 2.5e5 steps, gamma 0.99, Q-network 120-84 ReLU,
squared error without gradient clipping (ours: a Huber loss whose delta is beyond
any TD error, and ``clip_gradients=False``), flax's default LeCun-normal weights
(ours: ``kernel_init="lecun_normal"``; with our default orthogonal ones 8 seeds x
2.5e5 steps reached 258 against 440). Each (implementation, seed count)
runs in its own process, their timed calls alternating; timings, devices and
``final_return`` (the mean return at the end: the last 5% of logged rows, averaged
over seeds; ours a row's mean return of the episodes that ended in it, PureJaxRL's
its LogWrapper's held last return) and the third process at more than one seed (ours
on one CPU device, ``speedup_one_device``) as in ppo_cartpole.py.
PureJaxRL runs as its ``dqn.py`` ``main`` does: ``jit(vmap(make_train(config)))``
over the seed keys, also for one seed.

    PUREJAXRL_DIR=/path/to/purejaxrl python experiments/benchmarks/dqn_cartpole.py \
        [--seeds 1 64] [--steps 500000] [--repeats 5] [--repeat-budget-s 30] [--unpaired] \
        [--no-one-device]
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
    "NUM_ENVS": 10,
    "BUFFER_SIZE": 10000,
    "BUFFER_BATCH_SIZE": 128,
    "EPSILON_START": 1.0,
    "EPSILON_FINISH": 0.05,
    "EPSILON_ANNEAL_TIME": 25e4,
    "TARGET_UPDATE_INTERVAL": 500,
    "LR": 2.5e-4,
    "LEARNING_STARTS": 10000,
    "TRAINING_INTERVAL": 10,
    "LR_LINEAR_DECAY": False,
    "GAMMA": 0.99,
    "TAU": 1.0,
    "ENV_NAME": "CartPole-v1",
    "WANDB_MODE": "disabled",
}


LOG_FREQUENCY = 5_000


def jrl_config(steps: int):
    """(DQNConfig, DQNHParams): PureJaxRL's DQN configuration for CartPole-v1 in ours."""
    from jrl.agents.dqn import DQNConfig, DQNHParams

    config = DQNConfig(
        num_envs=10,
        total_timesteps=steps,
        buffer_size=10_000,
        batch_size=128,
        learning_starts=10_000,
        train_frequency=10,
        target_update_frequency=500,
        log_frequency=LOG_FREQUENCY,
        clip_gradients=False,
        kernel_init="lecun_normal",
    )
    hparams = DQNHParams(
        lr=2.5e-4,
        gamma=0.99,
        # PureJaxRL's epsilon anneals over 2.5e5 steps; ours over a fraction of the steps
        # run (whole chunks; at most all of them: below 2.5e5 steps ours reaches 0.05 at
        # the end, its not).
        epsilon_decay_fraction=min(1.0, 25e4 / config.steps_run),
        huber_delta=1e3,
    )
    return config, hparams


def jrl_train(steps: int):
    """(train, hparams): our DQN on CartPole-v1 in PureJaxRL's configuration."""
    from jrl.agents.dqn import make_train
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
        final = baseline.final_return(metrics.episode_return[0])
    else:
        module = baseline.load_purejaxrl("dqn")
        train = module.make_train({**PUREJAXRL_CONFIG, "TOTAL_TIMESTEPS": steps})
        keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
        times, out = baseline.time_compiled(jax.jit(jax.vmap(train)), keys, **timing)
        final = baseline.final_return(out["metrics"]["returns"])
    return {
        "devices": devices,
        **times,
        "steps_per_s": round(num_seeds * steps / times["run_s"]),
        "final_return": round(final, 1),
        "peak_rss_mb": round(baseline.peak_rss_mb()),
        **baseline.device_memory(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--child", choices=baseline.IMPLEMENTATIONS, help=argparse.SUPPRESS)
    baseline.add_timing_arguments(parser)
    args = parser.parse_args()
    if args.steps % LOG_FREQUENCY:  # ours runs whole metrics rows only: a remainder is not run
        parser.error(f"--steps must be a multiple of {LOG_FREQUENCY}, got {args.steps}")
    if args.child:
        timing = baseline.timing_options(args)
        print(json.dumps(measure(args.child, args.seeds[0], args.steps, timing)))
    else:
        options = baseline.compare_options(args)
        report = baseline.compare(__file__, "dqn_cartpole", args.seeds, args.steps, **options)
        print(json.dumps(report))


if __name__ == "__main__":
    from compile_times import no_persistent_cache  # (this script's directory)

    no_persistent_cache()
    main()
