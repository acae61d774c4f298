"""The jrl command line, exercised as a user runs it: subprocesses of the installed
entry point's module."""

import json
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.timeout(600)


def jrl(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "jrl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_envs_lists_ours_and_gymnax():
    done = jrl("envs")
    assert done.returncode == 0, done.stderr
    assert "CatRoom-v0" in done.stdout and "CartPole-v1" in done.stdout


def test_help_documents_every_field():
    done = jrl("train", "ppo", "--help")
    assert done.returncode == 0, done.stderr
    for flag in (
        "--config.num-envs",
        "--config.num-minibatches",
        "--hparams.lr",
        "--hparams.ent-coef",
        "--num-seeds",
        "--chunk-size",
        "--out",
    ):
        assert flag in done.stdout, flag


def test_train_eval_render_plot_a_cat(tmp_path):
    run = tmp_path / "cat"
    done = jrl(
        "train",
        "tabular",
        "--env",
        "CatRoom-v0",
        "--out",
        run,
        "--num-seeds",
        "2",
        "--config.num-episodes",
        "200",
        "--hparams.q-init",
        "5",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # The resolved config: every field, defaults filled in.
    assert saved["hparams"][0]["q_init"] == 5.0 and saved["hparams"][0]["alpha"] == 0.5
    assert saved["config"]["max_steps"] == 1_000_000

    done = jrl("eval", run, "--episodes", "2")
    assert done.returncode == 0, done.stderr
    evaluation = json.loads((run / "eval.json").read_text())
    # Optimism finds the tall post (+10): the greedy cat scratches it.
    assert evaluation["grid"][0]["mean"] == pytest.approx(10.0)
    assert "IQM" in (run / "eval" / "aggregates.md").read_text()
    assert (run / "eval" / "performance_profiles.png").stat().st_size > 0
    done = jrl("eval", run, "--episodes", "4", "--sampled", "--epsilon", "1.0")
    assert done.returncode == 0, done.stderr
    sampled = json.loads((run / "eval.json").read_text())
    assert sampled["policy"].startswith("sampled")
    # A uniformly random cat rarely walks the whole way to the tall post.
    assert sampled["grid"][0]["mean"] < 10.0

    done = jrl("render", run, "--out", tmp_path / "cat.gif")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cat.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")

    done = jrl("plot", run, "--out", tmp_path / "curves.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_runs_a_grid_and_rejects_static_settings(tmp_path):
    done = jrl(
        "sweep",
        "tabular",
        "--env",
        "CliffWalking-v0",
        "--out",
        tmp_path / "s",
        "--grid",
        "alpha=0.1,0.5",
        "--config.num-episodes",
        "20",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    grid = json.loads((tmp_path / "s" / "summary.json").read_text())["grid"]
    assert [point["hparams"] for point in grid] == [{"alpha": 0.1}, {"alpha": 0.5}]
    done = jrl("sweep", "tabular", "--out", tmp_path / "t", "--grid", "num_episodes=10,20")
    assert done.returncode == 2
    assert "num_episodes: not a sweepable hyperparameter (a static setting" in done.stderr


def test_config_file_then_flags_and_clear_errors(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "agent": "tabular",
                "env": "CliffWalking-v0",
                "config": {"num_episodes": 15},
                "hparams": [{"alpha": 0.3}],
                "num_seeds": 2,
            }
        )
    )
    done = jrl(
        "train",
        "tabular",
        "--config-file",
        config,
        "--hparams.epsilon",
        "0.2",
        "--out",
        tmp_path / "r",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert len(saved["hparams"]) == 1
    assert saved["hparams"][0]["alpha"] == 0.3 and saved["hparams"][0]["epsilon"] == 0.2
    assert saved["num_seeds"] == 2 and saved["config"]["num_episodes"] == 15

    config.write_text(yaml.safe_dump({"config": {"num_episodes": "many"}}))
    done = jrl("train", "tabular", "--config-file", config, "--out", tmp_path / "bad")
    assert done.returncode == 2 and "config.num_episodes must be an int" in done.stderr
    done = jrl("train", "ppo", "--config.num-minibatches", "3", "--out", tmp_path / "bad")
    assert done.returncode != 0 and "num_minibatches=3 must divide" in done.stderr
    assert not (tmp_path / "bad").exists()
    done = jrl("train", "tabular", "--out", tmp_path / "r")
    assert done.returncode == 2 and "already holds a run" in done.stderr


def test_a_run_directory_config_with_flags_and_a_grid_on_top(tmp_path):
    """What `jrl sweep` runs, composed in-process (nothing compiles): a sweep's
    config.yaml first, --hparams flags on every point, then the --grid product."""
    from jrl.cli import parse_run

    config = tmp_path / "config.yaml"
    config.write_text(
        "agent: tabular\nenv: CliffWalking-v0\nconfig: {num_episodes: 1e2}\n"
        "hparams: [{alpha: 1e-1}, {alpha: 0.5}]\nnum_seeds: 3\n"
    )
    argv = ["--config-file", str(config), "--hparams.epsilon", "0.2", "--grid", "gamma=0.9,1"]
    run, spec = parse_run("tabular", [*argv, "--num-seeds", "4"], sweep=True)
    assert [(p["alpha"], p["gamma"], p["epsilon"]) for p in spec.hparams] == [
        (0.1, 0.9, 0.2),
        (0.1, 1.0, 0.2),
        (0.5, 0.9, 0.2),
        (0.5, 1.0, 0.2),
    ]
    assert spec.num_seeds == 4 and spec.config["num_episodes"] == 100
    _, again = parse_run("tabular", ["--config-file", str(config)])
    assert [p["alpha"] for p in again.hparams] == [0.1, 0.5] and again.num_seeds == 3
    config.write_text("config: {num_episodes: many}\n")
    with pytest.raises(ValueError, match="config.num_episodes must be an int"):
        parse_run("tabular", ["--config-file", str(config)])
