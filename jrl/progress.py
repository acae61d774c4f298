"""Progress of a whole run compiled as one call: the host hears from inside the loop.

``jrl.training`` shows progress between its compiled chunks; a run compiled whole (an
agent's ``train``, ``jrl.sweep.run_sweep``, the experiments) is silent until it ends.
:func:`train_with_progress` builds the same loop as the agents' ``train`` — ``init``,
then ``update_at(state, hparams, index)`` for index 0 .. U-1 in a ``lax.scan`` — with a
host callback (``jax.debug.callback``) every ``every`` updates. The index is not
batched, so under ``vmap`` the callback runs once per update, not once per seed, and
under ``shard_map`` once per device; :class:`Progress` prints the first arrival of each
index, at most one line per ``min_interval_s`` seconds.

Stopping: XLA cannot be interrupted, so a Ctrl-C during a compiled run used to take
effect only when the whole run had ended. After :meth:`Progress.stop` the next callback
raises :class:`RunStopped`, which aborts the computation there (within ``every``
updates, 1% of the run by default). :func:`call_stoppable` runs a compiled call so:
on ``KeyboardInterrupt`` it stops the run, waits for it to abort, and re-raises.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import jax

from jrl.agents.evaluation import scan_run
from jrl.interrupts import exit_at_once, watch_signals


class RunStopped(Exception):
    """Raised by a :class:`Progress` callback after ``stop()``, to end the run early."""


class _DropRunStopped(logging.Filter):
    """JAX logs every exception a debug callback raises, with its traceback: not a stop."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], RunStopped))


logging.getLogger("jax._src.debugging").addFilter(_DropRunStopped())


def wait_until_stopped() -> None:
    """Wait for a run that :meth:`Progress.stop` ends to abort, and take its error.

    The aborted computation's error stays in JAX's runtime tokens, which JAX waits on
    again at exit (printing it as an ignored exception); any other error is raised.
    """
    try:
        jax.effects_barrier()
    except jax.errors.JaxRuntimeError as error:
        if RunStopped.__name__ not in str(error):
            raise
        from jax._src import dispatch  # no public way to drop a token's error (jax 0.10)

        dispatch.runtime_tokens.clear()


def check_progress(progress: Any) -> None:
    """TypeError unless ``progress`` is a :class:`Progress` (or does what one does)."""
    if not all(callable(getattr(progress, name, None)) for name in ("start", "stop", "__call__")):
        raise TypeError(
            "progress must be the jrl.progress.Progress that train reports to (made with "
            f"train_with_progress), got {type(progress).__name__} {progress!r:.60}"
        )


def call_stoppable(progress: Progress, fn: Callable, *args: Any) -> Any:
    """``jax.block_until_ready(fn(*args))``, where ``fn`` runs a loop built by
    :func:`train_with_progress` reporting to ``progress``: a Ctrl-C (SIGINT) ends the
    run at its next callback instead of its end, then raises KeyboardInterrupt; a
    second Ctrl-C ends the process at once.

    The Ctrl-C is heard as it arrives (:func:`jrl.interrupts.watch_signals`): on one
    device XLA:CPU runs the computation inside the call, where Python's own handler
    could not run until it returned.
    """
    check_progress(progress)
    presses = []

    def on_sigint(number):
        presses.append(number)
        if len(presses) > 1:
            exit_at_once(f"{progress.label}: second Ctrl-C: exiting at once")
            return  # (in a notebook kernel, which is not ended)
        progress.stop()
        print(
            f"{progress.label}: Ctrl-C: stopping at the next progress report "
            "(Ctrl-C again to exit at once)",
            file=progress.file or sys.stderr,
            flush=True,
        )

    progress.start()
    # A parent's SIG_IGN (a job started in the background) or SIG_DFL is left alone.
    watched = (signal.SIGINT,) if callable(signal.getsignal(signal.SIGINT)) else ()
    with watch_signals(on_sigint, watched):
        try:
            result = jax.block_until_ready(fn(*args))
        except (KeyboardInterrupt, jax.errors.JaxRuntimeError) as error:
            if not isinstance(error, KeyboardInterrupt) and not progress.stopped:
                raise
            progress.stop()
    if not progress.stopped:  # read after the watcher is done: a late Ctrl-C counts too
        return result
    wait_until_stopped()
    raise KeyboardInterrupt


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Host side: prints ``label: 35% (update 70 of 200), 1m02s elapsed, ~1m55s left``.

    Call :meth:`start` right before the compiled call runs (elapsed time and the
    estimate count from it); the compiled loop calls the instance with the index of the
    update just done. Thread-safe (XLA:CPU runs each device's callbacks on its own
    thread). After :meth:`stop` every call raises :class:`RunStopped`.
    """

    def __init__(
        self,
        label: str,
        num_updates: int,
        min_interval_s: float = 10.0,
        file: TextIO | None = None,
    ):
        if isinstance(num_updates, bool) or not isinstance(num_updates, int) or num_updates < 1:
            raise ValueError(f"num_updates must be a positive int, got {num_updates!r}")
        if isinstance(min_interval_s, bool) or not (
            isinstance(min_interval_s, int | float) and min_interval_s >= 0
        ):
            raise ValueError(f"min_interval_s must be a number >= 0, got {min_interval_s!r}")
        self.label = label
        self.num_updates = num_updates
        self.min_interval_s = min_interval_s
        self.file = file
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.start()

    def start(self) -> None:
        with self._lock:
            self._started = self._printed_at = time.perf_counter()
            self._last_index = -1
        self._stopped.clear()

    def stop(self) -> None:
        """Make the next callback end the run (it raises :class:`RunStopped`)."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def __call__(self, index) -> None:
        if self._stopped.is_set():
            raise RunStopped(f"{self.label}: stopped at update {int(index) + 1}")
        index = int(index)
        now = time.perf_counter()
        with self._lock:
            if index <= self._last_index or now - self._printed_at < self.min_interval_s:
                return
            self._last_index, self._printed_at = index, now
            done = index + 1
            elapsed = now - self._started
            left = elapsed * (self.num_updates - done) / done
            # Rounded down: 199 of 200 is not yet 100%.
            line = (
                f"  {self.label}: {100 * done // self.num_updates}% (update {done} of "
                f"{self.num_updates}), {_duration(elapsed)} elapsed, ~{_duration(left)} left"
            )
            self.lines.append(line)
            print(line, file=self.file or sys.stderr, flush=True)


def train_with_progress(
    agent: Any, num_updates: int, progress: Callable[[Any], None], every: int | None = None
) -> Callable:
    """``train(key, hparams) -> (state, metrics[num_updates])`` of ``agent`` (anything
    with ``init(key, hparams)`` and ``update_at(state, hparams, index)``: PPO, DQN and
    REINFORCE), calling ``progress(index)`` on the host after every ``every``-th update
    (default: every 1% of the run) and after the last. ``num_updates`` must be the
    agent's (``agent.num_updates``: PPO's and REINFORCE's updates, DQN's chunks) and, for
    a :class:`Progress`, its count: a shorter loop would cut the run short, a longer
    one run past the config's total_timesteps (PPO's annealed rate turned negative)."""
    counts = {"num_updates": num_updates}
    if hasattr(agent, "num_updates"):
        counts["the agent's num_updates"] = agent.num_updates
    if isinstance(progress, Progress):
        counts["the Progress's num_updates"] = progress.num_updates
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{name} {value}" for name, value in counts.items())
        raise ValueError(f"train_with_progress needs one length of the run, got {shown}")
    every = max(1, num_updates // 100) if every is None else every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")
    if not callable(progress):
        raise TypeError(
            f"progress must be called with each update's index (a Progress), got {progress!r}"
        )
    if not all(callable(getattr(agent, name, None)) for name in ("init", "update_at")):
        raise TypeError(
            f"train_with_progress takes an agent with init and update_at, got "
            f"{type(agent).__name__} {agent!r:.60}: pass jrl.agents.ppo.make_ppo(config, "
            "env, env_params) (or make_dqn, make_reinforce), not the train that make_train "
            "returns (a whole run, with no update to report after)"
        )

    def update_at(state, hparams, index):
        state, metrics = agent.update_at(state, hparams, index)
        report = ((index + 1) % every == 0) | (index == num_updates - 1)
        jax.lax.cond(report, lambda: jax.debug.callback(progress, index), lambda: None)
        return state, metrics

    train = scan_run(agent.init, update_at, num_updates)

    check = getattr(getattr(agent, "train", None), "check_hparams", None)
    if check is not None:  # run_sweep's config-aware check (DQN: tau with a hard target)
        train.check_hparams = check
    return train
