"""XLA's CPU backend set up for jrl runs: one XLA device per core, a flag that keeps
multi-device runs from growing in memory, and the compile options jrl compiles with.

On a CPU host, ``jrl.sweep.run_sweep(..., devices=jax.devices())`` spreads seeds over
XLA devices, and each device runs on a core of its own — but only if the process made
the CPU into several devices before JAX started its backend, which is what
:func:`use_cpu_cores` does::

    import jrl.host
    jrl.host.use_cpu_cores()      # before anything touches jax's backend
    import jax                     # jax.devices() -> [cpu:0, cpu:1, ...]

It also applies :data:`CPU_FLAGS`. Why: with jaxlib 0.10.2, a program running on two
or more CPU devices grows in resident memory for as long as it runs when XLA hands its
reductions to YNNPACK (``__ynn_fusion`` thunks of kind reduce): a ``lax.scan`` whose
body sums an array grew ~100 MB per 60k iterations on two devices and not at all on
one; ``MALLOC_ARENA_MAX=1`` stops it too, so it is glibc's per-thread malloc arenas
that keep growing. DQN on CartPole with 64 seeds on two devices ended 8% above
PureJaxRL's peak memory because of it. Taking reductions away from YNNPACK
(``--xla_cpu_experimental_ynn_fusion_type=-reduce``) stops the growth; dots keep
going to YNNPACK. Measured speed with it: PPO and DQN on CartPole within noise. It
changes XLA's fusions, so PPO and DQN runs with and without it differ in the last bits
and then, on chaotic tasks, in their episodes: compare runs made with the same flags
(``jrl.run_dir`` records ``XLA_FLAGS`` in meta.json).

:func:`compiler_options` is what jrl's own compiles (``jrl.sweep.run_sweep``,
``jrl.training``) pass to ``jax.jit``: on a CPU, LLVM optimisation level 1
(:data:`CPU_COMPILER_OPTIONS`). The products, reductions and loops that bound an RL run
here are library calls or simple loops that level 1 compiles as fast code; measured on
CartPole, PPO and DQN compile 10-20% faster (DQN at 64 seeds: 4.0 against 5.7 s) and run
at the same speed (within this host's noise). Results differ from a default compile in
the last bits, so compare runs compiled the same way.

:func:`use_default_compilation_cache` turns on JAX's persistent compilation cache for
the ``jrl`` command, in ``~/.cache/jrl/jax``, where the user chose none.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-reduce",)
"""XLA flags jrl recommends on CPU hosts (see the module docstring)."""

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"

CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""Per-compile XLA options jrl uses on CPU backends (see the module docstring)."""


def release_unused_memory() -> bool:
    """Hand the heap memory this process has freed back to the operating system (glibc's
    ``malloc_trim(0)``); False where that is not available (not glibc).

    Compiling leaves a lot of it behind: glibc keeps freed memory for reuse, and what
    XLA's compiler frees is mostly not reused by the run. Measured here, DQN on
    CartPole with 64 seeds on two devices: resident 738 MB right after compiling, 449
    MB after this; the run's own allocations then stay below the compile peak (peak
    740 MB, against 806 MB without it), at the same speed. jrl calls it after each
    compile of a run (``jrl.sweep.run_sweep``, ``jrl.training``)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def compiler_options() -> dict:
    """``jax.jit(..., compiler_options=...)`` for jrl's compiles on the default backend:
    :data:`CPU_COMPILER_OPTIONS` on a CPU, none elsewhere."""
    import jax

    return dict(CPU_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else {}


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0]


def read_xla_flags(flags: str) -> dict[str, str]:
    """An XLA_FLAGS string as {name: value}, as XLA reads it: the last of a repeated flag
    wins, so flags in another order or spacing read the same."""
    return {_flag_name(flag): flag.partition("=")[2] for flag in flags.split()}


def cpu_xla_flags(existing: str, num_devices: int) -> str:
    """``existing`` XLA_FLAGS with the device count set to ``num_devices`` (replacing
    any count already there) and each of :data:`CPU_FLAGS` added unless ``existing``
    sets that flag already (to any value: XLA would keep only the last one, so adding
    ours would silently undo the user's); other flags are kept as they were."""
    kept = [flag for flag in existing.split() if _flag_name(flag) != DEVICE_COUNT_FLAG]
    names = {_flag_name(flag) for flag in kept}
    added = [flag for flag in CPU_FLAGS if _flag_name(flag) not in names]
    return " ".join([*kept, f"{DEVICE_COUNT_FLAG}={num_devices}", *added])


def device_count_flag(flags: str) -> int | None:
    """The device count an XLA_FLAGS string sets (its last, as XLA reads it), or None."""
    counts = [flag for flag in flags.split() if _flag_name(flag) == DEVICE_COUNT_FLAG]
    if not counts:
        return None
    value = counts[-1].partition("=")[2]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"XLA_FLAGS sets {DEVICE_COUNT_FLAG} to {value!r}, not a count") from None


def usable_cores() -> int:
    """The cores this process may run on (``os.cpu_count()`` counts the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_cores(num_devices: int | None = None) -> int:
    """Make this process's CPU into ``num_devices`` XLA devices (default: the count the
    user set already — JAX's ``jax_num_cpu_devices`` (``JAX_NUM_CPU_DEVICES``), which JAX
    reads before ``XLA_FLAGS``, or the ``XLA_FLAGS`` device count — else one per core the
    process may run on: its CPU affinity, as Slurm's ``--cpus-per-task``, ``taskset``
    or a container's cpuset leave it) with :data:`CPU_FLAGS` (a flag ``XLA_FLAGS``
    sets already keeps its value), by setting both; returns the device count.

    Must run before JAX initialises its backend (before the first ``jax.devices()``,
    array or compile): XLA reads the flags once, so afterwards they would be ignored
    silently — this raises ``RuntimeError`` instead, unless what it would set is in
    place already (a second call asking for the same count).
    """
    import jax

    existing = os.environ.get("XLA_FLAGS", "")
    count = num_devices
    if count is None:
        configured = jax.config.jax_num_cpu_devices  # -1 when not set
        count = configured if configured > 0 else device_count_flag(existing)
        if count is None:
            count = usable_cores()
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"the device count must be a positive int, got {count!r}")
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        in_place = read_xla_flags(existing) == read_xla_flags(cpu_xla_flags(existing, count))
        if len(jax.devices("cpu")) == count and in_place:
            return count  # asked again for what is in place (a notebook cell run twice)
        raise RuntimeError(
            "jrl.host.use_cpu_cores() must run before JAX initialises its backend (the "
            "first jax.devices(), array or compile); call it at the top of the script"
        )
    names = {_flag_name(flag): flag for flag in existing.split()}
    for flag in CPU_FLAGS:
        if names.get(_flag_name(flag), flag) != flag:
            print(
                f"jrl: XLA_FLAGS sets {names[_flag_name(flag)]}, kept in place of jrl's "
                f"{flag} (see jrl.host: without it runs on several CPU devices grow in memory)",
                file=sys.stderr,
            )
    os.environ["XLA_FLAGS"] = cpu_xla_flags(existing, count)
    jax.config.update("jax_num_cpu_devices", count)

    found = len(jax.devices("cpu"))
    if found != count:
        raise RuntimeError(f"asked for {count} CPU devices, JAX has {found}")
    return count


COMPILATION_CACHE_MAX_BYTES = 2 * 2**30
"""The size past which the ``jrl`` command's compilation cache drops its least recently
used programs (JAX keeps every one by default)."""


def default_compilation_cache(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that turn on JAX's persistent compilation cache for the ``jrl``
    command where the user chose none, given the environment ``environ``:
    ``JAX_COMPILATION_CACHE_DIR`` naming ``$XDG_CACHE_HOME/jrl/jax`` (``~/.cache/jrl/jax``),
    made here, and ``JAX_COMPILATION_CACHE_MAX_SIZE`` (:data:`COMPILATION_CACHE_MAX_BYTES`)
    unless ``environ`` sets one. Empty where ``environ`` names a directory already (a
    cluster often does), turns the cache off (``JAX_ENABLE_COMPILATION_CACHE=false``), or
    where that directory cannot be made, written or locked in (a read-only home, a file
    system without ``flock``: the command compiles as before)."""
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return {}
    if environ.get("JAX_ENABLE_COMPILATION_CACHE", "true").strip().lower() in _FALSE:
        return {}
    home = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME", "~"), ".cache")
    path = Path(home).expanduser() / "jrl" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return {}
    if not os.access(path, os.W_OK | os.X_OK) or not _can_lock(path / ".lockfile"):
        return {}
    variables = {"JAX_COMPILATION_CACHE_DIR": str(path)}
    if "JAX_COMPILATION_CACHE_MAX_SIZE" not in environ:
        variables["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(COMPILATION_CACHE_MAX_BYTES)
    return variables


def _can_lock(path: Path) -> bool:
    """Whether the file system holding ``path`` takes ``flock``, which JAX's size-capped
    cache takes at every read and write (where it cannot, as on Lustre mounted without
    locks, each compile would warn twice and cache nothing)."""
    import fcntl

    try:
        with open(path, "a") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process holds it: locks work
                return True
            fcntl.flock(file, fcntl.LOCK_UN)
    except OSError:
        return False
    return True


_FALSE = ("n", "no", "f", "false", "off", "0")
"""What JAX reads as false in a boolean variable."""


def use_default_compilation_cache() -> str | None:
    """Set :func:`default_compilation_cache`'s variables in this process's environment
    and return the cache's directory, or None where it sets none. JAX reads them when it
    is imported, so this must come first (the ``jrl`` command's commands that compile
    call it before anything imports JAX, whose import takes ~1 s that a command refused
    for a misspelt agent does not pay); once JAX is imported it changes nothing.

    A program that compiled for a second or more (JAX's
    ``jax_persistent_cache_min_compile_time_secs``) is then read back by the next command
    that builds it — a resume, a rerun with another seed or hyperparameter values,
    ``jrl eval`` of another run of the same configuration — in a fraction of its compile
    time (the default one-seed PPO run on CartPole-v1: 1.6 against 5.5 s), and runs the
    same, bit for bit. ``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off."""
    if "jax" in sys.modules:
        return None
    variables = default_compilation_cache(os.environ)
    os.environ.update(variables)
    path = variables.get("JAX_COMPILATION_CACHE_DIR")
    if path is not None:
        _drop_damaged_entries_on_a_read_error(Path(path))
    return path


CACHE_READ_ERROR = "Error reading persistent compilation cache entry"
"""How JAX's warning of an entry it could not read begins."""


def drop_damaged_cache_entries(path: str | Path) -> list[Path]:
    """Remove the entries of the compilation cache in ``path`` that do not decompress,
    and return them: JAX writes an entry in place, so a process killed or out of disk
    while writing one leaves it half written, and JAX, which never replaces an entry,
    would warn and compile again at every later use. Holds the cache's lock, under
    which JAX writes, so an entry being written is not taken for a damaged one."""
    import filelock
    from jax._src.compilation_cache import decompress_executable

    path = Path(path)
    dropped = []
    with filelock.FileLock(path / ".lockfile", timeout=10):  # as long as JAX waits
        for entry in sorted(path.glob("*-cache")):
            try:
                decompress_executable(entry.read_bytes())
            except Exception:  # zlib's and zstandard's errors share no base class
                entry.unlink(missing_ok=True)
                path.joinpath(entry.name.removesuffix("-cache") + "-atime").unlink(missing_ok=True)
                dropped.append(entry)
    return dropped


def _drop_damaged_entries_on_a_read_error(path: Path) -> None:
    """After JAX warns that it could not read an entry of the cache in ``path`` (it then
    compiles the program), remove the damaged entries, so that this compile's result
    takes the place of one, and say so."""
    import warnings

    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        show(message, category, filename, lineno, file, line)
        if str(message).startswith(CACHE_READ_ERROR):
            try:
                dropped = drop_damaged_cache_entries(path)
            except Exception as error:  # raised here, it would end JAX's compile
                print(f"jrl: could not check the compilation cache in {path}: {error}",
                      file=sys.stderr)  # fmt: skip
                return
            if dropped:
                names = ", ".join(entry.name for entry in dropped)
                print(f"jrl: removed damaged entries of the compilation cache in {path}: "
                      f"{names} (compiled again)", file=sys.stderr)  # fmt: skip

    warnings.showwarning = showwarning
