"""Collecting experience from N gymnax-API environments with a policy network, as one
``lax.scan`` (shared by PPO and REINFORCE).

Episode boundaries follow gymnax 1.0: ``step`` resets by itself and reports
``terminated`` and ``truncated`` apart, with the pre-reset observation in
``info["final_observation"]``; the rollout records both flags and that observation,
and returns V(final_observation) for every step so that learners bootstrap from zero
after a termination and from V(s') after a truncation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jrl.agents.distributions import ActionDistribution


class Transition(NamedTuple):
    """One rollout step for N envs (stacked to [T, N, ...] by the scan).

    action: as sampled (a Gaussian sample unclipped); log_prob: its log pi_old;
    reward: as the environment gave it (unscaled).
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array


class EpisodeStats(NamedTuple):
    """Sums over the episodes that ended during a rollout: return (float32), length
    (int32) and count (int32)."""

    return_sum: jax.Array
    length_sum: jax.Array
    count: jax.Array

    def means(self) -> tuple[jax.Array, jax.Array]:
        """(mean return, mean length) of those episodes, NaN when none ended."""
        some = self.count > 0
        count = jnp.maximum(self.count, 1)
        return (
            jnp.where(some, self.return_sum / count, jnp.nan),
            jnp.where(some, self.length_sum / count, jnp.nan),
        )


class Rollout(NamedTuple):
    """What :func:`make_rollout`'s function returns.

    transitions: Transition of [T, N, ...] arrays; next_values: float[T, N],
    V(s'_t) = V(final_observation_t) under the acting parameters; stats: EpisodeStats;
    env_state, obs, episode_return, episode_length: the environments after the T steps.
    """

    transitions: Transition
    next_values: jax.Array
    stats: EpisodeStats
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array


def make_rollout(
    network: nn.Module, distribution: ActionDistribution, env, env_params, num_steps: int
) -> Callable:
    """``rollout(key, params, env_state, obs, episode_return, episode_length) -> Rollout``:
    ``num_steps`` steps of the policy ``network.apply(params, obs) -> (dist, value)``
    in each of the N environments of ``env_state`` (obs float[N, ...]), as one
    ``lax.scan``; episode returns and lengths are tracked across calls. Shared by PPO
    and REINFORCE."""
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(key, params, env_state, obs, episode_return, episode_length) -> Rollout:
        num_envs = obs.shape[0]

        def env_step(carry, key_step):
            env_state, obs, ep_return, ep_length, stats = carry
            key_act, key_env = jax.random.split(key_step)
            dist, value = network.apply(params, obs)
            action = distribution.sample(key_act, dist)
            log_prob = distribution.log_prob(dist, action)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(key_env, num_envs),
                env_state,
                distribution.to_env(action),
                env_params,
            )
            reward = jnp.asarray(reward, jnp.float32)
            done = jnp.logical_or(terminated, truncated)
            ep_return = ep_return + reward
            ep_length = ep_length + 1
            stats = EpisodeStats(
                stats.return_sum + jnp.where(done, ep_return, 0.0).sum(),
                stats.length_sum + jnp.where(done, ep_length, 0).sum(),
                stats.count + done.sum(),
            )
            carry = (
                env_state,
                next_obs,
                jnp.where(done, 0.0, ep_return),
                jnp.where(done, 0, ep_length),
                stats,
            )
            transition = Transition(
                obs, action, log_prob, value, reward, terminated, done, info["final_observation"]
            )
            return carry, transition

        stats = EpisodeStats(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
        carry = (env_state, obs, episode_return, episode_length, stats)
        carry, transitions = jax.lax.scan(env_step, carry, jax.random.split(key, num_steps))
        env_state, obs, episode_return, episode_length, stats = carry
        # V(s'_t) for every step in one batched call: the pre-reset observation, which is
        # the next observation itself except at episode ends.
        _, next_values = network.apply(params, transitions.final_obs)
        return Rollout(
            transitions, next_values, stats, env_state, obs, episode_return, episode_length
        )

    return rollout
