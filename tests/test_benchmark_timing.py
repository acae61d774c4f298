"""experiments/benchmarks/purejaxrl_baseline.py's timing: the side-by-side benchmarks
report the median of repeated calls of one compiled run, bounded by a count and a time
budget, and pass those settings on to the processes they start."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


FAKE_CHILD = """
import json, sys
args = sys.argv[1:]
impl = args[args.index("--child") + 1]
with open(sys.argv[0] + ".log", "a") as log:
    log.write(impl + " started\\n")
if "--paced" not in args:
    print(json.dumps({"argv": args, "steps_per_s": 1.0}))
    sys.exit()
if impl == "purejaxrl" and "--fail" in open(sys.argv[0] + ".mode").read():
    sys.stderr.write("the baseline broke\\n")
    sys.exit(3)
print("@compiled", flush=True)
times = []
for line in sys.stdin:
    if line.strip() != "run":
        break
    times.append(0.5 if impl == "jrl" else 1.0 + len(times))
    with open(sys.argv[0] + ".log", "a") as log:
        log.write(impl + " ran\\n")
    print("@ran", times[-1], flush=True)
print(json.dumps({"run_s_all": times, "steps_per_s": 1.0 / times[0], "compile_s": 1.0,
                  "peak_rss_mb": 100.0}))
"""


def fake_benchmark(tmp_path, monkeypatch, mode: str = ""):
    """A child script speaking the benchmarks' protocol, logging what it is asked to do,
    and a fake PureJaxRL checkout so that ``compare`` runs both implementations."""
    script = tmp_path / "child.py"
    script.write_text(FAKE_CHILD)
    (tmp_path / "child.py.mode").write_text(mode)
    checkout = tmp_path / "purejaxrl"
    (checkout / "purejaxrl").mkdir(parents=True)
    (checkout / "purejaxrl" / "ppo.py").write_text("")
    monkeypatch.setenv("PUREJAXRL_DIR", str(checkout))
    return script, tmp_path / "child.py.log"


def test_compare_unpaired_passes_the_timing_options_to_its_children(tmp_path, monkeypatch):
    script, _ = fake_benchmark(tmp_path, monkeypatch)
    monkeypatch.delenv("PUREJAXRL_DIR")
    baseline = load_baseline()
    report = baseline.compare(str(script), "fake", [1, 8], 2048, 4, 12.5, paired=False)
    assert report["seeds_8"]["jrl"]["argv"] == [
        "--child",
        "jrl",
        "--seeds",
        "8",
        "--steps",
        "2048",
        "--repeats",
        "4",
        "--repeat-budget-s",
        "12.5",
    ]
    assert "speedup" not in report  # no baseline without PUREJAXRL_DIR


def test_compare_paired_alternates_the_two_processes_calls(tmp_path, monkeypatch):
    script, log = fake_benchmark(tmp_path, monkeypatch)
    baseline = load_baseline()
    report = baseline.compare(str(script), "fake", [1], 2048, repeats=3, budget_s=1e9)
    # Both compile before any timed call; then rounds of ours/theirs, theirs/ours, ...
    assert log.read_text().split("\n")[:-1] == [
        "jrl started",
        "purejaxrl started",
        "jrl ran",
        "purejaxrl ran",
        "purejaxrl ran",
        "jrl ran",
        "jrl ran",
        "purejaxrl ran",
    ]
    row = report["seeds_1"]
    assert row["jrl"]["run_s_all"] == [0.5, 0.5, 0.5]
    assert row["purejaxrl"]["run_s_all"] == [1.0, 2.0, 3.0]
    assert row["speedup_rounds"] == [2.0, 4.0, 6.0]
    assert report["paired"] is True


def test_compare_paired_stops_at_the_budget(tmp_path, monkeypatch):
    script, _ = fake_benchmark(tmp_path, monkeypatch)
    baseline = load_baseline()
    # After round one PureJaxRL's calls total 1.0 s, round two 3.0 s: a 2.5 s budget
    # allows a second round but not a third, though ours is far under it.
    report = baseline.compare(str(script), "fake", [1], 2048, repeats=5, budget_s=2.5)
    assert report["seeds_1"]["purejaxrl"]["run_s_all"] == [1.0, 2.0]
    assert report["seeds_1"]["jrl"]["run_s_all"] == [0.5, 0.5]


def test_compare_paired_reports_a_failed_child(tmp_path, monkeypatch):
    script, _ = fake_benchmark(tmp_path, monkeypatch, mode="--fail")
    baseline = load_baseline()
    with pytest.raises(RuntimeError, match="purejaxrl with 1 seeds failed:\n.*the baseline broke"):
        baseline.compare(str(script), "fake", [1], 2048, repeats=2, budget_s=1e9)


def test_ppo_benchmark_paced_child_reports_each_timed_call(monkeypatch):
    monkeypatch.delenv("PUREJAXRL_DIR", raising=False)
    baseline = load_baseline()
    script = str(BENCHMARKS / "ppo_cartpole.py")
    report = baseline.compare(script, "ppo_cartpole", [1], 2048, repeats=2, budget_s=1000)
    row = report["seeds_1"]["jrl"]
    assert len(row["run_s_all"]) == 2
    assert row["steps_per_s"] == round(2048 / row["run_s"])


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_benchmarks_reject_a_repeat_count_below_one():
    for script in ("ppo_cartpole.py", "dqn_cartpole.py"):
        done = run_benchmark(script, "--repeats", "0")
        assert done.returncode == 2
        assert "--repeats: 0 is below 1" in done.stderr


def test_compare_adds_ours_on_one_device_beyond_one_seed(tmp_path, monkeypatch):
    script, log = fake_benchmark(tmp_path, monkeypatch)
    baseline = load_baseline()
    monkeypatch.setattr(baseline, "usable_cores", lambda: 2)  # even where one core is ours
    report = baseline.compare(str(script), "fake", [1, 8], 2048, repeats=1, budget_s=0.0)
    assert "jrl_one_device" not in report["seeds_1"]
    row = report["seeds_8"]
    # the fake's one-device ours takes 1.0 s a call, as PureJaxRL's first does
    assert row["jrl_one_device"]["run_s_all"] == [1.0]
    assert row["speedup_one_device"] == 1.0
    assert row["speedup"] == 2.0
    assert log.read_text().count("jrl_one_device started") == 1

    log.unlink()
    alone = baseline.compare(str(script), "fake", [8], 2048, one_device=False)
    assert "jrl_one_device" not in alone["seeds_8"]
    assert "speedup_one_device" not in alone["seeds_8"]
    assert "jrl_one_device" not in log.read_text()


def test_purejaxrl_sees_gymnax_legacy_api_and_a_qr_free_orthogonal(tmp_path, monkeypatch):
    """load_purejaxrl's run-time adaptations, on a stand-in module importing what
    PureJaxRL's ppo.py imports: gymnax.make gives the 5-tuple step without the info
    entries gymnax 1.0 added, and ``orthogonal`` is jrl's (same values as flax's)."""
    import flax.linen as nn

    from jrl.agents import networks

    checkout = tmp_path / "purejaxrl"
    (checkout / "purejaxrl").mkdir(parents=True)
    (checkout / "purejaxrl" / "ppo.py").write_text(
        "import gymnax\nfrom flax.linen.initializers import constant, orthogonal\n"
    )
    monkeypatch.setenv("PUREJAXRL_DIR", str(checkout))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    try:
        module = load_baseline().load_purejaxrl("ppo")
    finally:  # its stand-ins for brax, navix, ... stay out of the other tests
        for name in set(sys.modules) - before:
            if sys.modules[name].__spec__ is None:  # made, not imported
                monkeypatch.delitem(sys.modules, name)
    assert module.orthogonal is networks.orthogonal
    key = jax.random.key(3)
    np.testing.assert_array_equal(
        module.orthogonal(np.sqrt(2))(key, (4, 64)),
        nn.initializers.orthogonal(np.sqrt(2))(key, (4, 64)),
    )

    env, params = module.gymnax.make("CartPole-v1")
    obs, state = env.reset(key, params)
    pushes = jnp.ones(20, jnp.int32)  # always right: CartPole falls within 20 steps

    def step(state, action):
        obs, state, reward, done, info = env.step(key, state, action, params)
        return state, (done, info)

    _, (done, info) = jax.lax.scan(step, state, pushes)
    assert set(info) == {"discount"}
    assert bool(done.any())


def test_dqn_benchmark_rejects_steps_it_would_not_run():
    done = run_benchmark("dqn_cartpole.py", "--steps", "12345")
    assert done.returncode == 2
    assert "--steps must be a multiple of 5000, got 12345" in done.stderr


def test_make_bench_runs_every_benchmark_and_only_benchmarks():
    """`make bench` runs each script in the Makefile's BENCHMARKS without arguments: a
    benchmark left out would go unmeasured, a tool that needs arguments (thunk_profile's
    --algo) failed the target after every benchmark had run. A new script must be
    listed there or named here as not a benchmark."""
    makefile = (BENCHMARKS.parents[1] / "Makefile").read_text()
    (line,) = [row for row in makefile.splitlines() if row.startswith("BENCHMARKS =")]
    listed = set(line.split("=", 1)[1].split())
    not_benchmarks = {"purejaxrl_baseline", "numpy_cliff_baseline", "thunk_profile"}
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")}
    assert listed == scripts - not_benchmarks and not_benchmarks <= scripts


def test_ppo_steps_per_second_counts_the_steps_run():
    """Both PPOs run whole updates of 4 envs x 128 steps and drop the rest: 1023 steps
    asked run 512, and steps/s divided by 1023 claimed twice the real rate."""
    spec = importlib.util.spec_from_file_location("ppo_bench", BENCHMARKS / "ppo_cartpole.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.steps_run(1023) == 512 and module.steps_run(500_000) == 499_712
    from jrl.agents.ppo import PPOConfig

    config = PPOConfig(num_envs=4, num_steps=128, total_timesteps=500_000)
    assert module.steps_run(500_000) == config.num_updates * 4 * 128


def test_final_return_weighted_by_counts_is_the_mean_over_the_episodes():
    """ppo_cartpole.py's two return columns are one estimator: ours from per-update means
    and episode counts, PureJaxRL's from per-step episode records."""
    baseline = load_baseline()
    rng = np.random.default_rng(0)
    seeds, rows, steps = 2, 40, 6
    ended = rng.random((seeds, rows, steps)) < 0.3
    ended[:, -2:, 0] = True  # every seed ends episodes in its last rows
    episode_returns = rng.uniform(0, 500, (seeds, rows, steps))
    counts = ended.sum(axis=2)
    with np.errstate(invalid="ignore"):
        row_means = np.where(ended, episode_returns, 0).sum(axis=2) / counts
    per_episode = baseline.final_return(episode_returns, ended)
    weighted = baseline.final_return(row_means, counts=counts)
    assert weighted == pytest.approx(per_episode, rel=1e-12)
    unweighted = baseline.final_return(row_means)
    assert unweighted != pytest.approx(per_episode, rel=1e-6)
