"""Benchmark: the whole of Example 6.6 (Cliff Walking; Sarsa and Q-learning, 50 runs
x 500 episodes each) in jrl against a plain-NumPy Python loop doing the same work,
in one process. Prints one JSON line.

``speedup`` is baseline seconds / our run seconds (medians of repeats; ours compiled);
``speedup_with_compile`` counts our tracing, lowering and compilation and the first
call too (not JAX's one-time set-up on a process's first jit, which a trivial
program pays first, as imports are not counted either). "ours" is jrl as
we recommend it on a CPU for tabular sweeps: both methods as grid points of one
program (``TabularConfig(algorithm=("sarsa", "q_learning"))``), runs one after
another on each of the host's cores made into devices (``run_sweep(...,
sequential=True, devices=jax.devices())``), XLA:CPU allowed to compile the whole
loop as one kernel (the flags below) at backend optimisation level 1, with its older
loop emitters rather than the MLIR fusion emitters (these compile each small fusion
through a pipeline of their own: slower to compile for this program, no faster to run).
The NumPy loop uses one core, so the same program is also run on one of the devices
(``ours_one_device_*``, ``speedup_one_device``): the figure for equal hardware.

    python experiments/benchmarks/tabular_cliff.py [--repeats 5] [--baseline-repeats 3] \
        [--runs 50]
"""

from __future__ import annotations

import os

from jrl.host import usable_cores  # imports no JAX

# Must be set before jax initialises its backend: one CPU device per core, and XLA:CPU
# allowed to emit a whole while loop (without scatters) as one kernel instead of one
# call per operation.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_force_host_platform_device_count={usable_cores()}"
    + " --xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"
)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_cliff_baseline import run_numpy_cliff  # noqa: E402

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train  # noqa: E402
from jrl.envs import make  # noqa: E402
from jrl.sweep import run_sweep, stack_grid  # noqa: E402

METHODS = ("sarsa", "q_learning")
HPARAMS = TabularHParams(alpha=0.5, gamma=1.0, epsilon=0.1)


def build_combined(num_runs: int, num_episodes: int, devices=None):
    """key -> metrics with returns [2 methods, runs, episodes], one program, its runs
    split over ``devices`` (default: all of them)."""
    env, params = make("CliffWalking-v0")
    config = TabularConfig(algorithm=METHODS, num_episodes=num_episodes)
    train = make_train(config, env, params)
    grid = stack_grid([HPARAMS._replace(algorithm=float(i)) for i in range(len(METHODS))])
    return jax.jit(
        lambda key: run_sweep(
            train, key, grid, num_runs, jit=False, sequential=True, devices=devices or jax.devices()
        )[1],
        compiler_options={
            "xla_backend_optimization_level": 1,
            "xla_cpu_use_fusion_emitters": False,
        },
    )


def measure(build, num_runs, num_episodes, repeats):
    """(compile_s, first_run_s, median run_s, first results) of a builder's programs."""
    key = jax.random.key(0)
    started = time.perf_counter()
    built = build(num_runs, num_episodes)
    functions = built if isinstance(built, dict) else {"all": built}
    compiled = {name: f.lower(key).compile() for name, f in functions.items()}
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    first = {name: jax.block_until_ready(c(key)) for name, c in compiled.items()}
    first_run_s = time.perf_counter() - started
    run_times = []
    for repeat in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready([c(jax.random.key(repeat + 1)) for c in compiled.values()])
        run_times.append(time.perf_counter() - started)
    return compile_s, first_run_s, statistics.median(run_times), first


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--baseline-repeats", type=int, default=3, help="NumPy loop runs (median; default 3)"
    )
    args = parser.parse_args()
    for name in ("runs", "repeats", "baseline_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.episodes <= 100:  # the returns reported are of episodes 100..
        parser.error(
            f"--episodes must be > 100 (returns are averaged from episode 100 on), "
            f"got {args.episodes}"
        )
    make("CliffWalking-v0")  # import-time work out of the timings
    # JAX's one-time set-up of tracing, lowering (MLIR) and the CPU client happens on
    # the first jit of the process, whatever it compiles: like the imports, it is not
    # the cost of compiling our program, so a trivial program pays it first.
    jax.jit(lambda x: x + 1).lower(np.float32(0)).compile()(np.float32(0)).block_until_ready()
    gc.collect()
    gc.freeze()  # tracing allocates many small objects: keep the collector off them

    compile_s, first_run_s, run_s, first = measure(
        build_combined, args.runs, args.episodes, args.repeats
    )
    one_device = measure(
        lambda runs, episodes: build_combined(runs, episodes, jax.devices()[:1]),
        args.runs,
        args.episodes,
        args.repeats,
    )
    metrics = first["all"]
    np.testing.assert_array_equal(  # same program, same numbers, on fewer devices
        metrics.episode_returns, one_device[3]["all"].episode_returns
    )
    ours_returns = {m: np.asarray(metrics.episode_returns[i]) for i, m in enumerate(METHODS)}
    steps = int(metrics.num_steps.sum())

    baseline_times = []
    for _ in range(max(1, args.baseline_repeats)):
        started = time.perf_counter()
        baseline = run_numpy_cliff(num_runs=args.runs, num_episodes=args.episodes, seed=0)
        baseline_times.append(time.perf_counter() - started)
    baseline_s = statistics.median(baseline_times)

    def mean_return(returns):
        return round(float(np.asarray(returns)[:, 100:].mean()), 2)

    print(json.dumps({
        "benchmark": "tabular_cliff",
        "work": f"Example 6.6, {'+'.join(METHODS)}, {args.runs} runs x {args.episodes} episodes",
        "devices": [str(d) for d in jax.devices()],
        "ours_compile_s": round(compile_s, 3),
        "ours_first_run_s": round(first_run_s, 3),
        "ours_run_s_median": round(run_s, 4),
        "ours_steps": steps,
        "ours_steps_per_s": round(steps / run_s),
        "ours_one_device_compile_s": round(one_device[0], 3),
        "ours_one_device_run_s_median": round(one_device[2], 4),
        "baseline": "plain NumPy Python loop (numpy_cliff_baseline.py)",
        "baseline_s": round(baseline_s, 3),
        "baseline_s_all": [round(t, 3) for t in baseline_times],
        "baseline_steps": int(baseline["steps"]),
        "baseline_steps_per_s": round(baseline["steps"] / baseline_s),
        "speedup": round(baseline_s / run_s, 1),
        "speedup_with_compile": round(baseline_s / (compile_s + first_run_s), 2),
        "speedup_one_device": round(baseline_s / one_device[2], 1),
        "ours_mean_return_ep100_500": {m: mean_return(r) for m, r in ours_returns.items()},
        "baseline_mean_return_ep100_500": {m: mean_return(baseline[m]) for m in METHODS},
    }))  # fmt: skip


if __name__ == "__main__":
    from compile_times import no_persistent_cache  # (this script's directory)

    no_persistent_cache()
    main()
