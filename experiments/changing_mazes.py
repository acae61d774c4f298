"""Sutton & Barto Examples 8.2 and 8.3: Dyna-Q against Dyna-Q+ when the maze changes.

Blocking maze: the short path is blocked after 1000 steps (n = 10, kappa 1e-4,
3000 steps). Shortcut maze: a shorter path opens after 3000 steps (n = 50, kappa
1e-3, 6000 steps). alpha 1, gamma 0.95, epsilon 0.1. Dyna-Q+ finds the new path in
both; Dyna-Q finds the blocked maze's detour only slowly and never the shortcut.

    python experiments/changing_mazes.py --out results/changing_mazes
"""

from __future__ import annotations

import argparse

import jax

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train
from jrl.envs import make
from jrl.reporting import check_experiment_args, episodes_by_step, plot_curves, write_json
from jrl.run_dir import provenance
from jrl.sweep import run_sweep, stack_grid

# name: (env id, planning steps, kappa, total steps, step of the change)
TASKS = {
    "blocking": ("BlockingMaze-v0", 10, 1e-4, 3000, 1000),
    "shortcut": ("ShortcutMaze-v0", 50, 1e-3, 6000, 3000),
}
METHODS = ("dyna_q", "dyna_q_plus")


def run(task: str, num_runs: int = 20, seed: int = 0) -> dict:
    """Cumulative reward by time step float[num_runs, steps] per method, and the greedy
    path lengths in the final layout (-1 where the goal is not reached)."""
    env_id, planning_steps, kappa, num_steps, _ = TASKS[task]
    env, params = make(env_id)
    out = {}
    for method in METHODS:
        bonus = kappa if method == "dyna_q_plus" else 0.0  # Dyna-Q has no bonus to set
        hparams = TabularHParams(alpha=1.0, gamma=0.95, epsilon=0.1, kappa=bonus)
        config = TabularConfig(
            algorithm=method,
            planning_steps=planning_steps,
            num_episodes=num_steps,
            max_steps=num_steps,
        )
        state, metrics = run_sweep(
            make_train(config, env, params), jax.random.key(seed), stack_grid([hparams]), num_runs
        )
        lengths = env.greedy_path_lengths(params, state.q_values[0], layout=env.num_layouts - 1)
        # The goal gives +1 and every other step 0: cumulative reward = episodes completed.
        out[method] = {
            "cumulative_reward": episodes_by_step(metrics.episode_lengths[0], num_steps),
            "greedy_path_lengths": lengths,
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/changing_mazes")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_experiment_args(parser, args)
    run_provenance = provenance()  # the start, the code run
    summary = {
        "config": {
            "alpha": 1.0,
            "gamma": 0.95,
            "epsilon": 0.1,
            "runs": args.runs,
            "seed": args.seed,
        }
    }
    for task, (env_id, planning_steps, kappa, num_steps, change) in TASKS.items():
        results = run(task, args.runs, args.seed)
        summary[task] = {"planning_steps": planning_steps, "kappa": kappa, "steps": num_steps}
        for method, result in results.items():
            reward = result["cumulative_reward"]
            summary[task][method] = {
                "cumulative_reward_final": float(reward[:, -1].mean()),
                "reward_after_change": float((reward[:, -1] - reward[:, change - 1]).mean()),
                "final_greedy_path_lengths": result["greedy_path_lengths"],
            }
        plot_curves(
            f"{args.out}/{task}_maze.png",
            {method: result["cumulative_reward"] for method, result in results.items()},
            xlabel="time steps",
            ylabel="cumulative reward",
            title=f"{task.capitalize()} maze ({env_id}), n={planning_steps}, kappa={kappa}",
        )
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    print(summary)


if __name__ == "__main__":
    main()
