"""PPO on MinAtar Breakout (gymnax ``Breakout-MinAtar``) with PureJaxRL's MinAtar
configuration, seeds vmapped.

The configuration (PureJaxRL's ``examples/brax_minatar.ipynb``, "briefly tuned to do
well on Gymnax's MinAtar environments"): 64 envs x 128 steps, 4 epochs x 8
minibatches, Adam 5e-3 annealed to 0, gamma 0.99, GAE lambda 0.95, clip 0.2, entropy
0.01, value 0.5, gradient norm 0.5, separate 64-64 ReLU actor and critic on the
flattened 10x10x4 observation, 1e7 steps. That full run over 8 seeds is the default:
it took 13 minutes (105k steps/s, the seeds split over the two cores) on this
project's shared 2-core CPU. A shorter --steps anneals the learning rate over its own
length, as PureJaxRL does.

Writes to --out: results.json (final and greedy returns per seed with mean and IQM and
bootstrap CIs, the random policy's return, steps/s, compile seconds) and
minatar_breakout.png (mean and IQM learning curves over seeds).

    python experiments/minatar_breakout.py --out results/minatar_breakout \
        [--seeds 8] [--steps 10000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import jrl.host

if __name__ == "__main__":  # before gymnax's import starts JAX's backend
    jrl.host.use_cpu_cores()  # one XLA device per core: the seeds split over them

import jax  # noqa: E402
from gymnax.wrappers.purerl import FlattenObservationWrapper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_runs import (  # noqa: E402
    learning_curves,
    random_policy_return,
    return_label,
    summarize,
    train_over_seeds,
    updates_in,
)

from jrl.agents.ppo import PPOConfig, PPOHParams, greedy_episode, make_ppo  # noqa: E402
from jrl.envs import make  # noqa: E402
from jrl.reporting import check_experiment_args, plot_learning_curves, write_json  # noqa: E402
from jrl.run_dir import provenance  # noqa: E402

ENV_ID = "Breakout-MinAtar"
FULL_STEPS = 10_000_000
STEPS = FULL_STEPS


def setup(steps: int = STEPS):
    """PureJaxRL's MinAtar PPO: (PPOConfig, PPOHParams)."""
    config = PPOConfig(
        num_envs=64,
        num_steps=128,
        total_timesteps=steps,
        update_epochs=4,
        num_minibatches=8,
        hidden_sizes=(64, 64),
        activation="relu",
    )
    return config, PPOHParams(lr=5e-3)


def make_env():
    """Breakout-MinAtar with its 10x10x4 observation flattened to 400 (as PureJaxRL)."""
    env, params = make(ENV_ID)
    return FlattenObservationWrapper(env), params


def run(num_seeds: int = 8, steps: int = STEPS, seed: int = 0, log=print):
    """(SeedRuns, config, hparams) of PPO on Breakout-MinAtar."""
    env, params = make_env()
    config, hparams = setup(steps)
    agent = make_ppo(config, env, params)
    runs = train_over_seeds(
        agent,
        greedy_episode,
        env,
        params,
        hparams,
        jax.random.key(seed),
        num_seeds,
        num_updates=updates_in(config),
        label="PPO",
    )
    log(
        f"  PPO: {num_seeds} seeds x {steps} steps: compile {runs.compile_s:.1f} s, "
        f"run {runs.run_s:.1f} s ({runs.steps_per_s:,.0f} steps/s)"
    )
    return runs, config, hparams


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/minatar_breakout")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        setup(args.steps)
    except ValueError as error:
        parser.error(f"--steps {args.steps}: {error}")
    check_experiment_args(parser, args)
    started, run_provenance = time.perf_counter(), provenance()  # the start, the code run
    print(f"PPO on {ENV_ID}: {args.seeds} seeds x {args.steps} steps each")
    runs, config, hparams = run(args.seeds, args.steps, args.seed)
    env, params = make_env()
    random_return = random_policy_return(env, params, jax.random.key(args.seed + 1))
    curves, timesteps, window = learning_curves(runs)
    _, stats = plot_learning_curves(
        f"{args.out}/minatar_breakout.png",
        {"PPO": curves},
        x=timesteps,
        xlabel="environment steps per seed",
        ylabel=return_label({"PPO": window}),
        title=f"{ENV_ID}: PPO, PureJaxRL's MinAtar configuration, "
        + (
            "its full 1e7 steps"
            if args.steps == FULL_STEPS
            else f"{args.steps:.2g} steps of its 1e7"
        ),
        hlines={f"random policy ({random_return:.2f})": random_return},
    )
    summary = {
        "env": ENV_ID,
        "seed": args.seed,
        "random_policy_return": random_return,
        "purejaxrl_full_run_steps": FULL_STEPS,
        "config": dataclasses.asdict(config),
        "hparams": hparams._asdict(),
        **summarize(runs, args.seeds),
        "curve": {
            "timesteps": timesteps,
            "moving_average_rows": window,
            **stats["PPO"]._asdict(),
        },
    }
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    final, greedy = summary["final_return"], summary["greedy_return"]
    print(
        f"  final return mean {final['mean']:.2f} (per seed {final['per_seed']}), greedy "
        f"{greedy['mean']:.2f}; random policy {random_return:.2f}; "
        f"{summary['steps_per_second']:,} steps/s, compile {summary['compile_seconds']} s"
    )
    print(f"Wrote {args.out}/results.json and minatar_breakout.png ({summary['wall_seconds']} s)")


if __name__ == "__main__":
    main()
