"""The cat room: a cat learns to scratch its posts instead of the furniture.

Actions are up, down, left, right and scratch. The cat may walk anywhere but the
walls (it jumps on the sofa); scratching the cell it stands on ends the episode
with a treat on a post (success) or a penalty on the furniture or the drapes
(failure); scratching bare floor does nothing. The time limit truncates.

The default room is laid out so that exploration matters: a rug post with a
small treat three steps from the start, and a tall wall post with a large treat in
the far corner, past the furniture. An agent that exploits too early settles for
the rug; one that explores finds the tall post.

The dynamic room moves the posts and furniture to the next of several
arrangements every ``switch_every`` episodes (cycling), so a learner must keep
adapting — the room that "changes every few hours".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from jrl.envs.grid import CellType, GridWorld, finite_number, grid_params

SMALL_TREAT, LARGE_TREAT, PENALTY = 1.0, 10.0, -5.0


def cat_room_legend(
    small_treat: float = SMALL_TREAT, large_treat: float = LARGE_TREAT, penalty: float = PENALTY
) -> tuple[CellType, ...]:
    small_treat = finite_number("small_treat", small_treat)
    large_treat = finite_number("large_treat", large_treat)
    penalty = finite_number("penalty", penalty)
    return (
        CellType(".", "floor", (236, 228, 214)),
        CellType("#", "wall", (70, 66, 62), blocks=True),
        CellType(
            "r", "rug post", (214, 178, 120), interact_reward=small_treat, interact_terminates=True
        ),
        CellType(
            "P", "tall post", (150, 95, 40), interact_reward=large_treat, interact_terminates=True
        ),
        CellType(
            "F", "furniture", (70, 110, 170), interact_reward=penalty, interact_terminates=True
        ),
        CellType("D", "drapes", (150, 80, 150), interact_reward=penalty, interact_terminates=True),
    )


CAT_ROOM_LAYOUT = """
###########
#S..r.....#
#.........#
#..FF..D..#
#......F.P#
#.D.......#
###########
"""

# Same walls and start; posts and furniture moved. The rug stays near the start and
# the tall post far from it, so each change makes the learned route wrong.
CAT_ROOM_ARRANGEMENTS = (
    CAT_ROOM_LAYOUT,
    """
    ###########
    #S......FP#
    #..D......#
    #r...FF...#
    #.........#
    #....D..F.#
    ###########
    """,
    """
    ###########
    #S.F....D.#
    #..F......#
    #.r...FF..#
    #.........#
    #..D....P.#
    ###########
    """,
    """
    ###########
    #SF.......#
    #rF..D....#
    #....FF...#
    #.........#
    #.D....F.P#
    ###########
    """,
)


def cat_room(
    *,
    observation: Literal["index", "grid"] = "index",
    small_treat: float = SMALL_TREAT,
    large_treat: float = LARGE_TREAT,
    penalty: float = PENALTY,
    step_reward: float = 0.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = 100,
    layout: str = CAT_ROOM_LAYOUT,
):
    """The static cat room (7x11 with walls): ``(env, params)``."""
    legend = cat_room_legend(small_treat, large_treat, penalty)
    params = grid_params(
        [layout],
        legend,
        step_reward=step_reward,
        slip_prob=slip_prob,
        max_steps_in_episode=max_steps_in_episode,
    )
    return GridWorld("CatRoom-v0", legend, params, observation=observation, sprite="cat"), params


def cat_room_dynamic(
    *,
    observation: Literal["index", "grid"] = "index",
    switch_every: int = 100,
    small_treat: float = SMALL_TREAT,
    large_treat: float = LARGE_TREAT,
    penalty: float = PENALTY,
    step_reward: float = 0.0,
    slip_prob: float = 0.0,
    max_steps_in_episode: int = 100,
    layouts: Sequence[str] = CAT_ROOM_ARRANGEMENTS,
):
    """The cat room whose arrangement changes every ``switch_every`` episodes."""
    legend = cat_room_legend(small_treat, large_treat, penalty)
    params = grid_params(
        layouts,
        legend,
        step_reward=step_reward,
        slip_prob=slip_prob,
        max_steps_in_episode=max_steps_in_episode,
        switch_every=switch_every,
        switch_on="episodes",
        cycle_layouts=True,
    )
    return GridWorld(
        "CatRoomDynamic-v0", legend, params, observation=observation, sprite="cat"
    ), params
