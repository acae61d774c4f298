"""experiments/benchmarks/purejaxrl_baseline.py's timing: the side-by-side benchmarks
report the median of repeated calls of one compiled run, bounded by a count and a time
budget, and pass those settings on to the processes they start."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"


def load_baseline():
    spec = importlib.util.spec_from_file_location(
        "purejaxrl_baseline", BENCHMARKS / "purejaxrl_baseline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_compiled_repeats_up_to_the_count_within_the_budget():
    baseline = load_baseline()
    fn = jax.jit(lambda x: jnp.cumsum(x) * 2.0)
    x = jnp.arange(1000.0)

    times, out = baseline.time_compiled(fn, x, repeats=3, budget_s=1e9)
    assert len(times["run_s_all"]) == 3
    assert times["run_s"] == round(float(np.median(times["run_s_all"])), 3)
    np.testing.assert_array_equal(out, jnp.cumsum(x) * 2.0)

    once, _ = baseline.time_compiled(fn, x, repeats=3, budget_s=0.0)
    assert len(once["run_s_all"]) == 1  # the budget is spent by the first call

    default, _ = baseline.time_compiled(fn, x)
    assert len(default["run_s_all"]) == 1


def test_compare_passes_the_timing_options_to_its_children(tmp_path, monkeypatch):
    script = tmp_path / "child.py"
    script.write_text(
        "import json, sys\nprint(json.dumps({'argv': sys.argv[1:], 'steps_per_s': 1.0}))\n"
    )
    monkeypatch.delenv("PUREJAXRL_DIR", raising=False)
    baseline = load_baseline()
    timing = ["--repeats", "4", "--repeat-budget-s", "12.5"]
    report = baseline.compare(str(script), "fake", [1, 8], 2048, timing)
    assert report["seeds_8"]["jrl"]["argv"] == [
        "--child",
        "jrl",
        "--seeds",
        "8",
        "--steps",
        "2048",
        *timing,
    ]
    assert "speedup" not in report  # no baseline without PUREJAXRL_DIR


def test_ppo_benchmark_child_reports_each_timed_call():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ppo_cartpole.py"), "--child", "jrl", "--seeds", "1"]
        + ["--steps", "2048", "--repeats", "2", "--repeat-budget-s", "1000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(row["run_s_all"]) == 2
    assert row["steps_per_s"] == round(2048 / row["run_s"])


def test_benchmarks_reject_a_repeat_count_below_one():
    for script in ("ppo_cartpole.py", "dqn_cartpole.py"):
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), "--repeats", "0"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2
        assert "--repeats: 0 is below 1" in done.stderr
