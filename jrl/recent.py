"""A process's few most recently used compiled programs, kept by what decides them.

``jax.jit``'s own cache is keyed by the function object, and jrl's sweeps, runs and
evaluations build a new closure per call; keeping the compiled result under a key of
what decides the program (a run's fingerprint, shapes, devices, options) lets a
notebook or a test that stops and resumes, loops over seed batches, or evaluates
checkpoints as they come compile once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class Recent(Generic[Value]):
    """At most ``keep`` values by key; the least recently used goes first."""

    def __init__(self, keep: int):
        self.keep = keep
        self._values: dict[Hashable, Value] = {}

    def get(self, key: Hashable, make: Callable[[], Value]) -> Value:
        """The value kept under ``key``, else ``make()`` kept under it; ``make()`` kept
        nowhere for the key None. A TypeError for a key that cannot be hashed, before
        ``make`` is called."""
        if key is None:
            return make()
        value = self._values.pop(key) if key in self._values else make()
        self._values[key] = value  # the most recently used last
        while len(self._values) > self.keep:
            del self._values[next(iter(self._values))]
        return value

    def __len__(self) -> int:
        return len(self._values)
