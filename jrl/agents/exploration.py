"""Exploration as small pure functions over action values, and their schedules.

Every function works on one state's action values ``q_values: float[A]`` and
scalar parameters, so ``vmap`` batches it over states, seeds and grid points;
parameters may be traced (swept) values.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp


def _pick(candidates: jax.Array, uniform: jax.Array) -> jax.Array:
    """Index of the ``floor(uniform * count)``-th True entry of a bool[A] mask."""
    count = candidates.sum()
    rank = jnp.minimum(jnp.floor(uniform * count), count - 1)
    return jnp.argmax(jnp.cumsum(candidates) > rank).astype(jnp.int32)


def greedy_mask(q_values: jax.Array) -> jax.Array:
    """bool[A]: the maximal actions (all of them, so ties can be broken at random)."""
    return q_values == q_values.max(axis=-1, keepdims=True)


def epsilon_greedy_probs(q_values: jax.Array, epsilon: jax.Array) -> jax.Array:
    """pi(a) = epsilon / A + (1 - epsilon) [a maximal] / #maximal  (Sutton & Barto 5.4)."""
    chex.assert_rank(q_values, 1)
    greedy = greedy_mask(q_values)
    num_actions = q_values.shape[-1]
    return epsilon / num_actions + (1.0 - epsilon) * greedy / greedy.sum()


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Sample from :func:`epsilon_greedy_probs`, ties broken uniformly at random."""
    return epsilon_greedy_from_uniforms(jax.random.uniform(key, (2,)), q_values, epsilon)


def epsilon_greedy_from_uniforms(uniforms: jax.Array, q_values: jax.Array, epsilon) -> jax.Array:
    """:func:`epsilon_greedy` driven by two given uniforms in [0, 1): the first decides
    exploring, the second picks among all actions (exploring) or the maximal ones.
    Lets a training loop draw its random numbers for many steps in one call."""
    chex.assert_rank(q_values, 1)
    candidates = jnp.where(uniforms[0] < epsilon, True, greedy_mask(q_values))
    return _pick(candidates, uniforms[1])


def boltzmann_probs(q_values: jax.Array, temperature: jax.Array) -> jax.Array:
    """pi(a) = exp(Q(a) / T) / sum_b exp(Q(b) / T)  (softmax action selection)."""
    chex.assert_rank(q_values, 1)
    return jax.nn.softmax(q_values / temperature)


def boltzmann(key: jax.Array, q_values: jax.Array, temperature: jax.Array) -> jax.Array:
    """Sample from :func:`boltzmann_probs`."""
    return boltzmann_from_uniforms(jax.random.uniform(key, (2,)), q_values, temperature)


def boltzmann_from_uniforms(uniforms: jax.Array, q_values: jax.Array, temperature) -> jax.Array:
    """:func:`boltzmann` driven by given uniforms: inverts the CDF with the first."""
    probs = boltzmann_probs(q_values, temperature)
    below = jnp.cumsum(probs) <= uniforms[0] * probs.sum()
    return jnp.minimum(below.sum(), q_values.shape[-1] - 1).astype(jnp.int32)


def constant_schedule(value) -> Callable[[jax.Array], jax.Array]:
    return lambda count: jnp.asarray(value, jnp.float32)


def _check_duration(duration) -> None:
    """ValueError for a concrete ``duration`` <= 0 (0 gave NaN at count 0: 0 / 0); a
    traced one is checked by whoever chose it (the agents' configs and grids)."""
    try:
        value = float(duration)
    except TypeError:  # traced (a ConcretizationTypeError)
        return
    if not value > 0:
        raise ValueError(
            f"a schedule's duration must be > 0, got {duration} (constant_schedule for none)"
        )


def linear_schedule(start, end, duration) -> Callable[[jax.Array], jax.Array]:
    """start -> end linearly over ``duration`` (> 0) counts, then end (values may be
    traced; ``start + (end - start) * 1`` may differ from ``end`` in its last bit)."""
    _check_duration(duration)

    def schedule(count):
        fraction = jnp.clip(count / duration, 0.0, 1.0)
        return start + (end - start) * fraction

    return schedule


def exponential_schedule(start, end, duration) -> Callable[[jax.Array], jax.Array]:
    """start * (end / start) ** (count / duration): geometric decay reaching ``end``
    at ``duration`` (> 0) counts, then ``end`` (both must be positive)."""
    _check_duration(duration)

    def schedule(count):
        fraction = jnp.clip(count / duration, 0.0, 1.0)
        return start * (end / start) ** fraction

    return schedule


SCHEDULES = {
    "constant": lambda start, end, duration: constant_schedule(start),
    "linear": linear_schedule,
    "exponential": exponential_schedule,
}
