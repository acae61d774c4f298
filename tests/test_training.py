"""Chunked training: resume equals a run that never stopped (tabular, DQN, PPO; after a
clean stop, SIGKILL, SIGTERM and SIGINT), files stay readable whenever a process dies,
checkpoints and configs fail clearly and early.

Each agent's uninterrupted run is made once (module fixture) and its compiled chunks
are reused in this process (``jrl.training`` keeps the last few); the killed processes
build them again (read from the session's compilation cache, tests/conftest.py, where a
program has no progress callback)."""

import contextlib
import dataclasses
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from jrl import checkpoint, training
from jrl.host import compiler_options
from jrl.recent import Recent
from jrl.run_dir import cpu_model, load_yaml, read_rows, read_yaml
from jrl.training import (
    RunInUseError,
    RunSpec,
    build,
    load_spec,
    make_init,
    metric_rows,
    resolve,
    restore_state,
    shown_hparams,
    train,
)

pytestmark = pytest.mark.timeout(600)

# Sized so that a killed process still has several chunks to go after its second
# checkpoint, and small enough that a run takes about a second once compiled.
SPECS = {
    "tabular": RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 150, "steps_per_iteration": 32},
        hparams=({"alpha": 0.5}, {"alpha": 0.1}),
        num_seeds=2,
        chunk_size=10,
    ),
    "dqn": RunSpec(
        agent="dqn",
        env="CartPole-v1",
        config={
            "total_timesteps": 12000,
            "log_frequency": 500,
            "learning_starts": 500,
            "buffer_size": 2000,
            "eval_every": 3,
            "eval_episodes": 2,
        },
        num_seeds=2,
        chunk_size=2,
    ),
    "ppo": RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": 8192, "num_steps": 64, "eval_every": 5, "eval_episodes": 2},
        hparams=({"lr": 1e-3},),
        num_seeds=2,
        chunk_size=4,
    ),
    "reinforce": RunSpec(
        agent="reinforce",
        env="CartPole-v1",
        config={"num_envs": 4, "total_timesteps": 8192, "eval_every": 5, "eval_episodes": 2},
        num_seeds=2,
        chunk_size=5,  # 32 updates: a shorter last chunk
    ),
}


def assert_same_state(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(autouse=True)
def checkpoint_every_chunk(monkeypatch):
    """This module's runs checkpoint every chunk (train's default: every 30 s), as the
    kills, resumes and evaluations of their checkpoints here need."""
    monkeypatch.setattr(training, "CHECKPOINT_EVERY", 0.0)


@pytest.fixture(scope="module", autouse=True)
def keep_compiled_runs():
    """The reference runs' compiled chunks stay for the module's resumes in this process
    (four were kept: the DQN reference's was evicted and compiled again, ~20 s)."""
    from jrl import training

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training._BUILT, "keep", 16)
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """agent -> (run dir, metric rows, final state) of a run that never stopped."""
    made = {}

    def get(agent):
        if agent not in made:
            run_dir = tmp_path_factory.mktemp(f"whole_{agent}")
            summary = train(SPECS[agent], run_dir, progress=False)
            assert summary["status"] == "complete"
            rows = read_rows(run_dir / "metrics.jsonl")
            made[agent] = run_dir, rows, restore_state(run_dir)[1]
        return made[agent]

    return get


def assert_rows_are_a_whole_run(rows, spec):
    """Every (grid point, seed) has updates 0..n-1 exactly once, and seeds differ."""
    runs = {}
    for row in rows:
        runs.setdefault((row["grid_point"], row["seed"]), []).append(row["update"])
    assert set(runs) == {(g, s) for g in range(len(spec.hparams)) for s in range(spec.num_seeds)}
    for updates in runs.values():
        assert updates == list(range(len(updates))) and len(updates) > 2 * spec.chunk_size
    last = [row for row in rows if row["update"] == rows[-1]["update"]]
    assert len({json.dumps({**row, "seed": 0}) for row in last}) == len(last)
    every = spec.config.get("eval_every")
    if every:  # evaluated after every `every`-th update, counted across chunks, and the last
        for row in rows:
            due = (row["update"] + 1) % every == 0 or row["update"] == last[0]["update"]
            assert (row["eval_return"] is not None) == due, row


@pytest.mark.parametrize("agent", sorted(SPECS))
def test_stopped_and_resumed_run_equals_a_run_that_never_stopped(
    agent, reference, tmp_path, monkeypatch
):
    """...and a resume takes its summary from the checkpoint's record, not by parsing
    every row of metrics.jsonl again (a long run's millions)."""
    spec = SPECS[agent]
    whole, rows, state = reference(agent)
    assert_rows_are_a_whole_run(rows, spec)
    assert yaml.safe_load((whole / "config.yaml").read_text()) == resolve(spec).to_dict()

    def no_rereading(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(training, "iter_rows", no_rereading)
    run_dir = tmp_path / "pieces"
    stopped = train(spec, run_dir, progress=False, max_chunks=1)
    assert stopped["status"] == "stopped" and stopped["updates_done"] == spec.chunk_size
    again = train(spec, run_dir, resume=True, progress=False, max_chunks=2)
    assert again["updates_done"] == 3 * spec.chunk_size
    assert train(spec, run_dir, resume=True, progress=False)["status"] == "complete"
    assert read_rows(run_dir / "metrics.jsonl") == rows
    assert_same_state(restore_state(run_dir)[1], state)
    assert (
        json.loads((run_dir / "summary.json").read_text())["grid"]
        == json.loads((whole / "summary.json").read_text())["grid"]
    )
    summary = json.loads((whole / "summary.json").read_text())
    shown = {name for point in summary["grid"] for name in point if name.startswith("final_")}
    assert shown and shown <= set(summary["definitions"])  # every final_* field is defined


def test_a_shorter_last_chunk_runs_in_the_program_of_the_others(reference, tmp_path, monkeypatch):
    """32 updates in chunks of 5: the last chunk's 2 updates run in the one compiled
    chunk program, a loop of as many trips as the chunk has updates (a program of their
    own was a second compile, ~4 s for a default PPO run on CartPole, stalling its end
    or, compiled in the background, slowing its chunks), with the numbers and rows of
    chunks of 4."""
    from jrl import training

    made = []
    make_chunk = training.make_chunk
    monkeypatch.setattr(
        training,
        "make_chunk",
        lambda built, capacity: made.append(capacity) or make_chunk(built, capacity),
    )
    spec = dataclasses.replace(SPECS["ppo"], chunk_size=5)
    assert train(spec, tmp_path / "run", progress=False)["status"] == "complete"
    assert made == [5]
    _, rows, state = reference("ppo")
    order = lambda row: (row["grid_point"], row["seed"], row["update"])  # noqa: E731
    assert sorted(read_rows(tmp_path / "run" / "metrics.jsonl"), key=order) == sorted(
        rows, key=order
    )  # no row past the last update, none missing
    assert_same_state(restore_state(tmp_path / "run")[1], state)


def test_jrl_train_runs_the_numbers_run_sweep_does(reference):
    """README: the tabular agents give the same numbers in jrl train's chunks as in one
    run_sweep call on the root key (every grid point seeing the same seed keys)."""
    from jrl.agents.tabular import make_train
    from jrl.sweep import run_sweep

    spec = SPECS["tabular"]
    whole, _, state = reference("tabular")
    built = build(resolve(spec))
    train_fn = make_train(built.config, built.env, built.env_params)
    swept, _ = run_sweep(train_fn, jax.random.key(spec.seed), built.grid, spec.num_seeds)
    np.testing.assert_array_equal(np.asarray(state.q_values), np.asarray(swept.q_values))
    assert not np.array_equal(state.q_values[0, 0], state.q_values[0, 1])  # seeds differ


def test_evaluation_curves_have_a_point_per_evaluation(reference):
    """``jrl plot --metric eval_return`` draws the evaluations only (no filled steps
    between them); episode returns keep a point per update in which an episode ended
    (in some seed)."""
    from jrl.run_analysis import learning_curves

    whole, rows, _ = reference("ppo")
    ((label, values),) = learning_curves([whole], "eval_return")[0].items()
    x = learning_curves([whole], "eval_return")[1][label]
    every, batch = SPECS["ppo"].config["eval_every"], 4 * SPECS["ppo"].config["num_steps"]
    updates = len(rows) // SPECS["ppo"].num_seeds
    assert updates % every  # so the last update's evaluation is one of its own
    np.testing.assert_array_equal(x, batch * np.array([*range(every, updates, every), updates]))
    assert values.shape == (2, len(x)) and np.isfinite(values).all()
    returns = [(row["update"], row["episode_return"]) for row in rows]
    ended = sorted({u for u, value in returns if value is not None and np.isfinite(value)})
    np.testing.assert_array_equal(learning_curves([whole])[1][label], batch * (np.array(ended) + 1))
    assert len(ended) > 2 * len(x)  # a point per update with an episode end, not per evaluation
    with pytest.raises(ValueError, match="no rows with 'entropy'.*its metrics: .*episode_return"):
        learning_curves([reference("tabular")[0]], "entropy")
    # A mistyped path is no run, not a run with "no rows yet".
    with pytest.raises(FileNotFoundError, match="no_such_run holds no run"):
        learning_curves([whole.parent / "no_such_run"])


def test_curves_read_a_long_runs_metrics_one_row_at_a_time(reference, tmp_path):
    """jrl plot of a run with millions of metric rows does not hold them as dicts (1000
    seeds x 1500 updates had peaked at 3.3 GB): its columns are kept as machine numbers.
    Over 40,000 rows the peak of Python's allocations stays under a quarter of what the
    rows' dicts alone would take, with the same curve as the rows give."""
    import tracemalloc

    from jrl.run_analysis import learning_curves

    whole, rows, _ = reference("ppo")
    big = shutil.copytree(whole, tmp_path / "big")
    last = {**rows[-1], "episode_return": 1.0}
    updates = 20_000
    with open(big / "metrics.jsonl", "w") as file:
        for update in range(updates):
            for seed in range(2):
                row = {**last, "seed": seed, "update": update, "timesteps": 512 * (update + 1)}
                file.write(json.dumps({**row, "episode_return": update + seed / 2}) + "\n")
    tracemalloc.start()
    try:
        curves, xs = learning_curves([big])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ((label, values),) = curves.items()
    np.testing.assert_array_equal(values, [np.arange(updates), np.arange(updates) + 0.5])
    np.testing.assert_array_equal(xs[label], 512 * (np.arange(updates) + 1))
    assert peak < 2 * updates * sys.getsizeof(last) / 4
    # Counts written as floats (a file made by hand or by another tool) read as before.
    rows = [{**last, "seed": s, "update": 0.0, "timesteps": 16.0} for s in range(2)]
    (big / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    ((label, values),) = learning_curves([big])[0].items()
    assert values.shape == (2, 1) and learning_curves([big])[1][label].tolist() == [16]
    (big / "metrics.jsonl").write_text('{"grid_point": 0, "seed": 0, "update": 0, '
                                       '"timesteps": 1e400, "episode_return": 1.0}\n')  # fmt: skip
    with pytest.raises(ValueError, match="timesteps is not a finite number"):
        learning_curves([big])


@pytest.mark.parametrize("agent", ["dqn", "ppo", "reinforce"])
def test_the_last_in_run_evaluation_equals_jrl_evals_with_its_defaults(
    agent, reference, tmp_path, capsys
):
    """README: the final eval_return equals `jrl eval`'s (same keys, split from
    key(eval_seed); same cut). The run's last row evaluates its final state, which `jrl
    eval` plays from the checkpoint — also where eval_every does not divide the updates
    (PPO's 32 by 5). jrl eval's defaults are the run's own eval_episodes, eval_seed and
    cut: they were always 10 episodes on key(12345), whatever the run had evaluated."""
    from jrl.cli import evaluate

    whole, rows, _ = reference(agent)
    last = [row for row in rows if row["update"] == rows[-1]["update"]]
    assert all(row["eval_return"] is not None for row in last)
    run_dir = shutil.copytree(whole, tmp_path / "run")
    capsys.readouterr()
    evaluate([run_dir], seed=7, sampled=True)  # sampled: the plain defaults; flags win
    written = json.loads((run_dir / "eval.json").read_text())
    assert (written["episodes"], written["seed"], written["max_steps"]) == (10, 7, 1000)
    assert "defaults taken from" not in capsys.readouterr().err
    evaluate([run_dir], seed=12345)
    said = capsys.readouterr().err
    assert "jrl eval: --episodes 2, --max-steps 500 (defaults taken from the run's own" in said
    returns = np.asarray(json.loads((run_dir / "eval.json").read_text())["returns"])
    assert returns.shape == (1, 2, 2) and len({*returns.ravel()}) > 1
    for row in last:
        assert row["eval_return"] == pytest.approx(returns[0, row["seed"]].mean(), rel=1e-6)


def test_jrl_eval_reports_the_status_of_the_checkpoint_it_read(reference, tmp_path, capsys):
    """A run that goes on while `jrl eval` plays its checkpoint: summary.json has moved on
    (complete) by the time the episodes end, but the checkpoint read was taken while the
    run was under way, and eval.json and stderr say so."""
    from jrl.cli import evaluate

    whole, _, _ = reference("dqn")
    run_dir = shutil.copytree(whole, tmp_path / "run")
    latest = run_dir / "checkpoints" / "latest.json"
    assert json.loads(latest.read_text())["info"]["run_status"] == "complete"
    earlier = sorted((run_dir / "checkpoints").glob("chunk_*.json"))[0]
    record = json.loads(earlier.read_text())
    assert record["info"] == {**record["info"], "run_status": "running", "updates_done": 22}
    latest.write_text(earlier.read_text())  # the newest checkpoint when jrl eval began
    capsys.readouterr()
    evaluate([run_dir], episodes=2)
    evaluated = json.loads((run_dir / "eval.json").read_text())["checkpoint"]
    assert evaluated == {"updates_done": 22, "total_updates": 24, "run_status": "running"}
    said = capsys.readouterr().err
    assert f"{run_dir} is complete now, after 24 updates (it went on while it was" in said
    assert "evaluated its checkpoint after 22 of 24 updates" in said
    # A record from before it kept the status: summary.json's, if of the same update.
    del record["info"]["run_status"]
    latest.write_text(json.dumps(record))
    evaluate([run_dir], episodes=2)
    assert json.loads((run_dir / "eval.json").read_text())["checkpoint"]["run_status"] == "running"
    final = json.loads((run_dir / "checkpoints" / "chunk_00000024.json").read_text())
    del final["info"]["run_status"]
    latest.write_text(json.dumps(final))
    evaluate([run_dir], episodes=2)
    assert json.loads((run_dir / "eval.json").read_text())["checkpoint"]["run_status"] == "complete"


def test_evaluating_a_run_again_in_one_process_compiles_nothing(reference, compilations):
    """A notebook evaluating a run's checkpoints as it trains: each evaluation compiled
    its episodes again (a jit made per call, with the keys inside it)."""
    from jrl.run_analysis import evaluation

    whole, _, _ = reference("ppo")
    first, _ = evaluation(whole, 3, 0, 500, True, 0.0, None)  # sampled: the keys tell
    compilations.clear()
    again, _ = evaluation(whole, 3, 1, 500, True, 0.0, None)  # other keys, same shapes
    assert compilations == []
    same, _ = evaluation(whole, 3, 0, 500, True, 0.0, None)
    assert same["returns"] == first["returns"] != again["returns"]


def test_a_run_written_before_a_config_field_was_added_still_evaluates_and_resumes(
    reference, tmp_path, capsys
):
    """DQNConfig.kernel_init (its default, orthogonal, the only initialisation before)
    changed every older DQN run's fingerprint: each was refused as if its config.yaml
    had been edited. A config.yaml as written (its hash the recorded fingerprint) whose
    missing fields hold what the commits before them did is the same configuration; an
    edit, or a missing field with another value, is still refused."""
    from jrl.run_analysis import evaluation
    from jrl.training import _fingerprint_of, recorded_fingerprint

    whole, rows, state = reference("dqn")
    old = shutil.copytree(whole, tmp_path / "old")
    written = load_yaml((old / "config.yaml").read_text())
    assert written["config"].pop("kernel_init") == "orthogonal"
    (old / "config.yaml").write_text(yaml.safe_dump(written, sort_keys=False))
    legacy = _fingerprint_of(load_yaml((old / "config.yaml").read_text()))

    def recorded(fingerprint):  # as the older jrl wrote meta.json and the records
        meta = json.loads((old / "meta.json").read_text())
        (old / "meta.json").write_text(json.dumps({**meta, "fingerprint": fingerprint}))
        for path in (old / "checkpoints").glob("*.json"):
            record = json.loads(path.read_text())
            record["info"]["fingerprint"] = fingerprint
            path.write_text(json.dumps(record))

    recorded(legacy)
    spec = load_spec(old)
    assert spec.fingerprint() != legacy and recorded_fingerprint(old, spec) == legacy
    result, _ = evaluation(old, 2, 0, 100, False, 0.0, None)
    assert (
        result["checkpoint"]["updates_done"]
        == json.loads((whole / "summary.json").read_text())["updates_done"]
    )
    assert train(spec, old, resume=True, progress=False)["status"] == "complete"
    # Another spec than config.yaml's, given to train: not the run's, whatever its file.
    other = resolve(RunSpec(**{**spec.__dict__, "hparams": ({"lr": 0.5},)}))
    assert recorded_fingerprint(old, other) is None
    with pytest.raises(checkpoint.CheckpointError, match="started with another configuration"):
        train(other, old, resume=True, progress=False)
    # An edit is not an older jrl's file: refused as before.
    edited = dict(written)
    edited["hparams"] = [{**edited["hparams"][0], "lr": 0.5}]
    (old / "config.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert recorded_fingerprint(old, load_spec(old)) is None
    with pytest.raises(checkpoint.CheckpointError, match="started with another configuration"):
        train(load_spec(old), old, resume=True, progress=False)
    # jrl plot labels curves from config.yaml: it says the labels may not be the run's.
    from jrl.run_analysis import learning_curves

    capsys.readouterr()
    learning_curves([old])
    assert "config.yaml is not what the run was started with" in capsys.readouterr().err
    # A missing field that no older jrl lacked (not in ADDED_CONFIG_FIELDS, a
    # hyperparameter, a run field): refused.
    for where, name in (("config", "buffer_size"), ("hparams", "lr"), (None, "chunk_size")):
        lacking = json.loads(json.dumps(written))
        (lacking if where is None else lacking[where] if where == "config"
         else lacking[where][0]).pop(name)  # fmt: skip
        (old / "config.yaml").write_text(yaml.safe_dump(lacking, sort_keys=False))
        recorded(_fingerprint_of(load_yaml((old / "config.yaml").read_text())))
        assert recorded_fingerprint(old, load_spec(old)) is None, name


# The fields of each agent's config and hyperparameters when run directories began
# (ffcdc12, 2026-11-25): the first config.yaml a run directory could hold.
FIRST_RUN_FIELDS = {
    "ppo": {
        "config": {"activation", "anneal_lr", "clip_value_loss", "hidden_sizes", "network",
                   "num_envs", "num_minibatches", "num_steps", "total_timesteps",
                   "update_epochs"},
        "hparams": {"clip_eps", "ent_coef", "gae_lambda", "gamma", "lr", "max_grad_norm",
                    "reward_scale", "vf_coef"},
    },
    "dqn": {
        "config": {"activation", "batch_size", "buffer_size", "double_dqn", "hidden_sizes",
                   "learning_starts", "log_frequency", "network", "num_envs", "target_update",
                   "target_update_frequency", "total_timesteps", "train_frequency"},
        "hparams": {"epsilon_decay_fraction", "epsilon_end", "epsilon_start", "gamma",
                    "huber_delta", "lr", "max_grad_norm", "tau"},
    },
    "reinforce": {  # jrl train reinforce from 2026-12-08 on
        "config": {"activation", "anneal_lr", "eval_episodes", "eval_every", "eval_max_steps",
                   "eval_seed", "hidden_sizes", "network", "normalize_advantages", "num_envs",
                   "num_steps", "total_timesteps"},
        "hparams": {"ent_coef", "gamma", "lr", "max_grad_norm", "vf_coef"},
    },
    "tabular": {
        "config": {"algorithm", "exploration", "max_steps", "num_episodes", "planning_steps",
                   "schedule", "steps_per_iteration"},
        "hparams": {"algorithm", "alpha", "decay_steps", "epsilon", "epsilon_end", "gamma",
                    "kappa", "q_init", "temperature", "temperature_end"},
    },
}  # fmt: skip


def test_every_config_field_added_since_run_directories_began_says_how_older_runs_behaved():
    """An older run's config.yaml lacks the fields added after it was written: resume,
    eval and plot take it for the run it was only where ADDED_CONFIG_FIELDS gives each
    lacking field's value before it existed (the new default may differ). A field added
    without an entry there would have left every older run refused."""
    from jrl.training import ADDED_CONFIG_FIELDS, AGENTS

    def names(kind):
        return (
            {field.name for field in dataclasses.fields(kind)}
            if dataclasses.is_dataclass(kind)
            else set(kind._fields)
        )

    assert set(AGENTS) == set(FIRST_RUN_FIELDS), "a new agent: add its fields to FIRST_RUN_FIELDS"
    assert set(ADDED_CONFIG_FIELDS) <= set(AGENTS)
    for agent, spec in AGENTS.items():
        first = FIRST_RUN_FIELDS[agent]
        added = set(ADDED_CONFIG_FIELDS.get(agent, {}))
        assert not added & first["config"], (agent, added & first["config"])
        assert names(spec.config) == first["config"] | added, (
            f"{agent}: a config field added or removed since run directories began "
            f"({sorted(names(spec.config) ^ (first['config'] | added))}): give each added "
            "field the value that reproduces runs written before it in "
            "jrl.training.ADDED_CONFIG_FIELDS"
        )
        for name, before in ADDED_CONFIG_FIELDS.get(agent, {}).items():
            assert type(before) is type(getattr(spec.config(), name)), (agent, name)
        # Older runs with a lacking hyperparameter are refused (recorded_fingerprint).
        assert names(spec.hparams) == first["hparams"], (
            f"{agent}: a hyperparameter added or removed since run directories began: "
            "recorded_fingerprint refuses every older run of it until it says how they behaved"
        )
    assert {field.name for field in dataclasses.fields(RunSpec)} == {
        "agent", "env", "env_overrides", "config", "hparams", "num_seeds", "seed", "chunk_size"
    }  # fmt: skip


def test_jrl_eval_of_a_run_directory_it_cannot_write_prints_its_results(
    reference, tmp_path, capsys, monkeypatch
):
    """An archived run or a colleague's read-only share: jrl eval played every episode,
    then failed writing eval/ and threw the results away (read-only file system)."""
    import errno

    from jrl import run_dir as run_dir_module
    from jrl.cli import evaluate

    whole, _, _ = reference("tabular")
    run_dir = shutil.copytree(whole, tmp_path / "archived")
    write = run_dir_module.write_bytes_atomic

    def read_only(path, data):
        if Path(path).is_relative_to(run_dir):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return write(path, data)

    monkeypatch.setattr(run_dir_module, "write_bytes_atomic", read_only)
    capsys.readouterr()
    evaluate([run_dir], episodes=2)
    said = capsys.readouterr()
    assert "grid point 0 (alpha=0.5): mean return" in said.out
    assert f"jrl eval: {run_dir} cannot be written (Read-only file system)" in said.err
    assert not (run_dir / "eval.json").exists() and not list((run_dir / "eval").glob("*"))
    # Only eval/ read-only: eval.json is written, and the note says which was not.
    monkeypatch.setattr(
        run_dir_module, "write_bytes_atomic",
        lambda path, data: read_only(path, data) if "eval" in Path(path).parent.name
        else write(path, data),
    )  # fmt: skip
    (run_dir / "eval").mkdir(exist_ok=True)  # empty: no earlier report to speak of
    evaluate([run_dir], episodes=2)
    said = capsys.readouterr().err
    assert "eval.json is written, its eval/ report is not" in said and "earlier" not in said
    assert (run_dir / "eval.json").exists()
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "aggregates.md").write_text("an earlier evaluation's\n")
    evaluate([run_dir], episodes=2)
    assert "eval/ still holds an earlier evaluation's" in capsys.readouterr().err


def test_a_seed_with_no_episode_yet_is_left_out_of_the_curves(reference, tmp_path, capsys):
    """A run read early in training, where one seed has not ended an episode: its other
    seeds are plotted, and stderr says which seed is missing (or which run, where no
    seed of it has)."""
    from jrl.run_analysis import learning_curves, plot_runs

    whole, rows, _ = reference("ppo")
    early = tmp_path / "early"
    shutil.copytree(whole, early)
    seeds = sorted({row["seed"] for row in rows})
    rows = [{**row, "episode_return": None} if row["seed"] == seeds[1] else row for row in rows]
    (early / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    ((label, values),) = learning_curves([early])[0].items()
    ((_, both),) = learning_curves([whole])[0].items()
    assert values.shape[0] == 1 and both.shape[0] == 2 and np.isfinite(values).all()
    assert f"seed(s) [{seeds[1]}] logged no episode_return yet" in capsys.readouterr().err
    assert plot_runs([early], tmp_path / "early.png").stat().st_size > 0
    # Beside another run, a run none of whose seeds has ended an episode is named too.
    none_yet = shutil.copytree(whole, tmp_path / "none_yet")
    rows = [{**row, "episode_return": None} for row in rows]
    (none_yet / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    capsys.readouterr()
    assert list(learning_curves([early, none_yet])[0]) == [label]
    said = f"{label.replace('early', 'none_yet')}: no seed logged episode_return yet (or only NaN"
    assert said in capsys.readouterr().err
    # A seed with no rows at all (metrics.jsonl cut short or cleaned by hand) is named too:
    # the curve had been drawn from the other alone, without a word.
    cut = shutil.copytree(whole, tmp_path / "cut")
    kept = [row for row in read_rows(whole / "metrics.jsonl") if row["seed"] == seeds[0]]
    (cut / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in kept))
    ((label, values),) = learning_curves([cut])[0].items()
    assert values.shape[0] == 1
    said = f"{label}: seed(s) [{seeds[1]}] have no rows with episode_return in metrics.jsonl"
    assert said in capsys.readouterr().err


def test_progress_bar_counts_the_steps_of_every_run(reference, tmp_path, capsys):
    reference("ppo")  # compiled in this process already
    train(SPECS["ppo"], tmp_path / "run", progress=True, max_chunks=2)
    err = capsys.readouterr().err
    # 2 chunks x 4 updates x 256 steps x 2 seeds of 32 x 256 x 2, with a rate and an ETA.
    assert "ppo CartPole-v1 (2 runs)" in err and "step/s]" in err
    assert "4.10k/16.4k [" in err and "<00:" in err
    assert "compil" not in err  # nothing compiled: nothing said of it


def test_progress_says_what_it_compiles_before_the_bar_and_how_long_it_took(tmp_path, capsys):
    """The bar appears once the chunk is compiled: seconds here, minutes for a CNN or on
    a GPU, which passed in silence."""
    spec = dataclasses.replace(SPECS["tabular"], chunk_size=3)  # a program of its own
    train(spec, tmp_path / "run", progress=True, max_chunks=1)
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    said = "jrl: compiling tabular CliffWalking-v0 (4 runs, 3 updates a chunk) ..."
    compiling = lines.index(said)
    compiled = next(i for i, line in enumerate(lines) if line.startswith("jrl: compiled in "))
    bar = next(i for i, line in enumerate(lines) if "tabular CliffWalking-v0 (4 runs)" in line)
    assert compiling < compiled < bar
    seconds = float(lines[compiled].removeprefix("jrl: compiled in ").removesuffix(" s"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert seconds == pytest.approx(summary["compile_seconds_this_call"], abs=0.06) and seconds > 0
    # One run is "1 run" (a one-seed run said "1 runs"), several runs count grid x seeds.
    for points, seeds, said in (([{}], 1, "1 run"), ([{}, {}], 3, "6 runs")):
        one = dataclasses.replace(spec, hparams=points, num_seeds=seeds)
        assert training._runs(types.SimpleNamespace(spec=one)) == said


def test_progress_bar_of_tabular_runs_counts_the_steps_they_took(reference, tmp_path, monkeypatch):
    """A tabular run ends at its episode budget, within a chunk: the bar counted every
    chunk's whole step allowance for every run (~30x the steps taken, on CatRoom)."""
    from jrl import training

    _, rows, _ = reference("tabular")
    last = {}
    for row in rows:
        last[row["grid_point"], row["seed"]] = row["timesteps"]
    bars = []

    def kept(*args):
        bars.append(make_bar(*args))
        return bars[-1]

    make_bar = training._progress
    monkeypatch.setattr(training, "_progress", kept)
    spec = SPECS["tabular"]
    steps_per_update = spec.config["steps_per_iteration"] * spec.num_seeds * len(spec.hparams)
    summary = train(spec, tmp_path / "whole", progress=True)
    assert bars[0].n == sum(last.values())
    assert bars[0].n < summary["updates_done"] * steps_per_update  # not every run took every step
    run_dir = tmp_path / "resumed"
    train(spec, run_dir, progress=True, max_chunks=2)
    train(spec, run_dir, resume=True, progress=True)
    assert bars[1].n == 2 * spec.chunk_size * steps_per_update
    assert bars[2].initial == bars[1].n and bars[2].n == sum(last.values())
    # A complete run resumed runs nothing: no bar (one stood at 100%, printed twice).
    assert train(spec, run_dir, resume=True, progress=True)["status"] == "complete"
    assert bars[3] is None


def test_a_resume_under_other_xla_flags_or_versions_says_its_numbers_may_differ(
    tmp_path, capsys, monkeypatch
):
    """A resume gives a run that never stopped's numbers only in the same setting: a
    resume under other XLA_FLAGS diverged from update 252 of 585 without a word."""
    run_dir = tmp_path / "run"
    train(SPECS["tabular"], run_dir, progress=False, max_chunks=1)
    train(SPECS["tabular"], run_dir, progress=False, resume=True, max_chunks=1)
    assert "resumes at update" not in capsys.readouterr().err  # the same setting
    flags = os.environ.get("XLA_FLAGS", "")
    monkeypatch.setenv("XLA_FLAGS", f"{flags} --xla_cpu_enable_fast_math=false".strip())
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["resumes"][-1]["versions"]["jax"] = "0.0.1"  # as if the last process had another
    (run_dir / "meta.json").write_text(json.dumps(meta))
    train(SPECS["tabular"], run_dir, progress=False, resume=True, max_chunks=1)
    err = capsys.readouterr().err
    assert f"resumes at update {2 * SPECS['tabular'].chunk_size}" in err
    assert "XLA_FLAGS: " in err and "--xla_cpu_enable_fast_math=false'" in err
    assert "versions: {'jax': '0.0.1'} -> {'jax': " in err
    assert "commit" not in err and "cpu:" not in err  # what did not change is not named
    assert len(json.loads((run_dir / "meta.json").read_text())["resumes"]) == 2
    # A complete run resumed has nothing left to run: no warning, no resume recorded.
    train(SPECS["tabular"], run_dir, progress=False, resume=True)
    monkeypatch.setenv("XLA_FLAGS", flags)
    capsys.readouterr()
    assert train(SPECS["tabular"], run_dir, progress=False, resume=True)["status"] == "complete"
    assert "resumes at update" not in capsys.readouterr().err
    assert len(json.loads((run_dir / "meta.json").read_text())["resumes"]) == 3


# A tabular run that ends by itself inside its first chunk (updates_run < 400); one
# program, compiled once for the tests that use it.
ENDS_IN_ITS_FIRST_CHUNK = RunSpec(
    agent="tabular", env="CliffWalking-v0", config={"num_episodes": 20}, chunk_size=400
)


def test_summary_counts_the_updates_tabular_runs_took_not_their_whole_chunk(tmp_path):
    """Tabular runs end by themselves inside a chunk: CliffWalking's 50 episodes took 166
    updates of a 1000-update chunk, and summary.json and jrl train said 1000."""
    spec = ENDS_IN_ITS_FIRST_CHUNK
    summary = train(spec, tmp_path / "run", progress=False, max_chunks=1)
    last = max(row["update"] for row in read_rows(tmp_path / "run" / "metrics.jsonl"))
    assert summary["status"] == "complete" and summary["updates_done"] == 400
    assert summary["updates_run"] == last + 1 < 400
    assert "updates_run" in summary["definitions"]
    # Over seeds: the last update any of them learned in, whichever seed's rows come last.
    seeds = RunSpec(**{**spec.__dict__, "config": {"num_episodes": 30}, "num_seeds": 2,
                       "chunk_size": 10})  # fmt: skip
    over_seeds = train(seeds, tmp_path / "seeds", progress=False)
    rows = read_rows(tmp_path / "seeds" / "metrics.jsonl")
    last_by_seed = [max(r["update"] for r in rows if r["seed"] == seed) for seed in (0, 1)]
    assert last_by_seed[0] != last_by_seed[1]  # (the runs end in different updates)
    assert over_seeds["updates_run"] == max(last_by_seed) + 1
    # Kept across a resume, from the rows written before it.
    spec = RunSpec(**{**spec.__dict__, "chunk_size": 40})
    train(spec, tmp_path / "pieces", progress=False, max_chunks=1)
    resumed = train(spec, tmp_path / "pieces", progress=False, resume=True)
    assert resumed["updates_run"] == summary["updates_run"] < resumed["updates_done"]


def test_a_checkpointed_run_whose_checkpoints_are_gone_is_not_started_over(tmp_path, capsys):
    """With checkpoints/ removed (to save disk) or its records lost, a resume of a
    complete run trained it again from update 0 without a word, replacing its rows."""
    spec = SPECS["tabular"]
    run_dir = tmp_path / "run"
    train(spec, run_dir, progress=False, max_chunks=2)
    rows = read_rows(run_dir / "metrics.jsonl")
    for record in (run_dir / "checkpoints").glob("*.json"):
        record.unlink()  # the chunk_* directories are left, unverifiable without them
    with pytest.raises(checkpoint.CheckpointError, match=r"was checkpointed after 20 updates .* "
                       r"holds chunk_00000010, chunk_00000020 without them.* "
                       r"would train it again from update 0"):  # fmt: skip
        train(spec, run_dir, progress=False, resume=True)
    # A summary.json from before checkpointed_updates: a final status after some updates
    # is written only once the last checkpoint was (such runs started over).
    summary = json.loads((run_dir / "summary.json").read_text())
    del summary["checkpointed_updates"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert summary["status"] == "stopped"
    with pytest.raises(checkpoint.CheckpointError, match="was checkpointed after 20 updates"):
        train(spec, run_dir, progress=False, resume=True)
    # A run an older jrl wrote that was killed (status running): its finished checkpoint
    # directories say it was checkpointed.
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    with pytest.raises(checkpoint.CheckpointError, match="holds chunk_00000010, chunk_00000020"):
        train(spec, run_dir, progress=False, resume=True)
    (run_dir / "summary.json").write_text(json.dumps({**summary, "checkpointed_updates": 20}))
    # Such a summary after a first save cut short holds a final status too, beside
    # orbax's unfinished directory: that run was never checkpointed and starts over.
    older = shutil.copytree(run_dir, tmp_path / "older")
    shutil.rmtree(older / "checkpoints")
    (older / "checkpoints" / "chunk_00000010.orbax-checkpoint-tmp-1").mkdir(parents=True)
    (older / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert train(spec, older, progress=False, resume=True)["status"] == "complete"
    assert "holds no checkpoint yet" in capsys.readouterr().err
    # Without that sign, an older summary's final status after some updates stands for
    # a checkpoint: checkpoints/ removed to save disk is refused, not trained again.
    removed = shutil.copytree(run_dir, tmp_path / "removed")
    shutil.rmtree(removed / "checkpoints")
    for status in ("stopped", "interrupted"):  # (a Ctrl-C's: its checkpoint was taken)
        (removed / "summary.json").write_text(json.dumps({**summary, "status": status}))
        with pytest.raises(checkpoint.CheckpointError, match="was checkpointed after 20 updates"):
            train(spec, removed, progress=False, resume=True)
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(checkpoint.CheckpointError, match="holds no record of a checkpoint"):
        train(spec, run_dir, progress=False, resume=True)
    assert read_rows(run_dir / "metrics.jsonl") == rows


def test_checkpoints_are_taken_every_checkpoint_every_seconds_and_at_every_end(
    tmp_path, monkeypatch
):
    """A checkpoint a chunk cost more than small chunks compute (orbax: ~90 ms): a run
    checkpoints a chunk's end once checkpoint_every seconds have passed since the last,
    always its last chunk and a stopped run's; 0 checkpoints every chunk. The interval
    decides no number: the runs' rows and final states are the same."""
    saved = []
    save = checkpoint.Saver.save
    monkeypatch.setattr(
        checkpoint.Saver, "save", lambda self, n, *rest: saved.append(n) or save(self, n, *rest)
    )
    spec = SPECS["tabular"]
    every = train(spec, tmp_path / "every", progress=False, checkpoint_every=0)
    chunk_ends = list(range(spec.chunk_size, every["updates_done"] + 1, spec.chunk_size))
    assert saved == chunk_ends and len(saved) > 3
    saved.clear()
    monkeypatch.setattr(training, "CHECKPOINT_EVERY", 1e6)  # the default, made long
    rarely = train(spec, tmp_path / "rarely", progress=False)
    assert saved == [every["updates_done"]] and rarely["checkpointed_updates"] == saved[0]
    saved.clear()
    stopped = train(spec, tmp_path / "stopped", progress=False, checkpoint_every=1e6, max_chunks=2)
    assert saved == [2 * spec.chunk_size] == [stopped["checkpointed_updates"]]
    train(spec, tmp_path / "stopped", resume=True, progress=False, checkpoint_every=1e6)
    rows = read_rows(tmp_path / "every" / "metrics.jsonl")
    for other in ("rarely", "stopped"):
        assert read_rows(tmp_path / other / "metrics.jsonl") == rows, other
        assert_same_state(restore_state(tmp_path / other)[1], restore_state(tmp_path / "every")[1])
    for bad in (-1.0, float("nan"), float("inf"), True, "30"):
        with pytest.raises(ValueError, match="checkpoint_every must be a number of seconds"):
            train(spec, tmp_path / "bad", progress=False, checkpoint_every=bad)
    assert not (tmp_path / "bad").exists()


def test_a_resume_clears_temporary_files_cut_short_in_checkpoints(tmp_path):
    """Its own files' only: jrl plot --out RUN/curves.png or jrl eval may be writing
    theirs in the run directory as the resume starts (their rename then failed)."""
    run_dir = tmp_path / "run"
    train(SPECS["tabular"], run_dir, progress=False, max_chunks=1)
    torn = run_dir / "checkpoints" / ".latest.json.abc123.tmp"  # a kill during its rename
    torn.write_text("{")
    summary = run_dir / ".summary.json.def456.tmp"
    summary.write_text("{")
    plotting = run_dir / ".curves.png.ghi789.tmp"
    plotting.write_bytes(b"\x89PNG")
    train(SPECS["tabular"], run_dir, progress=False, resume=True, max_chunks=1)
    assert not torn.exists() and not summary.exists() and plotting.exists()


def test_a_signal_stops_a_python_loop_of_runs_after_the_checkpoint(tmp_path):
    """In a notebook cell or a script looping over runs, train() returned its summary
    after SIGINT (the notebook's stop button) or SIGTERM (a preemption) and the loop
    trained the next runs: it raises RunInterrupted, a KeyboardInterrupt, once the
    chunk under way is checkpointed, and the run resumes."""

    class SignalAtFirstRows:
        def __init__(self, number):
            self.number, self.sent = number, False

        def write(self, rows):
            if not self.sent:
                self.sent = True
                os.kill(os.getpid(), self.number)

        def close(self):
            pass

    for number in (signal.SIGINT, signal.SIGTERM):
        started = []
        with pytest.raises(KeyboardInterrupt) as stopped:
            for name in ("a", "b"):
                started.append(name)
                run_dir = tmp_path / f"{number.name}-{name}"
                train(SPECS["tabular"], run_dir, progress=False, sinks=[SignalAtFirstRows(number)])
        assert started == ["a"] and isinstance(stopped.value, training.RunInterrupted)
        run_dir = tmp_path / f"{number.name}-a"
        assert stopped.value.signal == number
        assert stopped.value.summary == json.loads((run_dir / "summary.json").read_text())
        assert stopped.value.summary["status"] == "interrupted"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    import pickle

    again = pickle.loads(pickle.dumps(stopped.value))  # as a worker process hands it back
    assert (again.summary, again.signal) == (stopped.value.summary, signal.SIGTERM)
    # A signal during the last chunk: the run is complete, and the loop stops all the same.
    # (A run that ends in its first chunk, whose program another test compiled already.)
    one_chunk = ENDS_IN_ITS_FIRST_CHUNK
    with pytest.raises(training.RunInterrupted) as stopped:
        train(one_chunk, tmp_path / "one", progress=False, sinks=[SignalAtFirstRows(signal.SIGINT)])
    assert stopped.value.summary["status"] == "complete"
    assert stopped.value.summary["updates_done"] == one_chunk.chunk_size  # its only chunk
    assert train(SPECS["tabular"], run_dir, resume=True, progress=False)["status"] == "complete"


def test_a_signal_while_the_chunk_compiles_stops_before_any_chunk_runs(
    reference, tmp_path, monkeypatch, capsys
):
    """A Ctrl-C during the first compile (minutes for a CNN or on a GPU) said "finishing
    the chunk", then let the compile end and ran a chunk before stopping; it stops once
    the compile ends, with nothing run, and the run resumes to the numbers of one that
    never stopped."""
    _, rows, state = reference("ppo")
    make_chunk = training.make_chunk

    def signalled(built, capacity):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # heard by jrl.interrupts' watcher thread
        return make_chunk(built, capacity)

    monkeypatch.setattr(training, "make_chunk", signalled)
    monkeypatch.setattr(training, "_BUILT", Recent(keep=4))  # as in a process of its own
    spec = SPECS["ppo"]
    run_dir = tmp_path / "run"
    capsys.readouterr()
    with pytest.raises(training.RunInterrupted) as stopped:
        train(spec, run_dir, progress=False)
    summary = stopped.value.summary
    assert (summary["status"], summary["updates_done"]) == ("interrupted", 0)
    assert summary["checkpointed_updates"] is None
    assert (run_dir / "metrics.jsonl").read_text() == ""
    said = capsys.readouterr().err
    assert "got SIGINT: stopping once the compile ends, before any chunk (Ctrl-C again" in said
    assert "stopped by SIGINT before its first chunk (nothing to checkpoint" in said
    assert "finishing the chunk" not in said and "checkpointed" not in said
    # The program compiled is kept: the resume runs it (no second make_chunk).
    monkeypatch.setattr(training, "make_chunk", None)
    assert train(spec, run_dir, resume=True, progress=False, max_chunks=2)["updates_done"] == 8
    # Another process compiles again (a persistent-cache hit): stopped there, the run
    # keeps its checkpoint.
    monkeypatch.setattr(training, "_BUILT", Recent(keep=4))
    monkeypatch.setattr(training, "make_chunk", signalled)
    with pytest.raises(training.RunInterrupted) as stopped:
        train(spec, run_dir, resume=True, progress=False)
    assert stopped.value.summary["updates_done"] == 8
    said = capsys.readouterr().err
    assert "stopped by SIGINT before running a chunk, at its checkpoint of update 8 (" in said
    assert train(spec, run_dir, resume=True, progress=False)["status"] == "complete"
    order = lambda row: (row["grid_point"], row["seed"], row["update"])  # noqa: E731
    assert sorted(read_rows(run_dir / "metrics.jsonl"), key=order) == sorted(rows, key=order)
    assert_same_state(restore_state(run_dir)[1], state)


@pytest.mark.parametrize("agent", ["dqn", "ppo"])
def test_a_new_runs_state_and_a_restored_one_have_the_same_types(agent, reference):
    """gymnax's reset makes ``time`` weakly typed, a checkpoint restores it strongly
    typed: a run and its resume compiled two programs, and JAX's persistent compilation
    cache missed every resume (a 4-6 s compile for these small runs)."""
    whole, _, _ = reference(agent)
    built, state, _ = restore_state(whole)
    fresh = training._built_and_chunks(built.spec, built.spec.fingerprint())[1]["init"](
        built.keys, built.grid
    )
    typed = lambda x: (x.dtype, x.shape, getattr(x, "weak_type", False))  # noqa: E731
    assert jax.tree.map(typed, fresh) == jax.tree.map(typed, state)


def test_a_run_directory_path_with_a_bracket_is_refused_before_compiling(tmp_path):
    """orbax finishes a checkpoint by globbing its directory: under "exp[0]" it found
    nothing to merge, and every checkpoint of a run that ended "complete" was unreadable."""
    with pytest.raises(ValueError, match=r"a checkpoint directory's path cannot hold '\['"):
        train(SPECS["tabular"], tmp_path / "exp[0]", progress=False)
    assert not (tmp_path / "exp[0]").exists()
    with pytest.raises(ValueError, match=r"cannot hold '\['.*rename the directory"):
        checkpoint.save(tmp_path / "ck[0]", 1, {"w": np.ones(3)}, {"fingerprint": "A"})
    assert not (tmp_path / "ck[0]").exists()
    # A name on disk that is not UTF-8 (made under a Latin-1 locale), read under UTF-8:
    # tensorstore cannot name it (orbax failed at the first save).
    with pytest.raises(ValueError, match="must be named in UTF-8.*rename the directory"):
        train(SPECS["tabular"], tmp_path / "lat\udce9", progress=False)
    assert not os.path.lexists(os.fsencode(tmp_path) + b"/lat\xe9")


def test_an_environment_of_your_own_is_built_again_at_every_run(tmp_path, monkeypatch):
    """A notebook's cell registering its environment, edited and run again: the next
    run was built from the cache of the first (keyed by the name), on the old factory;
    then keyed by the factory, a module's constant set under autoreload still ran the
    old program."""
    from jrl.envs import make, register, registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    def cliff_cut_at(steps):
        return lambda: (lambda env, p: (env, p.replace(max_steps_in_episode=steps)))(
            *make("CliffWalking-v0")
        )

    @dataclasses.dataclass
    class CliffCut:  # a callable that cannot be hashed (eq without hash) is a factory too
        steps: int

        def __call__(self):
            return cliff_cut_at(self.steps)()

    def longest(name, run):
        spec = RunSpec(agent="tabular", env=name, config={"num_episodes": 20}, chunk_size=50)
        train(spec, tmp_path / run, progress=False)
        rows = read_rows(tmp_path / run / "metrics.jsonl")
        return max(row["episode_length"] or 0 for row in rows)

    lengths = []
    for run, factory in [("a", cliff_cut_at(3)), ("b", cliff_cut_at(5)), ("c", CliffCut(4))]:
        register("MyCliff-v0", factory)
        lengths.append(longest("MyCliff-v0", run))
    assert lengths == [3, 5, 4]
    # By import path, the module edited and reloaded (a notebook's autoreload).
    import importlib

    module = tmp_path / "cut_cliff.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no .pyc of the same second
    source = "from jrl.envs import make\ndef cliff():\n    env, p = make('CliffWalking-v0')\n"
    module.write_text(source + "    return env, p.replace(max_steps_in_episode=3)\n")
    assert longest("cut_cliff:cliff", "d") == 3
    module.write_text(source + "    return env, p.replace(max_steps_in_episode=6)\n")
    importlib.reload(importlib.import_module("cut_cliff"))
    assert longest("cut_cliff:cliff", "e") == 6
    # The same factory object, its module's constant set (as autoreload keeps functions
    # and sets what changed): nothing a cache key could hold tells, so nothing is reused.
    module.write_text(source + "    return env, p.replace(max_steps_in_episode=STEPS)\nSTEPS = 3\n")
    cut_cliff = importlib.reload(importlib.import_module("cut_cliff"))
    assert longest("cut_cliff:cliff", "f") == 3
    cut_cliff.STEPS = 7
    assert longest("cut_cliff:cliff", "g") == 7


class _CallEachWrite:
    """A sink that calls ``act(n)`` at its n-th write (1, 2, ...)."""

    def __init__(self, act):
        self.act, self.writes = act, 0

    def write(self, rows):
        self.writes += 1
        self.act(self.writes)

    def close(self):
        pass


def test_a_run_through_a_symlink_repointed_mid_run_keeps_its_files_in_one_directory(tmp_path):
    """Checkpoints went to the link's first target and rows and summary.json to its
    second: a `runs/current` link moved on during a run split it."""
    first, second, link = tmp_path / "first", tmp_path / "second", tmp_path / "current"
    second.mkdir()
    link.symlink_to(first)

    def repoint(writes):
        if writes == 1:
            link.unlink()
            link.symlink_to(second)

    sink = _CallEachWrite(repoint)
    summary = train(SPECS["tabular"], link, progress=False, max_chunks=3, sinks=[sink])
    assert sink.writes == 3 and link.resolve() == second
    assert not list(second.iterdir())
    assert json.loads((first / "summary.json").read_text()) == summary
    rows = read_rows(first / "metrics.jsonl")
    assert max(row["update"] for row in rows) == summary["updates_done"] - 1
    assert (
        checkpoint.latest(first / "checkpoints")["info"]["updates_done"] == summary["updates_done"]
    )


def test_a_run_stopped_by_a_full_disk_says_how_to_resume(tmp_path, capsys):
    import errno

    def fill(writes):
        if writes == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    run_dir = tmp_path / "run"
    with pytest.raises(OSError, match="No space left on device"):
        train(SPECS["tabular"], run_dir, progress=False, sinks=[_CallEachWrite(fill)])
    said = capsys.readouterr().err
    assert f"jrl: {run_dir} stopped by an error after 20 updates; its checkpoints are kept" in said
    assert f"resume with: jrl train --resume {run_dir}" in said
    assert checkpoint.latest(run_dir / "checkpoints")["info"]["updates_done"] >= 10
    assert train(SPECS["tabular"], run_dir, progress=False, resume=True)["status"] == "complete"


def test_a_moments_shared_lock_of_jrl_eval_does_not_refuse_a_resume(tmp_path):
    """in_use (jrl eval asking whether a run is under way) holds a shared lock for an
    instant; a resume starting then failed at once, naming a process long gone."""
    import fcntl
    import threading

    from jrl.training import _exclusive

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run_dir / ".lock").write_text(str(gone.pid))  # the last run's, ended
    with open(run_dir / ".lock") as reader:
        fcntl.flock(reader, fcntl.LOCK_SH | fcntl.LOCK_NB)
        threading.Timer(0.02, fcntl.flock, (reader, fcntl.LOCK_UN)).start()
        with _exclusive(run_dir):
            assert (run_dir / ".lock").read_text() == str(os.getpid())
        fcntl.flock(reader, fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go after the block
    # A notebook: this process ran the run before (the .lock names it) and waits too.
    with open(run_dir / ".lock") as reader:
        fcntl.flock(reader, fcntl.LOCK_SH | fcntl.LOCK_NB)
        threading.Timer(0.02, fcntl.flock, (reader, fcntl.LOCK_UN)).start()
        with _exclusive(run_dir):
            assert (run_dir / ".lock").read_text() == str(os.getpid())
        fcntl.flock(reader, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(run_dir / ".lock") as holder:  # a run under way holds it to its end
        fcntl.flock(holder, fcntl.LOCK_SH | fcntl.LOCK_NB)
        with pytest.raises(RunInUseError), _exclusive(run_dir):
            pass


def test_resume_before_the_first_checkpoint_starts_over_without_duplicate_rows(
    reference, tmp_path, capsys
):
    # A kill after the first chunk's rows were appended but before its checkpoint
    # (written in the background) was complete.
    _, rows, state = reference("ppo")
    run_dir = tmp_path / "run"
    train(SPECS["ppo"], run_dir, progress=False, max_chunks=1)
    # orbax had finished the checkpoint's files, but its records were not yet written,
    # nor the summary of a run that had stopped.
    for record in (run_dir / "checkpoints").glob("*.json"):
        record.unlink()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["checkpointed_updates"] == 4
    # As a first save cut short leaves it: the run stopped, no checkpoint confirmed.
    (run_dir / "summary.json").write_text(json.dumps({**summary, "checkpointed_updates": None}))
    assert list((run_dir / "checkpoints").glob("chunk_*"))
    assert len(read_rows(run_dir / "metrics.jsonl")) > 0
    # With no checkpoint to compare, the run's own record of its config refuses another.
    other = RunSpec(**{**SPECS["ppo"].__dict__, "hparams": ({"lr": 3e-4},)})
    with pytest.raises(
        checkpoint.CheckpointError, match="started with another configuration .* config.yaml edited"
    ):
        train(other, run_dir, resume=True, progress=False)
    written = len(read_rows(run_dir / "metrics.jsonl"))
    train(SPECS["ppo"], run_dir, resume=True, progress=False)
    assert f"starts again from update 0, its {written} metric rows dropped" in (
        capsys.readouterr().err
    )
    assert read_rows(run_dir / "metrics.jsonl") == rows
    assert_same_state(restore_state(run_dir)[1], state)


def test_checkpoint_of_another_config_or_damaged_is_a_clear_error(reference, tmp_path, capsys):
    spec = SPECS["ppo"]
    reference("ppo")  # compiled in this process already
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    train(spec, run_dir, progress=False, max_chunks=1)

    other = RunSpec(**{**spec.__dict__, "hparams": ({"lr": 3e-4},)})
    with pytest.raises(checkpoint.CheckpointError, match="another configuration") as refused:
        train(other, run_dir, resume=True, progress=False)
    assert "written by jrl at commit" not in str(refused.value)  # this jrl wrote it
    # Written by another commit of jrl (one that stored its config or state differently):
    # the refusal names it, and says to resume or evaluate with it.
    meta = json.loads((run_dir / "meta.json").read_text())
    (run_dir / "meta.json").write_text(json.dumps({**meta, "commit": "0123456789abcdef"}))
    with pytest.raises(checkpoint.CheckpointError, match=r"another configuration .*written by "
                       r"jrl at commit 0123456789ab .*git checkout 0123456789ab"):  # fmt: skip
        train(other, run_dir, resume=True, progress=False)
    # But where config.yaml is not the file the run was started with, the edit is the
    # cause: another commit would not help.
    config = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(config.replace("lr: 0.001", "lr: 0.0003"))
    with pytest.raises(checkpoint.CheckpointError, match="another configuration") as refused:
        train(load_spec(run_dir), run_dir, resume=True, progress=False)
    assert "git checkout" not in str(refused.value)
    (run_dir / "config.yaml").write_text(config)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    # A changed default would change the resolved config: the fingerprint covers it.
    assert resolve(spec).fingerprint() != resolve(other).fingerprint()
    built = build(resolve(spec))
    like = make_init(built)(built.keys, built.grid)
    wrong = jax.tree.map(lambda x: x[:, :1], like)
    with pytest.raises(checkpoint.CheckpointError, match=r"different state: .*saved \[\[1, 2"):
        checkpoint.restore(checkpoints, wrong, resolve(spec).fingerprint())

    record = json.loads((checkpoints / "latest.json").read_text())
    # latest.json naming a checkpoint that is not there (its save cut short by a second
    # Ctrl-C): the newest complete one's record stands in.
    (checkpoints / "latest.json").write_text(json.dumps({**record, "path": "chunk_99999999"}))
    assert checkpoint.latest(checkpoints) == record
    assert "names chunk_99999999, which is missing; using" in capsys.readouterr().err
    (checkpoints / "latest.json").write_text(json.dumps(record))
    for path in checkpoints.rglob("*"):
        if path.is_file() and path.parent != checkpoints and path.stat().st_size > 0:
            path.write_bytes(b"\x00garbage")
    with pytest.raises(checkpoint.CheckpointError, match="could not read checkpoint"):
        train(spec, run_dir, resume=True, progress=False)
    # A damaged or missing latest.json: the record kept beside the checkpoint stands in.
    (beside,) = checkpoints.glob("chunk_*.json")
    assert json.loads(beside.read_text()) == record
    for damage in ('{"chunk": 3, "pa', "[1, 2]", None):
        if damage is None:
            (checkpoints / "latest.json").unlink()
        else:
            (checkpoints / "latest.json").write_text(damage)
        assert checkpoint.latest(checkpoints) == record
    assert "latest.json is missing; using" in capsys.readouterr().err
    # Without any record the checkpoint is not trusted (as one whose save was never
    # confirmed); a damaged latest.json with nothing beside is an error.
    beside.unlink()
    assert checkpoint.latest(checkpoints) is None
    (checkpoints / "latest.json").write_text("[1, 2]")
    with pytest.raises(checkpoint.CheckpointError, match="damaged .*no record beside"):
        train(spec, run_dir, resume=True, progress=False)
    (run_dir / "config.yaml").write_text("agent: ppo\nenv: [unclosed\n")
    with pytest.raises(ValueError, match="config.yaml is not valid YAML"):
        load_spec(run_dir)


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_saver_keeps_at_least_one_checkpoint(keep, tmp_path):
    """keep=0 sliced [:-0], an empty list: it deleted nothing and kept every checkpoint."""
    with pytest.raises(ValueError, match="keep must be a positive int"):
        checkpoint.Saver(tmp_path, keep=keep)


@pytest.mark.parametrize("keep", [1, 2])
def test_saver_keeps_the_newest_checkpoints_and_deletes_the_rest(keep, tmp_path):
    """Each DQN checkpoint holds its replay buffer: older ones must go, records too."""
    saver = checkpoint.Saver(tmp_path, keep=keep)
    for chunk in range(1, 6):
        state = {"w": np.full(4, chunk, np.float32)}
        saver.save(chunk, state, {"fingerprint": "f", "updates_done": chunk})
    saver.close()
    kept = [f"chunk_{chunk:08d}" for chunk in range(6 - keep, 6)]
    assert sorted(p.name for p in tmp_path.glob("chunk_*") if p.is_dir()) == kept
    assert sorted(p.name for p in tmp_path.glob("chunk_*.json")) == [f"{k}.json" for k in kept]
    assert json.loads((tmp_path / "latest.json").read_text())["path"] == kept[-1]


def test_a_save_cut_short_leaves_latest_naming_the_checkpoint_before(tmp_path, capsys):
    """A second Ctrl-C can end the wait for orbax's background save early, and the
    process exits before the save is finished (only its temporary directory is left):
    latest.json must not name it."""
    saver = checkpoint.Saver(tmp_path)
    state = {"w": np.arange(6.0, dtype=np.float32)}
    saver.save(10, state, {"fingerprint": "f", "updates_done": 10})
    saver.save(20, state, {"fingerprint": "f", "updates_done": 20})  # records chunk 10
    saver._checkpointer.wait_until_finished()
    shutil.rmtree(tmp_path / "chunk_00000020")  # as if it had never been finished
    saver.close()
    assert "checkpoint chunk_00000020 was not finished" in capsys.readouterr().err
    assert checkpoint.latest(tmp_path)["path"] == "chunk_00000010"
    restored, info = checkpoint.restore(tmp_path, state, "f")
    assert info["updates_done"] == 10
    np.testing.assert_array_equal(restored["w"], state["w"])


def test_restore_reads_a_state_or_only_its_shapes(tmp_path):
    """A checkpoint restores into the state it was saved from, or into that state's
    ``jax.eval_shape`` (what ``restore_state`` and a resume pass: nothing is compiled
    or run to get it), typed keys and empty arrays included."""
    state = {
        "key": jax.random.split(jax.random.key(3), (2, 3)),
        "params": jax.random.normal(jax.random.key(4), (2, 5)),
        "none_yet": jax.numpy.zeros((2, 0), jax.numpy.int32),
        "count": jax.numpy.int32(7),
    }
    checkpoint.save(tmp_path, 1, state, {"fingerprint": "f"})
    abstract = jax.eval_shape(lambda: state)
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract))
    for like in (state, abstract):
        restored, info = checkpoint.restore(tmp_path, like, "f")
        assert info == {"fingerprint": "f"}
        assert restored["key"].dtype == state["key"].dtype
        for got, want in zip(
            jax.tree.leaves(jax.tree.map(_plain, restored)),
            jax.tree.leaves(jax.tree.map(_plain, state)),
            strict=True,
        ):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    wrong = {**abstract, "params": jax.ShapeDtypeStruct((2, 4), jax.numpy.float32)}
    with pytest.raises(checkpoint.CheckpointError, match=r"\['params'\]: saved \[\[2, 5\]"):
        checkpoint.restore(tmp_path, wrong, "f")
    fewer = {name: leaf for name, leaf in abstract.items() if name != "none_yet"}
    unexpected = r"holds a different state: unexpected \[.*none_yet"
    with pytest.raises(checkpoint.CheckpointError, match=unexpected):
        checkpoint.restore(tmp_path, fewer, "f")


def _plain(leaf):
    return np.asarray(jax.random.key_data(leaf) if checkpoint._is_key(leaf) else leaf)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"num_minibatches": 3}}, "num_minibatches=3 must divide"),
        ({"config": {"num_envs": "eight"}}, r"config.num_envs must be an int"),
        ({"config": {"num_envs": 4.5}}, r"config.num_envs must be an int"),
        ({"config": {"activation": 3}}, r"config.activation must be a string"),
        ({"config": {"widths": [64]}}, r"config: unknown field\(s\) \['widths'\]"),
        ({"hparams": ({"lr": "fast"},)}, r"hparams\[0\].lr must be a number"),
        ({"hparams": ({"learning_rate": 1e-3},)}, r"unknown field\(s\) \['learning_rate'\]"),
        ({"hparams": ({}, {"lr": -1e-3})}, r"hparams\[1\]: lr must be > 0, got -0.001"),
        ({"hparams": ({"gamma": 1.5},)}, r"hparams\[0\]: gamma must be in \[0, 1\]"),
        ({"hparams": ({"clip_eps": float("nan")},)}, r"hparams\[0\]: clip_eps must be a finite"),
        ({"hparams": (0.1,)}, r"hparams\[0\] must be a mapping"),
        (
            {
                "agent": "tabular",
                "config": {"algorithm": ["sarsa", "q_learning"]},
                "hparams": ({"algorithm": 1}, {"algorithm": 2}),
            },
            r"hparams\[1\]: algorithm=2.0 indexes .* 2 name\(s\)",
        ),
        (
            {
                "agent": "tabular",
                "config": {"algorithm": "dyna_q", "planning_steps": 5},
                "hparams": ({"kappa": 1e-3},),
            },
            r"hparams\[0\]: kappa=0.001 is Dyna-Q\+'s exploration bonus",
        ),
        (
            {"agent": "dqn", "config": {"target_update": "hard"}, "hparams": ({"tau": 0.1},)},
            r"hparams\[0\]: tau=0.1 is the Polyak step of target_update='polyak'",
        ),
        (
            {"agent": "tabular", "config": {}, "hparams": ({"temperature": 0.5},)},
            r"hparams\[0\]: temperature=0.5 is a temperature; exploration='epsilon_greedy'",
        ),
        (
            {
                "agent": "dqn",
                "config": {"clip_gradients": False},
                "hparams": ({"max_grad_norm": 1},),
            },
            r"hparams\[0\]: max_grad_norm=1.0 is the gradient-norm clip",
        ),
        ({"hparams": ()}, "at least one grid point"),
        ({"agent": "a2c"}, "unknown agent 'a2c'"),
        ({"env": "CartPole-v9"}, "CartPole-v9"),
        ({"num_seeds": 0}, "num_seeds must be a positive int"),
        ({"seed": "zero"}, r"seed must be an int in \[0, 2\*\*32\), got 'zero'"),
        # key(2**32 + 3) holds key(3)'s data: the run would repeat seed 3's numbers.
        ({"seed": 2**32 + 3}, r"seed must be an int in \[0, 2\*\*32\), got 4294967299"),
        ({"seed": 2**63}, r"seed must be an int in \[0, 2\*\*32\)"),
        ({"chunk_size": 2.5}, "chunk_size must be a positive int"),
    ],
)
def test_invalid_run_configs_name_the_field_before_compiling(
    change, message, tmp_path, compilations
):
    spec = RunSpec(**{**SPECS["ppo"].__dict__, **change})
    with pytest.raises(ValueError, match=message):
        train(spec, tmp_path / "run", progress=False)
    assert compilations == []
    assert not (tmp_path / "run").exists()


def test_config_files_read_as_meant():
    spec = RunSpec.from_dict(
        load_yaml(
            "agent: tabular\nenv: CliffWalking-v0\nconfig: {max_steps: 1e5, "
            "algorithm: [sarsa, q_learning]}\nhparams: [{alpha: 5e-1}, {algorithm: 1}]\n"
        )
    )
    resolved = resolve(spec)
    assert resolved.config["max_steps"] == 100000
    assert resolved.config["algorithm"] == ("sarsa", "q_learning")
    assert resolved.hparams[0]["alpha"] == 0.5 and resolved.hparams[0]["gamma"] == 1.0
    assert resolve(resolved) == resolved
    with pytest.raises(ValueError, match=r"unknown run field\(s\) \['seeds'\]"):
        RunSpec.from_dict({"agent": "ppo", "env": "CartPole-v1", "seeds": 3})
    # Numpy scalars (an np.arange loop in a script) are the Python values they hold.
    numpy = resolve(
        RunSpec(
            agent="tabular",
            env="CliffWalking-v0",
            config={"max_steps": np.int64(100_000), "algorithm": [np.str_("sarsa"), "q_learning"]},
            hparams=({"alpha": np.float32(0.5)}, {"algorithm": np.int64(1)}),
        )
    )
    assert numpy == resolved and type(numpy.config["max_steps"]) is int


def test_a_run_made_before_the_ignored_hyperparameter_rule_still_loads_and_resumes(
    tmp_path, monkeypatch
):
    """A run directory whose config sets a hyperparameter its config ignores (allowed
    before b07fba1) is read, plotted and resumed as it was; only new runs are refused."""
    import jrl.training as training
    from jrl.run_analysis import learning_curves

    spec = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 30},
        hparams=({"temperature": 0.5},),  # unread under epsilon-greedy exploration
        chunk_size=10,
    )
    before_the_rule = training.AGENTS["tabular"]._replace(ignored=None)
    with monkeypatch.context() as patched:
        patched.setitem(training.AGENTS, "tabular", before_the_rule)
        assert train(spec, tmp_path / "old", max_chunks=1, progress=False)["status"] == "stopped"
    with pytest.raises(ValueError, match=r"hparams\[0\]: temperature=0.5 is a temperature"):
        train(spec, tmp_path / "new", progress=False)
    assert training.load_spec(tmp_path / "old").hparams[0]["temperature"] == 0.5
    old = training.load_spec(tmp_path / "old")
    assert train(old, tmp_path / "old", resume=True, progress=False)["status"] == "complete"
    assert len(learning_curves([tmp_path / "old"])[0]) == 1  # jrl plot reads it


def test_whole_files_get_the_mode_open_gives(tmp_path):
    from jrl.run_dir import write_json

    write_json(tmp_path / "summary.json", {"status": "running"})
    (tmp_path / "plain.txt").write_text("")
    mode = (tmp_path / "plain.txt").stat().st_mode
    assert (tmp_path / "summary.json").stat().st_mode == mode


def test_a_torn_last_metrics_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 0}\n{"update": 1}\n{"upd')
    assert read_rows(path) == [{"update": 0}, {"update": 1}]
    path.write_text('{"update": 0}\n{"upd\n{"update": 2}\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        read_rows(path)


WRITER = """
import itertools, json, sys
from jrl.run_dir import append_rows, write_json, write_text_atomic, write_yaml
run_dir, payload = sys.argv[1], list(range(50000))
big = json.dumps(list(range(10**6)))  # most of the time goes to writing it, atomically
for i in itertools.count():
    write_json(run_dir + "/summary.json", {"i": i, "payload": payload})
    write_yaml(run_dir + "/config.yaml", {"i": i, "payload": payload[:500]})
    append_rows(run_dir + "/metrics.jsonl", [{"i": i, "payload": payload[:3000]}] * 3)
    write_text_atomic(run_dir + "/eval.json", big)
    if i == 0:
        print("writing", flush=True)
"""


def test_sigkill_in_the_middle_of_writing_leaves_every_file_parseable(tmp_path):
    rng = random.Random(0)
    for attempt in range(10):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline() == "writing\n"
        time.sleep(rng.uniform(0.05, 0.4))
        process.kill()
        process.wait(timeout=30)
        summary = json.loads((tmp_path / "summary.json").read_text())
        config = read_yaml(tmp_path / "config.yaml")
        rows = read_rows(tmp_path / "metrics.jsonl")
        assert len(json.loads((tmp_path / "eval.json").read_text())) == 10**6
        assert len(summary["payload"]) == 50000 and len(config["payload"]) == 500
        assert abs(summary["i"] - config["i"]) <= 1, attempt
        assert all(len(row["payload"]) == 3000 for row in rows)
        assert rows and all(row["i"] <= summary["i"] for row in rows)
        (tmp_path / "metrics.jsonl").unlink()  # the next process starts the rows over


def start_cli(run_dir, spec=None):
    """``jrl train AGENT --config-file SPEC --out RUN_DIR`` or, without a spec, ``jrl
    train --resume RUN_DIR``, as a subprocess checkpointing every chunk."""
    if spec is None:
        args = ["--resume", run_dir]
    else:
        spec_path = run_dir.parent / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec.to_dict()))
        args = [spec.agent, "--config-file", spec_path, "--out", run_dir]
    return subprocess.Popen(
        [sys.executable, "-m", "jrl.cli", "train", *map(str, args), "--no-progress"]
        + ["--checkpoint-every", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(run_dir, updates, process, timeout=300):
    deadline = time.time() + timeout
    latest = run_dir / "checkpoints" / "latest.json"
    while time.time() < deadline:
        if latest.exists():
            try:
                if json.loads(latest.read_text())["info"]["updates_done"] >= updates:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint in time")


@pytest.mark.parametrize(
    ("agent", "signals"),
    [
        ("tabular", (signal.SIGINT, signal.SIGKILL)),
        ("dqn", (signal.SIGTERM, signal.SIGKILL)),
        ("ppo", (signal.SIGKILL,)),
    ],
    ids=lambda value: "-".join(s.name for s in value) if isinstance(value, tuple) else value,
)
def test_killed_run_leaves_readable_files_and_resumes_to_the_same_numbers(
    agent, signals, reference, tmp_path
):
    """`jrl train` is stopped by each signal in turn (then `jrl train --resume` goes on);
    after each, every file reads; the last resume, in this process, ends where the
    uninterrupted run ended, bit for bit."""
    spec = SPECS[agent]
    whole, rows, state = reference(agent)
    total_updates = 1 + max(row["update"] for row in rows)
    run_dir = tmp_path / "killed run"  # a path that needs quoting in a shell command
    done = 0
    for number, how in enumerate(signals):
        process = start_cli(run_dir, spec if number == 0 else None)
        wait_for_checkpoint(run_dir, done + 2 * spec.chunk_size, process)
        if number == 0:  # a second process on a run in use is refused before it touches it
            with pytest.raises(
                RunInUseError, match=f"in use by another jrl process .pid {process.pid}"
            ):
                train(load_spec(run_dir), run_dir, resume=True, progress=False)
        os.kill(process.pid, how)
        out, err = process.communicate(timeout=120)
        summary = json.loads((run_dir / "summary.json").read_text())
        done = checkpoint.latest(run_dir / "checkpoints")["info"]["updates_done"]
        if how == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
            assert summary["status"] == "running"
        else:  # the chunk under way is finished and checkpointed, then a clean exit
            # (after a Ctrl-C by SIGINT, as a shell expects: a loop of runs stops there)
            assert process.returncode == (0 if how == signal.SIGTERM else -how), err[-2000:]
            assert out.startswith(f"interrupted: {done}/")
            resume = f"resume with: jrl train --resume '{run_dir}'\n"
            assert f"{how.name}" in err and resume in err
            assert summary["status"] == "interrupted" and summary["updates_done"] == done
        assert 2 * spec.chunk_size <= done < total_updates
        # Every file is readable as it was left, and the CLI ran the same spec as the API.
        assert read_yaml(run_dir / "config.yaml") == read_yaml(whole / "config.yaml")
        meta = json.loads((run_dir / "meta.json").read_text())
        assert meta["seeds"] == list(range(spec.num_seeds)) and meta["versions"]["jax"]
        # What else decides the numbers' last bits (README, "Same seed, same numbers").
        assert meta["compiler_options"] == compiler_options() and "xla_flags" in meta
        assert meta["device_kinds"] == ["cpu"] and meta["cpu"] == cpu_model()
        assert meta["fingerprint"] == resolve(spec).fingerprint()
        partial = read_rows(run_dir / "metrics.jsonl")
        assert partial == rows[: len(partial)]
        assert {row["update"] for row in partial} >= set(range(done))
    _, restored, _ = restore_state(run_dir)
    assert len(jax.tree.leaves(restored)) == len(jax.tree.leaves(state))

    resumed = train(load_spec(run_dir), run_dir, resume=True, progress=False)
    assert resumed["status"] == "complete"
    resumes = json.loads((run_dir / "meta.json").read_text())["resumes"]
    assert len(resumes) == len(signals) and resumes[-1]["from_update"] == done
    assert all(entry["versions"]["jax"] for entry in resumes)
    assert read_rows(run_dir / "metrics.jsonl") == rows
    assert_same_state(restore_state(run_dir)[1], state)
    assert not list(run_dir.glob(".*.tmp"))


def test_a_ctrl_c_whose_reader_is_gone_ends_by_sigint_after_the_exit_handlers(tmp_path):
    """`jrl train ... 2>&1 | tee log` and a Ctrl-C: tee ended at once, so printing the
    summary hit a broken pipe and jrl exited 2 (a shell's loop of runs went on); and the
    end by SIGINT skipped the process's exit handlers (W&B's teardown among them)."""
    ran = tmp_path / "exit handlers ran"
    run_dir = tmp_path / "run"
    script = (
        f"import atexit, pathlib, sys\natexit.register(pathlib.Path({str(ran)!r}).touch)\n"
        "from jrl.cli import main\nsys.exit(main())\n"
    )
    args = ["train", "tabular", "--env", "CliffWalking-v0", "--config.num-episodes", "200000",
            "--chunk-size", "20", "--out", str(run_dir), "--no-progress",
            "--checkpoint-every", "0"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for_checkpoint(run_dir, 20, process)
    process.stdout.close()  # the pipe's reader is gone
    process.stderr.close()
    os.kill(process.pid, signal.SIGINT)
    assert process.wait(timeout=120) == -signal.SIGINT
    assert ran.exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"


def test_a_resume_forgets_what_summary_json_said_of_updates_past_its_checkpoint(tmp_path):
    """summary.json may be ahead of the checkpoint a resume starts from (a kill before
    the next checkpoint was confirmed): runs it named diverged or infinite past that
    checkpoint stayed so after the resume ran those updates again, and were left out."""
    run_dir = tmp_path / "run"
    assert train(SPECS["tabular"], run_dir, max_chunks=2, progress=False)["updates_done"] == 20
    ahead = json.loads((run_dir / "summary.json").read_text())
    # Updates 0-19 are checkpointed: diverged by the 21st, infinite in update 20 (index).
    ahead["diverged"] = [
        {"grid_point": 0, "seed": s, "by_update": u} for s, u in [(0, 21), (1, 30)]
    ]
    ahead["infinite"] = [
        {"grid_point": 1, "seed": s, "metric": "td_error", "update": u}
        for s, u in [(0, 20), (1, 25)]
    ]
    (run_dir / "summary.json").write_text(json.dumps(ahead))
    summary = train(SPECS["tabular"], run_dir, resume=True, progress=False)
    assert summary["status"] == "complete"
    assert summary["diverged"] == [] and summary["infinite"] == []
    assert summary["checkpointed_updates"] == summary["updates_done"] > 20  # not the resume's
    assert all("diverged_seeds" not in point for point in summary["grid"])


def test_a_diverged_run_is_named_and_left_out(tmp_path, capsys):
    """Its NaN losses are written as null, like a row in which no episode ended, and its
    returns are those of NaN logits' argmax (action 0): the summary averaged them as a
    final return and jrl eval played that policy as if it were one."""
    from jrl.run_analysis import evaluate_run

    spec = RunSpec(
        agent="ppo",
        env="CartPole-v1",
        config={"total_timesteps": 4096, "num_steps": 64},
        hparams=({"lr": 1e30, "max_grad_norm": 1e30}, {"lr": 1e-3}),  # Adam steps of 1e30
        num_seeds=2,
        chunk_size=4,
    )
    run_dir = tmp_path / "diverged"
    # Stopped at the checkpoint of the very update count by which they diverged.
    assert train(spec, run_dir, max_chunks=1, progress=False)["status"] == "stopped"
    expected = [{"grid_point": 0, "seed": seed, "by_update": 4} for seed in (0, 1)]
    assert json.loads((run_dir / "summary.json").read_text())["diverged"] == expected
    assert "grid point 0 seed 1 diverged: its learned values hold NaN or inf by update 4" in (
        capsys.readouterr().err
    )
    summary = train(spec, run_dir, resume=True, progress=False)  # kept across a resume
    assert summary["status"] == "complete" and summary["diverged"] == expected
    # Their returns (action 0 forever: ~9 on CartPole) are listed, not averaged.
    point = summary["grid"][0]
    assert point["diverged_seeds"] == [0, 1] and point["mean_final_episode_return"] is None
    assert len(point["final_episode_return"]) == 2
    assert "diverged_seeds" not in summary["grid"][1]
    assert summary["grid"][1]["mean_final_episode_return"] is not None
    # jrl eval evaluates the others and leaves the diverged ones out, by name.
    result = evaluate_run(run_dir, 2, 0, 100, False, 0.0, None)
    assert "before the run's own evaluation cut" not in capsys.readouterr().err  # none ran
    assert result["diverged"] == [{"grid_point": 0, "seed": s} for s in (0, 1)]
    assert result["grid"][0]["mean"] is None and result["grid"][1]["mean"] is not None
    assert np.isnan(np.asarray(result["returns"], float)[0]).all()
    assert np.isfinite(np.asarray(result["returns"], float)[1]).all()
    assert (run_dir / "eval" / "aggregates.md").exists()
    # Every run diverged (as if grid point 1 had too): no report, not the last one's.
    from jrl import training

    all_diverged = lambda state: np.zeros((2, 2), bool)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "finite_runs", all_diverged)
        result = evaluate_run(run_dir, 2, 0, 100, False, 0.0, None)
    assert [point["mean"] for point in result["grid"]] == [None, None]
    assert not (run_dir / "eval").exists()
    from jrl.cli import main
    from jrl.run_analysis import learning_curves

    # jrl plot leaves them out too: held at their last return before they diverged (their
    # later rows are null), they had drawn a healthy curve in the means and the bands.
    capsys.readouterr()
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "curves.png")]) == 0
    assert "diverged lr=1e+30 max_grad_norm=1e+30: every seed diverged" in capsys.readouterr().err
    ((label, values),) = learning_curves([run_dir])[0].items()
    assert label == "diverged lr=0.001 max_grad_norm=0.5" and values.shape[0] == 2
    summary = json.loads((run_dir / "summary.json").read_text())  # one seed of point 1 too
    summary["diverged"].append({"grid_point": 1, "seed": 0, "by_update": 8})
    (run_dir / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    ((label, values),) = learning_curves([run_dir])[0].items()
    assert values.shape[0] == 1 and f"{label}: seed(s) [0] diverged" in capsys.readouterr().err
    summary["diverged"].append({"grid_point": 1, "seed": 1, "by_update": 8})
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"no curve to draw: every seed of .* diverged"):
        learning_curves([run_dir])


def test_meta_json_is_written_before_config_yaml_marks_the_run(tmp_path, monkeypatch):
    """A process killed between the two: with config.yaml first, the resume found a run
    without meta.json and wrote one holding only its resumes (no fingerprint, seeds or
    sinks). With meta.json first, the directory holds no run yet, and the same command
    starts it again there."""
    from jrl import training

    run_dir = tmp_path / "run"
    spec = dataclasses.replace(SPECS["tabular"], seed=7)

    def killed(path, data):
        assert (run_dir / "meta.json").exists()
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(training, "write_yaml", killed)
        with pytest.raises(SystemExit, match="killed"):
            train(spec, run_dir, progress=False)
    assert not (run_dir / "config.yaml").exists()
    with pytest.raises(FileNotFoundError, match="holds no run"):
        train(spec, run_dir, resume=True, progress=False)
    assert train(spec, run_dir, progress=False)["status"] == "complete"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["fingerprint"] == resolve(spec).fingerprint() and "resumes" not in meta
    # The root seed beside the runs' indices ("seeds" read [0, 1] for --seed 0 and 7).
    assert meta["seed"] == 7 and meta["seeds"] == list(range(spec.num_seeds))


def test_ctrl_c_is_heard_during_a_chunk_and_a_second_one_exits_at_once(tmp_path):
    """The main thread waits in XLA for a whole chunk, where Python's signal handlers
    cannot run: the first Ctrl-C was acknowledged only when the chunk ended, and a
    second one before then merged into it, so "Ctrl-C again to stop at once" did not."""
    spec = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",  # a chunk of 20000 x 4096 steps: tens of seconds here
        config={"num_episodes": 10**8, "max_steps": 10**9, "steps_per_iteration": 4096},
        num_seeds=1,
        chunk_size=20000,
    )
    run_dir = tmp_path / "long"
    process = start_cli(run_dir, spec)
    lines = queue.Queue()
    read = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr])
    read.daemon = True
    read.start()

    def wait_for_line(text, seconds):
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            with contextlib.suppress(queue.Empty):
                if text in (line := lines.get(timeout=left)):
                    return line
        raise AssertionError(f"no {text!r} on stderr within {seconds} s")

    try:
        deadline = time.time() + 120
        while not (run_dir / "meta.json").exists() and time.time() < deadline:
            assert process.poll() is None, process.communicate()[1][-2000:]
            time.sleep(0.1)
        time.sleep(3.0)  # compiling or in the first chunk: the main thread is in XLA
        process.send_signal(signal.SIGINT)
        wait_for_line("got SIGINT: finishing the chunk", 5)
        assert process.poll() is None  # it goes on with the chunk
        # A person's second press, not the same sending delivered twice (jrl.interrupts).
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        line = wait_for_line("second Ctrl-C: exiting at once", 5)
        assert f"(jrl train --resume {run_dir})" in line  # the run's, not a placeholder
        assert process.wait(timeout=10) == 130
    finally:
        process.kill()


def test_a_sigint_the_process_ignores_stays_ignored_and_sigterm_still_stops(capsys):
    """``jrl train ... &`` in a script starts with SIGINT ignored (POSIX): a Ctrl-C at
    the script stopped every background run, and a second one killed them."""
    from jrl.training import _Stop

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _Stop().installed() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert stop.signal is None
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.perf_counter() + 5
            while stop.signal is None and time.perf_counter() < deadline:
                time.sleep(0.01)
            assert stop.signal == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        said = capsys.readouterr().err  # not "Ctrl-C again", which it ignores
        assert "got SIGTERM: finishing the chunk, then a checkpoint and exit (SIGKILL" in said
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_sigterm_says_what_stops_the_run_at_once_without_saying_again(capsys):
    """After a SIGTERM (Slurm's preemption, `kill`) the line said "Ctrl-C again to stop
    at once", though no Ctrl-C had come; a SIGINT after it still ends the process."""
    from jrl.training import _Stop

    with _Stop().installed() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.perf_counter() + 5
        while stop.signal is None and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert stop.signal == signal.SIGTERM
    said = capsys.readouterr().err
    assert "got SIGTERM: finishing the chunk, then a checkpoint and exit (Ctrl-C or SIGINT " in said
    assert "again" not in said


def test_run_directory_lock_refuses_a_second_holder_and_tolerates_no_locking(
    tmp_path, monkeypatch, capsys
):
    from jrl.training import _exclusive

    with _exclusive(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
        with pytest.raises(RunInUseError, match=f"pid {os.getpid()}"), _exclusive(tmp_path):
            pass
    with _exclusive(tmp_path):  # let go at the end of the block
        pass

    def no_locks(*args):  # as flock on a file system mounted without locks
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr("fcntl.flock", no_locks)
    with _exclusive(tmp_path):
        pass
    assert "running unlocked" in capsys.readouterr().err


def test_eval_of_a_task_that_switched_layouts_in_a_chosen_layout(reference, tmp_path):
    """Blocking Maze (Example 8.2): after 1000 steps the short path on the right is
    walled off and one on the left opens. Dyna-Q trained past the switch finds the
    goal in layout 1 and not in layout 0 (where the left path is walled), which is where
    every episode begins unless ``layout`` says otherwise."""
    from jrl.run_analysis import evaluate_run

    spec = RunSpec(
        agent="tabular",
        env="BlockingMaze-v0",
        config={"algorithm": "dyna_q", "planning_steps": 10, "max_steps": 4000},
        hparams=({"alpha": 1.0, "gamma": 0.95, "epsilon": 0.1},),
        num_seeds=2,
        chunk_size=50,
    )
    run_dir = tmp_path / "blocking"
    assert train(spec, run_dir, progress=False)["status"] == "complete"
    results = {
        layout: evaluate_run(run_dir, episodes=2, max_steps=200, layout=layout)
        for layout in (None, 0, 1)
    }
    assert results[None]["returns"] == results[0]["returns"]
    assert results[1]["layout"] == 1 and results[None]["num_layouts"] == 2
    assert results[1]["grid"][0]["mean"] > results[0]["grid"][0]["mean"]
    with pytest.raises(ValueError, match=r"--layout must be in \[0, 2\)"):
        evaluate_run(run_dir, episodes=1, layout=2)
    with pytest.raises(ValueError, match="CliffWalking-v0 has one"):
        evaluate_run(reference("tabular")[0], episodes=1, layout=1)


def test_metric_rows_write_nan_and_infinities_as_null_in_strict_json(tmp_path):
    from typing import NamedTuple

    from jrl.run_dir import append_rows

    class Metrics(NamedTuple):
        loss: np.ndarray
        steps: np.ndarray

    loss = np.array([[[1.5, np.inf, -np.inf, np.nan]]], np.float32)  # [G=1, S=1, K=4]
    rows = metric_rows(Metrics(loss, np.arange(4)[None, None]), first_update=10)
    path = tmp_path / "metrics.jsonl"
    append_rows(path, rows)
    append_rows(path, [{"x": float("inf"), "y": np.float32(np.nan), "z": [np.float64(2.0)]}])

    def refuse(constant):
        raise ValueError(f"non-standard JSON literal {constant}")

    parsed = [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]
    assert [row["loss"] for row in parsed[:4]] == [1.5, None, None, None]
    assert [row["update"] for row in parsed[:4]] == [10, 11, 12, 13]
    assert parsed[4] == {"x": None, "y": None, "z": [2.0]}


def test_a_tuple_of_algorithms_needs_a_grid_point_for_each():
    """--config.algorithm sarsa q_learning with no grid over hparams.algorithm ran Sarsa
    alone while config.yaml named both."""
    both = {"algorithm": ("sarsa", "q_learning")}
    with pytest.raises(ValueError, match=r"no grid point runs \['q_learning'\]"):
        resolve(RunSpec(agent="tabular", env="CliffWalking-v0", config=both))
    swept = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config=both,
        hparams=({"algorithm": 0}, {"algorithm": 1}),
    )
    assert resolve(swept).config["algorithm"] == ("sarsa", "q_learning")


def test_a_tabular_point_shows_the_algorithm_it_runs_by_name(tmp_path):
    """The summary and the curves' labels showed {'algorithm': 0.0} for Sarsa."""
    from jrl.run_analysis import learning_curves

    both = ["sarsa", "q_learning"]
    points = [{"algorithm": 1.0}, {"algorithm": 0.0, "alpha": 0.3}]
    shown = shown_hparams("tabular", points, {"algorithm": both})
    assert [point["algorithm"] for point in shown] == ["q_learning", "sarsa"]
    assert shown[1]["alpha"] == 0.3
    # Without the config (or one algorithm) the index is all there is to show.
    assert shown_hparams("tabular", points)[0]["algorithm"] == 1.0

    spec = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        num_seeds=1,
        config={"algorithm": both, "num_episodes": 3},
        hparams=({"algorithm": 1}, {"algorithm": 0}),
    )
    summary = train(spec, tmp_path / "run", progress=False)
    assert [point["hparams"] for point in summary["grid"]] == [
        {"algorithm": "q_learning"},
        {"algorithm": "sarsa"},
    ]
    curves, _ = learning_curves([tmp_path / "run"])
    assert sorted(curves) == ["run algorithm=q_learning", "run algorithm=sarsa"]


# Small enough to compile and run in a few seconds.
TINY_TABULAR = RunSpec(
    agent="tabular",
    env="CliffWalking-v0",
    config={"num_episodes": 20, "steps_per_iteration": 16},
    chunk_size=20,
)


def test_a_resume_that_runs_nothing_keeps_what_was_checkpointed(tmp_path):
    """A resume of a complete run saves nothing: its summary.json still names the
    checkpoint and the updates run (it wrote null and 0), so checkpoints/ removed after
    it is refused, not trained again from update 0 over the run's rows; so is a complete
    run whose summary.json is older than checkpointed_updates (only stopped and
    interrupted ones were tested)."""
    run_dir = tmp_path / "run"
    done = train(TINY_TABULAR, run_dir, progress=False)
    again = train(TINY_TABULAR, run_dir, progress=False, resume=True)
    assert again["status"] == done["status"] == "complete"
    assert again["checkpointed_updates"] == done["checkpointed_updates"] == done["updates_done"]
    assert again["updates_run"] == done["updates_run"] > 0
    older = shutil.copytree(run_dir, tmp_path / "older")
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(checkpoint.CheckpointError, match="was checkpointed after"):
        train(TINY_TABULAR, run_dir, progress=False, resume=True)
    summary = json.loads((older / "summary.json").read_text())
    del summary["checkpointed_updates"]
    (older / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(older / "checkpoints")
    with pytest.raises(checkpoint.CheckpointError, match="was checkpointed after"):
        train(TINY_TABULAR, older, progress=False, resume=True)


def test_a_checkpoint_record_from_before_the_kept_summary_still_resumes(tmp_path):
    """A record without info["summary"] (written before jrl kept it there) resumes by
    reading the rows again, to the numbers of a run that never stopped."""
    run_dir = tmp_path / "run"
    pieces = RunSpec(**{**TINY_TABULAR.__dict__, "chunk_size": 10})
    train(pieces, run_dir, progress=False, max_chunks=1)
    for path in (run_dir / "checkpoints").glob("*.json"):
        record = json.loads(path.read_text())
        del record["info"]["summary"]
        path.write_text(json.dumps(record))
    resumed = train(pieces, run_dir, progress=False, resume=True)
    whole = train(pieces, tmp_path / "whole", progress=False)
    assert resumed["status"] == "complete" and resumed["grid"] == whole["grid"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hparams": ({"lr": True},)}, r"hparams\[0\].lr must be a number"),
        ({"config": {"hidden_sizes": [64.5, 64]}}, r"hidden_sizes must be a non-empty tuple of"),
        ({"env_overrides": [("max_steps_in_episode", 50)]}, r"env_overrides must be a mapping"),
    ],
    ids=["lr_bool", "hidden_sizes_float", "env_overrides_list"],
)
def test_values_of_the_wrong_kind_are_refused(change, message):
    """A hyperparameter true (read as 1.0), a width of 64.5 (truncated to 64), a list of
    pairs as env_overrides: each was taken."""
    with pytest.raises(ValueError, match=message):
        resolve(RunSpec(**{"agent": "ppo", "env": "CartPole-v1", **change}))


def test_the_eval_cut_check_reads_the_runs_env_overrides():
    """A textbook task has no time limit unless --env-overrides gives one: the check
    that an evaluated episode ends made the task without them and refused the run."""
    spec = RunSpec(
        agent="ppo",
        env="WindyGridworld-v0",
        env_overrides={"observation": "grid", "max_steps_in_episode": 500},
        config={"eval_every": 1, "network": "cnn", "num_envs": 2, "num_steps": 8},
    )
    assert resolve(spec).env_overrides["max_steps_in_episode"] == 500


def test_an_older_run_with_an_unswept_algorithm_tuple_still_loads():
    """Every algorithm of a tabular config must be a grid point's: a new run's rule, so
    a run directory made before it still resumes, evaluates and plots."""
    spec = RunSpec(
        agent="tabular", env="CliffWalking-v0", config={"algorithm": ("sarsa", "q_learning")}
    )
    with pytest.raises(ValueError, match="no grid point runs"):
        resolve(spec)
    assert resolve(spec, new_run=False).config["algorithm"] == ("sarsa", "q_learning")


def test_a_mismatch_names_the_commit_that_wrote_the_run_last(tmp_path, monkeypatch):
    """A checkpoint of another configuration names the commit of the run's last process
    (meta.json's resumes), not its first: a run resumed by this very commit was told to
    check out the old one."""
    now, first, last = "b" * 40, "a" * 40, "c" * 40
    monkeypatch.setattr(training, "git_state", lambda *a, **k: {"commit": now})
    (tmp_path / "meta.json").write_text(json.dumps({"commit": first, "resumes": [{"commit": now}]}))
    with pytest.raises(checkpoint.MismatchError) as refused, training._naming_the_writer(tmp_path):
        raise checkpoint.MismatchError("another configuration")
    assert str(refused.value) == "another configuration"  # this commit wrote it last
    (tmp_path / "meta.json").write_text(
        json.dumps({"commit": first, "resumes": [{"commit": last}]})
    )
    naming = training._naming_the_writer(tmp_path)
    with pytest.raises(checkpoint.MismatchError, match=f"at commit {last[:12]}"), naming:
        raise checkpoint.MismatchError("another configuration")


@pytest.mark.parametrize("agent", ["dqn", "ppo"])
def test_an_older_run_lacking_the_added_fields_is_the_run_their_values_reproduce(
    agent, tmp_path, monkeypatch
):
    """ADDED_CONFIG_FIELDS vouches for an older run's config.yaml that lacks them only
    with the values that reproduce it: a wrong value there (only its type was tested)
    refused every such run, and a listed field's value went unchecked."""
    from jrl.run_dir import write_yaml

    written = resolve(RunSpec(agent=agent, env="CartPole-v1")).to_dict()
    for name in training.ADDED_CONFIG_FIELDS[agent]:
        del written["config"][name]  # written before every added field existed
    write_yaml(tmp_path / "config.yaml", written)
    started = training._fingerprint_of(read_yaml(tmp_path / "config.yaml"))
    (tmp_path / "meta.json").write_text(json.dumps({"fingerprint": started}))
    loaded = load_spec(tmp_path)
    assert training.recorded_fingerprint(tmp_path, loaded) == started
    added = {**training.ADDED_CONFIG_FIELDS}  # as if older runs had behaved otherwise
    added[agent] = {**added[agent], "eval_episodes": 7}
    monkeypatch.setattr(training, "ADDED_CONFIG_FIELDS", added)
    assert training.recorded_fingerprint(tmp_path, loaded) is None


def test_a_grid_point_whose_seeds_ended_no_episode_lists_null_returns():
    """summary.json's final returns are null until a seed ends an episode (they were
    left out, and jrl's printed summary read them: KeyError)."""
    spec = resolve(RunSpec(agent="tabular", env="CliffWalking-v0", num_seeds=2))
    (point,) = training.Summary(spec).grid()
    assert point["final_episode_return"] == [None, None]
    assert point["mean_final_episode_return"] is None


@pytest.mark.parametrize("max_chunks", [-1, 1.5, True])
def test_max_chunks_is_refused_unless_a_count(max_chunks, tmp_path):
    """-1 ran nothing and said "stopped"; 1.5 ran as 2."""
    with pytest.raises(ValueError, match="max_chunks must be None or an int >= 0"):
        train(TINY_TABULAR, tmp_path / "run", progress=False, max_chunks=max_chunks)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"run_dir": None}, TypeError, "run_dir must be the path .* got NoneType None"),
        ({"run_dir": 3}, TypeError, "run_dir must be the path .* got int 3"),
        ({"run_dir": ""}, ValueError, "run_dir is empty .the current directory."),
        ({"resume": "False"}, ValueError, "resume must be a bool, got 'False'"),
        ({"progress": "no"}, ValueError, "progress must be a bool, got 'no'"),
        ({"meta": ["sinks"]}, TypeError, r"meta must be a dict of more provenance .* \['sinks'\]"),
    ],
)
def test_train_refuses_a_run_dir_flags_or_meta_of_another_kind(change, error, message, tmp_path):
    """run_dir=None failed in pathlib ("expected str, bytes or os.PathLike object"),
    "" named the current directory; resume="False" resumed (a non-empty string is
    true); a meta list failed only after compiling, writing meta.json."""
    args = {"run_dir": tmp_path / "run", "progress": False} | change
    with pytest.raises(error, match=message):
        train(TINY_TABULAR, **args)
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_a_spec_or_sinks_of_another_kind(tmp_path):
    """A config.yaml's dict for the spec, or sink names for sinks: AttributeErrors from
    inside (sinks="tensorboard" once the first chunk's rows were written)."""
    with pytest.raises(TypeError, match="train takes a RunSpec, got dict"):
        train(TINY_TABULAR.to_dict(), tmp_path / "a", progress=False)
    with pytest.raises(TypeError, match="sinks must be objects with write.rows. and close"):
        train(TINY_TABULAR, tmp_path / "b", progress=False, sinks="tensorboard")
    with pytest.raises(TypeError, match="sinks must be objects with write.rows. and close"):
        train(TINY_TABULAR, tmp_path / "c", progress=False, sinks=lambda: ["tensorboard"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
