"""Seeds x a grid of sweepable hyperparameters in one compiled call.

A grid is a pytree of hyperparameters (e.g. a ``TabularHParams``) whose leaves
all have one leading axis G: the grid points. ``run_sweep`` vmaps ``train(key,
hparams)`` over seeds inside and over grid points outside, so results come back
shaped (G, num_seeds, ...), and every grid point sees the same seed keys (common
random numbers: differences between grid points are not seed noise).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def product_grid(base: Any, **axes: Sequence[float]) -> Any:
    """Cartesian product of the given values on top of ``base`` (a NamedTuple).

    ``product_grid(TabularHParams(), alpha=[0.1, 0.5], epsilon=[0.0, 0.1])`` gives
    4 grid points, the last named axis varying fastest. Unknown names raise.
    """
    fields = base._fields
    unknown = sorted(set(axes) - set(fields))
    if unknown:
        raise ValueError(
            f"{type(base).__name__} has no field {', '.join(map(repr, unknown))}; "
            f"sweepable fields: {', '.join(fields)}"
        )
    names = list(axes)
    points = list(itertools.product(*(axes[name] for name in names)))
    columns = {
        name: np.array([point[i] for point in points], np.float32) for i, name in enumerate(names)
    }
    return type(base)(
        **{
            field: columns.get(field, np.full(len(points), getattr(base, field), np.float32))
            for field in fields
        }
    )


def stack_grid(points: Sequence[Any]) -> Any:
    """Stack a list of hyperparameter NamedTuples into one grid."""
    return jax.tree.map(lambda *leaves: np.asarray(leaves, np.float32), *points)


def grid_size(grid: Any) -> int:
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(grid)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"every hyperparameter of a grid needs one leading axis of one size, got {sizes}"
        )
    return sizes.pop()


def run_sweep(train: Callable, key: jax.Array, grid: Any, num_seeds: int, jit: bool = True):
    """Run ``train`` for every grid point and seed: outputs shaped (G, num_seeds, ...)."""
    grid_size(grid)
    keys = jax.random.split(key, num_seeds)
    over_seeds = jax.vmap(train, in_axes=(0, None))
    over_grid = jax.vmap(over_seeds, in_axes=(None, 0))
    fn = jax.jit(over_grid) if jit else over_grid
    return fn(keys, jax.tree.map(jnp.asarray, grid))
