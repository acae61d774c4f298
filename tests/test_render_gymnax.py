"""Rendering gymnax environments: classic-control frames drawn from the state, MinAtar's
channels coloured, episodes as GIFs from the CLI and from a trained run."""

import functools
import subprocess
import sys

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control import acrobot, cartpole, mountain_car, pendulum

from jrl.envs import make
from jrl.envs.render_gymnax import (
    BACKGROUND,
    CAR,
    CART,
    EMPTY_CELL,
    FLAG,
    GROUND,
    LINK,
    PALETTE,
    POLE,
    ROD,
    TRACK,
    draw_acrobot,
    draw_cartpole,
    draw_channels,
    draw_mountain_car,
    draw_pendulum,
    episode_frames,
    frame_drawer,
)

pytestmark = pytest.mark.timeout(600)


def pixels_of(image, color):
    """(rows, cols) of the pixels of exactly ``color``."""
    return np.nonzero(np.all(image == np.asarray(color, np.uint8), axis=-1))


def test_the_cart_is_drawn_where_state_x_puts_it():
    params = cartpole.EnvParams()
    scale = 300 / (2 * params.x_threshold)  # pixels per metre: the track spans the frame
    for x in (-1.5, -0.5, 0.0, 1.0, 2.0):
        state = cartpole.EnvState(x=x, x_dot=0.0, theta=0.0, theta_dot=0.0, time=0)
        image = draw_cartpole(state, None, params)
        assert image.shape == (200, 300, 3) and image.dtype == np.uint8
        rows, cols = pixels_of(image, CART)
        assert cols.mean() + 0.5 == pytest.approx(150 + x * scale, abs=0.5)  # pixel centres
        assert rows.mean() + 0.5 == pytest.approx(150, abs=1)  # Gym's: 50 px above the bottom
    # The pole leans the way theta says (positive: to the right) and stands upright at 0.
    centre = {}
    for theta in (-0.4, 0.0, 0.4):
        state = cartpole.EnvState(x=0.0, x_dot=0.0, theta=theta, theta_dot=0.0, time=0)
        rows, cols = pixels_of(draw_cartpole(state, None, params), POLE)
        centre[theta] = cols.mean() + 0.5
        assert rows.max() < 150  # above the cart
    assert centre[-0.4] < 149 < centre[0.0] < 151 < centre[0.4]


def test_pendulum_acrobot_and_car_follow_their_state():
    up, down = (
        draw_pendulum(pendulum.EnvState(theta=t, theta_dot=0.0, last_u=0.0, time=0), None, None)
        for t in (0.0, np.pi)
    )
    assert pixels_of(up, ROD)[0].mean() < 125 < pixels_of(down, ROD)[0].mean()
    # Positive theta turns the rod anticlockwise, to the left, as Gym draws it.
    left = draw_pendulum(
        pendulum.EnvState(theta=np.pi / 2, theta_dot=0.0, last_u=0.0, time=0), None, None
    )
    assert pixels_of(left, ROD)[1].mean() < 110
    params = acrobot.EnvParams()

    def links(theta1, theta2):
        state = acrobot.EnvState(
            joint_angle1=theta1, joint_angle2=theta2, velocity_1=0.0, velocity_2=0.0, time=0
        )
        return pixels_of(draw_acrobot(state, None, params), LINK)

    assert links(0.0, 0.0)[0].min() >= 125 - 6  # hanging below the pivot
    rows, cols = links(np.pi, 0.0)  # straight up: its tip above the goal line
    assert rows.min() < 125 - 250 / 4.4
    rows, cols = links(np.pi / 2, 0.0)  # straight out to the right
    assert cols.min() >= 125 - 6 and cols.max() > 240
    # The second link bends by joint_angle2 at the elbow: with the first link hanging
    # (elbow at row 125 + 250 / 4.4 = 181.8), theta2 = pi/2 points it right, to column
    # 181.8 (links 0.2 * 250 / 4.4 = 11.4 px wide), and -pi/2 left, to 68.2; hanging
    # straight (theta2 = 0), it would reach row 238.6, in columns 119 .. 131.
    rows, cols = links(0.0, np.pi / 2)
    assert cols.max() > 175 and cols.min() >= 125 - 6 and rows.max() < 195
    rows, cols = links(0.0, -np.pi / 2)
    assert cols.min() < 75 and cols.max() <= 125 + 6 and rows.max() < 195
    params = mountain_car.EnvParams()
    where = [
        pixels_of(
            draw_mountain_car(
                mountain_car.EnvState(position=p, velocity=0.0, time=0), None, params
            ),
            CAR,
        )[1].mean()
        for p in (-1.0, -0.5, 0.0, 0.4)
    ]
    assert np.all(np.diff(where) > 20)
    # The flag marks the goal: its left edge at goal_position on the 300 px track.
    flag_cols = pixels_of(
        draw_mountain_car(mountain_car.EnvState(position=-0.5, velocity=0.0, time=0), None, params),
        FLAG,
    )[1]
    span = params.max_position - params.min_position
    goal = (params.goal_position - params.min_position) / span * 300
    assert flag_cols.size and flag_cols.min() == pytest.approx(goal, abs=1.5)


def test_channels_take_their_palette_colour_the_highest_on_top():
    obs = np.zeros((3, 5, 4), bool)
    obs[1, 3, 2] = True
    obs[2, 4, [0, 3]] = True
    image = draw_channels(obs, cell_px=8)
    assert image.shape == (24, 40, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[1 * 8 + 3, 3 * 8 + 3], PALETTE[2])
    np.testing.assert_array_equal(image[2 * 8 + 3, 4 * 8 + 3], PALETTE[3])
    np.testing.assert_array_equal(image[3, 3], EMPTY_CELL)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        draw_channels(obs[..., 0])


@functools.cache
def random_episode(name, num_steps=12, seed=0):
    env, params = make(name)
    space = env.action_space(params)
    policy = lambda key, obs: space.sample(key)  # noqa: E731
    return episode_frames(name, env, params, policy, jax.random.key(seed), num_steps)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("CartPole-v1", (200, 300)),
        ("Acrobot-v1", (250, 250)),
        ("Pendulum-v1", (250, 250)),
        ("MountainCarContinuous-v0", (200, 300)),
        ("Breakout-MinAtar", (160, 160)),
    ],
)
def test_random_episodes_render_frame_by_frame(name, shape):
    frames = random_episode(name)
    assert frames.shape == (13, *shape, 3) and frames.dtype == np.uint8
    # Every step of these moves something (the ball, in Breakout) in the first steps.
    assert all(not np.array_equal(frames[t], frames[t + 1]) for t in range(3))
    env, params = make(name)
    _, state = env.reset(jax.random.split(jax.random.key(0))[0], params)
    obs = env.get_obs(state)
    first = frame_drawer(name, env, params)(state, np.asarray(obs))
    np.testing.assert_array_equal(frames[0], first)  # index 0 is the reset


def test_an_environment_without_a_renderer_is_named_with_those_that_have_one(tmp_path, capsys):
    from jrl.cli import main

    out = tmp_path / "c.gif"
    assert main(["render", "--random", "--env", "Catch-bsuite", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Catch-bsuite cannot be rendered" in err
    for name in ("CatRoom-v0", "CartPole-v1", "Pendulum-v1", "MountainCar-v0", "Breakout-MinAtar"):
        assert name in err
    assert not out.exists()


def test_jrl_render_random_cartpole_gif(tmp_path):
    """The GIF holds the episode's frames (identical consecutive frames, after the pole
    fell, merge into one), as drawn in-process for the same key."""
    out = tmp_path / "cartpole.gif"
    done = subprocess.run(
        [sys.executable, "-m", "jrl.cli", "render", "--random", "--env", "CartPole-v1",
         "--out", str(out), "--max-steps", "40", "--seed", "3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frames = random_episode("CartPole-v1", 40, 3)
    changes = [not np.array_equal(frames[t], frames[t + 1]) for t in range(40)]
    assert not all(changes)  # a random pole falls within 40 steps: the last frame repeats
    gif = iio.imread(out)
    assert gif.shape == (1 + sum(changes), 200, 300, 3)
    assert np.abs(gif[0].astype(int) - frames[0]).mean() < 1.0


def test_render_a_trained_ppo_run_on_pendulum(tmp_path):
    """`jrl render RUN_DIR` on a gymnax run: the greedy (Gaussian mean) PPO policy."""
    from jrl.run_analysis import greedy_act_fn, render_run, restore_run
    from jrl.training import RunSpec, train

    spec = RunSpec(
        agent="ppo",
        env="Pendulum-v1",
        config={"total_timesteps": 256, "num_steps": 32, "hidden_sizes": (8,), "update_epochs": 1},
    )
    train(spec, tmp_path / "run", progress=False)
    path = render_run(tmp_path / "run", tmp_path / "p.gif", "", False, seed=0, max_steps=15)
    gif = iio.imread(path)
    assert gif.shape == (16, 250, 250, 3)  # a pendulum swings on: every frame differs
    built, state = restore_run(tmp_path / "run")
    act = greedy_act_fn(built, jax.tree.map(lambda x: x[0, 0], state))
    obs = jnp.array([1.0, 0.0, 0.5])
    actions = [np.asarray(act(jax.random.key(k), obs)) for k in range(3)]
    assert actions[0].shape == (1,) and abs(float(actions[0][0])) <= 2.0  # within bounds
    assert all(np.array_equal(actions[0], a) for a in actions)  # greedy: no sampling


def test_a_wrapped_environment_is_refused_naming_what_to_give_instead():
    """gymnax wrappers pass ``step_env`` to the inner environment: an episode stepped
    without auto-reset mixed the wrapper's reset with the inner step (a shape error for
    FlattenObservationWrapper, "cannot be rendered" from episode_frames)."""
    from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper

    from jrl.envs.render import rollout_states

    policy = lambda key, obs: jnp.int32(0)  # noqa: E731
    key = jax.random.key(0)
    for name in ("CatRoom-v0", "Breakout-MinAtar"):
        env, params = make(name, **({"observation": "grid"} if name == "CatRoom-v0" else {}))
        for wrapped in (FlattenObservationWrapper(env), LogWrapper(env)):
            message = f"{type(wrapped).__name__} wraps the env"
            with pytest.raises(ValueError, match=message):
                rollout_states(wrapped, params, policy, key, 3)
            with pytest.raises(ValueError, match=message):
                episode_frames(name, wrapped, params, policy, key, 3)


def test_episode_frames_of_a_grid_world_default_to_24_pixels_a_cell():
    env, params = make("CatRoom-v0")
    frames = episode_frames(
        "CatRoom-v0", env, params, lambda k, o: jnp.int32(0), jax.random.key(0), 2
    )
    assert frames.shape == (3, 7 * 24, 11 * 24, 3)


def test_the_pole_and_the_goal_line_are_drawn_at_their_size():
    """The pole is 5 px wide and 2 * length long (Gym's 1 m pole, 62.5 px on the 4.8 m
    track), from the axle at row 150 - 15 / 4 = 146.25: at theta 0 its round top (radius
    2.5) reaches row 146.25 - 62.5 - 2.5 = 81.25, so its pixel centres span rows 81 ..
    and columns 147 .. 152 (centres 147.5 .. 152.5 within 2.5 of 150). Acrobot's goal
    line is one link above the pivot: row 125 - 250 / 4.4 = 68.2, across the frame."""
    params = cartpole.EnvParams()
    state = cartpole.EnvState(x=0.0, x_dot=0.0, theta=0.0, theta_dot=0.0, time=0)
    rows, cols = pixels_of(draw_cartpole(state, None, params), POLE)
    assert rows.min() == 81
    np.testing.assert_array_equal(np.unique(cols), np.arange(147, 153))
    state = acrobot.EnvState(
        joint_angle1=0.0, joint_angle2=0.0, velocity_1=0.0, velocity_2=0.0, time=0
    )
    rows, cols = pixels_of(draw_acrobot(state, None, acrobot.EnvParams()), TRACK)
    np.testing.assert_array_equal(np.unique(rows), [68])
    assert (cols.min(), cols.max()) == (0, 249)


def test_the_mountain_car_stands_on_the_ground_along_its_slope():
    """Ground below the hill's surface and sky above it; the car tilted with the slope,
    uphill to the right at position 0 (slope 1.35 cos 0 > 0: its right end higher, at
    smaller rows) and downhill at -1 (cos(-3) < 0)."""
    params = mountain_car.EnvParams()

    def image(position):
        state = mountain_car.EnvState(position=position, velocity=0.0, time=0)
        return draw_mountain_car(state, None, params)

    low = image(-0.5)
    assert np.all(low[0] == BACKGROUND)  # the hill's top is at row 200 - 166.7 = 33.3
    assert np.all(low[-1] == GROUND)  # its foot at row 200 - 0.1 * 166.7 = 183.3
    rows, cols = pixels_of(image(0.0), CAR)
    assert np.corrcoef(cols, rows)[0, 1] < -0.5
    rows, cols = pixels_of(image(-1.0), CAR)
    assert np.corrcoef(cols, rows)[0, 1] > 0.5


def test_channel_grid_lines_darken_each_cells_last_row_and_column():
    image = draw_channels(np.zeros((2, 2, 1)), cell_px=8)
    half = np.asarray(EMPTY_CELL) // 2
    for r, c in ((3, 3), (0, 3), (3, 0), (11, 11)):
        np.testing.assert_array_equal(image[r, c], EMPTY_CELL)
    for r, c in ((7, 3), (3, 7), (15, 11), (11, 15)):
        np.testing.assert_array_equal(image[r, c], half)


def test_episode_frames_of_image_observations_take_cell_px():
    env, params = make("Breakout-MinAtar")  # 10 x 10 cells
    frames = episode_frames(
        "Breakout-MinAtar", env, params, lambda k, o: jnp.int32(0), jax.random.key(0), 2, 4
    )
    assert frames.shape == (3, 40, 40, 3)
