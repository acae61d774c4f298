"""The rollout draws its randomness before its scan: the draws must be the ones the
per-step calls would make, and gymnax's auto-reset with the reset drawn beforehand
must be gymnax's ``step``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.wrappers.purerl import FlattenObservationWrapper

import jrl.agents.rollout as rollout_module
from jrl.agents.distributions import action_distribution, categorical, diag_gaussian
from jrl.agents.networks import ActorCritic, GaussianActorCritic, init_params
from jrl.agents.rollout import EpisodeStats, make_rollout, resets_drawn_ahead, step_with_reset
from jrl.envs import make


def test_samples_from_drawn_noise_are_the_samplers_own():
    key = jax.random.key(3)
    logits = jax.random.normal(jax.random.key(1), (256, 5))
    dist = categorical()
    shape = jax.eval_shape(lambda: logits)  # noise reads shapes only
    drawn = dist.sample_from_noise(logits, dist.noise(key, shape))
    np.testing.assert_array_equal(drawn, jax.random.categorical(key, logits))
    np.testing.assert_array_equal(dist.sample(key, logits), drawn)

    mean, log_std = jnp.linspace(-1, 1, 6).reshape(3, 2), jnp.full((3, 2), -0.5)
    gaussian = diag_gaussian(-2.0, 2.0)
    expected = mean + jnp.exp(log_std) * jax.random.normal(key, (3, 2))
    np.testing.assert_allclose(gaussian.sample(key, (mean, log_std)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "name, max_steps", [("CartPole-v1", 500), ("Acrobot-v1", 40), ("Breakout-MinAtar", 1000)]
)
def test_step_with_a_drawn_reset_is_gymnaxs_step(name, max_steps):
    env, params = make(name)
    params = params.replace(max_steps_in_episode=max_steps)
    num_actions = env.action_space(params).n

    @jax.jit
    def both(key, state, action):
        key_step, key_reset = jax.random.split(key)
        ours = step_with_reset(
            env, key_step, state, action, params, *env.reset_env(key_reset, params)
        )
        return env.step(key, state, action, params), ours

    state = env.reset(jax.random.key(0), params)[1]
    ends = 0
    for t in range(120):
        key = jax.random.key(100 + t)
        action = jax.random.randint(jax.random.fold_in(key, 1), (), 0, num_actions)
        theirs, ours = both(key, state, action)
        for a, b in zip(jax.tree.leaves(theirs), jax.tree.leaves(ours), strict=True):
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-6)
        assert sorted(theirs[5]) == sorted(ours[5])  # the same info keys
        ends += bool(theirs[3] | theirs[4])
        state = theirs[1]
    assert ends >= 1  # a reset was kept, not only drawn


def test_resets_are_drawn_ahead_only_for_gymnaxs_own_step_and_within_the_size_limit():
    cartpole, params = make("CartPole-v1")
    assert resets_drawn_ahead(cartpole, params, 512)
    assert not resets_drawn_ahead(cartpole, params, 10**9)  # over RESET_DRAWS_MAX_BYTES
    assert not resets_drawn_ahead(FlattenObservationWrapper(cartpole), params, 512)
    room, room_params = make("CatRoom-v0")  # its own step keeps episode counters
    assert not resets_drawn_ahead(room, room_params, 512)


def _rollout_args(env, params, network, num_envs):
    """make_rollout's arguments for ``num_envs`` environments just reset: (key, network
    parameters, environment states, observations, episode returns and lengths so far)."""
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), num_envs), params
    )
    net_params = init_params(network, jax.random.key(1), obs[0])
    zeros = jnp.zeros(num_envs)
    return jax.random.key(2), net_params, env_state, obs, zeros, zeros.astype(jnp.int32)


def test_rollout_with_resets_drawn_ahead_equals_the_one_through_env_step(monkeypatch):
    env, params = make("CartPole-v1")
    network = ActorCritic(num_actions=2)
    args = _rollout_args(env, params, network, 4)

    ahead = jax.jit(make_rollout(network, categorical(), env, params, 64))(*args)
    monkeypatch.setattr(rollout_module, "RESET_DRAWS_MAX_BYTES", 0)
    assert not resets_drawn_ahead(env, params, 1)
    stepwise = jax.jit(make_rollout(network, categorical(), env, params, 64))(*args)

    assert int(ahead.stats.count) >= 4  # episodes ended, so resets were used
    for field in ("action", "done", "terminated"):
        np.testing.assert_array_equal(
            getattr(ahead.transitions, field), getattr(stepwise.transitions, field)
        )
    for a, b in zip(jax.tree.leaves(ahead), jax.tree.leaves(stepwise), strict=True):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-5)


def test_rollout_records_the_final_observation_and_bootstraps_from_its_value():
    """CartPole cut every 8 steps: at an episode's end the next observation is the reset
    one, but ``final_obs`` must be the state the step reached — by the cart's Euler
    step, x' = x + 0.02 x_dot — and ``next_values`` the critic's value of it."""
    env, params = make("CartPole-v1", max_steps_in_episode=8)
    network = ActorCritic(num_actions=2)
    args = _rollout_args(env, params, network, 4)
    out = jax.jit(make_rollout(network, categorical(), env, params, 40))(*args)
    net_params = args[1]
    tr = out.transitions
    done, terminated = np.asarray(tr.done), np.asarray(tr.terminated)
    assert (done & ~terminated).sum() >= 4  # time-outs happened ...
    assert not terminated[~done].any()  # ... and a termination is always an end
    final_obs, obs = np.asarray(tr.final_obs), np.asarray(tr.obs)
    np.testing.assert_allclose(final_obs[..., 0], obs[..., 0] + 0.02 * obs[..., 1], atol=1e-6)
    np.testing.assert_array_equal(obs[1:][~done[:-1]], final_obs[:-1][~done[:-1]])
    assert not np.allclose(obs[1:][done[:-1]], final_obs[:-1][done[:-1]])  # resets differ
    _, values = network.apply(net_params, tr.final_obs)
    np.testing.assert_allclose(out.next_values, values, rtol=1e-6, atol=1e-6)


def test_rollout_episode_return_counts_every_reward():
    """CartPole cut at 8 steps pays +1 a step: each finished episode's return equals its
    length, and none exceeds 8 (a return that dropped its last reward, or carried over
    between episodes, would not)."""
    env, params = make("CartPole-v1", max_steps_in_episode=8)
    network = ActorCritic(num_actions=2)
    args = _rollout_args(env, params, network, 4)
    out = jax.jit(make_rollout(network, categorical(), env, params, 40))(*args)
    assert int(out.stats.count) >= 4
    assert float(out.stats.return_sum) == float(out.stats.length_sum)
    assert float(out.stats.return_sum) / int(out.stats.count) <= 8.0


def test_episode_stats_means_are_mean_return_and_mean_length():
    stats = EpisodeStats(jnp.float32(-30.0), jnp.int32(15), jnp.int32(2))
    assert [float(x) for x in stats.means()] == [-15.0, 7.5]
    assert all(
        np.isnan(float(x)) for x in EpisodeStats(jnp.float32(0), jnp.int32(0), jnp.int32(0)).means()
    )


def test_rollout_steps_each_environment_with_its_own_key():
    """slip_prob 1: every move is drawn from the environment's key, whatever the policy
    does; 8 environments from one start must not walk in lockstep."""
    env, params = make("CatRoom-v0", observation="grid", slip_prob=1.0)
    network = ActorCritic(num_actions=5, obs_ndim=3)
    args = _rollout_args(env, params, network, 8)
    out = jax.jit(make_rollout(network, categorical(), env, params, 20))(*args)
    cells = np.asarray(out.transitions.final_obs[..., 0]).reshape(20, 8, -1).argmax(-1)
    assert max(len(set(row.tolist())) for row in cells) > 1


def test_rollout_stores_the_log_prob_of_the_unclipped_gaussian_sample():
    """Pendulum's torque is clipped to [-2, 2] only on its way to the environment: the
    stored action and its log pi_old must be the unclipped sample's, or PPO's ratio at
    the update would compare pi_theta(a) with pi_old(clip(a)) for the samples outside."""
    env, params = make("Pendulum-v1")
    distribution, action_dim = action_distribution(env.action_space(params))
    network = GaussianActorCritic(action_dim, hidden_sizes=(8,), log_std_init=float(np.log(2.0)))
    args = _rollout_args(env, params, network, 2)
    out = jax.jit(make_rollout(network, distribution, env, params, 32))(*args)
    tr = out.transitions
    assert np.any(np.abs(np.asarray(tr.action)) > 2.0)  # some samples fall outside the Box
    head, _ = network.apply(args[1], tr.obs)
    expected = distribution.log_prob(head, tr.action)
    np.testing.assert_allclose(tr.log_prob, expected, rtol=1e-5, atol=1e-5)


def test_rollout_actions_come_from_the_act_half_of_each_steps_key():
    """Step t draws its action noise from the first half of its key, the environments'
    keys from the other: noise from the environments' half went unseen."""
    env, params = make("CartPole-v1", max_steps_in_episode=8)
    network = ActorCritic(num_actions=2)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 4), params
    )
    net_params = init_params(network, jax.random.key(1), obs[0])
    key, num_steps, dist = jax.random.key(2), 12, categorical()
    zeros = jnp.zeros(4)
    out = jax.jit(make_rollout(network, dist, env, params, num_steps))(
        key, net_params, env_state, obs, zeros, zeros.astype(jnp.int32)
    )
    for t, key_step in enumerate(jax.random.split(key, num_steps)):
        key_act, _ = jax.random.split(key_step)
        head, _ = network.apply(net_params, out.transitions.obs[t])
        noise = dist.noise(key_act, jax.eval_shape(lambda h: h, head))
        np.testing.assert_array_equal(
            out.transitions.action[t], dist.sample_from_noise(head, noise)
        )


def test_rollout_hands_the_environment_actions_clipped_to_the_box():
    """The Gaussian's samples are stored unclipped, but the environment must receive
    them clipped to its Box's bounds. Pendulum clips its torque itself, so a wrapper
    that pays out the action it was handed as the reward shows what it received."""
    from gymnax.wrappers.purerl import GymnaxWrapper

    class PaysTheActionItReceives(GymnaxWrapper):
        def step(self, key, state, action, params=None):
            obs, state, _, terminated, truncated, info = self._env.step(key, state, action, params)
            return obs, state, action[0], terminated, truncated, info

    pendulum, params = make("Pendulum-v1")
    env = PaysTheActionItReceives(pendulum)
    distribution, action_dim = action_distribution(env.action_space(params))
    network = GaussianActorCritic(action_dim, hidden_sizes=(8,), log_std_init=float(np.log(2.0)))
    args = _rollout_args(env, params, network, 2)
    out = jax.jit(make_rollout(network, distribution, env, params, 32))(*args)
    action = np.asarray(out.transitions.action)[..., 0]
    assert np.any(np.abs(action) > 2.0)  # some samples fall outside [-2, 2]
    np.testing.assert_allclose(out.transitions.reward, np.clip(action, -2.0, 2.0), rtol=1e-6)
