"""Shared test set-up."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# A test suite started as a background job (`bash .ci/run &`, nohup) begins with SIGINT
# ignored, and so would every `jrl train` it starts: jrl leaves an ignored SIGINT
# alone, as a background job should. The tests of Ctrl-C need it heard, in this
# process (jrl.interrupts) and in the ones it starts (a caught signal is reset to its
# default in a child, where Python installs its own handler; an ignored one stays so).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# One compile of a program serves every test and `jrl` process of the session that
# builds it again (the same small run in several files, `jrl eval` after `jrl train`, a
# killed run's resume): JAX's persistent compilation cache, in a directory this process
# makes before xdist starts its workers (they and every process a test starts inherit
# the environment) and removes at the end. A size limit makes JAX lock the directory
# while it reads or writes an entry. Programs with host callbacks (progress) are not
# cached. A test about compiling itself takes the `no_compilation_cache` fixture.
# The directory's name holds the maker's process id: a session killed before its end
# leaves its directory, which the next session removes.
CACHE_DIR_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
CACHE_DIR_PREFIX = "jrl-tests-jax-cache-"


def remove_abandoned_cache_dirs(parent: str) -> None:
    """Remove the session caches under ``parent`` whose making process has ended."""
    for path in Path(parent).glob(f"{CACHE_DIR_PREFIX}*-*"):
        maker = path.name.removeprefix(CACHE_DIR_PREFIX).split("-", 1)[0]
        if not maker.isdigit():
            continue
        try:
            os.kill(int(maker), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


_MADE_CACHE_DIR = None
if CACHE_DIR_VARIABLE not in os.environ:
    remove_abandoned_cache_dirs(tempfile.gettempdir())
    _MADE_CACHE_DIR = tempfile.mkdtemp(prefix=f"{CACHE_DIR_PREFIX}{os.getpid()}-")
    os.environ[CACHE_DIR_VARIABLE] = _MADE_CACHE_DIR
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 * 2**30))


# Every program compiles as jrl compiles its runs on a CPU (jrl.host.CPU_COMPILER_OPTIONS,
# which run_sweep, `jrl train` and the benchmarks pass): tests that jit a program
# themselves (a run written out by hand, a sweep inside jit) would otherwise compile at
# XLA's default level, 1.6x slower (a small PPO run: 6.9 against 4.3 s), and the suite
# is mostly compiling. Set in XLA_FLAGS before any backend starts, so the processes tests
# start inherit it; a level already in XLA_FLAGS is kept.
OPTIMIZATION_LEVEL_FLAG = "--xla_backend_optimization_level"
if OPTIMIZATION_LEVEL_FLAG not in os.environ.get("XLA_FLAGS", ""):
    from jrl.host import CPU_COMPILER_OPTIONS

    level = CPU_COMPILER_OPTIONS["xla_backend_optimization_level"]
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} {OPTIMIZATION_LEVEL_FLAG}={level}".strip()


def pytest_unconfigure(config):
    if _MADE_CACHE_DIR is not None:  # only the process that made it (xdist's controller)
        shutil.rmtree(_MADE_CACHE_DIR, ignore_errors=True)


@pytest.fixture
def no_compilation_cache(monkeypatch):
    """This test's programs are compiled, here and in the processes it starts, not read
    from the session's persistent compilation cache."""
    import jax
    from jax._src import compilation_cache  # whether the cache is used is decided once

    monkeypatch.delenv(CACHE_DIR_VARIABLE, raising=False)
    monkeypatch.setenv("JAX_ENABLE_COMPILATION_CACHE", "false")  # nor the jrl command's own
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


@pytest.fixture
def compilations():
    """A list that receives one entry per program XLA built while the test runs:
    compiled, or read from the persistent compilation cache (JAX times both as one)."""
    import jax

    events = []

    def built(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(built)
    yield events
    jax.monitoring.unregister_event_duration_listener(built)


@pytest.fixture
def saved_figures(monkeypatch):
    """``capture(module, name) -> figures``: the matplotlib figures handed to the saving
    function ``module.name`` from then on, in order (each still saved), so that a test
    reads a figure's axes, lines and labels rather than its pixels."""

    def capture(module, name):
        figures = []
        save = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda fig, *a, **k: figures.append(fig) or save(fig, *a, **k)
        )
        return figures

    return capture
