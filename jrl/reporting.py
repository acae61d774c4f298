"""Results on disk: JSON written atomically, and learning-curve figures."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy and jax arrays and scalars
        return value.tolist()
    return value


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` (numpy/jax arrays allowed) as JSON via a temp file and rename,
    so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(_jsonable(data), f, indent=2)
        f.write("\n")
    os.replace(f.name, path)
    return path


def mean_and_ci(values, axis: int = 0, z: float = 1.96):
    """Mean over ``axis`` and the half-width of its normal 95% confidence interval."""
    values = np.asarray(values, np.float64)
    n = values.shape[axis]
    sem = values.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(values.mean(axis))
    return values.mean(axis=axis), z * sem


def smooth(values, window: int):
    """Trailing moving average along the last axis (window 1: unchanged)."""
    values = np.asarray(values, np.float64)
    if window <= 1:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.repeat(values[..., :1], window - 1, axis=-1), values], axis=-1)
    return np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="valid"), -1, padded)


def plot_curves(
    path: str | Path,
    curves: Mapping[str, np.ndarray],
    *,
    x=None,
    xlabel: str,
    ylabel: str,
    title: str,
    ylim=None,
    hlines: Mapping[str, float] | None = None,
):
    """One line per label: the mean over seeds of ``curves[label]`` (float[seeds, T])
    with a shaded 95% confidence band; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for label, values in curves.items():
        values = np.asarray(values, np.float64)
        mean, half = mean_and_ci(values)
        xs = np.arange(1, mean.shape[0] + 1) if x is None else np.asarray(x)
        (line,) = ax.plot(xs, mean, label=f"{label} (n={values.shape[0]})", lw=1.6)
        ax.fill_between(xs, mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
    for label, y in (hlines or {}).items():
        ax.axhline(y, color="gray", ls="--", lw=1)
        ax.annotate(label, (ax.get_xlim()[0], y), fontsize=8, color="gray", va="bottom")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def episodes_by_step(episode_lengths, num_steps: int):
    """Episodes completed by each time step 1..num_steps, from per-episode lengths
    (int[..., N], zeros past the last completed episode): int[..., num_steps]."""
    lengths = np.asarray(episode_lengths)
    ends = np.where(lengths > 0, np.cumsum(lengths, axis=-1), np.iinfo(np.int64).max)
    steps = np.arange(1, num_steps + 1)
    flat = ends.reshape(-1, ends.shape[-1])
    counts = np.stack([np.searchsorted(row, steps, side="right") for row in flat])
    return counts.reshape(*lengths.shape[:-1], num_steps)
