"""Checks at the public entry points, each raised on the host before anything runs: an
agent's factory given another agent's config, hyperparameter values given to ``train``
(and ``init``/``update``) directly, None and mixed types in a grid, count fields past
int32, evaluation arguments, and run_sweep's key, flags and devices.

Cheap on purpose: every check fires before a training run compiles, so each test
builds an agent (or less) and no test trains one."""

import pytest

from jrl.agents import dqn, ppo, reinforce, tabular
from jrl.envs import make
from jrl.sweep import check_grid, stack_grid

pytestmark = pytest.mark.timeout(600)

PPO_CONFIG = ppo.PPOConfig(num_envs=2, num_steps=8, total_timesteps=32, num_minibatches=2)
REINFORCE_CONFIG = reinforce.ReinforceConfig(num_envs=2, num_steps=8, total_timesteps=32)
DQN_CONFIG = dqn.DQNConfig()
TABULAR_CONFIG = tabular.TabularConfig(num_episodes=3, max_steps=100)


@pytest.fixture(scope="module")
def cartpole():
    return make("CartPole-v1")


@pytest.fixture(scope="module")
def cliff():
    return make("CliffWalking-v0")


@pytest.mark.parametrize(
    "factory, expected, config",
    [
        (ppo.make_ppo, "PPOConfig", REINFORCE_CONFIG),
        (ppo.make_train, "PPOConfig", REINFORCE_CONFIG),
        (reinforce.make_reinforce, "ReinforceConfig", PPO_CONFIG),
        (reinforce.make_train, "ReinforceConfig", PPO_CONFIG),
        (dqn.make_dqn, "DQNConfig", PPO_CONFIG),
        (dqn.make_train, "DQNConfig", PPO_CONFIG),
        (tabular.make_tabular, "TabularConfig", PPO_CONFIG),
        (tabular.make_train, "TabularConfig", DQN_CONFIG),
    ],
)
def test_factories_refuse_another_agents_config(factory, expected, config, cartpole, cliff):
    """Another agent's config fails at the factory, naming the class it wants (it got
    as far as tracing before, with an AttributeError on the first field it lacks)."""
    env = cliff if expected == "TabularConfig" else cartpole
    got = type(config).__name__
    with pytest.raises(TypeError, match=f"config must be a {expected}, got {got}"):
        factory(config, *env)


def test_stack_grid_refuses_none_naming_the_field():
    """None is no number: ``jax.tree`` took it for an empty subtree, so stack_grid let it
    through and run_sweep failed in jnp.asarray (or in a comparison with None)."""
    with pytest.raises(ValueError, match=r"points\[1\]\.q_init must be a number, got None"):
        stack_grid([tabular.TabularHParams(), tabular.TabularHParams(q_init=None)])


def test_check_grid_refuses_none_naming_the_field():
    with pytest.raises(ValueError, match="gamma must be a number, got None"):
        check_grid(ppo.PPOHParams(gamma=None))


def test_stack_grid_refuses_points_of_two_types():
    with pytest.raises(TypeError, match=r"PPOHParams \(points\[0\]\) and DQNHParams"):
        stack_grid([ppo.PPOHParams(), ppo.PPOHParams(), dqn.DQNHParams()])


@pytest.mark.parametrize("name", ["num_episodes", "steps_per_iteration"])
def test_tabular_config_bounds_its_counts_by_int32(name):
    """Past int32 the config was accepted and tracing failed with a raw OverflowError."""
    tabular.TabularConfig(**{name: 2**31 - 1})
    with pytest.raises(ValueError, match=f"{name}=2147483648 is more than the int32"):
        tabular.TabularConfig(**{name: 2**31})
