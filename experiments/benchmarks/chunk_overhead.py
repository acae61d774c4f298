"""Benchmark: what chunked training costs. The same PPO run (CartPole-v1, PureJaxRL's
configuration, 4 seeds x 2^19 steps) as one monolithic compiled program against
``jrl.training.train`` in chunks of 128 updates, each followed by its metric rows
appended to metrics.jsonl (fsynced), an orbax checkpoint of the whole state and
summary.json. Prints one JSON line; ``speedup`` = chunked steps/s / monolithic steps/s
(target >= 0.95). Compilation is excluded on both sides (timed apart).

    python experiments/benchmarks/chunk_overhead.py [--steps 524288] [--chunk 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax

from jrl.sweep import vmap_or_call
from jrl.training import RunSpec, build, train


def monolithic_seconds(spec: RunSpec, repeats: int) -> tuple[float, float]:
    """(compile s, median run s) of the whole run as one program: init then a scan
    over every update, vmapped over the seeds as the driver does."""
    built = build(spec)
    agent = built.agent

    def whole(keys, grid):
        def run(key, hparams):
            state = agent.init(key, hparams)
            return jax.lax.scan(
                lambda s, _: agent.update(s, hparams), state, None, length=built.total_updates
            )

        over = vmap_or_call(run, (0, None), spec.num_seeds)
        return vmap_or_call(over, (None, 0), len(spec.hparams))(keys, grid)

    started = time.perf_counter()
    compiled = jax.jit(whole).lower(built.keys, built.grid).compile()
    compile_s = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(compiled(built.keys, built.grid))
        times.append(time.perf_counter() - started)
    return compile_s, statistics.median(times)


def chunked_seconds(spec: RunSpec, repeats: int) -> tuple[float, float, int]:
    """(compile s, median loop s, chunks) of jrl.training.train in a fresh run dir."""
    times, compile_s = [], 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as directory:
            summary = train(spec, Path(directory) / "run", progress=False)
        compile_s = max(compile_s, summary["compile_seconds_this_call"])
        times.append(summary["seconds_this_call"] - summary["compile_seconds_this_call"])
    return compile_s, statistics.median(times), -(-summary["total_updates"] // spec.chunk_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2**19)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": args.steps},
        num_seeds=args.seeds,
        chunk_size=args.chunk,
    )
    mono_compile, mono_s = monolithic_seconds(spec, args.repeats)
    chunk_compile, chunk_s, chunks = chunked_seconds(spec, args.repeats)
    steps = args.seeds * (args.steps // 512) * 512
    print(json.dumps({
        "benchmark": "chunk_overhead",
        "work": f"PPO CartPole-v1, {args.seeds} seeds x {args.steps} steps",
        "chunks": chunks,
        "chunk_updates": args.chunk,
        "monolithic_compile_s": round(mono_compile, 2),
        "monolithic_run_s": round(mono_s, 3),
        "monolithic_steps_per_s": round(steps / mono_s),
        "chunked_compile_s": round(chunk_compile, 2),
        "chunked_run_s": round(chunk_s, 3),
        "chunked_steps_per_s": round(steps / chunk_s),
        "per_chunk_overhead_s": round((chunk_s - mono_s) / chunks, 4),
        "speedup": round(mono_s / chunk_s, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
