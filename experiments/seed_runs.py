"""Running a neural agent over seeds for an experiment: one compiled call that trains
every seed and then plays greedy evaluation episodes, timed apart from its compilation;
and the learning curves and summaries that the experiment scripts write.

Shared by ``cartpole.py``, ``minatar_breakout.py`` and ``cat_room_deep.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jrl.agents.evaluation import random_policy_returns
from jrl.host import compiler_options, release_unused_memory
from jrl.progress import Progress, call_stoppable, train_with_progress
from jrl.reporting import fill_gaps, final_summary, smooth
from jrl.sweep import run_sweep, stack_grid


class SeedRuns(NamedTuple):
    """What :func:`train_over_seeds` returns (NumPy arrays, seeds first).

    timesteps: int[R], environment steps per seed at the end of each logged row (an
    update for PPO, a chunk for DQN). returns: float[S, R], mean return of the episodes
    that ended in the row (NaN where none did). greedy_returns: float[S, E] of E
    greedy evaluation episodes per seed; greedy_lengths int[S, E]. final_params: the
    trained parameters, stacked over seeds. compile_s, run_s: seconds to trace and
    compile, and to run. steps_per_s: S x steps run / run_s. finite: bool[S], whether
    each seed's trained parameters are all finite (None: not known, taken as all).
    """

    timesteps: np.ndarray
    returns: np.ndarray
    greedy_returns: np.ndarray
    greedy_lengths: np.ndarray
    final_params: Any
    compile_s: float
    compile_cpu_s: float
    run_s: float
    steps_per_s: float
    finite: np.ndarray | None = None


def train_over_seeds(
    agent,
    greedy_episode: Callable,
    env,
    env_params,
    hparams,
    key: jax.Array,
    num_seeds: int,
    eval_episodes: int = 10,
    eval_max_steps: int = 1000,
    devices: Sequence[jax.Device] | None = None,
    num_updates: int | None = None,
    label: str = "",
) -> SeedRuns:
    """Train ``agent`` (a ``make_ppo`` or ``make_dqn`` result) on ``num_seeds`` seeds,
    vmapped through ``jrl.sweep.run_sweep``, then play ``eval_episodes`` episodes of
    each seed's greedy policy (``greedy_episode(key, env, env_params, network, params,
    max_steps)``), all in one compiled call, compiled as ``run_sweep`` compiles
    (``jrl.host.compiler_options``). The seeds are split over ``devices`` (default:
    all of them; the experiment scripts make one CPU device per core with
    ``jrl.host.use_cpu_cores``), each vmapping its share. Given the run's
    ``num_updates`` (``PPOConfig.num_updates``, ``DQNConfig.num_chunks``), progress is
    printed to stderr while it runs (``jrl.progress``; the same numbers bit for bit)."""
    progress = Progress(label, num_updates) if num_updates is not None else None
    train = agent.train if progress is None else train_with_progress(agent, num_updates, progress)

    def train_and_evaluate(key, hparams):
        key_train, key_eval = jax.random.split(key)
        state, metrics = train(key_train, hparams)
        evaluate = lambda k: greedy_episode(  # noqa: E731
            k, env, env_params, agent.network, state.params, eval_max_steps
        )
        returns, lengths, _ = jax.vmap(evaluate)(jax.random.split(key_eval, eval_episodes))
        return metrics, returns, lengths, state.params

    train_and_evaluate.check_hparams = getattr(agent.train, "check_hparams", None)
    grid = stack_grid([hparams])
    devices = jax.devices() if devices is None else devices
    fn = jax.jit(
        lambda key: run_sweep(train_and_evaluate, key, grid, num_seeds, jit=False, devices=devices),
        compiler_options=compiler_options(),
    )
    started, started_cpu = time.perf_counter(), time.process_time()
    compiled = fn.lower(key).compile()
    compile_s = time.perf_counter() - started
    compile_cpu_s = time.process_time() - started_cpu
    release_unused_memory()
    started = time.perf_counter()
    if progress is None:
        metrics, returns, lengths, params = jax.block_until_ready(compiled(key))
    else:  # a Ctrl-C ends the run within 1% of its updates, not at its end
        metrics, returns, lengths, params = call_stoppable(progress, compiled, key)
    run_s = time.perf_counter() - started
    first = lambda x: np.asarray(x[0])  # noqa: E731  (the one grid point)
    timesteps = first(metrics.timesteps)[0]
    final_params = jax.tree.map(first, params)
    finite = np.ones(num_seeds, bool)
    for leaf in jax.tree.leaves(final_params):
        finite &= np.isfinite(leaf.reshape(num_seeds, -1)).all(axis=1)
    return SeedRuns(
        timesteps=timesteps,
        returns=first(metrics.episode_return),
        greedy_returns=first(returns),
        greedy_lengths=first(lengths),
        final_params=final_params,
        compile_s=compile_s,
        compile_cpu_s=compile_cpu_s,
        run_s=run_s,
        steps_per_s=num_seeds * float(timesteps[-1]) / run_s,
        finite=finite,
    )


def updates_in(config) -> int:
    """The length of an agent's training loop: ``PPOConfig.num_updates`` or
    ``DQNConfig.num_chunks``."""
    return config.num_chunks if hasattr(config, "num_chunks") else config.num_updates


def final_rows(num_rows: int, fraction: float) -> int:
    """How many of the last logged rows the final return averages: ``fraction`` of
    them, at least one."""
    return max(1, round(fraction * num_rows))


def final_returns(returns, fraction: float = 0.05) -> np.ndarray:
    """Per seed, the mean of the logged returns over the last ``fraction`` of rows
    (at least one; NaN rows, where no episode ended, are skipped; a seed with no
    episode ended in them has its last logged return): float[S, R] -> float[S]."""
    returns = np.asarray(returns, np.float64)
    window = returns[:, -final_rows(returns.shape[1], fraction) :]
    ended = np.isfinite(window)
    mean = np.where(ended, window, 0.0).sum(axis=1) / np.maximum(ended.sum(axis=1), 1)
    return np.where(ended.any(axis=1), mean, fill_gaps(returns)[:, -1])


def random_policy_return(
    env, env_params, key: jax.Array, num_episodes: int = 1000, max_steps: int = 1000
) -> float:
    """Mean return of the uniformly random policy over ``num_episodes`` episodes."""
    keys = jax.random.split(key, num_episodes)
    return float(jnp.mean(random_policy_returns(keys, env, env_params, max_steps)))


def seeds_with_episodes(returns) -> np.ndarray:
    """bool[S]: which seeds ended an episode anywhere in their run (float[S, R] returns,
    NaN in rows with none). Raises ValueError if no seed did: there is nothing to
    summarise or plot (give the run more steps)."""
    ended = np.isfinite(np.asarray(returns, np.float64)).any(axis=1)
    if not ended.any():
        raise ValueError(
            "no seed ended an episode in its whole run, so there is no return to report: "
            "give the run more steps"
        )
    return ended


def finite_seeds(runs: SeedRuns) -> np.ndarray:
    """bool[S]: the seeds whose trained parameters are all finite (every seed where
    ``runs.finite`` is None, not known)."""
    if runs.finite is None:
        return np.ones(runs.returns.shape[0], bool)
    return np.asarray(runs.finite, bool)


def kept_seeds(runs: SeedRuns) -> np.ndarray:
    """bool[S]: the seeds whose returns the curves and summaries count: those that ended
    an episode (:func:`seeds_with_episodes`) with finite trained parameters. A run that
    diverged goes on playing its NaN policy (argmax of NaN: action 0), whose returns
    read as a poor but healthy seed's; ``jrl train``, ``eval`` and ``plot`` leave such
    runs out too. Raises ValueError if none is left."""
    ended = seeds_with_episodes(runs.returns)
    finite = finite_seeds(runs)
    if not (ended & finite).any():
        raise ValueError(
            "every seed that ended an episode has NaN or infinite trained parameters (its "
            "learning diverged): there is no return to report; lower the learning rate or "
            "clip gradients"
        )
    return ended & finite


def learning_curves(runs: SeedRuns, points: int = 50) -> tuple[np.ndarray, np.ndarray, int]:
    """(curves float[S', R'], timesteps int[R'], window): episode returns with gaps
    filled by the last value before them and a trailing moving average over ``window =
    max(1, R // points)`` rows, for the S' seeds :func:`kept_seeds` keeps, from the first
    row by which every one of them had ended an episode (before it a seed's curve would
    hold the return of a later episode)."""
    window = max(1, runs.returns.shape[1] // points)
    returns = runs.returns[kept_seeds(runs)]
    start = int(np.argmax(np.isfinite(returns), axis=1).max())
    return smooth(fill_gaps(returns)[:, start:], window), runs.timesteps[start:], window


def return_label(windows: dict[str, int]) -> str:
    """The curves' y label: ``episode return``, and the moving-average window of each
    curve whose window is longer than one row."""
    smoothed = {label: window for label, window in windows.items() if window > 1}
    if not smoothed:
        return "episode return"
    rows = ", ".join(f"{label} {window}" for label, window in smoothed.items())
    return f"episode return (trailing mean over rows: {rows})"


def summarize(runs: SeedRuns, num_seeds: int, final_fraction: float = 0.05) -> dict:
    """The results.json entry of one agent: final and greedy returns per seed with mean
    and IQM (bootstrap CIs), and the timings. Seeds whose learning diverged (NaN or
    infinite parameters) are left out of the final and greedy returns, seeds that ended
    no episode in their run out of the final returns; both are listed
    (:func:`kept_seeds`)."""
    kept = kept_seeds(runs)
    ended = seeds_with_episodes(runs.returns)
    diverged = ~finite_seeds(runs)
    num_rows = runs.returns.shape[1]
    last = final_rows(num_rows, final_fraction)
    first_step = int(runs.timesteps[-last - 1]) if last < num_rows else 0
    fell_back = ~np.isfinite(runs.returns[kept][:, -last:]).any(axis=1)
    if not ended.all():  # said once, here, though the curves leave them out too
        print(
            f"note: seeds {np.flatnonzero(~ended).tolist()} ended no episode in their run; "
            "their returns are left out of the curves and final returns",
            file=sys.stderr,
        )
    if diverged.any():
        print(
            f"note: seeds {np.flatnonzero(diverged).tolist()} diverged (NaN or infinite "
            "parameters); their returns are left out of the curves, final and greedy returns",
            file=sys.stderr,
        )
    return {
        "num_seeds": num_seeds,
        "steps_per_seed": int(runs.timesteps[-1]),
        "seeds_without_episodes": np.flatnonzero(~ended).tolist(),
        "diverged_seeds": np.flatnonzero(diverged).tolist(),
        "final_return": {
            "definition": f"mean over the last {last} of {num_rows} logged rows (the last "
            f"{final_fraction:.0%}, at least one: steps {first_step}-{int(runs.timesteps[-1])} "
            "per seed) of each row's mean return of the episodes ended in it (rows with "
            "none skipped), per seed that ended an episode; a seed that ended none in "
            "those rows takes its last logged return (listed in seeds_before_window)",
            "seeds_before_window": np.flatnonzero(kept)[fell_back].tolist(),
            **final_summary(final_returns(runs.returns[kept], final_fraction)),
        },
        "greedy_return": {
            "definition": "greedy policy after training, over the seeds that did not "
            f"diverge, mean of {runs.greedy_returns.shape[1]} episodes per seed",
            **final_summary(runs.greedy_returns[~diverged].mean(axis=1)),
        },
        "returns_per_seed": {
            "definition": "mean return of the episodes ended in each logged row, per seed "
            "(rows with none carry the last value before them; rows before a seed's first "
            "episode take that episode's value: they are not measurements)",
            "timesteps": runs.timesteps,
            "returns": fill_gaps(runs.returns),
        },
        "compile_seconds": round(runs.compile_s, 2),
        "compile_cpu_seconds": round(runs.compile_cpu_s, 2),
        "run_seconds": round(runs.run_s, 2),
        "steps_per_second": round(runs.steps_per_s),
    }
