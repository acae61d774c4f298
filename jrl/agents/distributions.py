"""Action distributions of policies, as pure functions over a network's actor output.

:func:`action_distribution` picks one from a gymnax action space: ``Discrete(n)`` ->
a categorical over n logits; ``Box`` of shape [d] -> a diagonal Gaussian
N(mu, diag(sigma)^2) whose samples are clipped to the Box only when handed to the
environment (log-probabilities are those of the unclipped sample, as PureJaxRL's and
CleanRL's ``ppo_continuous_action.py``). PPO and REINFORCE read a policy only through
:class:`ActionDistribution`, so one code path serves both kinds of action.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def categorical_log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a | s) from logits float[..., A] and actions int[...]."""
    log_probs = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(log_probs, actions[..., None], axis=-1)[..., 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """H(pi(. | s)) = -sum_a pi(a) log pi(a), float[...]."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


_LOG_2PI = float(np.log(2.0 * np.pi))


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """log N(a; mu, diag(sigma)^2) of a diagonal Gaussian, float[...].

        log pi(a | s) = sum_i [ -(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i - log(2 pi) / 2 ]

    mean, log_std, actions: float[..., d] (log_std broadcasts against mean).
    """
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """H(N(mu, diag(sigma)^2)) = sum_i [ log sigma_i + (1 + log(2 pi)) / 2 ], float[...]
    from log_std float[..., d]."""
    return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)


class ActionDistribution(NamedTuple):
    """A policy's action distribution as pure functions of what the network's actor
    gives (``dist``: logits float[..., A] for a categorical, ``(mean, log_std)``
    float[..., d] each for a diagonal Gaussian).

    sample(key, dist) -> action, which is ``sample_from_noise(dist, noise(key, dist))``:
    ``noise`` reads only the shapes and dtypes of ``dist`` (a ``jax.eval_shape`` of it
    will do), so a rollout can draw every step's noise before it runs;
    log_prob(dist, action) -> float[...]; entropy(dist) -> float[...]; mode(dist) ->
    the most likely action (greedy play); to_env(action) -> the action handed to
    ``env.step`` (identity, or the clip of a Gaussian sample to the Box bounds).
    ``continuous`` says which kind it is.
    """

    sample: Callable
    noise: Callable
    sample_from_noise: Callable
    log_prob: Callable
    entropy: Callable
    mode: Callable
    to_env: Callable
    continuous: bool


def categorical() -> ActionDistribution:
    """Categorical over logits float[..., A]; actions int[...], sampled by the Gumbel-max
    trick, a = argmax_i (logits_i + g_i) with g_i ~ Gumbel(0, 1) (the draws
    ``jax.random.categorical(key, logits)`` makes)."""

    def noise(key, logits):
        return jax.random.gumbel(key, logits.shape, logits.dtype)

    def sample_from_noise(logits, gumbel):
        return jnp.argmax(logits + gumbel, axis=-1)

    return ActionDistribution(
        sample=lambda key, logits: sample_from_noise(logits, noise(key, logits)),
        noise=noise,
        sample_from_noise=sample_from_noise,
        log_prob=categorical_log_prob,
        entropy=categorical_entropy,
        mode=lambda logits: jnp.argmax(logits, axis=-1),
        to_env=lambda action: action,
        continuous=False,
    )


def diag_gaussian(low: Any, high: Any) -> ActionDistribution:
    """Diagonal Gaussian over (mean, log_std) float[..., d]; actions float[..., d],
    sampled as a = mu + sigma * eps, eps ~ N(0, I), unclipped, and clipped to
    [low, high] (scalars or float[d]) only by ``to_env``."""
    low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)  # may be traced

    def noise(key, dist):
        mean = dist[0]
        return jax.random.normal(key, mean.shape, mean.dtype)

    def sample_from_noise(dist, eps):
        mean, log_std = dist
        return mean + jnp.exp(log_std) * eps

    return ActionDistribution(
        sample=lambda key, dist: sample_from_noise(dist, noise(key, dist)),
        noise=noise,
        sample_from_noise=sample_from_noise,
        log_prob=lambda dist, action: gaussian_log_prob(dist[0], dist[1], action),
        entropy=lambda dist: gaussian_entropy(dist[1]),
        mode=lambda dist: dist[0],
        to_env=lambda action: jnp.clip(action, low, high),
        continuous=True,
    )


def action_distribution(action_space) -> tuple[ActionDistribution, int]:
    """(distribution, size) for a gymnax action space: ``Discrete(n)`` -> (categorical,
    n); ``Box`` of shape [d] -> (diagonal Gaussian clipped to its bounds, d)."""
    if hasattr(action_space, "n"):
        return categorical(), int(action_space.n)
    shape = getattr(action_space, "shape", None)
    if hasattr(action_space, "low") and shape is not None and len(shape) == 1:
        _warn_of_bounds_away_from_zero(action_space.low, action_space.high)
        return diag_gaussian(action_space.low, action_space.high), int(shape[0])
    raise ValueError(
        "PPO and REINFORCE need discrete actions or a Box of shape [d] (continuous "
        f"actions); got {action_space}"
    )


def _warn_of_bounds_away_from_zero(low, high) -> None:
    """A RuntimeWarning where a Box's bounds leave out 0 in some dimension: the policy
    starts at mean 0 with unit scale and its actions are clipped to the bounds, so
    there most first actions are the same bound, and little is learnt from them."""
    try:
        low, high = np.broadcast_arrays(np.asarray(low, float), np.asarray(high, float))
    except jax.errors.TracerArrayConversionError:  # bounds from traced env_params
        return
    outside = np.flatnonzero((low > 0) | (high < 0))
    if outside.size:
        dim = int(outside[0])
        warnings.warn(
            f"the action Box's bounds leave out 0 in dimension {dim} ([{low[dim]:g}, "
            f"{high[dim]:g}]): the Gaussian policy starts at mean 0 with unit scale and its "
            "actions are clipped to the bounds, so most first actions there are the same "
            "bound; rescale the environment's actions to around [-1, 1]",
            RuntimeWarning,
            stacklevel=3,
        )
