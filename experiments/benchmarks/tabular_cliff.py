"""Benchmark: the whole of Example 6.6 (Cliff Walking; Sarsa and Q-learning, 50 runs
x 500 episodes each) in jrl against a plain-NumPy Python loop doing the same work,
in one process. Prints one JSON line.

``speedup`` is baseline seconds / our run seconds (median of repeats, compiled);
``speedup_with_compile`` counts our tracing and compilation too.

    python experiments/benchmarks/tabular_cliff.py [--repeats 5] [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_cliff_baseline import run_numpy_cliff  # noqa: E402

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train  # noqa: E402
from jrl.envs import make  # noqa: E402
from jrl.sweep import run_sweep, stack_grid  # noqa: E402

METHODS = ("sarsa", "q_learning")


def build(num_runs: int, num_episodes: int):
    """One jitted function per method: key -> per-episode returns [runs, episodes]."""
    env, params = make("CliffWalking-v0")
    grid = stack_grid([TabularHParams(alpha=0.5, gamma=1.0, epsilon=0.1)])
    functions = {}
    for method in METHODS:
        config = TabularConfig(algorithm=method, num_episodes=num_episodes)
        train = make_train(env, params, config)
        functions[method] = jax.jit(
            lambda key, train=train: run_sweep(train, key, grid, num_runs, jit=False)[1]
        )
    return functions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    key = jax.random.key(0)
    started = time.perf_counter()
    functions = build(args.runs, args.episodes)
    compiled = {m: f.lower(key).compile() for m, f in functions.items()}
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    first = {m: jax.block_until_ready(c(key)) for m, c in compiled.items()}
    first_run_s = time.perf_counter() - started
    run_times = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        jax.block_until_ready([c(jax.random.key(repeat + 1)) for c in compiled.values()])
        run_times.append(time.perf_counter() - started)
    run_s = statistics.median(run_times)
    steps = sum(int(m.num_steps.sum()) for m in first.values())

    started = time.perf_counter()
    baseline = run_numpy_cliff(num_runs=args.runs, num_episodes=args.episodes, seed=0)
    baseline_s = time.perf_counter() - started

    def mean_return(returns):
        return round(float(np.asarray(returns)[:, 100:].mean()), 2)

    print(
        json.dumps(
            {
                "benchmark": "tabular_cliff",
                "work": f"Example 6.6, {'+'.join(METHODS)}, {args.runs} runs x {args.episodes} ep",
                "device": str(jax.devices()[0]),
                "ours_compile_s": round(compile_s, 3),
                "ours_first_run_s": round(first_run_s, 3),
                "ours_run_s_median": round(run_s, 4),
                "ours_steps": steps,
                "ours_steps_per_s": round(steps / run_s),
                "baseline": "plain NumPy Python loop (numpy_cliff_baseline.py)",
                "baseline_s": round(baseline_s, 3),
                "baseline_steps": int(baseline["steps"]),
                "baseline_steps_per_s": round(baseline["steps"] / baseline_s),
                "speedup": round(baseline_s / run_s, 1),
                "speedup_with_compile": round(baseline_s / (compile_s + first_run_s), 2),
                "ours_mean_return_ep100_500": {
                    m: mean_return(first[m].episode_returns[0]) for m in METHODS
                },
                "baseline_mean_return_ep100_500": {m: mean_return(baseline[m]) for m in METHODS},
            }
        )
    )


if __name__ == "__main__":
    main()
