"""Progress from inside a run compiled whole (jrl.progress)."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.agents.dqn import DQNConfig, DQNHParams, make_dqn
from jrl.agents.ppo import PPOConfig, PPOHParams, make_ppo
from jrl.agents.reinforce import ReinforceConfig, ReinforceHParams, make_reinforce
from jrl.envs import make
from jrl.progress import Progress, train_with_progress
from jrl.sweep import product_grid, run_sweep, stack_grid


@pytest.mark.parametrize("algo", ["ppo", "dqn", "reinforce"])
def test_progress_reports_every_kth_update_once_and_changes_no_number(algo):
    env, params = make("CartPole-v1")
    if algo == "ppo":
        config = PPOConfig(num_envs=2, num_steps=16, total_timesteps=2 * 16 * 10)
        agent, hparams, num_updates = make_ppo(config, env, params), PPOHParams(), 10
    elif algo == "reinforce":
        config = ReinforceConfig(num_envs=2, num_steps=16, total_timesteps=2 * 16 * 10)
        agent, hparams = make_reinforce(config, env, params), ReinforceHParams()
        num_updates = 10
    else:
        config = DQNConfig(
            num_envs=2,
            total_timesteps=400,
            log_frequency=40,
            learning_starts=64,
            batch_size=16,
            target_update_frequency=40,
        )
        agent, hparams, num_updates = make_dqn(config, env, params), DQNHParams(), 10
    seen = []
    train = train_with_progress(agent, num_updates, lambda index: seen.append(int(index)), every=3)
    key = jax.random.key(0)
    grid = stack_grid([hparams])
    _, plain = jax.jit(lambda k: run_sweep(agent.train, k, grid, 3, jit=False))(key)
    _, reported = jax.jit(lambda k: run_sweep(train, k, grid, 3, jit=False))(key)
    # Once per update reported, not once per seed (the index is not batched), and the last.
    assert seen == [2, 5, 8, 9]
    assert plain.timesteps.shape[-1] == num_updates
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(reported), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_progress_prints_each_update_once_and_no_more_often_than_asked():
    out = io.StringIO()
    progress = Progress("PPO", 200, min_interval_s=0.0, file=out)
    for index in (49, 49, 9, 99):  # a second device's copy and a late one are dropped
        progress(np.int32(index))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines == progress.lines
    assert lines[0].startswith("  PPO: 25% (update 50 of 200), 0m0")
    assert "50% (update 100 of 200)" in lines[1] and lines[1].endswith("left")
    quiet = Progress("PPO", 200, min_interval_s=3600.0, file=io.StringIO())
    quiet(49)
    assert quiet.lines == []  # within an interval of the start


def test_progress_waits_its_interval_after_every_line_and_starts_again(monkeypatch):
    """Only the first line waited min_interval_s, then every callback printed; one
    exactly an interval later did not; a Progress started again (a second run_sweep)
    printed nothing until the first run's last update; 199 of 200 said 100%."""
    import jrl.progress

    clock = iter([0.0, 11.0, 12.0, 13.0, 22.0, 32.0, 42.0, 52.0, 62.0])
    monkeypatch.setattr(jrl.progress.time, "perf_counter", lambda: next(clock))
    progress = Progress("x", 200, min_interval_s=10.0, file=io.StringIO())  # starts at 0
    for index in (0, 1, 2, 3, 4):  # at 11, 12, 13, 22 and 32: exactly 10 after 22
        progress(index)
    progress.start()  # at 42
    progress(1)  # at 52: below the first run's last update
    progress(198)  # at 62
    assert [line.split(",")[0] for line in progress.lines] == [
        "  x: 0% (update 1 of 200)",
        "  x: 2% (update 4 of 200)",
        "  x: 2% (update 5 of 200)",
        "  x: 1% (update 2 of 200)",
        "  x: 99% (update 199 of 200)",
    ]


def test_a_stoppable_call_raises_a_runtime_error_that_is_no_stop():
    """An XLA error (out of memory) came out as a KeyboardInterrupt, the error lost."""
    from jrl.progress import call_stoppable

    progress = Progress("x", 2, min_interval_s=0.0, file=io.StringIO())

    def fails():
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")

    try:
        call_stoppable(progress, fails)
        raised = None
    except BaseException as error:  # noqa: BLE001 (a KeyboardInterrupt must not end pytest)
        raised = error
    assert isinstance(raised, jax.errors.JaxRuntimeError), repr(raised)
    assert not progress.stopped


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_progress_rejects_a_bad_update_count(bad):
    with pytest.raises(ValueError, match="num_updates must be a positive int"):
        Progress("x", bad)
    with pytest.raises(ValueError, match="every must be a positive int"):
        train_with_progress(None, 10, print, every=bad)  # 0 and False too: not "default"


def test_progress_arguments_are_checked_before_compiling(compilations):
    """Each was taken, to fail after compiling (in the callback, or run_sweep's start)
    or while tracing."""
    from jrl.progress import call_stoppable

    with pytest.raises(ValueError, match="min_interval_s must be a number >= 0, got '10'"):
        Progress("PPO", 4, min_interval_s="10")
    env, params = make("CartPole-v1")
    agent = make_ppo(PPOConfig(num_envs=2, num_steps=16, total_timesteps=64), env, params)
    with pytest.raises(TypeError, match="progress must be called with each update's index"):
        train_with_progress(agent, 2, "p")
    grid = stack_grid([PPOHParams()])
    compilations.clear()
    with pytest.raises(TypeError, match="progress must be the jrl.progress.Progress"):
        run_sweep(agent.train, jax.random.key(0), grid, 1, progress="yes")
    assert not compilations
    with pytest.raises(TypeError, match="progress must be the jrl.progress.Progress"):
        call_stoppable("x", agent.train, jax.random.key(0), PPOHParams())


def test_train_with_progress_refuses_make_trains_train_for_the_agent():
    """It loops over the agent's updates: make_train's train is a whole run, which failed
    as AttributeError: 'function' object has no attribute 'init'."""
    from jrl.agents.ppo import make_train

    env, params = make("CartPole-v1")
    train = make_train(PPOConfig(num_envs=2, num_steps=16, total_timesteps=64), env, params)
    with pytest.raises(TypeError, match=r"got function .*pass jrl.agents.ppo.make_ppo\(config"):
        train_with_progress(train, 2, print)


STOPPED_BY_CTRL_C = textwrap.dedent(
    """
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the parent ignores it
    devices, every = int(sys.argv[1]), int(sys.argv[2])
    import jrl.host
    jrl.host.use_cpu_cores(devices)
    from typing import Callable, NamedTuple
    import jax, jax.numpy as jnp
    from jrl.progress import Progress, train_with_progress
    from jrl.sweep import run_sweep

    class Toy(NamedTuple):
        init: Callable
        update_at: Callable

    def update_at(state, hparams, index):
        for _ in range(4):
            state = state @ state
            state = state / jnp.linalg.norm(state)
        return state, jnp.sum(state)

    init = lambda key, hparams: jnp.eye(256) + 1e-3 * jax.random.uniform(key, (256, 256))
    num_updates = 200_000  # minutes to the end
    progress = Progress("toy", num_updates, min_interval_s=0.5)
    train = train_with_progress(Toy(init, update_at), num_updates, progress, every=every)
    print("compiling", file=sys.stderr, flush=True)
    run_sweep(train, jax.random.key(0), jnp.zeros((1,)), devices, devices=jax.devices(),
              progress=progress)
    print("ran to the end")
    """
)


def start_toy_run(devices: int, every: int) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    return subprocess.Popen(
        [sys.executable, "-c", STOPPED_BY_CTRL_C, str(devices), str(every)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@pytest.mark.parametrize("devices", [1, 2])
def test_ctrl_c_ends_a_compiled_run_at_its_next_callback(devices):
    """On two devices the KeyboardInterrupt of Python's own handler landed while the
    stopped run's error was being handled, before its wait: JAX printed the error
    twice at exit, as ignored exceptions."""
    child = start_toy_run(devices, every=20)
    try:
        assert "compiling" in child.stderr.readline()
        first = child.stderr.readline()  # the first progress line: the run is running
        assert "toy:" in first and "of 200000)" in first, first
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        stopped = time.perf_counter()
        out, err = child.communicate(timeout=60)
        waited = time.perf_counter() - stopped
    finally:
        child.kill()
    assert child.returncode != 0 and "ran to the end" not in out
    assert "toy: Ctrl-C: stopping at the next progress report" in err
    assert err.rstrip().endswith("KeyboardInterrupt"), err[-2000:]
    assert waited < 20, waited  # not the minutes the whole run takes
    assert "Exception ignored" not in err and "callback failed" not in err, err[-2000:]


def test_a_second_ctrl_c_exits_at_once():
    """No progress report for minutes (every update 10**6: only the last one reports),
    so the first Ctrl-C's stop would wait for the end; the second ends the process."""
    child = start_toy_run(1, every=10**6)
    try:
        assert "compiling" in child.stderr.readline()
        time.sleep(6.0)  # compiled (about a second here) and running
        child.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert child.poll() is None  # the first one waits for a report
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
    assert child.returncode == 130 and "ran to the end" not in out
    assert "toy: second Ctrl-C: exiting at once" in err, err[-2000:]


def test_run_sweep_with_progress_reports_and_gives_the_same_numbers():
    env, params = make("CartPole-v1")
    config = PPOConfig(num_envs=2, num_steps=16, total_timesteps=2 * 16 * 4)
    agent, grid = make_ppo(config, env, params), stack_grid([PPOHParams(), PPOHParams(lr=1e-3)])
    progress = Progress("PPO", 4, min_interval_s=0.0, file=io.StringIO())
    train = train_with_progress(agent, 4, progress)
    key = jax.random.key(1)
    _, reported = run_sweep(train, key, grid, 2, progress=progress)
    _, plain = run_sweep(agent.train, key, grid, 2)
    assert [line.split(",")[0] for line in progress.lines] == [
        f"  PPO: {25 * k}% (update {k} of 4)" for k in (1, 2, 3, 4)
    ]
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(reported), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # One length of the run: a shorter loop cut it short, a longer one ran past
    # total_timesteps with the annealed learning rate below zero.
    with pytest.raises(ValueError, match="num_updates 3, the agent's num_updates 4"):
        train_with_progress(agent, 3, lambda index: None)
    with pytest.raises(ValueError, match="the Progress's num_updates 5"):
        train_with_progress(agent, 4, Progress("PPO", 5, file=io.StringIO()))
    with pytest.raises(ValueError, match="progress= needs jit=True"):
        run_sweep(train, key, grid, 2, jit=False, progress=progress)
    # In sequence each run counts from update 0: the bar would be full after the first.
    with pytest.raises(ValueError, match="with sequential=True the runs go one after another"):
        run_sweep(train, key, grid, 2, sequential=True, progress=progress)


def test_a_progress_train_keeps_the_agents_config_check():
    env, params = make("CartPole-v1")
    agent = make_dqn(
        DQNConfig(
            target_update="hard",
            total_timesteps=400,
            log_frequency=40,
            learning_starts=64,
            target_update_frequency=40,
        ),
        env,
        params,
    )
    train = train_with_progress(agent, 10, Progress("DQN", 10, file=io.StringIO()))
    grid = product_grid(DQNHParams(), tau=[0.5, 1.0])
    with pytest.raises(ValueError, match="tau"):
        run_sweep(train, jax.random.key(0), grid, 1)


def test_progress_estimates_the_time_left_from_the_rate_so_far(monkeypatch):
    import jrl.progress as progress_module

    clock = iter([0.0, 10.0, 3725.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    progress = progress_module.Progress("PPO", 200, min_interval_s=0.0, file=out)  # t = 0
    progress(49)  # t = 10 s: 50 of 200 done, 150 to go at 0.2 s each
    progress(99)  # t = 3725 s: 100 of 200, as long again
    assert progress.lines == [
        "  PPO: 25% (update 50 of 200), 0m10s elapsed, ~0m30s left",
        "  PPO: 50% (update 100 of 200), 1h02m05s elapsed, ~1h02m05s left",
    ]


class Toy(NamedTuple):
    init: Callable
    update_at: Callable


def test_train_with_progress_reports_every_percent_by_default():
    from jrl.progress import train_with_progress

    seen = []
    toy = Toy(lambda key, hparams: jnp.float32(0), lambda s, h, i: (s + 1, s))
    train = train_with_progress(toy, 300, lambda index: seen.append(int(index)))
    jax.block_until_ready(jax.jit(train)(jax.random.key(0), None))
    jax.effects_barrier()
    assert seen == list(range(2, 300, 3))  # every 3rd update (1% of 300), the last included


def test_a_stoppable_call_starts_its_progress_again_and_raises_other_errors(monkeypatch):
    """call_stoppable starts the clock (and clears an earlier stop: a Progress stopped
    once ran its next call into RunStopped at the first report); wait_until_stopped
    takes the stopped run's error and raises any other."""
    from jrl.progress import call_stoppable, wait_until_stopped

    progress = Progress("again", 2, min_interval_s=0, file=io.StringIO())
    progress.stop()
    out = call_stoppable(progress, lambda: (progress(0), jnp.zeros(()))[1])
    assert float(out) == 0 and progress.lines and not progress.stopped

    def other_error():
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(jax, "effects_barrier", other_error)
    with pytest.raises(jax.errors.JaxRuntimeError, match="something else"):
        wait_until_stopped()


def test_a_stoppable_call_leaves_an_ignored_ctrl_c_ignored():
    """A sweep started as a background job (SIGINT ignored) is not stopped by the
    shell's Ctrl-C meant for the foreground."""
    from jrl.progress import call_stoppable

    progress = Progress("background", 2, min_interval_s=0, file=io.StringIO())

    def run_with_a_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        return jnp.ones(())

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        out = call_stoppable(progress, run_with_a_ctrl_c)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    except KeyboardInterrupt:
        pytest.fail("an ignored Ctrl-C stopped the run")
    finally:
        signal.signal(signal.SIGINT, before)
    assert float(out) == 1 and not progress.stopped


def test_progress_rounds_its_times_to_the_nearest_second(monkeypatch):
    """59.6 s is 1m00s (not 0m59s, nor 0m60s from rounding the seconds after the
    minutes were split off); 3599.6 s is 1h00m00s."""
    import jrl.progress as progress_module

    clock = iter([0.0, 59.6, 0.0, 3599.6])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    minute = Progress("x", 2, min_interval_s=0.0, file=io.StringIO())  # t = 0
    minute(0)  # 1 of 2 done at 59.6 s: as long again to go
    hour = Progress("y", 2, min_interval_s=0.0, file=io.StringIO())
    hour(0)
    assert minute.lines == ["  x: 50% (update 1 of 2), 1m00s elapsed, ~1m00s left"]
    assert hour.lines == ["  y: 50% (update 1 of 2), 1h00m00s elapsed, ~1h00m00s left"]


def test_a_stopped_progress_names_the_update_it_stopped_at():
    """The update counted from 1, as its lines count them: index 4 is update 5."""
    from jrl.progress import RunStopped

    progress = Progress("x", 10, min_interval_s=0.0, file=io.StringIO())
    progress.stop()
    with pytest.raises(RunStopped, match=r"^x: stopped at update 5$"):
        progress(np.int32(4))
    assert progress.lines == []


def test_a_keyboard_interrupt_in_a_stoppable_call_stops_its_run():
    """A KeyboardInterrupt raised inside the call (not heard by the watcher) went out at
    once, the run left unstopped: a computation still running would carry on, its
    callbacks never raising; it is stopped and waited for, then raised."""
    from jrl.progress import call_stoppable

    progress = Progress("x", 2, min_interval_s=0.0, file=io.StringIO())

    def interrupted():
        raise KeyboardInterrupt

    try:
        call_stoppable(progress, interrupted)
        raised = None
    except BaseException as error:  # noqa: BLE001 (a KeyboardInterrupt must not end pytest)
        raised = error
    assert isinstance(raised, KeyboardInterrupt), repr(raised)
    assert progress.stopped


@pytest.mark.parametrize("bad", [True, -1, -0.5, "10", None])
def test_progress_rejects_a_bad_interval(bad):
    with pytest.raises(ValueError, match="min_interval_s must be a number >= 0"):
        Progress("x", 4, min_interval_s=bad)


def test_check_progress_needs_something_called_with_each_index():
    """start and stop are not enough: the compiled loop calls the progress."""
    from jrl.progress import check_progress

    check_progress(Progress("x", 2, file=io.StringIO()))

    class StartsAndStops:
        def start(self):
            pass

        def stop(self):
            pass

    with pytest.raises(TypeError, match="progress must be the jrl.progress.Progress"):
        check_progress(StartsAndStops())
