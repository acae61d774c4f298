"""Optional metric sinks: TensorBoard and Weights & Biases, fed the same rows as the
run directory's metrics JSONL. Off by default; each needs its extra
(``pip install 'jrl[tensorboard]'``, ``pip install 'jrl[wandb]'``).

A sink has ``write(rows)`` and ``close()`` (and may have ``flush()``, which the run
driver calls after every chunk). A row is one logged step of one run:

    {"step": int, "grid_point": int, "seed": int, "<metric>": float, ...}

or, as ``jrl.training`` writes them to metrics.jsonl, with ``"timesteps"`` (environment
steps: the x axis then) and ``"update"`` in place of ``"step"``; neither is logged as a
metric. Both sinks log, for every grid point and metric, the mean over the seeds of the
rows in one ``write`` call that share the step (NaN or null values, e.g. a return where
no episode ended, are left out of the mean; a metric with no value is not logged;
rows with ``"update"`` share the step of their update, the most ``"timesteps"`` of
its seeds, since a tabular seed that ends its episodes within an update stops short);
with ``per_seed=True`` every seed's value too. Non-numeric and boolean fields are
skipped.

    sinks = make_sinks(["tensorboard"], run_dir)   # [] when names is empty
    for sink in sinks: sink.write(rows)
    for sink in sinks: sink.close()
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any, Protocol

ROW_KEYS = ("step", "grid_point", "seed")
# The x axis of a row, the first of these it has (jrl.training's rows: timesteps).
STEP_KEYS = ("step", "timesteps", "update")


class MetricSink(Protocol):
    def write(self, rows: list[dict]) -> None: ...

    def close(self) -> None: ...


def _scalars(rows: Sequence[Mapping], per_seed: bool) -> Iterator[tuple[int, int, str, float]]:
    """(grid_point, step, tag, value): tag is the metric for the mean over seeds and
    ``<metric>/seed_<s>`` for one seed; ordered by grid point, step, then first seen."""
    grouped: dict[tuple[int, int], dict[str, list[tuple[int, float]]]] = {}
    steps: dict[tuple[int, int], int] = {}  # group -> its x value
    for row in rows:
        step_key = next((key for key in STEP_KEYS if key in row), None)
        missing = [key for key in ROW_KEYS[1:] if key not in row] + (
            [] if step_key else ["step (or timesteps, update)"]
        )
        if missing:
            raise ValueError(
                f"a metric row needs step (or timesteps, update), grid_point, seed; "
                f"missing {missing}: {row}"
            )
        # jrl.training's rows group by update, at the most steps a seed took by then: a
        # tabular seed that ends its last episode within an update has taken fewer, and
        # grouped by its own steps it made a point of its own (one seed's value).
        by = "update" if step_key == "timesteps" and "update" in row else step_key
        group = (int(row["grid_point"]), int(row[by]))
        steps[group] = max(steps.get(group, 0), int(row[step_key]))
        values = grouped.setdefault(group, {})
        for name, value in row.items():
            if (
                name in ROW_KEYS
                or name in STEP_KEYS
                or isinstance(value, bool)
                or not isinstance(value, Real)
            ):
                continue
            values.setdefault(name, []).append((int(row["seed"]), float(value)))
    for (grid_point, position), metrics in sorted(grouped.items()):
        step = steps[grid_point, position]
        for name, by_seed in metrics.items():
            finite = [value for _, value in by_seed if math.isfinite(value)]
            if finite:
                yield grid_point, step, name, math.fsum(finite) / len(finite)
            if per_seed:
                for seed, value in by_seed:
                    if math.isfinite(value):
                        yield grid_point, step, f"{name}/seed_{seed}", value


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class TensorBoardSink(_Closing):
    """Event files under ``logdir/grid_point_<g>/``: TensorBoard shows each grid point as
    a run, so one chart per metric overlays the grid points. ``run_names`` (one per grid
    point, e.g. ``"alpha=0.1"``) replace the ``grid_point_<g>`` directory names.

    ``resumed``: the run continues from a checkpoint, and rows past it may have been
    written before the process was killed; each grid point's writer then starts with
    TensorBoard's purge marker at the step of the first row it writes, so the rows run
    again replace those (instead of the step showing twice)."""

    def __init__(
        self,
        logdir: str | Path,
        per_seed: bool = False,
        run_names: Sequence[str] | None = None,
        flush_secs: int = 30,
        resumed: bool = False,
    ):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError(_PACKAGES["tensorboard"][1]) from error
        self._writer_class = SummaryWriter
        self.logdir = Path(logdir)
        self.per_seed = per_seed
        self.run_names = list(run_names) if run_names is not None else None
        self.flush_secs = flush_secs
        self.resumed = resumed
        self._writers: dict[int, Any] = {}
        self._opened: set[int] = set()  # grid points that have had a writer

    def _writer(self, grid_point: int, step: int):
        if grid_point not in self._writers:
            if self.run_names is not None and grid_point >= len(self.run_names):
                raise ValueError(
                    f"grid_point {grid_point} has no run name ({len(self.run_names)} given)"
                )
            name = self.run_names[grid_point] if self.run_names else f"grid_point_{grid_point}"
            self._writers[grid_point] = self._writer_class(
                logdir=str(self.logdir / name),
                flush_secs=self.flush_secs,
                # The purge marker once per grid point: a later writer of this
                # process (after a flush) writes rows no one wrote before.
                purge_step=step if self.resumed and grid_point not in self._opened else None,
                # The file is named by the second and the host, then this: TensorBoard
                # reads a run's files in name order, so those of one second (a flush per
                # chunk) must sort as written; and it is opened with "wb", so a writer
                # opened again within the second must not take the earlier one's name.
                filename_suffix=f".{time.time_ns()}.{os.getpid()}",
            )
            self._opened.add(grid_point)
        return self._writers[grid_point]

    def write(self, rows: list[dict]) -> None:
        for grid_point, step, tag, value in _scalars(rows, self.per_seed):
            self._writer(grid_point, step).add_scalar(tag, value, global_step=step)

    def flush(self) -> None:
        """Put every row written so far on disk. tensorboardX's own ``flush`` flushes the
        file but not the events its writer thread still holds in its queue (written up
        to ``flush_secs`` later: a kill in between lost checkpointed rows for good), so
        each writer is closed, which drains the queue; the next row opens a new event
        file (one per grid point per flush: per chunk under ``jrl.training.train``)."""
        self.close()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class WandbSink(_Closing):
    """One Weights & Biases run; a metric's key is ``<metric>/grid_point_<g>`` (and
    ``<metric>/grid_point_<g>/seed_<s>`` with ``per_seed``), plotted against ``step``.
    The other arguments go to ``wandb.init`` (``mode="offline"`` needs no account)."""

    def __init__(
        self,
        project: str | None = "jrl",
        name: str | None = None,
        config: Mapping | None = None,
        directory: str | Path | None = None,
        mode: str | None = None,
        per_seed: bool = False,
        **init_kwargs,
    ):
        try:
            import wandb
        except ImportError as error:
            raise ImportError(_PACKAGES["wandb"][1]) from error
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        self.per_seed = per_seed
        self._run = wandb.init(
            project=project,
            name=name,
            config=dict(config) if config is not None else None,
            dir=str(directory) if directory is not None else None,
            mode=mode,
            **init_kwargs,
        )
        # Log "step" as a field and plot against it, so rows need not arrive in order.
        self._run.define_metric("step")
        self._run.define_metric("*", step_metric="step")

    def write(self, rows: list[dict]) -> None:
        by_step: dict[int, dict[str, float]] = {}
        for grid_point, step, tag, value in _scalars(rows, self.per_seed):
            metric, _, seed = tag.partition("/")
            key = f"{metric}/grid_point_{grid_point}" + (f"/{seed}" if seed else "")
            by_step.setdefault(step, {})[key] = value
        for step in sorted(by_step):
            self._run.log({"step": step, **by_step[step]})

    def close(self) -> None:
        """Finish the run. An offline run's file is whole once this process's wandb
        service stops (``wandb.teardown()``, or at exit): ``finish`` may return first."""
        self._run.finish()


SINKS = ("tensorboard", "wandb")


def check_sinks(names: Sequence[str]) -> None:
    """Raise for what :func:`make_sinks` would refuse, without starting anything: a name
    that is not in :data:`SINKS` or is given twice, or a sink whose package is not
    installed (ImportError naming the extra to install)."""
    if isinstance(names, str):
        raise TypeError(f"names must be a list of sink names, got the string {names!r}")
    unknown = [name for name in names if name not in SINKS]
    if unknown:
        raise ValueError(
            f"unknown sink {', '.join(map(repr, unknown))}; known sinks: {', '.join(SINKS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"a sink is named twice in {list(names)}")
    for name in names:
        module, missing = _PACKAGES[name]
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(missing) from error


_PACKAGES = {  # sink name: (the package it imports, the error when that is not installed)
    "tensorboard": (
        "tensorboardX",
        "TensorBoardSink needs tensorboardX: pip install 'jrl[tensorboard]'",
    ),
    "wandb": ("wandb", "WandbSink needs the wandb package: pip install 'jrl[wandb]'"),
}


def make_sinks(
    names: Sequence[str],
    run_dir: str | Path,
    config: Mapping | None = None,
    run_id: str | None = None,
    resumed: bool = False,
) -> list[MetricSink]:
    """The named sinks for a run directory: ``tensorboard`` writes under
    ``run_dir/tensorboard``; ``wandb`` starts a run named after ``run_dir`` (project
    "jrl", files under ``run_dir``, ``config`` as its config; WANDB_MODE and the other
    WANDB_* variables apply), or with ``run_id`` (kept in the run's meta.json) starts or
    continues the W&B run of that id, so a resumed run logs to the run it began.
    ``resumed``: see :class:`TensorBoardSink`. No names, no sinks."""
    check_sinks(names)
    run_dir = Path(run_dir)
    sinks: list[MetricSink] = []
    try:
        for name in names:
            if name == "tensorboard":
                sinks.append(TensorBoardSink(run_dir / "tensorboard", resumed=resumed))
            else:
                resume = {"id": run_id, "resume": "allow"} if run_id else {}
                sinks.append(
                    WandbSink(name=run_dir.name, config=config, directory=run_dir, **resume)
                )
    except Exception:
        for sink in sinks:
            sink.close()
        raise
    return sinks
