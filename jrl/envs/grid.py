"""One gridworld engine for every JAX-native grid task in jrl.

A task is a legend of cell types and one or more ASCII layouts of one size. The
builder :func:`grid_params` turns them into :class:`GridParams`: the raw arrays
(cell types, start cells, wind, slip, step reward, time limit) and, compiled from
them, the tabular MDP of every layout,

    next_cell[l, s, a], reward[l, s, a], terminal[l, s, a],

so that a step is three gathers. Because the MDP is a table, the same params serve
planning (value iteration in the tests) as well as simulation.

Conventions (Sutton & Barto): cells are (row, col) with row 0 at the top, the
state index is ``row * width + col``, actions are 0 up, 1 down, 2 left, 3 right and,
when the legend has interactive cells, 4 interact ("scratch" in the cat room). A
move off the grid or into a blocking cell leaves the agent where it is. Wind pushes
the agent ``wind[col]`` rows up, taken from the column it moves *from* (Example 6.5);
a blocking cell anywhere between where the move and the wind take it blocks the whole
step (wind does not carry the agent through a wall).
Entering a cell gives that cell type's ``enter_reward`` (the step reward where
unset) and then its ``enter_effect``: end the episode, or send the agent back to the
start without ending it (the cliff of Example 6.6). Interacting gives the
``interact_reward`` of the cell the agent stands on and may end the episode.

Several layouts make a non-stationary task: an episode is played in layout
``counter // switch_every`` (clamped to the last layout, or cycled), where the
counter is the number of environment steps (Blocking and Shortcut mazes) or of
episodes begun (the dynamic cat room) since ``reset``, counted when the episode
begins. These counters live in the state and survive the auto-reset inside ``step``.
A step-counted switch thus waits for the episode under way to end, as in the
reference code of Sutton & Barto's Figures 8.4 and 8.5 (ShangtongZhang's
``chapter08/maze.py``): switching mid-episode could wall the agent in where it stood.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

NO_EFFECT, TERMINATE, RETURN_TO_START = 0, 1, 2
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int32)  # up, down, left, right
ACTION_NAMES = ("up", "down", "left", "right", "interact")
INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)


@dataclass(frozen=True)
class CellType:
    """What one map symbol means. ``None`` rewards fall back to the step reward."""

    symbol: str
    name: str
    color: tuple[int, int, int]
    blocks: bool = False
    enter_reward: float | None = None
    enter_effect: int = NO_EFFECT
    interact_reward: float | None = None
    interact_terminates: bool = False


START_SYMBOL = "S"


@struct.dataclass(kw_only=True)
class GridParams(environment.EnvParams):
    """Parameters of a grid task (L layouts of H x W cells, T cell types, A actions).

    Raw description (the source of truth):
        cell_type: int32[L, H, W], index into the legend's cell types.
        start: int32[L], start cell index of each layout.
        enter_reward, interact_reward: float32[T]; enter_effect: int32[T];
            blocks, interact_terminates: bool[T].
        wind: int32[W], upward push by column.
        step_reward, slip_prob: float32 scalars; step_reward is the reward of a step
            that moves nowhere (into a wall or the edge); a move's is the entered cell
            type's ``enter_reward``. With probability ``slip_prob`` the action is
            replaced by a uniformly random one.
        enter_follows_step, interact_follows_step: bool[T], the cell types whose
            reward the legend left unset (the floor's, in the factories): theirs is
            step_reward's, and ``replace(step_reward=r)`` sets it to r too, as
            ``make(name, step_reward=r)`` does; one replaced with another value
            (``replace(enter_reward=...)``) stops following.
        switch_every: int32, switch_on_episodes, cycle_layouts: bool (see module doc).
    Compiled tables (``compile_tables``), one row per layout, state and action:
        next_cell: int32[L, S, A], reward: float32[L, S, A], terminal: bool[L, S, A];
        object_planes: float32[L, H, W, T - 1], one-hot cell types less the floor (the
        grid observation's object channels).
    ``replace`` of a raw field the tables are made from (all but ``slip_prob``, the
    time limit and the layout schedule, which ``step`` reads as they are) rebuilds the
    tables, under ``jit`` and ``vmap`` too: ``params.replace(wind=...)`` is a task with
    that wind. A ``replace`` that gives tables too keeps them.
    """

    cell_type: jax.Array
    start: jax.Array
    enter_reward: jax.Array
    enter_effect: jax.Array
    interact_reward: jax.Array
    interact_terminates: jax.Array
    blocks: jax.Array
    wind: jax.Array
    step_reward: jax.Array
    enter_follows_step: jax.Array
    interact_follows_step: jax.Array
    slip_prob: jax.Array
    switch_every: jax.Array
    switch_on_episodes: jax.Array
    cycle_layouts: jax.Array
    next_cell: jax.Array
    reward: jax.Array
    terminal: jax.Array
    object_planes: jax.Array
    max_steps_in_episode: jax.Array

    def recompiled(self) -> GridParams:
        """These params with their tables rebuilt from the raw fields."""
        return compile_tables(self)

    def in_layout(self, layout: int) -> GridParams:
        """These params with ``layout`` as their only layout (L = 1): every episode,
        reset included, is played in it — to judge a policy on the arrangement a
        changing task had switched to (``reset`` begins in layout 0). ``layout`` may be
        traced (vmapped over runs that ended in different layouts)."""
        num_layouts = self.cell_type.shape[0]
        dtype = getattr(layout, "dtype", None)
        if isinstance(layout, bool | float) or (
            dtype is not None and not jnp.issubdtype(dtype, jnp.integer)
        ):  # int() cut 1.5 to 1 after the range check; True indexed as a mask
            raise ValueError(f"layout must be a whole number in [0, {num_layouts}), got {layout!r}")
        try:
            concrete = int(layout)
        except TypeError:  # traced (a ConcretizationTypeError): checked by whoever chose it
            concrete = None
        if concrete is not None and not 0 <= concrete < num_layouts:
            raise ValueError(f"layout must be in [0, {num_layouts}), got {layout}")
        take = lambda table: table[layout][None]  # noqa: E731
        return self.replace(
            cell_type=take(self.cell_type),
            start=take(self.start),
            next_cell=take(self.next_cell),
            reward=take(self.reward),
            terminal=take(self.terminal),
            object_planes=take(self.object_planes),
        )


@struct.dataclass
class GridState(environment.EnvState):
    """cell: int32 state index; time: steps in this episode; episode: episodes begun
    since ``reset`` (0 for the first); total_steps: steps since ``reset``; layout: the
    layout index of this episode (chosen when it began)."""

    cell: jax.Array
    time: jax.Array
    episode: jax.Array
    total_steps: jax.Array
    layout: jax.Array


def parse_layout(ascii_map: str, legend: Sequence[CellType]) -> tuple[np.ndarray, int]:
    """Turn an ASCII map into (cell_type int32[H, W], start cell index).

    Leading/trailing blank lines and common indentation are ignored. ``S`` marks the
    start (a floor cell, the legend's first type). Raises ``ValueError`` naming the
    row and column of ragged rows, unknown symbols, or a missing/duplicate start, and
    naming the cell types of a legend whose symbols repeat, are spelt ``S`` or are
    not one character.
    """
    if not isinstance(ascii_map, str):
        raise ValueError(f"a layout is an ASCII map (a string), got {ascii_map!r}")
    rows = [line.strip() for line in ascii_map.strip("\n").splitlines()]
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError("empty map: give at least one row of symbols")
    width = len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"ragged map: row {r} has {len(row)} symbols, row 0 has {width}; "
                "every row must have the same width"
            )
    _check_legend(legend)
    index = {cell.symbol: i for i, cell in enumerate(legend)}
    known = "".join(sorted(index)) + START_SYMBOL
    cell_type = np.zeros((len(rows), width), dtype=np.int32)
    starts = []
    for r, row in enumerate(rows):
        for c, symbol in enumerate(row):
            if symbol == START_SYMBOL:
                starts.append(r * width + c)
            elif symbol in index:
                cell_type[r, c] = index[symbol]
            else:
                raise ValueError(
                    f"unknown symbol {symbol!r} at row {r}, column {c}; "
                    f"this legend knows {known!r} "
                    f"({', '.join(f'{k.symbol!r}={k.name}' for k in legend)}, 'S'=start)"
                )
    if len(starts) != 1:
        raise ValueError(f"a map needs exactly one start {START_SYMBOL!r}, found {len(starts)}")
    return cell_type, starts[0]


def _check_legend(legend: Sequence[CellType]) -> None:
    """ValueError unless every cell type has its own one-character symbol other than
    the start's: a repeated symbol would map every such cell to the last type named
    (lava drawn as a goal), and a type spelt ``S`` could never be placed."""
    if not legend:
        raise ValueError("the legend needs at least one cell type (the floor first)")
    owners: dict[str, list[str]] = {}
    for cell in legend:
        if not isinstance(cell.symbol, str) or len(cell.symbol) != 1:
            raise ValueError(
                f"cell type {cell.name!r} needs a one-character symbol, got {cell.symbol!r}"
            )
        if cell.symbol == START_SYMBOL:
            raise ValueError(
                f"cell type {cell.name!r} is spelt {START_SYMBOL!r}, the start's symbol in "
                "every map: give it another symbol"
            )
        owners.setdefault(cell.symbol, []).append(cell.name)
    repeated = {symbol: names for symbol, names in owners.items() if len(names) > 1}
    if repeated:
        said = "; ".join(f"{symbol!r} for {', '.join(names)}" for symbol, names in repeated.items())
        raise ValueError(f"cell types share a symbol ({said}): give each type its own")


def compile_tables(params: GridParams) -> GridParams:
    """Compute ``next_cell``, ``reward`` and ``terminal`` from the raw fields.

    Pure jnp, so it runs under ``jit`` and ``vmap`` (e.g. over layouts).
    """
    num_layouts, height, width = params.cell_type.shape
    num_actions = params.next_cell.shape[-1]
    rows, cols = jnp.divmod(jnp.arange(height * width), width)

    def layout_tables(cell_type, start):
        flat_type = cell_type.reshape(-1)
        move_row = jnp.clip(rows[:, None] + MOVES[:, 0], 0, height - 1)  # [S, 4]
        target_row = jnp.clip(
            rows[:, None] + MOVES[:, 0] - params.wind[cols][:, None], 0, height - 1
        )
        target_col = jnp.clip(cols[:, None] + MOVES[:, 1], 0, width - 1)
        target = target_row * width + target_col
        # Rows from the move's to the wind's end, in the target column: [H, S, 4].
        low, high = jnp.minimum(move_row, target_row), jnp.maximum(move_row, target_row)
        row = jnp.arange(height)[:, None, None]
        passed = (row >= low) & (row <= high)
        blocked = (passed & params.blocks[cell_type[:, target_col]]).any(axis=0)
        target = jnp.where(blocked, jnp.arange(height * width)[:, None], target)
        moved = target != jnp.arange(height * width)[:, None]
        target_type = flat_type[target]
        enter_reward = jnp.where(moved, params.enter_reward[target_type], params.step_reward)
        effect = jnp.where(moved, params.enter_effect[target_type], NO_EFFECT)
        next_cell = jnp.where(effect == RETURN_TO_START, start, target)
        terminal = effect == TERMINATE
        if num_actions == 5:
            here = jnp.arange(height * width)[:, None]
            next_cell = jnp.concatenate([next_cell, here], axis=1)
            enter_reward = jnp.concatenate(
                [enter_reward, params.interact_reward[flat_type][:, None]], axis=1
            )
            terminal = jnp.concatenate(
                [terminal, params.interact_terminates[flat_type][:, None]], axis=1
            )
        return next_cell.astype(jnp.int32), enter_reward.astype(jnp.float32), terminal

    next_cell, reward, terminal = jax.vmap(layout_tables)(params.cell_type, params.start)
    num_types = params.blocks.shape[0]
    planes = jax.nn.one_hot(params.cell_type, num_types, dtype=jnp.float32)[..., 1:]
    del num_layouts
    return params.replace(
        next_cell=next_cell, reward=reward, terminal=terminal, object_planes=planes
    )


_compile_tables_jit = jax.jit(compile_tables)


SCALAR_FIELDS = (
    "step_reward", "slip_prob", "switch_every", "switch_on_episodes", "cycle_layouts",
    "max_steps_in_episode",
)  # fmt: skip
TABLE_FIELDS = frozenset({"next_cell", "reward", "terminal", "object_planes"})
# The raw fields compile_tables reads; step reads the others as they are.
TABLE_SOURCES = frozenset({
    "cell_type", "start", "enter_reward", "enter_effect", "interact_reward",
    "interact_terminates", "blocks", "wind", "step_reward",
})  # fmt: skip


def _replace_and_recompile(params: GridParams, **changes) -> GridParams:
    """``GridParams.replace``: a change of a table source rebuilds the tables (unless
    the change gives them too), so no replaced field is silently ignored by ``step``."""
    unknown = changes.keys() - {field.name for field in dataclasses.fields(params)}
    if unknown:
        raise ValueError(f"GridParams has no field(s) {sorted(unknown)}")
    new = dataclasses.replace(params, **changes)
    if "wind" in changes:  # gathered by column, where an index past the end is clamped
        width, wind = new.cell_type.shape[-1], jnp.asarray(new.wind)
        if wind.shape != (width,):
            raise ValueError(f"wind needs one entry per column ({width}), got shape {wind.shape}")
        if not jnp.issubdtype(wind.dtype, jnp.integer):
            raise ValueError(f"wind must be whole numbers (an int array), got {new.wind!r}")
        new = dataclasses.replace(new, wind=wind.astype(jnp.int32))
    for rewards, follows in (
        ("enter_reward", "enter_follows_step"),
        ("interact_reward", "interact_follows_step"),
    ):
        if rewards in changes and follows not in changes:
            given, before = jnp.asarray(getattr(new, rewards)), getattr(params, rewards)
            if given.shape != before.shape:
                raise ValueError(
                    f"{rewards} needs one entry per cell type ({before.shape[-1]}), "
                    f"got shape {given.shape}"
                )
            still = getattr(params, follows) & (given == before)
            new = dataclasses.replace(new, **{follows: still})
    if "step_reward" in changes:
        new = dataclasses.replace(
            new,
            enter_reward=jnp.where(new.enter_follows_step, new.step_reward, new.enter_reward),
            interact_reward=jnp.where(
                new.interact_follows_step, new.step_reward, new.interact_reward
            ),
        )
    if changes.keys() & {"cell_type", "start"}:
        _check_cells(new)
    if changes.keys() & TABLE_SOURCES and not changes.keys() & TABLE_FIELDS:
        return _compile_tables_jit(new)
    return new


def _check_cells(params: GridParams) -> None:
    """ValueError for a concrete ``cell_type`` outside the legend's types or ``start``
    outside the grid or on a blocking cell (an observation outside the space, or an
    agent inside a wall). Traced values are not read, nor params stacked for ``vmap``
    (their shapes are ``GridWorld.check_params``'s to judge)."""
    try:
        cell_type, start = np.asarray(params.cell_type), np.asarray(params.start)
        blocks = np.asarray(params.blocks)
    except jax.errors.TracerArrayConversionError:
        return
    if cell_type.ndim != 3 or blocks.ndim != 1:
        return
    num_types = blocks.shape[0]
    if not np.issubdtype(cell_type.dtype, np.integer):
        raise ValueError(f"cell_type must be an int array, got dtype {cell_type.dtype}")
    outside = (cell_type < 0) | (cell_type >= num_types)
    if outside.any():
        layout, row, col = (int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"cell_type holds {cell_type[layout, row, col]} at layout {layout}, row {row}, "
            f"column {col}: cell types are the legend's indices, whole numbers in [0, {num_types})"
        )
    num_layouts, height, width = cell_type.shape
    if start.shape != (num_layouts,) or not np.issubdtype(start.dtype, np.integer):
        raise ValueError(
            f"start must be one cell index per layout (ints, shape ({num_layouts},)), got {start!r}"
        )
    if not np.all((start >= 0) & (start < height * width)):
        raise ValueError(f"start must be cell indices in [0, {height * width}), got {start!r}")
    walled = blocks[cell_type.reshape(num_layouts, -1)[np.arange(num_layouts), start]]
    if walled.any():
        layout = int(np.argmax(walled))
        row, col = divmod(int(start[layout]), width)
        raise ValueError(
            f"start {int(start[layout])} (row {row}, column {col}) of layout {layout} is a "
            "blocking cell: the agent would begin inside a wall"
        )


GridParams.replace = _replace_and_recompile


def whole_number(name: str, value, low: int | None = None) -> int:
    """``value`` as an int: an int, or a float with no fractional part (``1e3`` from a
    config file); a ValueError for anything else, or below ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"{name} must fit in an int32 ({INT32_MIN}..{INT32_MAX}), got {value!r}")
    return int(value)


def finite_number(name: str, value) -> float:
    """``value`` as a float: a finite int or float (a Python, NumPy or JAX scalar); a
    ValueError otherwise (a NaN reward would run a task whose episodes never score)."""
    try:
        number = np.asarray(value)
    except Exception:  # a traced value: grid tasks are made outside jit
        number = None
    if (
        number is None
        or number.shape != ()
        or not np.issubdtype(number.dtype, np.number)
        or not np.isfinite(number)
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(number)


def grid_params(
    layouts: Sequence[str],
    legend: Sequence[CellType],
    *,
    step_reward: float = -1.0,
    wind: Sequence[int] | None = None,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = 1000,
    switch_every: int | None = None,
    switch_on: Literal["steps", "episodes"] = "steps",
    cycle_layouts: bool = False,
) -> GridParams:
    """Build :class:`GridParams` from ASCII layouts of one size and a legend.

    The legend's first type is the floor. The interact action exists when any type
    has an interact reward or ends the episode on interaction.
    """
    if isinstance(layouts, str):
        raise ValueError(
            "layouts is a sequence of ASCII maps, got one string: pass [layout] for one map"
        )
    if not layouts:
        raise ValueError("give at least one layout")
    if switch_on not in ("steps", "episodes"):
        raise ValueError(f"switch_on must be 'steps' or 'episodes', got {switch_on!r}")
    step_reward = finite_number("step_reward", step_reward)
    if not 0.0 <= finite_number("slip_prob", slip_prob) <= 1.0:
        raise ValueError(f"slip_prob must be in [0, 1], got {slip_prob}")
    _check_legend(legend)
    for cell in legend:
        for field in ("enter_reward", "interact_reward"):
            if getattr(cell, field) is not None:
                finite_number(f"{cell.name}'s {field}", getattr(cell, field))
    max_steps_in_episode = whole_number("max_steps_in_episode", max_steps_in_episode, 1)
    if switch_every is not None:
        switch_every = whole_number("switch_every", switch_every, 1)
    if legend[0].blocks or legend[0].enter_effect != NO_EFFECT:
        raise ValueError("the legend's first cell type is the floor: it must be free")
    parsed = [parse_layout(layout, legend) for layout in layouts]
    shapes = {cell_type.shape for cell_type, _ in parsed}
    if len(shapes) != 1:
        raise ValueError(f"all layouts of a task must have one size, got shapes {sorted(shapes)}")
    ((height, width),) = shapes
    if wind is None:
        wind = np.zeros(width, np.int32)
    else:
        wind = np.asarray([whole_number("wind", w) for w in np.ravel(wind).tolist()], np.int32)
    if wind.shape != (width,):
        raise ValueError(f"wind needs one entry per column ({width}), got shape {wind.shape}")
    interactive = any(c.interact_reward is not None or c.interact_terminates for c in legend)
    num_actions = 5 if interactive else 4

    def reward_or_step(value):
        return step_reward if value is None else value

    params = GridParams(
        cell_type=jnp.asarray(np.stack([cell_type for cell_type, _ in parsed])),
        start=jnp.asarray([start for _, start in parsed], jnp.int32),
        enter_reward=jnp.asarray([reward_or_step(c.enter_reward) for c in legend], jnp.float32),
        enter_effect=jnp.asarray([c.enter_effect for c in legend], jnp.int32),
        interact_reward=jnp.asarray(
            [reward_or_step(c.interact_reward) for c in legend], jnp.float32
        ),
        interact_terminates=jnp.asarray([c.interact_terminates for c in legend], bool),
        blocks=jnp.asarray([c.blocks for c in legend], bool),
        wind=jnp.asarray(wind),
        step_reward=jnp.float32(step_reward),
        enter_follows_step=jnp.asarray([c.enter_reward is None for c in legend], bool),
        interact_follows_step=jnp.asarray([c.interact_reward is None for c in legend], bool),
        slip_prob=jnp.float32(slip_prob),
        switch_every=jnp.int32(switch_every or np.iinfo(np.int32).max),
        switch_on_episodes=jnp.bool_(switch_on == "episodes"),
        cycle_layouts=jnp.bool_(cycle_layouts),
        next_cell=jnp.zeros((len(layouts), height * width, num_actions), jnp.int32),
        reward=jnp.zeros((len(layouts), height * width, num_actions), jnp.float32),
        terminal=jnp.zeros((len(layouts), height * width, num_actions), bool),
        object_planes=jnp.zeros((len(layouts), height, width, len(legend) - 1), jnp.float32),
        max_steps_in_episode=jnp.int32(max_steps_in_episode),
    )
    return _compile_tables_jit(params)


def layout_index(params: GridParams, episode: jax.Array, total_steps: jax.Array) -> jax.Array:
    """Layout of an episode begun as number ``episode`` after ``total_steps`` steps."""
    num_layouts = params.cell_type.shape[0]
    if num_layouts == 1:
        return jnp.zeros_like(jnp.asarray(episode, jnp.int32))
    counter = jnp.where(params.switch_on_episodes, episode, total_steps)
    index = counter // params.switch_every
    return jnp.where(
        params.cycle_layouts, index % num_layouts, jnp.minimum(index, num_layouts - 1)
    ).astype(jnp.int32)


def _known_zero(value) -> bool:
    """True when ``value`` is a concrete (not traced) zero: then no code is staged for it."""
    if jnp.shape(value) != ():  # params stacked for vmap: check_params says so
        return False
    try:
        return not bool(value)
    except jax.errors.ConcretizationTypeError:
        return False


class GridWorld(environment.Environment[GridState, GridParams]):
    """A gymnax 1.0 environment over :class:`GridParams`.

    Static (shape-deciding) settings live on the instance: the grid size, the number
    of actions and cell types, how the agent is drawn, and the observation kind:
    ``"index"`` (int32 state index, for tabular agents) or ``"grid"`` (float32[H, W, T]:
    the agent, then one channel per non-floor cell type). The rest is in the params.
    """

    def __init__(
        self,
        name: str,
        legend: Sequence[CellType],
        params: GridParams,
        observation: Literal["index", "grid"] = "index",
        sprite: Literal["disk", "cat"] = "disk",
    ):
        if observation not in ("index", "grid"):
            raise ValueError(f"observation must be 'index' or 'grid', got {observation!r}")
        self._name = name
        self.legend = tuple(legend)
        self.observation = observation
        self.sprite = sprite
        self.num_layouts, self.height, self.width = params.cell_type.shape
        self._num_actions = params.next_cell.shape[-1]
        self._default_params = params

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> GridParams:
        return self._default_params

    @property
    def num_actions(self) -> int:
        return self._num_actions

    @property
    def num_states(self) -> int:
        return self.height * self.width

    @property
    def action_names(self) -> tuple[str, ...]:
        return ACTION_NAMES[: self._num_actions]

    def action_space(self, params: GridParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: GridParams | None = None) -> spaces.Space:
        if self.observation == "index":
            return spaces.Discrete(self.num_states)
        shape = (self.height, self.width, len(self.legend))
        return spaces.Box(0.0, 1.0, shape, jnp.float32)

    def state_space(self, params: GridParams | None = None) -> spaces.Space:
        return spaces.Dict(
            {
                "cell": spaces.Discrete(self.num_states),
                "time": spaces.Discrete(np.iinfo(np.int32).max),
            }
        )

    def _begin_episode(self, params: GridParams, episode, total_steps) -> GridState:
        layout = layout_index(params, episode, total_steps)
        return GridState(
            cell=params.start[layout],
            time=jnp.int32(0),
            episode=jnp.asarray(episode, jnp.int32),
            total_steps=jnp.asarray(total_steps, jnp.int32),
            layout=layout,
        )

    def get_obs(self, state: GridState, params: GridParams | None = None, key=None) -> jax.Array:
        if self.observation == "index":
            return state.cell
        params = self.default_params if params is None else params
        agent = jax.nn.one_hot(state.cell, self.num_states, dtype=jnp.float32)
        objects = params.object_planes[state.layout]
        return jnp.concatenate([agent.reshape(self.height, self.width, 1), objects], axis=-1)

    def check_params(self, params: GridParams) -> None:
        """ValueError unless ``params`` are of a grid of this one's size, cell types,
        actions and layouts (or one layout, ``in_layout``'s). Shapes only: free under
        ``jit``, and a task of the same shapes passes. Another task's params played that
        task here, with cell indices outside this grid's observation space."""
        if not isinstance(params, GridParams):
            raise ValueError(f"{self.name} takes GridParams, got {type(params).__name__}")
        layouts = params.cell_type.shape[0]
        if layouts not in (1, self.num_layouts):  # 1: ``in_layout``'s
            raise ValueError(
                f"{self.name}'s params hold {layouts} layouts, but the environment has "
                f"{self.num_layouts} (or 1, from params.in_layout): pass the params of the "
                "same task (env.default_params, or a replace of them)"
            )
        stacked = [
            f"{name} {jnp.shape(getattr(params, name))}"
            for name in SCALAR_FIELDS
            if jnp.shape(getattr(params, name)) != ()
        ]
        if stacked:
            raise ValueError(
                f"{self.name}'s params hold arrays where one value goes ({', '.join(stacked)}): "
                "params stacked for a sweep are played under jax.vmap, one point at a time"
            )
        got = (*params.cell_type.shape[1:], params.next_cell.shape[-1])
        got += (params.enter_reward.shape[-1],)
        want = (self.height, self.width, self._num_actions, len(self.legend))
        if got != want:
            shown = "{} x {} cells, {} actions and {} cell types".format
            raise ValueError(
                f"{self.name}'s params are of a grid of {shown(*got)}, but the environment "
                f"has {shown(*want)}: pass the params of the same task (env.default_params, "
                "or a replace of them)"
            )

    def reset_env(self, key: jax.Array, params: GridParams) -> tuple[jax.Array, GridState]:
        del key  # the start cell of each layout is fixed
        self.check_params(params)
        state = self._begin_episode(params, 0, 0)
        return self.get_obs(state, params), state

    def step_env(self, key, state: GridState, action, params: GridParams):
        return self._transition(key, state, action, params, not _known_zero(params.slip_prob))

    def _transition(self, key, state: GridState, action, params: GridParams, may_slip: bool):
        """``step_env``; ``may_slip`` False (slip_prob a concrete zero) stages no slip."""
        self.check_params(params)
        # Clipped: an index past the table's row would read another cell's row.
        # In the action's own dtype first: a uint32 past 2**31 cast to int32 is negative.
        action = jnp.clip(jnp.asarray(action), 0, self._num_actions - 1).astype(jnp.int32)

        def slip(action):
            u_slip, u_action = jax.random.uniform(key, (2,))
            random_action = jnp.minimum(u_action * self._num_actions, self._num_actions - 1)
            return jnp.where(u_slip < params.slip_prob, random_action.astype(jnp.int32), action)

        if may_slip:
            # A real branch when slip_prob is not batched: deterministic tasks draw nothing.
            action = jax.lax.cond(params.slip_prob > 0, slip, lambda a: a, action)
        index = (state.layout * self.num_states + state.cell) * self._num_actions + action
        next_state = GridState(
            cell=params.next_cell.reshape(-1)[index],
            time=state.time + 1,
            episode=state.episode,
            total_steps=state.total_steps + 1,
            layout=state.layout,
        )
        terminated = params.terminal.reshape(-1)[index]
        reward = params.reward.reshape(-1)[index]
        return self.get_obs(next_state, params), next_state, reward, terminated, {}

    def step(self, key, state: GridState, action, params: GridParams | None = None):
        """gymnax 1.0 ``step`` with auto-reset that keeps the episode and step counters.

        An action outside [0, A) is clipped into it. Returns (obs, state, reward,
        terminated, truncated, info); ``truncated`` is the
        time limit reached without termination; ``info["final_observation"]`` is the
        observation before any reset, to bootstrap from on truncation. Compiled (jit)
        with whether the task can slip decided here, where a concrete ``slip_prob``
        of 0 is still known to be 0: a deterministic task then stages no slip branch.
        """
        params = self.default_params if params is None else params
        return self._step(key, state, action, params, not _known_zero(params.slip_prob))

    @partial(jax.jit, static_argnames=("self", "may_slip"))
    def _step(self, key, state: GridState, action, params: GridParams, may_slip: bool):
        obs_step, state_step, reward, terminated, info = self._transition(
            key, state, action, params, may_slip
        )
        truncated = (state_step.time >= params.max_steps_in_episode) & ~terminated
        done = terminated | truncated
        state_reset = self._begin_episode(params, state.episode + 1, state_step.total_steps)
        state_next = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_reset, state_step)
        obs = self.get_obs(state_next, params)
        info = {
            **info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_step,
            "discount": 1.0 - terminated.astype(jnp.float32),
        }
        return obs, state_next, reward, terminated, truncated, info

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: GridParams | None = None):
        params = self.default_params if params is None else params
        return self.reset_env(key, params)

    def render(self, state: GridState, params: GridParams | None = None, cell_px: int = 24):
        """RGB uint8 image of the state (see :func:`jrl.envs.render.render`)."""
        from jrl.envs.render import render

        return render(self, state, params, cell_px)

    def greedy_path(self, params: GridParams, q_values: jax.Array, layout: int = 0, max_len=None):
        """Cells visited by the greedy policy from the start (host-side helper)."""
        next_cell = np.asarray(params.next_cell[layout])
        terminal = np.asarray(params.terminal[layout])
        q = np.asarray(q_values)
        cell = int(params.start[layout])
        path = [cell]
        for _ in range(max_len or 4 * self.num_states):
            action = int(np.argmax(q[cell]))
            if terminal[cell, action]:
                return path, True
            cell = int(next_cell[cell, action])
            path.append(cell)
        return path, False

    def greedy_path_lengths(self, params: GridParams, q_values, layout: int = 0) -> list[int]:
        """Steps the greedy policy of each Q-table in ``q_values`` float[R, S, A] takes
        from the start to the end of an episode in ``layout``; -1 where it never ends
        one (it loops: :meth:`greedy_path` gives up after 4 * num_states steps)."""
        lengths = []
        for q in np.asarray(q_values):
            path, reached = self.greedy_path(params, q, layout)
            lengths.append(len(path) if reached else -1)
        return lengths


def describe(env: GridWorld, params: Any = None) -> str:
    """The layouts as text, one block per layout."""
    params = env.default_params if params is None else params
    blocks = []
    for layout in range(env.num_layouts):
        cell_type = np.asarray(params.cell_type[layout])
        chars = np.array([c.symbol for c in env.legend])[cell_type]
        start = int(params.start[layout])
        chars[start // env.width, start % env.width] = START_SYMBOL
        blocks.append("\n".join("".join(row) for row in chars))
    return "\n\n".join(blocks)
