"""JAX-native environments on the gymnax 1.0 API, and a registry that also hands
through gymnax's own (``make``)."""

from jrl.envs.grid import CellType, GridParams, GridState, GridWorld, grid_params, parse_layout
from jrl.envs.registry import make, register, registered_envs
from jrl.envs.render import render, rollout_frames, save_gif

__all__ = [
    "CellType",
    "GridParams",
    "GridState",
    "GridWorld",
    "grid_params",
    "make",
    "parse_layout",
    "register",
    "registered_envs",
    "render",
    "rollout_frames",
    "save_gif",
]
