"""REINFORCE with a baseline: returns-to-go by hand, config checks, CartPole learning.

The compiled run is a module-scoped fixture; tests that run a vmapped path have a
timeout (the jaxlib 0.10-0.11 CPU deadlock of REFERENCE.md is a silent hang).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.agents.ppo import gae
from jrl.agents.reinforce import (
    ReinforceConfig,
    ReinforceHParams,
    check_hparams,
    make_reinforce,
    make_train,
    returns_to_go,
)
from jrl.envs import make

# One env, T = 5, gamma = 0.5: step 1 is truncated (bootstrap from V(final_observation)
# = 8, then cut), step 2 terminates (V' = 6 must be ignored), step 4 ends the rollout
# mid-episode (bootstrap from V' = 2).
REWARDS = [1.0, 1.0, 1.0, 0.0, 2.0]
NEXT_VALUES = [4.0, 8.0, 6.0, 4.0, 2.0]
TERMINATED = [False, False, True, False, False]
DONE = [False, True, True, False, False]
# G4 = 2 + 0.5 * 2 = 3;  G3 = 0 + 0.5 * G4 = 1.5;  G2 = 1 + 0 (terminal) = 1;
# G1 = 1 + 0.5 * 8 (truncated) = 5;  G0 = 1 + 0.5 * G1 = 3.5
HAND_RETURNS = [3.5, 5.0, 1.0, 1.5, 3.0]


def _inputs(batch: int | None = None):
    arrays = [jnp.array(a) for a in (REWARDS, NEXT_VALUES, TERMINATED, DONE)]
    if batch is not None:
        arrays = [jnp.stack([a] * batch, axis=1) for a in arrays]
    return arrays


@pytest.mark.parametrize("jit", [False, True])
def test_returns_to_go_matches_hand_computed_example(jit):
    fn = jax.jit(returns_to_go) if jit else returns_to_go
    np.testing.assert_allclose(fn(*_inputs(), 0.5), HAND_RETURNS, rtol=1e-6)


def test_returns_to_go_batches_and_treats_termination_as_done():
    rewards, next_values, terminated, done = _inputs(batch=3)
    returns = returns_to_go(rewards, next_values, terminated, done, 0.5)
    np.testing.assert_allclose(returns, np.stack([HAND_RETURNS] * 3, 1), rtol=1e-6)
    cut_anyway = returns_to_go(rewards, next_values, terminated, done.at[2].set(False), 0.5)
    np.testing.assert_allclose(cut_anyway, returns, rtol=1e-6)


def test_returns_to_go_is_the_gae_target_with_lambda_one():
    # V(s_{t+1}) = V(s'_t) wherever the episode goes on (t = 0, 3), as in a real rollout.
    values = jnp.array([2.0, 4.0, 2.0, 2.0, 4.0])
    rewards, next_values, terminated, done = _inputs()
    _, targets = gae(rewards, values, next_values, terminated, done, 0.5, 1.0)
    np.testing.assert_allclose(targets, HAND_RETURNS, rtol=1e-6)


def test_returns_to_go_rejects_mismatched_shapes():
    rewards, next_values, terminated, done = _inputs()
    with pytest.raises(AssertionError):
        returns_to_go(rewards[:4], next_values, terminated, done, 0.5)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_steps": 1.5}, "num_steps"),
        ({"total_timesteps": 10}, "total_timesteps"),
        ({"total_timesteps": 2**31}, "total_timesteps"),
        ({"num_envs": 1, "num_steps": 1, "normalize_advantages": True}, "normalize_advantages"),
        ({"eval_every": 391}, "eval_every"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"activation": "gelu"}, "activation"),
        ({"anneal_lr": "False"}, "anneal_lr must be a bool"),
        ({"normalize_advantages": "no"}, "normalize_advantages must be a bool"),
    ],
)
def test_config_rejects_impossible_settings_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ReinforceConfig(**kwargs)


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("gamma", 1.5), ("vf_coef", -1.0)])
def test_check_hparams_rejects_impossible_values(field, value):
    check_hparams(ReinforceHParams())
    with pytest.raises(ValueError, match=field):
        check_hparams(ReinforceHParams()._replace(**{field: value}))


# ------------------------------------------------------------------- CartPole run

# 8 envs x 64 steps, one Adam step (lr 1e-3) per rollout, 1e5 steps = 195 updates.
# Measured (keys 0, 1 of split(key(0))): first 5 updates ~22 (random), last 10% of
# updates 286 and 379; at 5e4 steps 163 and 136.
CARTPOLE_STEPS = 100_000
NUM_SEEDS = 2
RANDOM_RETURN = 22.0  # a uniform random policy on CartPole-v1


@pytest.fixture(scope="module")
def cartpole():
    env, params = make("CartPole-v1")
    config = ReinforceConfig(num_envs=8, num_steps=64, total_timesteps=CARTPOLE_STEPS)
    agent = make_reinforce(config, env, params)
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    run = jax.jit(jax.vmap(agent.train, in_axes=(0, None)))
    state, metrics = jax.block_until_ready(run(keys, ReinforceHParams()))
    return config, state, metrics


@pytest.mark.timeout(300)
def test_reinforce_learns_cartpole_over_vmapped_seeds(cartpole):
    config, _, metrics = cartpole
    returns = np.asarray(metrics.episode_return)
    assert returns.shape == (NUM_SEEDS, config.num_updates)
    assert np.nanmean(returns[:, :5]) < 1.5 * RANDOM_RETURN  # it starts near random
    late = np.nanmean(returns[:, -config.num_updates // 10 :], axis=1)
    assert late.mean() > 4 * RANDOM_RETURN, late  # measured ~330


@pytest.mark.timeout(300)
def test_one_gradient_step_per_rollout_and_finite_metrics(cartpole):
    config, state, metrics = cartpole
    adam_state = state.opt_state[1][0]
    np.testing.assert_array_equal(adam_state.count, [config.num_updates] * NUM_SEEDS)
    np.testing.assert_array_equal(
        metrics.timesteps[0], config.batch_size * np.arange(1, config.num_updates + 1)
    )
    for name in ("total_loss", "actor_loss", "value_loss", "entropy"):
        assert np.all(np.isfinite(np.asarray(getattr(metrics, name)))), name
    assert not np.array_equal(metrics.actor_loss[0], metrics.actor_loss[1])


def test_make_train_runs_on_continuous_actions():
    env, params = make("Pendulum-v1")
    config = ReinforceConfig(num_envs=2, num_steps=8, total_timesteps=32)
    state, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0), ReinforceHParams())
    assert metrics.total_loss.shape == (2,)
    assert np.all(np.isfinite(np.asarray(metrics.total_loss)))
    assert state.params["params"]["log_std"].shape == (1,)
