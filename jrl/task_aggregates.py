"""Aggregates across tasks: several run directories pooled, each environment a task and
each agent's grid point a method, returns normalised per task and aggregated with
rliable through ``jrl.stats`` (what ``jrl eval RUN_A RUN_B ... --out DIR`` does).

A task is a run's environment with its overrides (``CatRoom-v0``,
``CatRoom-v0 slip_prob=0.1``); a method is the agent with the grid point's
hyperparameters that differ from the agent's defaults in any pooled run
(``tabular alpha=0.1``; ``ppo`` alone when none does), and with the config fields that
differ between two of its points on one task whose hyperparameters are the same
(``tabular algorithm=sarsa``: a tabular config's tuple of algorithms counts as the one
each grid point runs; :data:`BOOKKEEPING_FIELDS` never count). Config fields that differ
between a method's tasks only (a budget, a CNN on grids and an MLP on vectors) leave
it one method; ``PoolPlan.config_differences`` lists them (``jrl eval`` says so, and
tasks.json keeps them), since they may be more than a task's needs (Sarsa on one
task and Q-learning on the other pool as one "tabular"). One run directory per task
holding the same grid is the usual case; several run directories of one task (a PPO
run and a DQN run on CartPole-v1) add their methods to it. Every task must hold every
method, each method once, with the same number of seeds on every task (rliable's
scores are [runs, tasks] per method): anything else is refused, naming the runs,
before any evaluation.

A method's score on a task is, per seed, its mean return over the evaluation
episodes (``jrl.run_analysis.evaluate_run``: the same keys for every seed, and the
same for every task). Normalised per task as ``(score - low) / (high - low)``:

    normalize="random,best" (default)
        low: the mean return of a uniformly random policy (the action space's
        ``sample``) over the same evaluation keys and step cap;
        high: the best per-seed score observed on the task (any method, any seed).
        0 is the random policy, 1 the best run; the optimality gap (target 1) is the
        shortfall from the best run. A task where no run beats random is refused.
    normalize="none"
        raw returns (only meaningful when the tasks share a scale).
    references={task: (low, high)}
        replaces either for the tasks named (published random and expert scores, say).

Aggregates (IQM, mean, median, optimality gap) over runs x tasks with
stratified-bootstrap intervals, and performance profiles, as ``stats.write_report``
writes them, plus ``tasks.json``: per task its runs, low and high, and every method's
raw and normalised scores.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jrl import checkpoint, stats, training
from jrl.agents import evaluation
from jrl.run_dir import note_setting_differences, provenance, read_summary, write_json

NORMALIZE = ("random,best", "none")

BOOKKEEPING_FIELDS = (
    "eval_every",
    "eval_episodes",
    "eval_max_steps",
    "eval_seed",
    "log_frequency",
    "steps_per_iteration",
)
"""Config fields that change how a run is measured or batched, not what it learns by:
they never name a method (they may differ between the runs pooled). The last two also
change which random numbers a run draws, not their distribution."""


class PoolPlan(NamedTuple):
    """tasks: task labels in order; methods: method labels in order; where[task][method]:
    (run directory, grid point); num_seeds[method]; config_differences[method]: {field:
    {task: value}} for the config fields whose values differ between the method's tasks
    (methods without any left out)."""

    tasks: list[str]
    methods: list[str]
    where: dict[str, dict[str, tuple[Path, int]]]
    num_seeds: dict[str, int]
    specs: dict[Path, training.RunSpec]
    config_differences: dict[str, dict[str, dict[str, str]]]


def task_label(spec: training.RunSpec) -> str:
    overrides = " ".join(f"{k}={v}" for k, v in sorted(spec.env_overrides.items()))
    return f"{spec.env} {overrides}".strip()


def _format(value) -> str:
    if isinstance(value, float):
        return training.shown_number(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_format(v) for v in value)
    return str(value)


def point_setting(spec: training.RunSpec, g: int) -> tuple[dict, dict]:
    """(config, hyperparameters) grid point ``g`` of ``spec`` runs, with a tabular
    config's tuple of algorithms resolved to the one the point runs (its ``algorithm``
    index means another algorithm in a tuple of another order)."""
    config, hparams = dict(spec.config), dict(spec.hparams[g])
    if spec.agent == "tabular" and isinstance(config.get("algorithm"), (list, tuple)):
        config["algorithm"] = config["algorithm"][int(hparams.pop("algorithm", 0))]
    return config, hparams


def plan_pool(run_dirs) -> PoolPlan:
    """Read every run's config.yaml and pair (task, method) with (run, grid point);
    ValueError naming the runs when a task lacks a method, holds one twice, or a method's
    seed count differs between tasks. Nothing is evaluated."""
    run_dirs = [Path(d) for d in run_dirs]
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise ValueError(f"a run directory is given twice: {[str(d) for d in run_dirs]}")
    specs = {d: training.load_spec(d) for d in run_dirs}
    settings = {
        (d, g): point_setting(spec, g)
        for d, spec in specs.items()
        for g in range(len(spec.hparams))
    }
    by_agent: dict[str, list[dict]] = {}
    for (d, _), (_, hparams) in settings.items():
        by_agent.setdefault(specs[d].agent, []).append(hparams)
    # The hyperparameters that tell apart any two points of an agent, in every run.
    names = {
        agent: set().union(*training.shown_hparams(agent, points))
        for agent, points in by_agent.items()
    }
    hparam_labels = {
        (d, g): " ".join(
            f"{k}={training.shown_number(point[k])}" for k in point if k in names[specs[d].agent]
        )
        for (d, g), (_, point) in settings.items()
    }
    # The config fields that tell apart two points of an agent on one task whose
    # hyperparameters do not (Sarsa and Q-learning), bookkeeping fields aside.
    alike: dict[tuple[str, str, str], list[dict]] = {}
    for (d, g), (config, _) in settings.items():
        key = (specs[d].agent, task_label(specs[d]), hparam_labels[d, g])
        alike.setdefault(key, []).append(config)
    method_fields: dict[str, set[str]] = {agent: set() for agent in by_agent}
    for (agent, _, _), group in alike.items():
        for field in group[0]:
            values = {_format(config.get(field)) for config in group}
            if len(values) > 1 and field not in BOOKKEEPING_FIELDS:
                method_fields[agent].add(field)
    where: dict[str, dict[str, tuple[Path, int]]] = {}
    seeds: dict[str, dict[str, int]] = {}
    differences: dict[str, dict[str, dict[str, str]]] = {}
    for (run_dir, g), (config, _) in settings.items():
        spec, task = specs[run_dir], task_label(specs[run_dir])
        fields = method_fields[spec.agent]
        shown = [f"{k}={_format(config[k])}" for k in config if k in fields]
        method = " ".join([spec.agent, *shown, hparam_labels[run_dir, g]]).strip()
        if method in where.setdefault(task, {}):
            other, other_g = where[task][method]
            raise ValueError(
                f"method {method!r} appears twice on task {task!r}: {other} grid point "
                f"{other_g} and {run_dir} grid point {g}; pool one of them"
            )
        where[task][method] = (run_dir, g)
        seeds.setdefault(method, {})[task] = spec.num_seeds
        for field, value in config.items():
            if field not in fields:
                differences.setdefault(method, {}).setdefault(field, {})[task] = _format(value)
    tasks = list(where)
    methods = list(dict.fromkeys(m for task in tasks for m in where[task]))
    for task in tasks:
        missing = [m for m in methods if m not in where[task]]
        if missing:
            runs = sorted({str(d) for d, _ in where[task].values()})
            raise ValueError(
                f"task {task!r} ({', '.join(runs)}) lacks method(s) {missing}; every task "
                "needs every method (the grid points' hyperparameters, and the config "
                f"fields that name methods, must match), got "
                f"{ {t: list(where[t]) for t in tasks} }"
            )
    for method, counts in seeds.items():
        if len(set(counts.values())) > 1:
            raise ValueError(
                f"method {method!r} has different numbers of seeds on its tasks: {counts}; "
                "rliable needs the same runs of a method on every task"
            )
    num_seeds = {method: next(iter(seeds[method].values())) for method in methods}
    config_differences = {
        method: {f: by_task for f, by_task in fields.items() if len(set(by_task.values())) > 1}
        for method, fields in differences.items()
    }
    config_differences = {m: fields for m, fields in config_differences.items() if fields}
    return PoolPlan(tasks, methods, where, num_seeds, specs, config_differences)


def parse_references(items, tasks) -> dict[str, tuple[float, float]]:
    """``["CatRoom-v0=0,10", ...]`` -> {task: (low, high)}; ValueError for an unknown
    task, a task named twice, a malformed item, a bound that is not finite or low >=
    high."""
    references = {}
    for item in items:
        task, _, values = item.rpartition("=")
        try:
            low, high = (float(v) for v in values.split(","))
        except ValueError:
            raise ValueError(f"--reference {item!r}: expected TASK=LOW,HIGH") from None
        if task not in tasks:
            raise ValueError(f"--reference {item!r}: no task {task!r}; the tasks are {tasks}")
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"--reference {item!r}: LOW and HIGH must be finite")
        if not low < high:
            raise ValueError(f"--reference {item!r}: LOW must be below HIGH")
        if task in references:
            raise ValueError(f"--reference names task {task!r} twice: give each task once")
        references[task] = (low, high)
    return references


def random_policy_returns(env, env_params, episodes: int, seed: int, max_steps: int):
    """float[episodes]: returns of a uniformly random policy on the evaluation keys of
    ``evaluate_run`` (``jax.random.split(jax.random.key(seed), episodes)``)."""
    keys = jax.random.split(jax.random.key(seed), episodes)
    returns = evaluation.random_policy_returns(keys, env, env_params, max_steps)
    return np.asarray(returns, np.float64)


def evaluate_tasks(
    run_dirs,
    out,
    episodes: int = 10,
    seed: int = 12345,
    max_steps: int = 1000,
    sampled: bool = False,
    epsilon: float = 0.05,
    normalize: str = "random,best",
    references: dict[str, tuple[float, float]] | None = None,
    reps: int = 2000,
    plan: PoolPlan | None = None,
) -> dict:
    """Evaluate every run, pool them as tasks and write the aggregate report into
    ``out``; each run's own eval.json (see ``jrl.run_analysis.evaluate_run``) is written
    only once the pool has passed its checks (a refused pool leaves each as it was).
    Returns what tasks.json holds, plus ``table`` (the markdown table). ``plan``:
    ``plan_pool(run_dirs)`` when the caller has made it already."""
    from jrl.envs.registry import make_recorded
    from jrl.run_analysis import diverged_runs, evaluation

    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    plan = plan_pool(run_dirs) if plan is None else plan
    references = dict(references or {})
    unknown = sorted(set(references) - set(plan.tasks))
    if unknown:
        raise ValueError(f"references name unknown task(s) {unknown}; the tasks are {plan.tasks}")
    missing = [task for task in plan.tasks if task not in references]
    if normalize == "none" and references and missing:
        # The others would stay raw returns beside normalised scores, in one pool.
        raise ValueError(
            f"with normalize 'none', references must name every task or none: "
            f"{missing} have none (give --reference 'TASK=LOW,HIGH' for each)"
        )
    for run_dir in plan.specs:  # before evaluating any: each run writes its eval.json
        if checkpoint.latest(Path(run_dir) / "checkpoints") is None:
            raise ValueError(
                f"{run_dir} has no checkpoint yet (no chunk has finished): train it "
                f"(jrl train --resume {shlex.quote(str(run_dir))}) or leave it out of the pool"
            )
        _refuse_diverged(
            run_dir, diverged_runs((read_summary(run_dir) or {}).get("diverged") or [])
        )
    per_seed = {}  # run directory -> float[G, S]
    checkpoints = {}  # run directory -> the checkpoint evaluated and the run's status
    writes = []  # each run's eval.json and eval/, written once the pool is checked
    for run_dir in plan.specs:
        result, write = evaluation(run_dir, episodes, seed, max_steps, sampled, epsilon)
        writes.append(write)
        _refuse_diverged(run_dir, diverged_runs(result["diverged"]))
        per_seed[run_dir] = np.asarray(result["returns"], np.float64).mean(axis=-1)
        checkpoints[str(run_dir)] = result["checkpoint"]
    raw = {
        task: {m: per_seed[plan.where[task][m][0]][plan.where[task][m][1]] for m in plan.methods}
        for task in plan.tasks
    }
    bounds = {}
    for task in plan.tasks:
        if task in references:
            low, high = references[task]
            source = "given"
        elif normalize == "none":
            low, high, source = 0.0, 1.0, "none"
        else:
            spec = plan.specs[plan.where[task][plan.methods[0]][0]]
            env, env_params = make_recorded(spec.env, dict(spec.env_overrides))
            low = float(random_policy_returns(env, env_params, episodes, seed, max_steps).mean())
            high = float(max(values.max() for values in raw[task].values()))
            source = "random policy, best observed"
            if not high > low:
                raise ValueError(
                    f"task {task!r}: no run's return ({high:g}) beats the random policy's "
                    f"({low:g}), so 'random,best' cannot normalise it; give --reference "
                    f"'{task}=LOW,HIGH' or --normalize none"
                )
        bounds[task] = {"low": low, "high": high, "source": source}
    normalised = {
        task: {
            m: (raw[task][m] - bounds[task]["low"]) / (bounds[task]["high"] - bounds[task]["low"])
            for m in plan.methods
        }
        for task in plan.tasks
    }
    scores = {m: np.stack([normalised[t][m] for t in plan.tasks], axis=1) for m in plan.methods}
    for write in writes:
        write()
    settings = note_setting_differences("eval", list(plan.specs))
    raw_returns = normalize == "none" and not references
    kind = "sampled" if sampled else "greedy"
    xlabel = f"{kind} return" if raw_returns else f"normalised {kind} score"
    out = Path(out)
    # A normalised score's target is 1 (the reference); a raw return has none.
    gamma = None if raw_returns else 1.0
    paths = stats.write_report(out, scores, reps=reps, seed=seed, gamma=gamma, xlabel=xlabel)
    result = {
        "normalize": normalize,
        "episodes": episodes,
        "max_steps": max_steps,
        "seed": seed,
        "reps": reps,
        "policy": f"sampled (epsilon {epsilon} for value-based agents)" if sampled else "greedy",
        "methods": {
            m: {"num_seeds": plan.num_seeds[m], "config_differences": plan.config_differences[m]}
            if m in plan.config_differences
            else {"num_seeds": plan.num_seeds[m]}
            for m in plan.methods
        },
        "checkpoints": checkpoints,
        "tasks": {
            task: {
                **bounds[task],
                "runs": {
                    m: {"run_dir": str(d), "grid_point": g}
                    for m, (d, g) in plan.where[task].items()
                },  # fmt: skip
                "scores": {m: raw[task][m].tolist() for m in plan.methods},
                "normalised": {m: normalised[task][m].tolist() for m in plan.methods},
            }
            for task in plan.tasks
        },
        "files": {name: str(path) for name, path in paths.items()},
        # What made each run's numbers (meta.json at its start), and what pooled them.
        "provenance": {"runs": settings, "evaluation": provenance()},
    }
    write_json(out / "tasks.json", result)
    return {**result, "table": paths["table"].read_text()}


def _refuse_diverged(run_dir, runs: list[tuple[int, int]]) -> None:
    """Pooled tasks need every method's seeds: a ValueError naming the diverged runs."""
    if runs:
        raise ValueError(
            f"{run_dir}: runs (grid point, seed) {runs} diverged (NaN or inf in what "
            "they learned): pooled tasks need every method's seeds; evaluate the run "
            "alone (jrl eval RUN_DIR), which leaves them out"
        )
