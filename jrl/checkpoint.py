"""Checkpoints of a whole run state (orbax-checkpoint), with checks that fail clearly.

A checkpoint is ``CHECKPOINT_DIR/chunk_<n>/`` written by orbax's
``StandardCheckpointer`` (it writes to a temporary directory and renames it when
complete, so a kill leaves the previous checkpoint intact), plus
``CHECKPOINT_DIR/latest.json`` naming the newest complete one and describing what it
holds: a fingerprint of the run configuration and the path, shape and dtype of every
leaf. Each checkpoint's record is also kept beside it (``chunk_<n>.json``), so a
missing or damaged latest.json falls back to the newest of those. :func:`restore`
compares that description with the state it is asked to fill, and the checkpoint's
files with their sizes and CRC-32s recorded at the save, and raises
:class:`CheckpointError` naming the difference — a checkpoint of another
configuration, or a file missing, cut short or changed since — before any array is
read.

Typed PRNG keys are stored as their raw ``key_data`` and wrapped again on restore;
empty arrays (which orbax refuses) as one zero, rebuilt from the description.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jrl.run_dir import write_json

LATEST = "latest.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored into the requested state, and why."""


class MismatchError(CheckpointError):
    """A checkpoint (or run) of another configuration or state structure than the one
    asked for: intact, but not this run's as this jrl sees it."""


def describe(state: Any) -> dict[str, list]:
    """{leaf path: [shape, dtype]} of a pytree of arrays or of ``jax.ShapeDtypeStruct``
    (typed keys: their key data)."""
    state = jax.tree.map(lambda x: _key_data(x) if _is_key(x) else x, state)
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {
        jax.tree_util.keystr(path): [list(np.shape(leaf)), str(np.asarray(leaf).dtype)]
        if not hasattr(leaf, "dtype")
        else [list(leaf.shape), str(leaf.dtype)]
        for path, leaf in leaves
    }


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _key_data(keys: Any) -> Any:
    """A typed key array's key data, or for an abstract one its shape and dtype."""
    if isinstance(keys, jax.ShapeDtypeStruct):
        return jax.eval_shape(jax.random.key_data, keys)
    return jax.random.key_data(keys)


def _to_storable(state: Any) -> Any:
    """Typed keys -> their key data; empty arrays (orbax refuses them) -> one zero.
    Abstract leaves (``jax.ShapeDtypeStruct``) stay abstract."""

    def storable(x):
        x = _key_data(x) if _is_key(x) else x
        if math.prod(np.shape(x)):
            return x
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct((1,), x.dtype)
        return jnp.zeros((1,), x.dtype)

    return jax.tree.map(storable, state)


def save(directory: str | Path, chunk: int, state: Any, info: dict, keep: int = 2) -> Path:
    """Save ``state`` as ``directory/chunk_<chunk>``, wait for it, and point latest.json
    at it (``info``: JSON-able, e.g. the config fingerprint and host-side counters,
    stored beside the state's description); older checkpoints beyond ``keep`` go."""
    saver = Saver(directory, keep)
    saver.save(chunk, state, info)
    saver.close()
    return saver.directory / f"chunk_{chunk:08d}"


def check_path(path: str | Path) -> None:
    """A ValueError where orbax cannot keep checkpoints under ``path``: one holding '['
    (orbax globs the directory when it finishes a checkpoint, finds nothing to merge
    under "exp[0]", and the checkpoint it leaves cannot be read back), and one whose
    name on disk is not its UTF-8 (a non-ASCII path under a locale that is not UTF-8:
    tensorstore names files in UTF-8, so the checkpoint's arrays went to another
    directory, or the first save failed)."""
    if "[" in str(path):
        raise ValueError(
            f"{path}: a checkpoint directory's path cannot hold '[' (orbax reads it as a glob "
            "pattern when it finishes a checkpoint, and what it wrote there could not be "
            "read back); rename the directory or choose another"
        )
    try:
        utf8 = str(path).encode("utf-8")
    except UnicodeEncodeError:  # bytes the locale could not decode (surrogate escapes)
        utf8 = None
    if utf8 != os.fsencode(str(path)):
        encoding = sys.getfilesystemencoding()
        fix = (
            "rename the directory (its name on disk is not UTF-8: made under another "
            "locale) or choose another"
            if encoding.lower().replace("-", "") == "utf8"
            else f"this process names files in {encoding} (its locale): run under a UTF-8 "
            "locale (LC_ALL=C.UTF-8, or PYTHONUTF8=1) or choose an ASCII path"
        )
        raise ValueError(
            f"{str(path)!r}: a checkpoint directory's path must be named in UTF-8, as orbax "
            f"writes the checkpoint's arrays there by their UTF-8 name; {fix}"
        )


class Snapshot(NamedTuple):
    """A run state copied to host memory as it will be stored (``arrays``), and the
    description of the state it came from (``leaves``, see :func:`describe`)."""

    arrays: Any
    leaves: dict


def snapshot(state: Any) -> Snapshot:
    """Copy ``state`` to host memory (waiting for it to be computed), so its device
    buffers may be donated to the next computation at once."""
    arrays = jax.tree.map(lambda x: np.array(x, copy=True), _to_storable(state))
    return Snapshot(arrays, describe(state))


class Saver:
    """Checkpoints written in the background while training goes on.

    ``save`` takes a :class:`Snapshot` (or a state, copied to host memory first),
    finishes the previous save — only then is latest.json pointed at it — and starts
    writing this one. ``close`` finishes the last. A kill at any moment leaves
    latest.json naming a complete checkpoint."""

    def __init__(self, directory: str | Path, keep: int = 2):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive int (checkpoints kept), got {keep!r}")
        self.directory = Path(directory).resolve()
        check_path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.recorded: int | None = None  # the chunk count of the last save confirmed
        self._checkpointer = ocp.StandardCheckpointer()
        self._pending: dict | None = None

    def save(self, chunk: int, state: Any, info: dict) -> None:
        taken = state if isinstance(state, Snapshot) else snapshot(state)
        self.wait()
        path = self.directory / f"chunk_{chunk:08d}"
        if path.exists():
            shutil.rmtree(path)
        self._checkpointer.save(path, taken.arrays)
        self._pending = {"chunk": chunk, "path": path.name, "info": info, "leaves": taken.leaves}

    def wait(self) -> None:
        """Finish the save under way (if any) and point latest.json at it."""
        if self._pending is None:
            return
        self._checkpointer.wait_until_finished()
        newest = self._pending["path"]
        if not (self.directory / newest).is_dir():
            # The save was cut short (a second Ctrl-C can end orbax's wait early): leave
            # latest.json naming the complete checkpoint before it.
            print(
                f"jrl: the checkpoint {newest} was not finished; latest.json keeps the "
                "one before it",
                file=sys.stderr,
            )
            self._pending = None
            return
        self._pending["files"] = _file_digests(self.directory / newest)
        # One line: a sweep's summary holds a few numbers per grid point and seed, which
        # indented JSON triples in size, written twice per chunk.
        write_json(self.directory / f"{newest}.json", self._pending, indent=None)
        write_json(self.directory / LATEST, self._pending, indent=None)
        self.recorded = self._pending["chunk"]
        self._pending = None
        for old in finished_checkpoints(self.directory)[: -self.keep]:
            if old.name != newest:
                old.with_name(f"{old.name}.json").unlink(missing_ok=True)
                shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        self.wait()
        self._checkpointer.close()


def _chunk_count(path: Path) -> int | None:
    """The chunk count a checkpoint directory is named by (None for another name)."""
    digits = path.name.removeprefix("chunk_")
    return int(digits) if digits.isdigit() else None


def finished_checkpoints(directory: Path) -> list[Path]:
    """The checkpoint directories orbax finished (it writes to a temporary name first),
    oldest first (by count: past 10^8, "chunk_100000000" sorts before "chunk_99999999"
    as text)."""
    finished = [p for p in directory.glob("chunk_*") if _chunk_count(p) is not None and p.is_dir()]
    return sorted(finished, key=_chunk_count)


def _crc32(file: Path) -> int:
    crc = 0
    with open(file, "rb") as stream:
        while block := stream.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def _file_digests(path: Path) -> dict[str, list[int]]:
    """{file under the checkpoint directory ``path``: [size in bytes, CRC-32]}."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {f.relative_to(path).as_posix(): [f.stat().st_size, _crc32(f)] for f in files}


def _check_files(directory: Path, record: dict) -> None:
    """Raise CheckpointError if a file of ``record``'s checkpoint is missing or differs
    from what was saved (a record from before they were recorded passes), naming the
    newest earlier recorded checkpoint to resume from instead."""
    path = directory / record["path"]
    for name, (size, crc) in record.get("files", {}).items():
        try:
            on_disk = (path / name).stat().st_size
            if on_disk != size:
                problem = f"has {on_disk} bytes, {size} when it was saved"
            elif _crc32(path / name) != crc:
                problem = "has changed since it was saved (its CRC-32 differs)"
            else:
                continue
        except FileNotFoundError:  # (also one removed as it is read: a run went on)
            problem = "is missing"
        others = [
            c.with_name(f"{c.name}.json")
            for c in finished_checkpoints(directory)
            if _chunk_count(c) < _chunk_count(path) and c.with_name(f"{c.name}.json").exists()
        ]
        instead = (
            f"; {others[-1]} is the record of an earlier checkpoint: copied over "
            f"{directory / LATEST}, it resumes from there"
            if others
            else ""
        )
        raise CheckpointError(
            f"could not read checkpoint {path}: its file {name} {problem}{instead}"
        )


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is damaged ({error})") from None
    if not (
        isinstance(record, dict)
        and isinstance(record.get("path"), str)
        and isinstance(record.get("info"), dict)
        and isinstance(record.get("leaves"), dict)
    ):
        raise CheckpointError(f"{path} is damaged (not a record with path, info and leaves)")
    return record


def latest(directory: str | Path) -> dict | None:
    """The newest complete checkpoint's record: latest.json, or where that is missing,
    damaged or names a checkpoint that is not there the record kept beside the newest
    checkpoint that has one (a warning says so). None if no record exists: no
    checkpoint was recorded yet (a checkpoint directory without a record may be one
    whose save was never confirmed — a kill during the next chunk — and is not
    trusted). CheckpointError for a damaged latest.json with no record beside any
    checkpoint."""
    directory = Path(directory)
    path = directory / LATEST
    problem = f"{path} is missing"
    if path.exists():
        try:
            record = _read_record(path)
        except CheckpointError as error:
            problem = str(error)
        else:
            if (directory / record["path"]).is_dir():
                return record
            problem = f"{path} names {record['path']}, which is missing"
    for chunk in reversed(finished_checkpoints(directory)):
        beside = chunk.with_name(f"{chunk.name}.json")
        if beside.exists():
            record = _read_record(beside)
            print(f"jrl: {problem}; using {beside}", file=sys.stderr)
            return record
    if path.exists():
        raise CheckpointError(
            f"{problem}, and no record beside the checkpoints names one to resume from; "
            "start a new run directory (or restore latest.json)"
        )
    return None


def check_fingerprint(record: dict, directory: str | Path, fingerprint: str) -> None:
    """Raise CheckpointError unless ``record`` (a latest.json) was written by the run
    configuration whose fingerprint is ``fingerprint``."""
    saved = record.get("info", {}).get("fingerprint")
    if saved != fingerprint:
        raise MismatchError(
            f"the checkpoint in {directory} was written by another configuration "
            f"(fingerprint {saved}, this run {fingerprint}): was the run's config.yaml "
            "edited? Put the original back (meta.json's argv is the command that started "
            "it), or start a new run directory"
        )


def restore(
    directory: str | Path, like: Any, fingerprint: str, record: dict | None = None
) -> tuple[Any, dict]:
    """(state, info) of the newest checkpoint in ``directory``, shaped like ``like`` (a
    state, or its ``jax.eval_shape``: only leaf shapes and dtypes are read).

    Raises CheckpointError if there is none, if it was written for another
    configuration (``fingerprint`` differs) or another state structure (leaf paths,
    shapes or dtypes differ: named), or if its files are damaged (missing, or their size
    or CRC-32 not as saved: named, before orbax reads them). ``record``: the
    checkpoint's record if the caller has read it (:func:`latest`) already.

    Without ``record``, a run may be training in ``directory`` meanwhile (``jrl eval``
    of a run under way): it removes a checkpoint once two newer ones are saved, so a
    checkpoint that goes while it is read is given up for the newest recorded since."""
    directory = Path(directory).resolve()
    given = record is not None
    record = record or latest(directory)
    if record is None:
        raise CheckpointError(f"no checkpoint in {directory} (no {LATEST})")
    tries = 0
    while True:
        _check_record(record, directory, like, fingerprint)
        try:
            return _read(directory, record, like)
        except CheckpointError:
            tries += 1
            newer = None if given or tries == 5 else latest(directory)
            if newer is None or newer["path"] == record["path"]:
                raise
            record = newer


def _check_record(record: dict, directory: Path, like: Any, fingerprint: str) -> None:
    """Raise CheckpointError unless ``record`` is of this configuration and of a state
    shaped like ``like``."""
    check_fingerprint(record, directory, fingerprint)
    wanted, saved = describe(like), record.get("leaves", {})
    if wanted != saved:
        missing = sorted(set(wanted) - set(saved))
        extra = sorted(set(saved) - set(wanted))
        changed = sorted(k for k in set(wanted) & set(saved) if wanted[k] != saved[k])
        details = [
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {extra[:3]}" if extra else "",
        ]
        details += [f"{k}: saved {saved[k]}, wanted {wanted[k]}" for k in changed[:3]]
        raise MismatchError(
            f"the checkpoint in {directory} holds a different state: "
            + "; ".join(d for d in details if d)
        )


def _read(directory: Path, record: dict, like: Any) -> tuple[Any, dict]:
    """(state, info) of ``record``'s checkpoint, its files checked first."""
    _check_files(directory, record)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _to_storable(like))
    checkpointer = ocp.StandardCheckpointer()
    try:
        stored = checkpointer.restore(directory / record["path"], target)
    except Exception as error:  # orbax/tensorstore raise many types for damaged files
        raise CheckpointError(
            f"could not read checkpoint {directory / record['path']}: "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
    finally:
        checkpointer.close()

    def unstored(stored_leaf, leaf):
        if not math.prod(np.shape(leaf)):
            return jnp.zeros(leaf.shape, leaf.dtype)
        stored_leaf = jnp.asarray(stored_leaf)
        if _is_key(leaf):
            return jax.random.wrap_key_data(stored_leaf, dtype=leaf.dtype)
        return stored_leaf

    state = jax.tree.map(unstored, stored, like)
    return state, record["info"]
