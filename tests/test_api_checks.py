"""Checks at the public entry points, each raised on the host before anything runs: an
agent's factory given another agent's config, hyperparameter values given to ``train``
(and ``init``/``update``) directly, None and mixed types in a grid, count fields past
int32, evaluation arguments, and run_sweep's key, flags and devices.

Cheap on purpose: every check fires before a training run compiles, so each test
builds an agent (or less) and no test trains one."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from flax.core import FrozenDict
from gymnax.environments import environment, spaces
from gymnax.wrappers.purerl import LogWrapper

from jrl.agents import dqn, ppo, reinforce, tabular
from jrl.agents.distributions import action_distribution
from jrl.agents.evaluation import random_policy_returns, run_episode
from jrl.envs import make
from jrl.sweep import check_grid, product_grid, run_sweep, stack_grid

pytestmark = pytest.mark.timeout(600)

PPO_CONFIG = ppo.PPOConfig(num_envs=2, num_steps=8, total_timesteps=32, num_minibatches=2)
REINFORCE_CONFIG = reinforce.ReinforceConfig(num_envs=2, num_steps=8, total_timesteps=32)
DQN_CONFIG = dqn.DQNConfig(  # a hard target copy: tau unread
    num_envs=4,
    total_timesteps=2_000,
    buffer_size=500,
    batch_size=32,
    learning_starts=200,
    train_frequency=4,
    target_update_frequency=100,
    log_frequency=500,
    hidden_sizes=(32, 32),
)
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


@pytest.fixture(scope="module")
def windy():
    return make("WindyGridworld-v0")


@pytest.mark.parametrize("shape", [(48, 4), (70, 6), (70,), (4, 70)])
def test_greedy_episode_refuses_a_q_table_of_another_shape(shape, windy):
    """A table of CliffWalking's 48 states read Windy's states 48..69 as its last row
    (JAX clamps the index), and a sixth action went to an env with four."""
    with pytest.raises(ValueError, match=r"shaped \(num_states, num_actions\) = \(70, 4\)"):
        tabular.greedy_episode(jax.random.key(0), *windy, np.zeros(shape, np.float32), 50)


@pytest.mark.parametrize("max_steps", [0, -3, 2**31, 10.0, True, "100"])
def test_evaluation_episodes_refuse_a_max_steps_that_is_no_steps_count(max_steps, windy):
    """0 or less played no step and reported an episode of return 0; past int32 the loop
    failed while tracing with a raw OverflowError."""
    env, params = windy
    act = lambda key, obs: jnp.int32(0)  # noqa: E731
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="max_steps"):
        run_episode(key, env, params, act, max_steps)
    with pytest.raises(ValueError, match="max_steps"):
        random_policy_returns(jax.random.split(key, 2), env, params, max_steps)
    with pytest.raises(ValueError, match="max_steps"):
        tabular.greedy_episode(key, env, params, np.zeros((70, 4), np.float32), max_steps)


@pytest.mark.parametrize(
    "keys",
    [
        jax.random.split(jax.random.key(0), 0),  # no episode: a mean of NaN
        jax.random.key(0),  # one key, not a batch of them
        jax.random.PRNGKey(0),  # its raw (2,) words would be read as two keys
        3,
    ],
    ids=["no keys", "one typed key", "one raw key", "int"],
)
def test_random_policy_returns_needs_a_batch_of_keys(keys, windy):
    with pytest.raises(ValueError, match="keys must be N >= 1 PRNG keys"):
        random_policy_returns(keys, *windy, 10)


@pytest.fixture(scope="module")
def tabular_sweep(cliff):
    """(train, grid) of a tabular run small enough that a check the sweep misses costs
    little; with the checks, nothing compiles."""
    train = tabular.make_train(TABULAR_CONFIG, *cliff)
    return train, product_grid(tabular.TabularHParams(), alpha=[0.1, 0.5])


@pytest.mark.parametrize(
    "key",
    [
        0,
        jax.random.split(jax.random.key(0), 4),
        jax.random.split(jax.random.PRNGKey(0), 4),
        np.zeros(2, np.float32),
    ],
    ids=["int seed", "typed keys", "raw keys", "float words"],
)
def test_run_sweep_needs_one_key(key, tabular_sweep):
    """jax.random's own errors advised jax.vmap ("split accepts a single key") or spoke
    of key data; run_sweep splits its one key into num_seeds keys itself."""
    train, grid = tabular_sweep
    with pytest.raises(ValueError, match=r"key must be one PRNG key \(jax.random.key\(seed\)\)"):
        run_sweep(train, key, grid, num_seeds=4)


@pytest.mark.parametrize("flag", ["jit", "sequential"])
@pytest.mark.parametrize("value", ["False", 0, None])
def test_run_sweep_flags_must_be_bools(flag, value, tabular_sweep):
    """sequential="False" is a non-empty string: it ran the sweep in sequence."""
    train, grid = tabular_sweep
    with pytest.raises(ValueError, match=f"{flag} must be a bool"):
        run_sweep(train, jax.random.key(0), grid, 1, **{flag: value})


@pytest.mark.parametrize(
    "devices, match",
    [
        (["cpu"], r"devices\[0\] must be a jax.Device"),
        ([0], r"devices\[0\] must be a jax.Device"),
        (lambda: [jax.devices()[0], "cpu"], r"devices\[1\] must be a jax.Device"),
        (lambda: jax.devices()[0], "devices= takes a list of jax.Device"),
        (lambda: jax.devices()[:1] * 2, r"devices\[1\] is .*, which devices\[0\] is too"),
    ],
    ids=["platform name", "index", "second entry", "one device", "a device twice"],
)
def test_run_sweep_devices_must_be_devices(devices, match, tabular_sweep):
    """Such entries failed inside jax.device_put, or were read as a sequence; a device
    given twice failed after the whole compile, in JAX's sharding code."""
    train, grid = tabular_sweep
    devices = devices() if callable(devices) else devices
    with pytest.raises(ValueError, match=match):
        run_sweep(train, jax.random.key(0), grid, 1, devices=devices)


AGENTS = {  # name: (factory, config, the env's fixture)
    "ppo": (ppo.make_ppo, PPO_CONFIG, "cartpole"),
    "reinforce": (reinforce.make_reinforce, REINFORCE_CONFIG, "cartpole"),
    "dqn": (dqn.make_dqn, DQN_CONFIG, "cartpole"),
    "tabular": (tabular.make_tabular, TABULAR_CONFIG, "cliff"),
    "tabular, two algorithms": (
        tabular.make_tabular,
        tabular.TabularConfig(algorithm=("sarsa", "q_learning"), num_episodes=3, max_steps=100),
        "cliff",
    ),
}
BAD_HPARAMS = [  # (agent, hyperparameters run_sweep refuses, its message)
    pytest.param("ppo", ppo.PPOHParams(gamma=1.5), r"gamma must be in \[0, 1\]", id="ppo gamma"),
    pytest.param("ppo", ppo.PPOHParams(lr=-1.0), "lr must be > 0", id="ppo lr"),
    pytest.param("ppo", ppo.PPOHParams(lr=float("nan")), "lr must be a finite", id="ppo nan"),
    pytest.param("ppo", ppo.PPOHParams(lr=1e-50), "float32's smallest normal", id="ppo 1e-50"),
    pytest.param(
        "reinforce", reinforce.ReinforceHParams(lr=-1.0), "lr must be > 0", id="reinforce"
    ),
    # Only the check that knows the config refuses it.
    pytest.param("dqn", dqn.DQNHParams(tau=0.5), "target_update='hard' .* ignores", id="dqn tau"),
    pytest.param(
        "tabular, two algorithms",
        tabular.TabularHParams(algorithm=7.0),
        "indexes config.algorithm",
        id="tabular index",
    ),
    pytest.param("tabular", tabular.TabularHParams(alpha=-0.5), "alpha must be in", id="alpha"),
    pytest.param("tabular", tabular.TabularHParams(epsilon=3.0), "epsilon must be", id="epsilon"),
]


def _build(name, request):
    factory, config, env = AGENTS[name]
    return factory(config, *request.getfixturevalue(env))


@pytest.mark.parametrize("agent, hparams, match", BAD_HPARAMS)
def test_train_called_directly_checks_concrete_hparams_as_run_sweep_does(
    agent, hparams, match, request
):
    """train(key, hparams) with concrete values, eager or jitted over hyperparameters it
    closes over, refuses what run_sweep refuses, with its message: before, it trained
    (lr=-1 ascended the loss, a tabular index 7 ran the last algorithm)."""
    train = _build(agent, request).train
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=match):
        run_sweep(train, key, stack_grid([hparams]), 1)
    with pytest.raises(ValueError, match=match) as on_one_point:
        check_grid(hparams, getattr(train, "check_hparams", None))  # run_sweep's check
    with pytest.raises(ValueError, match=match) as eager:
        train(key, hparams)
    assert str(eager.value) == str(on_one_point.value)
    with pytest.raises(ValueError, match=match):
        jax.jit(lambda key: train(key, hparams))(key)


@pytest.mark.parametrize("agent, hparams, match", BAD_HPARAMS)
def test_init_and_update_called_directly_check_concrete_hparams(agent, hparams, match, request):
    agent = _build(agent, request)
    with pytest.raises(ValueError, match=match):
        agent.init(jax.random.key(0), hparams)
    state = agent.init(jax.random.key(0), type(hparams)())
    with pytest.raises(ValueError, match=match):
        agent.update(state, hparams)


@struct.dataclass
class ChainState(environment.EnvState):
    position: jax.Array
    time: int


class Chain(environment.Environment):
    """A researcher's own gymnax environment: a chain of 5 states, right (action 1) ends
    it at the last with +1. ``reward_shape``, ``declared``: the reward's shape and the
    observation size its space declares (one-hot observations are of 5), to get them
    wrong; ``box_actions``: a Box action space (its sign picks the move)."""

    def __init__(self, onehot=True, reward_shape=(), declared=5, box_actions=False):
        self.onehot, self.reward_shape = onehot, reward_shape
        self.declared, self.box_actions = declared, box_actions

    @property
    def default_params(self):
        return environment.EnvParams(max_steps_in_episode=20)

    def observe(self, position):
        return jax.nn.one_hot(position, 5) if self.onehot else position

    def step_env(self, key, state, action, params):
        move = jnp.where(jnp.sum(action) > 0, 1, -1) if self.box_actions else 2 * action - 1
        position = jnp.clip(state.position + move, 0, 4)
        reward = jnp.broadcast_to(jnp.where(position == 4, 1.0, 0.0), self.reward_shape)
        state = ChainState(position=position, time=state.time + 1)
        return self.observe(position), state, reward, position == 4, {}

    def reset_env(self, key, params):
        return self.observe(jnp.int32(0)), ChainState(position=jnp.int32(0), time=0)

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (1,)) if self.box_actions else spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.declared,)) if self.onehot else spaces.Discrete(5)


MAKE_TRAIN = {  # make_train, config, hparams
    "ppo": (ppo.make_train, PPO_CONFIG, ppo.PPOHParams()),
    "reinforce": (reinforce.make_train, REINFORCE_CONFIG, reinforce.ReinforceHParams()),
    "dqn": (dqn.make_train, DQN_CONFIG, dqn.DQNHParams()),
}


@pytest.mark.parametrize("agent", MAKE_TRAIN)
def test_an_environment_whose_outputs_differ_from_its_spaces_is_refused(agent):
    """A reward of shape (1,) (a Box(1) action's error left unsummed) failed deep in the
    rollout's scan (carry types); an observation of another size than the space
    declares, inside flax. Both are named before anything is traced for training."""
    make_train, config, _ = MAKE_TRAIN[agent]
    with pytest.raises(ValueError, match=r"Chain's step returns a reward of shape \(1,\); it"):
        make_train(config, Chain(reward_shape=(1,)), None)
    said = r"Chain's reset returns observations of shape \(5,\), but its observation_space "
    with pytest.raises(ValueError, match=said + r"declares \(3,\)"):
        make_train(config, Chain(declared=3), None)


def test_tabular_refuses_box_actions_and_a_vector_reward():
    said = "table with the observation; BrokenChain observes float32: return a state index"
    with pytest.raises(ValueError, match=said):
        tabular.make_train(TABULAR_CONFIG, BrokenChain(obs=jnp.float32), None)
    with pytest.raises(ValueError, match="tabular agents need discrete actions; Chain has Box"):
        tabular.make_train(TABULAR_CONFIG, Chain(onehot=False, box_actions=True), None)
    with pytest.raises(ValueError, match=r"Chain's step returns a reward of shape \(1,\)"):
        tabular.make_train(TABULAR_CONFIG, Chain(onehot=False, reward_shape=(1,)), None)


class BrokenChain(Chain):
    """Chain breaking one rule of gymnax 1.0's contract: ``flag`` the dtype of its
    terminated flag, ``obs`` that of its observations, ``step_obs`` that of step_env's,
    ``step_returns`` "five" (an older gymnax's step) or "no_final" (its own step without
    info["final_observation"])."""

    def __init__(self, flag=jnp.bool_, step_obs=None, step_returns=None, obs=None, **kwargs):
        super().__init__(onehot=kwargs.pop("onehot", False), **kwargs)
        self.flag, self.step_obs, self.step_returns = flag, step_obs, step_returns
        self.obs = obs

    def observe(self, position):
        obs = super().observe(position)
        return obs if self.obs is None else obs.astype(self.obs)

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        obs = obs if self.step_obs is None else obs.astype(self.step_obs)
        return obs, state, reward, terminated.astype(self.flag), info

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        if self.step_returns is None:
            return super().step(key, state, action, params)
        obs, state, reward, terminated, info = self.step_env(key, state, action, params)
        if self.step_returns == "five":
            return obs, state, reward, terminated, info
        return obs, state, reward, terminated, jnp.bool_(False), info


class FarBoxChain(Chain):
    """Chain with Box actions in [100, 200] (0 outside them)."""

    def __init__(self):
        super().__init__(box_actions=True)

    def action_space(self, params=None):
        return spaces.Box(jnp.array([-1.0, 100.0]), jnp.array([1.0, 200.0]), (2,))


@pytest.mark.parametrize("agent", ["ppo", "reinforce"])
def test_a_box_whose_bounds_leave_out_zero_is_warned_of(agent):
    """Continuous PPO starts at mean 0 and clips to the bounds: on [100, 200] every
    first action was 100 and the run learnt nothing, silently."""
    import warnings

    make_train, config, _ = MAKE_TRAIN[agent]
    with pytest.warns(RuntimeWarning, match=r"leave out 0 in dimension 1 \(\[100, 200\]\)"):
        make_train(config, FarBoxChain(), None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_train(config, Chain(box_actions=True), None)  # [-1, 1]: nothing said
        for low, high in ((0.0, 1.0), (-1.0, 0.0)):  # 0 a bound: inside, nothing said
            action_distribution(spaces.Box(low, high, (2,)))


ALL_MAKE_TRAIN = {**MAKE_TRAIN, "tabular": (tabular.make_train, TABULAR_CONFIG, None)}


@pytest.mark.parametrize("agent", ALL_MAKE_TRAIN)
def test_an_environment_breaking_gymnax_1_0s_step_contract_is_refused_by_name(agent):
    """A researcher's environment with an int or float terminated flag trained with PPO
    but failed inside DQN's replay buffer, tabular's update or the evaluation's loop;
    one whose reset and step_env return other dtypes, an older gymnax's five-value step,
    or its own step without info["final_observation"] failed while tracing, with JAX's
    or Python's own errors. Each is named before anything is traced for training."""
    make_train, config, _ = ALL_MAKE_TRAIN[agent]
    onehot = agent != "tabular"
    for flag in (jnp.int32, jnp.float32):
        with pytest.raises(ValueError, match=f"BrokenChain's step returns terminated of dtype "
                           f"{jnp.dtype(flag)}; it must be a bool"):  # fmt: skip
            make_train(config, BrokenChain(flag=flag, onehot=onehot), None)
    other = jnp.int32 if onehot else jnp.float32
    said = "BrokenChain's reset_env and step_env return observations of other dtypes"
    with pytest.raises(ValueError, match=said):
        make_train(config, BrokenChain(step_obs=other, onehot=onehot), None)
    with pytest.raises(ValueError, match="BrokenChain's step returns 5 values; jrl takes gymnax"):
        make_train(config, BrokenChain(step_returns="five", onehot=onehot), None)
    with pytest.raises(ValueError, match=r"step returns no info\['final_observation'\]"):
        make_train(config, BrokenChain(step_returns="no_final", onehot=onehot), None)
    make_train(config, BrokenChain(onehot=onehot), None)  # the same rules kept: taken
    # Wrapped (gymnax's wrappers pass step_env their own state): JAX's own error, not
    # an AttributeError of looking for the cause.
    with pytest.raises(TypeError, match="lax.select requires arguments to have the same"):
        make_train(config, LogWrapper(BrokenChain(step_obs=other, onehot=onehot)), None)


class OffContractChain(Chain):
    """Chain whose step (gymnax 1.0's, then changed) breaks one rule: ``final`` an
    info["final_observation"] of 3 entries or of float16, ``truncated`` its flag as
    int32 or of shape (1,), ``time`` step_env's state with a float32 time."""

    def __init__(self, final=None, truncated=None, time=None):
        super().__init__()
        self.final, self.truncated, self.time = final, truncated, time

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        if self.time is not None:
            state = state.replace(time=jnp.asarray(state.time, self.time))
        return obs, state, reward, terminated, info

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        final = info["final_observation"]
        if self.final == "short":
            final = final[:3]
        elif self.final == "float16":
            final = final.astype(jnp.float16)
        if self.truncated == "int32":
            truncated = truncated.astype(jnp.int32)
        elif self.truncated == "shaped":
            truncated = truncated[None]
        info = {**info, "final_observation": final}
        return obs, state, reward, terminated, truncated, info


@pytest.mark.parametrize(
    "broken, said",
    [
        ({"final": "short"}, r"final_observation'\] returns observations of shape \(3,\)"),
        ({"final": "float16"}, "observations differ in dtype"),
        ({"truncated": "int32"}, "truncated of dtype int32; it must be a bool"),
        ({"truncated": "shaped"}, r"truncated of shape \(1,\)"),
        ({"time": jnp.float32}, "reset_env and step_env return states of other dtypes"),
    ],
)
def test_each_output_of_step_is_held_to_the_contract(broken, said):
    """The time-out bootstrap reads info["final_observation"], the episode's end reads
    truncated, auto-reset selects between reset_env's and step_env's states: each is
    checked as terminated and the observations are, not only the first of them."""
    from jrl.agents.checks import check_env_outputs

    check_env_outputs(OffContractChain(), None)  # the contract kept: taken
    with pytest.raises(ValueError, match=said):
        check_env_outputs(OffContractChain(**broken), None)


class TwoJointChain(Chain):
    """Chain with Box actions of two entries, of which its step reads the second."""

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (2,))

    def step_env(self, key, state, action, params):
        return super().step_env(key, state, jnp.where(action[1] > 0, 1, 0), params)


def test_a_box_action_is_traced_in_the_shape_its_space_declares():
    """The contract's check steps with an abstract action as the agents do: of the Box's
    shape, which a step indexing its action's entries needs."""
    from jrl.agents.checks import check_env_outputs

    assert check_env_outputs(TwoJointChain(), None).shape == (5,)


def test_train_refuses_a_grid_of_one_field_as_it_does_a_grid_of_several():
    """PPOHParams(gamma=np.array([0.9, 0.99])) given to train: a grid, not one point (a
    gamma of shape (2,) would broadcast against the environments)."""
    from jrl.agents.checks import float32_hparams

    with pytest.raises(ValueError, match="takes one point"):
        float32_hparams(ppo.PPOHParams, ppo.PPOHParams(gamma=np.array([0.9, 0.99])))


def test_float32_hparams_casts_every_field_to_float32():
    """An int or float64 given for a field runs as float32, as a grid from stack_grid
    does (an int q_init made an int32 Q-table)."""
    from jrl.agents.checks import float32_hparams

    hparams = float32_hparams(
        tabular.TabularHParams, tabular.TabularHParams(q_init=5, alpha=np.float64(0.5))
    )
    assert all(jnp.asarray(value).dtype == jnp.float32 for value in hparams)
    assert float(hparams.q_init) == 5.0


def test_an_ignored_hyperparameter_is_refused_naming_its_default():
    with pytest.raises(ValueError) as refused:
        dqn.check_hparams(dqn.DQNHParams(tau=0.5), dqn.DQNConfig())
    said = str(refused.value)
    assert "tau=0.5" in said and "leave tau at its default 1.0" in said
    assert "target_update='hard' (a copy of the weights) ignores it" in said


def test_an_ignored_hyperparameter_at_its_default_in_a_float32_grid_is_taken():
    """stack_grid holds a grid in float32, where epsilon_end's default 0.01 is not the
    float 0.01: compared in float32, as the run holds it, it is the default."""
    grid = stack_grid([tabular.TabularHParams(), tabular.TabularHParams(alpha=0.1)])
    assert grid.epsilon_end.dtype == np.float32 and float(grid.epsilon_end[0]) != 0.01
    tabular.check_hparams(grid, TABULAR_CONFIG)  # schedule="constant": epsilon_end unread
    with pytest.raises(ValueError, match="epsilon_end=.* schedule='constant' ignores it"):
        tabular.check_hparams(grid._replace(epsilon_end=np.float32([0.01, 0.05])), TABULAR_CONFIG)


def test_a_bool_is_no_positive_int():
    """True would have run as 1 environment."""
    from jrl.agents.checks import check_positive_int

    with pytest.raises(ValueError, match="num_envs must be a positive int, got True"):
        check_positive_int("num_envs", True)


class FrozenInfoChain(Chain):
    """Chain whose step returns its info as a flax FrozenDict (a Mapping, not a dict)."""

    def step(self, key, state, action, params=None):
        *outputs, info = super().step(key, state, action, params)
        return (*outputs, FrozenDict(info))


@pytest.mark.parametrize("agent", MAKE_TRAIN)
def test_an_info_mapping_that_is_not_a_dict_is_taken(agent):
    make_train, config, hparams = MAKE_TRAIN[agent]
    jax.eval_shape(make_train(config, FrozenInfoChain(), None), jax.random.key(0), hparams)


@pytest.mark.parametrize("agent", MAKE_TRAIN)
def test_env_params_none_is_the_environments_defaults(agent):
    """gymnax's reset and step take params=None for the defaults; PPO's and REINFORCE's
    rollout calls step_env, which does not, and failed while tracing."""
    make_train, config, hparams = MAKE_TRAIN[agent]
    env, key = Chain(), jax.random.key(0)
    shapes = jax.eval_shape(make_train(config, env, None), key, hparams)
    assert shapes == jax.eval_shape(make_train(config, env, env.default_params), key, hparams)


@pytest.mark.parametrize("agent", MAKE_TRAIN)
def test_env_params_of_another_environment_are_refused(agent, cartpole):
    """Acrobot's params given with CartPole failed while tracing, with an AttributeError
    from inside gymnax's step."""
    make_train, config, _ = MAKE_TRAIN[agent]
    acrobot_params = make("Acrobot-v1")[1]
    with pytest.raises(ValueError, match=r"env_params is a .*acrobot.EnvParams, but CartPole-v1"):
        make_train(config, cartpole[0], acrobot_params)


@pytest.mark.parametrize(
    "name, change, problem",
    [
        ("CartPole-v1", {"max_steps_in_episode": 0}, "max_steps_in_episode is 0: a time limit"),
        ("CartPole-v1", {"gravity": float("nan")}, "gravity is nan: it must be finite"),
        ("CliffWalking-v0", {"max_steps_in_episode": 2.5}, "max_steps_in_episode is 2.5: a"),
        ("CliffWalking-v0", {"slip_prob": 2.0}, r"slip_prob is 2.0: a probability must be in"),
    ],
)
def test_env_params_changed_by_replace_are_checked_as_make_checks_settings(name, change, problem):
    """make refuses these settings; params.replace (gymnax's way) bypassed it: a time
    limit of 0 trained on one-step episodes, a NaN gravity on NaN returns."""
    env, params = make(name)
    agents = [MAKE_TRAIN[agent][:2] for agent in ("ppo", "dqn", "reinforce")]
    if name == "CliffWalking-v0":
        agents.append((tabular.make_train, TABULAR_CONFIG))
    for make_train, config in agents:
        with pytest.raises(ValueError, match=f"{name}'s env_params.{problem}"):
            make_train(config, env, params.replace(**change))
    make_train(config, env, params.replace(**{k: 1 for k in change}))  # in range: taken


def test_a_length_gymnax_divides_by_changed_by_replace_is_checked_as_make_checks_it():
    from jrl.agents.checks import check_env_param_values
    from jrl.envs.registry import SIZE_GYMNAX_SETTINGS

    for name, fields in SIZE_GYMNAX_SETTINGS.items():
        env, params = make(name)
        for key in fields:
            for value in (0, -3, 2.5):
                with pytest.raises(ValueError, match=f"{name}'s env_params.{key} is {value}: a "
                                   "length must be a whole number >= 1"):  # fmt: skip
                    check_env_param_values(env, params.replace(**{key: value}))
            check_env_param_values(env, params.replace(**{key: 1}))


def test_minatar_timers_and_pong_speeds_changed_by_replace_are_checked_as_make_checks_them():
    from jrl.agents.checks import check_env_param_values
    from jrl.envs.registry import TIMER_GYMNAX_SETTINGS

    for name, fields in TIMER_GYMNAX_SETTINGS.items():
        env, params = make(name)
        for key, least in fields.items():
            for value in (least - 1, least + 0.5):
                with pytest.raises(ValueError, match=f"{name}'s env_params.{key} is {value}: a "
                                   f"timer must be a whole number >= {least}"):  # fmt: skip
                    check_env_param_values(env, params.replace(**{key: value}))
            check_env_param_values(env, params.replace(**{key: least}))
    env, params = make("Pong-misc")
    for key in ("ball_x_speed", "paddle_y_speed"):
        with pytest.raises(ValueError, match=f"Pong-misc's env_params.{key} is 0: it must not"):
            check_env_param_values(env, params.replace(**{key: 0}))
        check_env_param_values(env, params.replace(**{key: -1}))
    env, params = make("Asterix-MinAtar")
    with pytest.raises(ValueError, match="init_spawn_speed is 0: a timer"):
        dqn.make_train(dqn.DQNConfig(network="cnn"), env, params.replace(init_spawn_speed=0))


def test_classic_control_physics_changed_by_replace_are_checked_as_make_checks_them():
    """params.replace(tau=0.0) froze CartPole's pole (a random policy scored 500): each
    field make refuses at or below 0 is refused in the agents' check of env_params too
    (one table, jrl.envs.registry.POSITIVE_GYMNAX_SETTINGS), and at make_train."""
    from jrl.agents.checks import check_env_param_values
    from jrl.envs.registry import POSITIVE_GYMNAX_SETTINGS

    for name, fields in POSITIVE_GYMNAX_SETTINGS.items():
        env, params = make(name)
        for key, kind in fields.items():
            for value in (0.0, -1.0):
                with pytest.raises(ValueError, match=f"{name}'s env_params.{key} is {value}: "
                                   f"{kind} must be > 0"):  # fmt: skip
                    check_env_param_values(env, params.replace(**{key: value}))
            check_env_param_values(env, make(name, **{key: 0.5})[1])
    env, params = make("CartPole-v1")
    with pytest.raises(ValueError, match="CartPole-v1's env_params.tau is 0.0: a time step"):
        ppo.make_train(PPO_CONFIG, env, params.replace(tau=0.0))


def test_cartpole_masses_replaced_without_the_fields_gymnax_reads_are_refused():
    """gymnax's CartPole reads total_mass and polemass_length, computed from masscart,
    masspole and length only in its defaults: params.replace(masscart=2.0) ran every
    seed of a sweep over masscart as the default cart. Refused while the field read kept
    its default; taken with it replaced too, as make builds it, or set on its own."""
    from jrl.agents.checks import check_env_param_values

    env, params = make("CartPole-v1")
    for change, stale in [
        ({"masscart": 2.0}, r"masscart changed but total_mass is still its default 1.1"),
        ({"length": 1.0}, r"length changed but polemass_length is still its default 0.05"),
        ({"masspole": 0.2}, r"masspole changed but total_mass"),
        ({"masspole": 0.2, "total_mass": 1.2}, r"masspole changed but polemass_length"),
    ]:
        with pytest.raises(ValueError, match=f"CartPole-v1's env_params: {stale}"):
            check_env_param_values(env, params.replace(**change))
    with pytest.raises(ValueError, match=r"total_mass too \(total_mass=3.1"):
        ppo.make_train(PPO_CONFIG, env, params.replace(masscart=3.0))
    check_env_param_values(env, params.replace(masscart=2.0, total_mass=2.1))
    check_env_param_values(env, make("CartPole-v1", masscart=2.0, length=1.0)[1])
    check_env_param_values(env, params.replace(total_mass=5.0))  # the field itself
    check_env_param_values(env, make("CartPole-v1", total_mass=5.0, masscart=2.0)[1])


def test_mountain_car_fields_out_of_order_by_replace_are_checked_as_make_checks_them():
    """params.replace(goal_position=0.7) put the goal past the track's end, where no
    episode finishes; swapped ends or action bounds clip everything to one value. Each
    ordered pair of jrl.envs.registry.ORDERED_GYMNAX_SETTINGS, swapped, is refused by the
    agents' check and at make_train; a pair at its limit is taken."""
    from jrl.agents.checks import check_env_param_values
    from jrl.envs.registry import ORDERED_GYMNAX_SETTINGS

    for name, pairs in ORDERED_GYMNAX_SETTINGS.items():
        env, params = make(name)
        for low, relation, high, _ in pairs:
            swapped = {low: getattr(params, high) + 0.1, high: getattr(params, high)}
            with pytest.raises(ValueError, match=f"{name}'s env_params: {low} .* must be "
                               f"{relation} {high}"):  # fmt: skip
                check_env_param_values(env, params.replace(**swapped))
            if relation == "<=":
                check_env_param_values(env, params.replace(**{low: getattr(params, high)}))
    env, params = make("MountainCarContinuous-v0")
    with pytest.raises(ValueError, match="env_params: min_action"):
        ppo.make_train(PPO_CONFIG, env, params.replace(max_action=-2.0))


@pytest.mark.parametrize(
    "name, change, problem",
    [
        ("CliffWalking-v0", {"max_steps_in_episode": True}, "max_steps_in_episode is True: a time"),
        ("CliffWalking-v0", {"slip_prob": -0.5}, r"slip_prob is -0.5: a probability must be in"),
        (
            "Acrobot-v1",
            {"available_torque": jnp.array([-1.0, jnp.nan, 1.0])},
            "available_torque is .*: it must be finite",
        ),
    ],
)
def test_env_params_checks_read_bools_negatives_and_every_entry(name, change, problem):
    """A time limit of True ran as 1, a negative probability as 0; an array field is
    checked in every entry, not only where all of them are NaN."""
    from jrl.agents.checks import check_env_param_values

    env, params = make(name)
    with pytest.raises(ValueError, match=f"{name}'s env_params.{problem}"):
        check_env_param_values(env, params.replace(**change))


@struct.dataclass
class ArmParams:
    """A researcher's own params with a ``*_probs`` field: one probability per arm."""

    max_steps_in_episode: int = 20
    arm_probs: tuple = (0.2, 0.8)


def test_a_probs_field_of_ones_own_params_is_checked_in_every_entry():
    from jrl.agents.checks import check_env_param_values

    check_env_param_values(Chain(), ArmParams())
    with pytest.raises(ValueError, match=r"arm_probs is \(0.5, 1.5\): a probability must be in"):
        check_env_param_values(Chain(), ArmParams(arm_probs=(0.5, 1.5)))


def test_a_traced_env_params_field_leaves_the_concrete_ones_checked():
    """Params built inside jit: a traced min_position cannot be read, and is no error;
    the goal past the track's end, concrete, is still refused."""
    from jrl.agents.checks import check_env_param_values

    env, params = make("MountainCar-v0")

    def check(low, goal):
        check_env_param_values(env, params.replace(min_position=low, goal_position=goal))

    jax.jit(lambda low: check(low, 0.5))(-1.2)
    with pytest.raises(ValueError, match=r"goal_position \(0.7\) must be <= max_position"):
        jax.jit(lambda low: check(low, 0.7))(-1.2)


@pytest.mark.parametrize("agent", MAKE_TRAIN)
def test_an_env_given_as_makes_tuple_a_name_or_swapped_is_refused_saying_so(agent, cartpole):
    """make_train(config, make(name), None), a name, or params first: each was an
    AttributeError ('tuple' object has no attribute 'default_params')."""
    make_train, config, _ = MAKE_TRAIN[agent]
    env, params = cartpole
    with pytest.raises(TypeError, match=r"got tuple: make returns \(env, env_params\)"):
        make_train(config, (env, params), None)
    with pytest.raises(TypeError, match=r"got str: build it first"):
        make_train(config, "CartPole-v1", None)
    with pytest.raises(TypeError, match="env and env_params are given the other way round"):
        make_train(config, params, env)


@pytest.mark.parametrize("key", [0, "batch", "three_words", None], ids=str)
def test_train_called_directly_takes_one_key(key, cartpole):
    """An int seed, a batch of keys or no key: jax.random's errors from deep inside
    (run_sweep, which splits one key, said so already)."""
    key = {
        "batch": jax.random.split(jax.random.key(0), 2),
        "three_words": np.zeros(3, np.uint32),
    }.get(key, key)
    trains = [(MAKE_TRAIN["ppo"][0](PPO_CONFIG, *cartpole), ppo.PPOHParams())]
    trains.append(
        (tabular.make_train(TABULAR_CONFIG, *make("CliffWalking-v0")), tabular.TabularHParams())
    )
    for train, hparams in trains:
        with pytest.raises(ValueError, match="train takes one PRNG key, jax.random.key"):
            train(key, hparams)


@struct.dataclass
class ChainParams:
    """A researcher's own params class (not gymnax's EnvParams), for an environment that
    keeps a bare EnvParams as its default_params (as Chain does)."""

    max_steps_in_episode: int = 20
    goal_reward: float = 1.0


@pytest.mark.parametrize("agent", MAKE_TRAIN)
def test_own_params_of_an_environment_whose_default_is_a_bare_envparams_are_taken(agent):
    """The class check refused them (against gymnax's bare EnvParams), advising that
    bare EnvParams instead."""
    make_train, config, hparams = MAKE_TRAIN[agent]
    env, key = Chain(), jax.random.key(0)
    assert type(env.default_params) is environment.EnvParams
    shapes = jax.eval_shape(make_train(config, env, ChainParams()), key, hparams)
    assert shapes == jax.eval_shape(make_train(config, env, None), key, hparams)


def test_dqn_takes_a_raw_uint32_key_as_run_sweep_does(cartpole):
    """run_sweep accepts a raw key (jax.random.PRNGKey); DQN's chunk noise reshaped its
    environment keys without their trailing axis of two words, and failed to trace."""
    train = dqn.make_train(DQN_CONFIG, *cartpole)
    raw = jax.eval_shape(train, jax.random.PRNGKey(0), dqn.DQNHParams())
    typed = jax.eval_shape(train, jax.random.key(0), dqn.DQNHParams())
    assert jax.tree.map(lambda x: x.shape, raw[1]) == jax.tree.map(lambda x: x.shape, typed[1])


class MinimalSpaces(Chain):
    """Spaces that hold only what the tabular agents read: ``n``."""

    def action_space(self, params=None):
        return SimpleNamespace(n=2)

    def observation_space(self, params):
        return SimpleNamespace(n=5)


def test_spaces_are_read_by_what_the_agents_need_of_them():
    """The environment check sampled the action space and read the observation space's
    shape: spaces holding only ``n``, which the tabular agent reads, were refused with an
    AttributeError."""
    train = tabular.make_train(TABULAR_CONFIG, MinimalSpaces(onehot=False), None)
    returns = jax.eval_shape(train, jax.random.key(0), tabular.TabularHParams())[1]
    assert returns.episode_returns.shape == (TABULAR_CONFIG.num_episodes,)
