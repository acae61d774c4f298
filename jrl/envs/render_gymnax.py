"""Pictures of gymnax environments, drawn with NumPy on the host from a rollout's states
(``jrl.envs.render.rollout_states``), and the one entry point that renders an episode
of any environment that can be rendered (``episode_frames``).

- Classic control, from the state, in the geometry of Gym's own renderers at half
  their size: CartPole-v1 (cart and pole on a track, 300 x 200), Acrobot-v1 (two
  links and the goal line, 250 x 250), Pendulum-v1 (a rod from the pivot, 250 x 250),
  MountainCar-v0 and MountainCarContinuous-v0 (the car on the hill, a flag at the
  goal, 300 x 200).
- Any environment whose observation is an image-like (H, W, C) grid (the MinAtar
  games), from the observation: each channel gets a colour of ``PALETTE`` and a cell
  takes the colour of its highest active channel (as MinAtar's own display does), on a
  dark background, ``cell_px`` pixels a cell.
- jrl's grid worlds: ``jrl.envs.render.rollout_frames`` (drawn in JAX).

Every frame is uint8[h, w, 3], ready for ``jrl.envs.render.save_gif``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnax
import jax
import numpy as np

from jrl.envs.grid import GridWorld
from jrl.envs.render import refuse_wrapped, rollout_frames, rollout_states

BACKGROUND = (255, 255, 255)
TRACK = (0, 0, 0)
CART = (40, 40, 40)
POLE = (202, 152, 101)
AXLE = (129, 132, 203)
LINK = (0, 204, 204)
JOINT = (204, 204, 0)
ROD = (204, 77, 77)
PIVOT = (0, 0, 0)
GROUND = (225, 235, 215)
HILL = (0, 0, 0)
CAR = (40, 40, 40)
WHEEL = (128, 128, 128)
FLAG = (204, 204, 0)
# One colour per observation channel (matplotlib's tab10, repeated past 10 channels).
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
EMPTY_CELL = (20, 20, 20)


class Canvas:
    """An RGB image to draw shapes on, in pixel coordinates (x right, y down)."""

    def __init__(self, height: int, width: int, color=BACKGROUND):
        self.image = np.empty((height, width, 3), np.uint8)
        self.image[:] = color
        # Pixel centres.
        self.y, self.x = np.mgrid[:height, :width] + 0.5

    def fill(self, mask: np.ndarray, color) -> None:
        self.image[mask] = color

    def segment(self, p0, p1, width: float, color) -> None:
        """A thick line from p0 to p1 (x, y), with round ends."""
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else ((self.x - x0) * dx + (self.y - y0) * dy) / length2
        t = np.clip(t, 0.0, 1.0)
        distance2 = (self.x - (x0 + t * dx)) ** 2 + (self.y - (y0 + t * dy)) ** 2
        self.fill(distance2 <= (width / 2) ** 2, color)

    def disk(self, centre, radius: float, color) -> None:
        self.fill((self.x - centre[0]) ** 2 + (self.y - centre[1]) ** 2 <= radius**2, color)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color) -> None:
        self.fill((self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1), color)


def draw_cartpole(state, obs, params) -> np.ndarray:
    """Cart at ``state.x`` on a track spanning +-x_threshold, pole at ``state.theta``
    (0 is upright, positive leans right), 300 x 200."""
    width, height = 300, 200
    scale = width / (2 * float(params.x_threshold))
    pole_length = scale * 2 * float(params.length)
    cart_w, cart_h = 25.0, 15.0
    cart_x, cart_y = float(state.x) * scale + width / 2, height - 50.0
    canvas = Canvas(height, width)
    canvas.rect(0, cart_y - 0.5, width, cart_y + 0.5, TRACK)
    canvas.rect(
        cart_x - cart_w / 2, cart_y - cart_h / 2, cart_x + cart_w / 2, cart_y + cart_h / 2, CART
    )
    axle = (cart_x, cart_y - cart_h / 4)
    theta = float(state.theta)
    tip = (axle[0] + pole_length * math.sin(theta), axle[1] - pole_length * math.cos(theta))
    canvas.segment(axle, tip, 5.0, POLE)
    canvas.disk(axle, 2.5, AXLE)
    return canvas.image


def draw_acrobot(state, obs, params) -> np.ndarray:
    """Two links from the pivot at the centre (angles 0, 0: hanging straight down) and
    the goal line one link length above the pivot, 250 x 250."""
    size = 250
    l1, l2 = float(params.link_length_1), float(params.link_length_2)
    scale = size / (2 * (l1 + l2 + 0.2))
    theta1, theta2 = float(state.joint_angle1), float(state.joint_angle2)
    # World coordinates, y up, as Gym's Acrobot draws them.
    p1 = (l1 * math.sin(theta1), -l1 * math.cos(theta1))
    p2 = (p1[0] + l2 * math.sin(theta1 + theta2), p1[1] - l2 * math.cos(theta1 + theta2))

    def pixel(point):
        return (size / 2 + point[0] * scale, size / 2 - point[1] * scale)

    canvas = Canvas(size, size)
    goal_y = size / 2 - 1.0 * scale
    canvas.rect(0, goal_y - 0.5, size, goal_y + 0.5, TRACK)
    canvas.segment(pixel((0.0, 0.0)), pixel(p1), 0.2 * scale, LINK)
    canvas.segment(pixel(p1), pixel(p2), 0.2 * scale, LINK)
    for joint in ((0.0, 0.0), p1):
        canvas.disk(pixel(joint), 0.1 * scale, JOINT)
    return canvas.image


def draw_pendulum(state, obs, params) -> np.ndarray:
    """A rod of length 1 from the pivot at the centre at ``state.theta`` (0 is upright),
    250 x 250."""
    size = 250
    scale = size / 4.4
    theta = float(state.theta)
    pivot = (size / 2, size / 2)
    tip = (pivot[0] - scale * math.sin(theta), pivot[1] - scale * math.cos(theta))
    canvas = Canvas(size, size)
    canvas.segment(pivot, tip, 0.2 * scale, ROD)
    canvas.disk(tip, 0.1 * scale, ROD)
    canvas.disk(pivot, 0.05 * scale, PIVOT)
    return canvas.image


def draw_mountain_car(state, obs, params) -> np.ndarray:
    """The hill sin(3x) * 0.45 + 0.55 over [min_position, max_position], the car at
    ``state.position`` along its slope, a flag at the goal, 300 x 200."""
    width, height = 300, 200
    low, high = float(params.min_position), float(params.max_position)
    scale = width / (high - low)

    def hill(x):
        return np.sin(3 * x) * 0.45 + 0.55

    def pixel(x, y):
        return ((x - low) * scale, height - y * scale)

    canvas = Canvas(height, width)
    surface = height - hill(low + canvas.x / scale) * scale
    canvas.fill(canvas.y >= surface, GROUND)
    canvas.fill(np.abs(canvas.y - surface) <= 1.0, HILL)

    flag_x, flag_y = pixel(float(params.goal_position), hill(float(params.goal_position)))
    canvas.rect(flag_x - 0.5, flag_y - 25, flag_x + 0.5, flag_y, TRACK)
    canvas.rect(flag_x, flag_y - 25, flag_x + 12, flag_y - 19, FLAG)

    position = float(state.position)
    angle = math.atan(1.35 * math.cos(3 * position))  # the hill's slope, in pixels
    along = (math.cos(angle), -math.sin(angle))  # image coordinates: y down
    normal = (-math.sin(angle), -math.cos(angle))  # away from the ground
    base_x, base_y = pixel(position, hill(position))
    clearance, car_w, car_h = 5.0, 20.0, 10.0
    centre = (
        base_x + normal[0] * (clearance + car_h / 2),
        base_y + normal[1] * (clearance + car_h / 2),
    )
    half = (along[0] * (car_w - car_h) / 2, along[1] * (car_w - car_h) / 2)
    canvas.segment(
        (centre[0] - half[0], centre[1] - half[1]),
        (centre[0] + half[0], centre[1] + half[1]),
        car_h,
        CAR,
    )
    for side in (-1, 1):
        wheel = (
            base_x + normal[0] * clearance + side * along[0] * car_w / 3,
            base_y + normal[1] * clearance + side * along[1] * car_w / 3,
        )
        canvas.disk(wheel, 3.0, WHEEL)
    return canvas.image


def draw_channels(obs, cell_px: int = 16) -> np.ndarray:
    """An (H, W, C) observation as an image: a cell takes ``PALETTE[c]`` of its highest
    active channel c (value > 0), ``EMPTY_CELL`` where none is; uint8[H * cell_px,
    W * cell_px, 3]."""
    obs = np.asarray(obs)
    if obs.ndim != 3:
        raise ValueError(f"an image-like observation is (H, W, C), got shape {obs.shape}")
    channels = obs.shape[-1]
    colours = np.array(
        [EMPTY_CELL, *(PALETTE[c % len(PALETTE)] for c in range(channels))], np.uint8
    )
    index = np.max((obs > 0) * np.arange(1, channels + 1), axis=-1)
    cells = colours[index]
    image = np.repeat(np.repeat(cells, cell_px, axis=0), cell_px, axis=1)
    image[cell_px - 1 :: cell_px, :] //= 2  # grid lines
    image[:, cell_px - 1 :: cell_px] //= 2
    return image


CLASSIC_CONTROL: dict[str, Callable] = {
    "CartPole-v1": draw_cartpole,
    "Acrobot-v1": draw_acrobot,
    "Pendulum-v1": draw_pendulum,
    "MountainCar-v0": draw_mountain_car,
    "MountainCarContinuous-v0": draw_mountain_car,
}


def renderable_envs() -> list[str]:
    """Ids of the environments ``episode_frames`` can draw: jrl's grid worlds, the
    classic-control tasks above, and gymnax's MinAtar games (image observations)."""
    from jrl.envs.registry import REGISTRY

    minatar = [name for name in gymnax.registered_envs if name.endswith("-MinAtar")]
    return [*REGISTRY, *CLASSIC_CONTROL, *minatar]


def frame_drawer(name: str, env, params, cell_px: int = 16) -> Callable:
    """``draw(state, obs) -> uint8[h, w, 3]`` for a gymnax environment (one time step's
    state and observation, as NumPy); ValueError naming what can be rendered when
    ``name`` is none of it."""
    if name in CLASSIC_CONTROL:
        draw = CLASSIC_CONTROL[name]
        return lambda state, obs: draw(state, obs, params)
    shape = getattr(env.observation_space(params), "shape", ())
    if len(shape) == 3:
        return lambda state, obs: draw_channels(obs, cell_px)
    raise ValueError(
        f"{name} cannot be rendered (no drawing of its state, and its observation of shape "
        f"{tuple(shape)} is not an (H, W, C) image); these can: {', '.join(renderable_envs())}, "
        "and any environment with (H, W, C) observations"
    )


def episode_frames(
    name: str,
    env,
    params,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    num_steps: int,
    cell_px: int | None = None,
) -> np.ndarray:
    """Frames uint8[num_steps + 1, h, w, 3] of one episode of ``policy(key, obs) ->
    action`` on environment ``name`` (``env``, ``params``); past the episode's end the
    last frame repeats. ``cell_px``: pixels per grid cell (grid worlds: a multiple of
    8, default 24; image observations: default 16). ValueError, before anything runs,
    for an environment that cannot be rendered or is wrapped (see ``rollout_states``)."""
    refuse_wrapped(env)
    if isinstance(env, GridWorld):
        frames, _, _ = rollout_frames(env, params, policy, key, num_steps, cell_px or 24)
        return np.asarray(frames)
    draw = frame_drawer(name, env, params, cell_px or 16)
    states, observations, _, _ = rollout_states(env, params, policy, key, num_steps)
    states = jax.tree.map(np.asarray, states)
    observations = np.asarray(observations)
    return np.stack([
        draw(jax.tree.map(lambda x, t=t: x[t], states), observations[t])
        for t in range(num_steps + 1)
    ])  # fmt: skip
