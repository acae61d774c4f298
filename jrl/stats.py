"""Aggregate evaluation scores across runs and tasks, with confidence intervals.

Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS), through their library rliable. Inputs are dicts keyed by
algorithm name:

    scores: {algorithm: float[num_runs, num_tasks]}           e.g. final evaluation returns
    curves: {algorithm: float[num_runs, num_tasks, num_steps]} the same at every eval step

normalised or not (normalise first to aggregate across tasks of different scales:
``(score - random) / (reference - random)``). The number of runs may differ between
algorithms; the tasks (and steps) may not. Aggregates, over all runs x tasks
(``rliable.metrics``):

    IQM             interquartile mean: the mean of the middle 50% of all run x task
                    scores (floor(n / 4) of the n cut at each end, as rliable's
                    ``aggregate_iqm``: with fewer than 4 scores, their mean)
    Mean            of the per-task means over runs
    Median          of the per-task means over runs (rliable's ``aggregate_median``: with
                    two tasks, their mean); with one task, of its runs' scores (rliable's
                    would be their mean)
    Optimality gap  gamma - mean(min(score, gamma)): how far short of the target gamma
                    (normalised scores; ``gamma=None`` leaves it out, as for raw returns)

and, between two algorithms X and Y (:func:`probability_of_improvement`),

    P(X > Y)        the chance that a run of X beats a run of Y on a task (ties count a
                    half: the Mann-Whitney U statistic / (n_X n_Y)), averaged over tasks

Confidence intervals are percentile intervals of rliable's stratified bootstrap: runs
are resampled with replacement within each task (``rliable.library.StratifiedBootstrap``;
for P(X > Y), X's and Y's runs independently of each other).
The bootstrap is seeded per algorithm (``seed``), so the numbers reproduce and do not
depend on which other algorithms are in the dict.

    stats = aggregate(scores)                   # AggregateStats
    print(format_table(stats))                  # markdown; format_table(stats, "plain")
    write_json(path, to_dict(stats))            # jrl.reporting.write_json
    write_report(out_dir, scores, curves=...)   # all of it: JSON, table, PNGs
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jrl.reporting import MIN_SEEDS_FOR_INTERVAL, _check_count, percent
from jrl.seeds import check_seed

AGGREGATES = ("IQM", "Mean", "Median", "Optimality gap")


class AggregateStats(NamedTuple):
    """point[algorithm]: float[M] in the order of ``metrics`` (``AGGREGATES``, without
    the optimality gap where gamma is None); interval[algorithm]: float[2, M], lower
    bounds then upper; num_runs[algorithm]: runs it had."""

    metrics: tuple[str, ...]
    point: dict[str, np.ndarray]
    interval: dict[str, np.ndarray]
    num_runs: dict[str, int]
    num_tasks: int
    confidence: float
    reps: int
    seed: int
    gamma: float | None


class Profiles(NamedTuple):
    """Performance profiles (score distributions): point[algorithm][i] is the fraction of
    all run x task scores above taus[i]; interval[algorithm]: float[2, len(taus)]."""

    taus: np.ndarray
    point: dict[str, np.ndarray]
    interval: dict[str, np.ndarray]


class Curves(NamedTuple):
    """IQM over runs x tasks at every step: point[algorithm]: float[num_steps];
    interval[algorithm]: float[2, num_steps]; steps: the x values."""

    steps: np.ndarray
    point: dict[str, np.ndarray]
    interval: dict[str, np.ndarray]


def check_scores(scores: Mapping, ndim: int = 2, name: str = "scores") -> dict[str, np.ndarray]:
    """Validate ``{algorithm: array}`` (ndim 2: [runs, tasks]; 3: [runs, tasks, steps])
    and return it as float64 NumPy arrays. Raises ValueError saying what is wrong."""
    layout = "(num_runs, num_tasks)" if ndim == 2 else "(num_runs, num_tasks, num_steps)"
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError(f"{name} must be a non-empty dict {{algorithm: array {layout}}}")
    checked = {}
    for algorithm, values in scores.items():
        values = np.asarray(values, np.float64)
        where = f"{name}[{algorithm!r}]"
        if values.ndim != ndim:
            hint = "; for one task add an axis: values[:, None]" if values.ndim == ndim - 1 else ""
            raise ValueError(f"{where} must be shaped {layout}, got shape {values.shape}{hint}")
        if 0 in values.shape:
            raise ValueError(
                f"{where} must be shaped {layout} with no empty axis, got {values.shape}"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"{where} has {np.size(values) - np.isfinite(values).sum()} "
                             "non-finite values (NaN or inf); fill or drop them first")  # fmt: skip
        checked[str(algorithm)] = values
    shapes = {algorithm: values.shape[1:] for algorithm, values in checked.items()}
    if len(set(shapes.values())) > 1:
        axes = "num_tasks" if ndim == 2 else "(num_tasks, num_steps)"
        raise ValueError(f"every algorithm in {name} needs the same {axes}, got {shapes}")
    return checked


NO_INTERVAL = (
    f"no interval from one run, nor from fewer than {MIN_SEEDS_FOR_INTERVAL} runs of a "
    "single task (a percentile bootstrap of so few covers far less than its level)"
)


def _no_interval_label(runs: int) -> str:
    return f"{'one run' if runs == 1 else f'{runs} runs'}: no interval"


def _too_few_runs(shape: tuple) -> bool:
    """Whether scores of ``shape`` [runs, tasks, ...] give no interval (see
    :func:`_interval_estimates`)."""
    return shape[0] == 1 or (shape[1] == 1 and shape[0] < MIN_SEEDS_FOR_INTERVAL)


def _interval_estimates(scores: dict, func: Callable, reps: int, confidence: float, seed: int):
    """rliable's stratified-bootstrap percentile intervals, one seeded bootstrap per
    entry: (point {name: [k]}, interval {name: [2, k]}). An entry is one algorithm's
    scores, or a list of several algorithms' scores that ``func`` takes together
    (resampled independently). An entry with one run (of an algorithm it holds) gets a
    NaN interval: every resample of one run is that run, and a zero-width interval
    would claim a certainty one seed cannot give. So does one of a single task with
    fewer than ``jrl.reporting.MIN_SEEDS_FOR_INTERVAL`` runs, whose percentile interval
    covers far less than ``confidence`` (75% instead of 95% at 3 runs); pooled over
    tasks, the stratified bootstrap's intervals are rliable's, from any number of runs."""
    from rliable import library

    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    check_seed("seed", seed)
    point, interval = {}, {}
    # rliable 1.2's StratifiedBootstrap draws its resamples from NumPy's global generator
    # (np.random.choice), whatever random_state it is given: seed that, then restore it.
    saved = np.random.get_state()  # noqa: NPY002
    try:
        for algorithm, values in scores.items():
            np.random.seed(seed)  # noqa: NPY002
            p, i = library.get_interval_estimates(
                {algorithm: values}, func, reps=reps, confidence_interval_size=confidence
            )
            point[algorithm] = np.asarray(p[algorithm])
            interval[algorithm] = np.asarray(i[algorithm], np.float64)
            members = values if isinstance(values, list) else [values]
            if any(_too_few_runs(np.shape(member)) for member in members):
                interval[algorithm] = np.full_like(interval[algorithm], np.nan)
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    return point, interval


def _trimmed_mean(values: np.ndarray) -> np.ndarray:
    """The interquartile mean of float ``values`` (non-empty) along their first axis:
    ``scipy.stats.trim_mean(values, 0.25)``, the same partition and mean and so the same
    bits, without scipy's checks of its arguments, which took 0.15 ms a call: two thirds
    of a 10,000-resample bootstrap of :func:`aggregate`."""
    count = len(values)
    cut = int(0.25 * count)
    kept = np.partition(values, (cut, count - cut - 1), axis=0)
    return np.mean(kept[cut : count - cut], axis=0)


def aggregate(
    scores: Mapping,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float | None = 1.0,
) -> AggregateStats:
    """IQM, mean, median and optimality gap (target ``gamma``; None: no gap, for scores
    with no target such as raw returns) of each algorithm's scores [num_runs,
    num_tasks], with stratified-bootstrap ``confidence`` intervals from ``reps``
    resamples (Agarwal et al. 2021 used 50,000 for their figures)."""
    from rliable import metrics

    scores = check_scores(scores)
    if gamma is not None and (
        isinstance(gamma, bool) or not isinstance(gamma, int | float) or not np.isfinite(gamma)
    ):
        raise ValueError(
            f"gamma (the optimality gap's target) must be a finite number or None, got {gamma!r}"
        )
    names = AGGREGATES if gamma is not None else AGGREGATES[:-1]

    def all_aggregates(values):
        point = [
            _trimmed_mean(values.reshape(-1)),  # rliable's aggregate_iqm
            metrics.aggregate_mean(values),
            metrics.aggregate_median(values) if values.shape[1] > 1 else np.median(values),
        ]
        if gamma is not None:
            point.append(metrics.aggregate_optimality_gap(values, gamma))
        return np.array(point)

    point, interval = _interval_estimates(scores, all_aggregates, reps, confidence, seed)
    return AggregateStats(
        metrics=names,
        point=point,
        interval=interval,
        num_runs={algorithm: values.shape[0] for algorithm, values in scores.items()},
        num_tasks=next(iter(scores.values())).shape[1],
        confidence=confidence,
        reps=reps,
        seed=seed,
        gamma=gamma,
    )


def performance_profiles(
    scores: Mapping,
    taus: Sequence[float] | np.ndarray | None = None,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Profiles:
    """Score distributions (Agarwal et al. 2021, section 4.1): for each threshold tau,
    the fraction of all run x task scores above tau, with bootstrap intervals.
    ``taus`` defaults to 101 points spanning every algorithm's scores."""
    scores = check_scores(scores)
    if taus is None:
        low = min(values.min() for values in scores.values())
        high = max(values.max() for values in scores.values())
        taus = np.linspace(low, high, 101)
    taus = np.asarray(taus, np.float64)
    if taus.ndim != 1 or taus.size == 0 or not np.isfinite(taus).all():
        raise ValueError(f"taus must be a non-empty 1-D sequence of finite numbers, got {taus}")

    def above(values):
        # rliable.library.score_distributions, vectorised over taus.
        return (values.reshape(-1, 1) > taus).mean(axis=0)

    point, interval = _interval_estimates(scores, above, reps, confidence, seed)
    return Profiles(taus, point, interval)


class Improvement(NamedTuple):
    """P(X > Y) for each (X, Y) pair: point[(X, Y)]: float; interval[(X, Y)]: float[2]."""

    point: dict[tuple[str, str], float]
    interval: dict[tuple[str, str], np.ndarray]
    confidence: float
    reps: int
    seed: int


def probability_of_improvement(
    scores: Mapping,
    pairs: Sequence[tuple[str, str]],
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Improvement:
    """P(X > Y) for each pair (X, Y) of algorithms in ``scores`` (Agarwal et al. 2021,
    section 4.3; ``rliable.metrics.probability_of_improvement``): per task, the
    fraction of (run of X, run of Y) pairs X wins, ties counting a half, averaged over
    tasks; with independent stratified-bootstrap ``confidence`` intervals (each
    algorithm's runs resampled within each task, seeded with ``seed`` per pair)."""
    from rliable import metrics

    scores = check_scores(scores)
    pairs = [tuple(pair) for pair in pairs]
    if not pairs:
        raise ValueError("pairs must name at least one (X, Y) pair of algorithms")
    for pair in pairs:
        if len(pair) != 2 or any(name not in scores for name in pair):
            raise ValueError(
                f"each pair must be two algorithms of scores ({sorted(scores)}), got {pair!r}"
            )
    point, interval = {}, {}
    for x, y in pairs:
        key = f"{x} > {y}"
        p, i = _interval_estimates(
            {key: [scores[x], scores[y]]},
            metrics.probability_of_improvement,
            reps,
            confidence,
            seed,
        )
        point[(x, y)] = float(np.asarray(p[key]).reshape(()))
        interval[(x, y)] = np.asarray(i[key], np.float64).reshape(2)
    return Improvement(point, interval, confidence, reps, seed)


def iqm_curves(
    curves: Mapping,
    steps: Sequence[float] | np.ndarray | None = None,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Curves:
    """IQM over runs x tasks at every step of ``curves`` [num_runs, num_tasks, num_steps]
    with stratified-bootstrap intervals (rliable's sample-efficiency curves). ``steps``:
    the x values (default 0 .. num_steps - 1)."""
    curves = check_scores(curves, ndim=3, name="curves")
    num_steps = next(iter(curves.values())).shape[2]
    steps = np.arange(num_steps) if steps is None else np.asarray(steps)
    if steps.shape != (num_steps,):
        raise ValueError(f"steps must be shaped ({num_steps},) like the curves, got {steps.shape}")

    def iqm_per_step(values):
        # rliable.metrics.aggregate_iqm at each step, in one call.
        return _trimmed_mean(values.reshape(-1, values.shape[-1]))

    point, interval = _interval_estimates(curves, iqm_per_step, reps, confidence, seed)
    return Curves(steps, point, interval)


def to_dict(stats: AggregateStats) -> dict:
    """A JSON-ready dict: settings, then per algorithm its runs and each aggregate's
    point estimate and interval."""
    return {
        "confidence": stats.confidence,
        "bootstrap": "stratified over runs within tasks, percentile intervals (rliable)",
        "no_interval": NO_INTERVAL,
        "reps": stats.reps,
        "seed": stats.seed,
        "optimality_gap_target": stats.gamma,
        "num_tasks": stats.num_tasks,
        "algorithms": {
            algorithm: {
                "num_runs": stats.num_runs[algorithm],
                **{
                    metric: {
                        "point": float(stats.point[algorithm][m]),
                        "low": float(stats.interval[algorithm][0, m]),
                        "high": float(stats.interval[algorithm][1, m]),
                    }
                    for m, metric in enumerate(stats.metrics)
                },
            }
            for algorithm in stats.point
        },
    }


def format_table(stats: AggregateStats, fmt: str = "markdown", digits: int = 4) -> str:
    """One row per algorithm: runs, then each aggregate as ``point [low, high]`` with
    ``digits`` significant digits. ``fmt``: "markdown" or "plain" (aligned columns)."""
    if not isinstance(stats, AggregateStats):
        raise TypeError(
            f"format_table takes the AggregateStats of aggregate(scores), got "
            f"{type(stats).__name__}"
        )
    if fmt not in ("markdown", "plain"):
        raise ValueError(f"unknown table format {fmt!r}; choose one of markdown, plain")
    _check_count("digits", digits, least=1)  # significant digits: 0 printed 1, -1 failed
    header = ["algorithm", "runs", *stats.metrics]
    rows = []
    for algorithm, point in stats.point.items():
        low, high = stats.interval[algorithm]
        no_interval = f"[{_no_interval_label(stats.num_runs[algorithm])}]"
        cells = [f"{p:.{digits}g} " + (f"[{lo:.{digits}g}, {hi:.{digits}g}]"
                                        if np.isfinite(lo) else no_interval)
                 for p, lo, hi in zip(point, low, high, strict=True)]  # fmt: skip
        rows.append([algorithm, str(stats.num_runs[algorithm]), *cells])
    caption = (
        f"{percent(stats.confidence)} stratified-bootstrap intervals, "
        f"{stats.reps} resamples, {stats.num_tasks} task(s)"
    )
    if any(not np.isfinite(interval).all() for interval in stats.interval.values()):
        caption += f"; {NO_INTERVAL}"
    if fmt == "markdown":
        lines = [
            "| " + " | ".join(header) + " |",
            "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
        return "\n".join(lines) + f"\n\n{caption}\n"
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(lines) + f"\n{caption}\n"


def _save_figure(fig, path: str | Path) -> Path:
    """Save as PNG atomically (``run_dir.write_bytes_atomic``): a reader never sees half
    a file."""
    from jrl.reporting import close_figure
    from jrl.run_dir import write_bytes_atomic

    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        close_figure(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _plot_utils():
    from rliable import plot_utils

    return plot_utils


def _colors(algorithms) -> dict:
    """A colour per algorithm, no two alike: seaborn's colorblind palette (10 colours,
    which it cycles) while it has enough (``jrl.reporting.distinct_colors``)."""
    import seaborn

    from jrl.reporting import distinct_colors

    colors = distinct_colors(len(algorithms), seaborn.color_palette("colorblind", 10))
    return dict(zip(algorithms, colors, strict=True))


def _legend(ax, colors: dict) -> None:
    from matplotlib.lines import Line2D

    from jrl.reporting import LEGEND_INSIDE

    handles = [Line2D([0], [0], color=color, lw=2) for color in colors.values()]
    if len(colors) <= LEGEND_INSIDE:
        ax.legend(handles, list(colors), loc="best")
    else:  # beside the axes (the saved image grows to hold it), in columns of 30
        ax.legend(handles, list(colors), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  ncol=-(-len(colors) // 30), fontsize=7, frameon=False)  # fmt: skip


def plot_aggregates(stats: AggregateStats, path: str | Path, xlabel: str = "Score") -> Path:
    """One panel per aggregate, a bar per algorithm spanning its interval (PNG); an
    algorithm without one (too few runs: :data:`NO_INTERVAL`) is named so, its point
    drawn alone (a bare tick read as an interval of no width)."""
    import matplotlib.pyplot as plt

    named = {
        algorithm: algorithm
        if np.isfinite(stats.interval[algorithm]).all()
        else f"{algorithm} ({_no_interval_label(stats.num_runs[algorithm])})"
        for algorithm in stats.point
    }
    colors = {named[algorithm]: color for algorithm, color in _colors(list(named)).items()}
    algorithms = list(named.values())
    row_height = max(0.37, 1.6 / len(algorithms))
    before = set(plt.get_fignums())
    # rliable makes this figure with pyplot: not shown while it is drawn (an interactive
    # session's window), and closed whatever happens, as new_figure's need nothing.
    try:
        with plt.ioff():
            fig, _ = _plot_utils().plot_interval_estimates(
                {named[algorithm]: point for algorithm, point in stats.point.items()},
                {named[algorithm]: bounds for algorithm, bounds in stats.interval.items()},
                metric_names=list(stats.metrics),
                algorithms=algorithms,
                colors=colors,
                row_height=row_height,
                # Below the tick labels, whatever the figure's height (in figure fractions).
                xlabel_y_coordinate=0.11 - 0.65 / (row_height * len(algorithms)),
                xlabel=xlabel,
            )
    except BaseException:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
        raise
    return _save_figure(fig, path)


def plot_performance_profiles(profiles: Profiles, path: str | Path, xlabel: str = "Score") -> Path:
    """Fraction of runs above each threshold, with interval bands (PNG)."""
    from jrl.reporting import new_figure

    colors = _colors(list(profiles.point))
    fig = new_figure(figsize=(7, 4.5))
    ax = fig.subplots()
    _plot_utils().plot_performance_profiles(
        profiles.point,
        profiles.taus,
        performance_profile_cis=profiles.interval,
        colors=colors,
        ax=ax,
        xlabel=xlabel,
        ylabel="Fraction of runs with score > τ",
    )
    _legend(ax, colors)
    return _save_figure(fig, path)


def plot_iqm_curves(
    curves: Curves, path: str | Path, xlabel: str = "Step", ylabel: str = "IQM score"
) -> Path:
    """IQM against step, one line per algorithm with its interval band (PNG)."""
    from jrl.reporting import new_figure

    colors = _colors(list(curves.point))
    fig = new_figure(figsize=(7, 4.5))
    ax = fig.subplots()
    _plot_utils().plot_sample_efficiency_curve(
        curves.steps, curves.point, curves.interval, list(curves.point),
        colors=colors, ax=ax, xlabel=xlabel, ylabel=ylabel,
        marker="o" if len(curves.steps) == 1 else "",
    )  # fmt: skip
    if len(curves.steps) == 1:  # a band of zero width does not show: an error bar does
        for algorithm, point in curves.point.items():
            low, high = curves.interval[algorithm]
            ax.errorbar(curves.steps, point, yerr=[point - low, high - point],
                        color=colors[algorithm], capsize=4)  # fmt: skip
    _legend(ax, colors)
    return _save_figure(fig, path)


def write_report(
    out_dir: str | Path,
    scores: Mapping,
    curves: Mapping | None = None,
    steps: Sequence[float] | np.ndarray | None = None,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float | None = 1.0,
    xlabel: str = "Score",
    aggregates: AggregateStats | None = None,
) -> dict[str, Path]:
    """Write ``aggregates.json``, ``aggregates.md``, ``aggregates.png`` and
    ``performance_profiles.png`` (and ``iqm_curves.png`` given curves) into ``out_dir``;
    every file atomically. Returns the paths by name. ``aggregates``: what
    ``aggregate(scores, reps, confidence, seed, gamma)`` returned, where the caller has
    it already (its bootstrap is most of the time: ~1 s per algorithm)."""
    from jrl.run_dir import write_json, write_text_atomic

    out_dir = Path(out_dir)
    if aggregates is not None:
        checked = check_scores(scores)
        of_scores = {
            "algorithms": sorted(checked),
            "runs": {name: values.shape[0] for name, values in sorted(checked.items())},
            "tasks": next(iter(checked.values())).shape[1],
            "confidence": confidence,
            "gamma": gamma,
        }
        given = {
            "algorithms": sorted(aggregates.point),
            "runs": dict(sorted(aggregates.num_runs.items())),
            "tasks": aggregates.num_tasks,
            "confidence": aggregates.confidence,
            "gamma": aggregates.gamma,
        }
        differ = [
            f"{k} {given[k]} against {of_scores[k]}" for k in given if given[k] != of_scores[k]
        ]
        if differ:
            raise ValueError(
                "aggregates= must be aggregate(scores, ...) of these scores and this "
                f"confidence and gamma; it differs in: {'; '.join(differ)}"
            )
    if steps is not None and curves is None:
        raise ValueError("steps= gives the x of curves=, and no curves are given")
    stats = (
        aggregate(scores, reps=reps, confidence=confidence, seed=seed, gamma=gamma)
        if aggregates is None
        else aggregates
    )
    profiles = performance_profiles(scores, reps=min(reps, 2_000), confidence=confidence, seed=seed)
    paths = {"json": write_json(out_dir / "aggregates.json", to_dict(stats))}
    table = out_dir / "aggregates.md"
    write_text_atomic(table, format_table(stats))
    paths["table"] = table
    paths["aggregates"] = plot_aggregates(stats, out_dir / "aggregates.png", xlabel)
    paths["profiles"] = plot_performance_profiles(
        profiles, out_dir / "performance_profiles.png", xlabel
    )
    if curves is not None:
        curve_stats = iqm_curves(
            curves, steps, reps=min(reps, 2_000), confidence=confidence, seed=seed
        )
        paths["curves"] = plot_iqm_curves(curve_stats, out_dir / "iqm_curves.png")
    return paths
