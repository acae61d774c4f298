"""jrl.host: XLA's CPU backend made into one device per core, with the flag that keeps
multi-device runs from growing in memory (checked against the growth itself)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys

import jax
import pytest

from jrl.host import (
    COMPILATION_CACHE_MAX_BYTES,
    CPU_COMPILER_OPTIONS,
    CPU_FLAGS,
    DEVICE_COUNT_FLAG,
    compiler_options,
    cpu_xla_flags,
    default_compilation_cache,
    device_count_flag,
    drop_damaged_cache_entries,
    use_cpu_cores,
)

# Two CPU devices, each summing its share of an array in a 20k-step lax.scan, run three
# times after a warm-up; prints the devices, whether YNNPACK got a reduction, and how
# much the process's resident memory grew over the three runs.
GROWTH_SCRIPT = """
import ctypes, json, sys
import jrl.host
if sys.argv[1] == "jrl":
    jrl.host.use_cpu_cores(2)
else:  # the same two devices, XLA's default flags
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

def run(x):
    def body(carry, _):
        return carry + 1e-3 * jnp.sum(jnp.tanh(carry), axis=-1, keepdims=True), None
    return jax.lax.scan(body, x, None, length=20_000)[0]

mesh = Mesh(jax.devices()[:2], ("d",))
sharded = jax.jit(jax.shard_map(run, mesh=mesh, in_specs=PartitionSpec("d"),
                                out_specs=PartitionSpec("d")))
x = jnp.ones((16, 128, 64))
compiled = sharded.lower(x).compile()
jax.block_until_ready(compiled(x))
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = resident_mb()
for _ in range(3):
    jax.block_until_ready(compiled(x))
print(json.dumps({"devices": jax.device_count(), "ynn_reduce": "reduce" in "".join(
    line for line in compiled.as_text().splitlines() if "__ynn_fusion" in line),
    "growth_mb": resident_mb() - before}))
"""


def test_flags_set_the_device_count_once_and_keep_other_flags():
    existing = f"--xla_dump_to=/tmp/x {DEVICE_COUNT_FLAG}=8 {CPU_FLAGS[0]}"
    flags = cpu_xla_flags(existing, 2).split()
    assert flags.count(f"{DEVICE_COUNT_FLAG}=2") == 1
    assert not any(flag == f"{DEVICE_COUNT_FLAG}=8" for flag in flags)
    assert "--xla_dump_to=/tmp/x" in flags
    assert all(flags.count(flag) == 1 for flag in CPU_FLAGS)
    assert cpu_xla_flags("", 3).split() == [f"{DEVICE_COUNT_FLAG}=3", *CPU_FLAGS]
    # A flag of ours the user set to another value keeps theirs: XLA reads the last one.
    theirs = "--xla_cpu_experimental_ynn_fusion_type=-dot"
    assert CPU_FLAGS == ("--xla_cpu_experimental_ynn_fusion_type=-reduce",)
    assert cpu_xla_flags(theirs, 2).split() == [theirs, f"{DEVICE_COUNT_FLAG}=2"]


def test_a_device_count_already_in_xla_flags_is_kept_unless_one_is_asked():
    """use_cpu_cores() replaced a count the user had set with one per core, silently."""
    script = "import jrl.host, jax; print(jrl.host.use_cpu_cores(), len(jax.devices()))"
    flags = f"{DEVICE_COUNT_FLAG}=3 --xla_cpu_experimental_ynn_fusion_type=-dot"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "XLA_FLAGS": flags},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["3", "3"]
    assert "XLA_FLAGS sets --xla_cpu_experimental_ynn_fusion_type=-dot, kept" in done.stderr
    # JAX's own setting, which JAX reads first: kept, and a count asked for wins over it
    # (both were a RuntimeError: "asked for 2 CPU devices, JAX has 3").
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    for asked, expected in (("", "3"), ("1", "1")):
        done = subprocess.run(
            [sys.executable, "-c", script.replace("use_cpu_cores()", f"use_cpu_cores({asked})")],
            env={**environment, "JAX_NUM_CPU_DEVICES": "3"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.stdout.split() == [expected, expected], done.stderr[-2000:]
    # Both set: JAX_NUM_CPU_DEVICES is the count (JAX reads it first), not XLA_FLAGS's 2.
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**environment, "JAX_NUM_CPU_DEVICES": "3", "XLA_FLAGS": f"{DEVICE_COUNT_FLAG}=2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["3", "3"], done.stderr[-2000:]
    assert device_count_flag(f"--xla_dump_to=/x {DEVICE_COUNT_FLAG}=4") == 4
    assert device_count_flag("--xla_dump_to=/x") is None
    with pytest.raises(ValueError, match="not a count"):
        device_count_flag(f"{DEVICE_COUNT_FLAG}=two")


def test_bad_counts_and_a_started_backend_are_refused():
    with pytest.raises(ValueError, match="positive int"):
        use_cpu_cores(0)
    jax.devices()  # this process's backend is up: the flags could no longer apply
    with pytest.raises(ValueError, match="positive int"):
        use_cpu_cores(True)  # an int, but no count of devices (refused as that first)
    with pytest.raises(RuntimeError, match="before JAX initialises its backend"):
        use_cpu_cores(2)


def test_a_second_call_asking_for_what_is_in_place_is_no_error():
    """A notebook cell that calls use_cpu_cores(2) run twice raised 'must run before JAX
    initialises its backend' though its two devices and flags were in place."""
    script = (
        "import jrl.host, jax\n"
        "jrl.host.use_cpu_cores(2); jax.devices()\n"
        "print(jrl.host.use_cpu_cores(2), jrl.host.use_cpu_cores())\n"
        "try:\n    jrl.host.use_cpu_cores(3)\nexcept RuntimeError as e:\n    print('refused')\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.stdout.split() == ["2", "2", "refused"], done.stderr[-2000:]
    # Two devices made without jrl's flags (JAX_NUM_CPU_DEVICES): not what it would set.
    script = (
        "import jrl.host, jax\njax.devices()\n"
        "try:\n    jrl.host.use_cpu_cores(2)\nexcept RuntimeError as e:\n    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env={**environment, "JAX_NUM_CPU_DEVICES": "2"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.split() == ["refused"], done.stderr[-2000:]


def test_make_test_counts_workers_without_cpu_affinity(tmp_path):
    """macOS's os module has no sched_getaffinity: the Makefile's worker count came out
    empty and `make test` ran `pytest -n  --dist ...`, which pytest refused."""
    from pathlib import Path

    site = tmp_path / "macos"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nfor name in ('sched_getaffinity', 'sched_setaffinity'):\n"
        "    if hasattr(os, name):\n        delattr(os, name)\n"
    )
    stamp = tmp_path / "installed"
    stamp.touch()
    done = subprocess.run(
        ["make", "-n", "test", f"BIN={Path(sys.executable).parent}", f"STAMP={stamp}"],
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    workers = min(4, os.cpu_count())
    assert f"pytest -q -n {workers} --dist loadfile tests" in done.stdout, done.stdout


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux's CPU affinity")
def test_one_device_per_core_this_process_may_use():
    """Under Slurm's --cpus-per-task or taskset a process may use fewer cores than the
    machine has: one device per machine core would run the extra devices' seeds on the
    same cores, each device's share taking as long as the whole."""
    script = (
        "import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "import jrl.host; print(jrl.host.use_cpu_cores(), os.cpu_count())"
    )
    environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    devices, machine_cores = map(int, done.stdout.split())
    assert devices == 1 and machine_cores == os.cpu_count() > 1  # the CI machine has 2


def test_compiler_options_are_the_cpu_ones_here_and_a_copy():
    assert jax.default_backend() == "cpu"
    options = compiler_options()
    assert options == CPU_COMPILER_OPTIONS
    options["xla_backend_optimization_level"] = 3
    assert compiler_options() == CPU_COMPILER_OPTIONS
    # XLA accepts them: a compile with them gives the same value as without.
    compiled = jax.jit(lambda x: x * 2.0 + 1.0, compiler_options=compiler_options())
    assert float(compiled(1.5)) == 4.0


def _growth(flags: str) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", GROWTH_SCRIPT, flags],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, glibc")
def test_two_device_runs_do_not_grow_with_jrl_flags():
    ours = _growth("jrl")
    assert ours["devices"] == 2 and not ours["ynn_reduce"]
    assert ours["growth_mb"] < 30, ours
    # The control: XLA's defaults hand the sum to YNNPACK and the process grows (about
    # 100 MB over these 60k iterations with jaxlib 0.10.2). If this starts failing
    # after a jaxlib upgrade, XLA fixed the growth and CPU_FLAGS may be dropped. How much
    # it grows depends on how the threads meet (5 to 90 MB on a host busy with other
    # work): up to three tries.
    for _ in range(3):
        default = _growth("default")
        assert default["devices"] == 2 and default["ynn_reduce"]
        if default["growth_mb"] > 50:
            break
    assert default["growth_mb"] > 50, default


RELEASE_SCRIPT = """
import json
import jax
import jrl.host
from jrl.agents.ppo import PPOConfig, PPOHParams, make_train
from jrl.envs import make

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

env, params = make("CartPole-v1")
train = make_train(PPOConfig(num_steps=16, total_timesteps=128), env, params)
jax.jit(train).lower(jax.random.key(0), PPOHParams()).compile()
before = resident_mb()
released = jrl.host.release_unused_memory()
print(json.dumps({"released": released, "before": before, "after": resident_mb()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, glibc")
def test_release_unused_memory_gives_back_what_compiling_freed(no_compilation_cache):
    """A fresh process that has compiled a small PPO run holds ~240 MB of freed compiler
    memory that glibc keeps; release_unused_memory hands it back."""
    done = subprocess.run(
        [sys.executable, "-c", RELEASE_SCRIPT], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["released"] is True
    assert result["after"] < result["before"] - 100, result


def test_device_count_flag_is_the_last_one_as_xla_reads_it():
    from jrl.host import DEVICE_COUNT_FLAG, device_count_flag

    assert device_count_flag(f"{DEVICE_COUNT_FLAG}=2 --xla_dump_to=/x {DEVICE_COUNT_FLAG}=5") == 5


def test_compiler_options_are_none_off_the_cpu(monkeypatch):
    from jrl.host import compiler_options

    for backend in ("gpu", "tpu", "METAL"):  # XLA:CPU's options on none of them
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert compiler_options() == {}


def test_xla_flags_without_a_value_are_read():
    """A boolean flag may be written without '=' (XLA reads it as true)."""
    from jrl.host import read_xla_flags

    flags = "--xla_cpu_foo --xla_dump_to=/x"
    assert read_xla_flags(flags) == {"--xla_cpu_foo": "", "--xla_dump_to": "/x"}


def test_the_jrl_commands_compilation_cache_is_its_own_only_where_none_is_chosen(
    tmp_path, monkeypatch
):
    """`jrl` keeps its compiles in ~/.cache/jrl/jax ($XDG_CACHE_HOME first), capped in
    size; a directory the user names, a cache turned off or a home it cannot write in
    leave JAX as it is."""
    xdg = tmp_path / "xdg"
    made = xdg / "jrl" / "jax"
    assert default_compilation_cache({"XDG_CACHE_HOME": str(xdg), "HOME": "/nowhere"}) == {
        "JAX_COMPILATION_CACHE_DIR": str(made),
        "JAX_COMPILATION_CACHE_MAX_SIZE": str(COMPILATION_CACHE_MAX_BYTES),
    }
    assert made.is_dir()
    home = {"HOME": str(tmp_path / "home"), "JAX_COMPILATION_CACHE_MAX_SIZE": "-1"}
    below_home = tmp_path / "home" / ".cache" / "jrl" / "jax"
    assert default_compilation_cache(home) == {"JAX_COMPILATION_CACHE_DIR": str(below_home)}
    for on in ("1", "true", "Yes"):
        assert default_compilation_cache({**home, "JAX_ENABLE_COMPILATION_CACHE": on})
    for off in ("0", "false", "False", "off", "no"):
        assert default_compilation_cache({**home, "JAX_ENABLE_COMPILATION_CACHE": off}) == {}
    assert default_compilation_cache({**home, "JAX_COMPILATION_CACHE_DIR": "/theirs"}) == {}
    (tmp_path / "a_file").write_text("")
    assert default_compilation_cache({"XDG_CACHE_HOME": str(tmp_path / "a_file")}) == {}
    # Where a lock is held, locks work; where flock fails (Lustre without locks), JAX's
    # size-capped cache would warn at every compile and cache nothing: no cache.
    for error, works in ((BlockingIOError, True), (OSError(errno.ENOLCK, "No locks"), False)):

        def failing(*args, error=error):
            raise error

        monkeypatch.setattr(fcntl, "flock", failing)
        assert bool(default_compilation_cache(home)) is works


def test_damaged_cache_entries_are_dropped_and_whole_ones_kept(tmp_path):
    """An entry cut short (a kill or a full disk while JAX wrote it) is removed with its
    access stamp; a whole one stays."""
    from jax._src.compilation_cache import compress_executable

    entry = compress_executable(bytes(range(256)) * 64)
    for name, content in (("whole", entry), ("cut", entry[: len(entry) // 2])):
        (tmp_path / f"jit_{name}-0123-cache").write_bytes(content)
        (tmp_path / f"jit_{name}-0123-atime").write_bytes(b"\0" * 8)
    assert drop_damaged_cache_entries(tmp_path) == [tmp_path / "jit_cut-0123-cache"]
    assert sorted(path.name for path in tmp_path.glob("jit_*")) == [
        "jit_whole-0123-atime",
        "jit_whole-0123-cache",
    ]
