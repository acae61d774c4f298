"""Hyperparameters a static config leaves unread must keep their defaults.

A sweep over a hyperparameter that the compiled program never reads (a temperature
under epsilon-greedy exploration, a Polyak step with a hard target copy) runs every
grid point alike and reports the spread of seeds as if it were the effect of the
value: the agents' ``check_hparams(hparams, config)`` refuse it before compiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np


class Ignored(NamedTuple):
    """Why ``config`` leaves a hyperparameter unread. what: what the hyperparameter is
    ("Dyna-Q+'s exploration bonus"); setting: the config setting that ignores it
    ("config.algorithm='sarsa'"); fix: the setting that would read it."""

    what: str
    setting: str
    fix: str


def reject_ignored(hparams: Any, ignored: Mapping[str, Ignored]) -> None:
    """ValueError if a hyperparameter named in ``ignored`` differs from its default
    (``type(hparams)._field_defaults``, compared in float32 as the run holds it) at any
    grid point; ``hparams`` is one point or a grid (leaves shaped (G,))."""
    defaults = type(hparams)._field_defaults
    for name, why in ignored.items():
        value, default = np.asarray(getattr(hparams, name)), defaults[name]
        if np.any(value.astype(np.float32) != np.float32(default)):
            raise ValueError(
                f"{name}={value} is {why.what}; {why.setting} ignores it, so every value "
                f"would run alike ({why.fix}, or leave {name} at its default {default})"
            )
