"""The benchmarks' timing and figures: the side-by-side benchmarks report the median of
repeated calls of one compiled run, bounded by a count and a time budget, and pass those
settings on to the processes they start; every benchmark's JSON fields (ratios and which
way they divide, steps run, memory after compiling, final-return windows) checked from
made-up timings whose every figure is known (a fake clock, children and runs)."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_compiled_repeats_up_to_the_count_within_the_budget():
    baseline = load("purejaxrl_baseline")
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
    baseline = load("purejaxrl_baseline")
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
    baseline = load("purejaxrl_baseline")
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
    baseline = load("purejaxrl_baseline")
    # After round one PureJaxRL's calls total 1.0 s, round two 3.0 s: a 2.5 s budget
    # allows a second round but not a third, though ours is far under it.
    report = baseline.compare(str(script), "fake", [1], 2048, repeats=5, budget_s=2.5)
    assert report["seeds_1"]["purejaxrl"]["run_s_all"] == [1.0, 2.0]
    assert report["seeds_1"]["jrl"]["run_s_all"] == [0.5, 0.5]


def test_compare_paired_reports_a_failed_child(tmp_path, monkeypatch):
    script, _ = fake_benchmark(tmp_path, monkeypatch, mode="--fail")
    baseline = load("purejaxrl_baseline")
    with pytest.raises(RuntimeError, match="purejaxrl with 1 seeds failed:\n.*the baseline broke"):
        baseline.compare(str(script), "fake", [1], 2048, repeats=2, budget_s=1e9)


def test_ppo_benchmark_paced_child_reports_each_timed_call(monkeypatch, tmp_path):
    """Also: its compile time is a compile where JAX's persistent compilation cache is
    set (clusters, this suite), not a read of what an earlier run compiled."""
    monkeypatch.delenv("PUREJAXRL_DIR", raising=False)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    baseline = load("purejaxrl_baseline")
    script = str(BENCHMARKS / "ppo_cartpole.py")
    report = baseline.compare(script, "ppo_cartpole", [1], 2048, repeats=2, budget_s=1000)
    row = report["seeds_1"]["jrl"]
    assert len(row["run_s_all"]) == 2
    assert row["steps_per_s"] == round(2048 / row["run_s"])
    assert not any((tmp_path / "cache").glob("*-cache*")), "the benchmark used the cache"


def test_every_benchmark_turns_the_persistent_compilation_cache_off(tmp_path):
    """Each script's __main__ calls no_persistent_cache, which keeps the cache off after
    the scripts' imports compiled (JAX decides at its first compile: a config change
    after it left grid_throughput's, tabular_cliff's and chunk_overhead's on)."""
    makefile = (BENCHMARKS.parents[1] / "Makefile").read_text()
    (line,) = [row for row in makefile.splitlines() if row.startswith("BENCHMARKS =")]
    names = line.split("=", 1)[1].split()
    for name in names:
        main = (BENCHMARKS / f"{name}.py").read_text().split('if __name__ == "__main__":')[-1]
        assert "no_persistent_cache()" in main, name
    cache = tmp_path / "cache"
    script = (
        f"import sys, pathlib; sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        + "".join(f"import {name}\n" for name in names)
        + "from compile_times import no_persistent_cache\n"
        "no_persistent_cache()\n"
        f"entries = lambda: len(list(pathlib.Path({str(cache)!r}).glob('*-cache*')))\n"
        "before = entries()\n"
        "import jax; jax.block_until_ready(jax.jit(lambda x: x * 3.5 + 1.25)(2.0))\n"
        "print(before, entries())\n"
    )
    variables = {
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, **variables},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = map(int, done.stdout.split()[-2:])
    assert before > 0, "the imports compiled nothing: this no longer tests that case"
    assert after == before


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
    baseline = load("purejaxrl_baseline")
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
        module = load("purejaxrl_baseline").load_purejaxrl("ppo")
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
    not_benchmarks = {
        "purejaxrl_baseline",
        "numpy_cliff_baseline",
        "thunk_profile",
        "compile_times",
    }
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
    baseline = load("purejaxrl_baseline")
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


class Clock:
    """A stand-in for the ``time`` module whose perf_counter moves only when told."""

    def __init__(self, tick: float = 0.0):
        self.now, self.tick = 0.0, tick

    def perf_counter(self):
        self.now += self.tick
        return self.now

    def process_time(self):
        return self.now


FIGURES = {  # (steps_per_s by seed count, compile_s, peak_rss_mb) of each fake child
    "jrl": ({1: 300.0, 8: 800.0}, 2.0, 50.0),
    "jrl_one_device": ({8: 200.0}, 2.0, 50.0),
    "purejaxrl": ({1: 100.0, 8: 100.0}, 8.0, 200.0),
}

ASYMMETRIC_CHILD = f"""
import json, sys
args = sys.argv[1:]
impl, seeds = args[args.index("--child") + 1], int(args[args.index("--seeds") + 1])
rates, compile_s, rss = {FIGURES!r}[impl]
print(json.dumps({{"steps_per_s": rates[seeds], "compile_s": compile_s, "peak_rss_mb": rss,
                  "peak_device_mb": 2 * rss, "run_s_all": [1.0]}}))
"""


def test_compare_ratios_divide_ours_by_theirs_and_report_the_smaller_speedup(tmp_path, monkeypatch):
    script = tmp_path / "child.py"
    script.write_text(ASYMMETRIC_CHILD)
    (tmp_path / "purejaxrl" / "purejaxrl").mkdir(parents=True)
    (tmp_path / "purejaxrl" / "purejaxrl" / "ppo.py").write_text("")
    monkeypatch.setenv("PUREJAXRL_DIR", str(tmp_path / "purejaxrl"))
    baseline = load("purejaxrl_baseline")
    monkeypatch.setattr(baseline, "usable_cores", lambda: 2)
    report = baseline.compare(str(script), "fake", [1, 8], 1023, paired=False, steps_run=512)
    assert report["steps_per_seed"] == 512
    assert report["seeds_1"]["speedup"] == 3.0 and report["seeds_8"]["speedup"] == 8.0
    assert report["speedup"] == 3.0  # the smaller
    assert report["seeds_8"]["speedup_one_device"] == 2.0  # 200 / 100
    assert report["seeds_8"]["compile_ratio"] == 0.25  # ours / theirs
    assert report["seeds_8"]["memory_ratio"] == 0.25
    assert report["seeds_8"]["device_memory_ratio"] == 0.25  # (a GPU host's) 100 / 400


def test_device_memory_is_the_largest_peak_over_the_devices(monkeypatch):
    import jax

    baseline = load("purejaxrl_baseline")
    peaks = [3 * 2**20, 7 * 2**20]
    devices = [SimpleNamespace(memory_stats=lambda p=p: {"peak_bytes_in_use": p}) for p in peaks]
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax, "devices", lambda: devices)
    assert baseline.device_memory() == {"backend": "gpu", "peak_device_mb": 7}


def test_time_compiled_reports_the_median_call_and_memory_after_compiling(monkeypatch):
    baseline = load("purejaxrl_baseline")
    clock, rss = Clock(), [0.0]
    durations = iter([1.0, 5.0, 2.0])

    def call(x):
        clock.now += next(durations)
        rss[0] = 300.0  # running raises the peak
        return x

    def compile_():
        clock.now += 7.0
        rss[0] = 100.0
        return call

    fn = SimpleNamespace(lower=lambda *args: SimpleNamespace(compile=compile_))
    monkeypatch.setattr(baseline, "time", clock)
    monkeypatch.setattr(baseline, "peak_rss_mb", lambda: rss[0])
    times, out = baseline.time_compiled(fn, 1.0, repeats=3, budget_s=1e9)
    assert times == {
        "compile_s": 7.0,
        "run_s": 2.0,  # the median of 1, 5, 2
        "run_s_all": [1.0, 5.0, 2.0],
        "peak_rss_compiled_mb": 100,
    }


def test_final_return_averages_the_last_5_percent_of_rows():
    baseline = load("purejaxrl_baseline")
    returns = np.tile(np.arange(40.0), (2, 1))  # 40 rows: the last 2 count
    assert baseline.final_return(returns) == 38.5
    assert baseline.final_return(np.tile(np.arange(100.0), (3, 1))) == 97.0  # rows 95..99
    assert baseline.final_return(np.arange(30.0)[None]) == 28.5  # 1.5 rows round to 2


def test_each_benchmark_child_runs_on_the_devices_its_name_says(monkeypatch):
    """jrl_one_device is ours on one device (speedup_one_device: like for like with
    PureJaxRL's one); jrl on as many as the host gives; PureJaxRL on one."""
    import jrl.host

    baseline = load("purejaxrl_baseline")
    monkeypatch.setattr(jrl.host, "use_cpu_cores", lambda n=None: 4 if n is None else n)
    names = ("jrl", "jrl_one_device", "purejaxrl")
    assert [baseline.child_devices(name) for name in names] == [4, 1, 1]


def test_ppo_benchmark_measure_counts_steps_run_and_weights_rows_by_episodes(monkeypatch):
    ppo_cartpole = load("ppo_cartpole")
    baseline = ppo_cartpole.baseline
    returns = np.ones((1, 1, 40))  # [grid point, seed, row]; the last 2 rows count
    returns[0, 0, -2:] = [10.0, 40.0]
    counts = np.ones((1, 1, 40), np.int32)
    counts[0, 0, -2:] = [3, 1]
    metrics = SimpleNamespace(episode_return=returns, num_episodes=counts)
    times = {"compile_s": 1.0, "run_s": 2.0, "run_s_all": [2.0], "peak_rss_compiled_mb": 1}
    monkeypatch.setattr(baseline, "child_devices", lambda impl: 1)
    monkeypatch.setattr(baseline, "time_compiled", lambda *a, **k: (times, metrics))
    row = ppo_cartpole.measure("jrl", 1, 1023, {})
    assert row["steps_per_s"] == 256  # 512 steps run (one update), not 1023, in 2 s
    assert row["final_return"] == 17.5  # (3 x 10 + 1 x 40) / 4 episodes


def test_grid_throughput_figures_from_known_times(monkeypatch, capsys):
    grid_throughput = load("grid_throughput")
    clock = Clock()
    # Per row: the warm-up call, then the three timed repeats.
    durations = {
        "jrl CatRoom-v0 (index obs)": [9.0, 1.0, 4.0, 2.0],  # median 2, best 1
        "jrl CatRoom-v0 (grid obs)": [9.0, 4.0, 4.0, 4.0],
        "jrl CatRoom-v0 (index obs, slip 1/3)": [9.0, 5.0, 5.0, 5.0],
        "gymnax FourRooms-misc": [9.0, 6.0, 9.0, 8.0],  # median 8, best 6
        "null env": [9.0, 0.5, 0.5, 0.5],
    }
    order = iter(durations)

    def make_run(env, params, num_envs, num_steps):
        times = iter(durations[next(order)])

        def call(key):
            clock.now += next(times)
            return SimpleNamespace(block_until_ready=lambda: None)

        def compile_():
            clock.now += 3.0
            return call

        return SimpleNamespace(lower=lambda key: SimpleNamespace(compile=compile_))

    monkeypatch.setattr(grid_throughput, "make_run", make_run)
    monkeypatch.setattr(grid_throughput, "time", clock)
    argv = ["grid_throughput.py", "--num-envs", "10", "--num-steps", "100", "--repeats", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    grid_throughput.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ours"]["compile_s"] == 3.0
    assert result["ours"]["run_s"] == 2.0 and result["ours"]["run_s_min_max"] == [1.0, 4.0]
    assert result["ours"]["steps_per_s"] == 500 and result["baseline"]["steps_per_s"] == 125
    assert result["speedup"] == 4.0  # ours / baseline, medians
    assert result["speedup_grid_obs"] == 2.0
    assert result["speedup_same_slip"] == 1.6
    assert result["speedup_best_of_repeats"] == 6.0  # baseline's best 6 s / ours 1 s
    assert result["speedup_ceiling"] == 16.0
    assert result["meets_target"] is True


def test_tabular_cliff_speedups_from_known_times(monkeypatch, capsys):
    monkeypatch.setenv("XLA_FLAGS", "")  # the script's import appends to it: restored after
    tabular_cliff = load("tabular_cliff")
    clock = Clock()
    returns = np.zeros((2, 2, 500))
    returns[:, :, 100:] = -20.0  # episodes 100..499
    returns[1] -= 5.0  # Q-learning
    metrics = SimpleNamespace(episode_returns=returns, num_steps=np.full((2, 2), 1000))
    measured = iter([(4.0, 1.0, 0.5, {"all": metrics}), (3.0, 1.5, 0.8, {"all": metrics})])
    builders = []

    def measure(build, *args):
        builders.append(build)
        return next(measured)

    monkeypatch.setattr(tabular_cliff, "measure", measure)
    baseline_sizes, baseline_times = [], iter([9.0, 30.0, 10.0])  # median 10

    def run_numpy_cliff(num_runs, num_episodes, seed):
        baseline_sizes.append((num_runs, num_episodes))
        clock.now += next(baseline_times)
        theirs = np.full((num_runs, num_episodes), -30.0)  # not ours: its own figures
        return {"sarsa": theirs, "q_learning": theirs - 5.0, "steps": 8000}

    monkeypatch.setattr(tabular_cliff, "run_numpy_cliff", run_numpy_cliff)
    monkeypatch.setattr(tabular_cliff, "time", clock)
    monkeypatch.setattr(sys, "argv", ["tabular_cliff.py", "--runs", "2", "--repeats", "1"])
    try:
        tabular_cliff.main()
    finally:
        gc.unfreeze()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ours_steps"] == 4000 and result["ours_steps_per_s"] == 8000
    assert result["baseline_s"] == 10.0 and result["baseline_steps_per_s"] == 800
    assert result["speedup"] == 20.0  # baseline / ours
    assert result["speedup_with_compile"] == 2.0  # 10 / (4 compile + 1 first call)
    assert result["speedup_one_device"] == 12.5
    assert result["ours_mean_return_ep100_500"] == {"sarsa": -20.0, "q_learning": -25.0}
    assert result["baseline_mean_return_ep100_500"] == {"sarsa": -30.0, "q_learning": -35.0}
    assert result["baseline_steps"] == 8000 and result["ours_run_s_median"] == 0.5
    assert baseline_sizes == [(2, 500)] * 3  # the NumPy loop does our work, three times
    # The second figure's builder is the one-device program.
    assert builders[0] is tabular_cliff.build_combined
    devices_given = []
    monkeypatch.setattr(tabular_cliff.jax, "devices", lambda: ["cpu0", "cpu1"])
    monkeypatch.setattr(
        tabular_cliff, "build_combined", lambda r, e, devices=None: devices_given.append(devices)
    )
    builders[1](2, 500)
    assert devices_given == [["cpu0"]]
    # Budgets it cannot report on are refused before anything runs (the mean of episodes
    # 100..500 of a 100-episode run was NaN, written into the JSON line as such).
    for argv, said in [
        (["--episodes", "100"], "--episodes must be > 100"),
        (["--runs", "0"], "--runs must be >= 1, got 0"),
        (["--baseline-repeats", "0"], "--baseline-repeats must be >= 1"),
        (["--repeats", "0"], "--repeats must be >= 1"),
    ]:
        monkeypatch.setattr(sys, "argv", ["tabular_cliff.py", *argv])
        with pytest.raises(SystemExit) as exited:
            tabular_cliff.main()
        assert exited.value.code == 2 and said in capsys.readouterr().err


def test_tabular_cliff_measure_keeps_compiling_and_the_first_call_out_of_the_median(
    monkeypatch,
):
    monkeypatch.setenv("XLA_FLAGS", "")
    tabular_cliff = load("tabular_cliff")
    clock = Clock()
    durations = iter([30.0, 1.0, 2.0, 9.0])  # the first call, then three repeats

    def call(key):
        clock.now += next(durations)
        return jnp.float32(0)

    def compile_():
        clock.now += 5.0
        return call

    program = SimpleNamespace(lower=lambda key: SimpleNamespace(compile=compile_))
    monkeypatch.setattr(tabular_cliff, "time", clock)
    compile_s, first_s, run_s, first = tabular_cliff.measure(lambda r, e: program, 2, 200, 3)
    assert (compile_s, first_s, run_s) == (5.0, 30.0, 2.0) and set(first) == {"all"}


def test_the_numpy_cliff_walks_example_6_6():
    """Example 6.6: a step into the cliff costs -100 and sends the agent back to the start,
    the episode going on; the goal ends it; a move off the grid stays put."""
    numpy_cliff = load("numpy_cliff_baseline")
    for col in range(1, 11):  # down into each cliff cell
        assert numpy_cliff.step(2, col, 1) == (3, 0, -100.0, False)
    assert numpy_cliff.step(3, 0, 3) == (3, 0, -100.0, False)  # right from the start
    assert numpy_cliff.step(2, 11, 1) == (3, 11, -1.0, True)
    assert numpy_cliff.step(0, 0, 0) == (0, 0, -1.0, False)


def test_the_numpy_cliffs_epsilon_greedy_breaks_ties_at_random_and_explores_at_epsilon():
    numpy_cliff = load("numpy_cliff_baseline")
    rng = np.random.default_rng(0)
    tied, unique = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 0.0])
    assert {numpy_cliff.epsilon_greedy(tied, 0.0, rng) for _ in range(200)} == {1, 2}
    assert {numpy_cliff.epsilon_greedy(unique, 0.0, rng) for _ in range(200)} == {1}
    draws = np.array([numpy_cliff.epsilon_greedy(unique, 0.2, rng) for _ in range(4000)])
    assert abs(np.mean(draws != 1) - 0.2 * 3 / 4) < 0.03  # a uniform draw: 1 in 4 is greedy


def test_the_numpy_cliff_counts_every_runs_steps_and_its_sarsa_is_on_policy():
    """Steps are summed over runs (the baseline's steps/s); Sarsa's target is the next
    action taken, so it learns the safe path (Figure 6.4: its returns after episode 100
    well above Q-learning's; with a max target it would be Q-learning)."""
    numpy_cliff = load("numpy_cliff_baseline")
    out = numpy_cliff.run_numpy_cliff(num_runs=3, num_episodes=4, seed=0)
    methods = [("sarsa", numpy_cliff.run_sarsa), ("q_learning", numpy_cliff.run_q_learning)]
    for seeds, (method, run) in zip(np.random.SeedSequence(0).spawn(2), methods, strict=True):
        total = 0
        for i, seed in enumerate(seeds.spawn(3)):
            returns, steps = run(4, 0.5, 0.1, np.random.default_rng(seed))
            np.testing.assert_array_equal(out[method][i], returns)
            total += steps
        assert out["steps_by_method"][method] == total
    assert out["steps"] == sum(out["steps_by_method"].values())
    out = numpy_cliff.run_numpy_cliff(num_runs=2, num_episodes=150, seed=0)
    sarsa, q_learning = out["sarsa"][:, 100:].mean(), out["q_learning"][:, 100:].mean()
    assert sarsa > q_learning + 10, (sarsa, q_learning)


def test_chunk_overhead_figures_from_known_times(monkeypatch, capsys):
    chunk_overhead = load("chunk_overhead")
    spec = SimpleNamespace(total_updates=300, steps_per_update=512)
    monkeypatch.setattr(chunk_overhead, "build", lambda run: spec)
    monolithic_times = iter([2.0, 9.0, 2.0])  # median 2
    monkeypatch.setattr(
        chunk_overhead, "monolithic", lambda run: (5.0, lambda: next(monolithic_times))
    )
    first = {"status": "complete", "compile_seconds_this_call": 7.0, "seconds_this_call": 40.0}
    repeats = [
        {"status": "complete", "compile_seconds_this_call": 0, "seconds_this_call": seconds}
        for seconds in (2.5, 2.5, 9.0)  # median 2.5
    ]
    summaries = iter([first, *repeats])
    monkeypatch.setattr(chunk_overhead, "chunked", lambda run: next(summaries))
    monkeypatch.setattr(sys, "argv", ["chunk_overhead.py", "--repeats", "3"])
    chunk_overhead.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["chunks"] == 3  # 300 updates in chunks of 128: the last one shorter
    assert result["monolithic_steps_per_s"] == 4 * 300 * 512 / 2  # 4 seeds
    assert result["chunked_run_s"] == 2.5  # the repeats' median, not the compiling call
    assert result["speedup"] == 0.8  # chunked steps/s over monolithic: 2 / 2.5
    assert result["per_chunk_overhead_s"] == round(0.5 / 3, 4)
    assert result["monolithic_compile_s"] == 5.0 and result["chunked_compile_s"] == 7.0


def test_product_floor_scales_one_timed_gradient_step_to_the_runs_count(monkeypatch):
    product_floor = load("product_floor")
    monkeypatch.setattr(product_floor, "time", Clock(tick=1.0))  # each timed call: 1 s
    seconds, us_per_step = product_floor.products_seconds("ppo", 500_000, repeats=2)
    assert us_per_step == 1e6 / 2000  # a scan of 2000 steps in 1 s
    assert seconds == 15_616 / 2000  # PPO's 15,616 gradient steps at that rate


class CountingEnv:
    """Reward 1000 every step; observation 1 where the action was the last of three."""

    def action_space(self, params):
        return SimpleNamespace(n=3)

    def reset(self, key, params):
        return jnp.int32(0), jnp.int32(0)

    def step(self, key, state, action, params):
        obs = (action == 2).astype(jnp.int32)
        return obs, state + 1, jnp.float32(1000.0), False, False, {}


def test_grid_throughput_steps_every_env_every_step_and_consumes_its_observations():
    grid_throughput = load("grid_throughput")
    total = float(grid_throughput.make_run(CountingEnv(), None, 8, 50)(jax.random.key(0)))
    assert total // 1000 == 8 * 50  # rewards of every env at every step
    assert 0 < total % 1000 < 8 * 50  # observations summed too; every action drawn


def test_product_floor_gradient_steps_of_purejaxrls_cartpole_runs():
    product_floor = load("product_floor")
    # PPO: 976 updates x 4 epochs x 4 minibatches of 128.
    assert product_floor.gradient_steps("ppo", 500_000) == (
        15_616,
        128,
        [[4, 64, 64, 2], [4, 64, 64, 1]],
        0,
    )
    # DQN: one step per 10 transitions from 10,000 to 500,000.
    assert product_floor.gradient_steps("dqn", 500_000) == (
        49_000,
        128,
        [[4, 120, 84, 2], [4, 120, 84, 2]],
        1,
    )


def test_product_floor_ratios_from_known_times(monkeypatch, capsys):
    product_floor = load("product_floor")
    products = {a: {"products_s": 4.0, "products_us_per_step": 1.0} for a in ("ppo", "dqn")}
    done = SimpleNamespace(returncode=0, stdout=json.dumps(products) + "\n", stderr="")
    children = []

    def run(argv, **kwargs):
        children.append(argv)
        return done

    monkeypatch.setattr(product_floor.subprocess, "run", run)
    runs = []

    def run_seconds(algo, steps):
        runs.append(steps)
        return {"jrl": 10.0, "purejaxrl": 15.0}

    monkeypatch.setattr(product_floor, "run_seconds", run_seconds)
    monkeypatch.setattr(sys, "argv", ["product_floor.py", "--steps", "100000"])
    product_floor.main()
    (child,) = children  # the products are timed for the runs' own step count
    assert child[child.index("--steps") + 1] == "100000" and set(runs) == {100_000}
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for algo in ("ppo", "dqn"):
        row = report[algo]
        assert row["speedup"] == 1.5  # theirs / ours
        assert row["products_fraction"] == 0.4  # products / ours
        assert row["speedup_bound"] == 3.75  # theirs / products
        assert row["other_s_at_1_5x"] == 6.0  # 15 / 1.5 - 4
        assert row["other_s_jrl"] == 6.0


def test_peak_memory_is_in_mib_on_linux_and_macos(monkeypatch):
    """getrusage's ru_maxrss is KiB on Linux and bytes on macOS: read as KiB there, a
    Mac's peak_rss_mb was 1024 times too large."""
    baseline = load("purejaxrl_baseline")
    usage = SimpleNamespace(ru_maxrss=None)
    monkeypatch.setattr(baseline.resource, "getrusage", lambda who: usage)
    usage.ru_maxrss = 300 * 1024
    monkeypatch.setattr(sys, "platform", "linux")
    assert baseline.peak_rss_mb() == 300.0
    usage.ru_maxrss = 300 * 2**20
    monkeypatch.setattr(sys, "platform", "darwin")
    assert baseline.peak_rss_mb() == 300.0
