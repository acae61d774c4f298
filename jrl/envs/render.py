"""Pictures of grid states, rendered in JAX (so a scanned rollout renders under
``jit``/``vmap``), and GIFs of them (imageio)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

from jrl.envs.grid import GridParams, GridState, GridWorld
from jrl.run_dir import write_bytes_atomic

_CAT = """
.#....#.
.##..##.
.######.
#.#####.
########
.######.
..####..
........
"""
_CAT_EYES = """
........
........
........
.#..#...
........
........
........
........
"""
AGENT_COLOR = (235, 120, 30)
EYE_COLOR = (20, 20, 20)
GRID_LINE = 0.85


def _mask(ascii_mask: str) -> np.ndarray:
    return np.array([[ch == "#" for ch in row] for row in ascii_mask.split()], dtype=bool)


def _sprite(kind: str, cell_px: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "cat":
        scale = cell_px // 8
        body, eyes = (np.kron(_mask(m), np.ones((scale, scale), bool)) for m in (_CAT, _CAT_EYES))
        pad = cell_px - body.shape[0]
        body, eyes = (np.pad(m, ((pad // 2, pad - pad // 2),) * 2) for m in (body, eyes))
        return body & ~eyes, eyes
    centre = (cell_px - 1) / 2
    yy, xx = np.mgrid[:cell_px, :cell_px]
    disk = (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.35 * cell_px) ** 2
    return disk, np.zeros_like(disk)


def render(env: GridWorld, state: GridState, params: GridParams | None = None, cell_px: int = 24):
    """RGB image uint8[H * cell_px, W * cell_px, 3] of the layout in use and the agent.

    Cells take their legend colour, with thin grid lines; the agent is a cat in the
    cat rooms and a disk elsewhere. Pure jnp: works under ``jit`` and ``vmap``.
    """
    if not isinstance(env, GridWorld):
        raise TypeError(
            f"render draws jrl's grid worlds, got {type(env).__name__}: for gymnax's "
            "environments, jrl.envs.render_gymnax.episode_frames"
        )
    if isinstance(cell_px, bool) or not isinstance(cell_px, int) or cell_px < 8 or cell_px % 8:
        raise ValueError(f"cell_px must be a positive multiple of 8, got {cell_px!r}")
    params = env.default_params if params is None else params
    palette = jnp.asarray([cell.color for cell in env.legend], jnp.float32)
    cells = palette[params.cell_type[state.layout]]
    image = jnp.repeat(jnp.repeat(cells, cell_px, axis=0), cell_px, axis=1)
    edge = np.zeros(cell_px, bool)
    edge[-1] = True
    lines = np.tile(edge, env.height)[:, None] | np.tile(edge, env.width)[None, :]
    image = jnp.where(lines[..., None], image * GRID_LINE, image)

    body, eyes = _sprite(getattr(env, "sprite", "disk"), cell_px)
    row, col = jnp.divmod(state.cell, env.width)
    canvas = jnp.zeros((env.height * cell_px, env.width * cell_px), jnp.uint8)
    where = (row * cell_px, col * cell_px)
    body_mask = jax.lax.dynamic_update_slice(canvas, jnp.asarray(body, jnp.uint8), where)
    eyes_mask = jax.lax.dynamic_update_slice(canvas, jnp.asarray(eyes, jnp.uint8), where)
    image = jnp.where(body_mask[..., None] > 0, jnp.asarray(AGENT_COLOR, jnp.float32), image)
    image = jnp.where(eyes_mask[..., None] > 0, jnp.asarray(EYE_COLOR, jnp.float32), image)
    return jnp.round(image).astype(jnp.uint8)


def refuse_wrapped(env) -> None:
    """ValueError for a gymnax wrapper: stepping without auto-reset (``step_env``) would
    mix the wrapper's reset with the inner environment's step."""
    from gymnax.wrappers.purerl import GymnaxWrapper

    if isinstance(env, GymnaxWrapper):
        raise ValueError(
            f"{type(env).__name__} wraps the environment, and the episode is stepped "
            "without auto-reset, which gymnax wrappers do not pass through: give the "
            "environment it wraps and make the policy do the wrapper's change to the "
            "observation (for FlattenObservationWrapper: obs.reshape(-1))"
        )


def rollout_states(
    env,
    params,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    num_steps: int,
):
    """Run one episode of ``policy(key, obs) -> action`` in a scan, on any gymnax-API
    environment, keeping every state.

    Returns (states [num_steps + 1, ...], observations [num_steps + 1, ...], rewards
    float32[num_steps], dones bool[num_steps]): index 0 is the reset. Steps past the
    end of the episode (terminated, or ``state.time`` at ``max_steps_in_episode``)
    repeat its last state and observation with zero reward; ``step_env`` does not
    auto-reset, so the last state is where the episode ended. A gymnax wrapper
    (``GymnaxWrapper``) is refused: its ``step_env`` is the inner environment's.
    """
    refuse_wrapped(env)
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
    key_reset, key_steps = jax.random.split(key)
    obs, state = env.reset(key_reset, params)

    def one_step(carry, key_step):
        obs, state, finished = carry
        key_act, key_env = jax.random.split(key_step)
        action = policy(key_act, obs)
        obs_next, state_next, reward, terminated, _ = env.step_env(key_env, state, action, params)
        done = terminated | (state_next.time >= params.max_steps_in_episode)
        state_next, obs_next = jax.tree.map(
            lambda old, new: jnp.where(finished, old, new), (state, obs), (state_next, obs_next)
        )
        return (obs_next, state_next, finished | done), (
            state_next,
            obs_next,
            jnp.where(finished, 0.0, reward),
            done & ~finished,
        )

    _, (states, observations, rewards, dones) = jax.lax.scan(
        one_step, (obs, state, jnp.bool_(False)), jax.random.split(key_steps, num_steps)
    )
    first = jax.tree.map(lambda x, xs: jnp.concatenate([jnp.asarray(x)[None], xs]), state, states)
    return first, jnp.concatenate([jnp.asarray(obs)[None], observations]), rewards, dones


def rollout_frames(
    env: GridWorld,
    params: GridParams,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    num_steps: int,
    cell_px: int = 24,
):
    """Run one episode of ``policy(key, obs) -> action`` on a grid world and render it.

    Returns (frames uint8[num_steps + 1, h, w, 3], rewards float32[num_steps],
    dones bool[num_steps]). Steps past the end of the episode (or of the time
    limit) repeat its last frame with zero reward, so the GIF ends where it ended.
    """
    states, _, rewards, dones = rollout_states(env, params, policy, key, num_steps)
    frames = jax.vmap(lambda state: render(env, state, params, cell_px))(states)
    return frames, rewards, dones


def save_gif(path: str | Path, frames, fps: float = 6.0) -> Path:
    """Write frames uint8[T, h, w, 3] (T, h, w >= 1) as a looping GIF at ``fps`` frames
    per second (> 0); returns the path. Written atomically: a reader, or an earlier GIF
    at ``path``, never sees half a file.

    GIF delays are whole hundredths of a second: each frame's is 1000 / fps ms rounded
    to the nearest 10 (fps 6: 170 ms); fps above 50 is refused (delays under 20 ms play
    at about 10 fps in browsers and most viewers), and below 0.002 (a delay is at most
    655.35 s). The GIF writer merges identical
    consecutive frames into one shown for their total time, so a file read back may
    hold fewer frames than were given."""
    frames = np.asarray(frames)
    if (
        frames.ndim != 4
        or frames.shape[-1] != 3
        or frames.dtype != np.uint8
        or 0 in frames.shape[:3]
    ):
        raise ValueError(f"frames must be uint8[T, h, w, 3], got {frames.dtype}{frames.shape}")
    if (
        isinstance(fps, bool)
        or not isinstance(fps, int | float | np.integer | np.floating)
        or not 0 < fps < np.inf
    ):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not 0.002 <= fps <= 50:
        raise ValueError(
            f"fps must be in [0.002, 50], got {fps}: a GIF's delays are whole hundredths "
            "of a second, at most 65535 of them, and viewers play those under 20 ms at "
            "about 10 frames per second"
        )
    # Pillow cuts the delay to whole centiseconds (166.7 ms to 160: fps 6 played at 6.25).
    delay = 10 * round(100 / fps)
    data = iio.imwrite("<bytes>", frames, extension=".gif", duration=delay, loop=0)
    path = Path(path)
    write_bytes_atomic(path, data)
    return path
