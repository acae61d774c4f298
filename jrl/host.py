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
"""

from __future__ import annotations

import os

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


def cpu_xla_flags(existing: str, num_devices: int) -> str:
    """``existing`` XLA_FLAGS with the device count set to ``num_devices`` (replacing
    any count already there) and :data:`CPU_FLAGS` added where absent; other flags are
    kept as they were."""
    kept = [flag for flag in existing.split() if not flag.startswith(DEVICE_COUNT_FLAG)]
    added = [flag for flag in CPU_FLAGS if flag not in kept]
    return " ".join([*kept, f"{DEVICE_COUNT_FLAG}={num_devices}", *added])


def usable_cores() -> int:
    """The cores this process may run on (``os.cpu_count()`` counts the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_cores(num_devices: int | None = None) -> int:
    """Make this process's CPU into ``num_devices`` XLA devices (default: one per core
    it may run on — its CPU affinity, as Slurm's ``--cpus-per-task``, ``taskset`` or a
    container's cpuset leave it) with :data:`CPU_FLAGS`, by rewriting ``XLA_FLAGS``;
    returns the device count.

    Must run before JAX initialises its backend (before the first ``jax.devices()``,
    array or compile): XLA reads the flags once, so afterwards they would be ignored
    silently — this raises ``RuntimeError`` instead.
    """
    count = usable_cores() if num_devices is None else num_devices
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"num_devices must be a positive int, got {num_devices!r}")
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "jrl.host.use_cpu_cores() must run before JAX initialises its backend (the "
            "first jax.devices(), array or compile); call it at the top of the script"
        )
    os.environ["XLA_FLAGS"] = cpu_xla_flags(os.environ.get("XLA_FLAGS", ""), count)
    import jax

    found = len(jax.devices("cpu"))
    if found != count:
        raise RuntimeError(f"asked for {count} CPU devices, JAX has {found}")
    return count
