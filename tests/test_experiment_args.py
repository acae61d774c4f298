"""The experiment scripts' command lines: a bad --out or --seed ends the script with
argparse's usage error (status 2) before it trains, not with a traceback after; and
cartpole.py's DQN anneals epsilon over PureJaxRL's 2.5e5 steps."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import (
    cartpole,
    cat_room,
    cat_room_deep,
    changing_mazes,
    cliff_walking,
    dyna_maze,
    minatar_breakout,
    windy_gridworld,
)
from jrl.agents import dqn
from jrl.agents.checks import float32_hparams
from jrl.reporting import make_out_dir

ROOT = Path(__file__).resolve().parents[1]
SEED_ERROR = "--seed must be an int in [0, 2**32)"


def test_make_out_dir_makes_the_directory_and_leaves_it_empty(tmp_path):
    out = make_out_dir(tmp_path / "a" / "b")
    assert out.is_dir() and not list(out.iterdir())
    assert make_out_dir(out) == out  # an existing directory is fine


def test_make_out_dir_refuses_a_file_or_a_path_under_one(tmp_path):
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(NotADirectoryError):
        make_out_dir(file / "out")
    with pytest.raises(FileExistsError):
        make_out_dir(file)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc")
def test_make_out_dir_refuses_a_directory_it_cannot_write():
    """/proc/self is a directory in which no one, root included (as CI runs), can make a
    file (a read-only directory would not stop root)."""
    assert Path("/proc/self").is_dir()
    with pytest.raises(OSError):
        make_out_dir("/proc/self")


class Trained(Exception):
    """Raised by a script's ``run`` in place of training."""


def never_train(*args, **kwargs):
    raise Trained


@pytest.mark.parametrize(
    "module, args, message",
    [
        (cliff_walking, ["--seed", str(2**32)], SEED_ERROR),
        (windy_gridworld, ["--seed", "-1"], SEED_ERROR),
        (cat_room, ["--seed", str(2**63)], SEED_ERROR),
        (dyna_maze, ["--out", "{file}/out"], "--out {file}/out: [Errno 20] Not a directory"),
        (changing_mazes, ["--out", "{file}"], "--out {file}: [Errno 17] File exists"),
        (cliff_walking, ["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (dyna_maze, ["--runs", "0"], "--runs must be >= 1, got 0"),
        (cat_room, ["--seeds", "-2"], "--seeds must be >= 1, got -2"),
    ],
)
def test_tabular_scripts_refuse_a_bad_seed_or_out_before_training(
    module, args, message, tmp_path, monkeypatch, capsys
):
    file = tmp_path / "file"
    file.write_text("")
    args = [arg.format(file=file) for arg in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    monkeypatch.setattr(module, "run", never_train)
    monkeypatch.setattr(sys, "argv", [module.__file__, *args])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2
    assert message.format(file=file) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # a bad seed makes no directory


@pytest.mark.parametrize(
    "scale, message",
    [
        ("inf", "--scale-steps must be finite and > 0, got inf"),
        ("nan", "--scale-steps must be finite and > 0, got nan"),
        ("1e-9", "--scale-steps 1e-09: PPO in the static room: total_timesteps must be"),
    ],
)
def test_cat_room_deep_refuses_a_scale_that_makes_no_run(
    scale, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(cat_room_deep, "run", never_train)
    out = tmp_path / "out"
    argv = ["cat_room_deep.py", "--scale-steps", scale, "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        cat_room_deep.main()
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


SEED_CASES = [
    (cliff_walking, []),
    (windy_gridworld, []),
    (dyna_maze, []),
    (changing_mazes, []),
    (cat_room, []),
    (cartpole, ["--seeds", "1", "--steps", "50000"]),
    (minatar_breakout, ["--seeds", "1", "--steps", "491520"]),
    (cat_room_deep, ["--seeds", "1"]),
]


@pytest.mark.parametrize(
    "script, args", SEED_CASES, ids=[s.__name__.rsplit(".", 1)[-1] for s, _ in SEED_CASES]
)
def test_good_arguments_make_the_out_directory_and_train_with_the_seed_given(
    script, args, tmp_path, monkeypatch
):
    """--seed 7 reaches the script's run(): dropped there, seed 0 trained while
    results.json recorded 7 (no test passed a seed through to a run)."""
    seeds = []
    signature = inspect.signature(script.run)

    def recording_run(*args, **kwargs):
        seeds.append(signature.bind(*args, **kwargs).arguments.get("seed", 0))
        raise Trained

    monkeypatch.setattr(script, "run", recording_run)
    monkeypatch.setattr(script, "provenance", lambda: {})
    out = tmp_path / "new" / "out"
    argv = [script.__file__, "--out", str(out), "--seed", "7", *args]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(Trained):
        script.main()
    assert out.is_dir() and seeds == [7]


# The neural scripts make their CPU devices when run as scripts: run them as such, all at
# once. Their arguments are small enough that a script that failed to check would end
# soon (in its own error or the timeout) rather than after a long training run.
SCRIPT_CASES = {
    "cartpole bad --out": (
        "cartpole.py",
        ["--seeds", "1", "--steps", "5000", "--out", "{file}/out"],
        "--out {file}/out: [Errno 20] Not a directory",
    ),
    "minatar_breakout --seed 2**32": (
        "minatar_breakout.py",
        ["--seeds", "1", "--steps", "8192", "--seed", str(2**32), "--out", "{tmp}/out"],
        SEED_ERROR,
    ),
    "cartpole --steps below one update": (
        "cartpole.py",
        ["--seeds", "1", "--steps", "10", "--out", "{tmp}/out"],
        "--steps 10: total_timesteps=10 is less than one update's batch",
    ),
    "minatar_breakout --steps below one update": (
        "minatar_breakout.py",
        ["--seeds", "1", "--steps", "10", "--out", "{tmp}/out"],
        "--steps 10: total_timesteps=10 is less than one update's batch",
    ),
    "cat_room_deep bad --out": (
        "cat_room_deep.py",
        ["--seeds", "1", "--scale-steps", "0.05", "--out", "{file}/out"],
        "--out {file}/out: [Errno 20] Not a directory",
    ),
}


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scripts")
    file = tmp / "file"
    file.write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    started = {}
    for name, (script, args, _) in SCRIPT_CASES.items():
        command = [sys.executable, str(ROOT / "experiments" / script)]
        command += [arg.format(file=file, tmp=tmp) for arg in args]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started[name] = process
    done = {}
    for name, process in started.items():
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        done[name] = (process.returncode, stdout, stderr)
    return file, tmp, done


@pytest.mark.parametrize("name", list(SCRIPT_CASES))
def test_neural_scripts_refuse_bad_arguments_before_training(name, script_runs):
    file, tmp, done = script_runs
    returncode, stdout, stderr = done[name]
    message = SCRIPT_CASES[name][2].format(file=file)
    assert returncode == 2, stderr[-2000:]
    assert message in stderr
    assert stdout == ""  # stopped before the script's first line of training output
    assert not (tmp / "out").exists()


def epsilon_at(config, hparams, steps):
    """The agent's exploration rate after each of ``steps`` (float32, as it trains)."""
    schedule = dqn.epsilon_schedule(config, float32_hparams(dqn.DQNHParams, hparams))
    return np.asarray(schedule(jnp.asarray(steps, jnp.int32)))


@pytest.mark.parametrize("steps", [499_999, 500_000, 260_000])
def test_cartpole_dqn_epsilon_ends_at_step_250k_as_purejaxrl(steps):
    config, hparams = cartpole.dqn_setup(steps)
    # One vector step (10 steps) before 250,000, epsilon is 10 * 0.95 / 250,000 above its end.
    before, at = epsilon_at(config, hparams, [249_990, 250_000])
    assert before == pytest.approx(0.05 + 3.8e-5, abs=1e-6)
    assert at == pytest.approx(0.05, abs=1e-6)
    assert config.learning_starts == 10_000
    assert cartpole.dqn_departures(config, hparams) == []


def test_a_short_cartpole_dqn_run_anneals_over_all_of_it_and_says_so():
    config, hparams = cartpole.dqn_setup(19_999)  # whole chunks of 5,000: 15,000 steps
    assert config.steps_run == 15_000 and config.learning_starts == 7_500
    before, at = epsilon_at(config, hparams, [14_990, 15_000])
    assert before == pytest.approx(0.05 + 9.5 / 15_000, abs=1e-6)
    assert at == pytest.approx(0.05, abs=1e-6)
    assert cartpole.dqn_departures(config, hparams) == [
        "DQN's epsilon anneals over 15,000 steps of 15,000 (theirs: 250,000)",
        "DQN learns from step 7,500 (theirs: 10,000)",
    ]


@pytest.mark.parametrize("seed", [0, 2**31, 2**32 - 1])
def test_every_seed_jax_keys_tell_apart_is_accepted(seed):
    """jax.random.key keeps a seed's low 32 bits: all of [0, 2**32) are distinct seeds."""
    from jrl.seeds import check_seed

    check_seed("--seed", seed)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**32 + 3, True, 1.0])
def test_a_seed_outside_32_bits_or_not_an_int_is_refused(seed):
    from jrl.seeds import check_seed

    with pytest.raises(ValueError, match=r"--seed must be an int in \[0, 2\*\*32\)"):
        check_seed("--seed", seed)
