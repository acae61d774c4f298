"""Metric sinks: TensorBoard event files and W&B offline runs read back, name checks,
the sinks fed by `jrl train --sinks`."""

import fcntl
import glob
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from jrl.sinks import SINKS, TensorBoardSink, WandbSink, make_sinks

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
from tensorboardX.record_writer import masked_crc32c  # noqa: E402


def read_scalars(logdir):
    """{(run directory, tag): [(step, value), ...]} from every event file under logdir,
    parsed as TFRecords (length, masked CRC-32C of it, payload, masked CRC of that)."""
    scalars = {}
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            header = data[offset : offset + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[offset + 8 : offset + 12])[0] == masked_crc32c(header)
            payload = data[offset + 12 : offset + 12 + length]
            crc = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])[0]
            assert crc == masked_crc32c(payload)
            offset += 16 + length
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                run = path.parent.relative_to(logdir).as_posix()
                scalars.setdefault((run, value.tag), []).append((event.step, value.simple_value))
    return scalars


ROWS = [
    {"step": 100, "grid_point": 0, "seed": 0, "episode_return": 1.5, "loss": 0.25},
    {"step": 100, "grid_point": 0, "seed": 1, "episode_return": 2.5, "loss": 0.75},
    {"step": 100, "grid_point": 1, "seed": 0, "episode_return": -3.0, "loss": 1.0},
    {"step": 100, "grid_point": 1, "seed": 1, "episode_return": float("nan"), "loss": 2.0},
    {"step": 200, "grid_point": 0, "seed": 0, "episode_return": 4.0, "loss": 0.125},
    {"step": 200, "grid_point": 0, "seed": 1, "episode_return": 6.0, "loss": 0.5},
    # Skipped: booleans and text are not scalars to plot; a metric with no finite value.
    {"step": 200, "grid_point": 1, "seed": 0, "episode_return": math.nan, "active": True},
    {"step": 200, "grid_point": 1, "seed": 1, "episode_return": math.nan, "note": "x"},
]


def test_tensorboard_scalars_round_trip(tmp_path):
    with TensorBoardSink(tmp_path / "tb", per_seed=True) as sink:
        sink.write(ROWS[:4])
        sink.write(ROWS[4:])
    scalars = read_scalars(tmp_path / "tb")
    # Means over the seeds of a grid point (NaN left out), one run per grid point.
    assert scalars[("grid_point_0", "episode_return")] == [(100, 2.0), (200, 5.0)]
    assert scalars[("grid_point_0", "loss")] == [(100, 0.5), (200, 0.3125)]
    assert scalars[("grid_point_1", "episode_return")] == [(100, -3.0)]
    assert scalars[("grid_point_1", "loss")] == [(100, 1.5)]
    # Every seed's value, exactly (these values are exact in float32).
    assert scalars[("grid_point_0", "episode_return/seed_1")] == [(100, 2.5), (200, 6.0)]
    assert scalars[("grid_point_1", "loss/seed_1")] == [(100, 2.0)]
    assert ("grid_point_1", "episode_return/seed_1") not in scalars
    assert not any(tag.startswith(("active", "note")) for _, tag in scalars)


def test_rows_of_one_update_share_a_step_where_a_seed_stopped_short(tmp_path):
    """A tabular seed that ends its last episode within an update has taken fewer steps
    than the others by then; grouped by each row's own steps, the tail of a run was a
    point per seed, each one seed's value read as the grid point's mean."""
    rows = [
        {"grid_point": 0, "seed": s, "update": u, "timesteps": t, "episode_return": r}
        for s, u, t, r in (
            (0, 7, 112, -31.0),
            (1, 7, 112, -132.0),
            (1, 8, 121, -17.0),  # seed 1 ended its last episode 7 steps into update 8,
            (0, 8, 128, -36.0),  # written first: the step is the most, not the first seed's
        )
    ]
    with TensorBoardSink(tmp_path / "tb") as sink:
        sink.write(rows)
    assert read_scalars(tmp_path / "tb")[("grid_point_0", "episode_return")] == [
        (112, -81.5),
        (128, -26.5),
    ]


def test_tensorboard_run_names_and_means_only_by_default(tmp_path):
    sink = TensorBoardSink(tmp_path, run_names=["alpha=0.1", "alpha=0.5"])
    sink.write(ROWS)
    sink.close()
    scalars = read_scalars(tmp_path)
    assert set(scalars) == {
        ("alpha=0.1", "episode_return"),
        ("alpha=0.1", "loss"),
        ("alpha=0.5", "episode_return"),
        ("alpha=0.5", "loss"),
    }
    needs = r"a metric row needs step \(or timesteps, update\), grid_point, seed; missing"
    with pytest.raises(ValueError, match=needs):
        TensorBoardSink(tmp_path / "other").write([{"step": 1, "seed": 0, "loss": 1.0}])


def purge_markers(logdir):
    """[(run directory, step)] of the SessionLog START events TensorBoard purges at:
    events of a run at steps >= the marker's, written before it, are dropped."""
    markers = []
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 16 + length
            if event.session_log.status == event_pb2.SessionLog.START:
                markers.append((path.parent.relative_to(logdir).as_posix(), event.step))
    return markers


def test_a_resumed_tensorboard_sink_purges_the_steps_it_writes_again(tmp_path):
    """A run killed after writing step 200 resumes from its checkpoint at step 100: the
    rows from step 200 on come again, and TensorBoard must show them once."""
    with TensorBoardSink(tmp_path) as sink:
        sink.write(ROWS)
    assert purge_markers(tmp_path) == []
    with TensorBoardSink(tmp_path, resumed=True) as sink:
        sink.write([{**row, "step": 300} for row in ROWS[4:6]] + ROWS[4:6])
    assert purge_markers(tmp_path) == [("grid_point_0", 200)]  # its first step, sorted
    # Reopened within the second: the first writer's file (step 100) is still there.
    assert len(list((tmp_path / "grid_point_0").glob("events.out.tfevents.*"))) == 2
    steps = [step for step, _ in read_scalars(tmp_path)[("grid_point_0", "loss")]]
    assert 100 in steps and 300 in steps


def test_a_flushed_tensorboard_sink_has_every_row_on_disk(tmp_path):
    """jrl train flushes its sinks before each chunk's checkpoint. tensorboardX's flush
    left the events its writer thread still held in its queue in memory (up to 30 s):
    a kill then lost rows that the resumed run, starting after the checkpoint, never
    writes again. The resumed sink's purge marker stays one per grid point."""
    sink = TensorBoardSink(tmp_path, resumed=True)
    for chunk, rows in enumerate((ROWS[:4], ROWS[4:6])):
        sink.write(rows)
        sink.flush()
        on_disk = read_scalars(tmp_path)[("grid_point_0", "loss")]
        assert sorted(on_disk) == [(100, 0.5), (200, 0.3125)][: chunk + 1]
        assert read_scalars(tmp_path)[("grid_point_1", "loss")] == [(100, 1.5)]
    sink.write([{**row, "step": 300} for row in ROWS[4:6]])
    sink.close()
    assert purge_markers(tmp_path) == [("grid_point_0", 100), ("grid_point_1", 100)]
    steps = sorted(step for step, _ in read_scalars(tmp_path)[("grid_point_0", "loss")])
    assert steps == [100, 200, 300]


def test_a_flushed_tensorboard_sinks_event_files_sort_in_the_order_written(tmp_path, monkeypatch):
    """TensorBoard reads a run directory's event files in the order of their names, and a
    step at or below one it has read drops the later ones it holds (RustBoard's
    preemption). Each flush starts a new file, named by the second: the files of one
    second must still sort as written, or a run's earlier chunks hide its later ones."""
    from tensorboardX import event_file_writer

    monkeypatch.setattr(event_file_writer, "time", SimpleNamespace(time=lambda: 1.7e9))
    sink = TensorBoardSink(tmp_path)
    for step in range(1, 13):
        sink.write([{"step": step, "grid_point": 0, "seed": 0, "loss": float(step)}])
        sink.flush()
    assert len(list((tmp_path / "grid_point_0").glob("events.out.tfevents.1700000000.*"))) == 12
    steps = [step for step, _ in read_scalars(tmp_path)[("grid_point_0", "loss")]]
    assert steps == list(range(1, 13))


def test_make_sinks_builds_the_named_sinks_and_rejects_unknown_ones(tmp_path):
    assert make_sinks([], tmp_path) == []  # off by default
    (sink,) = make_sinks(["tensorboard"], tmp_path / "run")
    sink.write(ROWS[:2])
    sink.close()
    assert read_scalars(tmp_path / "run" / "tensorboard")[("grid_point_0", "loss")] == [(100, 0.5)]
    with pytest.raises(
        ValueError, match=r"unknown sink 'tensorbord'; known sinks: tensorboard, wandb"
    ):
        make_sinks(["tensorboard", "tensorbord"], tmp_path)
    with pytest.raises(ValueError, match="named twice"):
        make_sinks(["tensorboard", "tensorboard"], tmp_path)
    with pytest.raises(TypeError, match="list of sink names"):
        make_sinks("tensorboard", tmp_path)
    assert SINKS == ("tensorboard", "wandb")


def test_wandb_missing_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails, as uninstalled
    message = r"WandbSink needs the wandb package: pip install 'jrl\[wandb\]'"
    with pytest.raises(ImportError, match=message):
        WandbSink(project="jrl-test", mode="offline", directory=tmp_path)
    with pytest.raises(ImportError, match=message):
        make_sinks(["wandb"], tmp_path)
    # One missing extra fails the whole list (the sinks already made are closed).
    with pytest.raises(ImportError, match=message):
        make_sinks(["tensorboard", "wandb"], tmp_path / "both")


# A W&B run's .wandb file (what `wandb sync` uploads) is a LevelDB-style log: a 7-byte
# header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of records, each a 7-byte
# header (CRC-32 of type byte + payload, length, type: 1 full, 2 first, 3 middle,
# 4 last) and a payload; a block's last < 7 bytes are padding. Payloads are
# wandb_internal_pb2.Record protobufs. (wandb 0.31 has no Python reader of its own.)
WANDB_BLOCK, WANDB_RECORD_HEADER = 32768, 7


def read_wandb_records(path):
    """The Record protobufs of a .wandb file, CRCs checked."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0)
    offset, pending, records = 7, b"", []
    while offset + WANDB_RECORD_HEADER <= len(data):
        if WANDB_BLOCK - offset % WANDB_BLOCK < WANDB_RECORD_HEADER:
            offset += WANDB_BLOCK - offset % WANDB_BLOCK  # padding to the next block
            continue
        crc, length, kind = struct.unpack("<IHB", data[offset : offset + WANDB_RECORD_HEADER])
        if (crc, length, kind) == (0, 0, 0):  # the zeroed rest of the file
            break
        payload = data[offset + WANDB_RECORD_HEADER : offset + WANDB_RECORD_HEADER + length]
        assert zlib.crc32(bytes([kind]) + payload) == crc
        offset += WANDB_RECORD_HEADER + length
        pending += payload
        if kind in (1, 4):  # full, or the last piece of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def wandb_history(run_root, files: int = 1):
    """[{key: value}] of every ``log`` call of the offline run under run_root/wandb (one
    file, or with ``files`` that many: a resumed run adds one of the same run id), less
    wandb's own ``_step``, ``_runtime`` and ``_timestamp``."""
    paths = sorted(glob.glob(str(run_root / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert len(paths) == files, paths
    history = []
    for path in paths:
        for record in read_wandb_records(type(run_root)(path)):
            if record.WhichOneof("record_type") == "history":
                items = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
                history.append({k: v for k, v in items.items() if not k.startswith("_")})
    return history


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode (no account, no network), every file of it under tmp_path,
    no output, no capture of the console, no system metrics."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path / "wandb_dir"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_CONSOLE": "off",
        "WANDB__DISABLE_STATS": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    wandb.teardown()  # stop this process's wandb-core service


def test_wandb_offline_run_holds_the_means_over_seeds(tmp_path, wandb_offline):
    import wandb

    with WandbSink(project="jrl-test", name="sink", directory=tmp_path, per_seed=True) as sink:
        sink.write(ROWS[:4])
        sink.write(ROWS[4:])
    # wandb 0.31's finish() can return before its service has written the whole offline
    # file (1 time in ~15 here); stopping the service writes it (as exiting does).
    wandb.teardown()
    assert wandb_history(tmp_path) == [
        {
            "step": 100,
            # Means over the seeds of a grid point (NaN left out), then each seed.
            "episode_return/grid_point_0": 2.0,
            "loss/grid_point_0": 0.5,
            "episode_return/grid_point_0/seed_0": 1.5,
            "episode_return/grid_point_0/seed_1": 2.5,
            "loss/grid_point_0/seed_0": 0.25,
            "loss/grid_point_0/seed_1": 0.75,
            "episode_return/grid_point_1": -3.0,
            "loss/grid_point_1": 1.5,
            "episode_return/grid_point_1/seed_0": -3.0,
            "loss/grid_point_1/seed_0": 1.0,
            "loss/grid_point_1/seed_1": 2.0,
        },
        {
            "step": 200,
            "episode_return/grid_point_0": 5.0,
            "loss/grid_point_0": 0.3125,
            "episode_return/grid_point_0/seed_0": 4.0,
            "episode_return/grid_point_0/seed_1": 6.0,
            "loss/grid_point_0/seed_0": 0.125,
            "loss/grid_point_0/seed_1": 0.5,
        },
    ]


def test_jrl_train_resume_feeds_the_sinks_the_rows_after_the_checkpoint(tmp_path, wandb_offline):
    """A run stopped after its first chunk, then `jrl train --resume`: TensorBoard and W&B
    hold every row of metrics.jsonl once, the resumed TensorBoard writer's purge marker
    at the first step it wrote."""
    from jrl.cli import main
    from jrl.run_dir import read_rows
    from jrl.sinks import make_sinks
    from jrl.training import RunSpec, train

    spec = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 40},
        num_seeds=2,
        chunk_size=40,
    )
    run, names, run_id = tmp_path / "run", ["tensorboard", "wandb"], "0123456789abcdef"
    stopped = train(
        spec,
        run,
        max_chunks=1,
        progress=False,
        sinks=lambda: make_sinks(names, run, spec.to_dict(), run_id),
        meta={"sinks": names, "wandb_id": run_id},
    )
    assert stopped["status"] == "stopped"
    first_chunk = max(row["timesteps"] for row in read_rows(run / "metrics.jsonl"))
    # (in this process; test_jrl_train_feeds_tensorboard_and_wandb resumes in a new one)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    rows = read_rows(run / "metrics.jsonl")
    step_of = {}  # update -> the most steps a seed took by its end: the sinks' x value
    for row in rows:
        step_of[row["update"]] = max(step_of.get(row["update"], 0), row["timesteps"])
    expected = {}  # step -> mean over the seeds that ended an episode in that update
    for row in rows:
        if row["episode_return"] is not None:
            expected.setdefault(step_of[row["update"]], []).append(row["episode_return"])
    expected = {step: sum(returns) / len(returns) for step, returns in expected.items()}
    assert min(expected) <= first_chunk < max(expected)  # rows on both sides of the stop
    tensorboard = dict(read_scalars(run / "tensorboard")[("grid_point_0", "episode_return")])
    assert sorted(tensorboard) == sorted(expected)
    for step, mean in expected.items():
        assert tensorboard[step] == pytest.approx(mean)
    ((directory, purge_step),) = purge_markers(run / "tensorboard")
    assert directory == "grid_point_0" and purge_step > first_chunk
    logged = {
        entry["step"]: entry["episode_return/grid_point_0"]
        for entry in wandb_history(run, files=2)
        if "episode_return/grid_point_0" in entry
    }
    assert logged == pytest.approx(expected)


def test_jrl_train_feeds_tensorboard_and_wandb(tmp_path, wandb_offline, capsys):
    """`jrl train --sinks tensorboard wandb`: both get, per grid point and environment
    step, the mean over seeds of the metric rows the run writes to metrics.jsonl."""
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "jrl.cli", "sweep", "tabular", "--env", "CliffWalking-v0",
         "--out", str(run), "--num-seeds", "2", "--grid", "alpha=0.1,0.5",
         "--config.num-episodes", "5", "--sinks", "tensorboard", "wandb", "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **wandb_offline},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    step_of = {}  # (grid point, update) -> the most steps a seed took by its end
    for row in rows:
        key = (row["grid_point"], row["update"])
        step_of[key] = max(step_of.get(key, 0), row["timesteps"])
    expected = {}  # (grid point, step) -> returns of the seeds that ended an episode
    for row in rows:
        if row["episode_return"] is not None:
            key = (row["grid_point"], step_of[row["grid_point"], row["update"]])
            expected.setdefault(key, []).append(row["episode_return"])
    assert {g for g, _ in expected} == {0, 1}
    logged = {}
    for entry in wandb_history(run):
        for g in (0, 1):
            if f"episode_return/grid_point_{g}" in entry:
                logged[(g, entry["step"])] = entry[f"episode_return/grid_point_{g}"]
        assert not any(key.startswith(("update", "timesteps")) for key in entry)
    assert logged.keys() == expected.keys()
    for key, returns in expected.items():
        assert logged[key] == pytest.approx(sum(returns) / len(returns))
    scalars = read_scalars(run / "tensorboard")
    for g in (0, 1):
        steps = [step for step, _ in scalars[(f"grid_point_{g}", "episode_return")]]
        assert steps == sorted(step for point, step in expected if point == g)
    assert len({step for _, step in expected}) > 1  # episodes ended at several steps

    # `jrl train --resume` logs to the W&B run the run began (offline: a second file of
    # the same run id, which `wandb sync` joins).
    run_id = json.loads((run / "meta.json").read_text())["wandb_id"]
    done = subprocess.run(
        [sys.executable, "-m", "jrl.cli", "train", "--resume", str(run), "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **wandb_offline},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = glob.glob(str(run / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 2 and {Path(f).name for f in files} == {f"run-{run_id}.wandb"}

    # Refused runs start no W&B run: a resume while another process holds the run, and
    # a new run aimed at this directory (in this process, whose environment is W&B's
    # offline one too: a subprocess spent its seconds importing JAX).
    from jrl.cli import main

    def refused(*argv):
        capsys.readouterr()
        assert main([*argv, "--no-progress"]) == 2
        assert len(glob.glob(str(run / "wandb" / "offline-run-*"))) == 2
        return capsys.readouterr().err

    with open(run / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running jrl process does
        assert "in use by another jrl process" in refused("train", "--resume", str(run))
    stderr = refused(
        "train", "tabular", "--env", "CliffWalking-v0", "--out", str(run), "--sinks", "wandb"
    )
    assert "already holds a run" in stderr


def test_tensorboard_sink_with_too_few_run_names_says_so(tmp_path):
    sink = TensorBoardSink(tmp_path, run_names=["a", "b"])
    with pytest.raises(ValueError, match=r"grid_point 2 has no run name \(2 given\)"):
        sink.write([{"step": 1, "grid_point": 2, "seed": 0, "loss": 1.0}])
    sink.close()
    with pytest.raises(ValueError, match=r"missing \['seed'\]"):  # a bare KeyError('seed')
        TensorBoardSink(tmp_path / "b").write([{"step": 1, "grid_point": 0, "loss": 1.0}])


class RecordingWandbRun:
    """What a W&B run is asked to do, for the calls jrl makes (no W&B service)."""

    def __init__(self, **init):
        self.init, self.defined, self.logged, self.finished = init, [], [], False

    def define_metric(self, name, **kwargs):
        self.defined.append((name, kwargs))

    def log(self, data):
        self.logged.append(data)

    def finish(self):
        self.finished = True


def test_jrl_trains_wandb_run_plots_means_against_steps_and_continues_its_run(
    tmp_path, monkeypatch
):
    """What `jrl train --sinks wandb` starts W&B with: every metric against the
    environment steps (W&B's own _step counts log calls; an offline history reads the
    same either way), means over seeds only, the run directory's name and config, and
    resume="allow" so that a resumed run continues the W&B run of its id."""
    from types import SimpleNamespace

    runs = []
    monkeypatch.setitem(
        sys.modules,
        "wandb",
        SimpleNamespace(init=lambda **init: runs.append(RecordingWandbRun(**init)) or runs[-1]),
    )
    (sink,) = make_sinks(["wandb"], tmp_path / "run7", {"agent": "ppo"}, "abc123")
    sink.write([
        {"step": 100, "grid_point": 0, "seed": 0, "loss": 0.25},
        {"step": 100, "grid_point": 0, "seed": 1, "loss": 0.75},
    ])  # fmt: skip
    sink.close()
    (run,) = runs
    assert ("*", {"step_metric": "step"}) in run.defined
    assert run.logged == [{"step": 100, "loss/grid_point_0": 0.5}] and run.finished
    assert (run.init["id"], run.init["resume"], run.init["name"]) == ("abc123", "allow", "run7")
    assert run.init["config"] == {"agent": "ppo"} and run.init["dir"] == str(tmp_path / "run7")


def test_closing_a_wandb_sink_finishes_its_run(tmp_path, wandb_offline):
    import wandb

    sink = WandbSink(project="jrl-test", name="close", directory=tmp_path)
    assert wandb.run is not None
    sink.close()
    assert wandb.run is None  # finished: a resume in this process starts afresh


def test_every_sink_train_opened_is_closed_when_one_fails_to_close(tmp_path):
    """A sink whose close raises (a W&B upload, a full disk) left the sinks after it
    open: their last rows unflushed, their files unclosed."""
    from jrl.training import RunSpec, train

    closed = []

    class Sink:
        def __init__(self, name):
            self.name = name

        def write(self, rows):
            pass

        def close(self):
            closed.append(self.name)
            if self.name == "failing":
                raise OSError("disk full")

    spec = RunSpec(agent="tabular", env="CliffWalking-v0", config={"num_episodes": 2},
                   num_seeds=1, chunk_size=40)  # fmt: skip
    with pytest.raises(OSError, match="disk full"):
        train(spec, tmp_path / "run", progress=False, sinks=lambda: [Sink("failing"), Sink("next")])
    assert closed == ["failing", "next"]


def test_an_infinite_value_is_left_out_as_metrics_jsonl_leaves_it(tmp_path):
    """metrics.jsonl writes an infinity as null (strict JSON has none), which the sinks
    leave out: rows handed to a sink directly read the same, a mean of the finite seeds
    (an infinite one made the grid point's mean infinite)."""
    rows = [
        {"step": 10, "grid_point": 0, "seed": 0, "loss": 0.5},
        {"step": 10, "grid_point": 0, "seed": 1, "loss": math.inf},
        {"step": 10, "grid_point": 0, "seed": 2, "loss": None},
        {"step": 10, "grid_point": 0, "seed": 3, "loss": 1.5},
    ]
    with TensorBoardSink(tmp_path, per_seed=True) as sink:
        sink.write(rows)
    scalars = read_scalars(tmp_path)
    assert scalars[("grid_point_0", "loss")] == [(10, 1.0)]  # (0.5 + 1.5) / 2
    assert ("grid_point_0", "loss/seed_1") not in scalars
    assert ("grid_point_0", "loss/seed_2") not in scalars


def test_tensorboard_sink_writes_every_flush_secs_it_is_given(tmp_path, monkeypatch):
    """flush_secs (30 s by default, not tensorboardX's 120) reaches every writer."""
    import tensorboardX

    made = []

    class Writer:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def add_scalar(self, tag, value, global_step):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tensorboardX, "SummaryWriter", Writer)
    with TensorBoardSink(tmp_path, flush_secs=5) as sink:
        sink.write(ROWS)
    with TensorBoardSink(tmp_path) as sink:
        sink.write(ROWS[:1])
    assert [kwargs["flush_secs"] for kwargs in made] == [5, 5, 30]
    assert [kwargs["logdir"] for kwargs in made] == [
        str(tmp_path / "grid_point_0"),
        str(tmp_path / "grid_point_1"),
        str(tmp_path / "grid_point_0"),
    ]


def test_tensorboard_missing_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as uninstalled
    message = r"TensorBoardSink needs tensorboardX: pip install 'jrl\[tensorboard\]'"
    with pytest.raises(ImportError, match=message):
        TensorBoardSink(tmp_path)
    with pytest.raises(ImportError, match=message):
        make_sinks(["tensorboard"], tmp_path)


def test_the_sinks_made_are_closed_when_a_later_one_fails_to_start(tmp_path, monkeypatch):
    """W&B installed but failing to start (no network for an online run): the
    TensorBoard sink made before it is closed, not left to the garbage collector."""
    closed = []
    monkeypatch.setattr(TensorBoardSink, "close", lambda self: closed.append(self.logdir))

    def init(**kwargs):
        raise RuntimeError("wandb.init timed out")

    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(init=init))
    with pytest.raises(RuntimeError, match="timed out"):
        make_sinks(["tensorboard", "wandb"], tmp_path / "run")
    assert closed == [tmp_path / "run" / "tensorboard"]


def test_a_wandb_sink_logs_its_steps_in_order_across_grid_points(monkeypatch):
    """One log call per step, in the order of the steps (W&B's _step counts the calls):
    a grid point whose rows come later with an earlier step is not logged after the
    steps of the grid point before it."""
    runs = []
    monkeypatch.setitem(
        sys.modules,
        "wandb",
        SimpleNamespace(init=lambda **init: runs.append(RecordingWandbRun(**init)) or runs[-1]),
    )
    sink = WandbSink(mode="offline")
    sink.write([
        {"step": 300, "grid_point": 0, "seed": 0, "loss": 1.0},
        {"step": 100, "grid_point": 1, "seed": 0, "loss": 2.0},
        {"step": 200, "grid_point": 1, "seed": 0, "loss": 3.0},
        {"step": 200, "grid_point": 0, "seed": 0, "loss": 4.0},
    ])  # fmt: skip
    sink.close()
    (run,) = runs
    assert run.logged == [
        {"step": 100, "loss/grid_point_1": 2.0},
        {"step": 200, "loss/grid_point_0": 4.0, "loss/grid_point_1": 3.0},
        {"step": 300, "loss/grid_point_0": 1.0},
    ]


def test_check_sinks_refuses_a_sink_whose_package_is_missing(monkeypatch):
    """What the command line runs before it starts anything: a missing extra is named
    there, not found once the run directory is made."""
    from jrl.sinks import check_sinks

    check_sinks(["tensorboard"])  # installed here
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails, as uninstalled
    with pytest.raises(ImportError, match=r"pip install 'jrl\[wandb\]'"):
        check_sinks(["tensorboard", "wandb"])
