"""``jrl.envs.make``: one registry for jrl's environments and gymnax's."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable

import gymnax

from jrl.envs import cat_room, textbook

REGISTRY: dict[str, Callable] = {
    "CatRoom-v0": cat_room.cat_room,
    "CatRoomDynamic-v0": cat_room.cat_room_dynamic,
    "WindyGridworld-v0": textbook.windy_gridworld,
    "CliffWalking-v0": textbook.cliff_walking,
    "DynaMaze-v0": textbook.dyna_maze,
    "BlockingMaze-v0": textbook.blocking_maze,
    "ShortcutMaze-v0": textbook.shortcut_maze,
}


def registered_envs() -> list[str]:
    """jrl's environment ids, then gymnax's."""
    return list(REGISTRY) + [name for name in gymnax.registered_envs if name not in REGISTRY]


def make(name: str, **overrides):
    """Make an environment: ``(env, env_params)``, as ``gymnax.make`` returns.

    For jrl's environments the overrides are the keyword arguments of the task's
    factory (``observation="grid"``, ``slip_prob=0.1``, ``layout=...``); for gymnax's,
    fields of its ``EnvParams`` (``max_steps_in_episode=200``). Unknown names and
    overrides raise ``ValueError`` listing what exists.
    """
    if name in REGISTRY:
        factory = REGISTRY[name]
        allowed = [p for p in inspect.signature(factory).parameters]
        _check_overrides(name, overrides, allowed)
        return factory(**overrides)
    if name in gymnax.registered_envs:
        env, params = gymnax.make(name)
        allowed = [field.name for field in dataclasses.fields(params)]
        _check_overrides(name, overrides, allowed)
        return env, params.replace(**overrides)
    close = difflib.get_close_matches(name, registered_envs(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown environment {name!r}.{hint} Known: {', '.join(registered_envs())}")


def _check_overrides(name: str, overrides: dict, allowed: list[str]) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"{name} has no setting {', '.join(map(repr, unknown))}; "
            f"its settings are: {', '.join(allowed)}"
        )
