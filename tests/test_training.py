"""Chunked training: resume equals a run that never stopped (tabular, DQN, PPO; after a
clean stop, SIGTERM and SIGKILL), files stay readable, checkpoints and configs fail
clearly."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import yaml

from jrl import checkpoint
from jrl.run_dir import read_rows
from jrl.training import RunSpec, build, load_spec, make_init, train

pytestmark = pytest.mark.timeout(600)

SPECS = {
    "tabular": RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 30, "steps_per_iteration": 16},
        hparams=({"alpha": 0.5}, {"alpha": 0.1}),
        num_seeds=2,
        chunk_size=20,
    ),
    "dqn": RunSpec(
        agent="dqn",
        env="CartPole-v1",
        config={
            "total_timesteps": 3000,
            "log_frequency": 500,
            "learning_starts": 500,
            "buffer_size": 1000,
        },
        num_seeds=2,
        chunk_size=2,
    ),
    "ppo": RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": 3072, "num_steps": 64},
        hparams=({"lr": 1e-3},),
        num_seeds=2,
        chunk_size=3,
    ),
}


def final_state(run_dir):
    spec = load_spec(run_dir)
    built = build(spec)
    like = make_init(built)(built.keys, built.grid)
    state, _ = checkpoint.restore(run_dir / "checkpoints", like, spec.fingerprint())
    return state


def assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("agent", sorted(SPECS))
def test_resumed_run_equals_a_run_that_never_stopped(agent, tmp_path):
    spec = SPECS[agent]
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    done = train(spec, whole, progress=False)
    assert done["status"] == "complete"
    stopped = train(spec, pieces, progress=False, max_chunks=1)
    assert stopped["status"] == "stopped" and stopped["updates_done"] == spec.chunk_size
    resumed = train(spec, pieces, resume=True, progress=False)
    assert resumed["status"] == "complete"
    rows = read_rows(whole / "metrics.jsonl")
    assert rows and rows == read_rows(pieces / "metrics.jsonl")
    assert {row["grid_point"] for row in rows} == set(range(len(spec.hparams)))
    assert {row["seed"] for row in rows} == set(range(spec.num_seeds))
    assert_same_state(final_state(whole), final_state(pieces))
    # The learning is real: the runs of different seeds differ.
    first = [row for row in rows if row["update"] == rows[-1]["update"]]
    assert len({json.dumps(row) for row in first}) == len(first)


def test_checkpoint_of_another_config_or_damaged_is_a_clear_error(tmp_path):
    spec = SPECS["ppo"]
    train(spec, tmp_path / "run", progress=False, max_chunks=1)
    other = RunSpec(**{**spec.__dict__, "hparams": ({"lr": 3e-4},)})
    with pytest.raises(checkpoint.CheckpointError, match="another configuration"):
        train(other, tmp_path / "run", resume=True, progress=False)
    built = build(spec)
    like = make_init(built)(built.keys, built.grid)
    wrong = jax.tree.map(lambda x: x[:, :1], like)
    with pytest.raises(checkpoint.CheckpointError, match="different state"):
        checkpoint.restore(tmp_path / "run" / "checkpoints", wrong, spec.fingerprint())
    for path in (tmp_path / "run" / "checkpoints").rglob("*"):
        if path.is_file() and path.parent.name != "checkpoints" and path.stat().st_size > 0:
            path.write_bytes(b"\x00garbage")
    with pytest.raises(checkpoint.CheckpointError, match="could not read checkpoint"):
        train(spec, tmp_path / "run", resume=True, progress=False)
    (tmp_path / "run" / "checkpoints" / "latest.json").write_text('{"chunk": 3, "pa')
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        train(spec, tmp_path / "run", resume=True, progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"num_minibatches": 3}}, "num_minibatches=3 must divide"),
        ({"config": {"num_envs": "eight"}}, r"config.num_envs must be an int"),
        ({"config": {"widths": [64]}}, r"config: unknown field\(s\) \['widths'\]"),
        ({"hparams": ({"lr": "fast"},)}, r"hparams\[0\].lr must be a number"),
        ({"hparams": ({"learning_rate": 1e-3},)}, r"unknown field\(s\) \['learning_rate'\]"),
        ({"agent": "a2c"}, "unknown agent 'a2c'"),
        ({"env": "CartPole-v9"}, "CartPole-v9"),
        ({"num_seeds": 0}, "num_seeds must be a positive int"),
    ],
)
def test_invalid_run_configs_name_the_field_before_compiling(change, message, tmp_path):
    spec = RunSpec(**{**SPECS["ppo"].__dict__, **change})
    with pytest.raises(ValueError, match=message):
        train(spec, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_torn_last_metrics_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 0}\n{"update": 1}\n{"upd')
    assert read_rows(path) == [{"update": 0}, {"update": 1}]
    path.write_text('{"update": 0}\n{"upd\n{"update": 2}\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        read_rows(path)


TRAIN_SCRIPT = """
import sys, yaml
from jrl.training import RunSpec, train
spec = RunSpec.from_dict(yaml.safe_load(open(sys.argv[1])))
train(spec, sys.argv[2], resume=len(sys.argv) > 3, progress=False)
"""


def start_training(spec_path, run_dir, *extra):
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, str(spec_path), str(run_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoints(run_dir, count, process, timeout=240):
    deadline = time.time() + timeout
    latest = run_dir / "checkpoints" / "latest.json"
    while time.time() < deadline:
        if latest.exists():
            try:
                if json.loads(latest.read_text())["info"]["updates_done"] >= count:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint in time")


KILLED = {
    "tabular": RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 150, "steps_per_iteration": 16},
        hparams=({"alpha": 0.5},),
        num_seeds=3,
        chunk_size=10,
    ),
    "dqn": RunSpec(
        agent="dqn",
        env="CartPole-v1",
        config={
            "total_timesteps": 6000,
            "log_frequency": 500,
            "learning_starts": 500,
            "buffer_size": 2000,
        },
        num_seeds=2,
        chunk_size=2,
    ),
    "ppo": RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": 6144, "num_steps": 64},
        num_seeds=2,
        chunk_size=4,
    ),
}


@pytest.mark.parametrize(
    ("agent", "how"),
    [
        ("tabular", signal.SIGKILL),
        ("tabular", signal.SIGTERM),
        ("dqn", signal.SIGKILL),
        ("ppo", signal.SIGKILL),
    ],
)
def test_killed_process_leaves_readable_files_and_resumes_to_the_same_numbers(agent, how, tmp_path):
    spec = KILLED[agent]
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec.to_dict()))
    train(spec, tmp_path / "whole", progress=False)

    run_dir = tmp_path / "killed"
    process = start_training(spec_path, run_dir)
    wait_for_checkpoints(run_dir, 2 * spec.chunk_size, process)
    os.kill(process.pid, how)
    _, err = process.communicate(timeout=120)
    if how == signal.SIGTERM:
        assert process.returncode == 0, err[-2000:]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "interrupted"
    else:
        assert process.returncode == -signal.SIGKILL
    # Every file is readable as it was left.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["agent"] == agent
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["seeds"] == list(range(spec.num_seeds)) and "versions" in meta
    json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    assert read_rows(run_dir / "metrics.jsonl")

    resumed = start_training(spec_path, run_dir, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert read_rows(run_dir / "metrics.jsonl") == read_rows(tmp_path / "whole" / "metrics.jsonl")
    assert_same_state(final_state(run_dir), final_state(tmp_path / "whole"))
