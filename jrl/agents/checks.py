"""Checks shared by the agents' static configs and hyperparameters.

:func:`reject_ignored`: hyperparameters a static config leaves unread must keep their
defaults. A sweep over a hyperparameter that the compiled program never reads (a
temperature under epsilon-greedy exploration, a Polyak step with a hard target copy)
runs every grid point alike and reports the spread of seeds as if it were the effect
of the value: the agents' ``check_hparams(hparams, config)`` refuse it before compiling.

:func:`python_scalars`: a config's numpy scalars (``num_envs=np.int64(8)`` from an
``np.arange`` loop) as Python ones, so its checks, its hash and its YAML see plain
ints, bools, floats and strings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import environment

from jrl.envs.registry import (
    POSITIVE_GYMNAX_SETTINGS,
    SIZE_GYMNAX_SETTINGS,
    nonzero_problem,
    order_problem,
    stale_derived_problem,
    timer_problem,
)


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
                f"{name}={value} is {why.what}; {why.setting} ignores it, so it would change "
                f"nothing ({why.fix}, or leave {name} at its default {default})"
            )


def check_bool(name: str, value: Any) -> None:
    """ValueError unless ``value`` (setting ``name``) is a bool: ``anneal_lr="False"`` is
    a non-empty string, which Python reads as true."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


def check_bools(config: Any, names: tuple[str, ...]) -> None:
    """:func:`check_bool` on each named field of ``config``."""
    for name in names:
        check_bool(name, getattr(config, name))


def check_choice(name: str, value: Any, choices) -> None:
    """Reject a ``value`` of setting ``name`` that is not one of ``choices``, naming them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {tuple(choices)}")


def check_positive_int(name: str, value: Any) -> None:
    """ValueError unless ``value`` is an int >= 1 (a bool is not: True would run as 1)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_hparams_type(cls: type, hparams: Any) -> None:
    """TypeError unless ``hparams`` (one point or a grid) is a ``cls``: another agent's
    hyperparameters would be read by position, or fail on a field they lack."""
    if not isinstance(hparams, cls):
        raise TypeError(
            f"hyperparameters must be a {cls.__name__}, got {type(hparams).__name__}: "
            f"build them as {cls.__name__}(...) (its fields: {', '.join(cls._fields)})"
        )


def check_config_type(cls: type, config: Any) -> None:
    """TypeError unless ``config`` is a ``cls``: another agent's config (a
    ``ReinforceConfig`` given to PPO) would be read field by field and fail while
    tracing, on the first field it lacks, with an AttributeError that names neither."""
    if not isinstance(config, cls):
        raise TypeError(
            f"config must be a {cls.__name__}, got {type(config).__name__}: build it as "
            f"{cls.__name__}(...) (each agent's make_train takes its own config)"
        )


def float32_hparams(cls: type, hparams: Any, check: Callable | None = None) -> Any:
    """``hparams`` as a ``cls`` of float32 arrays. Anything but a ``cls`` is a TypeError:
    the fields would be read by position, and another agent's hyperparameters (a
    ``ReinforceHParams`` given to PPO) would run with its ent_coef as gae_lambda. A
    field that is not a scalar is a ValueError: a grid handed to an un-vmapped ``train``
    would broadcast against the run's arrays (gamma of shape (4,) against 4
    environments: each its own discount) instead of failing.

    Values that are not traced (``train(key, hparams)`` called eagerly, or jitted over
    hyperparameters it closes over) are then checked as ``jrl.sweep.run_sweep`` checks a
    grid, with the same errors (``jrl.sweep.check_grid`` with ``check``: the agent's
    ``check_hparams`` bound to its config), so a negative learning rate or a gamma of 1.5
    fails here instead of training. Traced values (``jax.jit(train)(key, hparams)``,
    ``jax.vmap``, run_sweep's own compiled runs, which it checked before compiling)
    cannot be read and pass unchecked."""
    from jrl.sweep import check_grid  # here: jrl.sweep imports this module

    check_hparams_type(cls, hparams)
    shaped = {name: np.shape(value) for name, value in hparams._asdict().items()}
    shaped = {name: shape for name, shape in shaped.items() if shape}
    if shaped:
        raise ValueError(
            f"train takes one point of hyperparameters (scalars), got shapes {shaped}: run "
            "a grid with jrl.sweep.run_sweep (or jax.vmap(train) over its leading axis)"
        )
    check_grid(hparams, check)  # returns at once when any value is traced
    return cls(*(jnp.asarray(v, jnp.float32) for v in hparams))


def python_scalars(config: Any) -> None:
    """Replace the numpy scalars among a frozen dataclass's fields (and inside its tuple
    fields) by the Python ``int``, ``bool``, ``float`` or ``str`` they hold; call it
    first in ``__post_init__``."""

    def plain(value):
        if isinstance(value, np.generic) and value.dtype.kind in "biufU":
            return value.item()
        if isinstance(value, tuple):
            return tuple(plain(v) for v in value)
        return value

    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if plain(value) is not value:
            object.__setattr__(config, field.name, plain(value))


def env_params_or_default(env, env_params):
    """``env_params``, or where it is None ``env.default_params`` (what gymnax's own
    ``reset`` and ``step`` take None for; the agents also call the environment's
    ``step_env``, which does not). ValueError for params of another class than the
    environment's own (another environment's: a raw AttributeError while tracing)."""
    if isinstance(env, tuple | str) or not hasattr(env, "default_params"):
        hint = {
            tuple: ": make returns (env, env_params), so make_train(config, *make(name))",
            str: f": build it first, make_train(config, *jrl.envs.make({env!r}))",
        }.get(type(env), "")
        if hasattr(env_params, "default_params"):
            hint = ": env and env_params are given the other way round"
        raise TypeError(
            f"env must be an environment of gymnax's API, got {type(env).__name__}{hint}"
        )
    default = env.default_params
    if env_params is None:
        return default
    # An environment that keeps gymnax's own default_params (a bare EnvParams) says
    # nothing of the params it takes.
    if (
        dataclasses.is_dataclass(default)
        and type(default) is not environment.EnvParams
        and not isinstance(env_params, type(default))
    ):
        raise ValueError(
            f"env_params is a {type(env_params).__module__}.{type(env_params).__name__}, "
            f"but {env.name} takes {type(default).__module__}.{type(default).__name__}: "
            "pass its own (env.default_params, or a replace of them), or None"
        )
    check_env_param_values(env, env_params)
    return env_params


def check_env_param_values(env, env_params) -> None:
    """ValueError, before compiling, for a concrete field of ``env_params`` that no
    environment can run with, whichever environment it is: a time limit
    (``max_steps_in_episode``) that is not a whole number >= 1 (0 cut every episode
    after one step), a probability (``*_prob``, ``*_probs``) outside [0, 1], a NaN or
    infinite float (a NaN gravity trained on NaN returns); and for gymnax's classic
    control, a time step, mass, length, limit or threshold <= 0
    (``jrl.envs.registry.POSITIVE_GYMNAX_SETTINGS``: CartPole's ``tau=0`` froze the pole,
    and a random policy scored 500), MountainCar's ends, goal or action range out of
    order (``ORDERED_GYMNAX_SETTINGS``), lengths gymnax divides by below 1
    (``SIZE_GYMNAX_SETTINGS``), MinAtar timers that would stop their event
    (``TIMER_GYMNAX_SETTINGS``: Asterix's ``init_spawn_speed=0`` spawned enemies once),
    Pong's speeds at 0 (``NONZERO_GYMNAX_SETTINGS``: a random policy scored 1000), and
    CartPole's masses or length replaced while the
    ``total_mass`` or ``polemass_length`` gymnax reads in their place kept its default
    (``DERIVED_GYMNAX_SETTINGS``: the change did nothing). ``jrl.envs.make`` refuses
    these as settings; ``params.replace(...)``, gymnax's usual way to change them, does
    not. Traced fields (params built inside ``jit``) are not read."""
    if not dataclasses.is_dataclass(env_params):
        return
    name = getattr(env, "name", type(env).__name__)
    positive = POSITIVE_GYMNAX_SETTINGS.get(name, {})
    for field in dataclasses.fields(env_params):
        value = getattr(env_params, field.name)
        if isinstance(value, jax.core.Tracer):
            continue
        try:
            number = np.asarray(value)
        except Exception:  # not an array-like field (a callable, a nested object)
            continue
        if number.dtype.kind not in "biuf":
            continue
        problem = None
        not_a_count = (
            number.dtype.kind == "b" or np.any(number < 1) or np.any(number != np.round(number))
        )
        if field.name in SIZE_GYMNAX_SETTINGS.get(name, ()) and not_a_count:
            problem = "a length must be a whole number >= 1 (gymnax divides by it)"
        elif (timer := timer_problem(name, field.name, number)) is not None:
            problem = timer
        elif (zero := nonzero_problem(name, field.name, number)) is not None:
            problem = zero
        elif field.name == "max_steps_in_episode" and not_a_count:
            problem = "a time limit must be a whole number >= 1"
        elif field.name.endswith(("_prob", "_probs")) and not np.all((number >= 0) & (number <= 1)):
            problem = "a probability must be in [0, 1]"
        elif number.dtype.kind == "f" and not np.all(np.isfinite(number)):
            problem = "it must be finite"
        elif field.name in positive and not np.all(number > 0):
            problem = f"{positive[field.name]} must be > 0"
        if problem is not None:
            raise ValueError(
                f"{name}'s env_params.{field.name} is {value!r}: {problem} (jrl.envs.make "
                "checks the settings it is given; a params.replace(...) is checked here)"
            )

    def concrete(field: str):
        value = getattr(env_params, field, None)
        return None if isinstance(value, jax.core.Tracer) else value

    problem = order_problem(name, concrete) or stale_derived_problem(
        name, concrete, getattr(env, "default_params", None)
    )
    if problem is not None:
        raise ValueError(
            f"{name}'s env_params: {problem} (jrl.envs.make checks the settings it is "
            "given; a params.replace(...) is checked here)"
        )


def check_env_outputs(env, env_params) -> jax.ShapeDtypeStruct:
    """Raise ValueError unless ``env``'s ``reset`` and ``step`` (traced abstractly:
    nothing runs) follow gymnax 1.0's contract as the agents read it: ``step`` returns
    (obs, state, reward, terminated, truncated, info) with ``info["final_observation"]``
    (the time-out bootstrap reads it); observations of the shape the observation space
    declares (the networks and tables are sized from it) and of one dtype from reset,
    step and final_observation (auto-reset selects between them); a scalar reward, and
    scalar bool terminated and truncated (the agents keep one of each per environment
    and combine them as booleans). Returns reset's observation's shape and dtype."""
    key = jax.random.key(0)
    obs, state = jax.eval_shape(env.reset, key, env_params)
    space = env.action_space(env_params)  # read as the agents read it: n, or a shape
    action = (
        jax.ShapeDtypeStruct((), jnp.int32)
        if hasattr(space, "n")
        else jax.ShapeDtypeStruct(tuple(space.shape), jnp.float32)
    )
    try:
        outputs = jax.eval_shape(lambda k, s, a: env.step(k, s, a, env_params), key, state, action)
    except TypeError:  # gymnax's auto-reset selects between reset's and step_env's outputs
        _check_reset_and_step_env_agree(env, env_params, key, obs, state, action)
        raise
    if not isinstance(outputs, tuple) or len(outputs) != 6:
        got = f"{len(outputs)} values" if isinstance(outputs, tuple) else type(outputs).__name__
        raise ValueError(
            f"{env.name}'s step returns {got}; jrl takes gymnax 1.0's six: (obs, state, "
            "reward, terminated, truncated, info). An older gymnax's (obs, state, reward, "
            "done, info) environment: subclass gymnax 1.0's Environment and implement "
            "step_env (its step then adds truncated and info['final_observation'])"
        )
    next_obs, _, reward, terminated, truncated, info = outputs
    final_obs = info.get("final_observation") if isinstance(info, Mapping) else None
    if final_obs is None:
        raise ValueError(
            f"{env.name}'s step returns no info['final_observation'] (the observation "
            "before an auto-reset, which a time-out bootstraps from): return it as "
            "gymnax 1.0's Environment.step does, or leave step to gymnax and implement "
            "step_env"
        )
    declared = tuple(getattr(env.observation_space(env_params), "shape", ()))
    observed = (("reset", obs), ("step", next_obs), ("step's info['final_observation']", final_obs))
    for what, value in observed:
        if not isinstance(value, jax.ShapeDtypeStruct):
            raise ValueError(
                f"{env.name}'s {what} returns a {type(value).__name__} of observations; jrl's "
                "agents take one array (flatten a dict or tuple observation into one)"
            )
        if tuple(value.shape) != declared:
            raise ValueError(
                f"{env.name}'s {what} returns observations of shape {tuple(value.shape)}, "
                f"but its observation_space declares {declared}: make them agree"
            )
    if len({value.dtype for _, value in observed}) > 1:
        raise ValueError(
            f"{env.name}'s observations differ in dtype: "
            + ", ".join(f"{what} {value.dtype}" for what, value in observed)
            + "; return one dtype from reset_env and step_env (an auto-reset selects "
            "between them)"
        )
    for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if value.shape != ():
            raise ValueError(
                f"{env.name}'s step returns a {name} of shape {value.shape}; it must be a "
                "scalar (one per environment: sum or index a vector reward)"
            )
    for name, value in (("terminated", terminated), ("truncated", truncated)):
        if value.dtype != jnp.bool_:
            raise ValueError(
                f"{env.name}'s step returns {name} of dtype {value.dtype}; it must be a bool "
                "(e.g. jnp.asarray(done, bool))"
            )
    return obs


def _check_reset_and_step_env_agree(env, env_params, key, obs, state, action) -> None:
    """A ValueError naming what differs where ``env``'s reset and step_env return
    observations or states of other dtypes (gymnax's step fails to select between
    them with a TypeError from inside lax.select)."""
    params = env.default_params if env_params is None else env_params
    try:
        stepped = jax.eval_shape(lambda k, s, a: env.step_env(k, s, a, params), key, state, action)
    except Exception:  # a wrapper's step_env (gymnax's pass it on) takes another state
        return
    pairs = (("observations", obs, stepped[0]), ("states", state, stepped[1]))
    for what, reset, after_step in pairs:
        reset_types = [leaf.dtype for leaf in jax.tree.leaves(reset)]
        step_types = [leaf.dtype for leaf in jax.tree.leaves(after_step)]
        if reset_types != step_types:
            raise ValueError(
                f"{env.name}'s reset_env and step_env return {what} of other dtypes "
                f"({', '.join(map(str, reset_types))} against {', '.join(map(str, step_types))}): "
                "return the same from both (an auto-reset selects between them)"
            ) from None
