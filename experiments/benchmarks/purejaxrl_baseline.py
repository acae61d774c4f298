"""Import PureJaxRL's single-file agents from a checkout, unchanged, to run beside ours.

Nothing of PureJaxRL is copied here: ``load_purejaxrl(name)`` imports
``$PUREJAXRL_DIR/purejaxrl/<name>.py`` as it is, after two run-time adaptations made
outside its files:

- its unused imports of brax, navix, wandb and flashbax (``wrappers.py``, ``dqn.py``)
  get empty stand-in modules where the real package is not installed;
- ``jax.tree_map`` (removed in jax 0.6, used by its ``dqn.py``) is set back to
  ``jax.tree.map`` in the process that runs it;
- gymnax 1.0 returns a 6-tuple ``(obs, state, reward, terminated, truncated, info)``
  from ``step``; PureJaxRL expects gymnax 0.0.x's 5-tuple, so the module's
  ``gymnax.make`` is replaced by one that wraps the environment in gymnax's own
  ``LegacyStepAPIWrapper`` (done = terminated or truncated, as before), less the
  three ``info`` entries gymnax 1.0 added (``terminated``, ``truncated``,
  ``final_observation``): PureJaxRL's PPO keeps every ``info`` entry of every step as
  its metrics, so passing them on would double its memory at 64 seeds;
- flax's ``orthogonal`` initializer, which its networks use, is replaced in the module
  by ``jrl.agents.networks.orthogonal`` (same values for the same key): under its
  ``vmap`` over seeds flax's makes batched QRs, which hang jaxlib 0.10-0.11 on the CPU
  (shared/REFERENCE.md) — dropping the info entries above changed XLA's schedule
  enough that four seeds of its PPO hung at 0% CPU every time.

    git clone https://github.com/luchris429/purejaxrl; export PUREJAXRL_DIR=$PWD/purejaxrl
    pip install 'jrl[bench]'   # distrax (PureJaxRL's PPO), flashbax (its DQN)

It also holds what the side-by-side benchmarks share: each (implementation, seed
count) runs in a fresh process (``compare``), so compile caches and peak resident
memory are its own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from jrl.host import usable_cores


def purejaxrl_dir() -> Path | None:
    """The checkout named by $PUREJAXRL_DIR, or None when unset."""
    value = os.environ.get("PUREJAXRL_DIR")
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not (path / "purejaxrl" / "ppo.py").is_file():
        raise FileNotFoundError(
            f"PUREJAXRL_DIR={value!r} is not a PureJaxRL checkout (no purejaxrl/ppo.py); "
            "git clone https://github.com/luchris429/purejaxrl and point PUREJAXRL_DIR at it"
        )
    return path


def _stub(name: str, **attributes) -> None:
    """An empty module ``name`` (and its parents) unless the real one imports."""
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
        if i > 1:
            setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], sys.modules[sub])
    for key, value in attributes.items():
        setattr(sys.modules[name], key, value)


class _Unused:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("a stand-in for an optional PureJaxRL dependency was used")


GYMNAX_1_INFO = ("terminated", "truncated", "final_observation")


def _legacy(env):
    """``env`` (gymnax 1.0 API) seen through gymnax 0.0.x's: ``step`` returns
    ``(obs, state, reward, done, info)`` with done = terminated or truncated and
    ``info`` without the entries gymnax 1.0 added (:data:`GYMNAX_1_INFO`)."""
    from gymnax.wrappers.compat import LegacyStepAPIWrapper

    class LegacyStep(LegacyStepAPIWrapper):
        def step(self, key, state, action, params=None):
            obs, state, reward, done, info = super().step(key, state, action, params)
            info = {k: v for k, v in info.items() if k not in GYMNAX_1_INFO}
            return obs, state, reward, done, info

    return LegacyStep(env)


def _legacy_make(*args, **kwargs):
    import gymnax

    env, params = gymnax.make(*args, **kwargs)
    return _legacy(env), params


def load_purejaxrl(name: str) -> types.ModuleType:
    """PureJaxRL's ``purejaxrl/<name>.py`` as a module (``make_train(config)`` etc.).

    Modules that build on their own ``wrappers.py`` (PPO) get a ``gymnax.make`` that
    returns the legacy-API environment; modules that use gymnax 1.0's ``LogWrapper``
    (DQN), which itself reads the 6-tuple, get that wrapper's output made legacy."""
    root = purejaxrl_dir()
    if root is None:
        raise RuntimeError("set PUREJAXRL_DIR to a PureJaxRL checkout")
    _stub("brax.envs.wrappers.training", EpisodeWrapper=_Unused, AutoResetWrapper=_Unused)
    _stub("navix")
    _stub("wandb")
    import jax

    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map
    source_dir = str(root / "purejaxrl")
    if source_dir not in sys.path:
        sys.path.insert(0, source_dir)
    path = root / "purejaxrl" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"purejaxrl_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from jrl.agents.networks import orthogonal

    if hasattr(module, "orthogonal"):
        module.orthogonal = orthogonal
    log_wrapper = getattr(module, "LogWrapper", None)
    if log_wrapper is not None and log_wrapper.__module__.startswith("gymnax"):
        module.LogWrapper = lambda env: _legacy(log_wrapper(env))
    else:
        module.gymnax = types.SimpleNamespace(make=_legacy_make)
    return module


IMPLEMENTATIONS = ("jrl", "jrl_one_device", "purejaxrl")
"""What a benchmark child runs: ours as recommended (seeds split over one XLA device per
CPU core), ours on one CPU device (the same device count as PureJaxRL's), PureJaxRL."""


def jrl_device_count(num_devices: int | None = None) -> int:
    """The devices our runs split their seeds over, set up for this host: on a CPU host
    one XLA device per core (``jrl.host.use_cpu_cores()``, as jrl recommends there), or
    ``num_devices`` of them; on a GPU or TPU host its accelerators. Call it before JAX
    starts."""
    import jrl.host

    cores = jrl.host.use_cpu_cores(num_devices)
    import jax

    return cores if jax.default_backend() == "cpu" else jax.device_count()


def child_devices(impl: str) -> int:
    """The devices a benchmark child of ``impl`` (one of :data:`IMPLEMENTATIONS`) runs
    on; PureJaxRL's runs as its scripts do, on one device with XLA's default flags.
    Call it before JAX starts."""
    if impl == "purejaxrl":
        return 1
    return jrl_device_count(1 if impl == "jrl_one_device" else None)


def device_memory() -> dict:
    """``{"backend": ...}``, and on an accelerator ``peak_device_mb``: the largest peak
    of bytes in use over this process's devices, MiB (host memory is peak_rss_mb)."""
    import jax

    report: dict = {"backend": jax.default_backend()}
    if report["backend"] != "cpu":
        peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use", 0) for d in jax.devices()]
        report["peak_device_mb"] = round(max(peaks) / 2**20)
    return report


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss: KiB on Linux, bytes on macOS), MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2.0**20 if sys.platform == "darwin" else 1024.0)


def final_return(returns, ended=None, fraction: float = 0.05, counts=None) -> float:
    """Mean over seeds of the mean return at the end of training (last ``fraction`` of
    the logged rows).

    returns: [seeds, rows] per-row mean returns (NaN: no episode ended), or with
    ``ended`` [seeds, rows, ...] returns and a mask of the entries that count. With
    ``counts`` ([seeds, rows], the episodes each row's mean is over) each seed's figure
    is the mean over those episodes (rows weighted by their counts), as ``ended`` gives
    from per-episode entries; without, the mean of the rows' means."""
    returns = np.asarray(returns, np.float64)
    last = max(1, int(round(returns.shape[1] * fraction)))
    if counts is not None:
        counts = np.asarray(counts, np.float64)[:, -last:]
        sums = np.where(counts > 0, returns[:, -last:], 0.0) * counts
        return float(np.mean(sums.sum(axis=1) / counts.sum(axis=1)))
    if ended is None:
        return float(np.mean(np.nanmean(returns[:, -last:], axis=1)))
    ended = np.asarray(ended, bool)[:, -last:]
    per_seed = [r[-last:][e].mean() for r, e in zip(returns, ended, strict=True)]
    return float(np.mean(per_seed))


PACED_READY = "@compiled"
PACED_RAN = "@ran"


def time_compiled(
    fn,
    *args,
    after_compile=None,
    repeats: int = 1,
    budget_s: float = 0.0,
    paced: bool = False,
) -> tuple[dict, object]:
    """({compile_s, run_s, run_s_all, peak_rss_compiled_mb}, output) of a jitted ``fn``:
    ahead-of-time compile, ``after_compile()`` if given (untimed; jrl's runs release the
    compiler's freed memory there, as ``run_sweep`` does), then timed calls of the
    compiled function on the same arguments: one, and more while fewer than ``repeats``
    have run and their total is under ``budget_s`` seconds. ``run_s`` is their median
    (a single timed run on this host swings by about ±10%), ``run_s_all`` each one's
    time; the output is the last call's (every call computes the same).

    ``paced``: the calls are the controlling process's to order (:func:`compare`'s
    paired timing): after compiling this prints ``@compiled``, then makes one timed call
    for each ``run`` line on stdin, printing ``@ran <seconds>`` after it, until any other
    line (``stop``) or the end of stdin; ``repeats`` and ``budget_s`` are ignored."""
    import jax

    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    compiled_rss = peak_rss_mb()
    if after_compile is not None:
        after_compile()
    run_times: list[float] = []
    turns = _paced_turns() if paced else _counted_turns([run_times], repeats, budget_s)
    for _ in turns:
        out = None  # hold one output at a time: at many seeds it is large
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        run_times.append(time.perf_counter() - start)
        if paced:
            print(PACED_RAN, run_times[-1], flush=True)
    times = {
        "compile_s": round(compile_s, 2),
        "run_s": round(float(np.median(run_times)), 3),
        "run_s_all": [round(t, 3) for t in run_times],
    }
    return {**times, "peak_rss_compiled_mb": round(compiled_rss)}, out


def _counted_turns(timings: list[list[float]], repeats: int, budget_s: float):
    """The repeat rule of the timed calls: one turn, and more while each list of call
    times in ``timings`` (filled by the caller as it goes) holds fewer than ``repeats``
    and totals under ``budget_s``."""
    yield
    while all(len(times) < repeats and sum(times) < budget_s for times in timings):
        yield


def _paced_turns():
    print(PACED_READY, flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            return
        yield


def compare(
    script: str,
    benchmark: str,
    seed_counts,
    steps: int,
    repeats: int = 1,
    budget_s: float = 0.0,
    paired: bool = True,
    one_device: bool = True,
    steps_run: int | None = None,
) -> dict:
    """Run ``script --child IMPL --seeds S --steps N`` (IMPL: jrl, purejaxrl) in fresh
    processes for each seed count S; returns the report (one dict for the JSON line)
    with per-seed-count speedup = our steps/s / PureJaxRL's, compile and memory ratios,
    and ``speedup`` = the smallest of them. Only ours without $PUREJAXRL_DIR.

    ``one_device`` (the default), on a host with more than one core: for S > 1 a third
    process, ``--child jrl_one_device``, runs ours on one CPU device, as PureJaxRL's
    runs, and the row adds ``speedup_one_device`` (its steps/s / PureJaxRL's): ours as
    recommended splits the seeds over one device per core, so ``speedup`` counts the
    cores PureJaxRL's single device program leaves idle.

    ``paired`` (the default): both processes compile, one after the other, then their
    timed calls alternate — ours then PureJaxRL's, then PureJaxRL's then ours, and so on
    — so that both are timed over the same minutes of a shared host whose speed drifts
    (three unpaired runs of the one-seed PPO benchmark within ten minutes on 2026-12-04
    gave 1.39x, 1.22x and 0.94x). Rounds: one, and more while fewer than ``repeats``
    have run and each implementation's calls total under ``budget_s`` seconds;
    ``speedup_rounds`` lists each round's PureJaxRL time / ours. Unpaired, each process
    makes its own calls by the same rule (:func:`time_compiled`) before the next starts
    (``gpu_seeds.sh``: two processes need not share one GPU's memory).
    ``steps_run``: the steps per seed the runs take for ``steps`` asked (PPO drops the
    remainder of a whole update), reported as ``steps_per_seed``; default ``steps``."""
    baseline = purejaxrl_dir() is not None
    report: dict = {
        "benchmark": benchmark,
        "steps_per_seed": steps if steps_run is None else steps_run,
        "paired": paired,
    }
    speedups = []
    for num_seeds in seed_counts:
        impls = ["jrl", "purejaxrl"] if baseline else ["jrl"]
        if one_device and num_seeds > 1 and usable_cores() > 1:
            impls.insert(1, "jrl_one_device")
        if paired:
            row = _paired_children(script, impls, num_seeds, steps, repeats, budget_s)
        else:
            timing = ["--repeats", str(repeats), "--repeat-budget-s", str(budget_s)]
            row = {impl: _child(script, impl, num_seeds, steps, timing) for impl in impls}
        if baseline:
            ours, theirs = row["jrl"], row["purejaxrl"]
            row["speedup"] = round(ours["steps_per_s"] / theirs["steps_per_s"], 2)
            if paired:
                pairs = zip(theirs["run_s_all"], ours["run_s_all"], strict=True)
                row["speedup_rounds"] = [round(t / o, 2) for t, o in pairs]
            if "jrl_one_device" in row:
                alone = row["jrl_one_device"]
                ratio = alone["steps_per_s"] / theirs["steps_per_s"]
                row["speedup_one_device"] = round(ratio, 2)
            row["compile_ratio"] = round(ours["compile_s"] / theirs["compile_s"], 2)
            row["memory_ratio"] = round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 2)
            if "peak_device_mb" in ours and "peak_device_mb" in theirs:
                ratio = ours["peak_device_mb"] / max(theirs["peak_device_mb"], 1)
                row["device_memory_ratio"] = round(ratio, 2)
            speedups.append(row["speedup"])
        report[f"seeds_{num_seeds}"] = row
    if speedups:
        report["speedup"] = min(speedups)
    return report


def add_timing_arguments(parser) -> None:
    """``--repeats``, ``--repeat-budget-s`` and ``--unpaired`` (see :func:`compare`) on a
    benchmark's argparse parser, and the children's hidden ``--paced``;
    :func:`compare_options` and :func:`timing_options` read them back."""

    def at_least(low: float, kind: type):
        def parse(text: str):
            value = kind(text)
            if value < low:
                raise argparse.ArgumentTypeError(f"{text} is below {low}")
            return value

        return parse

    parser.add_argument(
        "--repeats",
        type=at_least(1, int),
        default=5,
        help="timed calls per run, at most (>= 1; default 5)",
    )
    parser.add_argument(
        "--repeat-budget-s",
        type=at_least(0.0, float),
        default=30.0,
        help="no further timed call once the calls so far took this long (default 30 s: "
        "one call at 64 seeds, five at one)",
    )
    parser.add_argument(
        "--unpaired",
        action="store_true",
        help="time each implementation in its own process after the other's, instead of "
        "alternating their calls",
    )
    parser.add_argument(
        "--one-device",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run ours on one CPU device at more than one seed, as PureJaxRL runs "
        "(default: yes, on a host with more than one core)",
    )
    parser.add_argument("--paced", action="store_true", help=argparse.SUPPRESS)


def compare_options(args) -> dict:
    """The parsed timing options as :func:`compare`'s keywords."""
    return {
        "repeats": args.repeats,
        "budget_s": args.repeat_budget_s,
        "paired": not args.unpaired,
        "one_device": args.one_device,
    }


def timing_options(args) -> dict:
    """The parsed timing options as :func:`time_compiled`'s keywords (a child's)."""
    return {"repeats": args.repeats, "budget_s": args.repeat_budget_s, "paced": args.paced}


def _paired_children(
    script: str, impls: list[str], num_seeds: int, steps: int, repeats: int, budget_s: float
) -> dict:
    """{impl: the child's report} for ``impls`` timed by alternating calls (``compare``)."""
    with contextlib.ExitStack() as stack:
        children = {}
        for impl in impls:  # started one by one: each compiles alone
            stderr = stack.enter_context(tempfile.TemporaryFile("w+"))
            process = subprocess.Popen(
                [*_child_command(script, impl, num_seeds, steps), "--paced"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            stack.callback(process.kill)  # on an error; nothing once it has exited
            children[impl] = child = _Paced(impl, num_seeds, process, stderr)
            child.expect(PACED_READY)
        times: dict[str, list[float]] = {impl: [] for impl in impls}
        turns = _counted_turns(list(times.values()), repeats, budget_s)
        for rounds, _ in enumerate(turns):
            for impl in impls if rounds % 2 == 0 else impls[::-1]:
                times[impl].append(children[impl].run())
        return {impl: child.stop() for impl, child in children.items()}


class _Paced:
    """The controlling side of one ``--paced`` child (:func:`time_compiled`)."""

    def __init__(self, impl: str, num_seeds: int, process: subprocess.Popen, stderr):
        self.name = f"{impl} with {num_seeds} seeds"
        self.process, self.stderr = process, stderr

    def fail(self):
        self.process.kill()
        self.process.wait()
        self.stderr.seek(0)
        raise RuntimeError(f"{self.name} failed:\n{self.stderr.read()[-4000:]}")

    def expect(self, token: str) -> str:
        for line in self.process.stdout:
            if line.split()[:1] == [token]:
                return line
        self.fail()

    def run(self) -> float:
        try:
            self.process.stdin.write("run\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.fail()
        return float(self.expect(PACED_RAN).split()[1])

    def stop(self) -> dict:
        out, _ = self.process.communicate("stop\n")
        if self.process.returncode:
            self.fail()
        return json.loads(out.strip().splitlines()[-1])


def _child(
    script: str, impl: str, num_seeds: int, steps: int, timing: list[str] | None = None
) -> dict:
    command = [*_child_command(script, impl, num_seeds, steps), *(timing or [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{impl} with {num_seeds} seeds failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child_command(script: str, impl: str, num_seeds: int, steps: int) -> list[str]:
    """The argv of one benchmark child: ``script --child impl --seeds S --steps N``."""
    size = ["--seeds", str(num_seeds), "--steps", str(steps)]
    return [sys.executable, script, "--child", impl, *size]
