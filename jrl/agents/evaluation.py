"""Evaluation episodes: one episode of a policy, as a scan, for any agent."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def run_episode(
    key: jax.Array,
    env,
    env_params,
    act: Callable[[jax.Array, jax.Array], jax.Array],
    max_steps: int,
):
    """Play ``act(key, obs) -> action`` from a reset for at most ``max_steps`` steps.

    Returns (return float32, length int32, terminated bool) of the first episode;
    steps after it ends (the environment auto-resets) are not counted.
    """
    obs, state = env.reset(key, env_params)

    def one_step(carry, key_step):
        obs, state, total, length, finished, terminated_any = carry
        key_act, key_env = jax.random.split(key_step)
        action = act(key_act, obs)
        obs, state, reward, terminated, truncated, _ = env.step(key_env, state, action, env_params)
        live = ~finished
        return (
            obs,
            state,
            total + jnp.where(live, reward, 0.0),
            length + live,
            finished | terminated | truncated,
            terminated_any | (live & terminated),
        ), None

    init = (obs, state, jnp.float32(0), jnp.int32(0), jnp.bool_(False), jnp.bool_(False))
    (_, _, total, length, _, terminated), _ = jax.lax.scan(
        one_step, init, jax.random.split(key, max_steps)
    )
    return total, length, terminated


def random_policy_returns(keys: jax.Array, env, env_params, max_steps: int) -> jax.Array:
    """float32[N]: the return of one episode of the uniformly random policy (the action
    space's ``sample``) per key of ``keys`` [N], each cut at ``max_steps`` steps."""
    space = env.action_space(env_params)

    def episode(key):
        return run_episode(key, env, env_params, lambda k, obs: space.sample(k), max_steps)[0]

    return jax.jit(jax.vmap(episode))(keys)
