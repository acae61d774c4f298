"""The ``jrl`` command line (tyro over the agents' config dataclasses).

    jrl envs                                   what environments exist
    jrl train ppo --env CartPole-v1 --out runs/ppo --num-seeds 4 --config.total-timesteps 100000
    jrl train dqn --config-file run.yaml --hparams.lr 1e-3   (file first, flags on top)
    jrl train --resume runs/ppo                continue a stopped run, bit for bit
    jrl sweep ppo --env CartPole-v1 --grid lr=1e-3,3e-4 --grid ent_coef=0,0.01 --out runs/s
    jrl eval runs/ppo                          greedy episodes on fixed evaluation keys
    jrl eval runs/cat runs/cliff --out cmp     the same, pooled as tasks: normalised rliable table
    jrl render runs/ppo --out ppo.gif          GIF of the trained greedy policy (or --random)
    jrl plot runs/ppo runs/dqn --out curves.png

Every ``train``/``sweep`` field is documented by ``--help``; ``--config-file`` reads a
YAML or JSON file of the run's fields (as written to RUN_DIR/config.yaml) and flags
override it. Errors in the configuration are reported before anything compiles.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import json
import math
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

import numpy as np
import tyro
import yaml

from jrl.interrupts import EXIT_AT_ONCE
from jrl.run_dir import RunInUseError, read_meta, read_summary

if TYPE_CHECKING:
    from jrl import training

AgentName = Literal["ppo", "reinforce", "dqn", "tabular"]
# Updates per compiled chunk (PPO, REINFORCE: one rollout + learning; DQN: log_frequency steps;
# tabular: steps_per_iteration steps): a chunk of roughly 1e4-1e5 steps, so that the
# checkpoint and metrics between chunks cost little.
CHUNK_SIZES = {"ppo": 10, "reinforce": 10, "dqn": 5, "tabular": 1000}


@functools.cache
def _hparams_dataclass(agent: str) -> type:
    """A dataclass twin of the agent's hyperparameter NamedTuple (float fields), for
    tyro."""
    from jrl import training

    hparams = training.AGENTS[agent].hparams
    defaults = hparams()
    return dataclasses.make_dataclass(
        hparams.__name__,
        [
            (name, float, dataclasses.field(default=float(getattr(defaults, name))))
            for name in hparams._fields
        ],
        frozen=True,
    )


@functools.cache
def _run_dataclass(agent: str) -> type:
    from jrl import training

    spec = training.AGENTS[agent]
    return dataclasses.make_dataclass(
        f"{agent.upper()}Run",
        [
            (
                "env",
                str,
                dataclasses.field(
                    default="CartPole-v1" if agent != "tabular" else "CliffWalking-v0"
                ),
            ),
            ("out", Path, dataclasses.field(default=Path("runs") / agent)),
            ("config", spec.config, dataclasses.field(default_factory=spec.config)),
            (
                "hparams",
                _hparams_dataclass(agent),
                dataclasses.field(default_factory=_hparams_dataclass(agent)),
            ),
            (
                "env_overrides",
                dict[str, int | float | bool | str],  # numbers before str: 50 is 50
                dataclasses.field(default_factory=dict),
            ),
            ("num_seeds", int, dataclasses.field(default=1)),
            ("seed", int, dataclasses.field(default=0)),
            ("chunk_size", int, dataclasses.field(default=CHUNK_SIZES[agent])),
            ("progress", bool, dataclasses.field(default=True)),
            ("sinks", tuple[str, ...], dataclasses.field(default=())),
            ("checkpoint_every", float, dataclasses.field(default=training.CHECKPOINT_EVERY)),
        ],
        frozen=True,
    )


def _config_dict(config) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _load_file(path: Path) -> dict:
    from jrl.run_dir import load_yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if Path(path).suffix == ".json" else load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not valid {Path(path).suffix[1:] or 'YAML'}: {error}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of run fields, got {type(data).__name__}")
    return data


def _defaults_from_file(agent: str, path: Path | None):
    """(an instance of the agent's run dataclass with the file's values but no
    env_overrides, the file's grid points, the file's env_overrides), every field's name
    and type checked — its rules across fields are checked once the flags are on top
    (a file may be completed by them); no file: the defaults, one empty point and no
    overrides. The overrides
    stay out of the default: tyro would make a non-empty dict's keys fixed flags
    (--env-overrides.slip-prob), refusing ``--env-overrides NAME VALUE`` for others."""
    from jrl import training

    cls = _run_dataclass(agent)
    if path is None:
        return cls(), ({},), {}
    data = _load_file(path)
    if data.get("agent", agent) != agent:
        raise ValueError(f"{path} is a {data['agent']!r} run, not {agent!r}")
    fields = {"chunk_size": CHUNK_SIZES[agent]} | {k: v for k, v in data.items() if k != "agent"}
    spec = training.RunSpec.from_dict({"agent": agent, "env": cls().env, **fields})
    whole = {}  # tyro warns of a default of another type, before jrl's own error
    for name in ("num_seeds", "seed", "chunk_size"):
        value = getattr(spec, name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: {name} must be a whole number, got {value!r}")
        whole[name] = value
    if not isinstance(spec.env, str):
        raise ValueError(f"{path}: env must be an environment id (a string), got {spec.env!r}")
    spec = dataclasses.replace(spec, **whole)
    config, points = training.coerced_fields(spec)
    default = cls(
        env=spec.env,
        config=config,
        hparams=_hparams_dataclass(agent)(**points[0]._asdict()),
        num_seeds=spec.num_seeds,
        seed=spec.seed,
        chunk_size=spec.chunk_size,
    )
    return default, tuple(point._asdict() for point in points), dict(spec.env_overrides)


def _flagged_hparams(argv: list[str], run) -> dict:
    """The hyperparameters set by --hparams.NAME flags, with their parsed values."""
    names = {
        arg.removeprefix("--hparams.").split("=")[0].replace("-", "_")
        for arg in argv
        if arg.startswith("--hparams.")
    }
    return {name: getattr(run.hparams, name) for name in names if hasattr(run.hparams, name)}


def _spec(agent: str, run, points: tuple[dict, ...]) -> training.RunSpec:
    from jrl import training

    return training.RunSpec(
        agent=agent,
        env=run.env,
        env_overrides=dict(run.env_overrides),
        config=_config_dict(run.config),
        hparams=points,
        num_seeds=run.num_seeds,
        seed=run.seed,
        chunk_size=run.chunk_size,
    )


def _parse_grid(
    items: list[str], agent: str, base: tuple[dict, ...], fixed: Collection[str] = ()
) -> tuple[dict, ...]:
    """``["lr=1e-3,3e-4", "ent_coef=0,0.01"]`` -> the product grid, on top of each point
    of ``base``; ``fixed``: names set by --hparams flags, which a --grid may not vary."""
    import itertools

    from jrl import training

    names, values = [], []
    known = training.AGENTS[agent].hparams._fields
    varied = [name for name in known if len({point.get(name) for point in base}) > 1]
    for item in items:
        name, equals, listed = item.partition("=")
        name = name.replace("-", "_")  # as --hparams.q-init
        if not equals:
            raise ValueError(f"--grid {item!r}: write NAME=v1,v2,... (e.g. --grid lr=1e-3,3e-4)")
        if name in names:
            raise ValueError(f"--grid {name} is given twice; list all its values in one --grid")
        if name in fixed:
            raise ValueError(f"{[name]} set both by --hparams and by --grid: choose one")
        if name in varied:
            raise ValueError(
                f"--grid {name}: the config file's grid points differ in {varied}, and the "
                f"grid would replace their {name} values; sweep {name} in the file instead"
            )
        if name not in known:
            config_fields = {f.name for f in dataclasses.fields(training.AGENTS[agent].config)}
            why = " (a static setting: one run per value)" if name in config_fields else ""
            raise ValueError(
                f"--grid {name}: not a sweepable hyperparameter{why}; sweepable: {', '.join(known)}"
            )
        try:
            values.append([float(v) for v in listed.split(",") if v])
        except ValueError:
            raise ValueError(f"--grid {item!r}: values must be numbers") from None
        if not values[-1]:
            raise ValueError(f"--grid {item!r}: no values")
        if len(set(np.float32(values[-1]).tolist())) < len(values[-1]):
            raise ValueError(
                f"--grid {item!r}: a value is listed twice (as float32, as runs hold it)"
            )
        names.append(name)
    return tuple(
        {**point, **dict(zip(names, product, strict=True))}
        for point in base
        for product in itertools.product(*values)
    )


RESUME_USAGE = "jrl train --resume RUN_DIR [--no-progress] [--checkpoint-every SECONDS]"


def _seconds(flag: str, text: str) -> float:
    """``text`` as a number of seconds >= 0, or a ValueError naming ``flag``."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ValueError(f"{flag} takes a number of seconds >= 0 (0: every chunk), got {text!r}")
    return seconds


def _pop_option(argv: list[str], flag: str) -> tuple[list[str], list[str]]:
    """(argv without every ``flag VALUE`` / ``flag=VALUE``, the values in order)."""
    rest, values = [], []
    args = iter(argv)
    for arg in args:
        if arg == flag:
            value = next(args, None)
            if value is None:
                raise ValueError(f"{flag} needs a value")
            values.append(value)
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, values


def _join_repeated(argv: list[str], flag: str) -> tuple[list[str], list[str]]:
    """(argv with every ``flag V ...`` joined into its first, the values in order): tyro
    keeps only the last of a repeated flag that takes several values, so ``--sinks
    tensorboard --sinks wandb`` fed wandb alone. Values run to the next ``--`` option,
    as they do for tyro; argv comes back unchanged where the flag is given once."""
    rest, values, first, count = [], [], None, 0
    args = iter(argv)
    arg = next(args, None)
    while arg is not None:
        name, equals, inline = arg.partition("=")
        if name.replace("_", "-") != flag:  # tyro takes --env_overrides too
            rest.append(arg)
            arg = next(args, None)
            continue
        count += 1
        first = len(rest) if first is None else first
        values += [inline] if equals else []
        arg = next(args, None)
        while arg is not None and not arg.startswith("--") and arg != "-h":
            values.append(arg)
            arg = next(args, None)
    if count < 2:
        return argv, values
    return [*rest[:first], flag, *values, *rest[first:]], values


def parse_run(agent: str, argv: list[str], sweep: bool = False):
    """(the parsed run dataclass, its resolved RunSpec) of ``jrl train|sweep AGENT
    ARGV``: the config file first, flags on top, the --grid product last; every field
    checked, nothing compiled."""
    from jrl import training

    argv, config_files = _pop_option(argv, "--config-file")
    if len(config_files) > 1:
        raise ValueError("--config-file is given more than once")
    default, file_points, file_overrides = _defaults_from_file(
        agent, Path(config_files[0]) if config_files else None
    )
    if not sweep and any(arg == "--grid" or arg.startswith("--grid=") for arg in argv):
        raise ValueError(f"--grid makes a sweep: jrl sweep {agent} ... --grid NAME=v1,v2")
    argv, grid_items = _pop_option(argv, "--grid") if sweep else (argv, [])
    argv, _ = _join_repeated(argv, "--sinks")
    argv, overrides = _join_repeated(argv, "--env-overrides")
    names = overrides[::2]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"--env-overrides sets {twice} more than once: give each name once")
    run = tyro.cli(
        type(default),
        default=default,
        args=argv,
        prog=f"jrl {'sweep' if sweep else 'train'} {agent}",
        description=(
            "Sweep: also --grid NAME=v1,v2 (repeatable; the product is run in one compile). "
            if sweep
            else ""
        )
        + f"Train {agent} in chunks, writing a run directory (--out). "
        "--config-file FILE.yaml|json (a RUN_DIR/config.yaml, say) sets fields first; "
        "--hparams.NAME flags then apply to every grid point of the file.",
    )
    flagged_overrides = {  # tyro reads only True and False as bools
        name: value.lower() == "true"
        if isinstance(value, str) and value.lower() in ("true", "false")
        else value
        for name, value in run.env_overrides.items()
    }
    run = dataclasses.replace(run, env_overrides={**file_overrides, **flagged_overrides})
    flagged = _flagged_hparams(argv, run)
    points = tuple({**point, **flagged} for point in file_points)
    if sweep:
        points = _parse_grid(grid_items, agent, points, fixed=flagged)
    spec = training.resolve(_spec(agent, run, points))
    held = [{name: np.float32(value).item() for name, value in p.items()} for p in spec.hparams]
    repeated = [i for i, point in enumerate(held) if point in held[:i]]
    if repeated:
        raise ValueError(
            f"grid point(s) {repeated} repeat earlier points: a --hparams flag replaced a "
            "hyperparameter the config file's points differ in, or a point is listed twice "
            "(as float32, as runs hold it)"
        )
    return run, spec


def _train(agent: str, argv: list[str], sweep: bool) -> int:
    from jrl import training

    run, spec = parse_run(agent, argv, sweep)
    run_id = secrets.token_hex(8) if "wandb" in run.sinks else None
    try:
        summary = training.train(
            spec,
            run.out,
            progress=run.progress,
            sinks=_sinks(run.sinks, run.out, spec, run_id),
            meta={"sinks": list(run.sinks), "wandb_id": run_id},
            checkpoint_every=run.checkpoint_every,
        )
    except training.RunInterrupted as stopped:  # checkpointed: a clean exit
        return _interrupted(stopped, run.out)
    _print_summary(summary, run.out)
    return 0


def _sinks(names, run_dir, spec, run_id=None, resumed=False):
    """The named sinks, checked now (unknown or not installed: an error before anything
    starts) and made by ``training.train`` once the run directory is checked and held."""
    if not names:
        return []
    from jrl.sinks import check_sinks, make_sinks

    check_sinks(list(names))
    return lambda: make_sinks(list(names), Path(run_dir), spec.to_dict(), run_id, resumed)


def _interrupted(stopped, run_dir: Path) -> int:
    """The summary of a run a signal stopped (checkpointed), where its reader is still
    there (a Ctrl-C also ends `| tee`), and what :func:`main` makes of it."""
    with contextlib.suppress(BrokenPipeError):
        _print_summary(stopped.summary, run_dir)
    return INTERRUPTED if stopped.signal == signal.SIGINT else 0


def _print_summary(summary: dict, run_dir: Path) -> None:
    done, total = summary["updates_done"], summary["total_updates"]
    if summary["status"] == "complete" and done < total:  # runs that end by themselves
        ran = summary.get("updates_run", done)  # a summary.json of before it was kept
        print(f"complete: every run ended within {ran} updates (cap {total}) in {run_dir}")
    else:
        print(f"{summary['status']}: {done}/{total} updates in {run_dir}")
    for i, point in enumerate(summary["grid"]):
        mean = point["mean_final_episode_return"]
        shown = "n/a" if mean is None else f"{mean:.2f}"
        evaluated = point.get("mean_final_eval_return")
        greedy = "" if evaluated is None else f"; last evaluation (greedy) {evaluated:.2f}"
        lost = point.get("diverged_seeds") or []
        diverged = "" if not lost else f" (seeds {lost} diverged: left out)"
        finals = point.get("final_episode_return", [])
        waiting = [s for s, v in enumerate(finals) if v is None and s not in lost]
        if waiting and mean is not None:
            diverged += f" (seeds {waiting} have ended no episode: left out)"
        print(
            f"  grid point {i} {point['hparams'] or '(defaults)'}: final episode return "
            f"(mean over seeds) {shown}{greedy}{diverged}"
        )


def _resume(
    run_dir: Path,
    progress: bool,
    named_agents: list[str] = (),
    checkpoint_every: float | None = None,
) -> int:
    """Continue RUN_DIR from its newest checkpoint, feeding the sinks it was started
    with (an agent named on the command line must be the run's)."""
    from jrl import training

    spec = training.load_spec(run_dir)
    if any(agent != spec.agent for agent in named_agents):
        raise ValueError(f"{run_dir} is a {spec.agent!r} run, not {named_agents[0]!r}")
    meta = read_meta(run_dir)
    sinks = _sinks(meta.get("sinks", []), run_dir, spec, meta.get("wandb_id"), resumed=True)
    try:
        every = training.CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
        summary = training.train(
            spec, run_dir, resume=True, progress=progress, sinks=sinks, checkpoint_every=every
        )
    except training.RunInterrupted as stopped:  # checkpointed: a clean exit
        return _interrupted(stopped, run_dir)
    _print_summary(summary, run_dir)
    return 0


def envs() -> None:
    """List the environments ``jrl.envs.make`` knows (ours, then gymnax's)."""
    from jrl.envs.registry import REGISTRY, registered_envs

    for name in registered_envs():
        print(f"{name:28s} {'jrl' if name in REGISTRY else 'gymnax'}")


def _warn_if_incomplete(run_dir, state: dict) -> None:
    """Say on stderr when the checkpoint evaluated is not a finished run's, and what the
    run is now: a process may hold it (running, or resumed since the checkpoint was
    taken), or a checkpoint of a run under way whose lock nobody holds is a killed or
    crashed run's (or one that went on to end while it was evaluated). Where the file
    system cannot lock, the checkpoint's status is all there is to say."""
    from jrl.training import in_use

    if state["run_status"] == "complete":
        return
    status = state["run_status"] or "without a summary"
    quoted = shlex.quote(str(run_dir))
    held = in_use(run_dir)
    if held:
        if status != "running":
            status = f"running again (its checkpoint was taken when it was {status})"
    elif status == "running" and held is False:
        now = read_summary(run_dir)
        if now and now["status"] != "running" and now["updates_done"] > state["updates_done"]:
            status = (
                f"{now['status']} now, after {now['updates_done']} updates (it went on while "
                f"it was evaluated; jrl eval {quoted} again evaluates its newest checkpoint)"
            )
        else:
            status = f"not running (killed or crashed; jrl train --resume {quoted} goes on)"
    print(
        f"jrl eval: {run_dir} is {status}: "
        f"evaluated its checkpoint after {state['updates_done']} of "
        f"{state['total_updates']} updates",
        file=sys.stderr,
    )


EVAL_DEFAULTS = {"episodes": 10, "seed": 12345, "max_steps": 1000}


def _own_or(name: str) -> str:
    return f"(default: a run's own evaluation's, else {EVAL_DEFAULTS[name]})"


def evaluate(
    run_dirs: Annotated[list[Path], tyro.conf.Positional],
    episodes: Annotated[
        int | None, tyro.conf.arg(metavar="INT", help_behavior_hint=_own_or("episodes"))
    ] = None,
    seed: Annotated[
        int | None, tyro.conf.arg(metavar="INT", help_behavior_hint=_own_or("seed"))
    ] = None,
    max_steps: Annotated[
        int | None, tyro.conf.arg(metavar="INT", help_behavior_hint=_own_or("max_steps"))
    ] = None,
    sampled: bool = False,
    epsilon: float | None = None,
    out: Path | None = None,
    normalize: Literal["random,best", "none"] = "random,best",
    reference: tuple[str, ...] = (),
    layout: int | None = None,
) -> None:
    """Episodes of every trained run in RUN_DIR on fixed evaluation keys (the same keys
    for every seed): greedy, or with --sampled as the policy samples (PPO and REINFORCE
    from its distribution; DQN and tabular epsilon-greedy with --epsilon, 0.05 by
    default). Writes RUN_DIR/eval.json with per-run returns and the IQM with a bootstrap confidence
    interval per grid point (none from fewer than 5 seeds), and RUN_DIR/eval/ with the
    rliable table (IQM, mean, median; raw returns have no target, so no optimality gap),
    its PNG and performance profiles.

    Several run directories (and --out DIR) pool them as tasks: each environment is a
    task, each agent + grid point a method; every task must hold the same methods with
    the same seeds (checked first). Returns are normalised per task: --normalize
    random,best maps a uniformly random policy's mean return on the same keys to 0 and
    the best seed's score on the task to 1 (none: raw returns); --reference
    'TASK=LOW,HIGH' sets a task's two ends instead (one per task: repeat the flag or list
    them after one). DIR gets the rliable table over
    runs x tasks (aggregates.md, .json, .png), performance_profiles.png and
    tasks.json.

    A grid task that switches layouts during training (CatRoomDynamic-v0,
    BlockingMaze-v0, ShortcutMaze-v0) begins every episode in layout 0; --layout N
    evaluates in layout N instead (one run directory).

    --episodes, --seed and --max-steps default to 10, 12345 and 1000; for one run
    directory (without --out or --layout) that evaluated as it trained (eval_every > 0),
    greedy episodes default to its own eval_episodes, eval_seed and episode cut, so that
    its final eval_return is what jrl eval gives."""
    if not run_dirs:
        raise ValueError("jrl eval needs at least one run directory")
    for flag, value in (("--episodes", episodes), ("--max-steps", max_steps)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    from jrl.seeds import check_seed

    if seed is not None:
        check_seed("--seed", seed)
    if epsilon is not None and not sampled:
        raise ValueError("--epsilon applies to --sampled evaluations (greedy ones take none)")
    if epsilon is not None and not 0 <= epsilon <= 1:
        raise ValueError(f"--epsilon must be in [0, 1], got {epsilon}")
    if epsilon is not None:
        from jrl import training

        agents = {training.load_spec(run_dir).agent for run_dir in run_dirs}
        if agents <= training.POLICY_AGENTS:
            raise ValueError(
                "--epsilon applies to value-based agents (DQN, tabular); PPO's and "
                "REINFORCE's sampled episodes draw from their own action distribution"
            )
    epsilon = 0.05 if epsilon is None else epsilon
    from jrl import run_analysis

    given = {"episodes": episodes, "seed": seed, "max_steps": max_steps}
    pooled = len(run_dirs) > 1 or out is not None
    if reference and not pooled:
        raise ValueError("--reference applies to runs pooled as tasks (with --out DIR)")
    # A run's own evaluation is greedy, in layout 0: a sampled one, or one in another
    # layout, keeps the plain defaults.
    alone = not pooled and not sampled and layout is None
    own = run_analysis.own_evaluation(run_dirs[0]) if alone else {}
    settings = {
        name: value if value is not None else own.get(name, EVAL_DEFAULTS[name])
        for name, value in given.items()
    }
    taken = [name for name in own if given[name] is None and own[name] != EVAL_DEFAULTS[name]]
    if taken:
        print(
            "jrl eval: "
            + ", ".join(f"--{name.replace('_', '-')} {own[name]}" for name in taken)
            + " (defaults taken from the run's own evaluation)",
            file=sys.stderr,
        )
    episodes, seed, max_steps = settings["episodes"], settings["seed"], settings["max_steps"]

    if pooled:
        from jrl import task_aggregates

        if layout is not None:
            raise ValueError("--layout applies to one run directory, not runs pooled as tasks")

        if out is None:
            raise ValueError(f"pooling {len(run_dirs)} runs as tasks needs --out DIR")
        target = Path(out).resolve()
        for run_dir in run_dirs:  # each run keeps its own report in RUN/eval
            if Path(run_dir).resolve() in (target, *target.parents):
                raise ValueError(
                    f"--out {out} is inside the run directory {run_dir}; give a directory "
                    "outside the runs"
                )
        plan = task_aggregates.plan_pool(run_dirs)  # refuse mismatches before evaluating
        references = task_aggregates.parse_references(reference, plan.tasks)
        from jrl.reporting import make_out_dir

        made = [d for d in (Path(out), *Path(out).parents) if not d.exists()]
        try:  # before any run is evaluated
            make_out_dir(out)
        except OSError as error:
            raise ValueError(f"--out {out}: {error}") from None
        for method, fields in plan.config_differences.items():
            shown = "; ".join(
                f"{field}: " + ", ".join(f"{v} on {task}" for task, v in by_task.items())
                for field, by_task in fields.items()
            )
            print(
                f"jrl eval: method {method!r} pools runs whose configs differ between tasks "
                f"({shown}); run each setting on every task to compare them as methods",
                file=sys.stderr,
            )
        try:
            result = task_aggregates.evaluate_tasks(
                run_dirs,
                out,
                episodes,
                seed,
                max_steps,
                sampled,
                epsilon,
                normalize,
                references,
                plan=plan,
            )
        except BaseException:
            for directory in made:  # a refused pool leaves no directory it made
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()
            raise
        for run_dir, state in result["checkpoints"].items():
            _warn_if_incomplete(run_dir, state)
        for task, entry in result["tasks"].items():
            print(
                f"task {task}: low {entry['low']:.2f}, high {entry['high']:.2f} ({entry['source']})"
            )
        print(result["table"], end="")
        print(f"wrote {out}/aggregates.md, aggregates.png, performance_profiles.png, tasks.json")
        return
    result = run_analysis.evaluate_run(
        run_dirs[0], episodes, seed, max_steps, sampled, epsilon, layout
    )
    if layout is None and result["num_layouts"] > 1:
        print(
            f"jrl eval: this task switches between {result['num_layouts']} layouts and its "
            "episodes begin in layout 0: evaluated there (--layout N for another)",
            file=sys.stderr,
        )
    _warn_if_incomplete(run_dirs[0], result["checkpoint"])
    if result["diverged"]:
        runs = run_analysis.diverged_runs(result["diverged"])
        print(
            f"jrl eval: runs (grid point, seed) {runs} diverged (NaN or inf in what they "
            "learned): left out",
            file=sys.stderr,
        )
    from jrl.reporting import MIN_SEEDS_FOR_INTERVAL

    for point in result["grid"]:
        if point["mean"] is None:
            print(f"{point['label']}: every seed diverged")
            continue
        print(
            f"{point['label']}: mean return {point['mean']:.2f}, "
            f"IQM {point['iqm']:.2f} "
            + (
                f"[{point['iqm_ci'][0]:.2f}, {point['iqm_ci'][1]:.2f}]"
                if math.isfinite(point["iqm_ci"][0])
                else f"({_seed_count(point['num_seeds'])}: no interval; one needs "
                f"{MIN_SEEDS_FOR_INTERVAL} or more)"
            )
        )


def _seed_count(count: int) -> str:
    return f"{count} seed{'s' if count != 1 else ''}"


def _check_out_file(out: Path, suffix: str | None = None) -> None:
    """ValueError for an --out that is a directory (it failed once the work was done,
    naming a hidden temporary file) or, given ``suffix``, has another suffix."""
    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a directory; give a file in it (--out {out}/NAME)")
    if suffix is not None and Path(out).suffix.lower() != suffix:
        raise ValueError(f"--out {out}: the file written is a {suffix}; name it so")


def render(
    run_dir: Annotated[Path | None, tyro.conf.Positional] = None,
    out: Path = Path("episode.gif"),
    env: str | None = None,
    random: bool = False,
    seed: int = 0,
    max_steps: int = 200,
    fps: float = 6.0,
) -> None:
    """A GIF of one episode: the greedy policy of RUN_DIR's first run, or (--random) a
    uniformly random policy on RUN_DIR's environment (no run directory: on --env,
    CatRoom-v0 by default).
    Renders jrl's grid worlds, CartPole-v1, Acrobot-v1, Pendulum-v1, MountainCar-v0 (and
    its continuous twin), and any environment with (H, W, C) observations (the MinAtar
    games), channel by colour."""
    from jrl import run_analysis
    from jrl.seeds import check_seed

    check_seed("--seed", seed)
    if not 0.002 <= fps <= 50:  # (checked again where the GIF is written, after the episode)
        raise ValueError(
            f"--fps must be in [0.002, 50], got {fps}: a GIF's delays are whole hundredths "
            "of a second, at most 65535 of them, and viewers play those under 20 ms at "
            "about 10 frames per second"
        )
    _check_out_file(out, ".gif")
    if run_dir is not None and env is not None:
        raise ValueError(f"--env applies without a run directory; {run_dir} has its own")
    env = "CatRoom-v0" if env is None else env
    path = run_analysis.render_run(run_dir, out, env, random, seed, max_steps, fps)
    print(f"wrote {path}")


def plot(
    run_dirs: Annotated[list[Path], tyro.conf.Positional],
    out: Path = Path("curves.png"),
    metric: str = "episode_return",
) -> None:
    """Learning curves (mean and IQM with bootstrap bands over seeds) of one or more run
    directories, per grid point, against environment steps."""
    if not run_dirs:
        raise ValueError("jrl plot needs at least one run directory")
    _check_out_file(out)
    from jrl import run_analysis

    run_analysis.plot_runs(run_dirs, out, metric)
    print(f"wrote {out}")


COMMANDS = ("envs", "train", "sweep", "eval", "render", "plot")
COMPILING_COMMANDS = ("train", "sweep", "eval", "render")


# jrl.training.AGENTS' names, known without importing it (and JAX with it) for a usage
# line or a misspelt agent.
AGENT_NAMES = tuple(sorted(get_args(AgentName)))


INTERRUPTED = -signal.SIGINT
"""What a command stopped by Ctrl-C returns to :func:`main` (after writing everything)."""


def main(argv: list[str] | None = None) -> int:
    """The ``jrl`` command line; returns its exit status (130 after a Ctrl-C). Run as
    the program (``argv`` None), a command a Ctrl-C stopped ends by SIGINT once its
    files are written, as a shell expects of a command it interrupted: a loop of jrl
    commands, or ``jrl train ... && jrl eval ...``, stops there (after an exit status,
    0 or 130 alike, bash goes on with the loop). As the program, the commands that
    compile keep what they compile in a persistent cache where the user chose none
    (:func:`jrl.host.use_default_compilation_cache`)."""
    if argv is None and sys.argv[1:2] and sys.argv[1] in COMPILING_COMMANDS:
        from jrl.host import use_default_compilation_cache

        use_default_compilation_cache()
    status = _main(argv)
    if status != INTERRUPTED:
        return status
    if argv is None:
        atexit._run_exitfuncs()  # as Python's own exit by SIGINT does (W&B's teardown)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # a reader gone: nothing more to say
                stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return EXIT_AT_ONCE


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: jrl {" + ",".join(COMMANDS) + "} ... (jrl COMMAND --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(usage)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in ("train", "sweep"):
            if command == "train" and any(a.startswith("--resume") for a in rest):
                rest, run_dirs = _pop_option(rest, "--resume")
                rest, every = _pop_option(rest, "--checkpoint-every")
                unexpected = [a for a in rest if a != "--no-progress" and a not in AGENT_NAMES]
                if len(run_dirs) != 1 or len(every) > 1 or unexpected:
                    raise ValueError(
                        f"usage: {RESUME_USAGE} (the run's own config.yaml decides "
                        f"everything else; got {unexpected or run_dirs + every})"
                    )
                named = [a for a in rest if a in AGENT_NAMES]
                seconds = _seconds("--checkpoint-every", every[0]) if every else None
                return _resume(Path(run_dirs[0]), "--no-progress" not in rest, named, seconds)
            if rest[:1] in (["-h"], ["--help"]):
                agents = "|".join(AGENT_NAMES)
                print(
                    f"usage: jrl {command} {{{agents}}} [OPTIONS]  (jrl {command} AGENT --help "
                    "lists every option: the agent's config and hyperparameter fields, --env, "
                    "--out, --num-seeds, ...)"
                    + (
                        f"\n       {RESUME_USAGE}  (goes on with a "
                        "stopped run; its config.yaml decides everything else)"
                        if command == "train"
                        else "\n       (--grid NAME=V1,V2 ... sweeps hyperparameters)"
                    )
                )
                return 0
            if not rest or rest[0] not in AGENT_NAMES:
                print(
                    f"{usage}\njrl {command} AGENT: AGENT is one of {list(AGENT_NAMES)}"
                    if not rest or rest[0].startswith("-")
                    else f"jrl {command}: unknown agent {rest[0]!r}; choose one of "
                    f"{list(AGENT_NAMES)}",
                    file=sys.stderr,
                )
                return 2
            return _train(rest[0], rest[1:], sweep=command == "sweep")
        functions = {"envs": envs, "eval": evaluate, "render": render, "plot": plot}
        if command not in functions:
            print(f"jrl: unknown command {command!r}\n{usage}", file=sys.stderr)
            return 2
        if command == "eval":
            rest, _ = _join_repeated(rest, "--reference")
        tyro.cli(functions[command], args=rest, prog=f"jrl {command}")
        return 0
    except (
        ValueError,
        OSError,  # FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError...
        ImportError,
        RunInUseError,
    ) as error:
        print(f"jrl {command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the chunk loop hears signals: the files are whole
        print(f"jrl {command}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
