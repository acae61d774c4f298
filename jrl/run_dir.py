"""The run directory: what a run writes so that it can be trusted, read and resumed.

    RUN_DIR/
      config.yaml      the resolved run configuration (agent, env, static config,
                       hyperparameters, seeds, chunking)
      meta.json        git commit and dirty flag, package versions, devices, XLA
                       flags and compiler options, seeds, command line, start time
      metrics.jsonl    one row per logged update per grid point per seed
      summary.json     final aggregates, rewritten after every chunk
      checkpoints/     orbax checkpoints (``jrl.checkpoint``)

Every whole file is written atomically (a temporary file in the same directory, then
``os.replace``). ``metrics.jsonl`` is appended, flushed and fsynced once per chunk; a
process killed in the middle of an append can leave a torn last line, which
:func:`read_rows` skips and :func:`truncate_rows` removes on resume.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "orbax-checkpoint", "envpool", "jrl")


# mkstemp makes files only their owner can read; a run directory is for sharing, so
# whole files get the mode open() would give them (0o666 less the umask, read once
# here, as reading it means setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: str | Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (or its pieces, in order) to ``path`` so that a reader sees the old
    file or the new one (a temporary file beside it, fsynced, then renamed over it)."""
    path = Path(path)
    pieces = [data] if isinstance(data, bytes) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:  # closes the descriptor whatever fails
            os.fchmod(file.fileno(), 0o666 & ~_UMASK)
            file.writelines(pieces)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temporaries(path: str | Path) -> list[Path]:
    """The temporary files :func:`write_bytes_atomic` leaves beside ``path`` when a kill
    cuts it short."""
    path = Path(path)
    return list(path.parent.glob(f".{path.name}.*.tmp"))


def write_yaml(path: str | Path, data: Any) -> None:
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot, no exponent sign) as a string; this loader reads
    it as the float a person means, as YAML 1.2 and JSON do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class RunInUseError(RuntimeError):
    """Another process is running (or resuming) the run in this directory."""


def load_yaml(text: str) -> Any:
    """Parse YAML text (``1e-3`` is a float)."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path) -> Any:
    return load_yaml(Path(path).read_text(encoding="utf-8"))


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON atomically (:func:`write_text_atomic`), indented for a
    reader, or on one line without spaces (``indent=None``: a file only jrl reads); numpy
    and jax arrays and scalars become lists and numbers, mappings dicts, tuples lists,
    and NaN and infinities ``null`` (strict JSON has no such numbers)."""
    separators = None if indent is not None else (",", ":")
    text = json.dumps(_jsonable(data), indent=indent, separators=separators, allow_nan=False)
    write_text_atomic(path, text + "\n")
    return Path(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy and jax arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_key(key: Any) -> Any:
    """A key json.dumps takes as it is (str, int, float, bool, None), or its str."""
    return key if key is None or isinstance(key, str | int | float | bool) else str(key)


def git_state(root: str | Path | None = None, tracked: str = "__init__.py") -> dict:
    """{"commit": sha or None, "dirty": bool or None} of the checkout holding ``root``
    (jrl's own package directory by default), where it tracks ``tracked`` (a file in
    ``root``): a jrl installed into a virtual environment inside the researcher's own
    repository is not that repository's code, so nothing is taken from it there. A jrl
    installed from a git URL (``pip install git+...``) has no checkout: its commit is
    the one pip recorded (``direct_url.json``), its dirty flag None.

    A checkout another user owns (a container's root reading a mounted checkout, a
    shared one on a cluster) git refuses ("dubious ownership"): reading it regardless
    would run what that user's configuration names (an fsmonitor), as whoever runs jrl.
    Its commit stays None, and ``git_refused`` says why and how to let git read it.
    """
    own = root is None
    root = Path(root or Path(__file__).resolve().parent)
    refused = False

    def git(*args: str) -> str | None:
        nonlocal refused
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        # The config key names the refusal in every language and git version since 2.35.2
        # ("dubious ownership", before it "unsafe repository").
        refused |= done.returncode != 0 and "safe.directory" in done.stderr
        return done.stdout.strip() if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "--", tracked) is None:
        state = {"commit": installed_commit() if own else None, "dirty": None}
        if refused and state["commit"] is None:
            state["git_refused"] = (
                f"git refused to read the repository holding {root}, which another user "
                "owns, so no commit is recorded (the source digest still names the code); "
                "if that repository is jrl's checkout, git config --global --add "
                "safe.directory DIR (its top level) lets the next run record it"
            )
        return state
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def installed_commit(distribution: str = "jrl") -> str | None:
    """The commit pip recorded when it installed ``distribution`` from a git URL
    (PEP 610's ``direct_url.json``: ``vcs_info.commit_id``); None otherwise."""
    try:
        installed = importlib.metadata.distribution(distribution)
        text = installed.read_text("direct_url.json")
        commit = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except (importlib.metadata.PackageNotFoundError, ValueError, AttributeError):
        return None
    if distribution == "jrl":  # only if it is the jrl running (not a copy on PYTHONPATH)
        here = Path(__file__).resolve().parent / "__init__.py"
        if Path(installed.locate_file("jrl/__init__.py")).resolve() != here:
            return None
    return commit if isinstance(commit, str) and commit else None


def source_digest(root: str | Path | None = None) -> str:
    """A SHA-256 (16 hex digits) of the Python files under ``root`` (jrl's own package
    by default), their paths and contents: what code ran, however jrl was installed (a
    wheel or a copy records no commit)."""
    root = Path(root or Path(__file__).resolve().parent)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def package_versions(packages: Iterable[str] = PACKAGES) -> dict:
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; on macOS ``sysctl``'s brand string, as
    ``platform.processor()`` says only "arm" or "i386" there; elsewhere that, which may
    be empty): XLA:CPU picks its kernels by instruction set, so runs on other CPUs may
    differ in the last bits."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return platform.processor()


def compilation_cache_dir() -> str | None:
    """The directory of JAX's persistent compilation cache where this process uses one
    (``JAX_COMPILATION_CACHE_DIR``; a cluster often sets it), else None: a program read
    from it takes a fraction of its compile time."""
    import jax

    if not jax.config.jax_enable_compilation_cache:
        return None
    return jax.config.jax_compilation_cache_dir or None


def provenance() -> dict:
    """What this process runs with: git state and a digest of jrl's source, package
    versions, Python, devices and
    the host's CPU, the XLA flags and jrl's compiler options (these change the numbers'
    last bits), JAX's persistent compilation cache (the directory, or None: where it is
    set, a compile time may be a disk read), command line and the time."""
    import jax

    from jrl.host import compiler_options

    return {
        **git_state(),
        "source": source_digest(),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "devices": [str(device) for device in jax.devices()],
        "device_kinds": sorted({device.device_kind for device in jax.devices()}),
        "cpu": cpu_model(),
        "host": platform.node(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compiler_options": compiler_options(),
        "compilation_cache": compilation_cache_dir(),
        "argv": list(sys.argv),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_meta(run_dir: str | Path, seeds: list[int], extra: dict | None = None) -> dict:
    """Write meta.json (provenance of the run) and return it. ``seeds``: the runs' seed
    indices (run ``i`` trains from ``jax.random.split(jax.random.key(seed), S)[i]``,
    ``seed`` the root, which ``jrl train`` records in ``extra``)."""
    meta = {**provenance(), "seeds": list(seeds), **(extra or {})}
    write_json(Path(run_dir) / "meta.json", meta)
    return meta


def read_meta(run_dir: str | Path) -> dict:
    """The run's meta.json ({} where there is none)."""
    path = Path(run_dir) / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_summary(run_dir: str | Path) -> dict | None:
    """The run's summary.json (None where there is none)."""
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


NUMBERS_DECIDED_BY = (
    "commit", "dirty", "source", "versions", "cpu", "devices", "device_kinds", "xla_flags",
    "compiler_options",
)  # fmt: skip
"""The provenance fields whose change may change a run's numbers (README, "Same seed,
same numbers"); ``dirty`` only as far as it goes (two dirty trees may differ)."""


def _setting_changes(before: dict, now: dict) -> list[str]:
    changed = []
    for name in NUMBERS_DECIDED_BY:
        old, new = before.get(name), now.get(name)
        if old is None or new is None:
            continue  # one of them did not record it (an older jrl, no git checkout)
        if name == "xla_flags":
            from jrl.host import read_xla_flags

            if read_xla_flags(old) != read_xla_flags(new):
                changed.append(f"XLA_FLAGS: {old!r} -> {new!r}")
            continue
        if name == "versions":  # the packages both recorded, and only those that differ
            both = [k for k in old if old[k] is not None and new.get(k) is not None]
            old, new = ({k: d[k] for k in both if old[k] != new[k]} for d in (old, new))
        if _jsonable(old) != _jsonable(new):
            changed.append(f"{name}: {old!r} -> {new!r}")
    return changed


def settings_of_runs(run_dirs: Sequence[str | Path]) -> tuple[dict, dict[str, list[str]]]:
    """What decided each run's numbers, for a comparison of runs (``jrl eval A B``,
    ``jrl plot A B``): ({run_dir: its :data:`NUMBERS_DECIDED_BY` fields, as meta.json
    recorded them at the run's start}, {run_dir: what of them differs from the first
    run's, as "name: first's -> this run's"} for each run that differs). Fields a run did
    not record (an older jrl, no git checkout) are not compared."""
    settings = {}
    for run_dir in run_dirs:
        meta = read_meta(run_dir)
        settings[str(run_dir)] = {name: meta.get(name) for name in NUMBERS_DECIDED_BY}
    runs = list(settings.items())
    first = runs[0][1] if runs else {}
    differences = {
        run: changes for run, setting in runs[1:] if (changes := _setting_changes(first, setting))
    }
    return settings, differences


def note_setting_differences(command: str, run_dirs: Sequence[str | Path]) -> dict:
    """Say on stderr which runs of a comparison were made with other code, versions or
    devices than the first (their numbers may differ for that alone); returns each
    run's settings (:func:`settings_of_runs`)."""
    settings, differences = settings_of_runs(run_dirs)
    for run, changes in differences.items():
        print(
            f"jrl {command}: {run} was trained with other settings than {run_dirs[0]}: "
            + "; ".join(changes),
            file=sys.stderr,
        )
    return settings


def record_resume(run_dir: str | Path, from_update: int) -> list[str]:
    """Add this process's provenance to meta.json's ``resumes`` list (the code and
    versions a resumed run continued with may differ from those it began with).
    Returns what of :data:`NUMBERS_DECIDED_BY` differs from the last process that
    brought the run closer to ``from_update`` (its start, or a resume that checkpointed
    before the next began; none at update 0), as "name: before -> now"."""
    meta = read_meta(run_dir)
    resumes = meta.setdefault("resumes", [])
    now = {**provenance(), "from_update": from_update}
    segments = [meta, *resumes]
    starts = [0] + [entry.get("from_update", 0) for entry in resumes] + [from_update]
    ran = [entry for i, entry in enumerate(segments) if starts[i + 1] > starts[i]]
    resumes.append(now)
    write_json(Path(run_dir) / "meta.json", meta)
    return _setting_changes(ran[-1], now) if ran else []


def append_rows(path: str | Path, rows: Iterable[dict]) -> None:
    """Append JSON lines and make them durable (flush + fsync) before returning; NaN and
    infinities are written as null, as :func:`write_json` writes them."""
    lines = "".join(json.dumps(_jsonable(row), allow_nan=False) + "\n" for row in rows)
    with open(path, "a") as file:
        file.write(lines)
        file.flush()
        os.fsync(file.fileno())


def iter_rows(path: str | Path) -> Iterator[dict]:
    """The complete rows of a JSONL file, one at a time (a file of millions of rows is
    never held whole); a torn last line (a write cut by a kill) is skipped. A malformed
    line elsewhere raises, naming its line number."""
    return (row for _, row in _iter_lines(path))


def read_rows(path: str | Path) -> list[dict]:
    """:func:`iter_rows` as a list."""
    return list(iter_rows(path))


def _iter_lines(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(line, row) of each complete row, as :func:`iter_rows` reads them."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield line, json.loads(line)
            except json.JSONDecodeError as error:
                if not line.endswith("\n"):  # the last line, without its newline: torn
                    return
                raise ValueError(f"{path}:{number}: not a JSON row ({error})") from None


def _lines_from_the_end(file, size: int, block: int = 1 << 16) -> Iterator[tuple[int, bytes]]:
    """(offset, line with its newline) of each line of the binary ``file`` of ``size``
    bytes, the last first, read back a block at a time."""
    pending = b""  # the start of the file's bytes after this block: part of a line
    position = size
    while position > 0:
        start = max(0, position - block)
        file.seek(start)
        data = file.read(position - start) + pending
        position = start
        starts = [0] + [newline.end() for newline in re.finditer(b"\n", data)]
        ends = [*starts[1:], len(data)]
        first = 0 if start == 0 else 1  # a block's first line may begin in the one before
        for i in reversed(range(first, len(starts))):
            if ends[i] > starts[i]:
                yield start + starts[i], data[starts[i] : ends[i]]
        pending = data[: starts[1]] if start > 0 and len(starts) > 1 else data
        if start == 0:
            return


def truncate_rows(path: str | Path, keep: Callable[[dict], bool]) -> int:
    """Cut ``path`` in place after its last complete row for which ``keep`` holds, and
    return how many rows after it were dropped (a torn last line goes too, uncounted).
    Rows are appended in order, so those a resume drops (past its checkpoint) end the
    file: only they are read, from the end, and a long run's file (millions of rows) is
    neither read whole nor copied. A kept last line without its newline gets one, so the
    next append starts a line of its own."""
    path = Path(path)
    if not path.exists():
        return 0
    dropped = 0
    with open(path, "r+b") as file:
        size = file.seek(0, os.SEEK_END)
        cut, ended = size, True
        for offset, line in _lines_from_the_end(file, size):
            if not line.strip():
                cut = offset
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                if not line.endswith(b"\n"):  # the last line, without its newline: torn
                    cut = offset
                    continue
                raise ValueError(f"{path}: byte {offset}: not a JSON row ({error})") from None
            if keep(row):
                ended = line.endswith(b"\n")
                break
            dropped += 1
            cut = offset
        if cut == size and ended:
            return 0
        file.truncate(cut)
        if not ended:
            file.seek(cut)
            file.write(b"\n")
        file.flush()
        os.fsync(file.fileno())
    return dropped
