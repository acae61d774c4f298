"""Results on disk: JSON written atomically, learning-curve statistics over seeds and
their figures.

Aggregates follow Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical
Precipice", rliable): the interquartile mean (IQM, the mean of the middle 50% of runs:
floor(n / 4) of n cut at each end, so with fewer than 4 runs it is the mean) beside the
mean, each with a percentile-bootstrap confidence interval over seeds. With one task
rliable's stratified bootstrap is the plain bootstrap over runs; it is written here in
NumPy so that one set of resampled seeds serves every step of a curve at once
(``jrl.stats`` has rliable's own aggregates across tasks and algorithms).

The experiment scripts check their ``--seed`` and ``--out`` here before they train
(:func:`check_experiment_args`).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jrl.run_dir import write_bytes_atomic
from jrl.run_dir import write_json as write_json  # the experiments' results.json writer
from jrl.seeds import check_seed


def make_out_dir(path: str | Path) -> Path:
    """Create the directory ``path`` (and its parents) and check that a file can be
    made in it, as :func:`write_json` and :func:`save_figure` make theirs (one is
    created and removed). OSError (NotADirectoryError where a parent is a file,
    PermissionError, ...) if not: better before a run's training than at its first
    result after it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    handle, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.", suffix=".tmp")
    os.close(handle)
    os.unlink(probe)
    return path


def check_experiment_args(parser, args) -> Path:
    """Check an experiment script's ``args.seed`` (:func:`jrl.seeds.check_seed`: it must
    give a JAX key of its own) and then create its ``args.out`` (:func:`make_out_dir`),
    right after ``parser.parse_args()`` and before anything compiles. A bad one exits
    through ``parser.error`` (status 2, the message on stderr); so does a count of
    ``--runs``, ``--seeds`` or ``--episodes`` below 1. Returns the directory."""
    for name in ("runs", "seeds", "episodes"):
        count = getattr(args, name, None)
        if count is not None and count < 1:
            parser.error(f"--{name} must be >= 1, got {count}")
    try:
        check_seed("--seed", args.seed)
    except ValueError as error:
        parser.error(str(error))
    try:
        return make_out_dir(args.out)
    except OSError as error:
        parser.error(f"--out {args.out}: {error}")


def new_figure(**kwargs):
    """A matplotlib ``Figure`` (``Figure(**kwargs)``) that pyplot does not hold: making
    and saving it neither switches the process's backend (a notebook's inline plots) nor
    leaves a figure open where a call fails half way."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig, path: str | Path, bbox_inches: str | None = None) -> Path:
    """Save a matplotlib figure atomically (its format from ``path``'s suffix) and close
    it (pyplot's too, saved or not): a reader never sees half a file.
    ``bbox_inches="tight"`` grows the image to what is drawn outside the figure (a
    legend below it)."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", bbox_inches=bbox_inches)
    finally:
        close_figure(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def close_figure(fig) -> None:
    """Close ``fig`` where pyplot holds it (one :func:`new_figure` made needs nothing)."""
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)


def mean_and_ci(values, axis: int = 0, confidence: float = 0.95):
    """Mean over ``axis`` and the half-width of its Student-t confidence interval,
    ``t_{(1+confidence)/2, n-1} * std / sqrt(n)`` (zero with one value): the normal
    quantile 1.96 would cover about 88% rather than 95% with 5 seeds."""
    from scipy import stats

    _check_confidence(confidence)
    values = np.asarray(values, np.float64)
    _check_axis(values, axis)
    n = values.shape[axis]
    if n < 2:
        return values.mean(axis=axis), np.zeros_like(values.mean(axis=axis))
    t = stats.t.ppf(0.5 + confidence / 2, df=n - 1)
    return values.mean(axis=axis), t * values.std(axis=axis, ddof=1) / np.sqrt(n)


def _check_confidence(confidence) -> None:
    if isinstance(confidence, bool) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (0.95, not 95), got {confidence!r}")


def _check_axis(values: np.ndarray, axis) -> None:
    """ValueError unless ``axis`` is an int naming an axis of ``values`` with at least
    one entry along it (the mean or IQM of none is NaN)."""
    ndim = values.ndim
    if ndim == 0:
        raise ValueError(
            f"values must be an array with an axis to reduce (e.g. float[seeds]), got the "
            f"scalar {values.item()!r}"
        )
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not -ndim <= axis < ndim:
        raise ValueError(
            f"axis must be an int in [{-ndim}, {ndim}) for values of shape {values.shape}, "
            f"got {axis!r}"
        )
    if values.shape[axis] == 0:
        raise ValueError(
            f"values of shape {values.shape} have no entries along axis {axis}: nothing "
            "to average (their mean would be NaN)"
        )


def _check_count(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def smooth(values, window: int):
    """Trailing moving average along the last axis: entry t is the mean of entries
    max(0, t - window + 1)..t, so the first window - 1 average the entries there are
    (window 1: unchanged)."""
    _check_count("window", window, least=1)
    values = np.asarray(values, np.float64)
    if values.ndim == 0:
        raise ValueError(
            f"smooth averages along the last axis: values must be float[..., T], got the "
            f"scalar {values.item()!r}"
        )
    if window == 1 or values.shape[-1] == 0:
        return values
    padded = np.concatenate([np.zeros((*values.shape[:-1], window - 1)), values], axis=-1)
    ones = np.ones(window)
    sums = np.apply_along_axis(lambda row: np.convolve(row, ones, mode="valid"), -1, padded)
    return sums / np.minimum(np.arange(1, values.shape[-1] + 1), window)


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
    with a shaded 95% confidence band (Student's t, :func:`mean_and_ci`); saved as PNG."""
    if not curves:
        raise ValueError("plot_curves needs at least one curve, got none")
    for label, values in curves.items():
        values = np.asarray(values, np.float64)
        finite = np.isfinite(values).all()
        if values.ndim != 2 or not finite:
            raise ValueError(
                f"curves[{label!r}] must be finite float[seeds, T], got shape {values.shape}"
                f"{'' if finite else ' holding NaN or inf'} (fill_gaps fills the steps where "
                "no episode ended)"
            )
        if x is not None and np.shape(x) != values.shape[1:]:
            raise ValueError(f"x has shape {np.shape(x)}, curves[{label!r}] {values.shape[1:]}")
    fig = new_figure(figsize=(7, 4.2), dpi=120)
    ax = fig.subplots()
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
    path = save_figure(fig, path)
    return path


def episodes_by_step(episode_lengths, num_steps: int):
    """Episodes completed by each time step 1..num_steps, from per-episode lengths
    (int[..., N], zeros past the last completed episode): int[..., num_steps]."""
    _check_count("num_steps", num_steps, least=0)
    lengths = np.asarray(episode_lengths)
    if lengths.dtype.kind not in "iuf" or np.any(lengths != np.round(lengths)):
        raise ValueError(f"episode lengths must be whole numbers, got {lengths!r:.80}")
    if lengths.ndim == 0:
        raise ValueError(
            "episode lengths are int[..., N] (N episodes, zeros past the last completed), "
            f"got the scalar {lengths.item()!r}: for one episode, [length]"
        )
    if np.any(lengths < 0):
        raise ValueError(f"episode lengths must be >= 0 (0: no episode), got {lengths.min()}")
    ends = np.where(lengths > 0, np.cumsum(lengths, axis=-1), np.iinfo(np.int64).max)
    steps = np.arange(1, num_steps + 1)
    flat = ends.reshape(-1, ends.shape[-1])
    counts = np.stack([np.searchsorted(row, steps, side="right") for row in flat])
    return counts.reshape(*lengths.shape[:-1], num_steps)


def fill_gaps(values):
    """Fill NaNs along the last axis with the last value before them (leading NaNs with
    the first value): float[..., T] -> float[..., T].

    For per-update episode returns, which are NaN where no episode ended in an update
    (the curve then holds the return of the last episode that did). A row with no
    value stays NaN; infinities are values, kept for the checks downstream to refuse.
    A diverged run's NaNs are not gaps: leave such runs out first
    (``jrl.training.finite_runs``), or their last value before is held to the end.
    """
    values = np.asarray(values, np.float64)
    if values.ndim == 0 or values.shape[-1] == 0:
        raise ValueError(
            "fill_gaps fills float[..., T] (T >= 1: e.g. [seeds, updates] returns) along "
            f"its last axis, got shape {values.shape}"
        )
    present = ~np.isnan(values)
    index = np.where(present, np.arange(values.shape[-1]), 0)
    np.maximum.accumulate(index, axis=-1, out=index)
    filled = np.take_along_axis(values, index, axis=-1)
    first = np.argmax(present, axis=-1)[..., None]
    leading = np.arange(values.shape[-1]) < first
    return np.where(leading, np.take_along_axis(values, first, axis=-1), filled)


def iqm(values, axis: int = 0):
    """Interquartile mean along ``axis``: the mean of the values left after cutting 25%
    at each end (``scipy.stats.trim_mean(values, 0.25)``, rliable's
    ``aggregate_iqm``). With n values, floor(n / 4) are cut at each end."""
    from scipy.stats import trim_mean

    values = np.asarray(values, np.float64)
    _check_axis(values, axis)
    return trim_mean(values, 0.25, axis=axis)


class CurveStats(NamedTuple):
    """Per-step aggregates of a set of curves over seeds, each float[T].

    mean, iqm: the estimates; *_low, *_high: their percentile-bootstrap confidence
    interval (resampling seeds with replacement). num_seeds: the number of curves.
    """

    mean: np.ndarray
    mean_low: np.ndarray
    mean_high: np.ndarray
    iqm: np.ndarray
    iqm_low: np.ndarray
    iqm_high: np.ndarray
    num_seeds: int


def _check_runs(values, name: str = "curves"):
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise ValueError(f"{name} must be float[seeds, steps] with both >= 1, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} hold NaN or inf (fill_gaps fills steps with no episode)")
    return values


MIN_SEEDS_FOR_INTERVAL = 5
"""The fewest seeds (runs of one task) a percentile-bootstrap interval is given for.
With fewer it covers far less than its level: the resamples of 2 or 3 seeds span little
more than their range, and a "95%" interval of the mean of normal values held the true
mean 50% of the time at 2 seeds, 75% at 3 and 80% at 4 (the IQM's: 50, 75, 88%); at 5,
84% (IQM 91%), at 10, 91% (94%): from 5 seeds on the intervals are rliable's, nominal
95%, covering somewhat less. Below it jrl gives no interval and says so."""


def bootstrap_ci(
    values,
    statistic,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
    max_elements: int = 2**24,
):
    """Percentile-bootstrap confidence interval of ``statistic`` over seeds, per step.

    Args:
      values: float[S, T], S seeds of T steps.
      statistic: maps float[R, S, T] to float[R, T] along axis 1, each step on its own
        (e.g. ``lambda x: x.mean(axis=1)``).
      num_resamples: bootstrap resamples R (seeds drawn with replacement, the same
        draws at every step, so a band is the band of whole curves).
      confidence: the interval's coverage.
      seed: NumPy seed of the resampling (the interval is reproducible).
      chunk: resamples drawn at a time.
      max_elements: the most resampled values ``statistic`` is given at once (2**24:
        128 MB of float64), or S where S is more: the resamples and steps are split
        into blocks, which changes no band of a per-step statistic (up to float64
        rounding), so 1000 seeds of 1500 steps need no 3 GB at once.
    Returns:
      (low float[T], high float[T]); NaN for fewer than
      :data:`MIN_SEEDS_FOR_INTERVAL` seeds, which give no interval worth its name (one
      seed: every resample is that seed, a zero-width band claiming a certainty it
      lacks; two to four: a band that covers far less than ``confidence``).
    """
    values = _check_runs(values)
    _check_confidence(confidence)
    check_seed("seed", seed)
    counts = (("num_resamples", num_resamples), ("chunk", chunk), ("max_elements", max_elements))
    for name, count in counts:
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise ValueError(f"{name} must be a positive int, got {count!r}")
    num_seeds = values.shape[0]
    if num_seeds < MIN_SEEDS_FOR_INTERVAL:
        return np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan)
    rng = np.random.default_rng(seed)
    num_steps = values.shape[1]
    rows = max(1, min(chunk, max_elements // num_seeds))
    steps = max(1, min(num_steps, max_elements // (rows * num_seeds)))
    blocks = [values[:, t : t + steps] for t in range(0, num_steps, steps)]
    draws = np.empty((num_resamples, num_steps))
    for start in range(0, num_resamples, chunk):
        size = min(chunk, num_resamples - start)
        idx = rng.integers(0, num_seeds, size=(size, num_seeds))
        for row in range(0, size, rows):
            for t, block in zip(range(0, num_steps, steps), blocks, strict=True):
                out = draws[start + row : start + min(row + rows, size), t : t + steps]
                out[...] = statistic(block[idx[row : row + rows]])
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    return low, high


def percent(confidence: float) -> str:
    """A confidence level as a figure or table names it, to its last digit: 0.95 ->
    "95%", 0.999 -> "99.9%" (not a whole percent: "100%" would claim certainty);
    100 * 0.57 = 56.99999999999999 -> "57%"."""
    return f"{100 * confidence:.6g}%"


def interval_label(confidence: float, seed_counts: Sequence[int]) -> str:
    """What a figure's bands are, given each curve's number of seeds: "95% bootstrap
    CI", or why there is none (fewer than :data:`MIN_SEEDS_FOR_INTERVAL` seeds)."""
    _check_confidence(confidence)
    if isinstance(seed_counts, str) or np.ndim(seed_counts) != 1:
        raise ValueError(f"seed_counts must be a list of each curve's seeds, got {seed_counts!r}")
    for count in seed_counts:
        _check_count("each seed count", count, least=1)
    fewest = MIN_SEEDS_FOR_INTERVAL
    if seed_counts and all(count < fewest for count in seed_counts):
        counts = sorted(set(seed_counts))
        seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        return f"no interval ({seeds} seed{'s' if counts[-1] > 1 else ''}; needs {fewest})"
    band = f"{percent(confidence)} bootstrap CI"
    if any(count < fewest for count in seed_counts):
        band += f" (none below {fewest} seeds)"
    return band


def curve_stats(
    values, num_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> CurveStats:
    """Mean and IQM over seeds of float[S, T] curves, per step, with percentile-bootstrap
    ``confidence`` intervals (NaN for fewer than :data:`MIN_SEEDS_FOR_INTERVAL` seeds;
    NaNs in ``values`` rejected: see
    :func:`fill_gaps`)."""
    values = _check_runs(values)
    mean_low, mean_high = bootstrap_ci(
        values, lambda x: x.mean(axis=1), num_resamples, confidence, seed
    )
    iqm_low, iqm_high = bootstrap_ci(
        values, lambda x: iqm(x, axis=1), num_resamples, confidence, seed
    )
    return CurveStats(
        mean=values.mean(axis=0),
        mean_low=mean_low,
        mean_high=mean_high,
        iqm=iqm(values, axis=0),
        iqm_low=iqm_low,
        iqm_high=iqm_high,
        num_seeds=values.shape[0],
    )


def final_summary(final, num_resamples: int = 2000, confidence: float = 0.95, seed: int = 0):
    """A JSON-ready summary of one number per seed (float[S], e.g. final returns): the
    values, their mean and IQM with percentile-bootstrap intervals (NaN, written as
    null, for fewer than :data:`MIN_SEEDS_FOR_INTERVAL` seeds), min and max."""
    final = np.asarray(final, np.float64)
    if final.ndim != 1 or final.size == 0:
        hint = "; for curves, their last step: curves[:, -1]" if final.ndim == 2 else ""
        raise ValueError(
            f"final must be one number per seed, float[S] with S >= 1, got shape "
            f"{final.shape}{hint}"
        )
    if not np.all(np.isfinite(final)):
        raise ValueError(
            "final holds NaN or inf: leave diverged runs out first (jrl.training.finite_runs)"
        )
    stats = curve_stats(final[:, None], num_resamples, confidence, seed)
    return {
        "per_seed": final.tolist(),
        "mean": float(stats.mean[0]),
        "mean_ci": [float(stats.mean_low[0]), float(stats.mean_high[0])],
        "iqm": float(stats.iqm[0]),
        "iqm_ci": [float(stats.iqm_low[0]), float(stats.iqm_high[0])],
        "min": float(final.min()),
        "max": float(final.max()),
        "confidence": confidence,
    }


LEGEND_INSIDE = 10
"""The most legend entries a plot keeps inside its axes; more go outside, beside or below."""


def distinct_colors(n: int, first: list | None = None) -> list:
    """``n`` colours, no two alike: ``first`` (default matplotlib's tab10, its own cycle,
    which repeats after 10) while it has enough, then tab20 up to 20, beyond that ``n``
    evenly spaced along the 'turbo' colour map (neighbours then differ little, and past
    ~600 some by less than a PNG's 8 bits per channel show)."""
    import matplotlib

    _check_count("n", n, least=0)
    first = list(matplotlib.colormaps["tab10"].colors) if first is None else list(first)
    if n <= len(first):
        return first[:n]
    if n <= 20:
        return list(matplotlib.colormaps["tab20"].colors)[:n]
    table = np.asarray(matplotlib.colormaps["turbo"].colors)  # [256, 3]; interpolated
    at = np.linspace(0.05, 0.95, n) * (len(table) - 1)  # between its rows: n > 232 too
    index = np.arange(len(table))
    return [tuple(np.interp(a, index, table[:, c]) for c in range(3)) for a in at]


def plot_learning_curves(
    path: str | Path,
    curves: Mapping[str, np.ndarray],
    *,
    x=None,
    xlabel: str,
    ylabel: str,
    title: str,
    hlines: Mapping[str, float] | None = None,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    ylim=None,
):
    """Two panels, mean (left) and IQM (right) over seeds, one line per label with a
    shaded percentile-bootstrap ``confidence`` band; saved as PNG.

    curves: label -> float[S, T] (NaN-free: see :func:`fill_gaps`). x: float[T] shared
    by every curve, or label -> float[T] (curves measured at different steps), or None
    for 1..T. hlines: label -> y of a dashed reference line (e.g. a random policy).
    Returns the path and {label: CurveStats}.
    """
    from matplotlib.ticker import EngFormatter

    if not curves:
        raise ValueError("plot_learning_curves needs at least one curve, got none")
    if isinstance(x, Mapping) and set(x) != set(curves):
        raise ValueError(
            f"x as a mapping gives each curve its steps: curves {sorted(curves)}, x {sorted(x)}"
        )
    fig = new_figure(figsize=(11, 4.2), dpi=120)
    axes = fig.subplots(1, 2, sharey=True)
    all_stats = {}
    colors = distinct_colors(len(curves))
    for color, (label, values) in zip(colors, curves.items(), strict=True):
        values = _check_runs(values, f"curves[{label!r}]")
        stats = curve_stats(values, num_resamples, confidence)
        all_stats[label] = stats
        xs = x[label] if isinstance(x, Mapping) else x
        xs = np.arange(1, values.shape[1] + 1) if xs is None else np.asarray(xs)
        if xs.shape != (values.shape[1],):
            raise ValueError(f"x for {label!r} has shape {xs.shape}, curves {values.shape}")
        for ax, (est, low, high) in zip(
            axes,
            [
                (stats.mean, stats.mean_low, stats.mean_high),
                (stats.iqm, stats.iqm_low, stats.iqm_high),
            ],
            strict=True,
        ):
            # A curve of one point (a run evaluated once) is a marker with an error bar.
            marker = "o" if xs.size == 1 else None
            ax.plot(
                xs, est, label=f"{label} (n={stats.num_seeds})", lw=1.6, color=color, marker=marker
            )
            if xs.size == 1:
                ax.errorbar(xs, est, yerr=[est - low, high - est], color=color, capsize=4)
            else:
                ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)
    for ax, name in zip(axes, ("mean", "IQM"), strict=True):
        for label, y in (hlines or {}).items():
            ax.axhline(y, color="gray", ls="--", lw=1)
            ax.annotate(
                label,
                (0.01, y),
                xycoords=("axes fraction", "data"),
                xytext=(0, 3),  # above its line, not struck through by it
                textcoords="offset points",
                fontsize=8,
                color="gray",
                va="bottom",
            )
        band = interval_label(confidence, [stats.num_seeds for stats in all_stats.values()])
        ax.set(xlabel=xlabel, title=f"{name} over seeds, {band}")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200k, not 200000
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    if len(curves) <= LEGEND_INSIDE:
        axes[0].legend(fontsize=8)
        path = save_figure(fig, path)
    else:  # below both panels, where it covers no curve and is not cut off
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(4, -(-len(labels) // 8)), fontsize=7, frameon=False)  # fmt: skip
        path = save_figure(fig, path, bbox_inches="tight")
    return path, all_stats
