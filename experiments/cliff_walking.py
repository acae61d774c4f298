"""Sutton & Barto Example 6.6: Cliff Walking, Sarsa against Q-learning.

50 runs x 500 episodes, alpha 0.5, epsilon 0.1, gamma 1. The book: Sarsa learns the
safe path (sum of rewards per episode about -25), Q-learning the optimal path along
the cliff and falls off under epsilon-greedy (about -50).

    python experiments/cliff_walking.py --out results/cliff_walking
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train
from jrl.envs import make
from jrl.reporting import check_experiment_args, plot_curves, smooth, write_json
from jrl.run_dir import provenance
from jrl.sweep import run_sweep, stack_grid

METHODS = ("sarsa", "q_learning")
HPARAMS = TabularHParams(alpha=0.5, gamma=1.0, epsilon=0.1)


def run(num_runs: int = 50, num_episodes: int = 500, seed: int = 0) -> dict:
    """Per-episode sums of rewards float[num_runs, num_episodes] per method, the final
    Q-tables, and the greedy path length of each run's final Q-table (-1 where the
    greedy policy never reaches the goal)."""
    env, params = make("CliffWalking-v0")
    out = {}
    for method in METHODS:
        train = make_train(TabularConfig(algorithm=method, num_episodes=num_episodes), env, params)
        state, metrics = run_sweep(train, jax.random.key(seed), stack_grid([HPARAMS]), num_runs)
        out[method] = {
            "returns": np.asarray(metrics.episode_returns[0]),
            "greedy_path_lengths": env.greedy_path_lengths(params, state.q_values[0]),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/cliff_walking")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_experiment_args(parser, args)
    run_provenance = provenance()  # the start, the code run
    results = run(args.runs, args.episodes, args.seed)
    summary = {
        "config": {
            **HPARAMS._asdict(),
            "runs": args.runs,
            "episodes": args.episodes,
            "seed": args.seed,
        },
        "reference": {"sarsa": -25.0, "q_learning": -50.0},
    }
    # Sutton & Barto's Figure 6.4 averages episodes 100-500, after the early learning.
    first = 100 if args.episodes > 100 else 0
    for method in METHODS:
        returns = results[method]["returns"]
        lengths = np.array(results[method]["greedy_path_lengths"])
        summary[method] = {
            f"mean_return_episodes_{first}_{args.episodes}": float(returns[:, first:].mean()),
            "greedy_path_length_median": float(np.median(lengths)),
            "greedy_path_reached": float(np.mean(lengths > 0)),
        }
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    plot_curves(
        f"{args.out}/cliff_walking.png",
        {m: smooth(results[m]["returns"], 10) for m in METHODS},
        xlabel="episode",
        ylabel="sum of rewards during episode (10-episode average)",
        title="Cliff Walking (Example 6.6)",
        ylim=(-100, 0),
        hlines={"Sarsa ~ -25": -25, "Q-learning ~ -50": -50},
    )
    print(summary)


if __name__ == "__main__":
    main()
