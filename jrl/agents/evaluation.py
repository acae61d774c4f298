"""Evaluation episodes: one episode of a policy, as a loop, for any agent, and the
periodic evaluation on fixed keys that the neural agents run inside their training
(``eval_every``, ``eval_episodes``, ``eval_max_steps``, ``eval_seed`` in their configs);
also :func:`scan_run`, the whole-run loop whose scan index that evaluation keys on."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jrl.seeds import check_seed


def run_episode(
    key: jax.Array,
    env,
    env_params,
    act: Callable[[jax.Array, jax.Array], jax.Array],
    max_steps: int,
):
    """Play ``act(key, obs) -> action`` from a reset until the episode ends, for at most
    ``max_steps`` steps.

    Returns (return float32, length int32, terminated bool) of that first episode. A
    ``lax.while_loop`` that stops when the episode ends, so an environment without a
    practical time limit (the textbook grids': a million steps) costs only the steps
    played; under ``vmap`` the loop runs until every episode has ended and the ended
    ones stay as they were. Step t acts and steps with the halves of
    ``jax.random.fold_in(key, t)`` — under JAX's default (partitionable) threefry the
    same keys as ``jax.random.split(key, max_steps)[t]``. ``max_steps`` is an int >= 1
    (:func:`check_episode_steps`).
    """
    check_episode_steps(max_steps)
    obs, state = env.reset(key, env_params)

    def running(carry):
        step, *_, ended, _ = carry
        return (step < max_steps) & ~ended

    def one_step(carry):
        step, obs, state, total, length, _, _ = carry
        key_act, key_env = jax.random.split(jax.random.fold_in(key, step))
        action = act(key_act, obs)
        obs, state, reward, terminated, truncated, _ = env.step(key_env, state, action, env_params)
        total = total + jnp.asarray(reward, jnp.float32)
        return step + 1, obs, state, total, length + 1, terminated | truncated, terminated

    no = jnp.bool_(False)
    init = (jnp.int32(0), obs, state, jnp.float32(0), jnp.int32(0), no, no)
    *_, total, length, _, terminated = jax.lax.while_loop(running, one_step, init)
    return total, length, terminated


def random_policy_returns(keys: jax.Array, env, env_params, max_steps: int) -> jax.Array:
    """float32[N]: the return of one episode of the uniformly random policy (the action
    space's ``sample``) per key of ``keys`` [N] (N >= 1), each cut at ``max_steps``
    steps (an int >= 1)."""
    shape = key_batch_shape(keys)
    if shape is None or len(shape) != 1 or shape[0] < 1:
        got = f"shape {shape}" if shape is not None else repr(keys)
        raise ValueError(
            "random_policy_returns plays one episode per key: keys must be N >= 1 PRNG keys "
            f"(jax.random.split(key, N)), got {got}"
        )
    check_episode_steps(max_steps)
    space = env.action_space(env_params)

    def episode(key):
        return run_episode(key, env, env_params, lambda k, obs: space.sample(k), max_steps)[0]

    return jax.jit(jax.vmap(episode))(keys)


MAX_TIMESTEPS = 2**31 - 1  # the agents' step counters (and ``timesteps`` metrics) are int32


def check_step_count(name: str, steps: int) -> None:
    """Reject a count (``name``: total_timesteps, max_steps, num_episodes) that the
    run's int32 step and episode counters cannot hold."""
    if steps > MAX_TIMESTEPS:
        raise ValueError(
            f"{name}={steps} is more than the int32 step counters hold ({MAX_TIMESTEPS})"
        )


def check_episode_steps(max_steps: Any) -> None:
    """ValueError unless ``max_steps``, where an episode is cut, is an int >= 1 that the
    episode loop's int32 counter holds: 0 or less played no step and returned 0 as if an
    episode had been played, and a larger one overflowed while tracing."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(
            f"max_steps must be an int >= 1 (the steps an episode may take before it is cut), "
            f"got {max_steps!r}"
        )
    check_step_count("max_steps", int(max_steps))


def key_batch_shape(keys: Any) -> tuple[int, ...] | None:
    """The batch shape of an array of PRNG keys — a typed key array's shape
    (``jax.random.key``: () for one key), all but the last axis of raw uint32 keys
    (``jax.random.PRNGKey``: (2,) for one key under the default threefry) — or None for
    anything that is not keys (an int seed, floats)."""
    dtype = getattr(keys, "dtype", None)
    if dtype is None:
        return None
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return tuple(keys.shape)
    width = jax.eval_shape(jax.random.PRNGKey, 0).shape[-1]  # words per raw key
    if dtype == np.uint32 and keys.ndim >= 1 and keys.shape[-1] == width:
        return tuple(keys.shape[:-1])
    return None


def check_eval_fields(config) -> None:
    """Reject a config's evaluation settings that cannot run: ``eval_every``,
    ``eval_max_steps`` and ``eval_seed`` non-negative ints, ``eval_episodes`` a positive
    int (``eval_seed`` below 2**32, the two counts within int32)."""
    for name, least in (
        ("eval_every", 0),
        ("eval_episodes", 1),
        ("eval_max_steps", 0),
        ("eval_seed", 0),
    ):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            kind = "a positive" if least else "a non-negative"
            raise ValueError(f"{name} must be {kind} int, got {value!r}")
    check_step_count("eval_max_steps", config.eval_max_steps)
    check_step_count("eval_episodes", config.eval_episodes)
    check_seed("eval_seed", config.eval_seed)


def check_eval_every(eval_every: int, num_rows: int, rows: str) -> None:
    """Reject an ``eval_every`` longer than the run's ``num_rows`` metrics rows (its
    ``rows``: updates, chunks): only the last would be evaluated, which
    ``eval_every=num_rows`` says plainly."""
    if eval_every > num_rows:
        raise ValueError(
            f"eval_every={eval_every} is more than the run's {num_rows} {rows}: only the "
            f"last would be evaluated; eval_every={num_rows} evaluates just that one "
            "(eval_every=0 turns evaluation off)"
        )


def eval_max_steps(config, env_params) -> int:
    """Steps an evaluation episode may take: ``config.eval_max_steps``, or when that is 0
    the environment's time limit (``env_params.max_steps_in_episode``; a new run refuses
    one that is no limit: :func:`check_eval_cut`)."""
    if config.eval_max_steps:
        return config.eval_max_steps
    limit = getattr(env_params, "max_steps_in_episode", None)
    try:
        steps = int(limit)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise ValueError(
            "eval_max_steps=0 takes the environment's time limit, but its params have no "
            f"concrete max_steps_in_episode (got {limit!r}); set eval_max_steps"
        ) from None
    if steps < 1:
        raise ValueError(
            f"eval_max_steps=0 takes the environment's time limit, but its "
            f"max_steps_in_episode is {limit!r}, which plays no step; set eval_max_steps"
        )
    return steps


def check_eval_cut(config, env_params) -> None:
    """Refuse, for a new run that evaluates (``eval_every`` > 0), an evaluation cut that
    is no cut: ``eval_max_steps=0`` on an environment whose time limit is
    ``jrl.envs.textbook.NO_TIME_LIMIT`` (the textbook grids' default), where a greedy
    policy that never reaches the goal plays 10**6 steps in every evaluation episode.
    (A run directory made before this rule resumes and evaluates as it was made.)"""
    from jrl.envs.textbook import NO_TIME_LIMIT  # (jrl.envs imports gymnax: not at import)

    if not getattr(config, "eval_every", 0) or config.eval_max_steps:
        return
    steps = eval_max_steps(config, env_params)
    if steps >= NO_TIME_LIMIT:
        raise ValueError(
            f"eval_max_steps=0 takes the environment's time limit, but it has none "
            f"(max_steps_in_episode {steps}: the textbook grids' default): a greedy policy "
            f"that never reaches the goal plays {steps} steps in every evaluation "
            "episode; set eval_max_steps (e.g. 1000) or give the environment a limit "
            "(--env-overrides max_steps_in_episode N)"
        )


def check_eval_steps(config, env_params) -> None:
    """For an agent's factory, where the run evaluates (``eval_every`` > 0): fail before
    compiling where ``eval_max_steps=0`` has no time limit to take
    (:func:`eval_max_steps`), and warn where the limit it takes is the textbook grids'
    ``NO_TIME_LIMIT``, which a new ``jrl train`` refuses (:func:`check_eval_cut`) but a
    ``make_train`` called directly, or an older run directory resumed, runs: a greedy
    policy that never reaches the goal then plays 10**6 steps in every evaluation
    episode."""
    if not config.eval_every:
        return
    eval_max_steps(config, env_params)  # no time limit to take: an error, before compiling
    try:
        check_eval_cut(config, env_params)
    except ValueError as no_cut:
        warnings.warn(str(no_cut), stacklevel=3)


def make_evaluate(config, env, env_params, policy: Callable) -> Callable:
    """``evaluate(params) -> float32``: the mean return of ``config.eval_episodes``
    episodes of ``policy(params)`` (an ``act(key, obs) -> action``), each cut at
    :func:`eval_max_steps` steps, on fixed keys ``jax.random.split(
    jax.random.key(config.eval_seed), config.eval_episodes)`` — the same for every seed,
    grid point and evaluation, and the keys ``jrl eval --seed`` uses. Draws nothing from
    the training keys, so a run's training numbers do not depend on its evaluation."""

    def evaluate(params) -> jax.Array:
        max_steps = eval_max_steps(config, env_params)
        keys = jax.random.split(jax.random.key(config.eval_seed), config.eval_episodes)
        act = policy(params)
        episode = lambda key: run_episode(key, env, env_params, act, max_steps)[0]  # noqa: E731
        return jax.vmap(episode)(keys).mean()

    return evaluate


def with_periodic_evaluation(
    update: Callable, evaluate: Callable, every: int, num_updates: int
) -> Callable:
    """``update_at(state, hparams, index) -> (state, metrics)``: ``update(state,
    hparams)``, then, when ``(index + 1) % every == 0`` or the update is the run's last
    (``index + 1 == num_updates``), ``metrics.eval_return = evaluate(state.params)``
    (the update's own NaN stays otherwise); ``every = 0`` evaluates never. So the last
    evaluation is always of the final parameters, whatever ``every`` divides.

    ``index`` is the number of the update (0, 1, ...). Pass the loop's index (``lax.scan``
    over ``jnp.arange``), not a counter in the state: under ``vmap`` over seeds a
    per-seed counter is batched, and ``lax.cond`` on a batched predicate runs both
    branches — an evaluation at every update."""

    def update_at(state, hparams, index):
        state, metrics = update(state, hparams)
        if not every:
            return state, metrics
        value = jax.lax.cond(
            ((index + 1) % every == 0) | (index + 1 == num_updates),
            evaluate,
            lambda params: jnp.float32(jnp.nan),
            state.params,
        )
        return state, metrics._replace(eval_return=value)

    return update_at


def check_one_key(key: Any) -> None:
    """ValueError unless ``key`` is one PRNG key (of a run; under ``vmap``, each run's):
    jax.random's own errors for an int seed or a batch of keys come from deep inside."""
    if key_batch_shape(key) != ():
        got = f"shape {key.shape} and dtype {key.dtype}" if hasattr(key, "dtype") else repr(key)
        raise ValueError(
            f"train takes one PRNG key, jax.random.key(seed), got {got} (for several "
            "seeds: jrl.sweep.run_sweep, or jax.vmap(train, in_axes=(0, None)))"
        )


def scan_run(init: Callable, update_at: Callable, num_updates: int) -> Callable:
    """``train(key, hparams) -> (state, metrics)``: ``state = init(key, hparams)``, then
    ``update_at(state, hparams, index)`` for index = 0 .. num_updates - 1 in one
    ``lax.scan``, its metrics stacked on a leading [num_updates] axis. The index comes
    from the scan, not the state, for :func:`with_periodic_evaluation`'s sake."""

    def train(key: jax.Array, hparams):
        check_one_key(key)
        state = init(key, hparams)
        return jax.lax.scan(
            lambda s, index: update_at(s, hparams, index),
            state,
            jnp.arange(num_updates, dtype=jnp.int32),
        )

    return train
