"""Where one seed's compiled CartPole run spends its time, operation by operation.
A profiling tool for the one-seed speed work (prints one JSON line), not a speed claim.

XLA:CPU runs a compiled program as a sequence of *thunks* (a fused loop kernel, a
matrix product, a copy, a sort, a while loop of thunks, ...), one after another on one
core. This script compiles one seed of ``ppo_cartpole.py``'s or ``dqn_cartpole.py``'s
jrl run (same configuration, same compile options) for a short budget, times it, runs
it once more under ``jax.profiler`` and sums the trace's thunk events by name. Each row
of ``top`` is one thunk of the program: how often it ran, its total and mean time, and
the ``op_name`` XLA kept from the JAX code it came from (e.g.
``transpose(jvp(ActorCritic))/critic_torso/Dense_1/dot_general``: the critic's second
layer's product in the backward pass).

Read it with two corrections in mind. Tracing costs about ``tracing_us_per_event``
per thunk (the traced run's extra time over the untraced one, per event), which
dominates thunks below a microsecond — their count matters more than their traced
time. Nor are traced times a cost model for larger thunks: here the trace put Eigen's
weight-gradient products at twice YNNPACK's time per flop and gymnax's per-step
threefry loops among the largest items, yet moving those products to YNNPACK, or
removing those draws altogether, left the untraced run as fast as before. Use the
table for what runs and how often; confirm any idea with an A/B of the untraced run.

``top`` lists the thunks that are neither loops nor conditionals; ``loops_and_conds``
those, each timed with the thunks of its body or branch (which ``top`` also counts).
``rolled_loops`` counts the while loops that run a fixed number of trips
(``known_trip_count``) with their ``op_name``s: on XLA:CPU, JAX's threefry PRNG
(``jax.random.split``, ``uniform``, ... on arrays beyond a handful of elements) becomes
a 5-trip loop of ~19 thunks, which is why DQN draws a chunk's randomness at once
(``jrl.agents.dqn.ChunkNoise``).

For machine-level detail (library kernels, the thunk executor, sorting), run the same
program under ``perf record -F 4000 -D <ms after compile>`` and ``perf report --sort
dso,symbol``; XLA's own kernels show as ``[unknown]`` in ``/tmp/perf-<pid>.map``.

    python experiments/benchmarks/thunk_profile.py --algo ppo [--steps 4096] [--top 30]
    python experiments/benchmarks/thunk_profile.py --algo dqn [--steps 15000]

The trace keeps at most 1,000,000 events (``truncated`` says when it hit that): keep
the budget small (PPO: ~50 events per environment step; DQN, once learning, ~25; DQN
learns from step 10,000).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jrl.host

HERE = Path(__file__).resolve().parent

TRACE_EVENT_LIMIT = 1_000_000
NOT_THUNKS = ("end:", "ThunkExecutor", "$", "PjRt", "Pjit", "XlaModule")
DEFAULT_STEPS = {"ppo": 4096, "dqn": 15_000}


def op_names(hlo_text: str) -> dict[str, str]:
    """Instruction name -> the op_name metadata XLA kept, from a compiled HLO text."""
    pattern = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?metadata=\{op_name=\"([^\"]*)\"", re.M)
    return {name: op for name, op in pattern.findall(hlo_text)}


def rolled_loops(hlo_text: str) -> dict[str, int]:
    """op_name -> count of the while loops with a known trip count, as 'trips: op'."""
    counts: collections.Counter = collections.Counter()
    for line in hlo_text.splitlines():
        trips = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', line)
        if " while(" not in line or not trips:
            continue
        op = re.search(r'op_name="([^"]*)"', line)
        counts[f"{trips.group(1)}: {short(op.group(1)) if op else '?'}"] += 1
    return dict(counts.most_common())


def short(op_name: str, parts: int = 4) -> str:
    return "/".join(op_name.split("/")[-parts:])


def thunk_events(trace_dir: Path) -> list[dict]:
    files = sorted(trace_dir.rglob("*.trace.json.gz"))
    if not files:
        raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
    with gzip.open(files[-1]) as stream:
        events = json.load(stream)["traceEvents"]
    return [e for e in events if e.get("ph") == "X" and "dur" in e]


def profile(algo: str, steps: int, top: int) -> dict:
    jrl.host.use_cpu_cores(1)
    import jax

    sys.path.insert(0, str(HERE))  # the benchmarks whose configuration is profiled
    if algo == "ppo":
        from ppo_cartpole import jrl_train
    else:
        from dqn_cartpole import jrl_train
    train, hparams = jrl_train(steps)
    fn = jax.jit(lambda key: train(key, hparams)[1], compiler_options=jrl.host.compiler_options())
    compiled = fn.lower(jax.random.key(0)).compile()
    hlo = compiled.as_text()
    jax.block_until_ready(compiled(jax.random.key(0)))
    run_s = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(0)))
        run_s = min(run_s, time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(0)))
        traced_s = time.perf_counter() - start
        jax.profiler.stop_trace()
        events = thunk_events(Path(trace_dir))

    thunks = [e for e in events if not e["name"].startswith(NOT_THUNKS)]
    count: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    for event in thunks:
        count[event["name"]] += 1
        total[event["name"]] += event["dur"]
    ops = op_names(hlo)

    def rows(names):
        return [
            {
                "thunk": name,
                "op": short(ops.get(name, "")),
                "count": count[name],
                "total_ms": round(total[name] / 1e3, 2),
                "mean_us": round(total[name] / count[name], 2),
            }
            for name in sorted(names, key=lambda n: -total[n])[:top]
        ]

    loops = [name for name in total if name.startswith(("while", "cond"))]
    return {
        "tool": "thunk_profile",
        "algo": algo,
        "steps": steps,
        "run_s": round(run_s, 4),
        "traced_run_s": round(traced_s, 4),
        "thunk_events": len(thunks),
        "thunk_events_per_env_step": round(len(thunks) / steps, 1),
        "tracing_us_per_event": round(1e6 * (traced_s - run_s) / max(len(thunks), 1), 3),
        "truncated": len(events) >= TRACE_EVENT_LIMIT,
        "rolled_loops": rolled_loops(hlo),
        "loops_and_conds": rows(loops),
        "top": rows([name for name in total if name not in loops]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=["ppo", "dqn"], required=True)
    parser.add_argument("--steps", type=int, help="env steps (default: ppo 4096, dqn 15000)")
    parser.add_argument("--top", type=int, default=30, help="rows of the thunk table")
    args = parser.parse_args()
    print(json.dumps(profile(args.algo, args.steps or DEFAULT_STEPS[args.algo], args.top)))


if __name__ == "__main__":
    main()
