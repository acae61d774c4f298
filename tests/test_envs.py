"""Tests of the grid engine, the textbook and cat-room tasks, the registry and rendering.

Expected values are computed by hand from the specifications in ``shared/REFERENCE.md``
(Sutton & Barto, Examples 6.5, 6.6, 8.1-8.3), from a cat room owned by these tests
(``TEST_ROOM``) and from the ASCII maps the cat-room tasks ship. Conventions: cells
(row, col), row 0 at the top; actions 0 up, 1 down, 2 left, 3 right, 4 scratch.
Environments are made once per task (``env_of``) so that each compiles once: the
whole file must stay quick on a 2-core machine.
"""

from __future__ import annotations

import functools
from collections import deque

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.envs import make, registered_envs, render, rollout_frames, save_gif
from jrl.envs.cat_room import CAT_ROOM_ARRANGEMENTS, CAT_ROOM_LAYOUT
from jrl.envs.grid import RETURN_TO_START, TERMINATE, CellType, GridWorld, grid_params, layout_index
from jrl.envs.registry import REGISTRY
from jrl.envs.render import rollout_states

UP, DOWN, LEFT, RIGHT, SCRATCH = 0, 1, 2, 3, 4
KEY = jax.random.key(0)

# Cat rooms owned by the tests (the 7x11 size and walls of the task's rooms), so that
# hand-computed positions stay put when the task's own arrangements change.
TEST_ROOM = """
###########
#S.r..F...#
#.....FD..#
#..FF.....#
#.....FF..#
#..D....FP#
###########
"""
TEST_ROOM_2 = """
###########
#S....D..P#
#.F.......#
#..r...FF.#
#.F.......#
#....D....#
###########
"""


@functools.cache
def _base_env(name: str, observation: str):
    return make(name, observation=observation)[0]


@functools.cache
def env_of(name: str, observation: str = "index", **overrides):
    """(env, params) as ``make`` gives them, with one env instance per task and
    observation kind, so that jitted functions compile once per task: settings that
    change only the params (rewards, slip, time limit, layouts of the same size) then
    reuse the compiled ``step``, as the design intends."""
    env, params = make(name, observation=observation, **overrides)
    base = _base_env(name, observation)
    same_shapes = jax.tree.map(
        lambda a, b: a.shape == b.shape and a.dtype == b.dtype, params, base.default_params
    )
    return (base if all(jax.tree.leaves(same_shapes)) else env), params


def state_at(env, params, row: int, col: int):
    """The reset state with the agent moved to (row, col)."""
    _, state = env.reset(KEY, params)
    return state.replace(cell=jnp.int32(row * env.width + col))


def step_from(env, params, row, col, action, key=KEY):
    """One public ``step`` from (row, col): (cell before any reset, reward, term, trunc)."""
    _, _, reward, terminated, truncated, info = env.step(
        key, state_at(env, params, row, col), action, params
    )
    cell = int(info["final_observation"])
    return divmod(cell, env.width), float(reward), bool(terminated), bool(truncated)


def rollout(env, params, key, num_steps, reset=None, step=None):
    """Random actions (NumPy, seeded by ``key``) for ``num_steps`` steps of the jitted
    ``step`` with keys ``fold_in(key, t)``, in a Python loop so that the compiled step
    is reused: (obs, reward, terminated, truncated, cell), each stacked over time.
    ``reset``/``step`` default to the env's."""
    reset, step = reset or env.reset, step or env.step
    seed = int(np.asarray(jax.random.key_data(key)).sum())
    actions = np.random.default_rng(seed).integers(env.num_actions, size=num_steps).tolist()
    _, state = reset(key, params)
    out = []
    for t, action in enumerate(actions):
        key_step = jax.random.fold_in(key, t)
        obs, state, reward, terminated, truncated, _ = step(key_step, state, action, params)
        out.append((obs, reward, terminated, truncated, state.cell))
    return jax.tree.map(lambda *leaves: np.stack(leaves), *out)


def shortest_path(next_cell: np.ndarray, terminal: np.ndarray, start: int, reward=None) -> int:
    """Fewest actions from ``start`` to a terminal transition (BFS over the tables); to
    one that pays ``reward`` where given (``reward`` = (table, amount))."""
    ends = terminal if reward is None else terminal & (reward[0] == reward[1])
    dist = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if ends[cell].any():
            return dist[cell] + 1
        for nxt in next_cell[cell]:
            if int(nxt) not in dist:
                dist[int(nxt)] = dist[cell] + 1
                queue.append(int(nxt))
    raise AssertionError("no terminal transition is reachable from the start")


def value_iteration(next_cell, reward, terminal, gamma, iters=500):
    """Optimal state values of a tabular MDP (deterministic transitions)."""
    values = np.zeros(next_cell.shape[0])
    for _ in range(iters):
        values = np.max(reward + gamma * (1.0 - terminal) * values[next_cell], axis=1)
    return values


# --------------------------------------------------------------------------- mechanics

# (env id, overrides, from (row, col), action, to (row, col), reward, terminated)
WALL_ABOVE = "..........\n...#......\nS.........\n.........G"
WALL_RIGHT = "..........\n..........\nS...#.....\n.........G"
WIND_2_AT_3 = (0, 0, 0, 2, 0, 0, 0, 0, 0, 0)
WIND_1_AT_3 = (0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
MECHANICS = [
    # Windy Gridworld: wind [0,0,0,1,1,1,2,2,1,0], taken from the column moved FROM.
    ("WindyGridworld-v0", {}, (3, 6), RIGHT, (1, 7), -1.0, False),
    ("WindyGridworld-v0", {}, (3, 5), RIGHT, (2, 6), -1.0, False),
    ("WindyGridworld-v0", {}, (3, 2), RIGHT, (3, 3), -1.0, False),  # column 3 windy, 2 not
    ("WindyGridworld-v0", {}, (3, 8), LEFT, (2, 7), -1.0, False),
    ("WindyGridworld-v0", {}, (3, 9), LEFT, (3, 8), -1.0, False),
    ("WindyGridworld-v0", {}, (5, 6), DOWN, (4, 6), -1.0, False),
    ("WindyGridworld-v0", {}, (0, 6), RIGHT, (0, 7), -1.0, False),  # clipped at the top
    ("WindyGridworld-v0", {}, (1, 7), UP, (0, 7), -1.0, False),  # 1 - 1 - 2 -> row 0
    ("WindyGridworld-v0", {}, (0, 0), UP, (0, 0), -1.0, False),  # off the grid
    ("WindyGridworld-v0", {}, (6, 9), RIGHT, (6, 9), -1.0, False),
    ("WindyGridworld-v0", {}, (4, 8), LEFT, (3, 7), -1.0, True),  # pushed into the goal
    # Wind does not carry the agent through a wall: up from (2, 3) with wind 2 would
    # pass the wall at (1, 3); right from (2, 3) into the wall at (2, 4) would be blown
    # past it to (1, 4). Both steps are blocked.
    (
        "WindyGridworld-v0",
        {"layout": WALL_ABOVE, "wind": WIND_2_AT_3},
        (2, 3),
        UP,
        (2, 3),
        -1.0,
        False,
    ),
    (
        "WindyGridworld-v0",
        {"layout": WALL_RIGHT, "wind": WIND_1_AT_3},
        (2, 3),
        RIGHT,
        (2, 3),
        -1.0,
        False,
    ),
    # A wall the wind does not pass stops nothing: from (3, 3) up with wind 1, to (1, 3).
    (
        "WindyGridworld-v0",
        {"layout": WALL_RIGHT, "wind": WIND_1_AT_3},
        (3, 3),
        UP,
        (1, 3),
        -1.0,
        False,
    ),
    # Cliff Walking: the cliff gives -100 and returns to the start, episode goes on.
    ("CliffWalking-v0", {}, (3, 0), RIGHT, (3, 0), -100.0, False),
    ("CliffWalking-v0", {}, (2, 5), DOWN, (3, 0), -100.0, False),
    ("CliffWalking-v0", {}, (2, 10), DOWN, (3, 0), -100.0, False),
    ("CliffWalking-v0", {}, (3, 0), UP, (2, 0), -1.0, False),
    ("CliffWalking-v0", {}, (3, 0), LEFT, (3, 0), -1.0, False),
    ("CliffWalking-v0", {}, (0, 11), RIGHT, (0, 11), -1.0, False),
    ("CliffWalking-v0", {}, (2, 11), DOWN, (3, 11), -1.0, True),
    ("CliffWalking-v0", {"cliff_reward": -7.0}, (2, 3), DOWN, (3, 0), -7.0, False),
    # Dyna Maze: walls (1,2) (2,2) (3,2) (0,7) (1,7) (2,7) (4,5); +1 at the goal, else 0.
    ("DynaMaze-v0", {}, (2, 1), RIGHT, (2, 1), 0.0, False),
    ("DynaMaze-v0", {}, (0, 6), RIGHT, (0, 6), 0.0, False),
    ("DynaMaze-v0", {}, (4, 4), RIGHT, (4, 4), 0.0, False),
    ("DynaMaze-v0", {}, (3, 7), UP, (3, 7), 0.0, False),
    ("DynaMaze-v0", {}, (0, 0), UP, (0, 0), 0.0, False),
    ("DynaMaze-v0", {}, (5, 8), DOWN, (5, 8), 0.0, False),
    ("DynaMaze-v0", {}, (2, 0), RIGHT, (2, 1), 0.0, False),
    ("DynaMaze-v0", {}, (1, 8), UP, (0, 8), 1.0, True),
    # Dyna Maze, Figure 8.2: the walls not met above, each from a side it blocks.
    ("DynaMaze-v0", {}, (1, 1), RIGHT, (1, 1), 0.0, False),  # (1, 2)
    ("DynaMaze-v0", {}, (3, 1), RIGHT, (3, 1), 0.0, False),  # (3, 2)
    ("DynaMaze-v0", {}, (4, 2), UP, (4, 2), 0.0, False),  # (3, 2) from below
    ("DynaMaze-v0", {}, (1, 6), RIGHT, (1, 6), 0.0, False),  # (1, 7)
    ("DynaMaze-v0", {}, (2, 8), LEFT, (2, 8), 0.0, False),  # (2, 7)
    ("DynaMaze-v0", {}, (3, 7), RIGHT, (3, 8), 0.0, False),  # row 3 of column 7 is open
    ("DynaMaze-v0", {}, (4, 6), LEFT, (4, 6), 0.0, False),  # (4, 5) from the right
    # Blocking and Shortcut mazes (Figures 8.4, 8.5): as the Dyna maze, +1 on reaching
    # the goal (0, 8) and 0 for every other step, a bump into the wall included.
    ("BlockingMaze-v0", {}, (0, 7), RIGHT, (0, 8), 1.0, True),
    ("BlockingMaze-v0", {}, (5, 3), UP, (4, 3), 0.0, False),
    ("BlockingMaze-v0", {}, (4, 3), UP, (4, 3), 0.0, False),
    ("ShortcutMaze-v0", {}, (1, 8), UP, (0, 8), 1.0, True),
    ("ShortcutMaze-v0", {}, (5, 3), RIGHT, (5, 4), 0.0, False),
    ("ShortcutMaze-v0", {}, (4, 8), UP, (4, 8), 0.0, False),
    # Cat room (TEST_ROOM): r (1,3) rug post, P (5,9) tall post, F (1,6), D (2,7), (5,3).
    ("CatRoom-v0", {"layout": TEST_ROOM}, (1, 3), SCRATCH, (1, 3), 1.0, True),
    ("CatRoom-v0", {"layout": TEST_ROOM}, (5, 9), SCRATCH, (5, 9), 10.0, True),
    ("CatRoom-v0", {"layout": TEST_ROOM}, (1, 6), SCRATCH, (1, 6), -5.0, True),
    ("CatRoom-v0", {"layout": TEST_ROOM}, (2, 7), SCRATCH, (2, 7), -5.0, True),
    ("CatRoom-v0", {"layout": TEST_ROOM}, (5, 3), SCRATCH, (5, 3), -5.0, True),
    ("CatRoom-v0", {"layout": TEST_ROOM}, (1, 2), SCRATCH, (1, 2), 0.0, False),
    (
        "CatRoom-v0",
        {"layout": TEST_ROOM},
        (1, 5),
        RIGHT,
        (1, 6),
        0.0,
        False,
    ),  # onto furniture: no end
    ("CatRoom-v0", {"layout": TEST_ROOM}, (1, 1), UP, (1, 1), 0.0, False),  # wall
    ("CatRoom-v0", {"layout": TEST_ROOM}, (1, 1), LEFT, (1, 1), 0.0, False),  # wall
    (
        "CatRoom-v0",
        {"layout": TEST_ROOM, "step_reward": -0.25},
        (1, 2),
        SCRATCH,
        (1, 2),
        -0.25,
        False,
    ),
    (
        "CatRoom-v0",
        {"layout": TEST_ROOM, "step_reward": -0.25},
        (1, 5),
        RIGHT,
        (1, 6),
        -0.25,
        False,
    ),
    ("CatRoom-v0", {"layout": TEST_ROOM, "step_reward": -0.25}, (1, 3), SCRATCH, (1, 3), 1.0, True),
    (
        "CatRoom-v0",
        {"layout": TEST_ROOM, "large_treat": 3.0, "penalty": -2.0},
        (5, 9),
        SCRATCH,
        (5, 9),
        3.0,
        True,
    ),
    (
        "CatRoom-v0",
        {"layout": TEST_ROOM, "large_treat": 3.0, "penalty": -2.0},
        (2, 7),
        SCRATCH,
        (2, 7),
        -2.0,
        True,
    ),
]


@pytest.mark.parametrize(
    "name, overrides, source, action, target, reward, terminated",
    MECHANICS,
    ids=[f"{m[0]}-{m[2][0]}-{m[2][1]}-a{m[3]}-{i}" for i, m in enumerate(MECHANICS)],
)
def test_step_mechanics(name, overrides, source, action, target, reward, terminated):
    env, params = env_of(name, **overrides)
    cell, got_reward, got_terminated, got_truncated = step_from(env, params, *source, action)
    assert cell == target
    assert got_reward == pytest.approx(reward)
    assert got_terminated is terminated
    assert got_truncated is False


def test_cliff_keeps_episode_going():
    """Falling into the cliff: same episode, clock still runs, back at the start."""
    env, params = env_of("CliffWalking-v0")
    obs, state, reward, terminated, truncated, _ = env.step(
        KEY, state_at(env, params, 2, 4), DOWN, params
    )
    assert int(obs) == int(params.start[0]) == 3 * 12 + 0
    assert float(reward) == -100.0
    assert int(state.episode) == 0 and int(state.time) == 1


def test_wind_table_matches_spec():
    """Moving left/right from row 3 lands ``wind[col]`` rows up, for every column."""
    env, params = env_of("WindyGridworld-v0")
    wind = [0, 0, 0, 1, 1, 1, 2, 2, 1, 0]
    np.testing.assert_array_equal(np.asarray(params.wind), wind)
    for col in range(1, 9):
        for action, d_col in ((LEFT, -1), (RIGHT, 1)):
            target = (3 - wind[col]) * env.width + col + d_col
            assert int(params.next_cell[0, 3 * env.width + col, action]) == target


def text_rows(layout: str) -> list[str]:
    return [row.strip() for row in layout.strip().splitlines() if row.strip()]


@pytest.mark.parametrize(
    "name, layouts",
    [("CatRoom-v0", [CAT_ROOM_LAYOUT]), ("CatRoomDynamic-v0", CAT_ROOM_ARRANGEMENTS)],
)
def test_cat_room_tables_match_the_maps(name, layouts):
    """Every arrangement the task ships, read from its ASCII map: scratching a post,
    the furniture or the drapes ends the episode with its reward, scratching the floor
    gives the step reward and goes on, walking onto furniture or drapes goes on."""
    env, params = env_of(name, step_reward=-0.5)
    scratch = {"r": (1.0, True), "P": (10.0, True), "F": (-5.0, True), "D": (-5.0, True)}
    next_cell, reward, terminal = map(
        np.asarray, (params.next_cell, params.reward, params.terminal)
    )
    for layout, text in enumerate(layouts):
        rows = text_rows(text)
        assert (len(rows), len(rows[0])) == (env.height, env.width)
        for row, line in enumerate(rows):
            for col, symbol in enumerate(line):
                if symbol == "#":
                    continue
                cell = row * env.width + col
                expected = scratch.get(symbol, (-0.5, False))
                assert (reward[layout, cell, SCRATCH], terminal[layout, cell, SCRATCH]) == expected
                assert next_cell[layout, cell, SCRATCH] == cell
                for action, (d_row, d_col) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
                    target = rows[row + d_row][col + d_col]
                    lands = cell if target == "#" else cell + d_row * env.width + d_col
                    assert next_cell[layout, cell, action] == lands
                    assert not terminal[layout, cell, action]
                    assert reward[layout, cell, action] == -0.5


# ------------------------------------------------------------------------------- slip


@functools.cache
def batched_step(env):
    """``env.step`` vmapped over keys (state, action and params shared), jitted once."""
    return jax.jit(jax.vmap(env.step, in_axes=(0, None, None, None)))


SLIP_KEYS = jax.random.split(jax.random.key(1), 4000)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("given", [UP, SCRATCH])
def test_slip_one_is_uniform(given):
    """With slip_prob 1 the action taken is uniform whatever the action given: from a
    cell whose five actions lead to five different cells, each outcome has frequency
    about 1/5 over 4000 keys (binomial sd 0.006)."""
    env, params = env_of("CatRoom-v0", layout=TEST_ROOM, slip_prob=1.0)
    state = state_at(env, params, 2, 2)
    outcomes_by_action = np.asarray(params.next_cell)[0, int(state.cell)]  # [A]
    assert len(set(outcomes_by_action.tolist())) == env.num_actions == 5
    info = batched_step(env)(SLIP_KEYS, state, given, params)[5]
    outcomes = np.asarray(info["final_observation"])
    assert np.isin(outcomes, outcomes_by_action).all()
    freq = np.array([(outcomes == o).mean() for o in outcomes_by_action])
    np.testing.assert_allclose(freq, 1.0 / env.num_actions, atol=0.03)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("slip_prob", [0.0, 0.1, 0.5])
def test_slip_partial_and_zero(slip_prob):
    """P(intended outcome) = 1 - p + p / A, a small p (0.1: 0.92) as well as a large
    one; with p = 0 every key gives the same cell."""
    env, params = env_of("CatRoom-v0", layout=TEST_ROOM, slip_prob=slip_prob)
    state = state_at(env, params, 2, 2)
    for action in range(env.num_actions):
        info = batched_step(env)(SLIP_KEYS, state, action, params)[5]
        outcomes = np.asarray(info["final_observation"])
        intended = int(np.asarray(params.next_cell)[0, int(state.cell), action])
        if slip_prob == 0.0:
            assert (outcomes == intended).all()
        else:
            p_intended = 1 - slip_prob + slip_prob / env.num_actions
            assert (outcomes == intended).mean() == pytest.approx(p_intended, abs=0.03)


def test_deterministic_task_stages_no_slip_branch():
    """``step`` with concrete params of slip_prob 0 traces no ``cond`` (nothing drawn),
    with slip_prob > 0 it does; a traced slip_prob of 0 (params swept under vmap) keeps
    the branch and steps exactly as the concrete 0 does."""
    env, params = env_of("CatRoom-v0", layout=TEST_ROOM)
    slippery = params.replace(slip_prob=jnp.float32(0.5))
    state = state_at(env, params, 2, 2)
    key = jax.random.key(0)

    def staged(params):
        return str(jax.make_jaxpr(lambda k: env.step(k, state, UP, params))(key))

    assert "cond" not in staged(params)
    assert "cond" in staged(slippery)
    swept = jax.vmap(lambda p: env.step(key, state, UP, p))
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    got = jax.tree.map(lambda x: x[1], swept(batched))
    jax.tree.map(np.testing.assert_array_equal, got, env.step(key, state, UP, params))


# ------------------------------------------------------------- termination/truncation


@pytest.mark.parametrize("observation", ["index", "grid"])
def test_truncation_at_time_limit(observation):
    env, params = env_of("WindyGridworld-v0", max_steps_in_episode=3, observation=observation)
    obs0, state = env.reset(KEY, params)
    expected_cells = [31, 32, 33]  # right along row 3; wind of columns 0-2 is 0
    for i, cell in enumerate(expected_cells):
        obs, state, reward, terminated, truncated, info = env.step(KEY, state, RIGHT, params)
        last = i == len(expected_cells) - 1
        assert bool(truncated) is last
        assert bool(terminated) is False
        assert bool(info["truncated"]) is last and bool(info["terminated"]) is False
        assert float(info["discount"]) == 1.0
        assert float(reward) == -1.0
        final = np.asarray(info["final_observation"])
        if observation == "index":
            assert int(final) == cell
        else:
            assert final[cell // 10, cell % 10, 0] == 1.0 and final[..., 0].sum() == 1.0
        if last:
            np.testing.assert_array_equal(np.asarray(obs), np.asarray(obs0))  # start again
            assert not np.array_equal(final, np.asarray(obs0))
            assert int(state.time) == 0 and int(state.cell) == 30
        else:
            np.testing.assert_array_equal(np.asarray(obs), final)
            assert int(state.time) == i + 1


@pytest.mark.parametrize("observation", ["index", "grid"])
def test_termination_at_goal(observation):
    env, params = env_of("WindyGridworld-v0", max_steps_in_episode=3, observation=observation)
    obs0, _ = env.reset(KEY, params)
    state = state_at(env, params, 4, 8)  # left from (4, 8): wind 1 pushes into the goal
    obs, state, reward, terminated, truncated, info = env.step(KEY, state, LEFT, params)
    assert bool(terminated) and not bool(truncated)
    assert bool(info["terminated"]) and not bool(info["truncated"])
    assert float(info["discount"]) == 0.0
    assert float(reward) == -1.0
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(obs0))
    final = np.asarray(info["final_observation"])
    if observation == "index":
        assert int(final) == 3 * 10 + 7
    else:
        assert final[3, 7, 0] == 1.0 and final[..., 0].sum() == 1.0
    assert int(state.cell) == 30 and int(state.time) == 0 and int(state.episode) == 1


def test_termination_on_last_step_is_not_truncation():
    """Reaching the goal exactly at the time limit counts as termination only."""
    env, params = env_of("CliffWalking-v0", max_steps_in_episode=1)
    _, _, _, terminated, truncated, info = env.step(KEY, state_at(env, params, 2, 11), DOWN, params)
    assert bool(terminated) and not bool(truncated) and float(info["discount"]) == 0.0


# -------------------------------------------------------------------------- counters


def test_counters_survive_auto_reset_and_blocking_maze_switches_at_1000():
    env, params = env_of("BlockingMaze-v0", max_steps_in_episode=7)
    _, state = env.reset(KEY, params)
    trace = []
    for _ in range(1001):  # left from the start never ends an episode: truncated every 7
        _, state, _, terminated, truncated, _ = env.step(KEY, state, LEFT, params)
        done = terminated | truncated
        trace.append((state.total_steps, state.episode, state.time, done, state.layout))
    total_steps, episodes, times, dones, layouts = map(np.asarray, zip(*trace, strict=True))
    steps = np.arange(1, 1002)
    np.testing.assert_array_equal(total_steps, steps)
    np.testing.assert_array_equal(dones, steps % 7 == 0)
    np.testing.assert_array_equal(episodes, steps // 7)
    np.testing.assert_array_equal(times, steps % 7)
    # state.layout is the episode's: the first begun after 1000 steps (at 1001) is in 1.
    np.testing.assert_array_equal(layouts, steps >= 1001)


def test_blocking_maze_switches_when_an_episode_begins_after_1000_steps():
    env, params = env_of("BlockingMaze-v0", max_steps_in_episode=7)
    # Mid-episode near step 1000 of the run: time 5 of 7, episode 142.
    _, state = env.reset(KEY, params)
    state = state.replace(total_steps=jnp.int32(996), time=jnp.int32(5), episode=jnp.int32(142))
    trace = []
    for _ in range(9):
        _, state, _, _, truncated, _ = env.step(KEY, state, LEFT, params)
        trace.append((int(state.total_steps), int(state.episode), int(state.layout)))
    # Episode 143 began at step 998 and keeps layout 0 past step 1000; 144 begins in 1.
    assert trace == [(997, 142, 0)] + [(t, 143, 0) for t in range(998, 1005)] + [(1005, 144, 1)]
    walls = np.asarray(params.cell_type[:, 3])
    np.testing.assert_array_equal(walls[0], [1, 1, 1, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(walls[1], [0, 1, 1, 1, 1, 1, 1, 1, 1])
    # The dynamics follow the layout: up from (4, 0) is blocked before, open after.
    for layout, expected in ((0, (4, 0)), (1, (3, 0))):
        from_cell = state_at(env, params, 4, 0).replace(
            total_steps=jnp.int32(999 + layout), layout=jnp.int32(layout)
        )
        info = env.step(KEY, from_cell, UP, params)[5]
        assert divmod(int(info["final_observation"]), env.width) == expected


def test_blocking_maze_never_walls_the_agent_in():
    """Into the old gap (3, 8) on the 1000th step: the gap is a wall in layout 1, and a
    switch then would leave the agent inside it (it walked out through the wall)."""
    env, params = env_of("BlockingMaze-v0")
    below_gap = state_at(env, params, 4, 8).replace(total_steps=jnp.int32(999))
    _, state, *_ = env.step(KEY, below_gap, UP, params)
    assert divmod(int(state.cell), env.width) == (3, 8) and int(state.total_steps) == 1000
    assert not bool(params.blocks[params.cell_type[state.layout].reshape(-1)[state.cell]])


def test_blocking_maze_layout_via_reset_and_step_counts():
    """The switch counts steps across episodes, not within one."""
    env, params = env_of("BlockingMaze-v0", switch_after=3, max_steps_in_episode=2)
    _, state = env.reset(KEY, params)
    seen = []
    for _ in range(4):
        _, state, *_ = env.step(KEY, state, LEFT, params)
        seen.append((int(state.total_steps), int(state.episode), int(state.layout)))
    assert seen == [(1, 0, 0), (2, 1, 0), (3, 1, 0), (4, 2, 1)]


def test_cat_room_dynamic_switches_and_cycles():
    env, params = env_of("CatRoomDynamic-v0", switch_every=2, max_steps_in_episode=1)
    assert env.num_layouts == 4
    _, state = env.reset(KEY, params)
    assert int(state.layout) == 0
    layouts, episodes, starts = [], [], []
    for _ in range(10):
        _, state, _, terminated, truncated, _ = env.step(KEY, state, UP, params)
        assert bool(truncated) and not bool(terminated)
        layouts.append(int(state.layout))
        episodes.append(int(state.episode))
        starts.append(int(state.cell))
    assert episodes == list(range(1, 11))
    assert layouts == [0, 1, 1, 2, 2, 3, 3, 0, 0, 1]
    assert starts == [int(params.start[i]) for i in layouts]
    # The arrangements really differ.
    for a in range(4):
        for b in range(a + 1, 4):
            assert not np.array_equal(params.cell_type[a], params.cell_type[b])


def test_the_dynamic_room_changes_every_switch_every_episodes_not_steps():
    """Episodes of 3 steps (UP from the start is a wall): with ``switch_every=2`` the
    arrangement changes as the third episode begins, after 6 steps, not after 2."""
    env, params = env_of("CatRoomDynamic-v0", switch_every=2, max_steps_in_episode=3)
    _, state = env.reset(KEY, params)
    seen = []
    for _ in range(9):
        _, state, *_ = env.step(KEY, state, UP, params)
        seen.append((int(state.episode), int(state.layout)))
    assert seen == [(0, 0), (0, 0), (1, 0), (1, 0), (1, 0), (2, 1), (2, 1), (2, 1), (3, 1)]


@pytest.mark.parametrize("name", ["CatRoom-v0", "CatRoomDynamic-v0"])
def test_both_cat_rooms_take_a_slip_probability(name):
    assert float(make(name, slip_prob=0.2)[1].slip_prob) == pytest.approx(0.2)


def test_the_rug_post_is_near_the_start_and_the_tall_post_far_in_every_arrangement():
    """The README's room: the rug post (+1) three steps from the start, scratched on the
    fourth action; the tall post (+10) eleven steps away past the furniture. In each of
    the dynamic room's arrangements the rug stays within four actions, the tall post at
    least nine away, so that undirected exploration keeps settling for the rug."""

    def actions_to(params, layout, amount):
        tables = (np.asarray(params.next_cell[layout]), np.asarray(params.terminal[layout]))
        reward = (np.asarray(params.reward[layout]), amount)
        return shortest_path(*tables, int(params.start[layout]), reward)

    _, params = env_of("CatRoom-v0")
    assert actions_to(params, 0, 1.0) == 4 and actions_to(params, 0, 10.0) == 12
    _, params = env_of("CatRoomDynamic-v0")
    for layout in range(4):
        assert actions_to(params, layout, 1.0) <= 4 < 9 <= actions_to(params, layout, 10.0)


@pytest.mark.parametrize(
    "name",
    ["WindyGridworld-v0", "CliffWalking-v0", "DynaMaze-v0", "BlockingMaze-v0", "ShortcutMaze-v0"],
)
def test_the_books_tasks_have_no_time_limit_an_episode_could_reach(name):
    """Sutton & Barto's tasks have none: early Sarsa episodes of the windy world run to
    thousands of steps, and a limit in reach would cut them without a word."""
    assert int(env_of(name)[1].max_steps_in_episode) >= 1_000_000


BOOK_TASKS = [
    "WindyGridworld-v0",
    "CliffWalking-v0",
    "DynaMaze-v0",
    "BlockingMaze-v0",
    "ShortcutMaze-v0",
]
# The book's figures, written out cell by cell (not from jrl's maps): per task the
# grid's size and, per layout, (start, goal, walls, cliff). Windy Gridworld: Example
# 6.5's figure; Cliff Walking: Example 6.6's, the cliff all of the bottom row between
# S and G; Dyna Maze: Figure 8.2; Blocking maze: Figure 8.4, the wall in row 3 over
# columns 0-7 (gap on the right), then 1-8 (gap on the left); Shortcut maze:
# Figure 8.5, the wall over columns 1-8, then 1-7 (a second gap on the right).
BOOK_MAPS = {
    "WindyGridworld-v0": ((7, 10), [((3, 0), (3, 7), [], [])]),
    "CliffWalking-v0": ((4, 12), [((3, 0), (3, 11), [], [(3, c) for c in range(1, 11)])]),
    "DynaMaze-v0": (
        (6, 9),
        [((2, 0), (0, 8), [(1, 2), (2, 2), (3, 2), (0, 7), (1, 7), (2, 7), (4, 5)], [])],
    ),
    "BlockingMaze-v0": (
        (6, 9),
        [
            ((5, 3), (0, 8), [(3, c) for c in range(0, 8)], []),
            ((5, 3), (0, 8), [(3, c) for c in range(1, 9)], []),
        ],
    ),
    "ShortcutMaze-v0": (
        (6, 9),
        [
            ((5, 3), (0, 8), [(3, c) for c in range(1, 9)], []),
            ((5, 3), (0, 8), [(3, c) for c in range(1, 8)], []),
        ],
    ),
}


@pytest.mark.parametrize("name", BOOK_TASKS)
def test_the_books_maps_cell_by_cell(name):
    """Every cell of every layout is the book's: floor, wall, goal or cliff, and the
    start where the figure puts S (a moved wall that no shortest path notices, a
    second gap, a start one row off, all show here)."""
    env, params = env_of(name)
    shape, layouts = BOOK_MAPS[name]
    assert (env.height, env.width) == shape and env.num_layouts == len(layouts)
    names = [cell.name for cell in env.legend]
    for layout, (start, goal, walls, cliff) in enumerate(layouts):
        expected = np.full(shape, names.index("floor"))
        expected[goal] = names.index("goal")
        for cells, kind in ((walls, "wall"), (cliff, "cliff")):
            for cell in cells:
                expected[cell] = names.index(kind)
        np.testing.assert_array_equal(np.asarray(params.cell_type[layout]), expected)
        assert divmod(int(params.start[layout]), env.width) == start
    obs, _ = env.reset(KEY, params)
    assert divmod(int(obs), env.width) == layouts[0][0]


@pytest.mark.parametrize("name", BOOK_TASKS)
def test_the_books_tasks_are_deterministic(name):
    """The book's gridworlds have no slip (Examples 6.5, 6.6, 8.1-8.3): the same
    action from the same cell lands on the same cell whatever the key."""
    env, params = env_of(name)
    assert float(params.slip_prob) == 0.0
    start = divmod(int(params.start[0]), env.width)
    for action in (UP, RIGHT):
        landed = {step_from(env, params, *start, action, jax.random.key(k))[0] for k in range(16)}
        assert len(landed) == 1


@pytest.mark.parametrize("name, switch", [("BlockingMaze-v0", 1000), ("ShortcutMaze-v0", 3000)])
def test_the_changing_mazes_switch_after_the_books_number_of_steps(name, switch):
    """Figure 8.4: the blocking maze changes after 1000 time steps; Figure 8.5: the
    shortcut maze after 3000. With one-step episodes (left from the start ends none)
    each step begins an episode: the one begun after ``switch - 1`` steps is played in
    the first layout, the one begun after ``switch`` steps in the second."""
    env, params = env_of(name, max_steps_in_episode=1)
    _, state = env.reset(KEY, params)
    state = state.replace(total_steps=jnp.int32(switch - 2), episode=jnp.int32(switch - 2))
    seen = []
    for _ in range(3):
        _, state, *_ = env.step(KEY, state, LEFT, params)
        seen.append((int(state.total_steps), int(state.layout)))
    assert seen == [(switch - 1, 0), (switch, 1), (switch + 1, 1)]
    # Counted in steps, not episodes: with seven-step episodes the first begun at or
    # after ``switch`` steps, at step 7 * ceil(switch / 7), is episode ceil(switch / 7)
    # (143 or 429), far fewer than ``switch`` episodes, and is in the second layout.
    env, params = env_of(name, max_steps_in_episode=7)
    begins = -(-switch // 7) * 7  # 1001 for 1000, 3003 for 3000
    _, state = env.reset(KEY, params)
    state = state.replace(total_steps=jnp.int32(begins - 7), episode=jnp.int32(begins // 7 - 1))
    layouts = []
    for _ in range(7):
        _, state, *_ = env.step(KEY, state, LEFT, params)
        layouts.append(int(state.layout))
    assert layouts == [0] * 6 + [1] and int(state.episode) == begins // 7 < switch


# ------------------------------------------------------------------- grid observation


def test_grid_observation_cat_room():
    env, params = env_of("CatRoom-v0", observation="grid", layout=TEST_ROOM)
    obs, state = env.reset(KEY, params)
    legend = env.legend
    assert obs.shape == (7, 11, len(legend)) == env.observation_space(params).shape
    assert obs.dtype == jnp.float32
    agent = np.zeros((7, 11))
    agent[1, 1] = 1.0
    np.testing.assert_array_equal(np.asarray(obs[..., 0]), agent)
    cell_type = np.asarray(params.cell_type[0])
    for k in range(1, len(legend)):
        np.testing.assert_array_equal(np.asarray(obs[..., k]), cell_type == k)
    names = [cell.name for cell in legend]
    assert obs[1, 3, names.index("rug post")] == 1.0
    assert obs[5, 9, names.index("tall post")] == 1.0
    assert obs[0, 0, names.index("wall")] == 1.0
    assert obs[1, 6, names.index("furniture")] == 1.0
    assert obs[2, 7, names.index("drapes")] == 1.0
    assert obs[1, 2, 1:].sum() == 0.0  # floor
    obs = env.get_obs(state_at(env, params, 2, 1), params)
    assert obs[2, 1, 0] == 1.0 and obs[..., 0].sum() == 1.0


def test_grid_observation_follows_layout_in_use():
    env, params = env_of("CatRoomDynamic-v0", switch_every=1, max_steps_in_episode=1)
    env_grid, _ = make("CatRoomDynamic-v0", observation="grid")
    _, state = env.reset(KEY, params)
    _, state, *_ = env.step(KEY, state, UP, params)  # truncated: arrangement 1 now
    assert int(state.layout) == 1
    obs = np.asarray(env_grid.get_obs(state, params))
    cell_type = np.asarray(params.cell_type[1])
    for k in range(1, len(env.legend)):
        np.testing.assert_array_equal(obs[..., k], cell_type == k)
    assert not np.array_equal(cell_type, np.asarray(params.cell_type[0]))


def test_grid_observation_textbook():
    env, params = env_of("WindyGridworld-v0", observation="grid")
    obs, _ = env.reset(KEY, params)
    names = [cell.name for cell in env.legend]
    assert obs.shape == (7, 10, len(env.legend))
    goal = np.zeros((7, 10))
    goal[3, 7] = 1.0
    np.testing.assert_array_equal(np.asarray(obs[..., names.index("goal")]), goal)
    assert obs[3, 0, 0] == 1.0 and obs[..., 0].sum() == 1.0


# ---------------------------------------------------------------------- shortest paths


@pytest.mark.parametrize(
    "name, layout, steps",
    [
        ("WindyGridworld-v0", 0, 15),
        ("CliffWalking-v0", 0, 13),
        ("DynaMaze-v0", 0, 14),
        ("BlockingMaze-v0", 0, 10),  # gap at column 8
        ("BlockingMaze-v0", 1, 16),  # gap at column 0
        ("ShortcutMaze-v0", 0, 16),
        ("ShortcutMaze-v0", 1, 10),
    ],
)
def test_shortest_path(name, layout, steps):
    _, params = env_of(name)
    next_cell = np.asarray(params.next_cell[layout])
    terminal = np.asarray(params.terminal[layout])
    assert shortest_path(next_cell, terminal, int(params.start[layout])) == steps


@pytest.mark.parametrize(
    "name, gamma, start_value",
    [
        ("WindyGridworld-v0", 1.0, -15.0),
        ("CliffWalking-v0", 1.0, -13.0),
        ("DynaMaze-v0", 0.95, 0.95**13),  # +1 on the 14th step
    ],
)
def test_value_iteration_on_tables(name, gamma, start_value):
    _, params = env_of(name)
    values = value_iteration(
        np.asarray(params.next_cell[0]),
        np.asarray(params.reward[0], np.float64),
        np.asarray(params.terminal[0], np.float64),
        gamma,
    )
    assert values[int(params.start[0])] == pytest.approx(start_value, rel=1e-6)


# ------------------------------------------------------------- determinism, jit, vmap


def test_same_key_same_rollout():
    env, params = env_of("CatRoom-v0", slip_prob=0.3, max_steps_in_episode=20)
    first = rollout(env, params, jax.random.key(7), 40)
    again = rollout(env, params, jax.random.key(7), 40)
    other = rollout(env, params, jax.random.key(8), 40)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[4], other[4])


@pytest.mark.timeout(120)
def test_vmap_over_layouts_matches_unbatched():
    """reset and step vmapped over two stacked layouts of one size, lane by lane."""
    settings = dict(observation="grid", slip_prob=0.2, max_steps_in_episode=10)
    env, params_a = env_of("CatRoom-v0", **settings)
    _, params_b = env_of("CatRoom-v0", layout=TEST_ROOM_2, **settings)
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), params_a, params_b)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(None, 0)))
    step = jax.jit(jax.vmap(env.step, in_axes=(None, 0, None, 0)))
    key = jax.random.key(3)
    batched = rollout(env, stacked, key, 25, reset=reset, step=step)  # [T, 2, ...]
    for lane, params in enumerate((params_a, params_b)):
        single = rollout(env, params, key, 25)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched), strict=True):
            np.testing.assert_array_equal(a, b[:, lane])
    obs = batched[0]
    assert not np.array_equal(obs[:, 0, ..., 1:], obs[:, 1, ..., 1:])  # layouts differ


def test_jit_and_no_jit_agree():
    env, params = env_of("CatRoom-v0", slip_prob=0.5, max_steps_in_episode=2)

    def run():
        outs = []
        _, state = env.reset(KEY, params)
        for i, action in enumerate((SCRATCH, RIGHT, DOWN)):
            out = env.step(jax.random.fold_in(KEY, i), state, action, params)
            state = out[1]
            outs.append(out)
        return outs

    jitted = run()
    with jax.disable_jit():
        eager = run()
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", list(REGISTRY))
def test_registry_env_runs_under_jit(name):
    env, params = env_of(name)
    assert name in registered_envs()
    assert env.name == name
    assert env.num_actions == (5 if name.startswith("CatRoom") else 4)
    # reset and step run jax.jit functions (self static; step's is _step); run them.
    assert hasattr(type(env).reset, "lower") and hasattr(type(env)._step, "lower")
    space = env.observation_space(params)
    obs, state = env.reset(KEY, params)
    assert bool(space.contains(obs))
    for action in range(env.num_actions):
        obs, state, reward, terminated, truncated, info = env.step(KEY, state, action, params)
        assert bool(space.contains(obs))
        assert reward.shape == () and reward.dtype == jnp.float32
        assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
        assert set(info) >= {"final_observation", "discount", "terminated", "truncated"}
    assert int(state.total_steps) == env.num_actions


def test_registry_lists_gymnax_envs():
    names = registered_envs()
    assert "CartPole-v1" in names and "FourRooms-misc" in names
    assert names[: len(REGISTRY)] == list(REGISTRY)


OWN_ENVS = """
from jrl.envs import make

def cliff(max_steps=None):
    env, params = make("CliffWalking-v0")
    return env, params if max_steps is None else params.replace(max_steps_in_episode=max_steps)

def anything(**settings):
    return make("CliffWalking-v0")

def not_a_pair():
    return make("CliffWalking-v0")[0]

not_callable = 3
"""


def test_an_environment_of_your_own_by_import_path_or_registered(tmp_path, monkeypatch):
    """A researcher's own environment: `module:factory` is made by importing it (so a
    run directory naming it can be resumed in any process); `register` names one in
    this process. Bad paths, factories and overrides are named, not a bare traceback."""
    from jrl.envs import register, registry

    (tmp_path / "own_envs.py").write_text(OWN_ENVS)
    monkeypatch.syspath_prepend(str(tmp_path))
    env, params = make("own_envs:cliff", max_steps=7)
    assert env.name == "CliffWalking-v0" and params.max_steps_in_episode == 7
    assert make("own_envs:anything", whatever=1)[0].name == "CliffWalking-v0"  # **settings
    for name, said in [
        ("own_envs:cliff", "own_envs:cliff has no setting 'slip'; its settings are: max_steps"),
        ("no_such_module_here:cliff", "cannot import no_such_module_here .* PYTHONPATH"),
        ("no_such_package_here.envs:cliff", "cannot import no_such_package_here.envs .* PYTH"),
        ("os.path:join", "no default for a: give each as an override"),  # join(a, *p)
        ("own_envs:missing", "own_envs has no callable missing"),
        ("own_envs:not_callable", "own_envs has no callable not_callable"),
        ("own_envs:not_a_pair", "its factory returned GridWorld; it must return"),
        (":cliff", "name your environment's factory as 'module:factory'"),
    ]:
        with pytest.raises(ValueError, match=said):
            make(name, **({"slip": 0.1} if name == "own_envs:cliff" else {}))
    # The module is found, something it imports is not: that is said, not PYTHONPATH.
    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_here\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_here"):
        make("needs_dep:anything")
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    register("MyCliff-v0", lambda max_steps=None: make("own_envs:cliff", max_steps=max_steps))
    assert make("MyCliff-v0", max_steps=5)[1].max_steps_in_episode == 5
    assert "MyCliff-v0" in registered_envs()
    # A notebook's cell run again: its factory, redefined, replaces the one before.
    register("MyCliff-v0", lambda max_steps=None: make("own_envs:cliff", max_steps=3))
    assert make("MyCliff-v0")[1].max_steps_in_episode == 3
    register("AnyCliff-v0", lambda **settings: make("own_envs:anything", **settings))
    assert make("AnyCliff-v0", whatever=1)[0].name == "CliffWalking-v0"
    for name in ("CliffWalking-v0", "CartPole-v1"):
        with pytest.raises(ValueError, match=f"{name!r} is already an environment"):
            register(name, lambda: None)
    with pytest.raises(ValueError, match="a non-empty string without ':'"):
        register("own:cliff", lambda: None)


def test_only_names_registered_here_or_import_paths_are_environments_of_ones_own(monkeypatch):
    """is_own decides that a run is built anew every time (its code may change within
    the process); jrl's own tasks and gymnax's are not, and keep their cache."""
    from jrl.envs import register, registry
    from jrl.envs.registry import is_own

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    assert not any(is_own(name) for name in ("CliffWalking-v0", "CatRoom-v0", "CartPole-v1"))
    assert is_own("my_package.envs:make_chain") and not is_own(3)
    register("MyCliff-v0", lambda: make("CliffWalking-v0"))
    assert is_own("MyCliff-v0")


def test_register_refuses_an_empty_name_and_a_factory_that_cannot_be_called(monkeypatch):
    """Taken, make(name) failed later inside inspect.signature, naming neither."""
    from jrl.envs import register, registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    with pytest.raises(ValueError, match="a non-empty string without ':'; got ''"):
        register("", lambda: make("CliffWalking-v0"))
    with pytest.raises(ValueError, match="Mine-v0's factory must be callable; got int"):
        register("Mine-v0", 3)
    assert "" not in registry.REGISTRY and "Mine-v0" not in registry.REGISTRY


def test_a_factorys_settings_are_checked_by_its_signature(monkeypatch):
    """A factory taking named settings and **settings takes any setting; one whose
    setting is positional-only cannot be given it (make calls factory(**overrides)), so
    that is said before the call instead of Python's TypeError; a factory returning its
    params before its env is refused as one returning no pair."""
    from jrl.envs import register, registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    env, params = make("CliffWalking-v0")

    def keyed(max_steps=None, **settings):
        return env, params if max_steps is None else params.replace(max_steps_in_episode=max_steps)

    def positional(max_steps, /):
        return env, params

    register("Keyed-v0", keyed)
    assert make("Keyed-v0", max_steps=4, whatever=1)[1].max_steps_in_episode == 4
    register("Positional-v0", positional)
    with pytest.raises(ValueError, match="no default for max_steps: give each as an override"):
        make("Positional-v0", max_steps=3)
    register("Swapped-v0", lambda: (params, env))
    with pytest.raises(TypeError, match=r"factory of 'Swapped-v0' must return \(env, env_params\)"):
        make("Swapped-v0")


def test_an_import_path_may_name_an_attribute_of_an_attribute():
    """'module:attribute' is followed through dots (a factory inside a submodule or a
    class); a path with nothing after the colon names no factory."""
    env, params = make("jrl.envs:textbook.cliff_walking", max_steps_in_episode=9)
    assert env.name == "CliffWalking-v0" and params.max_steps_in_episode == 9
    with pytest.raises(ValueError, match="name your environment's factory as 'module:factory'"):
        make("jrl.envs:")


def test_make_recorded_says_a_refusal_on_stderr_once_per_process(monkeypatch, capsys):
    """A run made before jrl refused its setting is made again as recorded, and the
    refusal is said, once: not on every chunk, evaluation and render of the run."""
    from jrl.envs import registry

    monkeypatch.setattr(registry, "_NOTED", set())
    for _ in range(2):
        _, params = registry.make_recorded("Acrobot-v1", {"link_length_2": 3.0})
        assert params.link_length_2 == 3.0
    said = capsys.readouterr().err
    assert said.count("jrl: note: Acrobot-v1's link_length_2: a field of gymnax's EnvParams") == 1


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("CatRoom-v1", "CatRoom-v0"),
        ("CliffWalkin-v0", "CliffWalking-v0"),
        ("CartPol-v1", "CartPole-v1"),  # gymnax's names are suggested too
        ("Qwxz", None),
    ],
)
def test_unknown_env_name(name, suggestion):
    with pytest.raises(ValueError, match=f"unknown environment {name!r}") as error:
        make(name)
    message = str(error.value)
    if suggestion is None:
        assert "Did you mean" not in message
    else:
        assert f"Did you mean {suggestion!r}" in message or (
            "Did you mean" in message and repr(suggestion) in message.split("Known")[0]
        )
    assert "Known: " in message and "CatRoom-v0" in message
    assert "'module:factory'" in message


def test_unknown_override_lists_settings():
    with pytest.raises(ValueError, match="slip") as error:
        make("CatRoom-v0", slipprob=0.1)
    message = str(error.value)
    assert "'slipprob'" in message
    for setting in ("observation", "slip_prob", "max_steps_in_episode", "layout"):
        assert setting in message


def test_gymnax_simple_bandit_which_nothing_can_learn_is_refused_with_the_reason():
    """Its arms' rewards are drawn anew at every reset and every episode is one step:
    always pulling arm 0 pays each arm's reward in turn, 0.5 on average; a DQN trained
    on it silently. Checked here on gymnax's own environment, then refused by make."""
    import gymnax

    env, params = gymnax.make("SimpleBandit-bsuite")
    keys = jax.random.split(jax.random.key(0), 400)

    def pull_arm_0(key):
        key_reset, key_step = jax.random.split(key)
        _, state = env.reset(key_reset, params)
        _, _, reward, terminated, truncated, _ = env.step(key_step, state, 0, params)
        return reward, terminated | truncated

    rewards, done = jax.vmap(pull_arm_0)(keys)
    assert bool(done.all()) and abs(float(rewards.mean()) - 0.5) < 0.05
    with pytest.raises(ValueError, match="nothing to learn .*use BernoulliBandit-misc"):
        make("SimpleBandit-bsuite")
    assert "SimpleBandit-bsuite" not in registered_envs()
    assert "BernoulliBandit-misc" in registered_envs()


def test_a_gymnax_class_is_made_with_its_own_settings():
    """DeepSea's size, FourRooms' visual observation, FrozenLake's slipperiness are
    keywords of gymnax's classes, not EnvParams fields: refused as unknown, they could
    not be reached at all. They go to gymnax.make, the fields to the params."""
    env, params = make("DeepSea-bsuite", size=10, max_steps_in_episode=12)
    assert env.observation_space(params).shape == (10, 10)
    assert params.max_steps_in_episode == 12
    env, params = make("FourRooms-misc", use_visual_obs=True)
    assert env.observation_space(params).shape == (13, 13, 2)
    assert make("FrozenLake-misc", is_slippery=False)[0].is_slippery is False
    with pytest.raises(ValueError, match="setting size must be a whole number, got 'x'"):
        make("DeepSea-bsuite", size="x")
    with pytest.raises(ValueError, match="setting map_name must be a string"):
        make("FrozenLake-misc", map_name=8)
    with pytest.raises(ValueError, match="no setting 'sise'.*its class is made with: size"):
        make("DeepSea-bsuite", sise=3)
    # Sizes and counts of 0 crashed inside gymnax as it traced; 0 distractors is one.
    with pytest.raises(ValueError, match="setting size must be >= 1, got 0"):
        make("DeepSea-bsuite", size=0)
    make("UmbrellaChain-bsuite", n_distractor=0)
    with pytest.raises(ValueError, match="setting n_distractor must be >= 0, got -1"):
        make("UmbrellaChain-bsuite", n_distractor=-1)
    # gymnax checks no fixed position (one in a wall was taken): not passed on.
    with pytest.raises(ValueError, match="goal_fixed .default None. is not checked by gymnax"):
        make("FourRooms-misc", goal_fixed=[1, 1])


def test_a_gymnax_class_takes_a_float_setting_and_numpy_bools():
    """FrozenLake's success_rate is a float keyword of its class (gymnax checks it is in
    [0, 1]); a NumPy bool (from an np.array of settings) is a bool for a bool field."""
    env, _ = make("FrozenLake-misc", success_rate=0.5)
    assert env.success_rate == 0.5
    with pytest.raises(ValueError, match="setting success_rate must be a finite number"):
        make("FrozenLake-misc", success_rate="0.5")
    _, params = make("FourRooms-misc", resample_goal_pos=np.bool_(True))
    assert params.resample_goal_pos is True


def test_unknown_gymnax_override_lists_fields():
    with pytest.raises(ValueError, match="max_steps_in_episode"):
        make("CartPole-v1", max_steps=5)


@pytest.mark.parametrize(
    "name, overrides, read",
    [
        ("Seaquest-MinAtar", {"enemy_move_interval": 1000}, {"init_move_interval": 7}),
        ("Seaquest-MinAtar", {"ramp_interval": 7}, {"init_move_interval": 7}),
        ("Asterix-MinAtar", {"shot_cool_down": 9}, {"init_move_interval": 7}),
        ("Acrobot-v1", {"link_length_2": 3.0}, {"link_length_1": 3.0}),
    ],
)
def test_a_gymnax_setting_its_step_never_reads_is_refused(name, overrides, read):
    """gymnax declares them and never reads them: accepted, a sweep over one ran every
    point alike. Checked here: the same keys play the same episode with or without."""
    import gymnax

    env, params = gymnax.make(name)
    changed = params.replace(**overrides)

    @jax.jit  # one compile for both params (the same structure)
    def rollout(env_params):
        def step(carry, key):
            state, obs = carry
            key_act, key_step = jax.random.split(key)
            action = env.action_space(env_params).sample(key_act)
            obs, state, *_ = env.step(key_step, state, action, env_params)
            return (state, obs), obs

        obs, state = env.reset(jax.random.key(0), env_params)
        return jax.lax.scan(step, (state, obs), jax.random.split(jax.random.key(1), 300))[1]

    np.testing.assert_array_equal(rollout(params), rollout(changed))
    with pytest.raises(ValueError, match=f"{list(overrides)[0]}: a field of gymnax's EnvParams"):
        make(name, **overrides)
    make(name, **read)  # one it reads is taken
    # A run directory made before the refusal still resumes, evaluates and renders.
    from jrl.envs.registry import make_recorded

    jax.tree.map(np.testing.assert_array_equal, make_recorded(name, overrides)[1], changed)


@pytest.mark.parametrize(
    "name, overrides, problem",
    [
        ("CartPole-v1", {"max_steps_in_episode": "200"}, "must be a whole number, got '200'"),
        ("CartPole-v1", {"max_steps_in_episode": 0}, "must be >= 1, got 0"),
        # A float default (100.0): any number passed, and 0 made evaluations play no step.
        ("BernoulliBandit-misc", {"max_steps_in_episode": 0}, "must be >= 1, got 0"),
        ("BernoulliBandit-misc", {"max_steps_in_episode": 2.5}, "must be a whole number"),
        ("CartPole-v1", {"gravity": "9.8"}, "gravity must be a finite number"),
        ("Pendulum-v1", {"max_torque": float("inf")}, "max_torque must be a finite number"),
        ("Acrobot-v1", {"available_torque": [1.0, 2.0]}, r"finite numbers of shape \[3\]"),
        ("Acrobot-v1", {"available_torque": [1.0, float("nan"), 2.0]}, "finite numbers of"),
        ("CartPole-v1", {"gravity": True}, "gravity must be a finite number, got True"),
        ("FourRooms-misc", {"resample_goal_pos": 1}, "must be true or false"),
        ("FourRooms-misc", {"fail_prob": 2}, r"is a probability: it must be in \[0, 1\], got 2"),
        ("BernoulliBandit-misc", {"reward_prob": -0.1}, r"must be in \[0, 1\], got -0.1"),
        ("FourRooms-misc", {"resample_goal_pos": "true"}, "must be a bool .* the string 'true'"),
        (
            "DiscountingChain-bsuite",
            {"reward_timestep": [1.5, 3, 10, 30, 100]},
            r"must be whole numbers of shape \[5\]",
        ),
    ],
)
def test_gymnax_override_values_are_checked_before_compiling(name, overrides, problem):
    with pytest.raises(ValueError, match=f"{name} setting .*{problem}"):
        make(name, **overrides)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("FourRooms-misc", {"fail_prob": 0.0}),  # a probability's ends: deterministic ...
        ("FourRooms-misc", {"fail_prob": 1.0}),  # ... and always failing
        ("DiscountingChain-bsuite", {"mapping_seed": 0}),  # its default: a seed may be 0
    ],
)
def test_gymnax_override_values_at_the_ends_of_their_ranges_are_taken(name, overrides):
    env, params = make(name, **overrides)
    for key, value in overrides.items():  # a field of the params, or of gymnax's class
        assert getattr(params, key, None) == value or getattr(env, key) == value


def test_a_length_gymnax_divides_by_below_one_is_refused():
    """gymnax divides by them: MemoryChain's memory_length=0 reset to [nan, 0, -1],
    UmbrellaChain's chain_length=0 to [0, 1, nan], and -3 was taken too."""
    from jrl.envs.registry import SIZE_GYMNAX_SETTINGS

    for name, fields in SIZE_GYMNAX_SETTINGS.items():
        for key in fields:
            for value in (0, -3):
                with pytest.raises(ValueError, match=f"{name} setting {key} must be >= 1"):
                    make(name, **{key: value})
            env, params = make(name, **{key: 1})
            assert getattr(params, key) == 1
            obs, _ = env.reset(jax.random.key(0), params)
            assert np.isfinite(np.asarray(obs, np.float32)).all()


# The state timer each MinAtar timer setting sets (jrl.envs.registry.TIMER_GYMNAX_SETTINGS).
TIMER_STATES = {
    ("Asterix-MinAtar", "init_spawn_speed"): "spawn_timer",
    ("Asterix-MinAtar", "init_move_interval"): "move_timer",
    ("SpaceInvaders-MinAtar", "enemy_move_interval"): "alien_move_timer",
    ("SpaceInvaders-MinAtar", "enemy_shot_interval"): "alien_shot_timer",
    ("SpaceInvaders-MinAtar", "shot_cool_down"): "shot_timer",
    ("Freeway-MinAtar", "player_speed"): "move_timer",
}


@pytest.mark.timeout(300)
def test_a_minatar_timer_below_its_least_is_refused_as_it_stops_its_event():
    """gymnax counts MinAtar's timers down and acts (spawns, moves, shoots) at 0:
    Asterix's init_spawn_speed=0 went below 0 and spawned once, Freeway's player_speed=-1
    held the chicken still. Each timer of the table is refused below its least, and
    taken at it; played by a random policy, a timer at its least is still reaching 0
    after 20 steps, and one set below it (params.replace) is not."""
    from jrl.envs.registry import TIMER_GYMNAX_SETTINGS

    assert {(n, f) for n, fields in TIMER_GYMNAX_SETTINGS.items() for f in fields} == set(
        TIMER_STATES
    )
    for name, fields in TIMER_GYMNAX_SETTINGS.items():
        env, default = make(name)
        variants = []
        for key, least in fields.items():
            for value in (least - 1, least - 5):
                with pytest.raises(ValueError, match=f"{name} setting {key} is {value}: a "
                                   f"timer must be a whole number >= {least}"):  # fmt: skip
                    make(name, **{key: value})
            assert getattr(make(name, **{key: least})[1], key) == least
            variants += [default.replace(**{key: v}) for v in (least, least - 1)]
        timers = [TIMER_STATES[name, key] for key in fields]

        def late_zeros(params, env=env, timers=timers):
            """Steps 20 to 59 at which each timer is 0: int[timers]. gymnax's step_env, which
            plays on past the episode's end: a reset would set the timers again."""

            def step(state, inputs):
                t, step_key = inputs
                act, move = jax.random.split(step_key)
                action = jax.random.randint(act, (), 0, env.num_actions)
                state = env.step_env(move, state, action, params)[1]
                at_zero = jnp.stack([getattr(state, timer) == 0 for timer in timers])
                return state, at_zero & (t >= 20)

            _, state = env.reset(jax.random.key(0), params)
            steps = (jnp.arange(60), jax.random.split(jax.random.key(1), 60))
            return jax.lax.scan(step, state, steps)[1].sum(axis=0)

        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *variants)
        zeros = np.asarray(jax.jit(jax.vmap(late_zeros))(stacked))
        for i, key in enumerate(fields):
            running, stopped = zeros[2 * i, i], zeros[2 * i + 1, i]
            assert running >= 1 and stopped == 0, (name, key, running, stopped)


def test_a_pong_speed_of_zero_is_refused_as_a_random_policy_scores_the_maximum():
    """With Pong's ball_x_speed or paddle_y_speed at 0 (params.replace) every episode ran
    to its time limit at +1 a step; make refuses 0 and takes a negative speed."""
    from jrl.agents.evaluation import random_policy_returns
    from jrl.envs.registry import NONZERO_GYMNAX_SETTINGS

    env, params = make("Pong-misc")
    limit = int(params.max_steps_in_episode)
    keys = jax.random.split(jax.random.key(0), 2)
    returns = jax.jit(lambda params: random_policy_returns(keys, env, params, limit))
    assert np.all(np.asarray(returns(params)) < limit)
    for key in NONZERO_GYMNAX_SETTINGS["Pong-misc"]:
        with pytest.raises(ValueError, match=f"Pong-misc setting {key} is 0: it must not be 0"):
            make("Pong-misc", **{key: 0})
        assert getattr(make("Pong-misc", **{key: -1})[1], key) == -1
        np.testing.assert_array_equal(returns(params.replace(**{key: 0})), limit)


def test_a_name_that_is_not_a_string_is_refused_as_one_before_any_lookup():
    """make(["CartPole-v1"]) raised "unhashable type: 'list'" from the lookup of refused
    names, before the check that says what a name is; make_recorded too."""
    from jrl.envs.registry import make_recorded

    for call in (lambda: make(["CartPole-v1"]), lambda: make_recorded({"a": 1}, {})):
        with pytest.raises(TypeError, match="an environment's name is a string, got"):
            call()


def test_a_classic_control_time_step_mass_length_or_limit_at_or_below_zero_is_refused():
    """CartPole's tau=0 froze the pole (a random policy scored 500); a mass or length
    <= 0 divides by zero or inverts the physics. Every field of the table, at 0 and
    below; the same fields at a positive value are taken."""
    from jrl.envs.registry import POSITIVE_GYMNAX_SETTINGS

    for name, fields in POSITIVE_GYMNAX_SETTINGS.items():
        for key, kind in fields.items():
            for value in (0.0, -1.0):
                with pytest.raises(ValueError, match=f"{name} setting {key} is {kind}: it must "
                                   f"be > 0, got {value}"):  # fmt: skip
                    make(name, **{key: value})
            assert getattr(make(name, **{key: 0.5})[1], key) == 0.5


@pytest.mark.parametrize(
    "name, overrides, problem",
    [
        ("MountainCar-v0", {"min_position": 0.6}, r"min_position \(0.6\) must be < max_pos"),
        ("MountainCar-v0", {"min_position": 1.0, "max_position": -1.0}, "min_position"),
        ("MountainCar-v0", {"goal_position": 0.7}, r"goal_position \(0.7\) must be <= max"),
        ("MountainCar-v0", {"max_position": 0.4}, r"goal_position \(0.5\) must be <= max"),
        ("MountainCarContinuous-v0", {"goal_position": 0.61}, "goal_position"),
        ("MountainCarContinuous-v0", {"min_action": 1.0}, r"min_action \(1.0\) must be < max"),
        ("MountainCarContinuous-v0", {"max_action": -2.0}, "min_action"),
    ],
)
def test_mountain_car_ends_goal_or_action_range_out_of_order_are_refused(name, overrides, problem):
    """A goal past the track's end was never reached (the car is held at max_position:
    every episode ran to its time limit), and swapped ends or action bounds clip
    everything to one value; each was taken silently."""
    with pytest.raises(ValueError, match=f"{name} settings: {problem}"):
        make(name, **overrides)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("MountainCar-v0", {"goal_position": 0.6}),  # at the end: reached there
        ("MountainCar-v0", {"min_position": -2.0, "max_position": 1.0, "goal_position": 0.9}),
        ("MountainCarContinuous-v0", {"min_action": -0.5, "max_action": 0.5}),
    ],
)
def test_mountain_car_ends_goal_and_action_range_in_order_are_taken(name, overrides):
    params = make(name, **overrides)[1]
    assert all(getattr(params, key) == value for key, value in overrides.items())


def test_a_goal_at_the_tracks_end_is_reached_and_one_past_it_never_is():
    """Why goal_position <= max_position: gymnax clips the position to max_position."""
    env, params = make("MountainCar-v0", goal_position=0.6)
    step = jax.jit(env.step)

    def ends(params, steps=400):
        # push with the velocity: the textbook's energy-pumping policy
        obs, state = env.reset(jax.random.key(0), params)
        for i in range(steps):
            action = jnp.where(obs[1] >= 0, 2, 0)
            obs, state, _, terminated, _, _ = step(jax.random.key(i), state, action, params)
            if terminated:
                return True
        return False

    assert ends(params)
    assert not ends(params.replace(goal_position=0.61))


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("CartPole-v1", {"gravity": 20.0, "force_mag": 30.0}),  # another world, a stronger push
        ("CartPole-v1", {"gravity": -9.8}),  # arguable, but the env runs with it
        ("Pendulum-v1", {"g": 0.0}),
        ("MountainCar-v0", {"gravity": 0.0}),
    ],
)
def test_classic_control_physics_other_than_the_defaults_are_taken(name, overrides):
    params = make(name, **overrides)[1]
    assert all(getattr(params, key) == value for key, value in overrides.items())


def test_every_gymnax_setting_its_step_never_reads_is_refused():
    """Each of UNREAD_GYMNAX_SETTINGS's settings, not only the first an env lists."""
    import gymnax

    from jrl.envs.registry import UNREAD_GYMNAX_SETTINGS

    for name, keys in UNREAD_GYMNAX_SETTINGS.items():
        defaults = gymnax.make(name)[1]
        for key in keys:
            with pytest.raises(ValueError, match=f"{name}'s {key}: a field of gymnax's"):
                make(name, **{key: getattr(defaults, key)})


def test_a_gymnax_constructors_bare_assert_is_said_with_its_line():
    """MetaMaze checks its size with a bare assert: the refusal ended in ': ' alone."""
    said = r"could not make MetaMaze-misc with \{'maze_size': 8\}: its check `assert maze_size"
    with pytest.raises(ValueError, match=said):
        make("MetaMaze-misc", maze_size=8)


def test_a_float_time_limit_stays_a_float_and_a_failed_download_says_so(monkeypatch):
    _, params = make("BernoulliBandit-misc", max_steps_in_episode=50)
    assert params.max_steps_in_episode == 50.0 and isinstance(params.max_steps_in_episode, float)
    import urllib.error

    import gymnax

    def offline(name):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(gymnax, "make", offline)
    with pytest.raises(OSError, match="could not make MNISTBandit-bsuite: .* downloads MNIST"):
        make("MNISTBandit-bsuite")


@pytest.mark.parametrize(
    "name, overrides, problem",
    [
        ("CliffWalking-v0", {"step_reward": float("nan")}, "step_reward must be a finite number"),
        ("CatRoom-v0", {"large_treat": float("inf")}, "large_treat must be a finite number"),
        ("CatRoom-v0", {"penalty": "-5"}, "penalty must be a finite number, got '-5'"),
        ("CatRoom-v0", {"slip_prob": "0.1"}, "slip_prob must be a finite number, got '0.1'"),
        ("DynaMaze-v0", {"goal_reward": float("nan")}, "goal_reward must be a finite number"),
        (
            "CatRoom-v0",
            {"max_steps_in_episode": 10**10},
            "max_steps_in_episode must fit in an int32",
        ),
        ("CatRoomDynamic-v0", {"switch_every": 3 * 10**9}, "switch_every must fit in an int32"),
        (
            "CartPole-v1",
            {"max_steps_in_episode": 10**10},
            "max_steps_in_episode must fit in an int32",
        ),
    ],
)
def test_grid_task_rewards_and_counts_are_checked_before_compiling(name, overrides, problem):
    """A NaN reward would run a task whose episodes never score; a count past int32 would
    fail only while JAX traces the run."""
    with pytest.raises(ValueError, match=problem):
        make(name, **overrides)


def test_grid_rewards_take_numpy_and_jax_scalars():
    for value in (np.float32(-2.0), np.array(-2.0), jnp.float32(-2.0), -2):
        _, params = make("CliffWalking-v0", step_reward=value)
        assert float(params.step_reward) == -2.0
    _, params = make("CatRoom-v0", large_treat=jnp.float32(3.0), slip_prob=np.array(0.25))
    assert float(params.slip_prob) == 0.25
    with pytest.raises(ValueError, match="step_reward must be a finite number"):
        make("CliffWalking-v0", step_reward=np.array([-1.0, -2.0]))
    with pytest.raises(ValueError, match="slip_prob must be a finite number, got True"):
        make("CatRoom-v0", slip_prob=True)


def test_gymnax_overrides_keep_cartpole_consistent():
    """gymnax computes CartPole's total mass and pole mass x length once, for its
    defaults; a heavier pole must change them too, unless they are given."""
    _, params = make("CartPole-v1", masspole=1.0, max_steps_in_episode=200.0)
    assert params.max_steps_in_episode == 200 and isinstance(params.max_steps_in_episode, int)
    assert params.total_mass == pytest.approx(2.0)  # masscart 1.0 + masspole 1.0
    assert params.polemass_length == pytest.approx(0.5)  # masspole 1.0 x length 0.5
    _, params = make("CartPole-v1", masspole=1.0, total_mass=3.0)
    assert params.total_mass == 3.0 and params.polemass_length == pytest.approx(0.5)
    env, params = make("Acrobot-v1", available_torque=[-2.0, 0.0, 2.0])
    _, state = env.reset(jax.random.key(0), params)
    assert jax.jit(env.step)(jax.random.key(1), state, 0, params)[2] == -1.0


@pytest.mark.parametrize(
    "layout, problem",
    [
        ("....\n....", r"exactly one start 'S', found 0"),
        ("S..S\n....", r"exactly one start 'S', found 2"),
        ("S...\n...", r"ragged map: row 1 has 3 symbols"),
        ("S.X.\n....", r"unknown symbol 'X' at row 0, column 2"),
        ("\n\n", r"empty map"),
    ],
    ids=["no-start", "two-starts", "ragged", "unknown-symbol", "empty"],
)
def test_malformed_map(layout, problem):
    with pytest.raises(ValueError, match=problem):
        make("DynaMaze-v0", layout=layout)


@pytest.mark.parametrize(
    "legend, problem",
    [
        # Every X would have become the goal: the lava drawn there silently gone.
        (("X", "X"), r"cell types share a symbol \('X' for lava, goal\)"),
        (("X", "S"), r"cell type 'goal' is spelt 'S', the start's symbol"),
        (("X", "GG"), r"cell type 'goal' needs a one-character symbol, got 'GG'"),
    ],
    ids=["repeated", "start-symbol", "two-characters"],
)
def test_a_legend_needs_one_symbol_per_cell_type(legend, problem):
    floor = CellType(".", "floor", (0, 0, 0))
    lava = CellType(legend[0], "lava", (1, 0, 0), enter_reward=-10.0, enter_effect=TERMINATE)
    goal = CellType(legend[1], "goal", (0, 1, 0), enter_reward=10.0, enter_effect=TERMINATE)
    with pytest.raises(ValueError, match=problem):
        grid_params(["S.X"], (floor, lava, goal))


def test_malformed_settings():
    with pytest.raises(ValueError, match="one size"):
        make("BlockingMaze-v0", layouts=("S..\n..G", "S.\n.G"))
    # One map given as ``layouts`` (a string is a sequence of one-letter "maps").
    for name in ("BlockingMaze-v0", "CatRoomDynamic-v0"):
        with pytest.raises(ValueError, match=r"got one string: pass \[layout\]"):
            make(name, layouts="S..\n..G")
    with pytest.raises(ValueError, match="wind needs one entry per column"):
        make("WindyGridworld-v0", wind=(0, 1))
    with pytest.raises(ValueError, match="slip_prob"):
        make("CliffWalking-v0", slip_prob=1.5)
    with pytest.raises(ValueError, match="observation"):
        make("CatRoom-v0", observation="pixels")
    # Counts are whole numbers (1e3 from a config file is one), named as given.
    with pytest.raises(ValueError, match="max_steps_in_episode must be a whole number, got 2.5"):
        make("CliffWalking-v0", max_steps_in_episode=2.5)
    assert int(make("CliffWalking-v0", max_steps_in_episode=1e3)[1].max_steps_in_episode) == 1000
    with pytest.raises(ValueError, match="wind must be a whole number, got 1.9"):
        make("WindyGridworld-v0", wind=(0, 0, 0, 1.9, 1, 1, 2, 2, 1, 0))
    with pytest.raises(ValueError, match="switch_after must be >= 1, got 0"):
        make("BlockingMaze-v0", switch_after=0)
    with pytest.raises(ValueError, match="switch_every must be a whole number"):
        make("CatRoomDynamic-v0", switch_every=0.5)
    # Zero or negative where an episode would be all truncation, a switch a division by
    # zero, a slip silently none.
    with pytest.raises(ValueError, match="max_steps_in_episode must be >= 1, got 0"):
        make("CliffWalking-v0", max_steps_in_episode=0)
    with pytest.raises(ValueError, match="switch_every must be >= 1, got 0"):
        make("CatRoomDynamic-v0", switch_every=0)
    with pytest.raises(ValueError, match="slip_prob"):
        make("CliffWalking-v0", slip_prob=-0.1)


# Tiny worlds of their own, whose layouts start in different cells (every multi-layout
# task jrl ships starts all its layouts in one cell, so it hides which start is used).
FLOOR = CellType(".", "floor", (0, 0, 0))
WALL = CellType("#", "wall", (1, 1, 1), blocks=True)
GOAL = CellType("G", "goal", (2, 2, 2), enter_effect=TERMINATE)
CLIFF = CellType("C", "cliff", (3, 3, 3), enter_reward=-100.0, enter_effect=RETURN_TO_START)


def two_starts_world():
    """Two 2x3 layouts, the goal two steps right of the start: (0, 0) then (1, 0)."""
    legend = (FLOOR, WALL, GOAL)
    params = grid_params(["S.G\n...", "...\nS.G"], legend, switch_every=5)
    return GridWorld("TwoStarts", legend, params), params


def test_params_in_a_layout_reset_to_that_layouts_own_start():
    env, params = two_starts_world()
    assert [int(start) for start in params.start] == [0, 3]
    obs, state = env.reset(KEY, params.in_layout(1))
    assert int(obs) == 3 and int(state.cell) == 3


def test_greedy_paths_start_from_the_layouts_own_start():
    env, params = two_starts_world()
    q = np.zeros((env.num_states, env.num_actions), np.float32)
    q[:, RIGHT] = 1.0  # always right: start, floor, goal
    assert env.greedy_path_lengths(params, q[None], layout=0) == [2]
    assert env.greedy_path(params, q, layout=1) == ([3, 4], True)
    assert env.greedy_path_lengths(params, q[None], layout=1) == [2]


def test_the_cliff_returns_to_the_start_of_the_layout_in_play():
    params = grid_params(["S...\n.CC.\n...G", "....\n.CC.\nS..G"], (FLOOR, GOAL, CLIFF))
    assert [int(start) for start in params.start] == [0, 8]
    for layout in (0, 1):  # down from (0, 1) into the cliff at (1, 1)
        assert int(params.next_cell[layout, 1, DOWN]) == int(params.start[layout])
        assert float(params.reward[layout, 1, DOWN]) == -100.0


def test_a_downward_wind_does_not_carry_the_agent_through_a_wall():
    """A negative wind pushes down (the checks take it): down from (0, 1) with wind -2
    would pass the wall at (2, 1) on its way to row 3, so the whole step is blocked; down
    from (0, 3) with wind -1, nothing in the way, lands two rows down."""
    params = grid_params(
        ["S....\n.....\n.#...\n....G"], (FLOOR, WALL, GOAL), wind=[0, -2, 0, -1, 0]
    )
    assert int(params.next_cell[0, 1, DOWN]) == 1
    assert int(params.next_cell[0, 3, DOWN]) == 2 * 5 + 3


def test_replacing_blocks_or_enter_effect_rebuilds_the_tables():
    _, params = env_of("DynaMaze-v0")
    beside_wall, below_goal = 1 * 9 + 1, 1 * 9 + 8  # (1, 1): a wall at (1, 2); the goal (0, 8)
    assert int(params.next_cell[0, beside_wall, RIGHT]) == beside_wall
    no_walls = params.replace(blocks=params.blocks.at[1].set(False))
    assert int(no_walls.next_cell[0, beside_wall, RIGHT]) == beside_wall + 1
    assert bool(params.terminal[0, below_goal, UP])
    no_effects = params.replace(enter_effect=params.enter_effect * 0)
    assert not bool(no_effects.terminal[0, below_goal, UP])


def test_custom_layout_through_make():
    layout = """
    S#...#..G
    .#.#.#.#.
    .#.#.#.#.
    .#.#.#.#.
    .#.#.#.#.
    ...#...#.
    """  # a serpentine of the Dyna maze's size: 4 runs of 5 down/up + 4 of 2 across
    env, params = make("DynaMaze-v0", layout=layout)
    assert (env.height, env.width) == (6, 9)
    next_cell, terminal = np.asarray(params.next_cell[0]), np.asarray(params.terminal[0])
    assert shortest_path(next_cell, terminal, int(params.start[0])) == 28


def test_gymnax_pass_through():
    env, params = make("CartPole-v1", max_steps_in_episode=5)
    assert int(params.max_steps_in_episode) == 5
    _, state = env.reset(KEY, params)
    truncations = []
    for i in range(5):
        _, state, _, terminated, truncated, _ = env.step(KEY, state, i % 2, params)
        assert not bool(terminated)
        truncations.append(bool(truncated))
    assert truncations == [False] * 4 + [True]


# ----------------------------------------------------------------------------- render


@functools.cache
def draw(name: str, cell_px: int, **overrides):
    """``env.render`` of ``env_of(name, **overrides)``, jitted once."""
    env, params = env_of(name, **overrides)
    return jax.jit(lambda state: env.render(state, params, cell_px=cell_px))


@pytest.mark.parametrize("name, cell_px", [("CatRoom-v0", 8), ("CliffWalking-v0", 16)])
def test_render_shape_and_agent(name, cell_px):
    env, params = env_of(name)
    image_here = np.asarray(draw(name, cell_px)(state_at(env, params, 1, 2)))
    image_there = np.asarray(draw(name, cell_px)(state_at(env, params, 2, 4)))
    assert image_here.shape == (env.height * cell_px, env.width * cell_px, 3)
    assert image_here.dtype == np.uint8
    changed = np.any(image_here != image_there, axis=-1)
    cells_changed = changed.reshape(env.height, cell_px, env.width, cell_px).any(axis=(1, 3))
    expected = np.zeros((env.height, env.width), bool)
    expected[1, 2] = expected[2, 4] = True
    np.testing.assert_array_equal(cells_changed, expected)


@pytest.mark.parametrize(
    "name, layout", [("CatRoom-v0", 0), ("BlockingMaze-v0", 0), ("BlockingMaze-v0", 1)]
)
def test_render_draws_every_cell_in_its_legend_colour(name, layout):
    """The centre pixel of every cell the agent is not on is the legend colour of that
    cell's type in the layout in use: walls, posts and the goal, not all floor; and
    BlockingMaze's second layout, whose wall gap moved from (3, 8) to (3, 0), not its
    first."""
    cell_px = 8
    env, params = env_of(name)
    _, state = env.reset(KEY, params)
    state = state.replace(layout=jnp.asarray(layout, state.layout.dtype))
    image = np.asarray(draw(name, cell_px)(state))
    types = np.asarray(params.cell_type[layout])
    others = np.ones(types.shape, bool)
    others[divmod(int(state.cell), env.width)] = False  # the agent's cell holds its sprite
    assert len(np.unique(types[others])) >= 3  # floor, wall and more to tell apart
    centres = image[cell_px // 2 :: cell_px, cell_px // 2 :: cell_px]
    colours = np.array([cell.color for cell in env.legend], np.uint8)
    np.testing.assert_array_equal(centres[others], colours[types][others])


def test_render_draws_grid_lines_on_each_cells_last_row_and_column():
    cell_px = 8
    env, params = env_of("CatRoom-v0")
    _, state = env.reset(KEY, params)
    image = np.asarray(draw("CatRoom-v0", cell_px)(state))
    wall = np.asarray(env.legend[int(params.cell_type[0][0, 0])].color, float)
    np.testing.assert_array_equal(image[0, 3], wall.astype(np.uint8))  # the cell itself
    shaded = np.round(wall * 0.85).astype(np.uint8)  # its grid line, 15% darker
    np.testing.assert_array_equal(image[cell_px - 1, 3], shaded)
    np.testing.assert_array_equal(image[3, cell_px - 1], shaded)


def test_render_rejects_bad_cell_px():
    env, params = env_of("CatRoom-v0")
    with pytest.raises(ValueError, match="cell_px"):
        render(env, state_at(env, params, 1, 1), params, 12)


@pytest.mark.timeout(120)
def test_render_under_vmap():
    env, params = env_of("CatRoom-v0")
    _, state = env.reset(KEY, params)
    cells = [12, 13, 25, 60]
    states = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[
        state.replace(cell=jnp.int32(cell)) for cell in cells
    ])  # fmt: skip
    images = np.asarray(jax.jit(jax.vmap(lambda s: render(env, s, params, 8)))(states))
    assert images.shape == (4, 7 * 8, 11 * 8, 3) and images.dtype == np.uint8
    for i, cell in enumerate(cells):
        single = draw("CatRoom-v0", 8)(state.replace(cell=jnp.int32(cell)))
        np.testing.assert_array_equal(images[i], np.asarray(single))
    assert len({image.tobytes() for image in images}) == 4


@functools.cache
def rug_rollout():
    """TEST_ROOM, 6 steps of right, right, scratch (the rug post: +1, episode over)."""
    env, params = env_of("CatRoom-v0", layout=TEST_ROOM)
    rug = 1 * env.width + 3

    def to_the_rug(key, obs):
        return jnp.where(obs == rug, SCRATCH, RIGHT)

    frames, rewards, dones = rollout_frames(env, params, to_the_rug, KEY, 6, cell_px=8)
    return np.asarray(frames), np.asarray(rewards), np.asarray(dones)


def test_rollout_frames():
    env, params = env_of("CatRoom-v0", layout=TEST_ROOM)
    draw_room = draw("CatRoom-v0", 8, layout=TEST_ROOM)
    frames, rewards, dones = rug_rollout()
    assert frames.shape == (6 + 1, 7 * 8, 11 * 8, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(rewards, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(dones, [False, False, True, False, False, False])
    _, state = env.reset(KEY, params)
    np.testing.assert_array_equal(frames[0], np.asarray(draw_room(state)))
    np.testing.assert_array_equal(frames[2], np.asarray(draw_room(state_at(env, params, 1, 3))))
    for i in range(3, 7):  # scratching does not move; after the end the last frame repeats
        np.testing.assert_array_equal(frames[i], frames[2])
    assert all(not np.array_equal(frames[i], frames[i + 1]) for i in range(2))


def test_save_gif_round_trip(tmp_path):
    frames = rug_rollout()[0][:3]  # three different frames
    path = save_gif(tmp_path / "sub" / "walk.gif", frames)
    read = iio.imread(path)
    assert read.shape[0] == 3 and read.shape[1:3] == frames.shape[1:3]


def test_save_gif_keeps_playing_time(tmp_path):
    """The GIF writer (Pillow) merges identical consecutive frames into one longer
    frame: the 7 frames of the rug rollout come back as 3, playing as long (GIF stores
    centiseconds, so each frame may lose up to 10 ms)."""
    frames, fps = rug_rollout()[0], 5.0
    path = save_gif(tmp_path / "rug.gif", frames, fps=fps)
    read = iio.imread(path)
    assert read.shape[0] == 3
    durations = [iio.immeta(path, index=i)["duration"] for i in range(read.shape[0])]
    assert sum(durations) == pytest.approx(len(frames) * 1000 / fps, abs=10 * len(frames))
    # Each frame's delay is the nearest whole centisecond (fps 6: 170 ms, not Pillow's cut
    # to 160, which played at 6.25 fps; fps 7: 140 ms, 142.9 asked).
    for fps, delay in ((6, 170), (7, 140), (50, 20)):
        path = save_gif(tmp_path / "steps.gif", frames[:2], fps=fps)
        assert [iio.immeta(path, index=i)["duration"] for i in range(2)] == [delay, delay]


def test_save_gif_rejects_bad_frames_and_fps_and_keeps_an_earlier_gif(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_gif(tmp_path / "x.gif", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"uint8\[T, h, w, 3\], got uint8\(0, 8, 8, 3\)"):
        save_gif(tmp_path / "x.gif", np.zeros((0, 8, 8, 3), np.uint8))
    path = save_gif(tmp_path / "walk.gif", rug_rollout()[0][:3])
    before = path.read_bytes()
    for fps in (-1, 0, float("nan"), "6"):
        with pytest.raises(ValueError, match="fps must be a positive number"):
            save_gif(path, np.zeros((2, 8, 8, 3), np.uint8), fps=fps)
    # A delay under 20 ms plays at ~10 fps in viewers (60 gave 10 ms; 200, no delay).
    for fps in (60, 200, 0.001):  # (and a delay past 65535 centiseconds overflowed)
        with pytest.raises(ValueError, match=r"fps must be in \[0.002, 50\]"):
            save_gif(path, np.zeros((2, 8, 8, 3), np.uint8), fps=fps)
    assert path.read_bytes() == before  # (fps=-1 used to leave an unreadable file)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]  # no temporary left


def test_render_draws_the_cat_with_its_eyes_and_the_disk_centred_in_its_cell():
    """The cat is render's 8 x 8 mask scaled by cell_px / 8: 36 body cells of which one
    is an eye (row 3, column 4; the other eye, at column 1, lies off the body), so at 16
    px a cell 35 * 4 body pixels and 2 * 4 eye pixels in rows 6-7, columns 2-3 and 8-9.
    The disk is symmetric about its cell's centre and leaves the cell's grid lines (its
    last row and column) uncovered."""
    from jrl.envs.render import AGENT_COLOR, EYE_COLOR

    cell_px = 16
    env, params = env_of("CatRoom-v0")
    cell = np.asarray(draw("CatRoom-v0", cell_px)(state_at(env, params, 2, 3)))[
        2 * cell_px : 3 * cell_px, 3 * cell_px : 4 * cell_px
    ]
    body = np.all(cell == AGENT_COLOR, axis=-1)
    rows, cols = np.nonzero(np.all(cell == EYE_COLOR, axis=-1))
    assert body.sum() == 35 * 4 and rows.size == 2 * 4
    np.testing.assert_array_equal(np.unique(rows), [6, 7])
    np.testing.assert_array_equal(np.unique(cols), [2, 3, 8, 9])
    env, params = env_of("CliffWalking-v0")
    cell = np.asarray(draw("CliffWalking-v0", cell_px)(state_at(env, params, 1, 2)))[
        cell_px : 2 * cell_px, 2 * cell_px : 3 * cell_px
    ]
    disk = np.all(cell == AGENT_COLOR, axis=-1)
    assert disk.sum() > 0
    np.testing.assert_array_equal(disk, disk[::-1])
    np.testing.assert_array_equal(disk, disk[:, ::-1])
    assert not disk[-1].any() and not disk[:, -1].any()


def test_a_rollout_ends_at_the_time_limit_and_may_have_no_steps():
    """With a time limit of 3 and the agent walking into the wall above its start, the
    episode ends at its third step (done there, states repeating after it); 0 steps is
    the reset alone."""
    env, params = env_of("CatRoom-v0", layout=TEST_ROOM, max_steps_in_episode=3)
    policy = lambda key, obs: jnp.int32(UP)  # noqa: E731
    states, observations, rewards, dones = rollout_states(env, params, policy, KEY, 5)
    np.testing.assert_array_equal(dones, [False, False, True, False, False])
    np.testing.assert_array_equal(states.time, [0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(rewards[3:], [0.0, 0.0])
    states, observations, rewards, dones = rollout_states(env, params, policy, KEY, 0)
    assert states.time.shape == (1,) and observations.shape[0] == 1
    assert rewards.shape == (0,) and dones.shape == (0,)


def test_save_gif_takes_only_rgb_frames_of_at_least_one_pixel(tmp_path):
    for frames in (np.zeros((2, 8, 8, 4), np.uint8), np.zeros((2, 0, 8, 3), np.uint8)):
        with pytest.raises(ValueError, match=r"frames must be uint8\[T, h, w, 3\]"):
            save_gif(tmp_path / "x.gif", frames)
    assert not (tmp_path / "x.gif").exists()


def test_an_action_out_of_range_is_clipped_not_read_from_another_cell():
    env, params = make("CliffWalking-v0")
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    last = env.action_space(params).n - 1
    cases = [(jnp.int32(last + 1), last), (jnp.int32(7), last), (jnp.int32(-1), 0)]
    # An unsigned action is clipped as itself: cast to int32 first, 2**31 would be < 0.
    cases += [(jnp.uint8(255), last), (jnp.uint32(2**31), last), (jnp.uint32(2**32 - 1), last)]
    for action, same_as in cases:
        outcome = env.step(key, state, action, params)
        expected = env.step(key, state, jnp.int32(same_as), params)
        for a, b in zip(jax.tree.leaves(outcome), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)


def test_params_in_one_layout_play_that_layout_from_reset():
    env, params = make("BlockingMaze-v0")
    assert params.cell_type.shape[0] == 2
    key = jax.random.key(0)
    for layout in (0, 1):
        fixed = params.in_layout(layout)
        np.testing.assert_array_equal(fixed.cell_type[0], params.cell_type[layout])
        obs, state = env.reset(key, fixed)
        assert int(obs) == int(params.start[layout])
        # Every step follows the chosen layout's table, past the switch step too.
        state = state.replace(total_steps=jnp.int32(5000))
        for action in range(4):
            next_obs = env.step(key, state, jnp.int32(action), fixed)[0]
            assert int(next_obs) == int(params.next_cell[layout, state.cell, action])
    for layout in (2, -1, jnp.int32(2), np.int64(-1)):
        with pytest.raises(ValueError, match=r"layout must be in \[0, 2\)"):
            params.in_layout(layout)
    # 1.5 passed as 1 and failed in JAX's indexing; True, as a boolean mask.
    for layout in (1.5, True, jnp.float32(1), np.bool_(True)):
        with pytest.raises(ValueError, match=r"layout must be a whole number in \[0, 2\)"):
            params.in_layout(layout)


def test_a_grid_refuses_the_params_of_a_grid_of_another_shape():
    """CliffWalking (4 x 12) given WindyGridworld's params (7 x 10) played the windy
    task, its observations past the 48 states its space declares (a tabular agent's
    table clamped them onto other rows without a word)."""
    env, params = make("CliffWalking-v0")
    windy = make("WindyGridworld-v0")[1]
    key = jax.random.key(0)
    shown = r"a grid of 7 x 10 cells, 4 actions and 3 cell types, but the environment has 4 x 12"
    with pytest.raises(ValueError, match=shown):
        env.reset(key, windy)
    with pytest.raises(ValueError, match=shown):
        env.step(key, env.reset(key, params)[1], 0, windy)
    # A task of the same size with more layouts (CatRoom given CatRoomDynamic's four).
    with pytest.raises(ValueError, match="params hold 4 layouts, but the environment has 1"):
        make("CatRoom-v0")[0].reset(key, make("CatRoomDynamic-v0")[1])
    # Params of the same task in other layouts or with other values are its own.
    env.reset(key, params.replace(step_reward=jnp.float32(-2.0)))
    maze, maze_params = make("BlockingMaze-v0")
    assert int(maze.reset(key, maze_params.in_layout(1))[0]) == int(maze_params.start[1])


def test_a_replaced_step_reward_is_every_step_reward_the_task_left_to_it():
    """``replace(step_reward=r)`` changed only a bump's reward: a move onto the floor
    kept the reward the factory had copied from step_reward (WindyGridworld's moves
    -1, its bumps -2), so a sweep over it ran half the change. It now gives the task
    ``make(name, step_reward=r)`` builds; a cell type given its own reward keeps it."""
    for name, reward in (("WindyGridworld-v0", -2.0), ("CatRoom-v0", -0.1)):
        _, params = make(name)
        made = make(name, step_reward=reward)[1]
        replaced = params.replace(step_reward=reward)
        np.testing.assert_array_equal(replaced.reward, made.reward)
        np.testing.assert_array_equal(replaced.enter_reward, made.enter_reward)
        np.testing.assert_array_equal(replaced.interact_reward, made.interact_reward)
        assert not np.array_equal(replaced.reward, params.reward)
        traced = jax.jit(jax.vmap(lambda r, p=params: p.replace(step_reward=r).reward))
        np.testing.assert_array_equal(traced(jnp.array([reward]))[0], made.reward)
    # The cat room's posts keep their own scratch rewards (+1, +10, -5); its floor's
    # scratch, left to step_reward, follows it.
    _, room = make("CatRoom-v0")
    scratch = room.replace(step_reward=-0.1).interact_reward
    np.testing.assert_allclose(
        scratch, np.where(room.interact_follows_step, -0.1, room.interact_reward)
    )
    assert set(np.asarray(room.interact_reward)[~np.asarray(room.interact_follows_step)]) == {
        1,
        10,
        -5,
    }
    # A floor given its own reward stops following; another replace of step_reward
    # leaves it.
    _, windy = make("WindyGridworld-v0")
    own = windy.replace(enter_reward=windy.enter_reward.at[0].set(-3.0))
    assert float(own.replace(step_reward=-7.0).enter_reward[0]) == -3.0
    assert float(windy.replace(step_reward=-7.0).enter_reward[0]) == -7.0
    with pytest.raises(ValueError, match=r"enter_reward needs one entry per cell type \(3\)"):
        windy.replace(enter_reward=jnp.zeros(2))


def test_a_replaced_start_or_map_is_checked_before_it_runs():
    """A start outside the grid gave observations outside the observation space (a
    tabular agent's table clamps them onto its last row), one on a wall began every
    episode inside it, and a cell type past the legend's read another type's rewards."""
    _, windy = make("WindyGridworld-v0")
    with pytest.raises(ValueError, match=r"start must be cell indices in \[0, 70\), got"):
        windy.replace(start=jnp.array([100]))
    with pytest.raises(ValueError, match=r"start must be one cell index per layout"):
        windy.replace(start=jnp.array([1.5]))
    with pytest.raises(ValueError, match=r"cell_type holds 9 at layout 0, row 0, column 1"):
        windy.replace(cell_type=windy.cell_type.at[0, 0, 1].set(9))
    _, maze = make("BlockingMaze-v0")
    walls = np.asarray(maze.blocks)[np.asarray(maze.cell_type[1])].ravel()
    wall = int(np.argmax(walls))
    with pytest.raises(ValueError, match=rf"start {wall} .* of layout 1 is a blocking cell"):
        maze.replace(start=maze.start.at[1].set(wall))
    # A free cell is a start; traced starts (vmapped over) are left to the caller.
    free = int(np.argmin(walls))
    assert int(maze.replace(start=maze.start.at[1].set(free)).start[1]) == free
    starts = jax.vmap(lambda s: maze.replace(start=maze.start.at[1].set(s)).start)(
        jnp.array([free])
    )
    assert int(starts[0, 1]) == free
    assert int(maze.in_layout(1).start[0]) == int(maze.start[1])


def test_params_stacked_for_a_sweep_are_refused_outside_vmap_by_name():
    """Params with a slip probability per sweep point, stepped without ``vmap``, failed
    with NumPy's "truth value of an array ... is ambiguous"."""
    env, params = make("CliffWalking-v0")
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    stacked = params.replace(slip_prob=jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"arrays where one value goes \(slip_prob \(2,\)\)"):
        env.step(key, state, 0, stacked)
    with pytest.raises(ValueError, match=r"max_steps_in_episode \(3,\)"):
        env.reset(key, params.replace(max_steps_in_episode=jnp.array([1, 2, 3])))
    axes = jax.tree.map(lambda _: None, params).replace(slip_prob=0)
    step = jax.vmap(env.step, in_axes=(None, None, None, axes))
    rewards = step(key, state, 0, stacked)[2]
    assert rewards.shape == (2,) and float(rewards[0]) == -1.0  # up, from the start


def test_replacing_a_raw_field_rebuilds_the_tables_under_vmap_too():
    env, params = make("CliffWalking-v0")
    key = jax.random.key(0)
    _, state = env.reset(key, params)  # the start, bottom left: left bumps the edge
    up, left = jnp.int32(0), jnp.int32(2)

    def rewards(step_reward, floor_reward):
        changed = params.replace(
            step_reward=step_reward, enter_reward=params.enter_reward.at[0].set(floor_reward)
        )
        return env.step(key, state, left, changed)[2], env.step(key, state, up, changed)[2]

    assert [float(r) for r in rewards(-1.0, -1.0)] == [-1.0, -1.0]
    assert [float(r) for r in rewards(-5.0, -2.0)] == [-5.0, -2.0]
    bump, move = jax.jit(jax.vmap(rewards))(jnp.array([-1.0, -3.0]), jnp.array([-4.0, 0.0]))
    np.testing.assert_array_equal(bump, [-1.0, -3.0])
    np.testing.assert_array_equal(move, [-4.0, 0.0])
    # A replace that gives the tables keeps them; a live field (slip) needs no rebuild.
    kept = params.replace(step_reward=-5.0, reward=params.reward)
    assert float(env.step(key, state, left, kept)[2]) == -1.0
    assert params.replace(slip_prob=0.5).reward is params.reward
    with pytest.raises(ValueError, match=r"no field\(s\) \['step_rewards'\]"):
        params.replace(step_rewards=-5.0)
    # Wind is gathered by column, an index past its end clamped: a short one would
    # blow its last entry over every column after it.
    windy, windy_params = make("WindyGridworld-v0")
    with pytest.raises(
        ValueError, match=r"wind needs one entry per column \(10\), got shape \(3,\)"
    ):
        windy_params.replace(wind=jnp.array([0, 0, 2]))
    with pytest.raises(ValueError, match="wind must be whole numbers"):
        windy_params.replace(wind=[0.9] * 10)  # an int cast would make it calm
    assert windy_params.replace(wind=np.ones(10, np.int64)).wind.dtype == jnp.int32


def test_a_changed_maze_stays_changed():
    """Examples 8.2 and 8.3 change the maze once (after 1000 and 3000 steps) and keep it
    changed; the moving cat room moves its furniture every 100 episodes (README)."""
    for name, switch in (("BlockingMaze-v0", 1000), ("ShortcutMaze-v0", 3000)):
        _, params = make(name)
        assert int(params.switch_every) == switch
        steps = (switch - 1, switch, 2 * switch, 10**6)
        assert [int(layout_index(params, 0, t)) for t in steps] == [0, 1, 1, 1]
    assert int(make("CatRoomDynamic-v0")[1].switch_every) == 100


def test_cartpole_overrides_recompute_derived_fields():
    _, params = make("CartPole-v1", masspole=0.5)  # masscart 1.0, length 0.5
    assert float(params.total_mass) == pytest.approx(1.5)
    assert float(params.polemass_length) == pytest.approx(0.25)
    _, params = make("CartPole-v1", length=1.0)  # masspole 0.1
    assert float(params.polemass_length) == pytest.approx(0.1)


def test_replacing_step_reward_alone_rebuilds_the_tables():
    env, params = make("CliffWalking-v0")
    _, state = env.reset(jax.random.key(0), params)
    step = env.step(jax.random.key(0), state, jnp.int32(2), params.replace(step_reward=-5.0))
    assert float(step[2]) == -5.0


def test_each_layout_begins_at_its_own_start():
    env, params = make(
        "BlockingMaze-v0",
        layouts=("S....\n....G", ".....\n.S..G"),
        switch_after=1,
        max_steps_in_episode=1,
    )
    _, state = env.reset(jax.random.key(0), params)
    _, state, *_ = env.step(jax.random.key(0), state, 0, params)
    assert (int(state.layout), int(state.cell)) == (1, 6)


def test_params_in_one_layout_observe_and_score_that_layout():
    env, params = make("CatRoomDynamic-v0", observation="grid")
    tall = [cell.name for cell in env.legend].index("tall post")
    for layout in range(env.num_layouts):
        fixed = params.in_layout(layout)
        obs, state = env.reset(KEY, fixed)
        np.testing.assert_array_equal(np.asarray(obs[..., 1:]), params.object_planes[layout])
        post = int(np.flatnonzero(np.asarray(params.cell_type[layout]).reshape(-1) == tall)[0])
        _, _, reward, terminated, *_ = env.step(
            KEY, state.replace(cell=jnp.int32(post)), SCRATCH, fixed
        )
        assert float(reward) == 10.0 and bool(terminated), layout


def test_replacing_the_start_rebuilds_the_tables():
    env, params = make("CliffWalking-v0")
    moved = params.replace(start=jnp.array([0], jnp.int32))
    _, state = env.reset(KEY, moved)
    assert int(state.cell) == 0
    obs, *_ = env.step(KEY, state.replace(cell=jnp.int32(2 * 12 + 5)), 1, moved)  # into the cliff
    assert int(obs) == 0  # back to the new start, not the old one (36)


def test_replacing_the_map_rebuilds_the_tables():
    env, params = make("CliffWalking-v0")
    walled = params.replace(cell_type=params.cell_type.at[0, 2, 1].set(1))  # a wall at (2, 1)
    _, state = env.reset(KEY, walled)
    obs = env.step(KEY, state.replace(cell=jnp.int32(2 * 12)), 3, walled)[0]  # right from (2, 0)
    assert int(obs) == 2 * 12


def test_the_dynamic_cat_room_has_the_static_rooms_time_limit_and_rewards():
    _, static = make("CatRoom-v0")
    _, dynamic = make("CatRoomDynamic-v0")
    assert int(static.max_steps_in_episode) == int(dynamic.max_steps_in_episode) == 100
    for field in ("step_reward", "slip_prob", "enter_reward", "interact_reward"):
        np.testing.assert_array_equal(getattr(static, field), getattr(dynamic, field))


def test_rollout_states_ends_the_episode_at_the_time_limit():
    env, params = make("WindyGridworld-v0", max_steps_in_episode=3)
    right = lambda key, obs: jnp.int32(3)  # noqa: E731
    states, _, rewards, dones = rollout_states(env, params, right, KEY, 6)
    np.testing.assert_array_equal(states.cell, [30, 31, 32, 33, 33, 33, 33])
    np.testing.assert_array_equal(rewards, [-1, -1, -1, 0, 0, 0])
    np.testing.assert_array_equal(dones, [False, False, True, False, False, False])


def test_save_gif_writes_a_looping_gif(tmp_path):
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    frames[1], frames[2, :4] = 255, 128
    path = save_gif(tmp_path / "a.gif", frames)
    assert iio.immeta(path).get("loop") == 0  # 0: loop forever


@pytest.mark.parametrize(
    "floor",
    [
        CellType(".", "lava", (0, 0, 0), enter_effect=TERMINATE),
        CellType(".", "rock", (0, 0, 0), blocks=True),
    ],
)
def test_a_legend_whose_first_type_is_not_free_floor_is_refused(floor):
    goal = CellType("G", "goal", (0, 1, 0), enter_reward=1.0, enter_effect=TERMINATE)
    with pytest.raises(ValueError, match="first cell type is the floor: it must be free"):
        grid_params(["S..G"], (floor, goal))


def test_an_int_array_override_of_a_gymnax_param_keeps_its_dtype():
    _, default = make("DiscountingChain-bsuite")
    _, params = make("DiscountingChain-bsuite", reward_timestep=[1, 3, 10, 30, 100])
    assert params.reward_timestep.dtype == default.reward_timestep.dtype
    np.testing.assert_array_equal(params.reward_timestep, [1, 3, 10, 30, 100])


def test_a_type_that_only_ends_the_episode_on_interaction_gives_the_interact_action():
    floor = CellType(".", "floor", (0, 0, 0))
    button = CellType("B", "exit button", (9, 9, 9), interact_terminates=True)
    params = grid_params(["S.B"], (floor, button))
    assert params.next_cell.shape[-1] == 5
    assert bool(params.terminal[0, 2, 4]) and float(params.reward[0, 2, 4]) == -1.0


def test_make_refuses_a_name_that_is_no_string_and_a_factory_that_returns_no_pair():
    """make(3): "'int' object is not iterable"; a factory returning the env alone or a
    triple was passed on, to fail at the caller's unpacking."""
    from jrl.envs import register

    with pytest.raises(TypeError, match="an environment's name is a string, got int 3"):
        make(3)
    env, params = make("CliffWalking-v0")
    for name, made, said in [
        ("EnvAlone-v0", env, "it returned GridWorld"),
        ("Triple-v0", (env, params, 1), "it returned a tuple of 3"),
    ]:
        register(name, lambda made=made: made)
        try:
            with pytest.raises(
                TypeError, match=f"factory of '{name}' must return .env, env_params.*{said}"
            ):
                make(name)
        finally:
            REGISTRY.pop(name)


@pytest.mark.parametrize(
    "call, error, said",
    [
        (
            lambda env, p: rollout_frames(env, p, lambda k, o: 0, jax.random.key(0), -1),
            ValueError,
            "num_steps must be an int >= 0, got -1",
        ),
        (
            lambda env, p: render(env, env.reset(jax.random.key(0), p)[1], p, cell_px=16.0),
            ValueError,
            "cell_px must be a positive multiple of 8, got 16.0",
        ),
        (
            lambda env, p: render(*make("CartPole-v1")[::-1], None),
            TypeError,
            "render draws jrl's grid worlds, got EnvParams",
        ),
    ],
)
def test_rendering_refuses_a_bad_step_count_pixel_size_or_environment(call, error, said):
    """Each failed inside JAX (an MLIR error while lowering, a broadcast TypeError) or
    as AttributeError 'legend'."""
    env, params = make("CliffWalking-v0")
    with pytest.raises(error, match=said):
        call(env, params)


def test_a_task_that_does_not_cycle_stays_in_its_last_layout():
    """The Blocking and Shortcut mazes change once (Figures 8.4, 8.5): long after the
    switch, at any step count, an episode is played in the changed layout, never back in
    the first; only a cycling task (the dynamic cat room) comes round again."""
    _, blocking = env_of("BlockingMaze-v0")  # switches after 1000 steps
    _, shortcut = env_of("ShortcutMaze-v0")  # after 3000
    for total_steps in (1000, 1999, 2000, 2500, 3000, 10**6):
        assert int(layout_index(blocking, 0, total_steps)) == 1
    for total_steps in (3000, 6000, 9000):
        assert int(layout_index(shortcut, 0, total_steps)) == 1
    _, cycling = env_of("CatRoomDynamic-v0", switch_every=2)
    assert [int(layout_index(cycling, e, 0)) for e in (0, 2, 7, 8, 9)] == [0, 1, 3, 0, 0]


def test_the_dynamic_cat_room_takes_its_rewards_and_arrangements():
    """small_treat, large_treat, penalty and layouts given to the dynamic room are the
    ones it plays (the static room's tests cannot see its own factory drop them)."""
    _, params = make(
        "CatRoomDynamic-v0",
        small_treat=0.5,
        large_treat=3.0,
        penalty=-2.0,
        layouts=(TEST_ROOM, TEST_ROOM_2),
        switch_every=1,
    )
    assert params.cell_type.shape[0] == 2
    width = 11
    expected = [
        (0, (1, 3), 0.5),  # TEST_ROOM's rug post
        (0, (5, 9), 3.0),  # its tall post
        (0, (1, 6), -2.0),  # its furniture
        (1, (3, 3), 0.5),  # TEST_ROOM_2's rug post
        (1, (1, 9), 3.0),  # its tall post
        (1, (1, 6), -2.0),  # its drapes
    ]
    for layout, (row, col), reward in expected:
        cell = row * width + col
        assert float(params.reward[layout, cell, SCRATCH]) == reward, (layout, row, col)
        assert bool(params.terminal[layout, cell, SCRATCH])
