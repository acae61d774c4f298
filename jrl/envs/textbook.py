"""The gridworlds of Sutton & Barto (2nd ed.), chapters 6 and 8, on the grid engine.

Each factory returns ``(env, params)`` and takes the engine's settings as keyword
overrides. The specifications are the book's (Sutton & Barto, 2nd ed.): Windy Gridworld
(Example 6.5), Cliff Walking (Example 6.6), Dyna Maze (Example 8.1), Blocking and
Shortcut mazes (Examples 8.2, 8.3). None of them has a time limit in the book; the
default ``max_steps_in_episode`` is far above any episode they produce.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from jrl.envs.grid import (
    RETURN_TO_START,
    TERMINATE,
    CellType,
    GridWorld,
    finite_number,
    grid_params,
    whole_number,
)

FLOOR = CellType(".", "floor", (235, 235, 228))
WALL = CellType("#", "wall", (60, 60, 70), blocks=True)
CLIFF = CellType("C", "cliff", (40, 40, 40), enter_reward=-100.0, enter_effect=RETURN_TO_START)
NO_TIME_LIMIT = 1_000_000

Observation = Literal["index", "grid"]


def goal(reward: float | None = None) -> CellType:
    """A goal cell that ends the episode on entry (``None``: the step reward)."""
    if reward is not None:
        reward = finite_number("goal_reward", reward)
    return CellType("G", "goal", (90, 180, 90), enter_reward=reward, enter_effect=TERMINATE)


WINDY_LAYOUT = """
..........
..........
..........
S......G..
..........
..........
..........
"""
WINDY_WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)

CLIFF_LAYOUT = """
............
............
............
SCCCCCCCCCCG
"""

DYNA_MAZE_LAYOUT = """
.......#G
..#....#.
S.#....#.
..#......
.....#...
.........
"""

BLOCKING_LAYOUTS = (
    """
    ........G
    .........
    .........
    ########.
    .........
    ...S.....
    """,
    """
    ........G
    .........
    .........
    .########
    .........
    ...S.....
    """,
)

SHORTCUT_LAYOUTS = (
    """
    ........G
    .........
    .........
    .########
    .........
    ...S.....
    """,
    """
    ........G
    .........
    .........
    .#######.
    .........
    ...S.....
    """,
)


def _make(name, layouts: Sequence[str], legend, observation: Observation, **settings):
    params = grid_params(layouts, legend, **settings)
    return GridWorld(name, legend, params, observation=observation), params


def windy_gridworld(
    *,
    observation: Observation = "index",
    wind: Sequence[int] = WINDY_WIND,
    step_reward: float = -1.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = NO_TIME_LIMIT,
    layout: str = WINDY_LAYOUT,
):
    """Example 6.5: 7x10, upward wind by column, -1 per step, undiscounted."""
    return _make(
        "WindyGridworld-v0",
        [layout],
        (FLOOR, WALL, goal()),
        observation,
        wind=wind,
        step_reward=step_reward,
        slip_prob=slip_prob,
        max_steps_in_episode=max_steps_in_episode,
    )


def cliff_walking(
    *,
    observation: Observation = "index",
    step_reward: float = -1.0,
    cliff_reward: float = -100.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = NO_TIME_LIMIT,
    layout: str = CLIFF_LAYOUT,
):
    """Example 6.6: 4x12; the cliff gives -100 and returns the agent to the start."""
    cliff = dataclasses.replace(CLIFF, enter_reward=cliff_reward)
    return _make(
        "CliffWalking-v0",
        [layout],
        (FLOOR, WALL, goal(), cliff),
        observation,
        step_reward=step_reward,
        slip_prob=slip_prob,
        max_steps_in_episode=max_steps_in_episode,
    )


def _maze(name, layouts, observation, goal_reward, step_reward, slip_prob, max_steps, **switch):
    return _make(
        name,
        layouts,
        (FLOOR, WALL, goal(goal_reward)),
        observation,
        step_reward=step_reward,
        slip_prob=slip_prob,
        max_steps_in_episode=max_steps,
        **switch,
    )


def dyna_maze(
    *,
    observation: Observation = "index",
    goal_reward: float = 1.0,
    step_reward: float = 0.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = NO_TIME_LIMIT,
    layout: str = DYNA_MAZE_LAYOUT,
):
    """Example 8.1: 6x9 maze, +1 on reaching the goal, 0 otherwise."""
    return _maze(
        "DynaMaze-v0",
        [layout],
        observation,
        goal_reward,
        step_reward,
        slip_prob,
        max_steps_in_episode,
    )


def blocking_maze(
    *,
    observation: Observation = "index",
    switch_after: int = 1000,
    goal_reward: float = 1.0,
    step_reward: float = 0.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = NO_TIME_LIMIT,
    layouts: Sequence[str] = BLOCKING_LAYOUTS,
):
    """Example 8.2: the wall in row 3 moves from columns 0-7 to 1-8 after 1000 steps."""
    whole_number("switch_after", switch_after, 1)
    return _maze(
        "BlockingMaze-v0",
        layouts,
        observation,
        goal_reward,
        step_reward,
        slip_prob,
        max_steps_in_episode,
        switch_every=switch_after,
        switch_on="steps",
    )


def shortcut_maze(
    *,
    observation: Observation = "index",
    switch_after: int = 3000,
    goal_reward: float = 1.0,
    step_reward: float = 0.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = NO_TIME_LIMIT,
    layouts: Sequence[str] = SHORTCUT_LAYOUTS,
):
    """Example 8.3: the wall in row 3 (columns 1-8) opens at column 8 after 3000 steps."""
    whole_number("switch_after", switch_after, 1)
    return _maze(
        "ShortcutMaze-v0",
        layouts,
        observation,
        goal_reward,
        step_reward,
        slip_prob,
        max_steps_in_episode,
        switch_every=switch_after,
        switch_on="steps",
    )
