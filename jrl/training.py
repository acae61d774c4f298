"""Chunked training: a run as a host loop over compiled chunks, with metrics written,
progress shown and checkpoints taken between chunks, and resume that continues bit
for bit.

A run is described by a :class:`RunSpec` (agent, environment, static config,
hyperparameter grid, seeds, chunk size: everything that decides its numbers). Every
agent exposes ``init(key, hparams) -> state`` and ``update(state, hparams) ->
(state, metrics)``; the driver builds the state of G grid points x S seeds (the
sweep's layout, ``jrl.sweep``: every grid point sees the same seed keys) and one
jitted ``chunk`` that runs ``chunk_size`` updates of every run with ``lax.scan``.
Between chunks the host appends the chunk's metric rows to ``metrics.jsonl``, shows
progress (steps/s, ETA), saves the whole state with orbax (``jrl.checkpoint``) once
``checkpoint_every`` seconds have passed since the last save (and after the last
chunk), and rewrites ``summary.json``. SIGTERM and SIGINT (Slurm's preemption, Ctrl-C)
are honoured after the current chunk: checkpoint, then a clean exit.

Resuming restores the state and the counters of the newest checkpoint, drops metric
rows past it, and runs the remaining chunks with the same compiled function: the
numbers are those of a run that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from jrl import checkpoint
from jrl.agents import dqn, ppo, reinforce, tabular
from jrl.agents.checks import check_bool, check_positive_int, reject_ignored
from jrl.agents.evaluation import check_eval_cut
from jrl.envs.registry import check_new_env, is_own, make, make_recorded
from jrl.host import compiler_options, release_unused_memory
from jrl.interrupts import exit_at_once, watch_signals
from jrl.recent import Recent
from jrl.run_dir import (
    RunInUseError,
    append_rows,
    git_state,
    iter_rows,
    read_meta,
    read_summary,
    read_yaml,
    record_resume,
    temporaries,
    truncate_rows,
    write_json,
    write_meta,
    write_yaml,
)
from jrl.seeds import check_seed
from jrl.sweep import check_grid, stack_grid, vmap_or_call


class AgentSpec(NamedTuple):
    """How the driver builds an agent: its static config and sweepable hyperparameter
    types, ``make(config, env, env_params)`` returning (init, update, ...), and how many
    updates a run has (None: until ``finished``, bounded by ``max_updates``);
    ``check(hparams, config)`` rejects a grid point the config would misread;
    ``ignored(config)`` names the hyperparameters the config never reads, which a new
    run must leave at their defaults (``jrl.agents.checks.reject_ignored``; runs made
    before that rule still load)."""

    config: type
    hparams: type
    make: Callable
    num_updates: Callable[[Any], int]
    steps_per_update: Callable[[Any], int]
    check: Callable[[Any, Any], None] | None = None
    ignored: Callable[[Any], dict] | None = None


# Agents whose policy is the network's action distribution (played by its mode when
# greedy, sampled from otherwise); the others act epsilon-greedily on Q-values.
POLICY_AGENTS = frozenset({"ppo", "reinforce"})

AGENTS: dict[str, AgentSpec] = {
    "ppo": AgentSpec(
        ppo.PPOConfig,
        ppo.PPOHParams,
        ppo.make_ppo,
        lambda c: c.num_updates,
        lambda c: c.batch_size,
        ignored=ppo.ignored_hparams,
    ),
    "reinforce": AgentSpec(
        reinforce.ReinforceConfig,
        reinforce.ReinforceHParams,
        reinforce.make_reinforce,
        lambda c: c.num_updates,
        lambda c: c.batch_size,
    ),
    "dqn": AgentSpec(
        dqn.DQNConfig,
        dqn.DQNHParams,
        dqn.make_dqn,
        lambda c: c.num_chunks,
        lambda c: c.log_frequency,
        ignored=dqn.ignored_hparams,
    ),
    "tabular": AgentSpec(
        tabular.TabularConfig,
        tabular.TabularHParams,
        tabular.make_tabular,
        lambda c: math.ceil(c.max_steps / c.steps_per_iteration),
        lambda c: c.steps_per_iteration,
        tabular.check_config_hparams,
        tabular.ignored_hparams,
    ),
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's numbers (written to config.yaml).

    agent: a key of AGENTS. env: a ``jrl.envs.make`` id; env_overrides: its keyword
    overrides. config: the agent's static config fields (unset: defaults).
    hparams: one dict of sweepable hyperparameters per grid point (unset fields:
    defaults). num_seeds: seeds per grid point; seed: the root seed. chunk_size:
    updates per compiled chunk (an agent's update: PPO one rollout + learning, DQN
    ``log_frequency`` steps, tabular ``steps_per_iteration`` steps).
    """

    agent: str
    env: str
    env_overrides: dict = dataclasses.field(default_factory=dict)
    config: dict = dataclasses.field(default_factory=dict)
    hparams: tuple[dict, ...] = ({},)
    num_seeds: int = 1
    seed: int = 0
    chunk_size: int = 10

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["hparams"] = [dict(point) for point in self.hparams]
        data["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown run field(s) {unknown}; known: "
                f"{[field.name for field in dataclasses.fields(cls)]}"
            )
        data = dict(data)
        if "hparams" in data:
            points = data["hparams"]
            data["hparams"] = tuple(points) if isinstance(points, list | tuple) else (points,)
        return cls(**data)

    def fingerprint(self) -> str:
        return _fingerprint_of(self.to_dict())


def _coerce(cls: type, values: dict, what: str, validate: bool = True) -> Any:
    """Build ``cls(**values)`` (a config dataclass or hparams NamedTuple), naming any
    unknown field and any value of the wrong type in the error; ``validate=False``
    leaves a dataclass's ``__post_init__`` (its checks across fields) unrun."""
    fields = (
        {f.name: f.type for f in dataclasses.fields(cls)}
        if dataclasses.is_dataclass(cls)
        else dict.fromkeys(cls._fields, "float")
    )
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {unknown}; known: {sorted(fields)}")
    coerced = {}
    defaults = cls() if not dataclasses.is_dataclass(cls) else None
    for name, value in values.items():
        if isinstance(value, np.generic):  # np.int64(8) from an np.arange loop
            value = value.item()
        elif isinstance(value, list | tuple):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        kind = str(fields[name])
        if defaults is not None or kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{what}.{name} must be a number, got {value!r}")
            coerced[name] = float(value)
        elif "tuple" in kind and isinstance(value, list):
            if "tuple[int" in kind:  # [1e2, 64] in a YAML or JSON file, as 1e5 for an int
                value = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
            coerced[name] = tuple(value)
        elif kind == "str" and not isinstance(value, str):
            raise ValueError(f"{what}.{name} must be a string, got {value!r}")
        elif kind == "int" and isinstance(value, float) and value.is_integer():
            coerced[name] = int(value)  # 1e5 in a YAML or JSON file
        elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{what}.{name} must be an int, got {value!r}")
        elif kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{what}.{name} must be true or false, got {value!r}")
        else:
            coerced[name] = value
    if not validate and dataclasses.is_dataclass(cls):
        instance = object.__new__(cls)
        for field in dataclasses.fields(cls):
            if field.name in coerced:
                value = coerced[field.name]
            elif field.default is not dataclasses.MISSING:
                value = field.default
            else:
                value = field.default_factory()
            object.__setattr__(instance, field.name, value)
        return instance
    try:
        return cls(**coerced)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what}: {error}") from None


class Built(NamedTuple):
    """A RunSpec made concrete (no compilation yet)."""

    spec: RunSpec
    agent: Any
    config: Any
    env: Any
    env_params: Any
    grid: Any
    keys: jax.Array
    total_updates: int
    steps_per_update: int
    finished: Callable | None


def coerced_fields(spec: RunSpec) -> tuple[Any, list]:
    """(config, hparams points) of ``spec``, each field's type checked and coerced and
    unknown fields refused, but no rule across fields checked (the config's
    ``__post_init__`` unrun): a config file's fields, which the command line's flags
    may yet change before :func:`resolve` checks the whole."""
    _check_shape(spec)
    agent_spec = AGENTS[spec.agent]
    config = _coerce(agent_spec.config, dict(spec.config), "config", validate=False)
    points = [
        _coerce(agent_spec.hparams, dict(p), f"hparams[{i}]") for i, p in enumerate(spec.hparams)
    ]
    return config, points


def _check_shape(spec: RunSpec) -> None:
    """ValueError unless the agent is known and config, env_overrides and hparams are
    mappings (at least one grid point)."""
    if spec.agent not in AGENTS:
        raise ValueError(f"unknown agent {spec.agent!r}; choose one of {sorted(AGENTS)}")
    for name in ("config", "env_overrides"):
        if not isinstance(getattr(spec, name), dict):
            raise ValueError(f"{name} must be a mapping of fields, got {getattr(spec, name)!r}")
    if not spec.hparams:
        raise ValueError("hparams needs at least one grid point")
    for i, point in enumerate(spec.hparams):
        if not isinstance(point, dict):
            raise ValueError(f"hparams[{i}] must be a mapping of hyperparameters, got {point!r}")


def _checked(spec: RunSpec, new_run: bool = True) -> tuple[AgentSpec, Any, list]:
    """(agent spec, config, hparams points) of a RunSpec, or a ValueError naming the
    field that is wrong — the agents' own ``__post_init__`` and ``check_hparams``
    checks included; for a ``new_run``, also a hyperparameter the config ignores set
    away from its default."""
    if spec.agent not in AGENTS:
        raise ValueError(f"unknown agent {spec.agent!r}; choose one of {sorted(AGENTS)}")
    for name in ("num_seeds", "chunk_size"):
        check_positive_int(name, getattr(spec, name))
    check_seed("seed", spec.seed)
    if not isinstance(spec.env, str):
        raise ValueError(f"env must be an environment id (a string), got {spec.env!r}")
    _check_shape(spec)
    agent_spec = AGENTS[spec.agent]
    config = _coerce(agent_spec.config, dict(spec.config), "config")
    points = [
        _coerce(agent_spec.hparams, dict(p), f"hparams[{i}]") for i, p in enumerate(spec.hparams)
    ]
    for i, point in enumerate(points):
        try:
            check_grid(point)
            if agent_spec.check is not None:
                agent_spec.check(point, config)
            if new_run and agent_spec.ignored is not None:
                reject_ignored(point, agent_spec.ignored(config))
        except ValueError as error:
            raise ValueError(f"hparams[{i}]: {error}") from None
    if new_run and spec.agent == "tabular":
        tabular.check_every_algorithm_runs(points, config)
    if new_run:
        check_new_env(spec.env, dict(spec.env_overrides))
        if getattr(config, "eval_every", 0) and not config.eval_max_steps:
            # (the condition check_eval_cut tests first, so that no env is made for nothing)
            check_eval_cut(config, make(spec.env, **spec.env_overrides)[1])
    return agent_spec, config, points


def resolve(spec: RunSpec, new_run: bool = True) -> RunSpec:
    """``spec`` with every static config field and every hyperparameter of every grid
    point spelled out (defaults filled in, types coerced): what config.yaml holds and
    what the checkpoint fingerprint covers, so a change of a default cannot pass for
    the same run. Checks everything (``ValueError`` naming the field) before compiling;
    ``new_run=False`` (a run directory's own spec, to resume, evaluate or plot) leaves
    out the rules a run need only meet when it starts (ignored hyperparameters)."""
    _, config, points = _checked(spec, new_run)
    return dataclasses.replace(
        spec,
        config={f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
        hparams=tuple(point._asdict() for point in points),
    )


def shown_hparams(agent: str, points: Sequence[dict], config: dict | None = None) -> list[dict]:
    """Each grid point's values of the hyperparameters that differ from the agent's
    defaults in any point (what tells the points, and the run, apart). Given the run's
    ``config``, a tabular point's ``algorithm`` index is shown as the name it runs."""
    defaults = AGENTS[agent].hparams()._asdict()
    names = [n for n in defaults if any(n in p and p[n] != defaults[n] for p in points)]
    shown = [{name: point.get(name, defaults[name]) for name in names} for point in points]
    return [named_algorithm(agent, point, config) for point in shown]


def named_algorithm(agent: str, point: dict, config: dict | None) -> dict:
    """``point`` with a tabular run's ``algorithm`` index given as the name of the method
    it runs (the run's ``config["algorithm"]`` lists them), where it holds one."""
    algorithms = (config or {}).get("algorithm")
    if agent == "tabular" and isinstance(algorithms, list | tuple) and "algorithm" in point:
        return {**point, "algorithm": algorithms[int(point["algorithm"])]}
    return point


def shown_number(value: float) -> str:
    """A hyperparameter's value in a label: the shortest digits that name its float32
    value (what runs hold), laid out as ``:g`` lays them out. ``:g``'s 6 digits showed
    1e6 and 1e6 + 1, or 0.5 and 0.5000001, as one label (``jrl plot`` drew one of the
    two points); a fixed 9 told 0.1 from float32(0.1), which runs hold as one value
    (``jrl eval`` then pooled them as two methods)."""
    number = np.float32(value)
    if number == 0 or 1e-4 <= abs(number) < 1e6:
        return np.format_float_positional(number, unique=True, trim="-")
    return np.format_float_scientific(number, unique=True, trim="-")


def build(spec: RunSpec) -> Built:
    """Check a RunSpec and build its agent — every error here comes before compiling
    (a new run's own rules are :func:`resolve`'s)."""
    agent_spec, config, points = _checked(spec, new_run=False)
    env, env_params = make_recorded(spec.env, dict(spec.env_overrides))
    agent = agent_spec.make(config, env, env_params)
    keys = jax.random.split(jax.random.key(spec.seed), spec.num_seeds)
    return Built(
        spec=spec,
        agent=agent,
        config=config,
        env=env,
        env_params=env_params,
        grid=jax.tree.map(np.asarray, stack_grid(points)),
        keys=keys,
        total_updates=agent_spec.num_updates(config),
        steps_per_update=agent_spec.steps_per_update(config),
        finished=getattr(agent, "finished", None),
    )


def _over_runs(fn: Callable, num_points: int, num_seeds: int, shared: int = 0) -> Callable:
    """fn(state_or_key, hparams, *shared) over [G, S] runs (hparams [G]; the last
    ``shared`` arguments the same for every run, unbatched); plain calls for axes of
    size 1 (``jrl.sweep.vmap_or_call``)."""
    over_seeds = vmap_or_call(fn, (0, None, *[None] * shared), num_seeds)
    return vmap_or_call(over_seeds, (0, 0, *[None] * shared), num_points)


def _strong(x: jax.Array) -> jax.Array:
    """``x`` without JAX's weak type (a checkpoint restores none)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return x
    return jax.lax.convert_element_type(x, x.dtype)


def make_init(built: Built) -> Callable:
    """jit(keys [S], grid [G]) -> state [G, S, ...], every leaf strongly typed: as a
    restored checkpoint's are, so that a run and its resume compile the same chunk (a
    weakly typed leaf, gymnax's ``time``, made them two programs, and the persistent
    compilation cache missed every resume)."""
    size = len(built.spec.hparams)

    def init(keys, grid):
        keys = jax.numpy.broadcast_to(keys, (size, *keys.shape))
        state = _over_runs(built.agent.init, size, built.spec.num_seeds)(keys, grid)
        return jax.tree.map(_strong, state)

    return jax.jit(init, compiler_options=compiler_options())


def make_chunk(built: Built, capacity: int) -> Callable:
    """jit(state [G, S], grid [G], first int32, length int32) -> (state, metrics [G, S,
    capacity]): the updates ``first .. first + length - 1`` (``length <= capacity``),
    state donated; metrics past ``length`` are zeros. One program for every chunk of a
    run, its shorter last one too (a loop of ``length`` trips, bit for bit the
    ``lax.scan`` of that length): a second compile for the last chunk cost as long as
    the first (~4 s for PPO on CartPole here), in the background still ~3 s of the
    run's. Agents with ``update_at`` (PPO, REINFORCE, DQN) get the update's number,
    unbatched, for their periodic evaluation."""
    update_at = getattr(built.agent, "update_at", None)

    def run_chunk(state, hparams, first, length):
        if update_at is None:
            step = lambda s, _: built.agent.update(s, hparams)  # noqa: E731
        else:
            step = lambda s, index: update_at(s, hparams, index)  # noqa: E731
        shapes = jax.eval_shape(step, state, first)[1]
        written = jax.tree.map(lambda m: jnp.zeros((capacity, *m.shape), m.dtype), shapes)

        def body(i, carry):
            state, written = carry
            state, metrics = step(state, first + i)
            put = lambda rows, row: jax.lax.dynamic_update_index_in_dim(rows, row, i, 0)  # noqa: E731
            return state, jax.tree.map(put, written, metrics)

        # first and length are unbatched, so the loop stays one loop under vmap.
        return jax.lax.fori_loop(0, length, body, (state, written))

    runs = _over_runs(run_chunk, len(built.spec.hparams), built.spec.num_seeds, shared=2)
    return jax.jit(runs, donate_argnums=0, compiler_options=compiler_options())


def metric_rows(metrics: Any, first_update: int) -> list[dict]:
    """Rows {grid_point, seed, update, <field>: value} of chunk metrics [G, S, K]; NaN
    and infinities become null (strict JSON has neither); rows whose ``active`` is False
    (a finished tabular run) are dropped."""
    fields = {name: np.asarray(value) for name, value in metrics._asdict().items()}
    active = fields.pop("active", None)
    num_points, num_seeds, length = next(iter(fields.values())).shape[:3]
    # tolist() once per field: Python scalars without a per-element .item().
    columns = {
        name: np.where(np.isfinite(value), value, None).tolist()
        if np.issubdtype(value.dtype, np.floating)
        else value.tolist()
        for name, value in fields.items()
    }
    active = None if active is None else active.tolist()
    rows = []
    for g in range(num_points):
        for s in range(num_seeds):
            for k in range(length):
                if active is not None and not active[g][s][k]:
                    continue
                row = {"grid_point": g, "seed": s, "update": first_update + k}
                for name, column in columns.items():
                    row[name] = column[g][s][k]
                rows.append(row)
    return rows


class _Stop:
    """While installed, the first SIGTERM or SIGINT sets a flag (the loop checkpoints
    and stops after its chunk) and says so at once, even while a chunk runs; a second
    SIGINT ends the process at once (:func:`jrl.interrupts.exit_at_once`: the files are
    written atomically, so it leaves a run that resumes from its last checkpoint, as
    after SIGKILL). A SIGINT the process was started to ignore (``jrl train ... &`` in a
    script: the shell's Ctrl-C is not for its background jobs) stays ignored."""

    def __init__(self, run_dir: str | Path = "RUN_DIR"):
        self.signal: int | None = None
        self.run_dir = run_dir
        self.compiling = False  # no chunk in flight yet: stop once the compile ends

    @contextlib.contextmanager
    def installed(self):
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        killed = "SIGKILL stops it at once; it resumes from its last checkpoint"
        # After a SIGTERM (a preemption, `kill`) no Ctrl-C came first: "again" misled.
        at_once = {
            signal.SIGINT: "Ctrl-C again to stop at once",
            signal.SIGTERM: killed if ignored else "Ctrl-C or SIGINT stops it at once",
        }

        def on_signal(number):
            if self.signal is not None:
                if number == signal.SIGINT:
                    exit_at_once(
                        "jrl: second Ctrl-C: exiting at once; the run resumes from its last "
                        f"checkpoint (jrl train --resume {shlex.quote(str(self.run_dir))})"
                    )
                return
            self.signal = number
            doing = (
                "stopping once the compile ends, before any chunk"
                if self.compiling
                else "finishing the chunk, then a checkpoint and exit"
            )
            print(
                f"jrl: got {signal.Signals(number).name}: {doing} ({at_once[number]})",
                file=sys.stderr,
                flush=True,
            )

        with watch_signals(on_signal, (signal.SIGTERM,) + (() if ignored else (signal.SIGINT,))):
            yield self


class RunInterrupted(KeyboardInterrupt):
    """Raised by :func:`train` when SIGINT or SIGTERM stopped its run, once the chunk
    under way was finished and checkpointed and summary.json written: a
    KeyboardInterrupt, so that a loop over runs (a notebook cell, a script of several
    runs) stops with it instead of starting the next run. ``summary``: what ``train``
    wrote to summary.json (status "interrupted", or "complete" where the signal came
    during the last chunk); ``signal``: the signal's number. Runs in worker processes:
    ``concurrent.futures.ProcessPoolExecutor`` hands it back to the caller, while a
    ``multiprocessing.Pool`` worker dies of it (Pool catches only Exception) and its
    ``map`` waits for ever."""

    def __init__(self, summary: dict, signal_number: int):
        super().__init__(summary, signal_number)  # (its args, as pickle remakes it)
        self.summary = summary
        self.signal = signal_number

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signal).name} (checkpointed)"


class Summary:
    """The last logged episode return (and greedy evaluation return, for runs that
    evaluate) of every run, kept up to date from metric rows (so summary.json can be
    rewritten after every chunk without rereading them)."""

    FIELDS = ("episode_return", "eval_return")
    DEFINITIONS = {
        "final_episode_return": "per seed (seed i at index i; null while a seed has ended "
        "no episode), the last logged row's mean return of the episodes that ended in it "
        "(the last update or chunk that ended one; the experiments' final_return averages "
        "the last 5% of rows instead); mean_final_episode_return is over the seeds with one",
        "final_eval_return": "per seed, the mean greedy return of the last periodic "
        "evaluation (null before a seed's first)",
        "diverged": "runs whose learned values (parameters or Q-table) held NaN or inf at "
        "the end of a chunk, with the update count by which they did",
        "infinite": "runs that logged an infinite value (a loss or Q-value that overflowed, "
        "written as null in metrics.jsonl), with the first such metric and its update",
        "checkpointed_updates": "the update count of the last checkpoint confirmed on disk "
        "(null before the first): a resume without one starts over",
        "updates_run": "updates in which some run still learned (the last metrics row's "
        "update + 1): fewer than updates_done, which counts whole chunks, where every run "
        "ended its episodes inside the last one (tabular)",
    }

    def __init__(self, spec: RunSpec, rows: Iterable[dict] = ()):
        self.spec = spec
        self.last: dict[str, dict[tuple[int, int], float]] = {f: {} for f in self.FIELDS}
        self.timesteps: dict[tuple[int, int], int] = {}
        self.updates_run = 0
        self.add(rows)

    def add(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.updates_run = max(self.updates_run, row["update"] + 1)
            for field in self.FIELDS:
                if row.get(field) is not None:
                    self.last[field][row["grid_point"], row["seed"]] = row[field]
            if row.get("timesteps") is not None:
                self.timesteps[row["grid_point"], row["seed"]] = row["timesteps"]

    def kept(self) -> dict:
        """What a checkpoint's record keeps of it (JSON-able), so that a resume
        rebuilds it without rereading every row of metrics.jsonl."""
        by_run = {field: self.last[field] for field in self.FIELDS}
        by_run["timesteps"] = self.timesteps
        return {
            "updates_run": self.updates_run,
            **{
                name: [[g, s, v] for (g, s), v in values.items()] for name, values in by_run.items()
            },
        }

    @classmethod
    def from_kept(cls, spec: RunSpec, kept: dict) -> Summary:
        """The Summary whose :meth:`kept` gave ``kept``."""
        summary = cls(spec)
        summary.updates_run = kept["updates_run"]
        for field in cls.FIELDS:
            summary.last[field] = {(g, s): v for g, s, v in kept[field]}
        summary.timesteps = {(g, s): v for g, s, v in kept["timesteps"]}
        return summary

    def steps_taken(self) -> int:
        """Environment steps taken by all runs, from each run's last logged row (a
        tabular run that has ended its episodes logs no more, and takes no more)."""
        return int(sum(self.timesteps.values()))

    def grid(self, diverged: Collection[tuple[int, int]] = ()) -> list[dict]:
        """Per grid point: its hyperparameters that are not all at their defaults
        (config.yaml holds every one), each seed's last logged episode return and their
        mean; the same of the evaluation return when the run has evaluated. Seeds in
        ``diverged`` ((grid point, seed) pairs) are listed and left out of the means:
        their returns are those of NaN parameters (argmax of NaN logits: action 0)."""
        points = []
        shown = shown_hparams(self.spec.agent, self.spec.hparams, self.spec.config)
        for g, hparams in enumerate(shown):
            point = {"hparams": hparams}
            lost = [s for s in range(self.spec.num_seeds) if (g, s) in diverged]
            if lost:
                point["diverged_seeds"] = lost
            for field in self.FIELDS:
                values = [self.last[field].get((g, s)) for s in range(self.spec.num_seeds)]
                if field != "episode_return" and all(v is None for v in values):
                    continue
                kept = [v for s, v in enumerate(values) if v is not None and s not in lost]
                point[f"final_{field}"] = values
                point[f"mean_final_{field}"] = float(np.mean(kept)) if kept else None
            points.append(point)
        return points


def _learned(state: Any) -> Any:
    """What a run learns, where a diverged run shows it: the network parameters (PPO,
    DQN) or the Q-table (tabular)."""
    return state.params if hasattr(state, "params") else state.q_values


@jax.jit
def finite_runs(state: Any) -> jax.Array:
    """bool[G, S]: whether each run's learned values are all finite, of ``state`` as
    ``run_sweep`` returns it (leaves [G, S, ...])."""
    if not (hasattr(state, "params") or hasattr(state, "q_values")):
        raise TypeError(
            f"finite_runs takes an agent's state (params or q_values), got {type(state).__name__}"
        )
    # A run's own counter (PPO's and REINFORCE's update, DQN's timesteps) is a scalar, as
    # its Q-table (tabular) has 2 axes: swept, they gain [G, S].
    counter = getattr(state, "update", getattr(state, "timesteps", None))
    if counter is not None:
        swept = jnp.ndim(counter) == 2
    else:
        swept = jnp.ndim(state.q_values) == 4 if hasattr(state, "q_values") else True
    if not swept:
        raise ValueError(
            "finite_runs takes run_sweep's state, whose leaves are [G, S, ...]; this one is "
            "one run's (train's): wrap it as jax.tree.map(lambda x: x[None, None], state)"
        )
    leaves = jax.tree.leaves(_learned(state))
    return jnp.stack([jnp.isfinite(x).reshape(*x.shape[:2], -1).all(axis=-1) for x in leaves]).all(
        axis=0
    )


def _note_infinite(infinite: dict, metrics: Any, first_update: int) -> None:
    """Add to ``infinite`` each run that logged an infinity in this chunk's ``metrics``
    [G, S, K] (a loss or Q-value that overflowed, which metrics.jsonl writes as null, as
    it writes a value not logged) with its first such metric, saying so on stderr once
    per run."""
    first: dict[tuple[int, int], tuple[int, str]] = {}
    for name, value in metrics._asdict().items():
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            continue
        overflowed = np.isinf(value)
        for g, seed in zip(*np.nonzero(overflowed.any(axis=-1)), strict=True):
            k = int(np.argmax(overflowed[g, seed]))
            run = (int(g), int(seed))
            if run not in infinite and (run not in first or k < first[run][0]):
                first[run] = (k, name)
    for (g, seed), (k, name) in sorted(first.items()):
        infinite[g, seed] = {"metric": name, "update": first_update + k}
        print(
            f"jrl: grid point {g} seed {seed} logged an infinite {name} at update "
            f"{first_update + k} (an overflow, written as null in metrics.jsonl; "
            "summary.json lists it under 'infinite')",
            file=sys.stderr,
            flush=True,
        )


# What a new run's directory may hold before its config.yaml: the lock, the sinks'
# folders (``jrl.sinks``; the command line opens the sinks before training starts), and
# meta.json (written just before config.yaml: a process killed between the two leaves it).
MADE_BEFORE_CONFIG = {".lock", "wandb", "tensorboard", "meta.json"}


def _note_diverged(diverged: dict, finite: np.ndarray, updates_done: int) -> None:
    """Add the runs whose learned values are no longer all finite (``finite``
    bool[G, S]) to ``diverged``, saying so on stderr once per run: their losses are NaN
    from then on (written as null, like a row in which no episode ended) and their
    returns those of a degenerate policy."""
    for g, seed in zip(*np.nonzero(~finite), strict=True):
        if (int(g), int(seed)) not in diverged:
            diverged[int(g), int(seed)] = updates_done
            print(
                f"jrl: grid point {g} seed {seed} diverged: its learned values hold NaN or "
                f"inf by update {updates_done} (its losses are null from then on, its "
                "returns those of a policy of NaN parameters; summary.json lists it under "
                "'diverged' and leaves it out of the means)",
                file=sys.stderr,
                flush=True,
            )


@contextlib.contextmanager
def _naming_the_writer(run_dir: str | Path) -> Iterator[None]:
    """A checkpoint of another configuration or state: where another commit of jrl
    wrote it (meta.json's last process), the CheckpointError says which and what to
    do, since an edit of config.yaml is then not the likely cause."""
    try:
        yield
    except checkpoint.MismatchError as error:
        text = str(error)
        meta = read_meta(run_dir)
        writer = [meta, *meta.get("resumes", [])][-1].get("commit")
        now = git_state().get("commit")
        if writer == now or _config_edited(run_dir, meta):
            raise  # an edit is the cause: another commit would not help
        if not writer:
            raise checkpoint.MismatchError(
                f"{text}. meta.json records no commit of the jrl that wrote the run: if "
                "another version of jrl wrote it, resume or evaluate it with that version"
            ) from error
        raise checkpoint.MismatchError(
            f"{text}. The run was written by jrl at commit {writer[:12]} (meta.json), and "
            f"this is {f'commit {now[:12]}' if now else 'a jrl without its git history'}: "
            "a later jrl may store its configuration or state differently. Resume or "
            f"evaluate it with that commit (git checkout {writer[:12]}), or start a new run"
        ) from error


def _config_edited(run_dir: str | Path, meta: dict) -> bool:
    """Whether config.yaml is not the file the run was started with (its hash is not
    meta.json's fingerprint); False where meta.json records none or it cannot be read."""
    try:
        written = read_yaml(Path(run_dir) / "config.yaml")
    except (OSError, yaml.YAMLError):
        return False
    started = meta.get("fingerprint")
    return started is not None and isinstance(written, dict) and _fingerprint_of(written) != started


def _check_nothing_checkpointed(run_dir: Path) -> None:
    """For a resume that finds no checkpoint record: a CheckpointError where summary.json
    says a checkpoint was confirmed (``checkpointed_updates``), since starting over would
    replace the run's metrics: its checkpoints were removed, not never written. A
    summary.json from before jrl kept that field cannot say so; there a finished
    checkpoint directory left without its record does, and so does a final status after
    some updates unless orbax's unfinished directory, with no finished one, shows that
    the first save was cut short (which also left a final status then)."""
    summary = read_summary(run_dir) or {}
    names = [path.name for path in (run_dir / "checkpoints").glob("chunk_*") if path.is_dir()]
    finished = [path.name for path in checkpoint.finished_checkpoints(run_dir / "checkpoints")]
    cut_short = not finished and any("-tmp" in name for name in names)
    final = summary.get("status") in ("stopped", "interrupted", "complete")
    if "checkpointed_updates" in summary:
        done = summary["checkpointed_updates"]
    elif finished or (final and not cut_short):
        done = summary.get("updates_done")
    else:
        done = None
    if done:
        raise checkpoint.CheckpointError(
            f"{run_dir} was checkpointed after {done} updates (summary.json), but "
            "checkpoints/ holds no record of a checkpoint (latest.json and chunk_N.json "
            "are gone"
            + (f"; it holds {', '.join(finished)} without them" if finished else "")
            + "): a resume would train it again from update 0 and replace its metrics. "
            "Restore checkpoints/, or train into a new run directory"
        )


def _check_new_run_dir(run_dir: Path) -> None:
    """Refuse ``run_dir`` for a new run unless it is new or empty (but for
    :data:`MADE_BEFORE_CONFIG`), so nothing there is overwritten."""
    if (run_dir / "config.yaml").exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; resume it (jrl train --resume, or in Python "
            "train(..., resume=True)) or choose another directory (--out)"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"{run_dir} is a file; choose a new or empty directory")
    if run_dir.exists() and {p.name for p in run_dir.iterdir()} - MADE_BEFORE_CONFIG:
        raise FileExistsError(
            f"{run_dir} holds other files but no run (no config.yaml); choose a new or "
            "empty directory, so that nothing there is overwritten"
        )


def _check_started_with(run_dir: Path, fingerprint: str) -> None:
    """Raise CheckpointError unless ``run_dir``'s run was started with the configuration
    whose fingerprint is ``fingerprint`` (meta.json's; a run directory from before it was
    recorded passes). Checked on resume before any checkpoint, which a run stopped early
    may not have."""
    started = read_meta(run_dir).get("fingerprint")
    if started is not None and started != fingerprint:
        raise checkpoint.MismatchError(
            f"{run_dir} was started with another configuration (fingerprint {started}, "
            f"this run {fingerprint}): was its config.yaml edited? A run's configuration "
            "cannot change on resume; put the original back (meta.json's argv is the "
            "command that started it), or start a new run directory (jrl train --config-file "
            f"{shlex.quote(str(run_dir / 'config.yaml'))} with the change)"
        )


def _flock_exclusive(lock, patience: float = 0.1) -> None:
    """flock ``lock`` exclusively, or BlockingIOError while another holds it. Where the
    process ``lock`` names (the last to hold it) is gone, the holder is :func:`in_use`
    (jrl eval asking whether a run is under way), whose shared lock lasts an instant:
    that is tried again for ``patience`` seconds, not taken for a run under way."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline or _named_process_lives(lock):
                raise
            time.sleep(0.01)


def _named_process_lives(lock) -> bool:
    lock.seek(0)
    text = lock.read().strip()
    if not text.isdigit():
        return True  # nothing to tell by: as if it lived
    if int(text) == os.getpid():
        return False  # this process ran the run before (a notebook): not a run under way
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


@contextlib.contextmanager
def _exclusive(run_dir: Path):
    """Hold ``run_dir/.lock`` (an advisory ``flock``, let go when the process ends, even
    by a kill) for as long as the block runs, or raise :class:`RunInUseError`."""
    with open(run_dir / ".lock", "a+") as lock:
        try:
            _flock_exclusive(lock)
            locked = True
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise RunInUseError(
                f"{run_dir} is in use by another jrl process (pid {holder}); wait for it to "
                "end or stop it (it checkpoints on SIGTERM), then resume"
            ) from None
        except OSError as error:  # a file system without locks (Lustre mounted noflock)
            print(f"jrl: cannot lock {lock.name} ({error}); running unlocked", file=sys.stderr)
            locked = False
        if locked:
            lock.truncate(0)
            lock.write(str(os.getpid()))
            lock.flush()
        try:
            yield
        finally:
            if locked:
                fcntl.flock(lock, fcntl.LOCK_UN)


def in_use(run_dir: str | Path) -> bool | None:
    """Whether a process holds ``run_dir``'s lock (a run under way); None where the
    file system cannot lock, since then nobody can tell."""
    path = Path(run_dir) / ".lock"
    if not path.exists():
        return False
    with open(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # no locks on this file system
            return None
        fcntl.flock(lock, fcntl.LOCK_UN)
    return False


CHECKPOINT_EVERY = 30.0
"""Seconds between a run's checkpoints by default (``train``'s ``checkpoint_every``).
An orbax checkpoint costs ~90 ms on a 2-core CPU: one seed of PPO on CartPole in
chunks of 10 updates ran 11.8-13.9 s checkpointing every chunk, 6.8-7.8 s with this."""


def train(
    spec: RunSpec,
    run_dir: str | Path,
    resume: bool = False,
    max_chunks: int | None = None,
    progress: bool = True,
    sinks: Sequence[Any] | Callable[[], Sequence[Any]] = (),
    meta: dict | None = None,
    checkpoint_every: float | None = None,
) -> dict:
    """Run (or resume) ``spec`` in ``run_dir``; returns the summary it writes.
    SIGINT or SIGTERM during the run stops it after its chunk under way, checkpointed,
    and raises :class:`RunInterrupted` (a KeyboardInterrupt) carrying that summary
    (status "interrupted", or "complete" where that chunk was the last).

    A new run refuses a directory that already holds one (resume it, or choose
    another), and a run directory serves one process at a time (:class:`RunInUseError`
    for a second). ``max_chunks``: stop (checkpointed) after that many chunks in this
    call — for tests and for splitting a run across jobs. ``sinks``: objects with
    ``write(rows)`` and ``close()`` (``jrl.sinks``) also fed every chunk's metric rows;
    or a function that makes them, called once the run directory is checked and held
    (a refused run starts no W&B run), whose sinks ``train`` closes at the end.
    ``meta``: more provenance for a new run's meta.json (JSON-able).
    ``checkpoint_every``: seconds between checkpoints — a chunk's end is checkpointed
    once this long has passed since the last checkpoint (or the start), and always the
    last chunk's, one a signal stopped and the last of ``max_chunks``; a kill loses at
    most this much training; 0 checkpoints every chunk; None: :data:`CHECKPOINT_EVERY`.
    It decides no number."""
    if not isinstance(spec, RunSpec):
        raise TypeError(
            f"train takes a RunSpec, got {type(spec).__name__} (a config.yaml's fields: "
            "RunSpec.from_dict(fields))"
        )
    if not isinstance(run_dir, str | os.PathLike):
        raise TypeError(
            f"run_dir must be the path (a str or pathlib.Path) of the directory the run is "
            f"written to, got {type(run_dir).__name__} {run_dir!r:.60}"
        )
    if str(run_dir) == "":
        raise ValueError("run_dir is empty (the current directory): name the run's directory")
    check_bool("resume", resume)  # resume="False" is a non-empty string: it resumed
    check_bool("progress", progress)
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict of more provenance (or None), got {meta!r:.60}")
    if not callable(sinks):
        _check_sinks(sinks)
    if max_chunks is not None and (
        isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 0
    ):
        raise ValueError(f"max_chunks must be None or an int >= 0, got {max_chunks!r}")
    if checkpoint_every is None:
        checkpoint_every = CHECKPOINT_EVERY
    if (
        isinstance(checkpoint_every, bool)
        or not isinstance(checkpoint_every, int | float)
        or not 0 <= checkpoint_every < math.inf
    ):
        raise ValueError(
            f"checkpoint_every must be a number of seconds >= 0 (0: every chunk), got "
            f"{checkpoint_every!r}"
        )
    with contextlib.ExitStack() as held:
        return _train(
            spec, run_dir, resume, max_chunks, progress, sinks, meta, held, checkpoint_every
        )


def _check_sinks(sinks: Any) -> Any:
    """``sinks`` if it is a sequence of objects with ``write`` and ``close``."""
    if (
        isinstance(sinks, str)
        or not isinstance(sinks, Sequence)
        or not all(
            callable(getattr(sink, "write", None)) and callable(getattr(sink, "close", None))
            for sink in sinks
        )
    ):
        raise TypeError(
            "sinks must be objects with write(rows) and close() (jrl.sinks.make_sinks(names, "
            f"run_dir) makes them from names), or a function making them; got {sinks!r:.80}"
        )
    return sinks


# The files a run directory holds that ``train`` writes (atomically, but for rows).
RUN_FILES = ("config.yaml", "meta.json", "metrics.jsonl", "summary.json")


def _train(spec, run_dir, resume, max_chunks, progress, sinks, meta, held, checkpoint_every):
    """``train``'s body; ``held`` (an ExitStack) takes the directory's lock once it
    exists, and closes the sinks ``train`` opens."""
    # Resolved once: a symlink repointed mid-run would split its files between two targets.
    run_dir = Path(run_dir).resolve()
    checkpoint.check_path(run_dir)
    hold = lambda: held.enter_context(_exclusive(run_dir))  # noqa: E731
    spec = resolve(spec, new_run=not resume)
    # What the run's records carry: its spec's, or an older jrl's for the same run.
    fingerprint = spec.fingerprint()
    checkpoints = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    if resume:
        if not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"{run_dir} holds no run (no config.yaml) to resume")
        hold()
        fingerprint = recorded_fingerprint(run_dir, spec) or fingerprint
        with _naming_the_writer(run_dir):
            _check_started_with(run_dir, fingerprint)
        record = checkpoint.latest(checkpoints)  # a damaged latest.json fails here, early
        if record is not None:
            with _naming_the_writer(run_dir):
                checkpoint.check_fingerprint(record, checkpoints, fingerprint)
        else:
            _check_nothing_checkpointed(run_dir)
    else:
        _check_new_run_dir(run_dir)
    built, chunks = _built_and_chunks(spec, spec.fingerprint())
    if not resume:  # before anything compiles: an --out that cannot be written fails here
        run_dir.mkdir(parents=True, exist_ok=True)
        hold()
        _check_new_run_dir(run_dir)  # again: another process may have started a run here

    updates_done = 0
    if resume and record is not None:
        like = jax.eval_shape(chunks["init"], built.keys, built.grid)
        with _naming_the_writer(run_dir):
            state, info = checkpoint.restore(checkpoints, like, fingerprint, record)
        updates_done = info["updates_done"]
    else:
        state = chunks["init"](built.keys, built.grid)
    resumed_from = updates_done or None  # the checkpoint this call began from
    last_summary = read_summary(run_dir) if resume else None  # what the last process wrote
    if resume:
        # Rows past the checkpoint (written before a kill) are run again: drop them.
        dropped = truncate_rows(metrics_path, lambda row: row["update"] < updates_done)
        if record is None and dropped:
            older = last_summary is not None and "checkpointed_updates" not in last_summary
            print(
                f"jrl: {run_dir} holds no checkpoint yet (killed before its first was "
                "complete"
                + ("; or its checkpoints were removed, which an older jrl's summary.json "
                   "cannot tell" if older else "")
                + f"): it starts again from update 0, its {dropped} metric rows dropped",
                file=sys.stderr,
            )  # fmt: skip
        # Atomic writes of the run's own files cut short by a kill (jrl eval's and jrl
        # plot's, which may be writing now, are theirs).
        own = [stale for name in RUN_FILES for stale in temporaries(run_dir / name)]
        for stale in [*own, *checkpoints.glob(".*.tmp")]:
            if stale.is_file():
                stale.unlink(missing_ok=True)
        # A complete run has nothing left to run: no resume to record or warn of.
        complete = record is not None and info.get("run_status") == "complete"
        changed = [] if complete else record_resume(run_dir, updates_done)
        if changed:
            print(
                f"jrl: {run_dir} resumes at update {updates_done} in another setting than "
                f"it ran in before ({'; '.join(changed)}): its numbers from here on may "
                "differ from those of a run that never stopped, which repeat bit for bit "
                "only under the same code, versions, CPU, devices, XLA_FLAGS and compiler "
                "options (meta.json lists each process under 'resumes')",
                file=sys.stderr,
                flush=True,
            )
    else:
        # meta.json first: config.yaml marks a run, and a resume of a run without its
        # meta.json would lose the fingerprint, the seeds and the sinks it began with.
        write_meta(
            run_dir,
            list(range(spec.num_seeds)),
            {**(meta or {}), "seed": spec.seed, "fingerprint": fingerprint},
        )
        write_yaml(run_dir / "config.yaml", spec.to_dict())
        metrics_path.write_text("")
    if callable(sinks):
        sinks = _check_sinks(sinks())
        for sink in reversed(sinks):  # each closed in turn, whatever one before raised
            held.callback(sink.close)
    if resume and record is not None and "summary" in info:
        summary = Summary.from_kept(spec, info["summary"])
    else:  # (a checkpoint of before jrl kept it there: the rows it covers, read again)
        summary = Summary(spec, iter_rows(metrics_path) if resume else ())
    # (grid point, seed) -> the update count by which its learned values held NaN or inf
    diverged: dict[tuple[int, int], int] = {}
    # (grid point, seed) -> the first metric it logged as an infinity, and at which update
    infinite: dict[tuple[int, int], dict] = {}
    if last_summary is not None:  # as of the checkpoint: later chunks are run again
        for entry in last_summary.get("diverged", []):
            if entry["by_update"] <= updates_done:
                diverged[entry["grid_point"], entry["seed"]] = entry["by_update"]
        for entry in last_summary.get("infinite", []):
            if entry["update"] < updates_done:
                infinite[entry["grid_point"], entry["seed"]] = {
                    "metric": entry["metric"],
                    "update": entry["update"],
                }

    def write_summary(status: str, seconds: float, compile_s: float) -> dict:
        result = {
            "status": status,
            "updates_done": updates_done,
            "updates_run": summary.updates_run,
            "checkpointed_updates": saver.recorded or resumed_from,
            "total_updates": built.total_updates,
            "seconds_this_call": round(seconds, 3),
            "compile_seconds_this_call": round(compile_s, 3),
            "grid": summary.grid(diverged),
            "diverged": [
                {"grid_point": g, "seed": seed, "by_update": update}
                for (g, seed), update in sorted(diverged.items())
            ],
            "infinite": [
                {"grid_point": g, "seed": seed, **first}
                for (g, seed), first in sorted(infinite.items())
            ],
            "definitions": Summary.DEFINITIONS,
        }
        write_json(run_dir / "summary.json", result)
        return result

    all_finished = chunks.get("finished")
    stop = _Stop(run_dir)
    saver = checkpoint.Saver(checkpoints)
    bar = None
    start, chunks_run, compile_s = time.perf_counter(), 0, 0.0
    ended_early = False  # every run of an agent that ends by itself (tabular) is done

    def dispatch(state, first: int):
        """Start the chunk after ``first`` updates (asynchronously) unless the run is
        over, stopped, or at ``max_chunks``: (state, metrics, length) or None."""
        nonlocal chunks_run, compile_s, ended_early
        if first >= built.total_updates:
            return None
        if all_finished is not None and bool(np.all(np.asarray(all_finished(state)))):
            ended_early = True
            return None
        if stop.signal is not None or (max_chunks is not None and chunks_run >= max_chunks):
            return None
        length = min(spec.chunk_size, built.total_updates - first)
        if "chunk" not in chunks:
            if progress:  # seconds to minutes (a CNN, a GPU) before the bar moves
                print(
                    f"jrl: compiling {spec.agent} {spec.env} ({_runs(built)}, "
                    f"{spec.chunk_size} updates a chunk) ...",
                    file=sys.stderr,
                    flush=True,
                )
            started = time.perf_counter()
            stop.compiling = True
            try:
                chunks["chunk"] = (
                    make_chunk(built, spec.chunk_size)
                    .lower(state, built.grid, np.int32(first), np.int32(length))
                    .compile()
                )
            finally:
                stop.compiling = False
            release_unused_memory()
            compile_s += time.perf_counter() - started
            if progress:
                print(f"jrl: compiled in {compile_s:.1f} s", file=sys.stderr, flush=True)
            if stop.signal is not None:  # heard while compiling: no chunk started
                return None
        chunks_run += 1
        return (*chunks["chunk"](state, built.grid, np.int32(first), np.int32(length)), length)

    def final_status() -> str:
        """The status of a run that starts no more chunks."""
        if updates_done >= built.total_updates or ended_early:
            return "complete"
        return "interrupted" if stop.signal is not None else "stopped"

    with stop.installed():
        try:
            # Pipelined: chunk i+1 is started before chunk i's rows, checkpoint and
            # summary are written, so the host's work overlaps the device's.
            in_flight = dispatch(state, updates_done)
            # After compiling; none where no chunk runs (a complete run resumed).
            bar = _progress(progress and in_flight is not None, built, summary.steps_taken())
            last_checkpoint = time.perf_counter()
            while in_flight is not None:
                state, metrics, length = in_flight
                finite = finite_runs(state)
                due = time.perf_counter() - last_checkpoint >= checkpoint_every
                # Copied to the host before the next chunk is started, which donates it.
                taken = checkpoint.snapshot(state) if due else None
                metrics = jax.tree.map(lambda m, k=length: m[:, :, :k], jax.device_get(metrics))
                in_flight = dispatch(state, updates_done + length)
                if taken is None and in_flight is None:  # the last chunk: nothing donated
                    taken = checkpoint.snapshot(state)
                _note_infinite(infinite, metrics, updates_done)
                rows = metric_rows(metrics, updates_done)
                updates_done += length
                _note_diverged(diverged, np.asarray(finite), updates_done)
                append_rows(metrics_path, rows)
                summary.add(rows)
                for sink in sinks:
                    sink.write(rows)
                    if hasattr(sink, "flush"):  # on disk before the chunk's checkpoint is
                        sink.flush()
                # The run's status at this checkpoint, for jrl eval (summary.json may
                # have moved on by the time the checkpoint is read).
                info = {
                    "fingerprint": fingerprint,
                    "updates_done": updates_done,
                    "run_status": "running" if in_flight is not None else final_status(),
                    "summary": summary.kept(),
                }
                if taken is not None:
                    saver.save(updates_done, taken, info)
                    last_checkpoint = time.perf_counter()
                write_summary("running", time.perf_counter() - start, compile_s)
                if bar is not None:
                    bar.update(summary.steps_taken() - bar.n)
        except OSError:  # a full disk, a lost mount: the run's checkpoints are whole
            print(
                f"jrl: {run_dir} stopped by an error after {updates_done} updates; its "
                "checkpoints are kept (latest.json names the last whole one): once the "
                f"cause is fixed, resume with: jrl train --resume {shlex.quote(str(run_dir))}",
                file=sys.stderr,
            )
            raise
        finally:
            saver.close()
            if bar is not None:
                bar.close()
    status = final_status()
    result = write_summary(status, time.perf_counter() - start, compile_s)
    if status == "interrupted":
        name = signal.Signals(stop.signal).name
        if chunks_run:
            stopped = f"after {updates_done} updates (checkpointed; "
        elif resumed_from:
            stopped = f"before running a chunk, at its checkpoint of update {updates_done} ("
        else:
            stopped = "before its first chunk (nothing to checkpoint: it starts at update 0; "
        with contextlib.suppress(BrokenPipeError):  # `2>&1 | tee`, ended by the same Ctrl-C
            print(
                f"jrl: stopped by {name} {stopped}in Python train(spec, run_dir, resume=True) "
                f"resumes it); resume with: jrl train --resume {shlex.quote(str(run_dir))}",
                file=sys.stderr,
            )
    if stop.signal is not None:  # (in the last chunk too: the run is complete)
        raise RunInterrupted(result, stop.signal)
    return result


# Compiled programs of the last few runs built in this process, so that stopping and
# resuming in one process (tests, notebooks) compiles once.
_BUILT: Recent[tuple[Built, dict]] = Recent(keep=4)


def _built_and_chunks(spec: RunSpec, fingerprint: str) -> tuple[Built, dict]:
    """The built run and its compiled functions: "init", "finished" (agents that end
    early) and the chunk of each length."""

    def build_and_chunks():
        built = build(spec)
        chunks: dict = {"init": make_init(built)}
        if built.finished is not None:
            chunks["finished"] = jax.jit(jax.vmap(jax.vmap(built.finished)))
        return built, chunks

    return _BUILT.get(build_key(spec, fingerprint), build_and_chunks)


def build_key(spec: RunSpec, fingerprint: str | None = None) -> tuple | None:
    """What decides a built run in this process, for caches of what is built from it:
    its fingerprint (``spec``'s own by default). None (built anew every time) for an
    environment of one's own (registered, or by import path), whose code may change
    within the process with nothing that could tell: a notebook cell of its class run
    again, a module autoreloaded, a constant of its module set."""
    return None if is_own(spec.env) else (fingerprint or spec.fingerprint(),)


def restore_state(run_dir: str | Path) -> tuple[Built, Any, dict]:
    """(built run, state [G, S, ...], checkpoint info) of a run directory's newest
    checkpoint."""
    spec = load_spec(run_dir)
    built, chunks = _built_and_chunks(spec, spec.fingerprint())
    like = jax.eval_shape(chunks["init"], built.keys, built.grid)
    fingerprint = recorded_fingerprint(run_dir, spec) or spec.fingerprint()
    with _naming_the_writer(run_dir):
        state, info = checkpoint.restore(Path(run_dir) / "checkpoints", like, fingerprint)
    return built, state, info


def _num_runs(built: Built) -> int:
    return len(built.spec.hparams) * built.spec.num_seeds


def _runs(built: Built) -> str:
    """The runs, grid points times seeds, as "1 run" or "8 runs"."""
    runs = _num_runs(built)
    return f"{runs} run{'s' * (runs != 1)}"


def _progress(enabled: bool, built: Built, steps_taken: int):
    """A tqdm bar of the environment steps taken over all runs (so its rate is the
    throughput), from ``steps_taken`` on, or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    steps = _num_runs(built) * built.steps_per_update
    # A tabular run ends when its episodes are done: its step cap is no ETA.
    return tqdm(
        total=None if built.finished else built.total_updates * steps,
        initial=steps_taken,
        unit="step",
        unit_scale=True,
        desc=f"{built.spec.agent} {built.spec.env} ({_runs(built)})",
        dynamic_ncols=True,
    )


# Config fields added after run directories began, each with the value that is how the
# commits before it behaved: a config.yaml written before a field lacks it, and its run
# is the same configuration where its resolved spec holds that value (a field added
# without an entry here leaves older runs refused, naming the commit that wrote them).
ADDED_CONFIG_FIELDS = {
    "dqn": {
        "clip_gradients": True,  # 7dd2a95: gradients were always clipped
        "eval_every": 0,  # 14660a6: no evaluation inside the run
        "eval_episodes": 10,
        "eval_max_steps": 0,
        "eval_seed": 12345,
        "kernel_init": "orthogonal",  # d3bb8fa: the only initialisation before
    },
    "ppo": {"eval_every": 0, "eval_episodes": 10, "eval_max_steps": 0, "eval_seed": 12345},
}


def recorded_fingerprint(run_dir: str | Path, spec: RunSpec) -> str | None:
    """The fingerprint meta.json and the checkpoints of the run in ``run_dir`` carry,
    where ``spec`` (its config.yaml, resolved) is the configuration it was started with:
    ``spec``'s own; for a run an older jrl wrote before config fields were added, that of
    its config.yaml as written, where the file is as written (its hash is the recorded
    fingerprint) and every field it lacks holds :data:`ADDED_CONFIG_FIELDS`' value. None
    where it is neither (config.yaml edited, or a change this jrl cannot vouch for)."""
    current = spec.fingerprint()
    started = read_meta(run_dir).get("fingerprint")
    if started is None or started == current:
        return current
    written = read_yaml(Path(run_dir) / "config.yaml")
    if _fingerprint_of(written) != started or load_spec(run_dir).fingerprint() != current:
        return None  # config.yaml edited, or ``spec`` is not the run's
    resolved = spec.to_dict()
    points = written.get("hparams") or []
    if set(resolved) - set(written) or len(points) != len(resolved["hparams"]):
        return None  # only config fields were ever added since run directories began
    if any(
        set(now) - set(point or {}) for point, now in zip(points, resolved["hparams"], strict=True)
    ):
        return None
    lacking = set(spec.config) - set(written.get("config") or {})
    before = ADDED_CONFIG_FIELDS.get(spec.agent, {})
    same = all(name in before and spec.config[name] == before[name] for name in lacking)
    return started if same else None


def _fingerprint_of(data: dict) -> str:
    """:meth:`RunSpec.fingerprint` of a spec's dict."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_spec(run_dir: str | Path) -> RunSpec:
    """The RunSpec a run directory was started with (its config.yaml), resolved."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} holds no run (no config.yaml)")
    try:
        data = read_yaml(path)
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of run fields, got {type(data).__name__}")
    return resolve(RunSpec.from_dict(data), new_run=False)
