"""REINFORCE with a baseline: returns-to-go by hand, config checks, CartPole learning.

The compiled run is a module-scoped fixture; tests that run a vmapped path have a
timeout (the jaxlib 0.10-0.11 CPU deadlock of REFERENCE.md is a silent hang).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
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


def test_an_action_space_it_cannot_act_in_is_refused_in_reinforces_name():
    from gymnax.environments import spaces
    from gymnax.wrappers.purerl import GymnaxWrapper

    class MatrixActions(GymnaxWrapper):
        def action_space(self, params=None):
            return spaces.Box(-2.0, 2.0, (1, 1))

    env, params = make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"REINFORCE need discrete actions or a Box of shape"):
        make_train(ReinforceConfig(), MatrixActions(env), params)


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.0),
        ("gamma", 1.5),
        ("gamma", -0.1),
        ("vf_coef", -1.0),
        ("ent_coef", -0.1),  # a penalty on entropy, not a bonus
        ("max_grad_norm", 0.0),  # a clip to norm 0 zeroes every gradient
    ],
)
def test_check_hparams_rejects_impossible_values(field, value):
    check_hparams(ReinforceHParams())
    with pytest.raises(ValueError, match=field):
        check_hparams(ReinforceHParams()._replace(**{field: value}))


@pytest.mark.parametrize("field, value", [("gamma", 0.0), ("gamma", 1.0), ("ent_coef", 0.0)])
def test_check_hparams_accepts_the_ends_of_each_range(field, value):
    """gamma in [0, 1] (1: undiscounted returns, as Williams's episodic REINFORCE), no
    entropy bonus at all."""
    check_hparams(ReinforceHParams()._replace(**{field: value}))


def test_advantages_are_left_unnormalised_by_default_and_a_batch_of_two_may_normalise():
    assert ReinforceConfig().normalize_advantages is False
    config = ReinforceConfig(num_envs=1, num_steps=2, total_timesteps=2, normalize_advantages=True)
    assert config.batch_size == 2  # the smallest batch with a standard deviation


# ------------------------------------------------------------- one update by hand


def _update_by_hand(agent, config, hp, state, baseline: bool):
    """One REINFORCE update with a learned baseline (Williams 1992; Sutton & Barto
    13.4) on jrl's own rollout: returns-to-go by a Python loop over time (a time-out
    bootstraps from V(final observation), a termination from 0), the advantage G - V(s)
    (G alone without ``baseline``), optionally standardised, the policy-gradient loss
    -mean(log pi(a|s) A), the baseline's 0.5 mean((V - G)^2), the entropy bonus, then
    global-norm clip and Adam (eps 1e-5) at the annealed rate. -> (params, (actor,
    critic, total, entropy))."""
    from jrl.agents.distributions import categorical
    from jrl.agents.rollout import make_rollout

    env, env_params = make("CartPole-v1", max_steps_in_episode=5)
    rollout = make_rollout(agent.network, categorical(), env, env_params, config.num_steps)
    out = rollout(
        jax.random.fold_in(state.key, state.update),
        state.params,
        state.env_state,
        state.obs,
        state.episode_return,
        state.episode_length,
    )
    steps = out.transitions
    reward, next_value = np.asarray(steps.reward), np.asarray(out.next_values)
    terminated, done = np.asarray(steps.terminated), np.asarray(steps.done)
    returns, following = np.zeros_like(reward), np.zeros(reward.shape[1])
    for t in reversed(range(reward.shape[0])):
        # An episode that ends here (or the rollout's last step) starts a new sum.
        ahead = np.where(done[t] | (t == reward.shape[0] - 1), next_value[t], following)
        following = reward[t] + hp.gamma * (1 - terminated[t]) * ahead
        returns[t] = following
    size = config.batch_size
    obs = steps.obs.reshape(size, *steps.obs.shape[2:])
    action = steps.action.reshape(size)
    returns = jnp.asarray(returns.reshape(size))

    def loss(params):
        logits, value = agent.network.apply(params, obs)
        log_pi = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(log_pi, action[:, None], -1)[:, 0]
        advantage = jax.lax.stop_gradient(returns - value if baseline else returns)
        if config.normalize_advantages:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        actor = -(log_prob * advantage).mean()
        critic = 0.5 * jnp.square(value - returns).mean()
        entropy = -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1).mean()
        total = actor + hp.vf_coef * critic - hp.ent_coef * entropy
        return total, (actor, critic, total, entropy)

    lr = hp.lr * (1 - int(state.update) / config.num_updates)
    optimizer = optax.chain(optax.clip_by_global_norm(hp.max_grad_norm), optax.adam(lr, eps=1e-5))
    grads, losses = jax.grad(loss, has_aux=True)(state.params)
    updates, _ = optimizer.update(grads, state.opt_state, state.params)
    return optax.apply_updates(state.params, updates), losses


def _largest_difference(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(jnp.abs(x - y).max()) for x, y in pairs)


@pytest.mark.parametrize("normalize_advantages", [False, True])
def test_an_update_equals_reinforce_with_a_baseline_written_out(normalize_advantages):
    """The second update (the rate annealed once), episodes cut every 5 steps inside the
    rollout: jrl's losses and parameters are those written out above, and not those of
    REINFORCE without its baseline."""
    env, env_params = make("CartPole-v1", max_steps_in_episode=5)
    config = ReinforceConfig(
        num_envs=3,
        num_steps=8,
        total_timesteps=72,
        hidden_sizes=(16,),
        anneal_lr=True,
        normalize_advantages=normalize_advantages,
    )
    hp = ReinforceHParams(lr=3e-2, gamma=0.9)
    agent = make_reinforce(config, env, env_params)
    state, _ = agent.update(agent.init(jax.random.key(0), hp), hp)
    after, metrics = agent.update(state, hp)
    params, (actor, critic, total, _) = _update_by_hand(agent, config, hp, state, baseline=True)
    assert float(metrics.actor_loss) == pytest.approx(float(actor), rel=1e-5, abs=1e-6)
    assert float(metrics.value_loss) == pytest.approx(float(critic), rel=1e-5)
    assert float(metrics.total_loss) == pytest.approx(float(total), rel=1e-5, abs=1e-6)
    # The rate reported is the one this update's Adam step used (annealed once).
    assert float(metrics.learning_rate) == pytest.approx(hp.lr * (1 - 1 / config.num_updates))
    assert _largest_difference(after.params, params) < 1e-6
    assert _largest_difference(after.params, state.params) > 1e-3
    without, _ = _update_by_hand(agent, config, hp, state, baseline=False)
    assert _largest_difference(after.params, without) > 1e-4


# ------------------------------------------------------- metrics of a short run


@pytest.mark.parametrize("env_name", ["CartPole-v1", "Pendulum-v1"])
def test_episode_metrics_follow_episodes_across_updates(env_name):
    """Episodes 5 steps long (a time-out) and rollouts 3 steps long, so every episode
    spans two updates: each update's episode length is the full 5 and its return the
    whole episode's (CartPole: 1 a step, so 5; Pendulum: a cost, so between -5 * 16.3
    and 0), the one update's and the previous one's rewards together; timesteps count
    num_envs * num_steps per update."""
    env, env_params = make(env_name, max_steps_in_episode=5)
    config = ReinforceConfig(num_envs=2, num_steps=3, total_timesteps=30, hidden_sizes=(8,))
    _, metrics = jax.jit(make_train(config, env, env_params))(jax.random.key(0), ReinforceHParams())
    np.testing.assert_array_equal(metrics.timesteps, 6 * np.arange(1, 6))
    ended = np.asarray(metrics.num_episodes) > 0
    assert ended.sum() >= 3  # updates 2 to 5 each end an episode in every env
    np.testing.assert_array_equal(np.asarray(metrics.episode_length)[ended], 5.0)
    returns = np.asarray(metrics.episode_return)[ended]
    if env_name == "CartPole-v1":  # no pole falls in 5 steps from upright
        np.testing.assert_allclose(returns, 5.0)
    else:  # cost per step at most pi^2 + 0.1 * 8^2 + 0.001 * 2^2
        assert np.all(returns < 0) and np.all(returns > -5 * 16.3)


def test_the_entropy_reported_is_the_policys_mean_entropy_on_the_batch():
    """The entropy metric is mean_s H(pi(.|s)) over the update's batch (as written out in
    ``_update_by_hand``), not weighted by ent_coef, and the total loss subtracts
    ent_coef times it."""
    env, env_params = make("CartPole-v1", max_steps_in_episode=5)
    config = ReinforceConfig(num_envs=2, num_steps=4, total_timesteps=16, hidden_sizes=(8,))
    hp = ReinforceHParams(lr=1e-2, gamma=0.9, ent_coef=0.3)
    agent = make_reinforce(config, env, env_params)
    state = agent.init(jax.random.key(1), hp)
    _, metrics = agent.update(state, hp)
    _, (actor, critic, total, entropy) = _update_by_hand(agent, config, hp, state, True)
    assert float(metrics.entropy) == pytest.approx(float(entropy), rel=1e-5)
    assert 0.5 < float(metrics.entropy) <= np.log(2) + 1e-6  # two actions, near uniform
    expected = float(actor) + hp.vf_coef * float(critic) - hp.ent_coef * float(entropy)
    assert float(metrics.total_loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


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
