"""A time-out is not a termination, in each deep agent as a whole: on CartPole cut
after every step (reward 1, never terminated), values bootstrapped from the value of
``info["final_observation"]`` reach 1 / (1 - gamma) = 2 at gamma 0.5. An agent that
took the time-out as a termination (``done`` where ``terminated`` belongs) would learn
1. (Bootstrapping from the reset state's value instead would not show here: on CartPole
it is about the final state's. That ``final_observation`` is the state bootstrapped
from is checked in tests/test_rollout.py, and for DQN's replay in tests/test_dqn.py.)"""

import jax
import numpy as np
import pytest

from jrl.agents import dqn, ppo, reinforce
from jrl.envs import make

STEPS = 8 * 16 * 60


def ppo_values(env, params):
    config = ppo.PPOConfig(num_envs=8, num_steps=16, total_timesteps=STEPS, num_minibatches=2)
    agent = ppo.make_ppo(config, env, params)
    hparams = ppo.PPOHParams(gamma=0.5, lr=3e-3)
    return agent, hparams, lambda out: out[1]  # (dist, value)


def reinforce_values(env, params):
    config = reinforce.ReinforceConfig(num_envs=8, num_steps=16, total_timesteps=STEPS)
    agent = reinforce.make_reinforce(config, env, params)
    hparams = reinforce.ReinforceHParams(gamma=0.5, lr=3e-3)
    return agent, hparams, lambda out: out[1]  # (dist, value)


def dqn_values(env, params):
    config = dqn.DQNConfig(
        num_envs=4,
        total_timesteps=6_000,
        buffer_size=2_000,
        batch_size=64,
        learning_starts=200,
        train_frequency=4,
        target_update_frequency=100,
        log_frequency=1_000,
        hidden_sizes=(32, 32),
    )
    agent = dqn.make_dqn(config, env, params)
    return agent, dqn.DQNHParams(gamma=0.5, lr=1e-3), lambda q: q


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "setup, low, high",
    # DQN's Q sits a little above 2 at this budget (its max over actions overestimates).
    [(ppo_values, 1.75, 2.25), (reinforce_values, 1.75, 2.25), (dqn_values, 1.6, 2.6)],
)
def test_a_time_out_bootstraps_from_the_value_of_the_final_observation(setup, low, high):
    env, params = make("CartPole-v1", max_steps_in_episode=1)
    agent, hparams, read_values = setup(env, params)
    state, metrics = jax.jit(agent.train)(jax.random.key(0), hparams)
    assert np.all(np.asarray(metrics.episode_length) == 1)
    keys = jax.random.split(jax.random.key(1), 64)
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    values = np.asarray(read_values(agent.network.apply(state.params, obs)))
    assert low < values.mean() < high, values.mean()
