"""Sutton & Barto Example 6.5: Windy Gridworld with Sarsa.

Sarsa, epsilon 0.1, alpha 0.5, undiscounted, for 8000 time steps. The book's figure
shows about 170 episodes completed by then (independent re-runs average near 160);
the shortest path takes 15 steps. The greedy path of a converged agent is measured
from Q-learning run on to 500 episodes.

    python experiments/windy_gridworld.py --out results/windy_gridworld
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train
from jrl.envs import make
from jrl.reporting import check_experiment_args, episodes_by_step, plot_curves, write_json
from jrl.run_dir import provenance
from jrl.sweep import run_sweep, stack_grid

HPARAMS = TabularHParams(alpha=0.5, gamma=1.0, epsilon=0.1)
NUM_STEPS = 8000


def run(num_runs: int = 50, seed: int = 0, converged_episodes: int = 500) -> dict:
    """Episodes completed by each step (int[num_runs, 8000]) for Sarsa, and the greedy
    path lengths of Sarsa after 8000 steps and of Q-learning after many episodes."""
    env, params = make("WindyGridworld-v0")
    key = jax.random.key(seed)
    grid = stack_grid([HPARAMS])
    sarsa = make_train(
        TabularConfig(algorithm="sarsa", num_episodes=1000, max_steps=NUM_STEPS), env, params
    )
    state, metrics = run_sweep(sarsa, key, grid, num_runs)
    converged = make_train(
        TabularConfig(algorithm="q_learning", num_episodes=converged_episodes), env, params
    )
    converged_state, _ = run_sweep(converged, key, grid, num_runs)
    return {
        "episodes_by_step": episodes_by_step(metrics.episode_lengths[0], NUM_STEPS),
        "episodes_completed": np.asarray(metrics.num_completed[0]),
        "sarsa_greedy_path_lengths": env.greedy_path_lengths(params, state.q_values[0]),
        "converged_greedy_path_lengths": env.greedy_path_lengths(
            params, converged_state.q_values[0]
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/windy_gridworld")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_experiment_args(parser, args)
    run_provenance = provenance()  # the start, the code run
    results = run(args.runs, args.seed)
    completed = results["episodes_completed"]
    summary = {
        "config": {**HPARAMS._asdict(), "runs": args.runs, "steps": NUM_STEPS, "seed": args.seed},
        "episodes_completed_by_8000_steps": {
            "mean": float(completed.mean()),
            "min": int(completed.min()),
            "max": int(completed.max()),
        },
        "reference": {"episodes_by_8000_steps": "about 160-170", "shortest_path": 15},
        "sarsa_greedy_path_length_median": float(np.median(results["sarsa_greedy_path_lengths"])),
        "converged_greedy_path_length_median": float(
            np.median(results["converged_greedy_path_lengths"])
        ),
    }
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    plot_curves(
        f"{args.out}/windy_gridworld.png",
        {"Sarsa": results["episodes_by_step"]},
        xlabel="time steps",
        ylabel="episodes",
        title="Windy Gridworld (Example 6.5)",
    )
    print(summary)


if __name__ == "__main__":
    main()
