"""Reading run directories back: greedy evaluation on fixed keys, GIFs, learning curves
(what ``jrl eval``, ``jrl render`` and ``jrl plot`` do)."""

from __future__ import annotations

import array
import errno
import math
import shutil
import sys
from pathlib import Path

import jax
import numpy as np

from jrl import stats, training
from jrl.agents import exploration
from jrl.agents.evaluation import eval_max_steps, run_episode
from jrl.envs import make
from jrl.envs.registry import make_recorded
from jrl.recent import Recent
from jrl.reporting import fill_gaps, plot_learning_curves
from jrl.run_dir import iter_rows, note_setting_differences, read_summary, write_json


def restore_run(run_dir: str | Path):
    """(built, state [G, S, ...]) of a run directory's newest checkpoint."""
    built, state, _ = training.restore_state(run_dir)
    return built, state


def greedy_act_fn(built: training.Built, run_state):
    """``act(key, obs) -> action`` of one run's greedy policy: PPO and REINFORCE the mode
    of its action distribution, DQN argmax Q (ties to the lowest action), tabular argmax
    Q with random tie-breaking (each agent's ``greedy_episode`` plays the same)."""
    if built.spec.agent in training.POLICY_AGENTS:
        distribution = built.agent.distribution

        def act(key, obs):
            dist, _ = built.agent.network.apply(run_state.params, obs)
            return distribution.to_env(distribution.mode(dist))

        return act
    if built.spec.agent == "dqn":
        return lambda key, obs: jax.numpy.argmax(built.agent.network.apply(run_state.params, obs))
    return lambda key, obs: exploration.epsilon_greedy(key, run_state.q_values[obs], 0.0)


def sampled_act_fn(built: training.Built, run_state, epsilon: float):
    """``act(key, obs) -> action`` of one run's policy as it acts when sampled: PPO and
    REINFORCE draw from its action distribution; DQN and the tabular agents act
    epsilon-greedily."""
    if built.spec.agent in training.POLICY_AGENTS:
        distribution = built.agent.distribution

        def act(key, obs):
            dist, _ = built.agent.network.apply(run_state.params, obs)
            return distribution.to_env(distribution.sample(key, dist))

        return act

    def act(key, obs):
        if built.spec.agent == "dqn":
            q = built.agent.network.apply(run_state.params, obs)
        else:
            q = run_state.q_values[obs]
        return exploration.epsilon_greedy(key, q, epsilon)

    return act


def episode_fn(
    built: training.Built, max_steps: int, sampled: bool, epsilon: float, env_params=None
):
    """(key, run state) -> (return, length, terminated) of one episode of the run's
    greedy policy (or, ``sampled``, of :func:`sampled_act_fn`'s), in ``env_params``
    (default: the run's)."""
    env_params = built.env_params if env_params is None else env_params

    def episode(key, run_state):
        if sampled:
            act = sampled_act_fn(built, run_state, epsilon)
        else:
            act = greedy_act_fn(built, run_state)
        return run_episode(key, built.env, env_params, act, max_steps)

    return episode


# Compiled evaluations, by run and setting: a notebook evaluating a run's checkpoints
# as it trains compiles once (a jit made per call compiled every time).
_EPISODES: Recent = Recent(keep=4)


def _episodes_of_runs(built, max_steps, sampled, epsilon, layout, env_params):
    """jit((state [G, S, ...], keys [E]) -> (return, length, terminated) [G, S, E]) of
    :func:`episode_fn`, kept per run fingerprint and setting."""
    run = training.build_key(built.spec)
    signature = None if run is None else (run, max_steps, sampled, float(epsilon), layout)

    def compile_episodes():
        episode = episode_fn(built, max_steps, sampled, epsilon, env_params)
        per_run = lambda run_state, keys: jax.vmap(lambda k: episode(k, run_state))(keys)  # noqa: E731
        return jax.jit(jax.vmap(jax.vmap(per_run, (0, None)), (0, None)))

    return _EPISODES.get(signature, compile_episodes)


def params_in_layout(built: training.Built, layout: int | None):
    """The run's environment parameters, fixed on ``layout`` (None: as they are, where
    every episode begins in layout 0); a ValueError for a task without that layout."""
    if layout is None:
        return built.env_params
    count = getattr(built.env, "num_layouts", 1)  # GridWorld's; 1 for other envs
    if count == 1:
        raise ValueError(
            f"--layout applies to grid tasks that switch layouts; {built.spec.env} has one"
        )
    if not 0 <= layout < count:
        raise ValueError(f"--layout must be in [0, {count}) for {built.spec.env}, got {layout}")
    return built.env_params.in_layout(layout)


def _time_limit(env_params) -> int | None:
    """The environment's ``max_steps_in_episode``, or None where its params have none."""
    try:
        return int(getattr(env_params, "max_steps_in_episode", None))
    except (TypeError, ValueError):
        return None


def own_evaluation(run_dir: str | Path) -> dict:
    """{"episodes", "seed", "max_steps"} of the evaluation the run in ``run_dir`` made as it
    trained (its eval_episodes, eval_seed, and eval_max_steps or the environment's time
    limit); {} for a run that made none (eval_every 0, or an agent without one)."""
    spec = training.load_spec(run_dir)
    _, config, _ = training._checked(spec, new_run=False)
    if not getattr(config, "eval_every", 0):
        return {}
    env_params = make_recorded(spec.env, dict(spec.env_overrides))[1]
    return {
        "episodes": int(config.eval_episodes),
        "seed": int(config.eval_seed),
        "max_steps": eval_max_steps(config, env_params),
    }


def _note_shorter_cut(built: training.Built, max_steps: int) -> None:
    """Say on stderr when ``max_steps`` cuts episodes before the run's own evaluation
    does (``eval_max_steps``, or the environment's time limit, whichever comes first)
    in a run that evaluates (``eval_every`` > 0): their returns differ from its
    ``eval_return``."""
    limit = _time_limit(built.env_params)
    if not getattr(built.config, "eval_every", 0) or limit is None:
        return
    own = min(eval_max_steps(built.config, built.env_params), limit)
    if max_steps < own:
        print(
            f"jrl eval: episodes are cut at --max-steps {max_steps}, before the run's own "
            f"evaluation cut ({own} steps), so returns may differ from its eval_return; "
            f"--max-steps {own} plays as it does",
            file=sys.stderr,
        )


def _episodes_cut(run_dir, built, max_steps: int, lengths, terminated, finite) -> int:
    """How many episodes of the finite runs ``max_steps`` cut before they ended (neither
    terminated nor at the environment's time limit), said on stderr: without the run's
    own evaluation to compare with, such a return (Freeway-MinAtar's 2500-step
    episodes, cut at 1000) read as a whole episode's."""
    limit = _time_limit(built.env_params)
    if limit is not None and limit <= max_steps:
        return 0  # the environment's own limit ends them first
    unfinished = (lengths >= max_steps) & ~terminated & finite[..., None]
    count = int(unfinished.sum())
    if count:
        print(
            f"jrl eval: {run_dir}: {count} of {int(finite.sum()) * lengths.shape[-1]} "
            f"episodes were still running at --max-steps {max_steps}"
            + ("" if limit is None else f" (the environment's limit: {limit})")
            + ": their returns are of cut episodes; a larger --max-steps plays them on",
            file=sys.stderr,
        )
    return count


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 10,
    seed: int = 12345,
    max_steps: int = 1000,
    sampled: bool = False,
    epsilon: float = 0.05,
    layout: int | None = None,
):
    """:func:`evaluation` of the run, written to RUN_DIR/eval.json and RUN_DIR/eval/;
    returns what eval.json holds."""
    result, write = evaluation(run_dir, episodes, seed, max_steps, sampled, epsilon, layout)
    write()
    return result


def evaluation(
    run_dir: str | Path,
    episodes: int = 10,
    seed: int = 12345,
    max_steps: int = 1000,
    sampled: bool = False,
    epsilon: float = 0.05,
    layout: int | None = None,
):
    """Greedy (or ``sampled``) returns [G, S, episodes] on the same ``episodes`` keys for
    every run (in ``layout`` of a grid task that switches layouts; None: as its episodes
    begin, in layout 0), and
    per grid point the mean and the IQM of the per-seed means with a stratified
    bootstrap interval (rliable, via ``jrl.stats``); written to RUN_DIR/eval.json, with
    RUN_DIR/eval/ holding the aggregate table (markdown), its PNG and the performance
    profiles. ``checkpoint`` in the result says which state was evaluated (updates done,
    of how many, and the run's status then). Runs whose learned values hold NaN or
    inf (diverged) are listed under ``diverged``, their returns NaN (null), and left out
    of the statistics; a grid point with no other run has none, and with no run left at
    all there is no report (an earlier RUN_DIR/eval/ is removed).

    Returns (what eval.json holds, ``write()``, which writes eval.json and RUN_DIR/eval/):
    nothing is written before ``write`` is called (runs pooled as tasks are written only
    once the pool has passed its checks, so a refused pool keeps each run's own). A run
    directory that cannot be written (read-only) gets neither, with a note on stderr."""
    built, state, info = training.restore_state(run_dir)
    finite = np.asarray(training.finite_runs(state))
    env_params = params_in_layout(built, layout)
    _note_shorter_cut(built, max_steps)
    episodes_of_runs = _episodes_of_runs(built, max_steps, sampled, epsilon, layout, env_params)
    keys = jax.random.split(jax.random.key(seed), episodes)
    returns, lengths, terminated = episodes_of_runs(state, keys)
    returns = np.asarray(returns, np.float64)
    # A diverged run's greedy policy is no policy (argmax of NaN logits: action 0).
    returns[~finite] = np.nan
    cut = _episodes_cut(
        run_dir, built, max_steps, np.asarray(lengths), np.asarray(terminated), finite
    )
    per_seed = returns.mean(axis=-1)
    kept = [g for g in range(per_seed.shape[0]) if finite[g].any()]
    spec = built.spec
    labels = [
        f"grid point {g}" + (f" ({_settings(shown)})" if shown else "")
        for g, shown in enumerate(training.shown_hparams(spec.agent, spec.hparams, spec.config))
    ]
    scores = {labels[g]: per_seed[g][finite[g]][:, None] for g in kept}
    xlabel = "sampled return" if sampled else "greedy return"
    report = Path(run_dir) / "eval"
    if scores:
        # Raw returns: no target, so no optimality gap.
        aggregates = stats.aggregate(scores, reps=2000, seed=seed, gamma=None)
    iqm = stats.AGGREGATES.index("IQM")
    status = info["run_status"] if "run_status" in info else _old_status(Path(run_dir), info)

    def point(g: int) -> dict:
        hparams = training.named_algorithm(spec.agent, dict(spec.hparams[g]), spec.config)
        entry = {"grid_point": g, "label": labels[g], "hparams": hparams}
        if g not in kept:
            return {**entry, "mean": None, "iqm": None, "iqm_ci": [None, None]}
        return {
            **entry,
            "num_seeds": int(finite[g].sum()),
            "mean": float(per_seed[g][finite[g]].mean()),
            "iqm": float(aggregates.point[labels[g]][iqm]),
            "iqm_ci": [float(v) for v in aggregates.interval[labels[g]][:, iqm]],
        }

    result = {
        "episodes": episodes,
        "seed": seed,
        "max_steps": max_steps,
        "layout": layout,
        "num_layouts": getattr(built.env, "num_layouts", 1),
        "checkpoint": {
            "updates_done": info["updates_done"],
            "total_updates": built.total_updates,
            "run_status": status,
        },
        "policy": (
            "greedy"
            if not sampled
            else "sampled"
            if built.spec.agent in training.POLICY_AGENTS
            else f"sampled (epsilon {epsilon})"
        ),
        "returns": returns.tolist(),
        "cut_at_max_steps": cut,
        "diverged": [
            {"grid_point": int(g), "seed": int(s)}
            for g, s in zip(*np.nonzero(~finite), strict=True)
        ],
        "grid": [point(g) for g in range(per_seed.shape[0])],
    }

    def write() -> None:
        # eval.json first: where it cannot be written, neither is eval/ (no new report
        # beside an old eval.json); where only eval/ cannot, the note says so.
        written = []
        stale = report.is_dir() and any(report.iterdir())  # an earlier evaluation's
        try:
            write_json(Path(run_dir) / "eval.json", result)
            written.append("eval.json")
            if scores:
                stats.write_report(
                    report,
                    scores,
                    reps=2000,
                    seed=seed,
                    gamma=None,
                    xlabel=xlabel,
                    aggregates=aggregates,
                )
            elif report.exists():  # an earlier evaluation's, of runs that have diverged since
                shutil.rmtree(report)
        except OSError as error:  # an archived run, a colleague's read-only share
            if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            if not written:
                said = "its eval.json and eval/ are not written, the results only returned"
            elif not scores:
                said = "eval.json is written; its earlier eval/ report could not be removed"
            else:
                said = "eval.json is written, its eval/ report is not" + (
                    " (eval/ still holds an earlier evaluation's: it disagrees with eval.json)"
                    if stale else ""
                )  # fmt: skip
            print(f"jrl eval: {run_dir} cannot be written ({error.strerror}): {said}",
                  file=sys.stderr)  # fmt: skip

    return result, write


def _old_status(run_dir: Path, info: dict) -> str | None:
    """The run's status at a checkpoint whose record does not hold it (written before
    jrl kept it there): summary.json's where that describes the same update, "running"
    where the run has moved on since, None without a summary."""
    summary = read_summary(run_dir)
    if summary is None:
        return None
    return summary["status"] if summary["updates_done"] == info["updates_done"] else "running"


def diverged_runs(entries) -> list[tuple[int, int]]:
    """(grid point, seed) of each entry of a summary.json's or eval.json's ``diverged``."""
    return [(entry["grid_point"], entry["seed"]) for entry in entries]


def render_run(
    run_dir, out, env_name: str, random: bool, seed: int, max_steps: int, fps: float = 6.0
) -> Path:
    """GIF of one greedy episode of RUN_DIR's first run (grid point 0, seed 0), or of a
    uniformly random policy (``random``) on RUN_DIR's environment, or without a run
    directory on ``env_name``: any environment ``jrl.envs.render_gymnax.episode_frames``
    draws (jrl's grid worlds, classic control, image observations such as MinAtar's);
    ValueError for the others."""
    from jrl.envs.render import save_gif
    from jrl.envs.render_gymnax import episode_frames

    if not fps > 0 or max_steps < 1:
        raise ValueError(f"render needs fps > 0 and max_steps >= 1, got {fps} and {max_steps}")
    if random or run_dir is None:
        spec = training.load_spec(run_dir) if run_dir is not None else None
        name = spec.env if spec else env_name
        env, env_params = make_recorded(name, dict(spec.env_overrides)) if spec else make(name)
        space = env.action_space(env_params)

        def policy(key, obs):
            return space.sample(key)
    else:
        built, state = restore_run(run_dir)
        env, env_params, name = built.env, built.env_params, built.spec.env
        policy = greedy_act_fn(built, jax.tree.map(lambda x: x[0, 0], state))
    frames = episode_frames(name, env, env_params, policy, jax.random.key(seed), max_steps)
    return save_gif(out, frames, fps=fps)


def plot_runs(run_dirs, out, metric: str = "episode_return") -> Path:
    """Mean and IQM (bootstrap bands over seeds) of ``metric`` against timesteps, one
    curve per run directory and grid point (:func:`learning_curves`)."""
    curves, xs = learning_curves(run_dirs, metric)
    plot_learning_curves(
        out,
        curves,
        x=xs,
        xlabel="environment steps",
        ylabel=metric.replace("_", " "),
        title=f"{metric.replace('_', ' ')} over seeds",
    )
    return Path(out)


def learning_curves(run_dirs, metric: str = "episode_return") -> tuple[dict, dict]:
    """({label: float[seeds, T]}, {label: x[T]}) of ``metric`` per run directory and
    grid point, x the environment steps. Updates where no seed logged a value (between
    periodic evaluations, say) are left out, and so are those before every seed has
    logged a value; a seed's missing value after that (no episode ended in that
    update) holds its last one (``fill_gaps``). A seed with no value yet (a run still
    early in training) is left out, with a note on stderr, and so is a grid point none
    of whose seeds has one. Runs summary.json lists as diverged are left out too, as
    its means and ``jrl eval`` leave them out (their later rows are null: held at
    their last value before, they had drawn a healthy curve)."""
    curves, xs = {}, {}
    all_diverged = []  # labels of grid points left out with every seed diverged
    if len(run_dirs) > 1:
        note_setting_differences("plot", run_dirs)
    names = [Path(run_dir).name for run_dir in run_dirs]
    if len(set(names)) < len(names):  # runs/a/run and runs/b/run: label by the whole path
        names = [str(run_dir) for run_dir in run_dirs]
    for run_dir, name in zip(run_dirs, names, strict=True):
        spec = training.load_spec(run_dir)  # a path that holds no run says so
        if training.recorded_fingerprint(run_dir, spec) is None:
            print(
                f"jrl plot: {run_dir}: its config.yaml is not what the run was started with "
                "(meta.json's fingerprint): edited? The labels show config.yaml's "
                "hyperparameters, which may not be those its curves were trained with",
                file=sys.stderr,
            )
        columns, known = _metric_columns(Path(run_dir) / "metrics.jsonl", metric)
        if not len(columns["value"]):
            raise ValueError(
                f"{run_dir}: no rows with {metric!r} in metrics.jsonl"
                + (f"; its metrics: {', '.join(known)}" if known else " (no rows yet)")
            )
        shown = training.shown_hparams(spec.agent, spec.hparams, spec.config)  # tells points apart
        diverged = diverged_runs((read_summary(run_dir) or {}).get("diverged") or [])
        present = np.unique(columns["grid_point"]).tolist()
        missing = sorted(set(range(len(spec.hparams))) - set(present))
        if missing:
            print(
                f"jrl plot: {run_dir}: grid point(s) {missing} have no rows with {metric} in "
                "metrics.jsonl; left out",
                file=sys.stderr,
            )
        for g in present:
            at = columns["grid_point"] == g
            lost = sorted({seed for point, seed in diverged if point == g})
            at &= ~np.isin(columns["seed"], lost)
            # Aligned by update; a seed whose run ended earlier (a tabular run's episode
            # budget) has no later rows, and fill_gaps holds its last value.
            seeds, row_seed = np.unique(columns["seed"][at], return_inverse=True)
            updates, row_update = np.unique(columns["update"][at], return_inverse=True)
            values = np.full((len(seeds), len(updates)), np.nan)
            values[row_seed, row_update] = columns["value"][at]
            x = np.zeros(len(updates), columns["x"].dtype)
            np.maximum.at(x, row_update, columns["x"][at])
            # Updates no seed logged (a periodic evaluation's other rows) are not points.
            logged = np.isfinite(values).any(axis=0)
            label = " ".join([name, _settings(shown[g])]) if shown[g] else name
            if label in curves:  # points alike as float32 (a Python-made spec may hold them)
                label = f"{label} (grid point {g})"
            absent = sorted(set(range(spec.num_seeds)) - set(seeds.tolist()) - set(lost))
            if absent:  # a metrics.jsonl cut short or cleaned by hand
                print(
                    f"jrl plot: {label}: seed(s) {absent} have no rows with {metric} in "
                    f"metrics.jsonl (the run has {spec.num_seeds}); plotting the other "
                    f"{len(seeds)}",
                    file=sys.stderr,
                )
            if lost:
                which = f"seed(s) {lost}" if len(seeds) else "every seed"
                print(
                    f"jrl plot: {label}: {which} diverged (summary.json lists by which "
                    "update); left out",
                    file=sys.stderr,
                )
                if not len(seeds):
                    all_diverged.append(label)
                    continue
            if not logged.any():
                print(
                    f"jrl plot: {label}: no seed logged {metric} yet (or only NaN or inf, "
                    "which metrics.jsonl writes as null; summary.json lists those runs under "
                    "'diverged' and 'infinite'); left out",
                    file=sys.stderr,
                )
                continue
            has_value = np.isfinite(values).any(axis=1)
            if not has_value.all():
                missing = seeds[~has_value].tolist()
                print(
                    f"jrl plot: {label}: seed(s) {missing} logged no {metric} yet; "
                    f"plotting the other {int(has_value.sum())}",
                    file=sys.stderr,
                )
            infinite = seeds[np.isinf(values).any(axis=1)].tolist()
            if infinite:  # wherever it is: the cut below must not hide it
                raise ValueError(
                    f"{label}: seed(s) {infinite} logged an infinite {metric} (a diverged "
                    "run?): no curve to draw"
                )
            kept = values[has_value][:, logged]
            # From the first point by which every kept seed has a value: before it,
            # fill_gaps would give a seed the value of a later update.
            start = int(np.argmax(np.isfinite(kept), axis=1).max())
            curves[label] = fill_gaps(kept)[:, start:]
            xs[label] = x[logged][start:]
    if not curves and all_diverged:
        raise ValueError(f"no curve to draw: every seed of {', '.join(all_diverged)} diverged")
    if not curves:
        raise ValueError(f"no run logged a value of {metric!r} in metrics.jsonl")
    return curves, xs


def _metric_columns(path: Path, metric: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The rows of ``path`` that hold ``metric``, as columns: grid_point, seed, update
    (int64), x (their timesteps, else their update; int64 where all whole) and value
    (float64, NaN for null); and the first row's metrics, for a message. Read one row
    at a time and kept as machine numbers (a million-row file is a few tens of MB here,
    not GB of dicts)."""
    ints = {name: array.array("q") for name in ("grid_point", "seed", "update")}
    x, value = array.array("d"), array.array("d")
    known: list[str] = []
    for row in iter_rows(path):
        if not known:
            known = sorted(set(row) - {"grid_point", "seed", "update"})
        if metric not in row:
            continue
        ints["grid_point"].append(int(row["grid_point"]))
        ints["seed"].append(int(row["seed"]))
        ints["update"].append(int(row["update"]))
        x.append(float(row.get("timesteps", row["update"])))
        value.append(math.nan if row[metric] is None else row[metric])
    columns = {name: np.frombuffer(column, np.int64) for name, column in ints.items()}
    x = np.frombuffer(x, np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: a row's timesteps is not a finite number")
    exact = np.array_equal(x, np.round(x)) and (np.abs(x) < 2.0**53).all()
    whole = x.astype(np.int64) if exact else x  # steps are counts
    return {**columns, "x": whole, "value": np.frombuffer(value, np.float64)}, known


def _settings(shown: dict) -> str:
    """``shown`` hyperparameters as a label's ``name=value`` words."""
    return " ".join(f"{k}={_shown(v)}" for k, v in shown.items())


def _shown(value) -> str:
    """A hyperparameter's value in a label: names as they are, numbers as
    ``training.shown_number``."""
    return value if isinstance(value, str) else training.shown_number(value)
