"""The jrl command line, exercised as a user runs it: subprocesses of the installed
entry point's module."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from jrl import cli

pytestmark = pytest.mark.timeout(600)


def jrl(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "jrl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
    )


def refused(capsys, *args) -> str:
    """The stderr of `jrl ARGS` run in this process, which must refuse it (exit status
    2, tyro's parse errors included). For refusals made before any work: a subprocess
    spends its seconds importing JAX and gymnax."""
    capsys.readouterr()
    try:
        status = cli.main(list(map(str, args)))
    except SystemExit as stop:  # tyro ends a parse error so
        status = stop.code
    said = capsys.readouterr().err
    assert status == 2, said
    return said


def test_envs_lists_ours_and_gymnax():
    done = jrl("envs")
    assert done.returncode == 0, done.stderr
    assert "CatRoom-v0" in done.stdout and "CartPole-v1" in done.stdout
    # `python -m jrl` is the same command line.
    as_package = subprocess.run(
        [sys.executable, "-m", "jrl", "envs"], capture_output=True, text=True, timeout=300
    )
    assert as_package.returncode == 0 and as_package.stdout == done.stdout


def test_help_and_argument_errors_answer_before_jax_is_imported():
    """`jrl --help` and a wrong eval/plot argument take a fraction of a second: nothing
    imports JAX (3 s here) before there is work for it."""
    script = (
        "import sys\n"
        "from jrl.cli import main\n"
        "codes = [main(['--help']), main(['eval', 'run', '--episodes', '0']),\n"
        "         main(['plot']), main(['eval', 'run', '--sampled', '--epsilon', '2']),\n"
        "         main(['train', '--help']), main(['sweep', '-h']), main(['train', 'a2c'])]\n"
        "print(codes, 'jax' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[0, 2, 2, 2, 0, 0, 2] False"
    known = "['dqn', 'ppo', 'reinforce', 'tabular']"
    assert f"unknown agent 'a2c'; choose one of {known}" in done.stderr
    assert "--episodes must be >= 1, got 0" in done.stderr
    assert "--epsilon must be in [0, 1]" in done.stderr


def test_the_command_lines_agent_names_are_the_drivers():
    import typing

    from jrl import training
    from jrl.cli import AGENT_NAMES, AgentName

    assert tuple(sorted(training.AGENTS)) == AGENT_NAMES
    assert sorted(typing.get_args(AgentName)) == list(AGENT_NAMES)


def test_train_help_without_an_agent_names_both_forms_on_stdout(capsys):
    """It wrote a two-line usage to stderr (`jrl train --help | less` was empty) and never
    named the --resume form."""
    from jrl.cli import main

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "jrl train {dqn|ppo|reinforce|tabular} [OPTIONS]" in out
    assert "jrl train --resume RUN_DIR [--no-progress]" in out
    assert main(["sweep", "-h"]) == 0 and "--grid NAME=V1,V2" in capsys.readouterr().out
    assert main(["train"]) == 2 and "AGENT is one of" in capsys.readouterr().err


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


def test_train_eval_render_plot_a_cat(tmp_path, capsys):
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
    assert evaluation["checkpoint"] == {
        "updates_done": summary["updates_done"],
        "total_updates": summary["total_updates"],
        "run_status": "complete",
    }
    assert evaluation["max_steps"] == 1000 and "jrl eval:" not in done.stderr
    table = (run / "eval" / "aggregates.md").read_text()
    assert "IQM" in table and "Optimality gap" not in table  # raw returns have no target
    assert (run / "eval" / "performance_profiles.png").stat().st_size > 0
    # (in this process: `jrl eval` as its own process is tested above)
    assert cli.main(["eval", str(run), "--episodes", "4", "--sampled", "--epsilon", "1.0"]) == 0
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

    for args, message in [
        (("eval", run, "--episodes", "0"), "--episodes must be >= 1, got 0"),
        (("eval", run, "--max-steps", "0"), "--max-steps must be >= 1, got 0"),
        (("eval", run, "--sampled", "--epsilon", "2"), "--epsilon must be in [0, 1]"),
        (("render", run, "--fps", "0"), "--fps must be in [0.002, 50], got 0.0"),
        (("render", run, "--fps", "60"), "--fps must be in [0.002, 50], got 60.0"),
        # Refused before the episode is played or the curves drawn, not after.
        (("render", run, "--out", tmp_path), f"--out {tmp_path} is a directory"),
        (("render", run, "--out", tmp_path / "x.png"), "the file written is a .gif"),
        (("plot", run, "--out", tmp_path), f"--out {tmp_path} is a directory"),
        # Options the command would ignore (it evaluated greedily, drew the run's env):
        (("eval", run, "--epsilon", "0.5"), "--epsilon applies to --sampled evaluations"),
        (("render", run, "--env", "CartPole-v1"), "--env applies without a run directory"),
        (("eval", run, "--seed", str(2**32 + 5)), "--seed must be an int in [0, 2**32)"),
        (("render", run, "--seed", "-1"), "--seed must be an int in [0, 2**32), got -1"),
    ]:
        said = refused(capsys, *args)
        assert message in said, said
    assert json.loads((run / "eval.json").read_text()) == sampled  # left as it was
    # A checkpoint taken as the run was interrupted (the record keeps the status).
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    record = json.loads((run / "checkpoints" / "latest.json").read_text())
    record["info"]["run_status"] = "interrupted"
    (run / "checkpoints" / "latest.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert cli.main(["eval", str(run), "--episodes", "1"]) == 0
    assert f"{run} is interrupted: evaluated its checkpoint after" in capsys.readouterr().err


def test_sweep_runs_a_grid_and_rejects_static_settings(tmp_path, capsys):
    # In this process (`jrl sweep` and `jrl render` as processes of their own:
    # test_eval_pools_runs_as_tasks, test_train_eval_render_plot_a_cat).
    sweep = ["sweep", "tabular", "--env", "CliffWalking-v0", "--out", str(tmp_path / "s")]
    options = ["--grid", "alpha=0.1,0.5", "--config.num-episodes", "20", "--no-progress"]
    assert cli.main([*sweep, *options]) == 0
    grid = json.loads((tmp_path / "s" / "summary.json").read_text())["grid"]
    assert [point["hparams"] for point in grid] == [{"alpha": 0.1}, {"alpha": 0.5}]
    said = refused(
        capsys, "sweep", "tabular", "--out", tmp_path / "t", "--grid", "num_episodes=10,20"
    )
    assert "num_episodes: not a sweepable hyperparameter (a static setting" in said

    # A random episode of a run is played on the run's environment, not --env's default.
    assert (
        cli.main(["render", str(tmp_path / "s"), "--random", "--out", str(tmp_path / "s.gif")]) == 0
    )
    random_cliff = ["render", "--random", "--env", "CliffWalking-v0"]
    assert cli.main([*random_cliff, "--out", str(tmp_path / "c.gif")]) == 0
    frame_shape = iio.imread(tmp_path / "c.gif", index=0).shape
    assert iio.imread(tmp_path / "s.gif", index=0).shape == frame_shape

    # Two runs named alike are told apart; every seed's curve runs to its last row.
    from jrl.run_analysis import learning_curves

    shutil.copytree(tmp_path / "s", tmp_path / "again" / "s")
    curves, _ = learning_curves([tmp_path / "s", tmp_path / "again" / "s"])
    assert len(curves) == 4
    final = [point["final_episode_return"] for point in grid]
    ends = [curve[:, -1].tolist() for label, curve in curves.items() if "again" not in label]
    assert ends == final
    # Curves start where every seed has ended an episode: no value from a later update.
    # A second seed (grid point 0's rows again) whose first episode ends 50 updates on.
    from jrl.run_dir import read_rows

    rows = [row for row in read_rows(tmp_path / "s" / "metrics.jsonl") if row["grid_point"] == 0]
    first = min(row["update"] for row in rows if row["episode_return"] is not None)
    late = [
        {**row, "seed": 1, **({"episode_return": None} if row["update"] < first + 50 else {})}
        for row in rows
    ]
    with open(tmp_path / "again" / "s" / "metrics.jsonl", "a") as file:
        file.writelines(json.dumps(row) + "\n" for row in late)
    curves, xs = learning_curves([tmp_path / "again" / "s"])
    (label, curve), *_ = curves.items()
    assert curve.shape[0] == 2 and np.isfinite(curve).all()
    ends = (r for r in late if r["episode_return"] is not None)  # in update order
    assert xs[label][0] == next(ends)["timesteps"]
    # An infinite return, even before every seed has a value, is refused, not cut off.
    diverged = [{**row, "seed": 2} for row in rows]
    diverged[first]["episode_return"] = float("inf")
    with open(tmp_path / "again" / "s" / "metrics.jsonl", "a") as file:
        file.writelines(json.dumps(row) + "\n" for row in diverged)
    from jrl.run_analysis import plot_runs

    with pytest.raises(ValueError, match=r"seed\(s\) \[2\] logged an infinite episode_return"):
        plot_runs([tmp_path / "again" / "s"], tmp_path / "inf.png")


def test_a_config_file_is_taken_whole_and_only_once(tmp_path, capsys):
    """A run's config.yaml given again is the same run, its root seed too (dropped, it
    ran seed 0: other numbers), with flags on top; another agent's file, or a second
    file, is refused rather than ignored; an empty file or a --config-file without its
    value is said, not a traceback."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("num_seeds: 3\nseed: 7\n")
    second.write_text("num_seeds: 5\n")
    _, spec = cli.parse_run("tabular", ["--config-file", str(first)])
    assert (spec.num_seeds, spec.seed) == (3, 7)
    _, spec = cli.parse_run("tabular", [f"--config-file={first}", "--seed", "8"])
    assert (spec.num_seeds, spec.seed) == (3, 8)
    said = refused(capsys, "train", "tabular", "--config-file", first, "--config-file", second)
    assert "--config-file is given more than once" in said
    ppo_run = tmp_path / "ppo.yaml"
    ppo_run.write_text("agent: ppo\nenv: CartPole-v1\n")
    assert "is a 'ppo' run, not 'dqn'" in refused(capsys, "train", "dqn", "--config-file", ppo_run)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    said = refused(capsys, "train", "tabular", "--config-file", empty)
    assert "expected a mapping of run fields, got NoneType" in said
    assert "--config-file needs a value" in refused(capsys, "train", "tabular", "--config-file")


def test_train_defaults_and_the_equals_spelling_of_grid(tmp_path, capsys):
    """jrl train's own defaults (nothing else reads them): the agents' usual tasks, one
    seed from root seed 0 (RunSpec's, so its numbers are run_sweep's on key 0), a
    progress bar, the agent's chunk size; --grid=NAME=VALUES as --grid NAME=VALUES; one
    --resume, and --layout only for one run."""
    from jrl.training import RunSpec

    for agent, env in [
        ("ppo", "CartPole-v1"),
        ("dqn", "CartPole-v1"),
        ("tabular", "CliffWalking-v0"),
    ]:
        run, spec = cli.parse_run(agent, [])
        assert (spec.env, spec.num_seeds, spec.seed) == (env, 1, 0)
        assert (spec.num_seeds, spec.seed) == (
            RunSpec(agent, env).num_seeds,
            RunSpec(agent, env).seed,
        )
        assert run.progress is True and spec.chunk_size == cli.CHUNK_SIZES[agent]
    _, spec = cli.parse_run("tabular", ["--grid=alpha=0.1,0.2"], sweep=True)
    assert [point["alpha"] for point in spec.hparams] == [0.1, 0.2]
    _, spec = cli.parse_run("tabular", ["--grid", "alpha=0.1,0.2,"], sweep=True)
    assert [point["alpha"] for point in spec.hparams] == [0.1, 0.2]  # a trailing comma
    said = refused(capsys, "train", "--resume", tmp_path / "a", "--resume", tmp_path / "b")
    assert "usage: jrl train --resume RUN_DIR" in said
    pooled = ["eval", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "o", "--layout", 1]
    assert "--layout applies to one run directory" in refused(capsys, *pooled)


def test_config_file_then_flags_and_clear_errors(tmp_path, capsys):
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
    said = refused(capsys, "train", "tabular", "--config-file", config, "--out", tmp_path / "bad")
    assert "config.num_episodes must be an int" in said
    said = refused(
        capsys, "train", "ppo", "--config.num-minibatches", "3", "--out", tmp_path / "bad"
    )
    assert "num_minibatches=3 must divide" in said
    assert not (tmp_path / "bad").exists()
    assert "already holds a run" in refused(capsys, "train", "tabular", "--out", tmp_path / "r")
    said = refused(capsys, "train", "ppo", "--resume", tmp_path / "r")
    assert "is a 'tabular' run, not 'ppo'" in said
    assert "needs at least one run directory" in refused(capsys, "plot")
    said = refused(capsys, "train", "tabular", "--grid", "alpha=0.1,0.2", "--out", tmp_path / "g")
    assert "--grid makes a sweep: jrl sweep tabular" in said
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    for out, message in [(config, "is a file"), (tmp_path / "notes", "holds other files")]:
        said = refused(capsys, "train", "tabular", "--out", out)
        assert message in said, said
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    # An --out that cannot be made (under a file) is an error before anything compiles.
    done = jrl("train", "ppo", "--out", config / "run", env={"JAX_LOG_COMPILES": "1"})
    assert done.returncode == 2 and "Not a directory" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "compilation of jit(init)" not in done.stderr
    said = refused(
        capsys, "train", "tabular", "--env-overrides", "layout", "99", "--out", tmp_path / "l"
    )
    assert "a layout is an ASCII map (a string), got 99" in said
    assert not (tmp_path / "l").exists()


def test_the_jrl_command_keeps_its_compiles_for_the_next_one(tmp_path):
    """Without a cache of the user's, `jrl train` writes its programs to
    $XDG_CACHE_HOME/jrl/jax (meta.json says where), and a run with another seed reads
    them back (JAX stamps an entry's last use when it reads it) instead of compiling."""
    from jrl.host import CACHE_READ_ERROR, drop_damaged_cache_entries

    xdg = tmp_path / "xdg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(XDG_CACHE_HOME=str(xdg), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    cache = xdg / "jrl" / "jax"

    def train(name, seed, stderr=False):
        args = ["train", "tabular", "--env", "CliffWalking-v0", "--out", tmp_path / name]
        args += ["--config.num-episodes", "5", "--seed", seed, "--no-progress"]
        done = subprocess.run(
            [sys.executable, "-m", "jrl.cli", *map(str, args)],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        meta = json.loads((tmp_path / name / "meta.json").read_text())
        assert meta["compilation_cache"] == str(cache)
        if stderr:
            return done.stderr
        return {p.name: int.from_bytes(p.read_bytes(), "little") for p in cache.glob("*-atime")}

    first = train("first", 0)
    assert any(name.startswith("jit_call-") for name in first)  # the chunk's program
    second = train("second", 1)
    assert set(second) == set(first)  # nothing compiled anew
    assert all(second[name] > first[name] for name in first)  # every program read back
    # An entry half written (a kill, a full disk), which JAX never replaces, is removed
    # when JAX cannot read it, and this compile's program takes its place.
    (chunk,) = cache.glob("jit_call-*-cache")
    whole = chunk.read_bytes()
    chunk.write_bytes(whole[: len(whole) // 2])
    said = train("third", 2, stderr=True)
    assert CACHE_READ_ERROR in said, said
    assert f"jrl: removed damaged entries of the compilation cache in {cache}: {chunk.name}" in said
    assert chunk.exists() and drop_damaged_cache_entries(cache) == []


def test_a_run_of_an_environment_of_your_own_resumes_and_evaluates_in_a_new_process(tmp_path):
    """A run of a researcher's own environment, named by import path, can be resumed and
    evaluated by any later `jrl` process (a name registered in-process could not)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "my_cliff.py").write_text(
        "from jrl.envs import make\n"
        "def make_cliff(max_steps=100):\n"
        "    env, params = make('CliffWalking-v0')\n"
        "    return env, params.replace(max_steps_in_episode=max_steps)\n"
    )
    path, run = {"PYTHONPATH": str(tmp_path / "lib")}, tmp_path / "own"
    # The first chunk only, as a stopped run leaves it.
    first_chunk = (
        "import sys; from jrl.training import RunSpec, train\n"
        "spec = RunSpec(agent='tabular', env='my_cliff:make_cliff', chunk_size=2,\n"
        "               env_overrides={'max_steps': 50}, config={'num_episodes': 60})\n"
        "print(train(spec, sys.argv[1], max_chunks=1, progress=False)['status'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", first_chunk, str(run)], capture_output=True, text=True,
        timeout=300, env={**os.environ, **path},
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["env"] == "my_cliff:make_cliff" and saved["env_overrides"] == {"max_steps": 50}
    done = jrl("train", "--resume", run, "--no-progress", env=path)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    done = jrl("eval", run, "--episodes", "1", env=path)
    assert done.returncode == 0, done.stderr
    assert "grid point 0: mean return" in done.stdout and (run / "eval.json").exists()
    done = jrl("eval", run, "--episodes", "1")  # without it on the path: said how to fix
    assert done.returncode != 0 and "cannot import my_cliff" in done.stderr, done.stderr
    assert "PYTHONPATH" in done.stderr and "Traceback" not in done.stderr


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
    assert again.chunk_size == 1000  # the CLI's default for the agent, as without a file
    config.write_text("config: {num_episodes: many}\n")
    with pytest.raises(ValueError, match="config.num_episodes must be an int"):
        parse_run("tabular", ["--config-file", str(config)])


def test_a_locale_that_is_not_utf8_reads_utf8_config_files_and_refuses_what_orbax_misnames(
    tmp_path,
):
    """Under a locale that is not UTF-8 (POSIX, Python's UTF-8 mode and locale coercion
    off), a config file with a UTF-8 comment was refused as ASCII, and a non-ASCII run
    directory trained until its first checkpoint, which tensorstore could not name."""
    config = tmp_path / "config.yaml"
    config.write_bytes("# learning rate \u03b1\nhparams:\n  alpha: 0.3\n".encode())
    out = tmp_path / "caf\u00e9"
    locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "jrl.cli", "train", "tabular", "--env", "CliffWalking-v0",
         "--config-file", config, "--config.num-episodes", "20", "--out", os.fsencode(out)],
        capture_output=True, timeout=300, env={**os.environ, **locale},
    )  # fmt: skip
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr
    assert "must be named in UTF-8" in stderr and "Traceback" not in stderr
    assert not out.exists()
    config.write_bytes(b"# caf\xe9 in Latin-1\nhparams:\n  alpha: 0.3\n")
    from jrl.cli import parse_run

    with pytest.raises(ValueError, match=r"config.yaml is not valid yaml: 'utf-8' codec"):
        parse_run("tabular", ["--config-file", str(config)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--grid", "alpha=0.1", "--grid", "alpha=0.2,0.3"], "--grid alpha is given twice"),
        (["--grid", "alpha=1e-1,0.1"], "a value is listed twice"),
        (["--grid", "alpha=0.1,0.1000000000001"], r"a value is listed twice \(as float32"),
        (["--hparams.alpha", "0.9", "--grid", "alpha=0.1,0.2"], "set both by --hparams and"),
        (["--grid", "alpha"], "write NAME=v1,v2"),
        (
            ["--config-file", "{file}", "--grid", "alpha=0.5,0.7"],
            r"--grid alpha: the config file's grid points differ in \['alpha'\]",
        ),
        # Tuned pairs: a grid on one of them made distinct points, and the file's values
        # of it were gone without a word.
        (
            ["--config-file", "{pairs}", "--grid", "alpha=0.5,0.7"],
            r"differ in \['alpha', 'epsilon'\], and the grid would replace their alpha",
        ),
        (["--config-file", "{file}", "--hparams.alpha", "0.5"], r"\[1\] repeat earlier"),
        # Equal as float32, as the runs hold them: the same run twice (as --grid refuses).
        (["--config-file", "{close}"], r"\[1\] repeat earlier points.*\(as float32"),
    ],
)
def test_sweep_grids_that_would_drop_or_repeat_points_are_refused(argv, message, tmp_path):
    from jrl.cli import parse_run

    files = {
        "file": "hparams: [{alpha: 0.1}, {alpha: 0.3}]",
        "pairs": "hparams: [{alpha: 0.1, epsilon: 0.05}, {alpha: 0.3, epsilon: 0.2}]",
        "close": "hparams: [{alpha: 0.1}, {alpha: 0.1000000001}]",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text + "\n")
    argv = [arg.format(**{name: tmp_path / f"{name}.yaml" for name in files}) for arg in argv]
    with pytest.raises(ValueError, match=message):
        parse_run("tabular", argv, sweep=True)


def test_env_overrides_and_grid_names_read_as_on_the_command_line():
    from jrl.cli import parse_run

    argv = ["--env", "CatRoom-v0", "--env-overrides", "slip_prob", "0.1", "max_steps_in_episode"]
    _, spec = parse_run("tabular", [*argv, "50", "--grid", "q-init=0,5"], sweep=True)
    assert spec.env_overrides == {"slip_prob": 0.1, "max_steps_in_episode": 50}
    assert [point["q_init"] for point in spec.hparams] == [0.0, 5.0]


def test_repeated_multi_value_flags_add_their_values():
    """tyro keeps the last of a repeated flag that takes several values: `--sinks
    tensorboard --sinks wandb` fed wandb alone, and of two `--env-overrides` the first was
    dropped without a word."""
    from jrl.cli import parse_run

    argv = ["--env", "CatRoom-v0", "--env-overrides", "slip_prob", "0.1", "--num-seeds", "2"]
    run, spec = parse_run(
        "tabular",
        [
            *argv,
            "--sinks",
            "tensorboard",
            "--env-overrides=max_steps_in_episode",
            "50",
            "--sinks",
            "wandb",
            "jsonl",
        ],
    )
    assert spec.env_overrides == {"slip_prob": 0.1, "max_steps_in_episode": 50}
    assert run.sinks == ("tensorboard", "wandb", "jsonl") and spec.num_seeds == 2
    with pytest.raises(ValueError, match=r"--env-overrides sets \['slip_prob'\] more than once"):
        parse_run("tabular", [*argv, "--env-overrides", "slip_prob", "0.2"])
    # tyro's other spelling of the flag, repeated, dropped all but the last too.
    underscored = ["--env_overrides", "slip_prob", "0.1", "--env_overrides", "max_steps_in_episode"]
    _, spec = parse_run("tabular", ["--env", "CatRoom-v0", *underscored, "50"])
    assert spec.env_overrides == {"slip_prob": 0.1, "max_steps_in_episode": 50}


def test_hparams_flags_with_an_equals_sign_set_their_value():
    """`--hparams.alpha=0.3` is tyro's other spelling of `--hparams.alpha 0.3`: the run
    takes it, over a config file's points and beside a grid."""
    from jrl.cli import parse_run

    argv = ["--env", "CatRoom-v0", "--hparams.alpha=0.3", "--hparams.q-init=5"]
    _, spec = parse_run("tabular", argv)
    assert (spec.hparams[0]["alpha"], spec.hparams[0]["q_init"]) == (0.3, 5.0)
    _, spec = parse_run("tabular", [*argv[:3], "--grid", "q-init=0,5"], sweep=True)
    assert [(point["alpha"], point["q_init"]) for point in spec.hparams] == [(0.3, 0), (0.3, 5)]


def test_env_overrides_true_and_false_are_bools_in_the_run_spec():
    """`--env-overrides resample_goal_pos true` was refused ("must be true or false, got
    'true'"): tyro reads only True and False as bools. Held as the bool, the run's task
    is the one `True` or a YAML file's `true` names (jrl eval pools tasks by name)."""
    from jrl.cli import parse_run

    for written, value in (("true", True), ("FALSE", False), ("True", True)):
        argv = ["--env", "FourRooms-misc", "--env-overrides", "resample_goal_pos", written]
        _, spec = parse_run("ppo", argv)
        assert spec.env_overrides == {"resample_goal_pos": value}


def unstarted_runs(tmp_path, agent, envs) -> list[str]:
    """Run directories under ``tmp_path``, one per environment, holding only the
    config.yaml `jrl train AGENT --env ENV` would write (no checkpoint yet)."""
    from jrl.cli import parse_run

    runs = []
    for env in envs:
        _, spec = parse_run(agent, ["--env", env])
        (tmp_path / env).mkdir()
        (tmp_path / env / "config.yaml").write_text(yaml.safe_dump(spec.to_dict()))
        runs.append(str(tmp_path / env))
    return runs


def test_eval_reads_every_repeated_reference(tmp_path, capsys):
    """`jrl eval A B --out D --reference A=.. --reference B=..` (as its own error message
    asks) kept the last reference only and normalised the other task between a random
    policy and its best seed without a word; a task named twice is refused."""
    from jrl.cli import main

    runs = unstarted_runs(tmp_path, "tabular", ("CatRoom-v0", "CliffWalking-v0"))
    argv = ["eval", *runs, "--out", str(tmp_path / "pool")]
    cat, cliff, cat_again = "CatRoom-v0=0,10", "CliffWalking-v0=-100,0", "CatRoom-v0=0,1"
    assert main([*argv, "--reference", cat, "--reference", cliff, cat_again]) == 2
    assert "--reference names task 'CatRoom-v0' twice" in capsys.readouterr().err
    # Read whole, the references get as far as the runs (which have no checkpoint here).
    assert main([*argv, "--reference", cat, "--reference", cliff]) == 2
    assert "has no checkpoint yet" in capsys.readouterr().err


@pytest.mark.parametrize(
    "agent, file, flags, held, refused",
    [
        (
            "tabular",
            "config: {algorithm: [q_learning, sarsa], num_episodes: 20}",
            ["--grid", "algorithm=0,1"],
            {"algorithm": ("q_learning", "sarsa"), "num_episodes": 20},
            "no grid point runs ['sarsa']",
        ),
        (
            "tabular",
            "hparams: [{decay_steps: 100}]",
            ["--config.schedule", "linear"],
            {"schedule": "linear"},
            "schedule='constant' ignores it",
        ),
        (
            "dqn",
            "config: {total_timesteps: 2000}",
            ["--config.log-frequency", "500"],
            {"total_timesteps": 2000, "log_frequency": 500},
            "total_timesteps=2000 is less than one chunk",
        ),
    ],
    ids=["algorithms and their grid", "schedule and its length", "budget and its chunk"],
)
def test_a_config_file_is_checked_with_the_flags_on_top(
    agent, file, flags, held, refused, tmp_path, capsys
):
    """The file was checked alone, before its flags: a file and flags that together make
    a valid run were refused (its error even suggested the command it refused)."""
    from jrl.cli import parse_run

    config = tmp_path / "base.yaml"
    config.write_text(file + "\n")
    _, spec = parse_run(agent, ["--config-file", str(config), *flags], sweep=True)
    assert {name: spec.config[name] for name in held} == held
    # Alone, the file is still refused before anything compiles (tyro reports an error
    # of the config dataclass's own checks and exits with status 2).
    with pytest.raises((ValueError, SystemExit)) as error:
        parse_run(agent, ["--config-file", str(config)], sweep=True)
    said = " ".join((str(error.value) + capsys.readouterr().err).split()).replace("│ ", "")
    assert refused in said


def test_a_config_files_numbers_read_as_the_fields_take_them(tmp_path, recwarn):
    """[1e2, 64] for hidden sizes was refused as (100.0, 64) though 1e5 read as an int
    elsewhere; num_seeds: "2" met tyro's own warning before jrl's error."""
    from jrl.cli import parse_run

    config = tmp_path / "run.yaml"
    config.write_text("num_seeds: 2.0\nconfig: {total_timesteps: 1e5, hidden_sizes: [1e2, 64]}\n")
    _, spec = parse_run("ppo", ["--config-file", str(config)])
    assert (spec.num_seeds, spec.config["hidden_sizes"]) == (2, (100, 64))
    config.write_text('num_seeds: "2"\n')
    with pytest.raises(ValueError, match="run.yaml: num_seeds must be a whole number, got '2'"):
        parse_run("ppo", ["--config-file", str(config)])
    assert not [w for w in recwarn if "tyro" in str(w.filename)]


def test_env_overrides_flags_go_on_top_of_a_config_files(tmp_path):
    """A file's env_overrides given to tyro as the default made its keys fixed flags
    (--env-overrides.slip-prob): --env-overrides NAME VALUE no longer parsed."""
    from jrl.cli import parse_run

    config = tmp_path / "config.yaml"
    config.write_text(
        "env: CatRoom-v0\nenv_overrides: {slip_prob: 0.1, max_steps_in_episode: 40}\n"
    )
    argv = ["--config-file", str(config), "--env-overrides", "max_steps_in_episode", "50"]
    _, spec = parse_run("tabular", argv)
    assert spec.env_overrides == {"slip_prob": 0.1, "max_steps_in_episode": 50}
    _, spec = parse_run("tabular", ["--config-file", str(config)])
    assert spec.env_overrides == {"slip_prob": 0.1, "max_steps_in_episode": 40}


def sweep_q_init(env, out, in_process=False):
    """A tiny tabular sweep: q_init 0 (greedy from the start) and 5 (optimistic), 3 seeds;
    as a process of its own, or in this one (~4 s less: JAX's and gymnax's imports)."""
    args = ["sweep", "tabular", "--env", env, "--out", str(out), "--num-seeds", "3"]
    args += ["--grid", "q_init=0,5", "--config.num-episodes", "30", "--no-progress"]
    if in_process:
        assert cli.main(args) == 0
    else:
        done = jrl(*args)
        assert done.returncode == 0, done.stderr


def test_eval_pools_runs_as_tasks(tmp_path, capsys):
    """`jrl eval RUN_A RUN_B --out DIR`: each run's environment a task, each grid point a
    method; the pooled table is rliable's over the per-run eval.json scores, normalised
    per task between a random policy and the best seed."""
    import jax
    import numpy as np
    import scipy.stats

    from jrl.agents.evaluation import random_policy_returns
    from jrl.cli import main
    from jrl.envs import make as make_env
    from jrl.task_aggregates import evaluate_tasks, parse_references, plan_pool

    cat, cliff = tmp_path / "cat", tmp_path / "cliff"
    sweep_q_init("CatRoom-v0", cat)
    sweep_q_init("CliffWalking-v0", cliff, in_process=True)

    # Mismatched runs are refused before anything is evaluated (in-process: quicker).
    fewer_seeds = tmp_path / "fewer_seeds"
    fewer_seeds.mkdir()
    config = yaml.safe_load((cliff / "config.yaml").read_text())
    (fewer_seeds / "config.yaml").write_text(yaml.safe_dump({**config, "num_seeds": 2}))
    assert main(["eval", str(cat), str(fewer_seeds), "--out", str(tmp_path / "bad")]) == 2
    assert "method 'tabular q_init=0' has different numbers of seeds" in capsys.readouterr().err
    assert not (cat / "eval.json").exists() and not (tmp_path / "bad").exists()
    other_grid = tmp_path / "other_grid"
    other_grid.mkdir()
    points = [{**config["hparams"][0], "q_init": 1.0}, config["hparams"][1]]
    (other_grid / "config.yaml").write_text(yaml.safe_dump({**config, "hparams": points}))
    lacks = r"task 'CatRoom-v0' \(.*cat\) lacks method\(s\) \['tabular q_init=1'\]"
    with pytest.raises(ValueError, match=lacks):
        plan_pool([cat, other_grid])
    same_task = tmp_path / "same_task"
    same_task.mkdir()
    (same_task / "config.yaml").write_text((cat / "config.yaml").read_text())
    with pytest.raises(ValueError, match="method 'tabular q_init=0' appears twice on task"):
        plan_pool([cat, same_task])
    with pytest.raises(ValueError, match="given twice"):
        plan_pool([cat, cat / ".." / "cat"])
    # Config fields that differ between an agent's runs on one task name its methods; a
    # difference between tasks only is one method, listed (it pooled Sarsa on one task
    # with Q-learning on another as "tabular" silently, and refused Sarsa and Q-learning
    # on one task as a method given twice).
    cat_config = yaml.safe_load((cat / "config.yaml").read_text())

    def run_with(name, source, **changes):
        path = tmp_path / name
        path.mkdir()
        (path / "config.yaml").write_text(
            yaml.safe_dump({**source, "config": {**source["config"], **changes}})
        )
        return path

    sarsa_cat = run_with("sarsa_cat", cat_config, algorithm="sarsa", steps_per_iteration=32)
    plan = plan_pool([cat, sarsa_cat])  # (a speed knob is no part of a method's name)
    assert plan.methods == [
        f"tabular algorithm={name} q_init={q}" for name in ("q_learning", "sarsa") for q in (0, 5)
    ]
    assert plan.config_differences == {}
    # A grid split over two runs of one task, with other budgets or speed knobs, pools
    # as one grid: fields name methods only where the hyperparameters do not.
    first, second = cat_config["hparams"][:1], cat_config["hparams"][1:]
    split = [
        run_with("split0", {**cat_config, "hparams": first}, steps_per_iteration=32),
        run_with("split1", {**cat_config, "hparams": second}, num_episodes=40),
    ]
    assert plan_pool([*split, cliff]).methods == ["tabular q_init=0", "tabular q_init=5"]
    sarsa_cliff = run_with("sarsa_cliff", config, algorithm="sarsa")
    plan = plan_pool([cat, sarsa_cliff])
    assert plan.methods == ["tabular q_init=0", "tabular q_init=5"]
    assert plan.config_differences["tabular q_init=0"]["algorithm"] == {
        "CatRoom-v0": "q_learning",
        "CliffWalking-v0": "sarsa",
    }
    capsys.readouterr()
    # (sarsa_cliff has no checkpoint: refused before any run is evaluated)
    assert main(["eval", str(cat), str(sarsa_cliff), "--out", str(tmp_path / "mixed")]) == 2
    said = capsys.readouterr().err
    assert (
        "method 'tabular q_init=0' pools runs whose configs differ between tasks (algorithm: "
        "q_learning on CatRoom-v0, sarsa on CliffWalking-v0" in said
    )
    assert f"{sarsa_cliff} has no checkpoint yet (no chunk has finished)" in said
    assert not (cat / "eval.json").exists()
    # An --out that cannot be a directory is refused before any run is evaluated.
    file = tmp_path / "a_file"
    file.write_text("")
    assert main(["eval", str(cat), str(cliff), "--out", str(file)]) == 2
    assert f"--out {file}: [Errno 17] File exists" in capsys.readouterr().err
    assert not (cat / "eval.json").exists()
    # A tuple of algorithms: each point is the one its index picks, whatever the order.
    point = {**cat_config["hparams"][0]}
    both = {**cat_config, "hparams": [{**point, "algorithm": 0.0}, {**point, "algorithm": 1.0}]}
    forward = run_with("forward", both, algorithm=["sarsa", "q_learning"])
    backward = run_with(
        "backward", {**both, "env": "CliffWalking-v0"}, algorithm=["q_learning", "sarsa"]
    )
    plan = plan_pool([forward, backward])
    assert plan.where["CatRoom-v0"]["tabular algorithm=sarsa"] == (forward, 0)
    assert plan.where["CliffWalking-v0"]["tabular algorithm=sarsa"] == (backward, 1)
    assert main(["eval", str(cat), str(cliff)]) == 2
    assert "needs --out DIR" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"references must name every task or none: \['Cliff"):
        mixed = {"CatRoom-v0": (0.0, 10.0)}
        evaluate_tasks([cat, cliff], tmp_path / "mixed", normalize="none", references=mixed)
    assert not (cat / "eval.json").exists()

    # A pooled report inside a run would overwrite that run's own report (RUN/eval).
    assert main(["eval", str(cat), str(cliff), "--out", str(cat / "eval")]) == 2
    assert "is inside the run directory" in capsys.readouterr().err
    assert main(["eval", str(cat), str(cliff), "--out", str(cliff)]) == 2  # the run itself
    assert f"is inside the run directory {cliff}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="LOW and HIGH must be finite"):
        parse_references(["CatRoom-v0=-inf,inf"], ["CatRoom-v0"])
    for bounds in ("5,5", "10,0"):  # a scale of no width, or upside down
        with pytest.raises(ValueError, match="LOW must be below HIGH"):
            parse_references([f"CatRoom-v0={bounds}"], ["CatRoom-v0"])

    out = tmp_path / "pooled"
    # Runs of other code are pooled, but not without a word (their numbers may differ
    # for that alone), and tasks.json keeps what made each.
    meta = json.loads((cliff / "meta.json").read_text())
    (cliff / "meta.json").write_text(json.dumps({**meta, "source": "0" * 16}))
    done = jrl("eval", cat, cliff, "--out", out, "--episodes", "2", "--max-steps", "100")
    assert done.returncode == 0, done.stderr
    assert "evaluated its checkpoint after" not in done.stderr  # both runs complete
    assert f"jrl eval: {cliff} was trained with other settings than {cat}: source: " in (
        done.stderr
    )
    provenance = json.loads((out / "tasks.json").read_text())["provenance"]
    assert provenance["runs"][str(cliff)]["source"] == "0" * 16
    assert provenance["runs"][str(cat)]["source"] == provenance["evaluation"]["source"]
    methods = ["tabular q_init=0", "tabular q_init=5"]
    table = (out / "aggregates.md").read_text()
    assert "2 task(s)" in table
    for method in methods:
        assert f"| {method} | 3 |" in table and f"| {method} | 3 |" in done.stdout
    pooled = json.loads((out / "tasks.json").read_text())
    assert (pooled["max_steps"], pooled["episodes"]) == (100, 2)  # both decide its numbers
    assert pooled["reps"] > 0
    tasks = pooled["tasks"]
    assert list(tasks) == ["CatRoom-v0", "CliffWalking-v0"]
    normalised = {method: [] for method in methods}
    for task, run in (("CatRoom-v0", cat), ("CliffWalking-v0", cliff)):
        evaluation = json.loads((run / "eval.json").read_text())
        per_seed = np.mean(evaluation["returns"], axis=-1)  # [grid point, seed]
        low, high = tasks[task]["low"], tasks[task]["high"]
        # 1 is the best seed's score on the task; 0 the mean return of a uniformly
        # random policy on jrl eval's keys (split from key(12345), --seed's default), cut
        # where the runs' episodes were; below any seed's on these tasks.
        env, env_params = make_env(task)
        keys = jax.random.split(jax.random.key(12345), 2)
        random = random_policy_returns(keys, env, env_params, 100)
        assert low == pytest.approx(float(np.mean(random)), rel=1e-6)
        assert high == per_seed.max() and low < per_seed.min()
        for g, method in enumerate(methods):
            np.testing.assert_allclose(tasks[task]["scores"][method], per_seed[g])
            normalised[method].append((per_seed[g] - low) / (high - low))
    aggregates = json.loads((out / "aggregates.json").read_text())["algorithms"]
    for method in methods:
        scores = np.array(normalised[method])  # [task, seed]
        iqm, mean = aggregates[method]["IQM"], aggregates[method]["Mean"]
        assert iqm["point"] == pytest.approx(scipy.stats.trim_mean(scores.ravel(), 0.25))
        assert mean["point"] == pytest.approx(scores.mean())
        assert scores.min() <= iqm["point"] <= scores.max()
        assert iqm["low"] <= iqm["point"] <= iqm["high"]
    # The optimistic cat finds the tall post; the greedy one does not.
    assert aggregates[methods[1]]["Mean"]["point"] > aggregates[methods[0]]["Mean"]["point"]
    for name in ("aggregates.png", "performance_profiles.png"):
        image = iio.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not blank
    # Given references normalise each task between them (a task label may hold '=': the
    # environment's overrides); --normalize none keeps raw returns.
    given = {"CatRoom-v0": (0.0, 10.0), "CliffWalking-v0": (-100.0, -13.0)}
    for normalize, references in (("random,best", given), ("none", None)):
        result = evaluate_tasks(
            [cat, cliff],
            tmp_path / f"pooled_{normalize}",
            episodes=2,
            max_steps=100,
            normalize=normalize,
            references=references,
            reps=50,
        )
        for task, entry in result["tasks"].items():
            low, high = given[task] if references else (0.0, 1.0)
            assert (entry["low"], entry["high"]) == (low, high)
            assert entry["source"] == ("given" if references else "none")
            for method in methods:
                raw = np.asarray(entry["scores"][method])
                np.testing.assert_allclose(entry["normalised"][method], (raw - low) / (high - low))
    assert parse_references(["CatRoom-v0 slip_prob=0.1=0,10"], ["CatRoom-v0 slip_prob=0.1"]) == {
        "CatRoom-v0 slip_prob=0.1": (0.0, 10.0)
    }
    # A pooled run that did not finish is said so, as one run alone is, and recorded: the
    # status its checkpoint was taken in (a SIGTERM's, say), which the record keeps.
    summary = json.loads((cat / "summary.json").read_text())
    record = json.loads((cat / "checkpoints" / "latest.json").read_text())
    assert record["info"]["run_status"] == "complete"

    def checkpoint_taken(status):
        info = {**record["info"], "run_status": status}
        (cat / "checkpoints" / "latest.json").write_text(json.dumps({**record, "info": info}))
        (cat / "summary.json").write_text(json.dumps({**summary, "status": status}))

    checkpoint_taken("interrupted")
    assert main(["eval", str(cat), str(cliff), "--out", str(out), "--episodes", "2"]) == 0
    assert f"{cat} is interrupted: evaluated its checkpoint after" in capsys.readouterr().err
    states = json.loads((out / "tasks.json").read_text())["checkpoints"]
    assert states[str(cat)]["run_status"] == "interrupted"
    # "running" in the summary of a run whose lock nobody holds: it was killed.
    from jrl.training import _exclusive

    checkpoint_taken("running")
    assert main(["eval", str(cat), "--episodes", "2"]) == 0
    assert f"{cat} is not running (killed or crashed; jrl train --resume" in (
        capsys.readouterr().err
    )
    with _exclusive(cat):
        assert main(["eval", str(cat), "--episodes", "2"]) == 0
    assert f"{cat} is running: evaluated its checkpoint after" in capsys.readouterr().err
    # A checkpoint taken as the run was interrupted, which a process has resumed since.
    checkpoint_taken("interrupted")
    with _exclusive(cat):
        assert main(["eval", str(cat), "--episodes", "2"]) == 0
    said = "is running again (its checkpoint was taken when it was interrupted): evaluated"
    assert f"{cat} {said}" in capsys.readouterr().err
    assert states[str(cliff)]["run_status"] == "complete"


def fake_eval_result(**grid_point):
    return {
        "num_layouts": 1,
        "checkpoint": {"run_status": "complete", "updates_done": 3, "total_updates": 3},
        "diverged": None,
        "grid": [
            {
                "grid_point": 0,
                "label": "grid point 0",
                "mean": 7.0,
                "iqm": 5.0,
                "iqm_ci": [4.0, 6.0],
                **grid_point,
            }
        ],
    }


def test_eval_tells_a_held_run_from_one_on_a_file_system_without_locks(
    capsys, tmp_path, monkeypatch
):
    """A stopped run's checkpoint: "running again" only while a process holds the lock;
    where flock fails (Lustre mounted without locks: jrl runs unlocked there) nobody can
    tell, and the checkpoint's status is what is said — every stopped or preempted run
    read "running again" there."""
    import errno
    import fcntl

    from jrl import training

    state = {"run_status": "stopped", "updates_done": 20, "total_updates": 50}
    (tmp_path / ".lock").write_text("")
    said = f"{tmp_path} is stopped: evaluated its checkpoint after 20 of 50 updates"
    assert training.in_use(tmp_path) is False
    cli._warn_if_incomplete(tmp_path, state)
    assert said in capsys.readouterr().err
    with training._exclusive(tmp_path):
        assert training.in_use(tmp_path) is True
        cli._warn_if_incomplete(tmp_path, state)
    assert "is running again (its checkpoint was taken when it was stopped)" in (
        capsys.readouterr().err
    )

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert training.in_use(tmp_path) is None
    cli._warn_if_incomplete(tmp_path, state)
    assert said in capsys.readouterr().err
    cli._warn_if_incomplete(tmp_path, {**state, "run_status": "running"})
    assert f"{tmp_path} is running: evaluated" in capsys.readouterr().err  # not "killed"


def test_print_summary_says_complete_n_of_n_when_every_update_ran(capsys, tmp_path):
    point = {"hparams": {}, "mean_final_episode_return": 1.0}
    cli._print_summary(
        {"status": "complete", "updates_done": 5, "total_updates": 5, "grid": [point]}, tmp_path
    )
    assert capsys.readouterr().out.splitlines()[0] == f"complete: 5/5 updates in {tmp_path}"
    cli._print_summary(
        {"status": "complete", "updates_done": 3, "total_updates": 5, "grid": [point]}, tmp_path
    )
    assert "every run ended within 3 updates (cap 5)" in capsys.readouterr().out
    cli._print_summary(  # the updates its runs took, not the whole chunks counted
        {"status": "complete", "updates_done": 3, "updates_run": 2, "total_updates": 5,
         "grid": [point]}, tmp_path,
    )  # fmt: skip
    assert "every run ended within 2 updates (cap 5)" in capsys.readouterr().out


def test_summary_keeps_each_seed_at_its_index_and_says_who_is_left_out(capsys, tmp_path):
    """A seed that had ended no episode was left out of final_episode_return, so the
    values after it moved to the wrong seeds, and the mean "over seeds" was over fewer
    without a word (PPO on the cat room: 1 of 6 seeds, printed as the mean)."""
    from jrl.training import RunSpec, Summary

    spec = RunSpec(agent="tabular", env="CliffWalking-v0", num_seeds=4)
    rows = [
        {"grid_point": 0, "seed": s, "update": 0, "timesteps": 9, "episode_return": r}
        for s, r in ((0, -20.0), (1, None), (2, -10.0), (3, None))
    ]
    summary = Summary(spec, rows)
    summary.add([{**rows[3], "update": 1, "episode_return": -30.0}])
    (point,) = summary.grid(diverged=[(0, 0)])
    assert point["final_episode_return"] == [-20.0, None, -10.0, -30.0]
    assert point["mean_final_episode_return"] == -20.0  # seeds 2 and 3: 0 diverged
    assert "final_eval_return" not in point
    cli._print_summary(
        {"status": "complete", "updates_done": 2, "total_updates": 2, "grid": [point]}, tmp_path
    )
    said = capsys.readouterr().out
    assert "(seeds [0] diverged: left out) (seeds [1] have ended no episode: left out)" in said


def test_eval_sampled_default_epsilon_and_printed_iqm(monkeypatch, capsys, tmp_path):
    from jrl import run_analysis

    calls = []

    def evaluate_run(*args):
        calls.append(args)
        return fake_eval_result()

    monkeypatch.setattr(run_analysis, "evaluate_run", evaluate_run)
    assert cli.main(["eval", str(tmp_path), "--sampled"]) == 0
    assert calls[0][5] == 0.05  # the documented default epsilon
    out = capsys.readouterr().out
    assert "mean return 7.00, IQM 5.00 [4.00, 6.00]" in out
    # Three seeds: no interval, and why (a "95%" bootstrap of three is about their range).
    few = fake_eval_result(iqm_ci=[float("nan")] * 2, num_seeds=3)
    monkeypatch.setattr(run_analysis, "evaluate_run", lambda *args: few)
    assert cli.main(["eval", str(tmp_path), "--sampled"]) == 0
    out = capsys.readouterr().out
    assert "IQM 5.00 (3 seeds: no interval; one needs 5 or more)" in out


def test_eval_of_one_run_in_a_layout_or_pooled_keeps_the_plain_defaults(
    monkeypatch, capsys, tmp_path
):
    """A run's own evaluation (its eval_episodes, eval_seed, cut) is greedy in layout 0:
    --layout N plays the plain defaults; `jrl eval RUN --out DIR` pools the one run as a
    task (RUN/eval keeps its own report), --epsilon 0 is a sampled evaluation's [0, 1]."""
    from jrl import run_analysis, task_aggregates

    calls, pooled = [], []
    monkeypatch.setattr(
        run_analysis, "own_evaluation", lambda run: {"episodes": 3, "seed": 5, "max_steps": 50}
    )
    monkeypatch.setattr(
        run_analysis, "evaluate_run", lambda *args: calls.append(args) or fake_eval_result()
    )
    (run,) = unstarted_runs(tmp_path, "tabular", ("CatRoom-v0",))
    assert cli.main(["eval", run]) == 0
    assert cli.main(["eval", run, "--layout", "1"]) == 0
    assert cli.main(["eval", run, "--sampled", "--epsilon", "0"]) == 0
    assert [call[1:4] for call in calls] == [(3, 5, 50), (10, 12345, 1000), (10, 12345, 1000)]
    assert calls[2][4:6] == (True, 0.0)

    def evaluate_tasks(run_dirs, out, *args, **kwargs):
        pooled.append((list(map(str, run_dirs)), str(out)))
        raise ValueError("pooled")

    monkeypatch.setattr(task_aggregates, "evaluate_tasks", evaluate_tasks)
    capsys.readouterr()
    assert cli.main(["eval", run, "--out", str(tmp_path / "pool")]) == 2
    assert pooled == [([run], str(tmp_path / "pool"))] and len(calls) == 3


def test_eval_refuses_an_epsilon_ppo_would_ignore(capsys, tmp_path):
    """PPO's sampled episodes draw from its distribution: --epsilon 0, 0.05 and 1 gave
    the same returns, and eval.json recorded each as applied."""
    (run,) = unstarted_runs(tmp_path, "ppo", ("CartPole-v1",))
    assert cli.main(["eval", run, "--sampled", "--epsilon", "0.5"]) == 2
    assert "--epsilon applies to value-based agents" in capsys.readouterr().err
    (tmp_path / "reinforce").mkdir()  # REINFORCE's policy is a distribution too
    (reinforce_run,) = unstarted_runs(tmp_path / "reinforce", "reinforce", ("CartPole-v1",))
    assert cli.main(["eval", run, reinforce_run, "--sampled", "--epsilon", "0.5"]) == 2
    assert "--epsilon applies to value-based agents" in capsys.readouterr().err
    # Pooled with a DQN run, it applies to that one: taken (refused later, unstarted).
    (tmp_path / "dqn").mkdir()
    (dqn_run,) = unstarted_runs(tmp_path / "dqn", "dqn", ("CartPole-v1",))
    pool = ["eval", run, dqn_run, "--sampled", "--epsilon", "0.5", "--out", str(tmp_path / "p")]
    assert cli.main(pool) == 2
    error = capsys.readouterr().err
    assert "has no checkpoint yet" in error and "--epsilon" not in error


def test_a_refused_pool_removes_the_out_directories_it_made(capsys, tmp_path):
    """The pool makes --out (and its parents) before evaluating; refused, it left them."""
    runs = unstarted_runs(tmp_path, "tabular", ("CatRoom-v0", "CliffWalking-v0"))
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "a" / "b" / "pool", tmp_path / "kept" / "pool"):
        assert cli.main(["eval", *runs, "--out", str(out)]) == 2
        assert "has no checkpoint yet" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CatRoom-v0", "CliffWalking-v0", "kept"]
    assert not any((tmp_path / "kept").iterdir())


def test_eval_reference_without_pooling_is_refused(capsys, tmp_path):
    assert cli.main(["eval", str(tmp_path), "--reference", "CatRoom-v0=0,10"]) == 2
    assert "--reference applies to runs pooled as tasks" in capsys.readouterr().err


def test_resume_refuses_other_flags_and_honours_no_progress(monkeypatch, capsys, tmp_path):
    assert cli.main(["train", "--resume", str(tmp_path), "--num-seeds", "4"]) == 2
    assert "usage: jrl train --resume RUN_DIR [--no-progress]" in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(cli, "_resume", lambda *args: calls.append(args) or 0)
    assert cli.main(["train", "--resume", str(tmp_path), "--no-progress"]) == 0
    assert cli.main(["train", "--resume", str(tmp_path)]) == 0
    assert cli.main(["train", "--resume", str(tmp_path), "--checkpoint-every", "5"]) == 0
    assert [(args[1], args[3]) for args in calls] == [(False, None), (True, None), (True, 5.0)]
    for bad in ("-1", "inf", "soon"):
        said = refused(capsys, "train", "--resume", tmp_path, "--checkpoint-every", bad)
        assert (
            f"--checkpoint-every takes a number of seconds >= 0 (0: every chunk), got {bad!r}"
            in (said)
        )
    said = refused(capsys, "train", "tabular", "--checkpoint-every", "-1", "--out", tmp_path / "r")
    assert "checkpoint_every must be a number of seconds >= 0" in said
    assert not (tmp_path / "r").exists()


def test_render_without_a_run_directory_defaults_to_catroom(monkeypatch, capsys, tmp_path):
    from jrl import run_analysis

    calls = []
    monkeypatch.setattr(run_analysis, "render_run", lambda *args: calls.append(args) or "x.gif")
    assert cli.main(["render", "--random", "--out", str(tmp_path / "x.gif")]) == 0
    assert calls[0][2] == "CatRoom-v0"


def test_render_takes_the_ends_of_its_fps_range_and_a_gif_named_in_capitals(monkeypatch, tmp_path):
    """--fps 0.002 and 50 (both ends of the range a GIF's delays allow) and --out
    NAME.GIF are taken and handed on as given."""
    from jrl import run_analysis

    calls = []
    monkeypatch.setattr(run_analysis, "render_run", lambda *args: calls.append(args) or "x.gif")
    for fps, name in [(50, "a.GIF"), (0.002, "b.gif")]:
        argv = ["render", "--random", "--out", str(tmp_path / name), "--fps", str(fps)]
        assert cli.main(argv) == 0
    assert [(Path(call[1]).name, call[-1]) for call in calls] == [("a.GIF", 50), ("b.gif", 0.002)]


def test_an_unknown_sink_is_refused_before_the_run_directory_is_made(capsys, tmp_path):
    argv = ["train", "tabular", "--env", "CliffWalking-v0", "--out", str(tmp_path / "r")]
    assert cli.main([*argv, "--sinks", "tensorbord", "--no-progress"]) == 2
    assert "unknown sink 'tensorbord'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_row_without_a_return_keeps_the_last_one_logged():
    """final_episode_return (and final_eval_return) is the last logged value of a seed:
    a later row in which no episode ended (null) leaves it as it was."""
    from jrl.training import RunSpec, Summary

    spec = RunSpec(agent="tabular", env="CliffWalking-v0", num_seeds=1)
    row = {"grid_point": 0, "seed": 0, "update": 0, "timesteps": 5, "episode_return": -7.0}
    summary = Summary(spec, [row, {**row, "update": 1, "timesteps": 9, "episode_return": None}])
    (point,) = summary.grid()
    assert point["final_episode_return"] == [-7.0]
