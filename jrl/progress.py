"""Progress of a whole run compiled as one call: the host hears from inside the loop.

``jrl.training`` shows progress between its compiled chunks; a run compiled whole (an
agent's ``train``, ``jrl.sweep.run_sweep``, the experiments) is silent until it ends.
:func:`train_with_progress` builds the same loop as the agents' ``train`` — ``init``,
then ``update_at(state, hparams, index)`` for index 0 .. U-1 in a ``lax.scan`` — with a
host callback (``jax.debug.callback``) every ``every`` updates. The index is not
batched, so under ``vmap`` the callback runs once per update, not once per seed, and
under ``shard_map`` once per device; :class:`Progress` prints the first arrival of each
index, at most one line per ``min_interval_s`` seconds.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import jax
import jax.numpy as jnp


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Host side: prints ``label: 35% (update 70 of 200), 1m02s elapsed, ~1m55s left``.

    Call :meth:`start` right before the compiled call runs (elapsed time and the
    estimate count from it); the compiled loop calls the instance with the index of the
    update just done. Thread-safe (XLA:CPU runs each device's callbacks on its own
    thread).
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
        self.label = label
        self.num_updates = num_updates
        self.min_interval_s = min_interval_s
        self.file = file
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        with self._lock:
            self._started = self._printed_at = time.perf_counter()
            self._last_index = -1

    def __call__(self, index) -> None:
        index = int(index)
        now = time.perf_counter()
        with self._lock:
            if index <= self._last_index or now - self._printed_at < self.min_interval_s:
                return
            self._last_index, self._printed_at = index, now
            done = index + 1
            elapsed = now - self._started
            left = elapsed * (self.num_updates - done) / done
            line = (
                f"  {self.label}: {done / self.num_updates:.0%} (update {done} of "
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
    (default: every 5% of the run) and after the last."""
    every = every or max(1, num_updates // 20)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")

    def train(key: jax.Array, hparams: Any):
        def step(state, index):
            state, metrics = agent.update_at(state, hparams, index)
            report = ((index + 1) % every == 0) | (index == num_updates - 1)
            jax.lax.cond(report, lambda: jax.debug.callback(progress, index), lambda: None)
            return state, metrics

        state = agent.init(key, hparams)
        return jax.lax.scan(step, state, jnp.arange(num_updates, dtype=jnp.int32))

    return train
