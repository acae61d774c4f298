"""Sutton & Barto Figure 8.2: Dyna-Q on the Dyna Maze with 0, 5 and 50 planning steps.

alpha 0.1, gamma 0.95, epsilon 0.1, ties broken at random, 50 episodes, averaged
over runs. Steps per episode fall to near the optimum (14) after about 25 episodes
without planning, about 5 with n = 5 and about 3 with n = 50.

    python experiments/dyna_maze.py --out results/dyna_maze
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train
from jrl.envs import make
from jrl.reporting import check_experiment_args, plot_curves, write_json
from jrl.run_dir import provenance
from jrl.sweep import run_sweep, stack_grid

PLANNING_STEPS = (0, 5, 50)
HPARAMS = TabularHParams(alpha=0.1, gamma=0.95, epsilon=0.1)


def run(num_runs: int = 30, num_episodes: int = 50, seed: int = 0) -> dict:
    """Steps per episode int[num_runs, num_episodes] and the final greedy path lengths
    for each number of planning steps."""
    env, params = make("DynaMaze-v0")
    out = {}
    for n in PLANNING_STEPS:
        config = TabularConfig(algorithm="dyna_q", planning_steps=n, num_episodes=num_episodes)
        state, metrics = run_sweep(
            make_train(config, env, params), jax.random.key(seed), stack_grid([HPARAMS]), num_runs
        )
        out[n] = {
            "steps_per_episode": np.asarray(metrics.episode_lengths[0]),
            "greedy_path_lengths": env.greedy_path_lengths(params, state.q_values[0]),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/dyna_maze")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_experiment_args(parser, args)
    run_provenance = provenance()  # the start, the code run
    results = run(args.runs, seed=args.seed)
    summary = {
        "config": {**HPARAMS._asdict(), "runs": args.runs, "episodes": 50, "seed": args.seed},
        "reference": {"optimal_steps": 14, "order_at_episode_5": "n=50 < n=5 < n=0"},
    }
    for n, result in results.items():
        steps = result["steps_per_episode"]
        summary[f"n={n}"] = {
            "mean_steps_episode_5": float(steps[:, 4].mean()),
            "mean_steps_episodes_40_50": float(steps[:, 39:].mean()),
            "greedy_path_length_median": float(np.median(result["greedy_path_lengths"])),
        }
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    plot_curves(
        f"{args.out}/dyna_maze.png",
        {f"{n} planning steps": r["steps_per_episode"][:, 1:] for n, r in results.items()},
        x=np.arange(2, 51),
        xlabel="episode",
        ylabel="steps per episode",
        title="Dyna Maze (Figure 8.2)",
        ylim=(0, 800),
        hlines={"optimal 14": 14},
    )
    print(summary)


if __name__ == "__main__":
    main()
