"""REINFORCE with a learned baseline, as pure functions: the smallest policy gradient.

Williams (1992), "Simple statistical gradient-following algorithms for connectionist
reinforcement learning"; Sutton & Barto (2nd ed.) section 13.4, "REINFORCE with
Baseline". It shares PPO's pieces (``jrl.agents.ppo``): the networks, the action
distribution chosen from the env's action space (categorical or diagonal Gaussian),
the rollout, the runner state and the optimiser. Per update: collect T = num_steps
transitions in each of N = num_envs environments with the current policy, compute the
returns-to-go G_t (:func:`returns_to_go`), and take **one** gradient step on the whole
N*T batch:

    L = -mean( log pi(a_t | s_t) * sg(G_t - V(s_t)) )            (policy gradient)
        + vf_coef * 0.5 mean( (V(s_t) - G_t)^2 )                 (the baseline's regression)
        - ent_coef * mean( entropy(pi(. | s_t)) )

(sg = stop-gradient), without the textbook's gamma^t factor (as deep-RL code usually
drops it). Subtracting V(s_t) lowers the variance and adds no bias; V also appears
inside G_t wherever the data ends before the episode does (below: truncations and the
rollout's end), and there it does bias the estimate — with short rollouts on long
episodes this is an actor-critic with lambda = 1 more than Monte-Carlo REINFORCE.
With ``normalize_advantages`` the factor
G_t - V(s_t) is standardised over the batch (not part of the textbook algorithm; off by
default).

Episode boundaries are PPO's: a termination bootstraps from zero, a truncation from
V(final_observation), and a rollout that ends mid-episode from V of its last next
state, so G_t is a Monte-Carlo return inside the rollout, cut where the data ends.

``make_train(config, env, env_params)`` returns ``train(key, hparams) -> (PPOState,
ReinforceMetrics)`` (one metrics row per update; ``eval_return`` every ``eval_every``
updates and after the last, as PPO's), to ``jit`` and ``vmap`` over seeds and
the traced :class:`ReinforceHParams` (``jrl.sweep.run_sweep``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jrl.agents.checks import (
    check_bools,
    check_config_type,
    check_hparams_type,
    check_positive_int,
    env_params_or_default,
    float32_hparams,
    python_scalars,
)
from jrl.agents.distributions import ActionDistribution
from jrl.agents.evaluation import (
    check_eval_every,
    check_eval_fields,
    check_eval_steps,
    make_evaluate,
    scan_run,
    with_periodic_evaluation,
)
from jrl.agents.ppo import (
    PPOState,
    adam_with_schedule,
    check_env,
    check_network_fields,
    check_total_timesteps,
    greedy_policy,
    init_state,
    make_network,
)
from jrl.agents.rollout import make_rollout


class ReinforceHParams(NamedTuple):
    """Sweepable hyperparameters (traced scalars). lr: Adam step size (at the start
    when annealed). gamma: discount. ent_coef, vf_coef: entropy bonus and baseline
    loss weights. max_grad_norm: global gradient-norm clip."""

    lr: Any = 1e-3
    gamma: Any = 0.99
    ent_coef: Any = 0.01
    vf_coef: Any = 0.5
    max_grad_norm: Any = 0.5


@dataclass(frozen=True)
class ReinforceConfig:
    """Static settings. One update collects ``num_envs * num_steps`` transitions and
    takes one gradient step on them; the run makes ``total_timesteps // batch_size``
    updates. ``network``, ``hidden_sizes``, ``activation`` and the evaluation inside the
    run (``eval_every``, ``eval_episodes``, ``eval_max_steps``, ``eval_seed``) as in
    ``PPOConfig``. ``anneal_lr``: the rate falls linearly to 0 over the run."""

    num_envs: int = 8
    num_steps: int = 64
    total_timesteps: int = 200_000
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    network: str = "mlp"
    anneal_lr: bool = False
    normalize_advantages: bool = False
    eval_every: int = 0
    eval_episodes: int = 10
    eval_max_steps: int = 0
    eval_seed: int = 12345

    def __post_init__(self):
        python_scalars(self)
        for name in ("num_envs", "num_steps", "total_timesteps"):
            check_positive_int(name, getattr(self, name))
        check_network_fields(self.network, self.activation, self.hidden_sizes)
        check_bools(self, ("anneal_lr", "normalize_advantages"))
        check_eval_fields(self)
        check_total_timesteps(self.total_timesteps, self.batch_size)
        if self.normalize_advantages and self.batch_size < 2:
            raise ValueError(
                "normalize_advantages needs a batch of 2 or more (num_envs * num_steps = 1): "
                "one advantage standardised is 0"
            )
        check_eval_every(self.eval_every, self.num_updates, "updates")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size


def check_hparams(hparams: ReinforceHParams) -> None:
    """Reject impossible hyperparameters on the host, before anything compiles."""
    check_hparams_type(ReinforceHParams, hparams)
    values = {name: np.asarray(value) for name, value in hparams._asdict().items()}
    for name in ("lr", "max_grad_norm"):
        if np.any(values[name] <= 0):
            raise ValueError(f"{name} must be > 0, got {values[name]}")
    if np.any(values["gamma"] < 0) or np.any(values["gamma"] > 1):
        raise ValueError(f"gamma must be in [0, 1], got {values['gamma']}")
    for name in ("ent_coef", "vf_coef"):
        if np.any(values[name] < 0):
            raise ValueError(f"{name} must be >= 0, got {values[name]}")


def returns_to_go(rewards, next_values, terminated, done, gamma):
    """Discounted returns-to-go G_t of a rollout, time-major ([T, ...] arrays).

    Step t goes from s_t to s'_t (the true next state, ``final_observation``):

        G_t = r_t + gamma * b_t,   b_t = 0            if terminated_t
                                   b_t = V(s'_t)      if done_t (truncated) or t = T - 1
                                   b_t = G_{t+1}      otherwise

    This is GAE's target R_t with lambda = 1 (:func:`jrl.agents.ppo.gae`) written as a
    Monte-Carlo return.

    Args:
      rewards: float[T, ...], r_t.
      next_values: float[T, ...], V(s'_t).
      terminated: bool[T, ...], s'_t is terminal.
      done: bool[T, ...], the episode ended after step t (terminated or truncated).
      gamma: scalar (may be traced).
    Returns:
      float[T, ...], G_t.
    """
    chex.assert_equal_shape([rewards, next_values, terminated, done])
    terminated = jnp.asarray(terminated, bool)
    cut = jnp.logical_or(done, terminated)

    def backward(next_return, step):
        reward, next_value, term, cut_here = step
        bootstrap = jnp.where(term, 0.0, jnp.where(cut_here, next_value, next_return))
        ret = reward + gamma * bootstrap
        return ret, ret

    _, returns = jax.lax.scan(
        backward,
        jnp.asarray(next_values[-1], jnp.float32),
        (jnp.asarray(rewards, jnp.float32), next_values, terminated, cut),
        reverse=True,
    )
    return returns


class ReinforceMetrics(NamedTuple):
    """One entry per update (arrays [num_updates] out of ``train``): as
    :class:`~jrl.agents.ppo.PPOMetrics`, for the update's single gradient step."""

    timesteps: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    num_episodes: jax.Array
    total_loss: jax.Array
    actor_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    learning_rate: jax.Array
    eval_return: jax.Array


class Reinforce(NamedTuple):
    """The pure functions of one configured REINFORCE (what ``make_reinforce`` returns):
    network, init(key, hparams) -> PPOState, update(state, hparams) -> (PPOState,
    ReinforceMetrics), distribution, update_at and evaluate as
    :class:`~jrl.agents.ppo.PPO`'s,
    train(key, hparams) -> (PPOState, ReinforceMetrics[U]). num_updates: U,
    the ``update_at`` calls of a whole run."""

    network: nn.Module
    init: Callable
    update: Callable
    train: Callable
    distribution: ActionDistribution
    update_at: Callable
    evaluate: Callable
    num_updates: int


def make_optimizer(config: ReinforceConfig, hparams: ReinforceHParams):
    """(optimizer, schedule): global-norm clip then Adam, one step per update."""
    return adam_with_schedule(
        hparams.lr, hparams.max_grad_norm, 1, config.num_updates, config.anneal_lr
    )


def make_reinforce(config: ReinforceConfig, env, env_params) -> Reinforce:
    """Build REINFORCE with a baseline on ``env`` (gymnax API, discrete or Box actions)."""
    check_config_type(ReinforceConfig, config)
    env_params = env_params_or_default(env, env_params)
    distribution, num_actions, obs_shape = check_env(config, env, env_params)
    network = make_network(config, num_actions, distribution.continuous, len(obs_shape))
    rollout_fn = make_rollout(network, distribution, env, env_params, config.num_steps)
    check_eval_steps(config, env_params)
    evaluate = make_evaluate(
        config, env, env_params, lambda params: greedy_policy(network, distribution, params)
    )

    def cast(hparams: ReinforceHParams) -> ReinforceHParams:
        return float32_hparams(ReinforceHParams, hparams)

    def init(key: jax.Array, hparams: ReinforceHParams) -> PPOState:
        optimizer, _ = make_optimizer(config, cast(hparams))
        return init_state(key, network, optimizer, env, env_params, config.num_envs, obs_shape)

    def loss_fn(params, obs, actions, returns, hparams: ReinforceHParams):
        dist, value = network.apply(params, obs)
        log_prob = distribution.log_prob(dist, actions)
        advantage = jax.lax.stop_gradient(returns - value)
        if config.normalize_advantages:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        actor_loss = -(log_prob * advantage).mean()
        value_loss = 0.5 * jnp.square(value - returns).mean()
        entropy = distribution.entropy(dist).mean()
        total = actor_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
        return total, {
            "total_loss": total,
            "actor_loss": actor_loss,
            "value_loss": value_loss,
            "entropy": entropy,
        }

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def update(state: PPOState, hparams: ReinforceHParams):
        hparams = cast(hparams)
        optimizer, schedule = make_optimizer(config, hparams)
        key = jax.random.fold_in(state.key, state.update)
        out = rollout_fn(
            key,
            state.params,
            state.env_state,
            state.obs,
            state.episode_return,
            state.episode_length,
        )
        tr = out.transitions
        returns = returns_to_go(tr.reward, out.next_values, tr.terminated, tr.done, hparams.gamma)
        flat = jax.tree.map(
            lambda x: x.reshape(config.batch_size, *x.shape[2:]), (tr.obs, tr.action, returns)
        )
        grads, diagnostics = grad_fn(state.params, *flat, hparams)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        episode_return, episode_length = out.stats.means()
        metrics = ReinforceMetrics(
            timesteps=(state.update + 1) * config.batch_size,
            episode_return=episode_return,
            episode_length=episode_length,
            num_episodes=out.stats.count,
            learning_rate=jnp.asarray(schedule(state.update), jnp.float32),
            eval_return=jnp.float32(jnp.nan),
            **diagnostics,
        )
        new_state = PPOState(
            params=params,
            opt_state=opt_state,
            env_state=out.env_state,
            obs=out.obs,
            episode_return=out.episode_return,
            episode_length=out.episode_length,
            update=state.update + 1,
            key=state.key,
        )
        return new_state, metrics

    update_at = with_periodic_evaluation(update, evaluate, config.eval_every, config.num_updates)

    train = scan_run(init, update_at, config.num_updates)

    return Reinforce(
        network=network,
        init=init,
        update=update,
        train=train,
        distribution=distribution,
        update_at=update_at,
        evaluate=evaluate,
        num_updates=config.num_updates,
    )


def make_train(config: ReinforceConfig, env, env_params) -> Callable:
    """``train(key, hparams) -> (PPOState, ReinforceMetrics)``: a whole REINFORCE run.
    Concrete hyperparameters are checked as ``jrl.sweep.run_sweep`` checks a grid; traced
    ones cannot be (:func:`~jrl.agents.checks.float32_hparams`).
    """
    return make_reinforce(config, env, env_params).train
