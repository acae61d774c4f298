"""The neural agents on gymnax environments beyond CartPole and Pendulum (which their
learning tests cover): Acrobot-v1 with the MLP, and the CNN on the (10, 10, C) grids of
the MinAtar games with the fewest and the most channels and actions (Breakout: 4 and
3; Seaquest: 10 and 6) — PPO and DQN on both, REINFORCE (whose network is PPO's) on
Breakout. A few updates each, two vmapped seeds: the run compiles for the environment's
observation and action shapes, its numbers are finite, learning moves the parameters,
and the logged returns are ones the environment can give. The other MinAtar games
(their shapes in between) are played by a random policy: a PPO run on one compiled in
25 s, the game's step 6 s of it."""

import jax
import numpy as np
import pytest

from jrl.agents import dqn, ppo, reinforce
from jrl.agents.evaluation import random_policy_returns
from jrl.envs import make
from jrl.sweep import run_sweep, stack_grid

pytestmark = pytest.mark.timeout(300)

MINATAR = [
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
]


def run(module, config, hparams, env_name):
    """(initial params, final state, metrics) of two seeds of ``module.make_train``."""
    env, params = make(env_name)
    agent = getattr(module, f"make_{module.__name__.rsplit('.', 1)[1]}")(config, env, params)
    keys = jax.random.split(jax.random.key(0), 2)
    # One compile of init (op by op it took twice as long: 5.8 against 2.9 s on Freeway).
    initial = jax.jit(jax.vmap(agent.init, in_axes=(0, None)))(keys, hparams).params
    state, metrics = run_sweep(agent.train, jax.random.key(0), stack_grid([hparams]), 2)
    return initial, jax.tree.map(lambda x: x[0], state), jax.tree.map(lambda x: x[0], metrics)


def assert_ran_and_learned(initial, state, metrics, losses, low, high):
    for name in losses:
        assert np.isfinite(np.asarray(getattr(metrics, name))).all(), name
    moved = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(initial), jax.tree.leaves(state.params), strict=True)
    ]
    assert any(moved)
    returns = np.asarray(metrics.episode_return)
    ended = returns[np.isfinite(returns)]
    assert ((ended >= low) & (ended <= high)).all(), ended


AGENTS_MINATAR = ["Breakout-MinAtar", "Seaquest-MinAtar"]
POLICY_GRADIENT = [
    *[(ppo, ppo.PPOConfig, ppo.PPOHParams, name) for name in ("Acrobot-v1", *AGENTS_MINATAR)],
    *[
        (reinforce, reinforce.ReinforceConfig, reinforce.ReinforceHParams, name)
        for name in ("Acrobot-v1", "Breakout-MinAtar")
    ],
]


@pytest.mark.parametrize(
    "module, config_class, hparams_class, env_name",
    POLICY_GRADIENT,
    ids=[f"{run[0].__name__.rsplit('.', 1)[1]}-{run[3]}" for run in POLICY_GRADIENT],
)
def test_ppo_and_reinforce_run_on_gymnax_envs(module, config_class, hparams_class, env_name):
    minatar = env_name in MINATAR
    updates = 3 if minatar else 8  # Acrobot: 512 steps per env, past its 500-step limit
    config = config_class(
        num_envs=4,
        num_steps=64,
        total_timesteps=4 * 64 * updates,
        network="cnn" if minatar else "mlp",
        hidden_sizes=(32,) if minatar else (64, 64),
        activation="relu" if minatar else "tanh",
    )
    initial, state, metrics = run(module, config, hparams_class(), env_name)
    assert np.asarray(metrics.timesteps).tolist() == [list(range(256, 256 * updates + 1, 256))] * 2
    # Acrobot: -1 a step up to its 500-step limit; MinAtar: non-negative points.
    low, high = (-500, 0) if not minatar else (0, 1e4)
    assert_ran_and_learned(initial, state, metrics, ("total_loss", "entropy"), low, high)
    if env_name == "Acrobot-v1":
        assert np.isfinite(np.asarray(metrics.episode_return)[:, -1]).all()  # ended by now


@pytest.mark.parametrize("env_name", ["Acrobot-v1", *AGENTS_MINATAR])
def test_dqn_runs_on_gymnax_envs(env_name):
    minatar = env_name in MINATAR
    config = dqn.DQNConfig(
        num_envs=4,
        total_timesteps=2000,
        buffer_size=1000,
        batch_size=32,
        learning_starts=400,
        train_frequency=4,
        target_update_frequency=200,
        log_frequency=400,
        network="cnn" if minatar else "mlp",
        hidden_sizes=(32,) if minatar else (64, 64),
    )
    initial, state, metrics = run(dqn, config, dqn.DQNHParams(), env_name)
    assert np.asarray(metrics.gradient_steps).sum(axis=-1).tolist() == [
        401,
        401,
    ]  # from step 400 on, every 4th
    low, high = (-500, 0) if not minatar else (0, 1e4)
    loss = np.asarray(metrics.loss)[:, 1:]  # the first chunk takes no gradient step
    assert np.isfinite(loss).all()
    assert_ran_and_learned(initial, state, metrics, ("q_value",), low, high)


@pytest.mark.parametrize(
    "env_name, channels, actions",
    [("Asterix-MinAtar", 4, 5), ("Freeway-MinAtar", 7, 3), ("SpaceInvaders-MinAtar", 6, 4)],
)
def test_the_other_minatar_games_give_their_grid_and_play(env_name, channels, actions):
    assert env_name in MINATAR and env_name not in AGENTS_MINATAR
    env, params = make(env_name)
    assert env.observation_space(params).shape == (10, 10, channels)
    assert env.action_space(params).n == actions
    observation, _ = jax.eval_shape(env.reset, jax.random.key(0), params)
    assert observation.shape == (10, 10, channels)
    keys = jax.random.split(jax.random.key(0), 2)
    returns = np.asarray(random_policy_returns(keys, env, params, 300))
    assert np.isfinite(returns).all() and (returns >= 0).all(), returns  # points, never lost
