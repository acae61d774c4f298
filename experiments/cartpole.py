"""PPO and DQN on CartPole-v1 with PureJaxRL's default configurations, seeds vmapped.

PPO (PureJaxRL's ``ppo.py``): 4 envs x 128 steps, 4 epochs x 4 minibatches, Adam
2.5e-4 annealed to 0, gamma 0.99, GAE lambda 0.95, clip 0.2, entropy 0.01, value 0.5,
gradient norm 0.5, separate 64-64 tanh actor and critic; ``PPOConfig()`` and
``PPOHParams()`` are exactly these. DQN (PureJaxRL's ``dqn.py``): 10 envs, replay of
10,000 transitions, batches of 128, one gradient step per 10 transitions once 10,000
steps are taken, target copied every 500 steps (tau 1), Adam 2.5e-4, epsilon 1 -> 0.05
over the first 2.5e5 steps, gamma 0.99, Q-network 120-84 ReLU, squared TD error
without gradient clipping (ours: a Huber loss with delta 1000, beyond any TD error here,
and ``clip_gradients=False``), flax's default LeCun-normal weights (ours:
``kernel_init="lecun_normal"``). Both run 5e5 steps per seed. (``jrl.agents.dqn.
huber_loss``'s gradient is exact at any delta; ``optax.huber_loss``'s, used before
2026-12-04 late, was off by ~1e-5 at delta 1000 and zero at 1e30.)

--steps sets another length, which is not a prefix of PureJaxRL's run: PPO's learning
rate anneals to 0 over it, and DQN runs whole chunks of 5,000 steps (--steps rounds
down), its epsilon still annealing over exactly 2.5e5 of them. A DQN run shorter than
2.5e5 steps anneals epsilon over all of it, and one shorter than 2e4 steps learns from
half way through (not from 1e4 steps); the figure's title says so.

Writes to --out: results.json (per agent: final and greedy returns per seed with mean
and IQM and bootstrap CIs, steps/s, compile seconds) and cartpole.png (mean and IQM
learning curves over seeds).

    python experiments/cartpole.py --out results/cartpole [--seeds 8] [--steps 500000]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import jrl.host

if __name__ == "__main__":  # before gymnax's import starts JAX's backend
    jrl.host.use_cpu_cores()  # one XLA device per core: the seeds split over them

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_runs import (  # noqa: E402
    learning_curves,
    random_policy_return,
    return_label,
    summarize,
    train_over_seeds,
    updates_in,
)

from jrl.agents import dqn, ppo  # noqa: E402
from jrl.envs import make  # noqa: E402
from jrl.reporting import (  # noqa: E402
    MIN_SEEDS_FOR_INTERVAL,
    check_experiment_args,
    plot_learning_curves,
    write_json,
)
from jrl.run_dir import provenance  # noqa: E402

STEPS = 500_000
PUREJAXRL_EPSILON_ANNEAL_STEPS = 250_000
PUREJAXRL_LEARNING_STARTS = 10_000


def ppo_setup(steps: int = STEPS):
    """PureJaxRL's CartPole PPO: (PPOConfig, PPOHParams)."""
    return ppo.PPOConfig(total_timesteps=steps), ppo.PPOHParams()


def dqn_setup(steps: int = STEPS):
    """PureJaxRL's CartPole DQN for ``steps`` steps, rounded down to whole chunks
    (``config.steps_run``): (DQNConfig, DQNHParams). Epsilon anneals over exactly 2.5e5
    steps (half of the default run), or over the whole run when it is shorter; a run of
    fewer than 2e4 steps learns from half way through rather than from 1e4 steps."""
    config = dqn.DQNConfig(
        num_envs=10,
        total_timesteps=steps,
        buffer_size=10_000,
        batch_size=128,
        learning_starts=0,  # set below from the steps run
        train_frequency=10,
        target_update_frequency=500,
        target_update="hard",
        log_frequency=5_000,
        hidden_sizes=(120, 84),
        activation="relu",
        clip_gradients=False,
        kernel_init="lecun_normal",
    )
    config = dataclasses.replace(
        config, learning_starts=min(PUREJAXRL_LEARNING_STARTS, config.steps_run // 2)
    )
    hparams = dqn.DQNHParams(
        lr=2.5e-4,
        gamma=0.99,
        tau=1.0,
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=min(1.0, PUREJAXRL_EPSILON_ANNEAL_STEPS / config.steps_run),
        huber_delta=1e3,
    )
    return config, hparams


def dqn_departures(config: dqn.DQNConfig, hparams: dqn.DQNHParams) -> list[str]:
    """How a short run's DQN setup departs from PureJaxRL's, in words (none at 2.5e5
    steps and more)."""
    departures = []
    anneal = round(float(hparams.epsilon_decay_fraction) * config.steps_run)
    if anneal != PUREJAXRL_EPSILON_ANNEAL_STEPS:
        departures.append(
            f"DQN's epsilon anneals over {anneal:,} steps of {config.steps_run:,} "
            f"(theirs: {PUREJAXRL_EPSILON_ANNEAL_STEPS:,})"
        )
    if config.learning_starts != PUREJAXRL_LEARNING_STARTS:
        departures.append(
            f"DQN learns from step {config.learning_starts:,} "
            f"(theirs: {PUREJAXRL_LEARNING_STARTS:,})"
        )
    return departures


def run(num_seeds: int = 8, steps: int = STEPS, seed: int = 0, log=print) -> dict:
    """{"PPO": SeedRuns, "DQN": SeedRuns} on CartPole-v1, and the setups used."""
    env, params = make("CartPole-v1")
    key_ppo, key_dqn = jax.random.split(jax.random.key(seed))
    setups = {"PPO": ppo_setup(steps), "DQN": dqn_setup(steps)}  # both checked before training
    out = {}
    for label, module, key in [("PPO", ppo, key_ppo), ("DQN", dqn, key_dqn)]:
        config, hparams = setups[label]
        agent = (ppo.make_ppo if module is ppo else dqn.make_dqn)(config, env, params)
        runs = train_over_seeds(
            agent,
            module.greedy_episode,
            env,
            params,
            hparams,
            key,
            num_seeds,
            eval_max_steps=500,
            num_updates=updates_in(config),
            label=label,
        )
        log(
            f"  {label}: {num_seeds} seeds x {steps} steps: compile {runs.compile_s:.1f} s, "
            f"run {runs.run_s:.1f} s ({runs.steps_per_s:,.0f} steps/s)"
        )
        out[label] = (runs, config, hparams)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/cartpole")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        ppo_setup(args.steps), dqn_setup(args.steps)
    except ValueError as error:
        parser.error(f"--steps {args.steps}: {error}")
    check_experiment_args(parser, args)
    started, run_provenance = time.perf_counter(), provenance()  # the start, the code run
    print(f"PPO and DQN on CartPole-v1: {args.seeds} seeds x {args.steps} steps each")
    results = run(args.seeds, args.steps, args.seed)
    env, params = make("CartPole-v1")
    random_return = random_policy_return(env, params, jax.random.key(args.seed + 1))
    summary = {
        "env": "CartPole-v1",
        "seed": args.seed,
        "random_policy_return": random_return,
        "agents": {},
    }
    curves, xs, windows = {}, {}, {}
    for label, (runs, config, hparams) in results.items():
        summary["agents"][label] = {
            "config": dataclasses.asdict(config),
            "hparams": hparams._asdict(),
            **summarize(runs, args.seeds),
        }
        curves[label], xs[label], windows[label] = learning_curves(runs)
    _, stats = plot_learning_curves(
        f"{args.out}/cartpole.png",
        curves,
        x=xs,
        xlabel="environment steps per seed",
        ylabel=return_label(windows),
        title="CartPole-v1, PureJaxRL's default PPO and DQN configurations"
        + ("" if args.steps == STEPS else f" run for {args.steps:,} steps (theirs: {STEPS:,})")
        + "".join(f"\n{departure}" for departure in dqn_departures(*results["DQN"][1:])),
        hlines={f"random policy ({random_return:.0f})": random_return},
    )
    for label, curve in stats.items():
        summary["agents"][label]["curve"] = {
            "timesteps": xs[label],
            "moving_average_rows": windows[label],
            **curve._asdict(),
        }
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    for label, entry in summary["agents"].items():
        final, greedy = entry["final_return"], entry["greedy_return"]
        low, high = final["iqm_ci"]
        interval = (
            f"[{low:.1f}, {high:.1f}]"
            if low is not None and math.isfinite(low)
            else f"(no interval from fewer than {MIN_SEEDS_FOR_INTERVAL} seeds)"
        )
        print(
            f"  {label}: final return mean {final['mean']:.1f}, IQM {final['iqm']:.1f} "
            f"{interval}; greedy {greedy['mean']:.1f}; "
            f"{entry['steps_per_second']:,} steps/s, compile {entry['compile_seconds']} s"
        )
    print(f"Wrote {args.out}/results.json and cartpole.png ({summary['wall_seconds']} s)")


if __name__ == "__main__":
    main()
