"""What the chunk loop keeps and a run directory records: update counts and step
budgets, the rows (none after a run ends), summary.json's figures, sinks flushed before
each checkpoint, the newest checkpoint and its fingerprint, stale temporary files,
git state and XLA flags, a second SIGTERM."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest

from jrl import checkpoint, training
from jrl.run_dir import read_rows
from jrl.training import RunSpec, build, resolve, train

pytestmark = pytest.mark.timeout(600)


def _by_run(rows):
    runs = {}
    for row in rows:
        runs.setdefault((row["grid_point"], row["seed"]), []).append(row)
    return runs


def test_a_ppo_run_stops_at_its_update_count_and_its_summary_reads_the_rows(tmp_path):
    """10 updates in chunks of 4: the last chunk is 2 updates; summary.json's
    final_* and mean_final_* are the rows' last values and their mean."""
    spec = RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": 2560, "num_steps": 64, "eval_every": 5, "eval_episodes": 2},
        num_seeds=2,
        chunk_size=4,
    )
    summary = train(spec, tmp_path / "run", progress=False)
    assert summary["status"] == "complete"
    assert summary["updates_done"] == summary["total_updates"] == 10
    runs = _by_run(read_rows(tmp_path / "run" / "metrics.jsonl"))
    assert all([row["update"] for row in rows] == list(range(10)) for rows in runs.values())
    (point,) = summary["grid"]
    for field in ("episode_return", "eval_return"):
        last = [
            [row[field] for row in runs[0, seed] if row[field] is not None][-1]
            for seed in range(spec.num_seeds)
        ]
        assert point[f"final_{field}"] == pytest.approx(last)
        assert point[f"mean_final_{field}"] == pytest.approx(np.mean(last))
    assert len(set(point["final_episode_return"])) == 2  # the mean is no seed's value


def test_a_tabular_run_takes_its_step_budget_and_its_rows_stop_where_it_ends(tmp_path):
    """max_steps 100 in iterations of 16 is 7 updates, the last of 4 steps; a seed
    that has done its episodes logs no more rows, and rows carry no internal
    ``active`` column."""
    capped = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 10**6, "max_steps": 100, "steps_per_iteration": 16},
        chunk_size=4,
    )
    summary = train(capped, tmp_path / "capped", progress=False)
    assert summary["updates_done"] == summary["total_updates"] == 7
    assert read_rows(tmp_path / "capped" / "metrics.jsonl")[-1]["timesteps"] == 100

    episodes = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 30, "steps_per_iteration": 16},
        num_seeds=2,
        chunk_size=10,
    )
    train(episodes, tmp_path / "episodes", progress=False)
    runs = _by_run(read_rows(tmp_path / "episodes" / "metrics.jsonl"))
    assert len({len(rows) for rows in runs.values()}) == 2  # the seeds end apart
    for rows in runs.values():
        steps = [row["timesteps"] for row in rows]
        assert steps == sorted(set(steps))  # every row took steps
        assert rows[-1]["num_episodes"] > 0  # the last row ended its last episode
        assert sum(row["num_episodes"] for row in rows) == 30
        assert all("active" not in row for row in rows)


def test_resume_removes_writes_a_kill_cut_short(tmp_path):
    """A kill in the middle of an atomic write leaves its temporary file."""
    spec = RunSpec(agent="tabular", env="CliffWalking-v0", config={"num_episodes": 30})
    run_dir = tmp_path / "run"
    train(spec, run_dir, progress=False, max_chunks=1)
    for name in (".summary.json.k1.tmp", ".metrics.jsonl.k2.tmp"):
        (run_dir / name).write_text("{half")
    assert train(spec, run_dir, resume=True, progress=False)["status"] == "complete"
    assert not list(run_dir.glob(".*.tmp"))


def test_every_chunks_sink_rows_are_flushed_before_its_checkpoint(tmp_path, monkeypatch):
    """TensorBoard's rows must be on disk before the chunk's checkpoint is, or a
    kill after the checkpoint loses them for good (the resume does not write them)."""
    events = []

    class Recorder:
        def write(self, rows):
            events.append("write")

        def flush(self):
            events.append("flush")

        def close(self):
            pass

    save = checkpoint.Saver.save

    def recorded(self, chunk, state, info):
        events.append("save")
        return save(self, chunk, state, info)

    monkeypatch.setattr(checkpoint.Saver, "save", recorded)
    spec = RunSpec(agent="tabular", env="CliffWalking-v0", config={"num_episodes": 30})
    run_dir = tmp_path / "run"
    train(spec, run_dir, progress=False, max_chunks=2, sinks=[Recorder()], checkpoint_every=0)
    assert events == ["write", "flush", "save"] * 2


def test_latest_falls_back_to_the_newest_recorded_checkpoint(tmp_path, capsys):
    """Two checkpoints are kept: a lost latest.json must not send a resume back to
    the older one."""
    saver = checkpoint.Saver(tmp_path, keep=2)
    for chunk in (10, 20):
        saver.save(chunk, {"w": np.full(3, chunk, np.float32)}, {"fingerprint": "f", "n": chunk})
    saver.close()
    (tmp_path / "latest.json").unlink()
    assert checkpoint.latest(tmp_path)["info"]["n"] == 20
    state, info = checkpoint.restore(tmp_path, {"w": np.zeros(3, np.float32)}, "f")
    assert info["n"] == 20 and (state["w"] == 20).all()
    # A latest.json that is no whole record (here without its leaves) is one lost too.
    record = json.loads((tmp_path / "chunk_00000020.json").read_text())
    del record["leaves"]
    (tmp_path / "latest.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert checkpoint.latest(tmp_path)["info"]["n"] == 20
    assert "not a record with path, info and leaves" in capsys.readouterr().err
    state, info = checkpoint.restore(tmp_path, {"w": np.zeros(3, np.float32)}, "f")
    assert info["n"] == 20 and (state["w"] == 20).all()


def test_a_checkpoints_record_of_a_large_sweep_is_written_compactly(tmp_path):
    """Each chunk writes its record twice (chunk_N.json, latest.json), holding a few
    numbers per grid point and seed: indented, 1000 points x 10 seeds took 2.1 MB a
    file, three times the same JSON on one line."""
    summary = {"return": [[g, s, 123.456] for g in range(1000) for s in range(10)]}
    saver = checkpoint.Saver(tmp_path, keep=1)
    saver.save(1, {"w": np.zeros(3, np.float32)}, {"fingerprint": "f", "summary": summary})
    saver.close()
    for name in ("chunk_00000001.json", "latest.json"):
        text = (tmp_path / name).read_text()
        assert len(text) < 1.05 * len(json.dumps(summary, separators=(",", ":")))
    assert checkpoint.latest(tmp_path)["info"]["summary"] == summary


def test_a_resume_reads_and_cuts_only_the_rows_past_its_checkpoint(tmp_path, monkeypatch):
    """Every resume rewrote the whole metrics.jsonl through a copy (and parsed every
    row), even with nothing to drop: ~5 s per million rows, and a copy's worth of free
    disk, at every preemption of a long run. Rows are in order, so those past the
    checkpoint end the file: only they are read, and the file is cut in place."""
    from jrl import run_dir

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"update": u, "loss": 0.5}) + "\n" for u in range(50_000)))
    parsed = []
    monkeypatch.setattr(
        run_dir.json, "loads", lambda text, loads=json.loads: parsed.append(text) or loads(text)
    )
    before = path.stat()
    assert run_dir.truncate_rows(path, lambda row: row["update"] < 50_000) == 0
    assert len(parsed) == 1 and path.stat().st_mtime_ns == before.st_mtime_ns
    parsed.clear()
    assert run_dir.truncate_rows(path, lambda row: row["update"] < 49_990) == 10
    assert len(parsed) == 11 and path.stat().st_ino == before.st_ino
    assert [row["update"] for row in run_dir.read_rows(path)] == list(range(49_990))
    with open(path, "ab") as file:  # a crash's tail of NULs (not UTF-8 to JSON's detection)
        file.write(b"\0" * 5)
    assert run_dir.truncate_rows(path, lambda row: row["update"] < 49_990) == 0
    assert path.read_bytes().endswith(b'"loss": 0.5}\n')


def test_checkpoints_past_ten_to_the_eighth_updates_are_ordered_by_count(tmp_path):
    """Names are chunk_%08d, ordered as text: past 10^8, "chunk_100000000" sorted before
    "chunk_99999990", so every save removed the newest-but-one and kept the old one,
    which a lost latest.json then resumed from (and the resume cut the rows after it)."""
    saver = checkpoint.Saver(tmp_path, keep=2)
    counts = (99_999_990, 100_000_000, 100_000_010)
    for chunk in counts:
        saver.save(chunk, {"w": np.full(3, chunk % 1000, np.float32)}, {"fingerprint": "f"})
    saver.close()
    kept = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert kept == ["chunk_100000000", "chunk_100000010"]
    (tmp_path / "latest.json").unlink()
    assert checkpoint.latest(tmp_path)["chunk"] == 100_000_010
    newest = tmp_path / "chunk_100000010"
    for file in (p for p in newest.rglob("*") if p.is_file() and p.stat().st_size):
        file.write_bytes(file.read_bytes()[:-1])  # the newest damaged: which one before it?
    with pytest.raises(checkpoint.CheckpointError, match=r"chunk_100000000\.json is the record"):
        checkpoint.restore(tmp_path, {"w": np.zeros(3, np.float32)}, "f")


def test_restore_refuses_a_checkpoint_of_another_configuration(tmp_path):
    """restore() itself (what restore_state, and so jrl eval, call) checks the
    fingerprint: a config.yaml edited after training is not evaluated as if it ran."""
    checkpoint.save(tmp_path, 1, {"w": np.ones(3, np.float32)}, {"fingerprint": "A"})
    with pytest.raises(checkpoint.CheckpointError, match="another configuration"):
        checkpoint.restore(tmp_path, {"w": np.zeros(3, np.float32)}, "B")


def test_a_checkpoint_whose_files_changed_since_the_save_is_refused_by_name(tmp_path, capfd):
    """Bytes flipped inside a data file kept its size and orbax read it without a word
    (the run resumed from garbage); a file deleted or cut short failed inside orbax
    with asyncio tracebacks around the error. Each file's size and CRC-32, recorded at
    the save, are checked first, and the error names the file and the checkpoint
    before it, whose record resumes from there."""
    # (Random numbers, so that the largest file is more than the 1 MiB the CRC reads
    # at a time; bytes flipped in its first block.)
    weights = np.random.default_rng(0).standard_normal(400_000).astype(np.float32)
    state = {"w": weights, "n": np.arange(3, dtype=np.int32)}
    like = jax.tree.map(np.zeros_like, state)
    saver = checkpoint.Saver(tmp_path, keep=3)
    for chunk in (10, 20, 30):
        saver.save(chunk, jax.tree.map(lambda x, c=chunk: x + c, state), {"fingerprint": "f"})
    saver.close()
    newest = tmp_path / "chunk_00000030"
    largest = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    name = largest.relative_to(newest).as_posix()
    original = largest.read_bytes()
    assert len(original) > 1 << 20
    flipped = bytearray(original)
    flipped[4096 : 4096 + 64] = bytes(b ^ 0xFF for b in flipped[4096 : 4096 + 64])
    earlier = tmp_path / "chunk_00000020.json"  # the newest before it
    capfd.readouterr()
    for damage, problem in [
        (bytes(flipped), "has changed since it was saved"),
        (original[: len(original) // 2], f"has {len(original) // 2} bytes, {len(original)} when"),
        (None, "is missing"),
    ]:
        if damage is None:
            largest.unlink()
        else:
            largest.write_bytes(damage)
        with pytest.raises(checkpoint.CheckpointError) as refused:
            checkpoint.restore(tmp_path, like, "f")
        said = str(refused.value)
        assert f"could not read checkpoint {newest}: its file {name} {problem}" in said
        assert f"{earlier} is the record of an earlier checkpoint" in said
        assert capfd.readouterr().err == ""
    # As the message says: that record over latest.json resumes from the earlier one.
    (tmp_path / "latest.json").write_text(earlier.read_text())
    restored, _ = checkpoint.restore(tmp_path, like, "f")
    np.testing.assert_array_equal(restored["w"], state["w"] + 20)
    # A record from before the files were recorded is read as it was.
    record = json.loads(earlier.read_text())
    del record["files"]
    (tmp_path / "latest.json").write_text(json.dumps(record))
    np.testing.assert_array_equal(checkpoint.restore(tmp_path, like, "f")[0]["n"], [20, 21, 22])


@pytest.mark.parametrize(
    "call, failure",
    [
        ("fsync", OSError(28, "No space left on device")),
        ("fsync", KeyboardInterrupt()),  # a Ctrl-C in the middle of the write
        ("fchmod", PermissionError(1, "Operation not permitted")),  # (some mounted shares)
    ],
)
def test_an_atomic_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(
    call, failure, tmp_path, monkeypatch
):
    from jrl import run_dir

    path = tmp_path / "summary.json"
    run_dir.write_text_atomic(path, "old")

    def fail(*args):
        raise failure

    monkeypatch.setattr(run_dir.os, call, fail)
    open_descriptors = len(os.listdir("/proc/self/fd"))
    with pytest.raises(type(failure)):
        run_dir.write_text_atomic(path, "new")
    assert len(os.listdir("/proc/self/fd")) == open_descriptors  # the temporary's closed
    assert path.read_text() == "old" and run_dir.temporaries(path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_an_atomic_writes_temporary_is_one_a_resume_finds_and_removes(tmp_path, monkeypatch):
    """What a kill leaves mid-write is a file temporaries() lists (a resume removes
    those), hidden from a listing of the run directory."""
    from jrl import run_dir

    path, seen, replace = tmp_path / "summary.json", [], run_dir.os.replace

    def look_then_replace(temporary, target):
        seen.append((Path(temporary), run_dir.temporaries(path)))
        replace(temporary, target)

    monkeypatch.setattr(run_dir.os, "replace", look_then_replace)
    run_dir.write_text_atomic(path, "new")
    ((temporary, found),) = seen
    assert found == [temporary] and temporary.name.startswith(".summary.json.")


@pytest.mark.parametrize("removed_before", ["_check_files", "_crc32"])
def test_a_checkpoint_removed_while_it_is_read_gives_way_to_the_newest(
    removed_before, tmp_path, monkeypatch
):
    """jrl eval of a run under way: the run removes a checkpoint once two newer ones are
    saved, and a reader slower than that failed as if the checkpoint were damaged. The
    newest recorded checkpoint is read instead — also when the files go between the
    size check and the CRC's read of one —; a resume, which passes the record it read
    under the run's lock, still fails on a checkpoint that has gone."""
    like = {"w": np.zeros(3, np.float32)}
    saver = checkpoint.Saver(tmp_path, keep=2)
    for chunk in (10, 20):
        saver.save(chunk, {"w": np.full(3, chunk, np.float32)}, {"fingerprint": "f", "n": chunk})
    saver.wait()
    read = getattr(checkpoint, removed_before)

    def training_goes_on(directory, *rest):  # two more chunks saved as it is read
        if "chunk_00000020" in str(directory / (rest[0]["path"] if rest else "")):
            for chunk in (30, 40):
                saver.save(chunk, {"w": np.full(3, chunk, np.float32)}, {"fingerprint": "f"})
                saver.wait()
            assert not (tmp_path / "chunk_00000020").exists()
        return read(directory, *rest)

    monkeypatch.setattr(checkpoint, removed_before, training_goes_on)
    state, _ = checkpoint.restore(tmp_path, like, "f")
    assert (np.asarray(state["w"]) == 40).all()
    saver.close()
    gone = json.loads((tmp_path / "chunk_00000030.json").read_text())
    shutil.rmtree(tmp_path / "chunk_00000030")
    with pytest.raises(checkpoint.CheckpointError, match="chunk_00000030: its file .* missing"):
        checkpoint.restore(tmp_path, like, "f", record=gone)


def test_a_run_with_nan_in_any_leaf_is_not_finite():
    """One layer's parameters gone NaN is a diverged run."""

    class State(NamedTuple):
        params: dict

    params = {
        "bias": np.array([[[0.0, 0.0], [np.nan, 0.0]]], np.float32),  # [G=1, S=2, 2]
        "kernel": np.ones((1, 2, 3, 3), np.float32),
    }
    np.testing.assert_array_equal(np.asarray(training.finite_runs(State(params))), [[True, False]])


def test_finite_runs_refuses_one_runs_state_and_metrics():
    """train's own state (no [G, S] axes) gave an array of other axes as bool[G, S] (a
    tabular run's [states, actions]); metrics, an AttributeError."""
    from jrl.agents import tabular
    from jrl.envs import make

    env, params = make("CliffWalking-v0")
    train = tabular.make_train(tabular.TabularConfig(num_episodes=2), env, params)
    state, metrics = train(jax.random.key(0), tabular.TabularHParams())
    with pytest.raises(ValueError, match="takes run_sweep's state, whose leaves are"):
        training.finite_runs(state)
    assert training.finite_runs(jax.tree.map(lambda x: x[None, None], state)).shape == (1, 1)
    with pytest.raises(TypeError, match="takes an agent's state .params or q_values., got Tab"):
        training.finite_runs(metrics)


def test_read_rows_raises_on_a_complete_line_that_is_not_json(tmp_path):
    """Only a last line without its newline is a torn write."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 0}\n{"upd\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        read_rows(path)


def test_blank_lines_in_metrics_are_no_rows_and_no_damage(tmp_path):
    """A blank line (an editor's, or a newline added after a torn line was cut) is
    skipped by reading and by a resume's cut, which counts only rows."""
    from jrl.run_dir import truncate_rows

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 0}\n\n{"update": 1}\n \n{"update": 2}\n\n')
    assert read_rows(path) == [{"update": 0}, {"update": 1}, {"update": 2}]
    assert truncate_rows(path, lambda row: row["update"] < 2) == 1
    assert read_rows(path) == [{"update": 0}, {"update": 1}]
    assert path.read_text().endswith('{"update": 1}\n')


def test_truncate_rows_counts_no_torn_line_and_refuses_a_complete_line_not_json(tmp_path):
    """A torn last line (a kill mid-append) goes uncounted, so the resume's message
    says how many rows it drops; a complete line that is not JSON is damage, refused
    with the file left as it was."""
    from jrl.run_dir import truncate_rows

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 0}\n{"update": 1}\n{"upd')
    assert truncate_rows(path, lambda row: row["update"] < 1) == 1
    assert path.read_text() == '{"update": 0}\n'
    damaged = '{"update": 0}\n{"upd\n{"update": 2}\n'
    path.write_text(damaged)
    with pytest.raises(ValueError, match="metrics.jsonl: byte 14: not a JSON row"):
        truncate_rows(path, lambda row: row["update"] < 1)
    assert path.read_text() == damaged


def test_truncate_rows_keeps_lines_as_they_were_reading_one_row_at_a_time(tmp_path):
    """A resume drops the rows past its checkpoint without holding the file's rows (a
    long run's metrics.jsonl holds millions): Python's allocations peak at a small part
    of the rows' dicts. Kept lines are the bytes that were written; a last complete
    line without its newline gets one, so the next append starts a line of its own."""
    import sys
    import tracemalloc

    from jrl.run_dir import append_rows, truncate_rows

    path = tmp_path / "metrics.jsonl"
    row = {"grid_point": 0, "seed": 0, "update": 0, "loss": 0.5, "entropy": 0.25}
    with open(path, "w") as file:
        file.write('{"update": 0,   "loss": 1.50}\n')  # spacing json.dumps would not write
        for update in range(1, 40_000):
            file.write(json.dumps({**row, "update": update}) + "\n")
        file.write('{"update": 40000}')
    tracemalloc.start()
    try:
        dropped = truncate_rows(path, lambda row: row["update"] < 30_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dropped == 10_001
    assert peak < 40_000 * sys.getsizeof(row) / 10
    lines = path.read_text().splitlines()
    assert len(lines) == 30_000 and lines[0] == '{"update": 0,   "loss": 1.50}'
    truncate_rows(path, lambda row: row["update"] < 2)
    path.write_text(path.read_text().rstrip("\n"))  # a last line complete but unended
    truncate_rows(path, lambda row: True)
    append_rows(path, [{"update": 2}])
    assert [row["update"] for row in read_rows(path)] == [0, 1, 2]


def _git(directory, *args):
    return subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", *args],
        cwd=directory, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def test_git_state_records_the_commit_and_an_uncommitted_change(tmp_path):
    """meta.json's dirty flag."""
    from jrl.run_dir import git_state

    def git(*args):
        return _git(tmp_path, *args)

    git("init", "-q")
    (tmp_path / "f.py").write_text("x = 1\n")
    git("add", "f.py")
    git("commit", "-qm", "c")
    (tmp_path / "notes.txt").write_text("a file git does not track is no change of the code")
    assert git_state(tmp_path, "f.py") == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "f.py").write_text("x = 2\n")
    assert git_state(tmp_path, "f.py")["dirty"] is True


def test_git_state_says_dirty_unknown_when_git_status_fails(tmp_path, monkeypatch):
    """A checkout whose status git cannot read (a damaged index, a timeout) is recorded
    as dirty None, unknown, not as clean: a clean flag would vouch for the commit."""
    from jrl import run_dir

    _git(tmp_path, "init", "-q")
    (tmp_path / "f.py").write_text("x = 1\n")
    _git(tmp_path, "add", "f.py")
    _git(tmp_path, "commit", "-qm", "c")
    run = subprocess.run

    def status_fails(args, **kwargs):
        if "status" in args:
            return subprocess.CompletedProcess(args, 128, "", "fatal: index file corrupt")
        return run(args, **kwargs)

    monkeypatch.setattr(run_dir.subprocess, "run", status_fails)
    state = run_dir.git_state(tmp_path, "f.py")
    assert state == {"commit": _git(tmp_path, "rev-parse", "HEAD"), "dirty": None}


def test_git_state_of_a_checkout_another_user_owns_says_why_it_has_no_commit(tmp_path, monkeypatch):
    """A container's root running a mounted checkout, or a shared one on a cluster: git
    refuses it ("dubious ownership") and meta.json recorded no commit without a word.
    It says why now. Reading it regardless (safe.directory) ran that user's fsmonitor
    command as whoever ran jrl: nothing the checkout configures may run."""
    from jrl.run_dir import git_state

    _git(tmp_path, "init", "-q")
    (tmp_path / "f.py").write_text("x = 1\n")
    _git(tmp_path, "add", "f.py")
    _git(tmp_path, "commit", "-qm", "c")
    ran = tmp_path.parent / "fsmonitor_ran"
    hook = tmp_path / "monitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {ran}\n")
    hook.chmod(0o755)
    _git(tmp_path, "config", "core.fsmonitor", str(hook))
    # git's own switch for its tests of the ownership check (t0033), so that a test run
    # by one user sees what another user would.
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")
    refused = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True)
    assert refused.returncode != 0 and b"safe.directory" in refused.stderr
    state = git_state(tmp_path, "f.py")
    assert state["commit"] is None and state["dirty"] is None
    assert "another user owns" in state["git_refused"] and "safe.directory" in state["git_refused"]
    assert not ran.exists()
    # A file the repository does not track (a jrl inside another user's repository):
    # no commit either, and no claim that the repository holds it.
    other = git_state(tmp_path, "untracked.py")
    assert other["commit"] is None and "if that repository is jrl's" in other["git_refused"]


def test_a_jrl_inside_another_repository_records_no_commit_of_it(tmp_path, monkeypatch):
    """A virtual environment inside the researcher's own repository (.venv ignored):
    meta.json took that repository's commit and dirty flag for jrl's, and a resume after
    the researcher's next commit said jrl had changed. A pip install from a git URL
    records the commit pip saw; the source digest names the code however installed."""
    from jrl import run_dir

    def git(*args):
        return _git(tmp_path, *args)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text(".venv/\n")
    (tmp_path / "analysis.py").write_text("x = 1\n")
    git("add", ".gitignore", "analysis.py")
    git("commit", "-qm", "mine")
    original = Path(run_dir.__file__).parent
    package = tmp_path / ".venv" / "site-packages" / "jrl"
    shutil.copytree(original, package)
    assert run_dir.git_state(package) == {"commit": None, "dirty": None}
    monkeypatch.setattr(run_dir, "__file__", str(package / "run_dir.py"))
    monkeypatch.setattr(run_dir, "installed_commit", lambda: None)
    assert run_dir.git_state() == {"commit": None, "dirty": None}
    monkeypatch.setattr(run_dir, "installed_commit", lambda: "c0ffee")
    assert run_dir.git_state() == {"commit": "c0ffee", "dirty": None}
    # The digest: the same files give the same one wherever they are; an edit another.
    assert run_dir.source_digest() == run_dir.source_digest(original)
    (package / "agents" / "ppo.py").write_text("# changed\n", encoding="utf-8")
    assert run_dir.source_digest() != run_dir.source_digest(original)
    # ... and a module renamed, its contents the same, another.
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.py").write_text("x = 1\n", encoding="utf-8")
    assert run_dir.source_digest(tmp_path / "a") != run_dir.source_digest(tmp_path / "b")


def test_the_commit_pip_recorded_for_a_git_install(tmp_path, monkeypatch):
    from jrl.run_dir import installed_commit

    for name, direct_url in [
        ("from_git", {"url": "https://x/jrl.git", "vcs_info": {"vcs": "git", "commit_id": "ab12"}}),
        ("from_dir", {"url": "file:///src/jrl", "dir_info": {}}),
        ("from_wheel", None),
    ]:
        info = tmp_path / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        if direct_url is not None:
            (info / "direct_url.json").write_text(json.dumps(direct_url))
    (tmp_path / "jrl-0.1.dist-info").mkdir()  # another jrl than the one running
    (tmp_path / "jrl-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jrl\nVersion: 0.1\n"
    )
    (tmp_path / "jrl-0.1.dist-info" / "direct_url.json").write_text(
        json.dumps({"url": "https://x/jrl.git", "vcs_info": {"vcs": "git", "commit_id": "cd34"}})
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_commit("from_git") == "ab12"
    assert installed_commit("jrl") is None
    assert installed_commit("from_dir") is None and installed_commit("from_wheel") is None
    assert installed_commit("no-such-distribution-here") is None


def test_provenance_records_the_xla_flags(monkeypatch):
    """README: XLA_FLAGS change the numbers' last bits; meta.json records them."""
    from jrl.run_dir import provenance

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert provenance()["xla_flags"] == "--xla_cpu_enable_fast_math=false"


def test_provenance_records_the_compilation_cache():
    """A compile time read from JAX's persistent cache is a disk read: meta.json and the
    experiments' results.json say whether one was used, and where (the tests' session
    turns one on through JAX_COMPILATION_CACHE_DIR, as a cluster may)."""
    from jrl.run_dir import provenance

    assert provenance()["compilation_cache"] == os.environ["JAX_COMPILATION_CACHE_DIR"]
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        assert provenance()["compilation_cache"] is None
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)


def _resume_changes(tmp_path, *segments, now=None, from_update=30):
    """record_resume's report of what changed, for a run whose meta.json holds the
    start's setting and earlier resumes' (each {field: value} over this process's own
    provenance, with its from_update)."""
    from jrl.run_dir import provenance, record_resume

    base = provenance()
    start, *resumes = segments
    meta = {**base, **start, "resumes": [{**base, **r} for r in resumes]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    os.environ["XLA_FLAGS"] = (now or {}).get("xla_flags", base["xla_flags"])
    try:
        return record_resume(tmp_path, from_update)
    finally:
        os.environ["XLA_FLAGS"] = base["xla_flags"]


def test_a_resume_names_what_may_change_its_numbers_and_only_that(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--a=1 --b=2")
    assert _resume_changes(tmp_path, {}) == []
    # The same flags in another order or spacing are the same setting (XLA reads the last
    # of a repeated one); another value is not.
    assert _resume_changes(tmp_path, {"xla_flags": "--b=2   --a=1"}) == []
    assert _resume_changes(tmp_path, {"xla_flags": "--a=0 --b=2 --a=1"}) == []
    assert _resume_changes(tmp_path, {"xla_flags": "--a=3 --b=2"}) == [
        "XLA_FLAGS: '--a=3 --b=2' -> '--a=1 --b=2'"
    ]
    # Another GPU model keeps the device names (cuda:0) but not their kind.
    (change,) = _resume_changes(tmp_path, {"device_kinds": ["NVIDIA A100"]})
    assert change.startswith("device_kinds: ['NVIDIA A100'] -> ")
    # A package one process did not record is not compared; one that differs is named.
    from jrl.run_dir import provenance

    versions = provenance()["versions"]
    assert _resume_changes(tmp_path, {"versions": {**versions, "optax": None}}) == []
    assert _resume_changes(tmp_path, {"commit": None}) == []  # started outside a checkout
    from jrl import run_dir

    lacking = {**versions, "optax": None}  # (this process has no optax)
    monkeypatch.setattr(run_dir, "package_versions", lambda: lacking)
    assert _resume_changes(tmp_path, {"versions": versions}) == []
    monkeypatch.undo()
    monkeypatch.setenv("XLA_FLAGS", "--a=1 --b=2")
    (change,) = _resume_changes(tmp_path, {"versions": {**versions, "jax": "0.0.1"}})
    assert change == f"versions: {{'jax': '0.0.1'}} -> {{'jax': '{versions['jax']}'}}"
    # jaxlib (XLA itself) apart from jax, and the compiler options jrl compiles with.
    (change,) = _resume_changes(tmp_path, {"versions": {**versions, "jaxlib": "0.0.1"}})
    assert change.startswith("versions: {'jaxlib': '0.0.1'} -> ")
    (change,) = _resume_changes(tmp_path, {"compiler_options": {"xla_llvm_opt_level": 3}})
    assert change.startswith("compiler_options: {'xla_llvm_opt_level': 3} -> ")
    # A resume that never reached a checkpoint ran none of the run: compared with the
    # start, under whose flags every update so far was computed.
    other = {"xla_flags": "--x=1", "from_update": 30}
    assert _resume_changes(tmp_path, {"from_update": 0}, other) == []
    ran = {"xla_flags": "--x=1", "from_update": 10}
    assert _resume_changes(tmp_path, {}, ran) == ["XLA_FLAGS: '--x=1' -> '--a=1 --b=2'"]
    assert _resume_changes(tmp_path, {}, from_update=0) == []  # nothing ran before


def test_distinct_colors_stay_distinct_past_the_colour_maps_256_entries():
    from jrl.reporting import distinct_colors

    for n in (9, 11, 21, 233, 300):
        assert len(set(distinct_colors(n))) == n


def test_a_tabular_progress_bar_has_no_step_total():
    """A tabular run ends at its episode budget: its step cap is no ETA."""
    spec = resolve(RunSpec(agent="tabular", env="CliffWalking-v0"))
    bar = training._progress(True, build(spec), 0)
    try:
        assert bar.total is None
    finally:
        bar.close()


def test_a_second_sigterm_does_not_exit_at_once(monkeypatch):
    """Only a second Ctrl-C ends the process at once; a repeated SIGTERM (Slurm,
    a second `kill`) still lets the chunk finish and be checkpointed."""
    calls = []
    monkeypatch.setattr(training, "exit_at_once", calls.append)

    def wait_for(condition):
        deadline = time.perf_counter() + 5
        while not condition() and time.perf_counter() < deadline:
            time.sleep(0.01)

    with training._Stop().installed() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: stop.signal is not None)
        # Past jrl.interrupts.SAME_SENDING_S: within it, the second is taken for one
        # sending delivered twice and never reaches _Stop (what this test sent before).
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
        assert stop.signal == signal.SIGTERM and calls == []
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: calls)
        assert len(calls) == 1 and "second Ctrl-C" in calls[0]


def test_an_infinite_metric_is_named_once_per_run_with_its_first_update(capsys):
    """An overflowed loss is written as null, as a value not logged: a DQN at lr=1e10
    logged an infinite loss from its first gradient step with finite parameters, and
    nothing said so (jrl plot then said it had logged no loss "yet")."""
    from typing import NamedTuple as Tuple

    class Metrics(Tuple):
        loss: np.ndarray
        q_value: np.ndarray
        gradient_steps: np.ndarray

    loss = np.zeros((2, 3, 4), np.float32)  # [G, S, K]
    q_value = np.zeros((2, 3, 4), np.float32)
    loss[1, 2, 2:] = np.inf
    q_value[1, 2, 1] = -np.inf  # earlier, in another field: the one named
    loss[0, 1, 3] = np.nan  # not an infinity
    infinite = {}
    metrics = Metrics(loss, q_value, np.ones((2, 3, 4), np.int32))
    training._note_infinite(infinite, metrics, first_update=10)
    assert infinite == {(1, 2): {"metric": "q_value", "update": 11}}
    said = capsys.readouterr().err
    assert "grid point 1 seed 2 logged an infinite q_value at update 11" in said
    loss[0, 0, 0] = q_value[0, 0, 0] = np.inf  # two at once: the first field named
    training._note_infinite(infinite, metrics, first_update=14)  # the next chunk
    assert infinite == {(1, 2): {"metric": "q_value", "update": 11},
                        (0, 0): {"metric": "loss", "update": 14}}  # fmt: skip
    assert "grid point 1" not in capsys.readouterr().err  # said once


def test_a_mac_records_its_cpus_model_not_just_arm(tmp_path, monkeypatch):
    """On macOS there is no /proc/cpuinfo and platform.processor() says "arm" on every
    Apple-silicon Mac: a resume on another Mac was not reported. sysctl names the model
    (here a stand-in sysctl on PATH answers as a Mac's does)."""
    import builtins

    from jrl import run_dir

    sysctl = tmp_path / "sysctl"
    sysctl.write_text('#!/bin/sh\n[ "$2" = machdep.cpu.brand_string ] && echo "Apple M2 Pro"\n')
    sysctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "platform", "darwin")
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert run_dir.cpu_model() == "Apple M2 Pro"
    sysctl.unlink()  # no sysctl answering: what the platform module says
    monkeypatch.setattr(run_dir.platform, "processor", lambda: "arm")
    assert run_dir.cpu_model() == "arm"


def test_cpu_model_is_the_model_name_line_not_the_model_number(monkeypatch):
    """x86's /proc/cpuinfo has "model : 85" before "model name": the number is shared by
    a CPU family's models, so a resume on another of them would go unreported."""
    import builtins
    import io

    from jrl import run_dir

    real_open = builtins.open
    cpuinfo = "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel Xeon Gold\n"

    def proc_cpuinfo(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            return io.StringIO(cpuinfo)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", proc_cpuinfo)
    assert run_dir.cpu_model() == "Intel Xeon Gold"


def _saved(directory, *chunks, keep=2):
    """Save chunk n of a state w = [n, n, n] with each count in ``chunks``, in turn."""
    saver = checkpoint.Saver(directory, keep=keep)
    for n in chunks:
        saver.save(n, {"w": np.full(3, n, np.float32)}, {"fingerprint": "f", "n": n})
    saver.close()


def _restored(directory):
    state, info = checkpoint.restore(directory, {"w": np.zeros(3, np.float32)}, "f")
    assert (np.asarray(state["w"]) == info["n"]).all()
    return info["n"]


def test_saving_an_earlier_chunk_keeps_that_checkpoint(tmp_path, capsys):
    """A resume from an earlier checkpoint (the record a damaged file's message names)
    saves a chunk older than one on disk: keeping one, the pruning deleted the
    checkpoint just saved, and latest.json named a directory that was gone."""
    _saved(tmp_path, 20, keep=1)
    _saved(tmp_path, 10, keep=1)
    assert (tmp_path / "chunk_00000010").is_dir() and _restored(tmp_path) == 10
    assert "using" not in capsys.readouterr().err  # no fallback to another record


def test_a_chunk_saved_again_replaces_the_unrecorded_checkpoint_of_that_count(tmp_path):
    """A kill after orbax finished chunk 20 but before its record was written leaves
    chunk_00000020 unrecorded; the resume from chunk 10 saves chunk 20 again, which
    orbax refused ("Destination ... already exists")."""
    _saved(tmp_path, 10, 20)
    shutil.copy(tmp_path / "chunk_00000010.json", tmp_path / "latest.json")
    (tmp_path / "chunk_00000020.json").unlink()
    assert _restored(tmp_path) == 10 and (tmp_path / "chunk_00000020").is_dir()
    _saved(tmp_path, 20)
    assert _restored(tmp_path) == 20


def test_keys_of_another_implementation_restore_as_that_implementation(tmp_path):
    """rbg keys came back as threefry's (a TypeError): only the default was tested."""
    state = {"key": jax.random.key(3, impl="rbg"), "w": np.ones(2, np.float32)}
    checkpoint.save(tmp_path, 1, state, {"fingerprint": "f"})
    for like in (state, jax.eval_shape(lambda: state)):
        restored, _ = checkpoint.restore(tmp_path, like, "f")
        assert restored["key"].dtype == state["key"].dtype
        np.testing.assert_array_equal(
            jax.random.key_data(restored["key"]), jax.random.key_data(state["key"])
        )


def test_a_latest_json_without_its_info_falls_back_to_the_record_beside_it(tmp_path, capsys):
    """A latest.json lacking "info" is damaged (the record beside it is read), not a
    checkpoint of another configuration."""
    _saved(tmp_path, 1)
    record = json.loads((tmp_path / "latest.json").read_text())
    del record["info"]
    (tmp_path / "latest.json").write_text(json.dumps(record))
    assert _restored(tmp_path) == 1
    assert "not a record with path, info and leaves" in capsys.readouterr().err
