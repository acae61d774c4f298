"""``jrl.envs.make``: one registry for jrl's environments and gymnax's."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import sys
import traceback
from collections.abc import Callable
from typing import Any

import gymnax
import jax.numpy as jnp
import numpy as np

from jrl.envs import cat_room, textbook
from jrl.envs.grid import whole_number

REGISTRY: dict[str, Callable] = {
    "CatRoom-v0": cat_room.cat_room,
    "CatRoomDynamic-v0": cat_room.cat_room_dynamic,
    "WindyGridworld-v0": textbook.windy_gridworld,
    "CliffWalking-v0": textbook.cliff_walking,
    "DynaMaze-v0": textbook.dyna_maze,
    "BlockingMaze-v0": textbook.blocking_maze,
    "ShortcutMaze-v0": textbook.shortcut_maze,
}


BUILT_IN = frozenset(REGISTRY)
"""jrl's own environment ids, which :func:`register` leaves as they are."""


def registered_envs() -> list[str]:
    """jrl's environment ids, then gymnax's (but those :data:`UNLEARNABLE_GYMNAX` names)."""
    gymnax_ids = [
        name
        for name in gymnax.registered_envs
        if name not in REGISTRY and name not in UNLEARNABLE_GYMNAX
    ]
    return list(REGISTRY) + gymnax_ids


UNLEARNABLE_GYMNAX = {
    "SimpleBandit-bsuite": (
        "gymnax's SimpleBandit-bsuite draws which arm pays what anew at every reset and "
        "ends every episode after its one step, so every policy's expected return is 0.5 "
        "and there is nothing to learn (bsuite's bandit keeps its arms; gymnax 1.0 does "
        "not); for a bandit use BernoulliBandit-misc or GaussianBandit-misc"
    ),
}
"""gymnax ids that no agent can learn from, refused by :func:`make` with the reason."""


def is_own(name: str) -> bool:
    """Whether ``name`` is an environment of the researcher's own: registered in this
    process (:func:`register`) or named by import path ("module:factory")."""
    return isinstance(name, str) and name not in BUILT_IN and (name in REGISTRY or ":" in name)


def register(name: str, factory: Callable) -> None:
    """Make ``factory(**overrides) -> (env, env_params)`` known to :func:`make` as
    ``name`` in this process. A run directory records the name only: to resume,
    evaluate or plot a run of your own environment from the ``jrl`` command, name its
    factory by import path instead (``make("my_package.envs:make_chain")``, ``jrl
    train ppo --env my_package.envs:make_chain``), which any process can import."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"an environment name is a non-empty string without ':'; got {name!r}")
    if not callable(factory):
        raise ValueError(f"{name}'s factory must be callable; got {type(factory).__name__}")
    if name in gymnax.registered_envs or name in BUILT_IN:
        raise ValueError(f"{name!r} is already an environment: register yours under another name")
    REGISTRY[name] = factory  # a name of your own again: its factory as redefined


def make(name: str, **overrides):
    """Make an environment: ``(env, env_params)``, as ``gymnax.make`` returns.

    For jrl's environments the overrides are the keyword arguments of the task's
    factory (``observation="grid"``, ``slip_prob=0.1``, ``layout=...``); for gymnax's,
    the keywords its class is made with (``size=10`` for DeepSea-bsuite) and fields of
    its ``EnvParams`` (``max_steps_in_episode=200``), each checked against its default's
    kind (:func:`_gymnax_value`). ``"module:factory"`` names a factory
    of your own by import path (``my_package.envs:make_chain``), called with the
    overrides and returning ``(env, env_params)``; :func:`register` names one in this
    process. Unknown names and overrides raise ``ValueError`` listing what exists, and
    so do the environments and settings a run may not start on (:func:`check_new_env`;
    a run directory's recorded one is made by :func:`make_recorded`).
    """
    check_new_env(name, overrides)
    return _make(name, overrides)


def make_recorded(name: str, overrides: dict) -> tuple[Any, Any]:
    """:func:`make` for a run directory's recorded environment: what it was trained on,
    made again without the refusals a new run gets (:func:`check_new_env`: a run made
    before jrl refused its setting still resumes, evaluates and renders), which are said
    on stderr instead, once per process."""
    try:
        check_new_env(name, overrides)
    except ValueError as error:
        if str(error) not in _NOTED:
            _NOTED.add(str(error))
            print(f"jrl: note: {error}", file=sys.stderr)
    return _make(name, overrides)


_NOTED: set[str] = set()  # what make_recorded has said in this process


def check_new_env(name: str, overrides: dict) -> None:
    """The refusals of an environment a new run may not start on: gymnax's
    :data:`UNLEARNABLE_GYMNAX` ids, and :data:`UNREAD_GYMNAX_SETTINGS` overrides."""
    _check_name(name)
    if name in UNLEARNABLE_GYMNAX:
        raise ValueError(UNLEARNABLE_GYMNAX[name])
    unread = sorted(set(overrides) & set(UNREAD_GYMNAX_SETTINGS.get(name, ())))
    if unread:
        raise ValueError(
            f"{name}'s {', '.join(unread)}: a field of gymnax's EnvParams that its step "
            "never reads (gymnax 1.0), so overriding it would change nothing (a sweep "
            "over it would run every point alike)"
        )


def _made(name: str, made: Any) -> tuple[Any, Any]:
    """``made``, a factory's return, if it is ``(env, env_params)``."""
    if not (isinstance(made, tuple) and len(made) == 2 and hasattr(made[0], "default_params")):
        got = f"a tuple of {len(made)}" if isinstance(made, tuple) else type(made).__name__
        raise TypeError(
            f"the factory of {name!r} must return (env, env_params), as gymnax.make does; "
            f"it returned {got}"
        )
    return made


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"an environment's name is a string, got {type(name).__name__} {name!r}")


def _make(name: str, overrides: dict) -> tuple[Any, Any]:
    _check_name(name)
    if name in REGISTRY:
        factory = REGISTRY[name]
        _check_factory_overrides(name, factory, overrides)
        return _made(name, factory(**overrides))
    if ":" in name:
        return _made(name, _make_by_import_path(name, overrides))
    if name in gymnax.registered_envs:
        built = _gymnax_constructor_settings(name)
        made_with = {k: v for k, v in overrides.items() if k in built}
        made_with = {k: _constructor_value(name, k, built[k], v) for k, v in made_with.items()}
        try:
            env, params = gymnax.make(name, **made_with)
        except OSError as error:  # URLError too
            raise OSError(
                f"gymnax could not make {name}: {error} (MNISTBandit-bsuite downloads MNIST "
                "when made, which needs the network)"
            ) from error
        except (TypeError, ValueError, AssertionError) as error:
            raise ValueError(
                f"gymnax could not make {name} with {made_with}: {_reason(error)}"
            ) from None
        overrides = {k: v for k, v in overrides.items() if k not in built}
        allowed = [field.name for field in dataclasses.fields(params)]
        try:
            _check_overrides(name, overrides, allowed)
        except ValueError as error:
            raise ValueError(
                f"{error}; and those its class is made with: {', '.join(built)}"
                if built
                else str(error)
            ) from None
        values = {k: _gymnax_value(name, k, getattr(params, k), v) for k, v in overrides.items()}
        problem = order_problem(name, lambda k: values.get(k, getattr(params, k)))
        if problem is not None:
            raise ValueError(f"{name} settings: {problem}")
        return env, params.replace(**values, **_derived(name, params, values))
    close = difflib.get_close_matches(name, registered_envs(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown environment {name!r}.{hint} Known: {', '.join(registered_envs())}; or "
        "your own factory by import path, 'module:factory'"
    )


def _make_by_import_path(name: str, overrides: dict):
    """``(env, env_params)`` of the factory ``name`` ("module:attribute") names."""
    factory = _factory_by_import_path(name)
    _check_factory_overrides(name, factory, overrides)
    made = factory(**overrides)
    if not (isinstance(made, tuple) and len(made) == 2):
        raise ValueError(
            f"environment {name!r}: its factory returned {type(made).__name__}; it must "
            "return (env, env_params), as gymnax.make does"
        )
    return made


def _factory_by_import_path(name: str) -> Callable:
    """The callable ``name`` ("module:attribute") names, imported; a ValueError that
    says what is missing (an import error of the module's own dependencies as it is)."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{name!r}: name your environment's factory as 'module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        parts = module_name.split(".")
        if error.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise  # the module is there; something it imports is not
        raise ValueError(
            f"environment {name!r}: cannot import {module_name} ({error}); install it or "
            "add its directory to PYTHONPATH (the jrl command does not look in the current "
            "directory; python -m jrl does)"
        ) from None
    factory = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise ValueError(f"environment {name!r}: {module_name} has no callable {attribute}")
    return factory


def _reason(error: BaseException) -> str:
    """An error's message, or for a bare ``assert`` (gymnax's constructors check their
    settings so, MetaMaze's odd ``maze_size`` one) the line that failed."""
    if str(error):
        return str(error)
    frames = traceback.extract_tb(error.__traceback__)
    line = frames[-1].line if frames else None
    return f"its check `{line}` failed" if line else f"{type(error).__name__} with no message"


def _check_factory_overrides(name: str, factory: Callable, overrides: dict) -> None:
    """The overrides ``factory`` takes as keywords (any, where it takes ``**settings``),
    and those it cannot be called without."""
    parameters = inspect.signature(factory).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        _check_overrides(name, overrides, [p.name for p in parameters])
    needed = [
        p.name
        for p in parameters
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and (p.kind is p.POSITIONAL_ONLY or p.name not in overrides)
    ]
    if needed:
        raise ValueError(
            f"environment {name!r}: its factory is called with settings as keywords only "
            f"(factory(**overrides)), and it has no default for {', '.join(needed)}: give "
            "each as an override (make(name, NAME=VALUE), --env-overrides NAME VALUE), or "
            "give it a default"
        )


UNREAD_GYMNAX_SETTINGS = {
    "Acrobot-v1": ("link_length_2",),  # as in Gym's Acrobot: drawn, not simulated
    "Asterix-MinAtar": ("shot_cool_down",),
    "Seaquest-MinAtar": ("enemy_move_interval", "ramp_interval"),
}
"""Fields of gymnax 1.0's EnvParams that its environments never read, refused as
overrides (CartPole's ``masscart``, read only through ``total_mass``, jrl recomputes:
:data:`DERIVED_GYMNAX_SETTINGS`)."""


_TIME_STEP, _MASS, _LENGTH = "a time step", "a mass", "a length"
_PAST_THE_END = "the car is held at max_position, so a goal past it is never reached"
POSITIVE_GYMNAX_SETTINGS = {
    "CartPole-v1": {
        "tau": _TIME_STEP,  # 0: the pole never moves, and a random policy scores 500
        "masscart": _MASS,
        "masspole": _MASS,
        "total_mass": _MASS,
        "length": _LENGTH,
        "polemass_length": "a mass times a length",
        "force_mag": "a force",
        "theta_threshold_radians": "a threshold",
        "x_threshold": "a threshold",
    },
    "Pendulum-v1": {
        "dt": _TIME_STEP,
        "m": _MASS,
        "l": _LENGTH,
        "max_speed": "a speed limit",
        "max_torque": "a torque limit",
    },
    "Acrobot-v1": {
        "dt": _TIME_STEP,
        "link_mass_1": _MASS,
        "link_mass_2": _MASS,
        "link_length_1": _LENGTH,
        "link_moi": "a moment of inertia",
        "max_vel_1": "a speed limit",
        "max_vel_2": "a speed limit",
    },
    "MountainCar-v0": {"force": "a force", "max_speed": "a speed limit"},
    "MountainCarContinuous-v0": {"power": "a force", "max_speed": "a speed limit"},
}
"""{env id: {field: what it is}} of gymnax's classic-control ``EnvParams`` fields that
must be > 0: a time step of 0 freezes the physics, a mass or length <= 0 divides by zero
or inverts it, a limit or threshold <= 0 ends every episode at once or stops all motion.
Checked in ``make``'s overrides (:func:`_gymnax_value`) and in the agents' check of
``params.replace(...)`` (``jrl.agents.checks.check_env_param_values``); gravity and
the rest may take any finite value."""


ORDERED_GYMNAX_SETTINGS = {
    "MountainCar-v0": (
        ("min_position", "<", "max_position", "the track runs from one to the other"),
        ("goal_position", "<=", "max_position", _PAST_THE_END),
    ),
    "MountainCarContinuous-v0": (
        ("min_position", "<", "max_position", "the track runs from one to the other"),
        ("goal_position", "<=", "max_position", _PAST_THE_END),
        ("min_action", "<", "max_action", "every action is clipped into [min, max]"),
    ),
}
"""{env id: ((field, "<" or "<=", field, why), ...)} of gymnax's classic-control
``EnvParams`` fields that must keep their order: a track whose ends are swapped, a goal
past the track's end (the car is held at ``max_position``, so every episode ran to its
time limit with no way to finish), or an action range whose ends are swapped (every
action clipped to ``max_action``). Checked by ``make`` and by the agents' check of
``params.replace(...)`` (:func:`order_problem`)."""


def order_problem(env_name: str, values: Callable[[str], Any]) -> str | None:
    """What breaks :data:`ORDERED_GYMNAX_SETTINGS` for ``env_name``, given each field's
    value by ``values(field)`` (None where it is not known, as a traced field), or None."""
    for low, relation, high, why in ORDERED_GYMNAX_SETTINGS.get(env_name, ()):
        a, b = values(low), values(high)
        if a is None or b is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        if not np.all(a < b if relation == "<" else a <= b):
            return f"{low} ({a}) must be {relation} {high} ({b}): {why}"
    return None


SIZE_GYMNAX_SETTINGS = {
    "MemoryChain-bsuite": ("memory_length",),
    "UmbrellaChain-bsuite": ("chain_length",),
    "BernoulliBandit-misc": ("t_max",),
    "Seaquest-MinAtar": ("max_oxygen",),  # its oxygen bar: oxygen * 10 // max_oxygen
}
"""{env id: fields} of gymnax's ``EnvParams`` ints that must be whole numbers >= 1, as
``max_steps_in_episode`` must: each divides an observation or a schedule (``time /
memory_length``), so 0 made NaN observations and a negative length ran backwards."""


TIMER_GYMNAX_SETTINGS = {
    "Asterix-MinAtar": {"init_spawn_speed": 1, "init_move_interval": 1},
    "SpaceInvaders-MinAtar": {
        "enemy_move_interval": 1,
        "enemy_shot_interval": 1,
        "shot_cool_down": 0,
    },
    "Freeway-MinAtar": {"player_speed": 0},
}
"""{env id: {field: least}} of MinAtar's timers (ints: steps from one event to the
next), which must be whole numbers >= least. gymnax sets a timer to the field, counts it
down each step and acts (a spawn, a move, a shot) when it is 0: see :data:`TIMER_WHY`.
Seaquest's timers stop at 0 from either side, so any value runs (0 or below: every step)."""

TIMER_WHY = {
    1: "gymnax counts this timer down past 0 and acts when it is 0, so at 0 or below it "
    "acts once at most (Asterix's enemies spawned once, SpaceInvaders' aliens stopped)",
    0: "gymnax counts this timer down to 0 and acts at 0 (0: every step), so below 0 it "
    "never acts again (Freeway's chicken never moved, the cannon never fired again)",
}
"""Why a field of :data:`TIMER_GYMNAX_SETTINGS` must be at least 1 or at least 0."""


NONZERO_GYMNAX_SETTINGS = {
    "Pong-misc": {
        "ball_x_speed": "the ball never leaves the middle column",
        "paddle_y_speed": "no action moves a paddle (the ball bounces between the two)",
    },
}
"""{env id: {field: what 0 does}} of gymnax ints that must not be 0: with either of
Pong's speeds at 0 every episode ran to its time limit at +1 a step (a random policy
scored the maximum, 1000). A negative speed runs (the other way round)."""


def timer_problem(env_name: str, field: str, value) -> str | None:
    """What makes ``value`` no setting for the timer ``field`` of ``env_name``
    (:data:`TIMER_GYMNAX_SETTINGS`), or None (also for a field that is not a timer)."""
    least = TIMER_GYMNAX_SETTINGS.get(env_name, {}).get(field)
    if least is None:
        return None
    number = np.asarray(value)
    if number.dtype.kind == "b" or np.any(number < least) or np.any(number != np.round(number)):
        return f"a timer must be a whole number >= {least}: {TIMER_WHY[least]}"
    return None


def nonzero_problem(env_name: str, field: str, value) -> str | None:
    """What makes ``value`` no setting for ``field`` of ``env_name`` under
    :data:`NONZERO_GYMNAX_SETTINGS`, or None."""
    what = NONZERO_GYMNAX_SETTINGS.get(env_name, {}).get(field)
    if what is None or np.all(np.asarray(value) != 0):
        return None
    return f"it must not be 0: at 0 {what}, and every episode runs to its time limit"


def _check_overrides(name: str, overrides: dict, allowed: list[str]) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"{name} has no setting {', '.join(map(repr, unknown))}; "
            f"its settings are: {', '.join(allowed)}"
        )


def _gymnax_constructor_settings(name: str) -> dict:
    """{setting: default} of the keywords gymnax's class for ``name`` is made with
    (DeepSea's ``size``, FourRooms' ``use_visual_obs``, FrozenLake's ``is_slippery``),
    which ``gymnax.make(name, **settings)`` passes on; the rest of an environment's
    settings are fields of its ``EnvParams``."""
    from gymnax import registration

    factory = registration._registry[name]  # gymnax 1.0 keeps its factories there only
    parameters = inspect.signature(factory).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _constructor_value(env_name: str, key: str, default, value):
    """An override of a gymnax constructor keyword, checked against its default: a bool
    for a bool, a finite number for a float, a string for a string, and for an int a
    whole number >= 1 (sizes and counts; >= 0 for :data:`ZERO_OR_MORE` ones), so that
    gymnax never traces a size 0. A keyword whose default is None or a sequence (a map, a
    fixed position, a key) is refused: gymnax does not check it; make such an
    environment with a factory of your own ("module:factory")."""
    if isinstance(default, int) and not isinstance(default, bool):
        least = 0 if key in ZERO_OR_MORE else 1
        return whole_number(f"{env_name} setting {key}", value, low=least)
    if isinstance(default, bool | float):
        return _gymnax_value(env_name, key, default, value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{env_name} setting {key} must be a string, got {value!r}")
        return value
    raise ValueError(
        f"{env_name} setting {key} (default {default!r}) is not checked by gymnax, so jrl "
        "does not pass it on; make the environment with a factory of your own, named by "
        "import path ('module:factory', README: environments of your own)"
    )


ZERO_OR_MORE = frozenset({"n_distractor", "mapping_seed"})
"""gymnax constructor keywords (ints) for which 0 is a setting, not an empty size."""


def _gymnax_value(env_name: str, key: str, default, value):
    """An override of a gymnax ``EnvParams`` field, checked against the field's default:
    a bool for a bool, a whole number for an int (``max_steps_in_episode`` >= 1, a
    MinAtar timer >= its least: :data:`TIMER_GYMNAX_SETTINGS`; Pong's speeds not 0:
    :data:`NONZERO_GYMNAX_SETTINGS`), a
    finite number for a float (> 0 for :data:`POSITIVE_GYMNAX_SETTINGS`), an array of
    the same shape for an array. A ValueError
    naming the setting otherwise — before anything is compiled."""
    where = f"{env_name} setting {key}"
    if isinstance(default, bool):
        if isinstance(value, str):
            raise ValueError(
                f"{where} must be a bool (true or false, unquoted in a YAML or JSON file), "
                f"got the string {value!r}"
            )
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return bool(value)
    if isinstance(default, int) or key == "max_steps_in_episode":  # BernoulliBandit's: 100.0
        size = key == "max_steps_in_episode" or key in SIZE_GYMNAX_SETTINGS.get(env_name, ())
        number = whole_number(where, value, low=1 if size else None)
        problem = timer_problem(env_name, key, number) or nonzero_problem(env_name, key, number)
        if problem is not None:
            raise ValueError(f"{where} is {number}: {problem}")
        return number if isinstance(default, int) else float(number)
    shape = np.shape(default)
    try:
        number = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        number = None
    if (
        number is None
        or isinstance(value, bool | str)
        or number.shape != shape
        or not np.all(np.isfinite(number))
    ):
        kind = "a finite number" if not shape else f"finite numbers of shape {list(shape)}"
        raise ValueError(f"{where} must be {kind}, got {value!r}")
    dtype = jnp.result_type(default)
    if jnp.issubdtype(dtype, jnp.integer) and not np.all(number == np.round(number)):
        raise ValueError(f"{where} must be whole numbers of shape {list(shape)}, got {value!r}")
    if key.endswith(("_prob", "_probs")) and not np.all((number >= 0) & (number <= 1)):
        # FourRooms' fail_prob 2 acted at random always, silently (jrl's slip_prob: refused)
        raise ValueError(f"{where} is a probability: it must be in [0, 1], got {value!r}")
    kind = POSITIVE_GYMNAX_SETTINGS.get(env_name, {}).get(key)
    if kind is not None and not np.all(number > 0):
        raise ValueError(f"{where} is {kind}: it must be > 0, got {value!r}")
    return jnp.asarray(number, dtype) if shape else float(value)


DERIVED_GYMNAX_SETTINGS = {
    "CartPole-v1": {"total_mass": "masscart + masspole", "polemass_length": "masspole * length"},
}
"""{env id: {field: "part + part" or "part * part"}}: fields gymnax computes from others
only when it builds its defaults, and reads in their place (CartPole's step uses
``total_mass``, never ``masscart``). ``make`` recomputes such a field after an override
of a part unless it is given too (:func:`_derived`); the agents refuse params whose
part was replaced while the field kept its default (:func:`stale_derived_problem`): a
``params.replace(masscart=...)`` changed nothing."""


def _parts(formula: str) -> tuple[str, str]:
    first, _, second = formula.split()
    return first, second


def _evaluate(formula: str, value: Callable[[str], Any]):
    first, operator, second = formula.split()
    return value(first) + value(second) if operator == "+" else value(first) * value(second)


def _derived(env_name: str, params, values: dict) -> dict:
    """:data:`DERIVED_GYMNAX_SETTINGS` recomputed after an override of their parts
    (``values``) unless they are given too."""
    return {
        key: _evaluate(formula, lambda part: values.get(part, getattr(params, part)))
        for key, formula in DERIVED_GYMNAX_SETTINGS.get(env_name, {}).items()
        if key not in values and any(part in values for part in _parts(formula))
    }


def stale_derived_problem(env_name: str, values: Callable[[str], Any], defaults) -> str | None:
    """What is stale in ``env_name``'s params, given each field's value by
    ``values(field)`` (None where it is not known, as a traced field) and gymnax's
    ``defaults``: a :data:`DERIVED_GYMNAX_SETTINGS` field left at its default while its
    parts were changed (``params.replace(masscart=2.0)``, which gymnax ignores), or None."""
    for key, formula in DERIVED_GYMNAX_SETTINGS.get(env_name, {}).items():
        fields = (key, *_parts(formula))
        if any(values(field) is None or not hasattr(defaults, field) for field in fields):
            continue
        number = {field: np.asarray(values(field), np.float64) for field in fields}
        default = {field: np.asarray(getattr(defaults, field), np.float64) for field in fields}
        expected = _evaluate(formula, number.get)
        if np.array_equal(number[key], default[key]) and not np.allclose(number[key], expected):
            changed = [p for p in fields[1:] if not np.array_equal(number[p], default[p])]
            return (
                f"{' and '.join(changed)} changed but {key} is still its default "
                f"{default[key]}: gymnax computes {key} = {formula} only for its defaults and "
                f"reads {key} in their place, so the change did nothing; replace {key} too "
                f"({key}={expected}) or make the environment with jrl.envs.make("
                f"'{env_name}', {changed[0]}=...), which recomputes it"
            )
    return None
