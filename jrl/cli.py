"""The ``jrl`` command line (tyro over the agents' config dataclasses).

    jrl envs                                   what environments exist
    jrl train ppo --env CartPole-v1 --out runs/ppo --num-seeds 4 --config.total-timesteps 100000
    jrl train dqn --config-file run.yaml --hparams.lr 1e-3   (file first, flags on top)
    jrl train --resume runs/ppo                continue a stopped run, bit for bit
    jrl sweep ppo --env CartPole-v1 --grid lr=1e-3,3e-4 --grid ent_coef=0,0.01 --out runs/s
    jrl eval runs/ppo                          greedy episodes on fixed evaluation keys
    jrl render runs/ppo --out ppo.gif          GIF of the trained greedy policy (or --random)
    jrl plot runs/ppo runs/dqn --out curves.png

Every ``train``/``sweep`` field is documented by ``--help``; ``--config-file`` reads a
YAML or JSON file of the run's fields (as written to RUN_DIR/config.yaml) and flags
override it. Errors in the configuration are reported before anything compiles.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import tyro
import yaml

from jrl import training

AgentName = Literal["ppo", "dqn", "tabular"]
# Updates per compiled chunk (PPO: one rollout + learning; DQN: log_frequency steps;
# tabular: steps_per_iteration steps): a chunk of roughly 1e4-1e5 steps, so that the
# checkpoint and metrics between chunks cost little.
CHUNK_SIZES = {"ppo": 10, "dqn": 5, "tabular": 1000}


@functools.cache
def _hparams_dataclass(agent: str) -> type:
    """A dataclass twin of the agent's hyperparameter NamedTuple (float fields), for
    tyro."""
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
                dict[str, str | int | float | bool],
                dataclasses.field(default_factory=dict),
            ),
            ("num_seeds", int, dataclasses.field(default=1)),
            ("seed", int, dataclasses.field(default=0)),
            ("chunk_size", int, dataclasses.field(default=CHUNK_SIZES[agent])),
            ("progress", bool, dataclasses.field(default=True)),
            ("sinks", tuple[str, ...], dataclasses.field(default=())),
        ],
        frozen=True,
    )


def _changed_hparams(agent: str, hparams) -> dict:
    defaults = training.AGENTS[agent].hparams()
    return {
        name: value
        for name, value in dataclasses.asdict(hparams).items()
        if value != float(getattr(defaults, name))
    }


def _config_dict(config) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _load_file(path: Path) -> dict:
    text = Path(path).read_text()
    data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of run fields, got {type(data).__name__}")
    return data


def _defaults_from_file(agent: str, path: Path | None):
    """An instance of the agent's run dataclass with the file's values (validated)."""
    cls = _run_dataclass(agent)
    if path is None:
        return cls()
    data = _load_file(path)
    if data.get("agent", agent) != agent:
        raise ValueError(f"{path} is a {data['agent']!r} run, not {agent!r}")
    fields = {k: v for k, v in data.items() if k != "agent"}
    spec = training.RunSpec.from_dict({"agent": agent, "env": cls().env, **fields})
    built = training.build(spec)  # validates every field, names what is wrong
    points = spec.hparams
    if len(points) != 1:
        raise ValueError(f"{path} holds a grid of {len(points)} points: use `jrl sweep`")
    hparams_cls = _hparams_dataclass(agent)
    return cls(
        env=spec.env,
        config=built.config,
        hparams=hparams_cls(**{**dataclasses.asdict(hparams_cls()), **points[0]}),
        env_overrides=dict(spec.env_overrides),
        num_seeds=spec.num_seeds,
        seed=spec.seed,
        chunk_size=spec.chunk_size,
    )


def _spec(agent: str, run, grid: tuple[dict, ...] | None = None) -> training.RunSpec:
    return training.RunSpec(
        agent=agent,
        env=run.env,
        env_overrides=dict(run.env_overrides),
        config=_config_dict(run.config),
        hparams=grid if grid is not None else (_changed_hparams(agent, run.hparams),),
        num_seeds=run.num_seeds,
        seed=run.seed,
        chunk_size=run.chunk_size,
    )


def _parse_grid(items: list[str], agent: str, base: dict) -> tuple[dict, ...]:
    """``["lr=1e-3,3e-4", "ent_coef=0,0.01"]`` -> the product grid, on top of ``base``."""
    import itertools

    names, values = [], []
    known = training.AGENTS[agent].hparams._fields
    for item in items:
        name, _, listed = item.partition("=")
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
        names.append(name)
    return tuple(
        {**base, **dict(zip(names, point, strict=True))} for point in itertools.product(*values)
    )


def _train(agent: str, argv: list[str], sweep: bool) -> int:
    config_file = None
    if "--config-file" in argv:
        index = argv.index("--config-file")
        config_file = Path(argv[index + 1])
        argv = argv[:index] + argv[index + 2 :]
    default = _defaults_from_file(agent, config_file)
    grid_items: list[str] = []
    if sweep:
        while "--grid" in argv:
            index = argv.index("--grid")
            grid_items.append(argv[index + 1])
            argv = argv[:index] + argv[index + 2 :]
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
        "--config-file FILE.yaml|json sets fields first.",
    )
    grid = _parse_grid(grid_items, agent, _changed_hparams(agent, run.hparams)) if sweep else None
    spec = _spec(agent, run, grid)
    sinks = _make_sinks(run.sinks, run.out, spec)
    summary = training.train(spec, run.out, progress=run.progress, sinks=sinks)
    _close(sinks)
    _print_summary(summary, run.out)
    return 0


def _make_sinks(names, run_dir, spec):
    if not names:
        return []
    from jrl.sinks import make_sinks

    return make_sinks(list(names), Path(run_dir), spec.to_dict())


def _close(sinks) -> None:
    for sink in sinks:
        sink.close()


def _print_summary(summary: dict, run_dir: Path) -> None:
    print(
        f"{summary['status']}: {summary['updates_done']}/{summary['total_updates']} "
        f"updates in {run_dir}"
    )
    for i, point in enumerate(summary["grid"]):
        mean = point["mean_final_episode_return"]
        shown = "n/a" if mean is None else f"{mean:.2f}"
        print(
            f"  grid point {i} {point['hparams'] or '(defaults)'}: final episode return "
            f"(mean over seeds) {shown}"
        )


def _resume(run_dir: Path, progress: bool) -> int:
    spec = training.load_spec(run_dir)
    summary = training.train(spec, run_dir, resume=True, progress=progress)
    _print_summary(summary, run_dir)
    return 0


def envs() -> None:
    """List the environments ``jrl.envs.make`` knows (ours, then gymnax's)."""
    from jrl.envs.registry import REGISTRY, registered_envs

    for name in registered_envs():
        print(f"{name:28s} {'jrl' if name in REGISTRY else 'gymnax'}")


def evaluate(
    run_dir: Annotated[Path, tyro.conf.Positional],
    episodes: int = 10,
    seed: int = 12345,
    max_steps: int = 1000,
    sampled: bool = False,
    epsilon: float = 0.05,
) -> None:
    """Episodes of every trained run in RUN_DIR on fixed evaluation keys (the same keys
    for every seed): greedy, or with --sampled as the policy samples (PPO from its
    distribution; DQN and tabular epsilon-greedy with --epsilon). Writes
    RUN_DIR/eval.json with per-run returns and the IQM with a bootstrap confidence
    interval per grid point, and RUN_DIR/eval/ with the rliable table (IQM, mean,
    median, optimality gap), its PNG and performance profiles."""
    from jrl import run_analysis

    result = run_analysis.evaluate_run(run_dir, episodes, seed, max_steps, sampled, epsilon)
    for point in result["grid"]:
        print(
            f"grid point {point['grid_point']}: mean return {point['mean']:.2f}, "
            f"IQM {point['iqm']:.2f} [{point['iqm_ci'][0]:.2f}, {point['iqm_ci'][1]:.2f}]"
        )


def render(
    run_dir: Annotated[Path | None, tyro.conf.Positional] = None,
    out: Path = Path("episode.gif"),
    env: str = "CatRoom-v0",
    random: bool = False,
    seed: int = 0,
    max_steps: int = 200,
) -> None:
    """A GIF of one episode: the greedy policy of RUN_DIR's first run, or (--random, no
    run directory) a uniformly random policy on --env."""
    from jrl import run_analysis

    path = run_analysis.render_run(run_dir, out, env, random, seed, max_steps)
    print(f"wrote {path}")


def plot(
    run_dirs: Annotated[list[Path], tyro.conf.Positional],
    out: Path = Path("curves.png"),
    metric: str = "episode_return",
) -> None:
    """Learning curves (mean and IQM with bootstrap bands over seeds) of one or more run
    directories, per grid point, against environment steps."""
    from jrl import run_analysis

    run_analysis.plot_runs(run_dirs, out, metric)
    print(f"wrote {out}")


COMMANDS = ("envs", "train", "sweep", "eval", "render", "plot")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: jrl {" + ",".join(COMMANDS) + "} ... (jrl COMMAND --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(usage)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in ("train", "sweep"):
            if command == "train" and rest[:1] == ["--resume"]:
                if len(rest) < 2:
                    raise ValueError("--resume needs a run directory")
                return _resume(Path(rest[1]), "--no-progress" not in rest)
            if not rest or rest[0] not in training.AGENTS:
                print(
                    f"{usage}\njrl {command} AGENT: AGENT is one of {sorted(training.AGENTS)}"
                    if not rest or rest[0].startswith("-")
                    else f"jrl {command}: unknown agent {rest[0]!r}; choose one of "
                    f"{sorted(training.AGENTS)}",
                    file=sys.stderr,
                )
                return 0 if rest[:1] in (["-h"], ["--help"]) else 2
            return _train(rest[0], rest[1:], sweep=command == "sweep")
        functions = {"envs": envs, "eval": evaluate, "render": render, "plot": plot}
        if command not in functions:
            print(f"jrl: unknown command {command!r}\n{usage}", file=sys.stderr)
            return 2
        tyro.cli(functions[command], args=rest, prog=f"jrl {command}")
        return 0
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"jrl {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
