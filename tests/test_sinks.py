"""Metric sinks: TensorBoard event files read back, name checks, the wandb extra."""

import importlib.util
import math
import struct

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
    with pytest.raises(ValueError, match="a metric row needs step, grid_point, seed; missing"):
        TensorBoardSink(tmp_path / "other").write([{"step": 1, "seed": 0, "loss": 1.0}])


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


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_wandb_missing_says_which_extra_to_install(tmp_path):
    message = r"WandbSink needs the wandb package: pip install 'jrl\[wandb\]'"
    with pytest.raises(ImportError, match=message):
        WandbSink(project="jrl-test", mode="offline", directory=tmp_path)
    with pytest.raises(ImportError, match=message):
        make_sinks(["wandb"], tmp_path)
    # One missing extra fails the whole list (the sinks already made are closed).
    with pytest.raises(ImportError, match=message):
        make_sinks(["tensorboard", "wandb"], tmp_path / "both")
