"""Benchmark: what chunked training costs. The same PPO run (CartPole-v1, PureJaxRL's
configuration, 4 seeds x 2^19 steps) as one monolithic compiled program against
``jrl.training.train`` in chunks of 128 updates, each followed by its metric rows
appended to metrics.jsonl (fsynced), an orbax checkpoint of the whole state (written
in the background while the next chunk runs) and summary.json, in a fresh run
directory each time. Prints one JSON line; ``speedup`` = chunked steps/s /
monolithic steps/s (target >= 0.95), medians over repeats that alternate between the
two so that the shared machine's load falls on both alike. Compilation is timed
apart on both sides; the chunked time is all of ``train`` after its state is
initialised (chunks, rows, checkpoints, summaries, the last checkpoint's wait).

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

from jrl.host import compiler_options
from jrl.sweep import vmap_or_call
from jrl.training import RunSpec, build, train


def monolithic(spec: RunSpec):
    """(compile s, run function) of the whole run as one program: init then a scan over
    every update, vmapped over the seeds as the driver does."""
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
    compiled = (
        jax.jit(whole, compiler_options=compiler_options()).lower(built.keys, built.grid).compile()
    )
    compile_s = time.perf_counter() - started

    def run() -> float:
        started = time.perf_counter()
        jax.block_until_ready(compiled(built.keys, built.grid))
        return time.perf_counter() - started

    return compile_s, run


def chunked(spec: RunSpec) -> dict:
    """The summary of jrl.training.train in a fresh run directory (its timings)."""
    with tempfile.TemporaryDirectory() as directory:
        return train(spec, Path(directory) / "run", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2**19)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": args.steps},
        num_seeds=args.seeds,
        chunk_size=args.chunk,
    )
    built = build(spec)
    steps = args.seeds * built.total_updates * built.steps_per_update
    chunks = -(-built.total_updates // args.chunk)

    mono_compile, run_monolithic = monolithic(spec)
    first = chunked(spec)  # compiles init and the chunk (kept for the repeats)
    chunk_compile = first["compile_seconds_this_call"]
    mono_times, chunk_times = [], []
    for _ in range(args.repeats):
        mono_times.append(run_monolithic())
        summary = chunked(spec)
        assert summary["status"] == "complete" and summary["compile_seconds_this_call"] == 0
        chunk_times.append(summary["seconds_this_call"])
    mono_s, chunk_s = statistics.median(mono_times), statistics.median(chunk_times)
    print(json.dumps({
        "benchmark": "chunk_overhead",
        "work": f"PPO CartPole-v1, {args.seeds} seeds x {steps // args.seeds} steps",
        "device": str(jax.devices()[0]),
        "chunks": chunks,
        "chunk_updates": args.chunk,
        "repeats": args.repeats,
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
    from compile_times import no_persistent_cache  # (this script's directory)

    no_persistent_cache()
    main()
