"""PPO: GAE by hand, config checks, vmap-safe init, determinism, sweeps, learning;
the diagonal-Gaussian policy by hand and continuous PPO on Pendulum.

The compiled runs are module-scoped fixtures shared between tests. Every test that
runs a vmapped path has a timeout: the jaxlib 0.10-0.11 CPU deadlock (REFERENCE.md)
is a silent hang, not an error.
"""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jrl.agents.dqn import QNetwork
from jrl.agents.networks import (
    ActorCritic,
    GaussianActorCritic,
    init_params,
    orthogonal,
    patches_3x3,
)
from jrl.agents.ppo import (
    PPOConfig,
    PPOHParams,
    action_distribution,
    check_hparams,
    diag_gaussian,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    greedy_episode,
    make_ppo,
    make_train,
    shuffled_indices,
)
from jrl.agents.rollout import make_rollout
from jrl.envs import make
from jrl.host import compiler_options
from jrl.sweep import product_grid, run_sweep, stack_grid

# ---------------------------------------------------------------------------- GAE

# One env, T = 5, gamma = lambda = 0.5 (so gamma * lambda = 0.25). Step 1 is truncated
# (bootstrap from V(final_observation) = 8, then cut), step 2 terminates (V' = 6 must be
# ignored), step 4 ends the rollout mid-episode (bootstrap from 2).
REWARDS = [1.0, 1.0, 1.0, 0.0, 2.0]
VALUES = [2.0, 4.0, 2.0, 2.0, 4.0]
NEXT_VALUES = [4.0, 8.0, 6.0, 4.0, 2.0]
TERMINATED = [False, False, True, False, False]
DONE = [False, True, True, False, False]
# delta_t = r_t + gamma (1 - term_t) V'_t - V_t:
#   d0 = 1 + 0.5*4 - 2 = 1;  d1 = 1 + 0.5*8 - 4 = 1;  d2 = 1 + 0 - 2 = -1
#   d3 = 0 + 0.5*4 - 2 = 0;  d4 = 2 + 0.5*2 - 4 = -1
# A_t = d_t + 0.25 (1 - done_t) A_{t+1}, backwards:
#   A4 = -1;  A3 = 0 + 0.25*(-1) = -0.25;  A2 = -1 (cut);  A1 = 1 (cut);  A0 = 1 + 0.25*1
HAND_ADVANTAGES = [1.25, 1.0, -1.0, -0.25, -1.0]
HAND_TARGETS = [3.25, 5.0, 1.0, 1.75, 3.0]  # A_t + V_t


def _gae_inputs(batch: int | None = None):
    arrays = [
        jnp.array(REWARDS),
        jnp.array(VALUES),
        jnp.array(NEXT_VALUES),
        jnp.array(TERMINATED),
        jnp.array(DONE),
    ]
    if batch is not None:
        arrays = [jnp.stack([a] * batch, axis=1) for a in arrays]
    return arrays


@pytest.mark.parametrize("jit", [False, True])
def test_gae_matches_hand_computed_example(jit):
    fn = jax.jit(gae) if jit else gae
    advantages, targets = fn(*_gae_inputs(), 0.5, 0.5)
    np.testing.assert_allclose(advantages, HAND_ADVANTAGES, rtol=1e-6)
    np.testing.assert_allclose(targets, HAND_TARGETS, rtol=1e-6)


def test_gae_batches_over_envs_and_treats_termination_as_done():
    rewards, values, next_values, terminated, done = _gae_inputs(batch=3)
    advantages, _ = gae(rewards, values, next_values, terminated, done, 0.5, 0.5)
    assert advantages.shape == (5, 3)
    np.testing.assert_allclose(advantages, np.stack([HAND_ADVANTAGES] * 3, 1), rtol=1e-6)
    # ``done`` not set on the terminal step: the trace is cut all the same.
    cut_anyway, _ = gae(rewards, values, next_values, terminated, done.at[2].set(False), 0.5, 0.5)
    np.testing.assert_allclose(cut_anyway, advantages, rtol=1e-6)


def test_gae_with_lambda_one_and_no_boundary_is_the_discounted_return_minus_value():
    rewards = jnp.array([1.0, 2.0, 3.0])
    values = jnp.array([0.5, 0.0, 1.0])
    next_values = jnp.array([0.0, 1.0, 10.0])
    never = jnp.zeros(3, bool)
    advantages, targets = gae(rewards, values, next_values, never, never, 0.9, 1.0)
    returns = np.array([1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 10, 2 + 0.9 * 3 + 0.81 * 10, 3 + 9.0])
    np.testing.assert_allclose(targets, returns, rtol=1e-6)
    np.testing.assert_allclose(advantages, returns - np.asarray(values), rtol=1e-6)


def test_gae_rejects_mismatched_shapes():
    rewards, values, next_values, terminated, done = _gae_inputs()
    with pytest.raises(AssertionError):
        gae(rewards, values[:4], next_values, terminated, done, 0.5, 0.5)


# ------------------------------------------------------------------ minibatch shuffle


@pytest.mark.parametrize("n", [1, 2, 3, 7, 512, 1000])
def test_shuffled_indices_are_permutations_distinct_per_key(n):
    keys = jax.random.split(jax.random.key(3), 16)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: shuffled_indices(k, n)))(keys))
    assert orders.dtype == np.int32
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
    if n >= 7:
        assert len({tuple(order) for order in orders}) == len(orders)


def test_shuffled_indices_are_uniform():
    from scipy.stats import chisquare

    # n = 4: all 24 permutations equally often (one round).
    keys = jax.random.split(jax.random.key(0), 24_000)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: shuffled_indices(k, 4)))(keys))
    _, counts = np.unique(orders, axis=0, return_counts=True)
    assert len(counts) == 24
    assert chisquare(counts).pvalue > 1e-4
    # n = 512 (PPO's CartPole batch; two rounds): every element equally likely first,
    # and the first element equally likely at every position.
    keys = jax.random.split(jax.random.key(1), 8192)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: shuffled_indices(k, 512)))(keys))
    assert chisquare(np.bincount(orders[:, 0], minlength=512)).pvalue > 1e-4
    where_zero = np.argmax(orders == 0, axis=1)
    assert chisquare(np.bincount(where_zero, minlength=512)).pvalue > 1e-4


def test_shuffled_indices_fall_back_to_jax_permutation_for_large_n(monkeypatch):
    import jrl.agents.ppo as ppo

    monkeypatch.setattr(ppo, "SHUFFLE_POSITION_BITS_MAX", 2)
    key = jax.random.key(5)
    np.testing.assert_array_equal(shuffled_indices(key, 8), jax.random.permutation(key, 8))


# ------------------------------------------------------------- one update by hand


def _policy_by_hand(head, continuous: bool):
    """(log_prob(action), entropy) of the network's head, written out: a categorical
    over logits, or a diagonal Gaussian of (mean, log std)."""
    if continuous:
        mean, log_std = head

        def log_prob(action):
            z = (action - mean) / jnp.exp(log_std)
            return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

        entropy = jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)
        entropy = jnp.broadcast_to(entropy, mean.shape[:-1])
        return log_prob, entropy
    log_pi = jax.nn.log_softmax(head)
    return (
        lambda action: jnp.take_along_axis(log_pi, action[..., None], -1)[..., 0],
        -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1),
    )


@functools.cache
def _compiled_rollout(agent, env_name, num_steps):
    """jrl's rollout for :func:`_update_by_hand`, jitted once per agent and task (the
    compile is most of a hand update's time)."""
    from jrl.agents.rollout import make_rollout

    env, env_params = make(env_name, max_steps_in_episode=5)
    return jax.jit(make_rollout(agent.network, agent.distribution, env, env_params, num_steps))


VALUE_ERRORS = ("unclipped", "max", "min")  # of the plain and clipped value errors


@functools.cache
def _gradient_step_by_hand(agent, steps_per_update, num_updates):
    """A minibatch step of :func:`_update_by_hand`, compiled once per agent, its choices
    traced (run op by op, one test's hand updates compiled ~300 small programs).
    -> step(params, opt_state, batch, rows, ratio_bounds, value_error, anneal_lr, hp)."""
    continuous = agent.distribution.continuous

    def step(params, opt_state, batch, rows, ratio_bounds, value_error, anneal_lr, hp):
        obs, action, old_log_prob, old_value, advantage = batch
        target = advantage + old_value
        low, high = ratio_bounds

        def loss(params):
            head, v = agent.network.apply(params, obs[rows])
            log_prob, entropy = _policy_by_hand(head, continuous)
            log_ratio = log_prob(action[rows]) - old_log_prob[rows]
            ratio = jnp.exp(log_ratio)
            a = advantage[rows]
            a = (a - a.mean()) / (a.std() + 1e-8)
            clipped_ratio = jnp.clip(ratio, low, high)
            actor = -jnp.minimum(ratio * a, clipped_ratio * a).mean()
            moved = v - old_value[rows]
            v_clipped = old_value[rows] + jnp.clip(moved, -hp.clip_eps, hp.clip_eps)
            plain, clipped = jnp.square(v - target[rows]), jnp.square(v_clipped - target[rows])
            errors = jnp.stack([plain, jnp.maximum(plain, clipped), jnp.minimum(plain, clipped)])
            critic = 0.5 * errors[value_error].mean()
            seen = jax.lax.stop_gradient((moved, ratio, log_ratio))
            return actor + hp.vf_coef * critic - hp.ent_coef * entropy.mean(), seen

        def lr(count):
            annealed = hp.lr * (1 - (count // steps_per_update) / num_updates)
            return jnp.where(anneal_lr, annealed, hp.lr)

        optimizer = optax.chain(
            optax.clip_by_global_norm(hp.max_grad_norm), optax.adam(lr, eps=1e-5)
        )
        grads, seen = jax.grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, seen

    return jax.jit(step)


def _update_by_hand(agent, env_name, config, hp, state, value_error, ratio_bounds=None):
    """One PPO update (Schulman et al. 2017, as PureJaxRL's ppo.py) on jrl's own rollout
    and shuffles: GAE by a Python loop over time, per-minibatch advantage
    normalisation, the clipped surrogate (the ratio clipped to ``ratio_bounds``, by
    default 1 -/+ clip_eps), the value loss clipped around the rollout's values
    (``value_error``: one of VALUE_ERRORS), the entropy bonus, then global-norm clip
    and Adam (eps 1e-5) at the rate annealed per minibatch step.
    -> (params, whether the value clip bound at some step, the means over the minibatch
    steps of the clip fraction, |r - 1| > clip_eps, and of the KL estimate
    (r - 1) - log r, each taken before the step)."""
    key_rollout, key_epochs = jax.random.split(jax.random.fold_in(state.key, state.update))
    out = _compiled_rollout(agent, env_name, config.num_steps)(
        key_rollout,
        state.params,
        state.env_state,
        state.obs,
        state.episode_return,
        state.episode_length,
    )
    steps = out.transitions
    reward = np.asarray(steps.reward) * hp.reward_scale
    value, next_value = np.asarray(steps.value), np.asarray(out.next_values)
    terminated, done = np.asarray(steps.terminated), np.asarray(steps.done)
    advantage, trace = np.zeros_like(reward), np.zeros(reward.shape[1])
    for t in reversed(range(reward.shape[0])):
        delta = reward[t] + hp.gamma * (1 - terminated[t]) * next_value[t] - value[t]
        trace = delta + hp.gamma * hp.gae_lambda * (1 - done[t]) * trace
        advantage[t] = trace
    size = config.batch_size
    batch = (
        steps.obs.reshape(size, *steps.obs.shape[2:]),
        steps.action.reshape(size, *steps.action.shape[2:]),
        steps.log_prob.reshape(size),
        steps.value.reshape(size),
        jnp.asarray(advantage.reshape(size)),
    )
    bounds = ratio_bounds or (1 - hp.clip_eps, 1 + hp.clip_eps)
    steps_per_update = config.update_epochs * config.num_minibatches
    gradient_step = _gradient_step_by_hand(agent, steps_per_update, config.num_updates)
    choices = VALUE_ERRORS.index(value_error), config.anneal_lr
    params, opt_state = state.params, state.opt_state
    bound, clip_fractions, kls = [], [], []
    for key in jax.random.split(key_epochs, config.update_epochs):
        for rows in shuffled_indices(key, size).reshape(config.num_minibatches, -1):
            params, opt_state, (moved, ratio, log_ratio) = gradient_step(
                params, opt_state, batch, rows, bounds, *choices, hp
            )
            bound.append(bool(jnp.any(jnp.abs(moved) > hp.clip_eps)))
            clip_fractions.append(float(np.mean(np.abs(np.asarray(ratio) - 1) > hp.clip_eps)))
            kls.append(float(np.mean((ratio - 1) - log_ratio)))
    return params, any(bound), (np.mean(clip_fractions), np.mean(kls))


def _largest_difference(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(jnp.abs(x - y).max()) for x, y in pairs)


@pytest.mark.parametrize(
    ("env_name", "clip_value_loss", "anneal_lr"),
    [("CartPole-v1", True, True), ("Pendulum-v1", False, False)],
)
def test_an_update_equals_ppo_written_out_by_hand(env_name, clip_value_loss, anneal_lr):
    """The second update of a run, with time-outs inside the rollout and rewards scaled:
    jrl's parameters are those of PPO written out with hand-made distributions, and its
    clip fraction and approx KL their means over the minibatch steps — and not those of
    the other setting of clip_value_loss or of anneal_lr (CartPole: both on, the rate
    annealed once already; Pendulum: both off). On CartPole also not those of the value
    clip taken the other way (min instead of max of the two errors), nor of the ratio
    clipped 0.05 wider at either end: every clip binds there."""
    env, env_params = make(env_name, max_steps_in_episode=5)
    config = PPOConfig(
        num_envs=3,
        num_steps=8,
        total_timesteps=48,
        num_minibatches=2,
        update_epochs=3,
        hidden_sizes=(16,),
        clip_value_loss=clip_value_loss,
        anneal_lr=anneal_lr,
    )
    # A rate at which the ratio leaves [1 - clip_eps, 1 + clip_eps] within the update
    # (clip fraction about 0.4 on both tasks; at 3e-2 it stayed 0 on CartPole).
    hp = PPOHParams(lr=1e-1, reward_scale=0.5)
    agent = make_ppo(config, env, env_params)
    update = jax.jit(agent.update)
    state, _ = update(agent.init(jax.random.key(0), hp), hp)
    after, metrics = update(state, hp)
    value_error = "max" if clip_value_loss else "unclipped"
    by_hand = functools.partial(_update_by_hand, agent, env_name)
    params, clip_bound, (clip_fraction, approx_kl) = by_hand(config, hp, state, value_error)
    assert clip_bound
    assert _largest_difference(after.params, params) < 1e-5
    assert _largest_difference(after.params, state.params) > 1e-3
    assert 0.0 < clip_fraction < 1.0 and approx_kl > 0.0
    np.testing.assert_allclose(float(metrics.clip_fraction), clip_fraction, atol=1e-6)
    np.testing.assert_allclose(float(metrics.approx_kl), approx_kl, rtol=1e-5, atol=1e-7)
    eps = hp.clip_eps
    others = {
        "value clip": by_hand(config, hp, state, "unclipped" if clip_value_loss else "max"),
        "anneal_lr": by_hand(
            dataclasses.replace(config, anneal_lr=not anneal_lr), hp, state, value_error
        ),
    }
    if clip_value_loss:
        others["value clip the other way"] = by_hand(config, hp, state, "min")
        for end, bounds in [
            ("above", (1 - eps, 1 + eps + 0.05)),
            ("below", (1 - eps - 0.05, 1 + eps)),
        ]:
            others[f"ratio clip wider {end}"] = by_hand(config, hp, state, value_error, bounds)
    for name, (other, _, _) in others.items():
        assert _largest_difference(after.params, other) > 1e-4, name


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_envs": 4, "num_steps": 10, "num_minibatches": 3}, "num_minibatches"),
        ({"num_envs": 0}, "num_envs"),
        ({"num_steps": 12.5}, "num_steps"),
        ({"update_epochs": -1}, "update_epochs"),
        ({"total_timesteps": 100}, "total_timesteps"),
        ({"total_timesteps": 2**31}, "total_timesteps"),
        # Steps fit in int32, but not the 4 * 2**30 gradient steps (optax's counter).
        (
            {"num_envs": 1, "num_steps": 2, "num_minibatches": 1, "total_timesteps": 2**31 - 1},
            "gradient steps",
        ),
        ({"num_envs": 1, "num_steps": 4, "num_minibatches": 4}, "minibatches of 1 sample"),
        ({"eval_every": 977}, "eval_every"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"hidden_sizes": [64, 64]}, "hidden_sizes"),
        ({"network": "transformer"}, "network"),
        ({"activation": "gelu"}, "activation"),
        # A non-empty string is true: "False" would anneal.
        ({"anneal_lr": "False"}, "anneal_lr must be a bool"),
        ({"clip_value_loss": 0}, "clip_value_loss must be a bool"),
    ],
)
def test_config_rejects_impossible_settings_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PPOConfig(**kwargs)
    PPOConfig(total_timesteps=2**31 - 1, eval_every=(2**31 - 1) // 512)  # the limits themselves


def test_config_derived_sizes():
    config = PPOConfig(num_envs=4, num_steps=128, total_timesteps=100_000, num_minibatches=4)
    assert (config.batch_size, config.minibatch_size, config.num_updates) == (512, 128, 195)


@pytest.mark.parametrize(
    "name, overrides, config, message",
    [
        ("CatRoom-v0", {}, PPOConfig(), "observation='grid'"),
        ("CartPole-v1", {}, PPOConfig(network="cnn"), "grid observations"),
        ("Pendulum-v1", {}, PPOConfig(network="cnn"), "grid observations"),
    ],
)
def test_make_train_rejects_an_env_the_network_cannot_read(name, overrides, config, message):
    env, params = make(name, **overrides)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_train(config, env, params)


def test_make_train_names_a_dict_observation_space_as_what_the_networks_cannot_read():
    from gymnax.environments import spaces
    from gymnax.wrappers.purerl import GymnaxWrapper

    from jrl.agents import dqn

    class DictObservation(GymnaxWrapper):
        def observation_space(self, params):
            return spaces.Dict({"x": self._env.observation_space(params)})

    env, params = make("CartPole-v1")
    for make_agent, config in ((make_train, PPOConfig()), (dqn.make_train, dqn.DQNConfig())):
        # Not "a scalar index (the tabular agents learn ...)": it is no index either.
        with pytest.raises(ValueError, match=r"one array per observation; .* observes Dict\("):
            make_agent(config, DictObservation(env), params)


def test_action_distribution_follows_the_action_space():
    from gymnax.environments import spaces

    assert not action_distribution(spaces.Discrete(3))[0].continuous
    assert action_distribution(spaces.Discrete(3))[1] == 3
    box = spaces.Box(-2.0, 2.0, (2,))
    assert action_distribution(box)[0].continuous and action_distribution(box)[1] == 2
    for space in (spaces.Box(0.0, 1.0, (2, 2)), spaces.Tuple([spaces.Discrete(2)])):
        with pytest.raises(ValueError, match="discrete actions or a Box"):
            action_distribution(space)


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.0),
        ("gamma", 1.5),
        ("gae_lambda", -0.1),
        ("clip_eps", 0.0),
        ("ent_coef", -1.0),
        # No reward to learn from, or its negative; a zero norm clips every step to 0; a
        # negative weight makes the critic's error larger.
        ("reward_scale", 0.0),
        ("reward_scale", -1.0),
        ("max_grad_norm", 0.0),
        ("vf_coef", -0.5),
    ],
)
def test_check_hparams_rejects_impossible_values(field, value):
    check_hparams(PPOHParams())
    with pytest.raises(ValueError, match=field):
        check_hparams(PPOHParams()._replace(**{field: value}))


def test_gae_lambda_is_refused_where_one_step_rollouts_never_read_it():
    """With num_steps=1 every advantage is one TD error, whatever lambda: a sweep over
    it would run every point alike, so it is refused before anything is traced."""
    rewards, values, next_values, terminated, done = (a[:1] for a in _gae_inputs(batch=3))
    one_step = [gae(rewards, values, next_values, terminated, done, 0.9, lam) for lam in (0, 1)]
    np.testing.assert_array_equal(one_step[0][0], one_step[1][0])
    config = PPOConfig(num_envs=4, num_steps=1, num_minibatches=2, total_timesteps=8)
    train = make_train(config, *make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"gae_lambda=\[0.9.*num_steps=1 .*ignores it"):
        run_sweep(train, jax.random.key(0), product_grid(PPOHParams(), gae_lambda=[0.9, 0.95]), 1)
    check_hparams(PPOHParams(gae_lambda=0.5), PPOConfig())  # read with num_steps > 1


def test_clip_eps_is_refused_where_one_gradient_step_per_update_never_clips():
    """One gradient step per update is taken at the acting parameters: ratio 1, V =
    V_old, so no clip binds. Two runs far apart in clip_eps end bit for bit alike."""
    config = PPOConfig(
        num_envs=4, num_steps=8, update_epochs=1, num_minibatches=1, total_timesteps=64
    )
    train = jax.jit(make_train(config, *make("CartPole-v1")))
    runs = [train(jax.random.key(0), PPOHParams(clip_eps=eps)) for eps in (0.01, 0.9)]
    for a, b in zip(*(jax.tree.leaves(run[0].params) for run in runs), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(runs[0][1].clip_fraction.max()) == 0.0
    with pytest.raises(ValueError, match=r"clip_eps=\[0.1.*update_epochs \* num_minibatches = 1"):
        run_sweep(train, jax.random.key(0), product_grid(PPOHParams(), clip_eps=[0.1, 0.3]), 1)
    check_hparams(PPOHParams(clip_eps=0.1), PPOConfig(update_epochs=2, num_minibatches=1))


def test_train_refuses_another_agents_hyperparameters():
    """Fields are read by position: REINFORCE's ent_coef would have been PPO's
    gae_lambda."""
    from jrl.agents.reinforce import ReinforceHParams

    config = PPOConfig(num_envs=4, num_steps=8, num_minibatches=2, total_timesteps=32)
    train = make_train(config, *make("CartPole-v1"))
    with pytest.raises(TypeError, match="hyperparameters must be a PPOHParams, got Reinf"):
        jax.jit(train)(jax.random.key(0), ReinforceHParams())
    # A grid of another agent's, through run_sweep's check: it lacks clip_eps (KeyError).
    from jrl.agents.dqn import DQNHParams

    with pytest.raises(TypeError, match="hyperparameters must be a PPOHParams, got DQNHParams"):
        run_sweep(train, jax.random.key(0), stack_grid([DQNHParams()]), 1)
    # A grid given to train itself: gamma of shape (4,) would broadcast against the 4
    # environments (each its own discount) instead of failing.
    with pytest.raises(ValueError, match=r"one point of hyperparameters .* 'gamma': \(4,\)"):
        jax.jit(train)(jax.random.key(0), product_grid(PPOHParams(), gamma=[0.9, 0.99, 0.5, 0.6]))


# ------------------------------------------------------------------------ networks


def test_orthogonal_matches_flax_and_the_conv_is_a_conv():
    import flax.linen as nn

    key = jax.random.key(3)
    np.testing.assert_array_equal(
        orthogonal(1.3)(key, (6, 64)), nn.initializers.orthogonal(1.3)(key, (6, 64))
    )
    x = jax.random.normal(key, (2, 7, 11, 6))
    conv = nn.Conv(16, (3, 3), padding="SAME", use_bias=False)
    conv_params = conv.init(jax.random.key(4), x)
    kernel = conv_params["params"]["kernel"].reshape(-1, 16)
    np.testing.assert_allclose(patches_3x3(x) @ kernel, conv.apply(conv_params, x), atol=1e-5)


@pytest.mark.parametrize(
    "network, setting",
    [
        (ActorCritic(2, torso="CNN"), "torso 'CNN'"),
        (ActorCritic(2, activation="gelu"), "activation 'gelu'"),
        (GaussianActorCritic(1, torso="rnn"), "torso 'rnn'"),
        (QNetwork(2, kernel_init="orthgonal"), "kernel_init 'orthgonal'"),
        (QNetwork(2, torso="cnn", activation="Relu"), "activation 'Relu'"),
    ],
)
def test_networks_built_directly_refuse_unknown_settings(network, setting):
    """A misspelt name is an error, not another network (a misspelt kernel_init built
    LeCun-normal weights; a misspelt torso or activation was a bare KeyError)."""
    obs = jnp.zeros((5, 5, 3)) if "cnn" in repr(network) else jnp.zeros((4,))
    with pytest.raises(ValueError, match=f"unknown {setting}; choose one of"):
        init_params(network, jax.random.key(0), obs)


def test_the_mlp_flattens_observations_of_higher_rank():
    """bsuite's Catch observes [10, 5]: the MLP reads it as 50 features, the same
    function as on the flattened vector; PPO runs on it, REINFORCE and DQN trace (the
    MLP refused any rank but 1 and the CNN any but 3, so no agent could run Catch)."""
    from jrl.agents import dqn, ppo, reinforce

    obs = jax.random.normal(jax.random.key(0), (3, 10, 5))
    for flat, folded in (
        (ActorCritic(3), ActorCritic(3, obs_ndim=2)),
        (QNetwork(3), QNetwork(3, obs_ndim=2)),
    ):
        params = init_params(folded, jax.random.key(1), obs[0])
        np.testing.assert_array_equal(
            jax.tree.map(np.shape, params),
            jax.tree.map(np.shape, init_params(flat, jax.random.key(1), obs[0].reshape(50))),
        )
        for got, want in zip(
            jax.tree.leaves(folded.apply(params, obs)),
            jax.tree.leaves(flat.apply(params, obs.reshape(3, 50))),
            strict=True,
        ):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    env, params = make("Catch-bsuite")
    dqn_config = dqn.DQNConfig(
        num_envs=2,
        total_timesteps=200,
        buffer_size=64,
        batch_size=8,
        learning_starts=40,
        train_frequency=2,
        target_update_frequency=20,
        log_frequency=100,
    )
    # PPO runs; REINFORCE and DQN are traced to their final state's shapes (their runs
    # compile 4-5 s each and read the observation through the same torsos as above).
    for module, config, hparams, first_layer in (
        (ppo, PPOConfig(num_envs=2, num_steps=8, total_timesteps=32), PPOHParams(), "actor_torso"),
        (
            reinforce,
            reinforce.ReinforceConfig(num_envs=2, num_steps=16, total_timesteps=32),
            reinforce.ReinforceHParams(),
            "actor_torso",
        ),
        (dqn, dqn_config, dqn.DQNHParams(), "torso"),
    ):
        train = module.make_train(config, env, params)
        if module is ppo:
            state, metrics = jax.jit(train)(jax.random.key(0), hparams)
            returns = np.asarray(metrics.episode_return)
            assert np.isfinite(returns).any()
            assert np.all(np.abs(returns[np.isfinite(returns)]) <= 1)
        else:
            state, _ = jax.eval_shape(train, jax.random.key(0), hparams)
        kernel = state.params["params"][first_layer]["Dense_0"]["kernel"]
        assert kernel.shape[0] == 50, module.__name__


def _qr_operand_ranks(lowered_text: str) -> list[int]:
    """Ranks of the operand of every QR (LAPACK or cuSOLVER geqrf) in lowered StableHLO."""
    shapes = re.findall(
        r"custom_call @\w*geqrf\w*\(%[^)]*\) .*?: \(tensor<([\dx]+)xf32>", lowered_text
    )
    return [len(shape.split("x")) for shape in shapes]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "network, obs",
    [
        (ActorCritic(2), jnp.zeros(4)),
        (ActorCritic(5, "cnn", (64,), "relu"), jnp.zeros((7, 11, 6))),
        (GaussianActorCritic(2), jnp.zeros(3)),
        (QNetwork(2, "mlp", (64, 64), "relu", "orthogonal"), jnp.zeros(4)),
    ],
)
def test_init_vmapped_over_seeds_is_distinct_and_batches_qr_only_off_the_cpu(network, obs):
    keys = jax.random.split(jax.random.key(0), 4)
    init = jax.vmap(lambda key: init_params(network, key, obs))
    params = jax.jit(init)(keys)
    for leaf in jax.tree.leaves(params):
        assert leaf.shape[0] == 4
    kernels = [leaf for leaf in jax.tree.leaves(params) if leaf.ndim >= 3]
    for kernel in kernels:
        for i in range(4):
            for j in range(i):
                assert not np.allclose(kernel[i], kernel[j])
    alone = jax.tree.leaves(init_params(network, keys[2], obs))
    for kernel, kernel_alone in zip(
        kernels, [leaf for leaf in alone if leaf.ndim >= 2], strict=True
    ):
        np.testing.assert_array_equal(kernel[2], kernel_alone)  # each seed's own init
    # The deadlock needs a batched QR on the CPU; there ours are all unbatched, also
    # under nested vmap. Lowered for a GPU, the QR stays one batched call per layer.
    nested = jax.jit(jax.vmap(init))
    ranks = _qr_operand_ranks(nested.lower(keys.reshape(2, 2)).as_text())
    assert ranks and set(ranks) == {2}
    exported = jax.export.export(nested, platforms=["cuda"])(keys.reshape(2, 2))
    ranks = _qr_operand_ranks(exported.mlir_module())
    assert ranks and set(ranks) == {4}


# ------------------------------------------------------------------- CartPole runs

# PureJaxRL's CartPole defaults (PPOConfig / PPOHParams defaults); 1.5e5 steps is the
# smallest budget tried (1e5, 1.5e5, 2e5) whose 4-seed mean passed every time (4 keys:
# 297-313); 1e5 gave about 245.
CARTPOLE_STEPS = 150_000
NUM_SEEDS = 4


@pytest.fixture(scope="module")
def cartpole():
    env, params = make("CartPole-v1")
    config = PPOConfig(total_timesteps=CARTPOLE_STEPS)
    ppo = make_ppo(config, env, params)
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    run = jax.jit(jax.vmap(ppo.train, in_axes=(0, None)))
    state, metrics = jax.block_until_ready(run(keys, PPOHParams()))
    return config, ppo, run, keys, state, metrics


@pytest.mark.timeout(300)
def test_ppo_learns_cartpole_over_vmapped_seeds(cartpole):
    config, _, _, _, _, metrics = cartpole
    returns = np.asarray(metrics.episode_return)
    assert returns.shape == (NUM_SEEDS, config.num_updates)
    # Mean return of the episodes ended in the last 10 updates, averaged over seeds.
    final = np.nanmean(returns[:, -10:], axis=1)
    assert final.mean() >= 200, final
    assert np.nanmean(returns[:, :5]) < 60  # it started near random (~22)


@pytest.mark.timeout(300)
def test_metrics_are_per_update_and_lr_is_annealed(cartpole):
    config, _, _, _, state, metrics = cartpole
    for leaf in jax.tree.leaves(metrics):
        assert leaf.shape == (NUM_SEEDS, config.num_updates)
    np.testing.assert_array_equal(
        metrics.timesteps[0], config.batch_size * np.arange(1, config.num_updates + 1)
    )
    lr = np.asarray(metrics.learning_rate[0])
    assert lr[0] == pytest.approx(2.5e-4)
    assert np.all(np.diff(lr) < 0) and lr[-1] < 2.5e-4 / config.num_updates * 1.01
    assert np.all(np.asarray(state.update) == config.num_updates)
    assert np.all(np.isfinite(np.asarray(metrics.total_loss)))


@pytest.mark.timeout(300)
def test_same_key_gives_bit_identical_results(cartpole):
    _, _, run, keys, state, metrics = cartpole
    state_again, metrics_again = run(keys, PPOHParams())
    for a, b in zip(jax.tree.leaves(metrics), jax.tree.leaves(metrics_again), strict=True):
        np.testing.assert_array_equal(a, b)  # NaNs (no episode ended) compare equal
    for a, b in zip(
        jax.tree.leaves(state.params), jax.tree.leaves(state_again.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.timeout(300)
def test_same_key_gives_bit_identical_results_from_two_compilations(no_compilation_cache):
    """Built and compiled twice, as two processes would: anything drawn while tracing
    (Python's or NumPy's randomness, a dict's order) would tell the runs apart."""
    env, params = make("CartPole-v1", max_steps_in_episode=20)
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 8, num_minibatches=2)
    runs = [
        jax.jit(make_train(config, env, params))(jax.random.key(5), PPOHParams()) for _ in range(2)
    ]
    assert int(np.asarray(runs[0][1].num_episodes).sum()) > 0
    for a, b in zip(*(jax.tree.leaves((run[0].params, run[1])) for run in runs), strict=True):
        np.testing.assert_array_equal(a, b)  # NaNs (no episode ended) compare equal


@pytest.mark.timeout(300)
def test_vmapped_seeds_get_distinct_params_and_data(cartpole):
    _, ppo, _, keys, _, metrics = cartpole
    initial = jax.jit(jax.vmap(ppo.init, in_axes=(0, None)))(keys, PPOHParams())
    kernel = np.asarray(initial.params["params"]["actor_torso"]["Dense_0"]["kernel"])
    first_obs = np.asarray(initial.obs)
    for envs_first_obs in first_obs:  # each env of a seed starts from a reset of its own
        assert len(np.unique(envs_first_obs, axis=0)) == len(envs_first_obs) > 1
    loop_keys = np.asarray(jax.random.key_data(initial.key))  # rollouts' and shuffles' keys
    for i in range(NUM_SEEDS):
        for j in range(i):
            assert not np.array_equal(loop_keys[i], loop_keys[j])
            assert not np.allclose(kernel[i], kernel[j])
            assert not np.allclose(first_obs[i], first_obs[j])
            assert not np.array_equal(metrics.actor_loss[i], metrics.actor_loss[j])
            assert not np.array_equal(metrics.num_episodes[i], metrics.num_episodes[j])


@pytest.mark.timeout(300)
def test_a_sweep_grid_point_equals_that_configuration_run_alone():
    env, params = make("CartPole-v1")
    config = PPOConfig(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 4)
    train = make_train(config, env, params)
    grid = product_grid(PPOHParams(), lr=[1e-3, 2.5e-4], ent_coef=[0.0, 0.01])
    key = jax.random.key(7)
    swept_state, swept = run_sweep(train, key, grid, num_seeds=2)
    assert swept.total_loss.shape == (4, 2, config.num_updates)
    point = 2  # lr 2.5e-4, ent_coef 0.0
    hparams = jax.tree.map(lambda leaf: leaf[point], grid)
    assert float(hparams.lr) == pytest.approx(2.5e-4) and float(hparams.ent_coef) == 0.0
    # Compiled as run_sweep compiles. Close, not necessarily equal: XLA:CPU may fuse a
    # batch of 4 x 2 runs otherwise than one of 2 (README, "Same seed, same numbers");
    # a mixed-up grid point is far off.
    alone_state, alone = jax.jit(
        jax.vmap(train, in_axes=(0, None)), compiler_options=compiler_options()
    )(jax.random.split(key, 2), hparams)
    for a, b in zip(
        jax.tree.leaves((alone, alone_state.params)),
        jax.tree.leaves((swept, swept_state.params)),
        strict=True,
    ):
        np.testing.assert_allclose(a, np.asarray(b)[point], rtol=1e-5, atol=1e-6)
    # And the grid points did differ.
    assert not np.allclose(swept.total_loss[0], swept.total_loss[point])


# --------------------------------------------------------------------- cat room


@pytest.mark.timeout(300)
def test_ppo_solves_the_static_cat_room_greedy_cat_scratches_the_tall_post():
    """The greedy policy walks the 12 steps to the tall post (+10) past the rug (+1, 4
    steps) for most seeds. A random cat ends 3% of its episodes on the tall post, 20% on
    the rug and 64% on the furniture, so PPO first learns not to scratch at all, then
    often settles for the rug: with 16 envs x 128 steps, lr 1e-3, lambda 0.95 and
    entropy 0.01-0.1, 1-4 of 8 seeds took the tall post.

    What made it win (8 seeds, several keys): more episodes per update (32 x 128), so
    more chance finds of the tall post before the policy commits; Monte Carlo
    advantages (GAE lambda 1: a rare success credits every step of its path without
    waiting for the critic); reward_scale 0.1, keeping returns on the value clip's unit
    scale (at 1 the critic lagged and most greedy cats wandered); entropy 0.1 and lr
    3e-3. So configured, 29 of 32 seeds (4 keys) took the tall post after 1e5 steps;
    with lambda 0.95, or entropy 0.01-0.03 and lr 1e-3, 5-6 of 8. The grid observation
    is flattened for the MLP: the CNN torso would take ~10x as long on a CPU."""
    from gymnax.wrappers.purerl import FlattenObservationWrapper

    env, params = make("CatRoom-v0", observation="grid")
    env = FlattenObservationWrapper(env)
    config = PPOConfig(num_envs=32, num_steps=128, total_timesteps=24 * 32 * 128)
    ppo = make_ppo(config, env, params)
    hparams = PPOHParams(lr=3e-3, gamma=0.99, gae_lambda=1.0, ent_coef=0.1, reward_scale=0.1)

    def run(key):
        state, metrics = ppo.train(key, hparams)
        return metrics, greedy_episode(key, env, params, ppo.network, state.params, 100)

    num_seeds = 8
    metrics, (greedy_return, greedy_length, terminated) = jax.jit(jax.vmap(run))(
        jax.random.split(jax.random.key(0), num_seeds)
    )
    assert np.nanmean(np.asarray(metrics.episode_return)[:, 0]) < 0  # furniture at first
    tall = (np.asarray(greedy_return) == 10.0) & np.asarray(terminated)
    assert tall.sum() >= 6, greedy_return  # 8 of 8 with this key
    np.testing.assert_array_equal(np.asarray(greedy_length)[tall], 12)  # the shortest path


# ------------------------------------------------------ diagonal Gaussian policy

# d = 2: mu = (0, 1), sigma = (1, 2), a = (1, 0), so z = (a - mu) / sigma = (1, -0.5):
#   log pi(a) = sum_i [-z_i^2 / 2 - log sigma_i - log(2 pi) / 2]
#             = -0.5 - 0.125 - log 2 - log(2 pi)
#   H = sum_i [log sigma_i + (1 + log(2 pi)) / 2] = log 2 + 1 + log(2 pi)
MEAN, LOG_STD, ACTION = [0.0, 1.0], [0.0, float(np.log(2.0))], [1.0, 0.0]
HAND_LOG_PROB = -0.625 - np.log(2.0) - np.log(2.0 * np.pi)
HAND_ENTROPY = np.log(2.0) + 1.0 + np.log(2.0 * np.pi)


@pytest.mark.parametrize("jit", [False, True])
def test_gaussian_log_prob_and_entropy_match_hand_computed_values(jit):
    log_prob = jax.jit(gaussian_log_prob) if jit else gaussian_log_prob
    entropy = jax.jit(gaussian_entropy) if jit else gaussian_entropy
    mean, log_std, action = jnp.array(MEAN), jnp.array(LOG_STD), jnp.array(ACTION)
    np.testing.assert_allclose(log_prob(mean, log_std, action), HAND_LOG_PROB, rtol=1e-6)
    np.testing.assert_allclose(entropy(log_std), HAND_ENTROPY, rtol=1e-6)
    # Batched [3, 2] with log_std broadcast, against scipy's normal log-density.
    means = jnp.array([MEAN, [0.5, -1.0], [2.0, 0.0]])
    actions = jnp.array([ACTION, [0.0, 0.0], [-1.0, 3.0]])
    expected = jax.scipy.stats.norm.logpdf(actions, means, jnp.exp(log_std)).sum(-1)
    np.testing.assert_allclose(log_prob(means, log_std, actions), expected, rtol=1e-6)
    assert entropy(jnp.broadcast_to(log_std, (3, 2))).shape == (3,)


def test_gaussian_samples_unclipped_and_clips_only_for_the_env():
    dist = diag_gaussian(-2.0, 2.0)
    mean, log_std = jnp.full((20_000, 1), 1.5), jnp.full((20_000, 1), np.log(0.5))
    actions = dist.sample(jax.random.key(0), (mean, log_std))
    assert actions.shape == (20_000, 1)
    assert abs(float(actions.mean()) - 1.5) < 0.02 and abs(float(actions.std()) - 0.5) < 0.02
    assert float(actions.max()) > 2.0  # the sample itself is not clipped ...
    clipped = dist.to_env(actions)
    assert float(clipped.max()) == 2.0 and float(clipped.min()) >= -2.0  # ... the env's is
    np.testing.assert_array_equal(dist.mode((mean, log_std)), mean)
    # Each bound is the Box's own: [0, 1] clips negative actions to 0, not to -1.
    unit = diag_gaussian(0.0, 1.0).to_env(jnp.array([-0.5, 0.5, 1.5]))
    np.testing.assert_array_equal(unit, [0.0, 0.5, 1.0])


def test_gaussian_actor_critic_has_a_state_independent_log_std():
    network = GaussianActorCritic(2)
    params = init_params(network, jax.random.key(0), jnp.zeros(3))
    np.testing.assert_array_equal(params["params"]["log_std"], [0.0, 0.0])
    (mean, log_std), value = network.apply(params, jnp.ones((5, 3)))
    assert mean.shape == log_std.shape == (5, 2) and value.shape == (5,)
    assert np.all(np.asarray(log_std) == 0.0)


# ------------------------------------------------------------------- Pendulum runs

# Continuous PPO on gymnax Pendulum-v1 (200-step episodes, truncated: GAE bootstraps
# from V(final_observation)). Settings near rl-baselines3-zoo's Pendulum PPO (gamma 0.9,
# lr 1e-3, 10 epochs, no entropy bonus), 2 x 64 tanh, rewards scaled by 0.1 for
# learning, unclipped value loss. Measured (keys of split(key(0), 2)): first updates
# -1279 / -1231 (a random policy: about -1200 to -1400), last 3 updates -172 / -195
# after 1e5 steps (4 s of running after about 14 s of compiling on 2 CPU cores).
PENDULUM_CONFIG = PPOConfig(
    num_envs=8,
    num_steps=256,
    total_timesteps=100_000,
    update_epochs=10,
    num_minibatches=16,
    clip_value_loss=False,
)
PENDULUM_HPARAMS = PPOHParams(lr=1e-3, gamma=0.9, ent_coef=0.0, reward_scale=0.1)


@pytest.fixture(scope="module")
def pendulum():
    env, params = make("Pendulum-v1")
    ppo = make_ppo(PENDULUM_CONFIG, env, params)

    def run(key):
        state, metrics = ppo.train(key, PENDULUM_HPARAMS)
        return state, metrics, greedy_episode(key, env, params, ppo.network, state.params, 200)

    keys = jax.random.split(jax.random.key(0), 2)
    return ppo, jax.block_until_ready(jax.jit(jax.vmap(run))(keys))


@pytest.mark.timeout(300)
def test_continuous_ppo_learns_pendulum_over_vmapped_seeds(pendulum):
    ppo, (state, metrics, (greedy_return, greedy_length, _)) = pendulum
    assert ppo.distribution.continuous
    assert isinstance(ppo.network, GaussianActorCritic)
    returns = np.asarray(metrics.episode_return)
    assert returns.shape == (2, PENDULUM_CONFIG.num_updates)
    early = np.nanmean(returns[:, :2])
    assert early < -1000  # it started near random
    late = np.nanmean(returns[:, -3:], axis=1)
    assert late.mean() > -600 and late.mean() > early + 500, (early, late)  # measured ~-180
    assert np.all(np.asarray(greedy_length) == 200)  # truncated, never terminated
    assert np.all(np.asarray(greedy_return) > -900), greedy_return
    # The policy narrowed: sigma = exp(log_std) fell from 1.
    assert np.all(np.asarray(state.params["params"]["log_std"]) < 0.0)
    assert np.all(np.isfinite(np.asarray(metrics.total_loss)))


@pytest.mark.timeout(300)
def test_greedy_episode_takes_env_params_as_a_traced_argument(pendulum):
    """Pendulum's action bounds come from env_params (max_torque): passed into a jitted
    evaluation as an argument they are traced, and the clip must take them so."""
    ppo, (state, _, (greedy_return, _, _)) = pendulum
    env, params = make("Pendulum-v1")
    params_seed_0 = jax.tree.map(lambda leaf: leaf[0], state.params)
    key = jax.random.split(jax.random.key(0), 2)[0]
    episode = jax.jit(
        lambda env_params: greedy_episode(key, env, env_params, ppo.network, params_seed_0, 200)
    )
    np.testing.assert_allclose(episode(params)[0], greedy_return[0], rtol=1e-5)


def test_configs_take_numpy_scalars_as_python_ones():
    """num_envs=np.int64(8) (from an np.arange loop) was refused as 'not a positive
    int'; the configs now hold the Python values, so their checks, hashes and YAML are
    those of plain ints, bools and floats."""
    from jrl.agents.dqn import DQNConfig
    from jrl.agents.reinforce import ReinforceConfig
    from jrl.agents.tabular import TabularConfig

    ppo = PPOConfig(num_envs=np.int64(8), hidden_sizes=(np.int32(32), 32), anneal_lr=np.bool_(0))
    assert ppo == PPOConfig(num_envs=8, hidden_sizes=(32, 32), anneal_lr=False)
    assert type(ppo.num_envs) is int and type(ppo.hidden_sizes[0]) is int
    assert type(ppo.anneal_lr) is bool and hash(ppo) == hash(
        PPOConfig(num_envs=8, hidden_sizes=(32, 32), anneal_lr=False)
    )
    assert type(DQNConfig(double_dqn=np.bool_(True)).double_dqn) is bool
    assert type(TabularConfig(num_episodes=np.int64(5)).num_episodes) is int
    assert type(TabularConfig(algorithm=(np.str_("sarsa"),)).algorithm[0]) is str
    assert type(ReinforceConfig(num_envs=np.int16(2)).num_envs) is int
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        PPOConfig(num_envs=np.int64(0))
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        PPOConfig(num_envs=np.float32(8))


def test_ppo_trains_with_64_bit_jax():
    """With jax_enable_x64 on (a researcher's global setting), the rollout's episode
    counts summed to int64 inside an int32 scan carry: PPO failed to trace at all."""
    import os
    import subprocess
    import sys

    script = (
        "import jax\n"
        "from jrl.agents.ppo import PPOConfig, PPOHParams, make_train\n"
        "from jrl.envs import make\n"
        "env, params = make('CartPole-v1')\n"
        "config = PPOConfig(num_envs=2, num_steps=16, total_timesteps=64, num_minibatches=2)\n"
        "_, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0), PPOHParams())\n"
        "print(jax.config.jax_enable_x64, bool(jax.numpy.isfinite(metrics.episode_return).any()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, "JAX_ENABLE_X64": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "True"]


def test_update_metrics_are_the_losses_at_the_acting_parameters():
    """With update_epochs = num_minibatches = 1 the update's one gradient step is taken
    at the acting parameters on the whole batch, so its diagnostics follow from the
    rollout: ratio 1 and V = V_old, so actor_loss 0 (normalised advantages of mean 0),
    value_loss 0.5 mean(A^2), total vf * value_loss - ent * H; no fast test read them
    (value_loss without its 0.5 or total_loss without the entropy went unseen).
    Pendulum's returns are not its lengths, as CartPole's are."""
    env, env_params = make("Pendulum-v1", max_steps_in_episode=5)
    config = PPOConfig(
        num_envs=2,
        num_steps=8,
        total_timesteps=64,
        update_epochs=1,
        num_minibatches=1,
        hidden_sizes=(8,),
    )
    hp = PPOHParams(lr=1e-2, reward_scale=0.5, vf_coef=0.7, ent_coef=0.05)
    agent = make_ppo(config, env, env_params)
    update = jax.jit(agent.update)
    state, _ = update(agent.init(jax.random.key(0), hp), hp)  # second update: annealed once
    _, m = update(state, hp)
    # The rollout the update saw, from the same key.
    key_rollout, _ = jax.random.split(jax.random.fold_in(state.key, state.update))
    out = make_rollout(agent.network, agent.distribution, env, env_params, config.num_steps)(
        key_rollout,
        state.params,
        state.env_state,
        state.obs,
        state.episode_return,
        state.episode_length,
    )
    tr = out.transitions
    adv, _ = gae(
        hp.reward_scale * tr.reward,
        tr.value,
        out.next_values,
        tr.terminated,
        tr.done,
        hp.gamma,
        hp.gae_lambda,
    )
    head, _ = agent.network.apply(state.params, tr.obs)
    entropy = float(agent.distribution.entropy(head).mean())
    value_loss = 0.5 * float(np.mean(np.square(np.asarray(adv))))
    np.testing.assert_allclose(float(m.value_loss), value_loss, rtol=1e-5)
    np.testing.assert_allclose(float(m.entropy), entropy, rtol=1e-5)
    assert abs(float(m.actor_loss)) < 1e-6
    np.testing.assert_allclose(
        float(m.total_loss), hp.vf_coef * value_loss - hp.ent_coef * entropy, rtol=1e-5, atol=1e-6
    )
    # Update 1 of 4: the rate of its first gradient step is lr (1 - 1/4).
    assert float(m.learning_rate) == pytest.approx(1e-2 * 0.75)
    assert int(m.timesteps) == 2 * config.batch_size
    # Episode statistics: Pendulum cut at 5 (negative returns, lengths 5), so a swap of
    # return and length in the metrics shows.
    assert float(m.episode_return) < 0 and float(m.episode_length) == 5.0
    assert int(m.num_episodes) == int(out.stats.count) > 0
    np.testing.assert_allclose(
        [float(m.episode_return), float(m.episode_length)],
        [float(x) for x in out.stats.means()],
    )


def test_learning_rate_metric_is_the_rate_of_the_updates_first_gradient_step():
    """Several gradient steps per update: the schedule counts gradient steps, so the
    metric of update u must be lr (1 - u / U), not the schedule read at count u."""
    env, env_params = make("CartPole-v1", max_steps_in_episode=5)
    config = PPOConfig(
        num_envs=2,
        num_steps=8,
        total_timesteps=64,
        update_epochs=2,
        num_minibatches=2,
        hidden_sizes=(8,),
    )
    hp = PPOHParams(lr=1e-2)
    agent = make_ppo(config, env, env_params)
    _, metrics = jax.jit(agent.train)(jax.random.key(0), hp)
    np.testing.assert_allclose(metrics.learning_rate, 1e-2 * (1 - np.arange(4) / 4), rtol=1e-6)
    np.testing.assert_array_equal(metrics.timesteps, 16 * np.arange(1, 5))


def test_gamma_and_lambda_of_one_are_accepted():
    check_hparams(PPOHParams(gamma=1.0, gae_lambda=1.0))


def test_clip_eps_is_accepted_with_one_epoch_of_several_minibatches():
    check_hparams(
        PPOHParams(clip_eps=0.3),
        PPOConfig(num_envs=4, num_steps=8, total_timesteps=64, update_epochs=1, num_minibatches=2),
    )


def test_updates_carry_the_environments_and_their_episodes_forward():
    """CartPole cut at 5 steps (+1 a step; the pole cannot fall within 5) with rollouts
    of 8 steps: most episodes run on from one update into the next. Each update must
    hand on the environments as its rollout left them — the observation of their state,
    and every episode's return and length so far — so that every episode counted has
    return 5 over 5 steps. Per environment: 4 updates x 8 steps = 6 episodes and 2 steps
    of a seventh."""
    env, env_params = make("CartPole-v1", max_steps_in_episode=5)
    config = PPOConfig(
        num_envs=2,
        num_steps=8,
        total_timesteps=64,
        update_epochs=2,
        num_minibatches=2,
        hidden_sizes=(8,),
    )
    agent = make_ppo(config, env, env_params)
    state, metrics = jax.jit(agent.train)(jax.random.key(0), PPOHParams())
    np.testing.assert_array_equal(metrics.episode_length, 5.0)
    np.testing.assert_array_equal(metrics.episode_return, 5.0)
    assert int(np.asarray(metrics.num_episodes).sum()) == 2 * 6
    np.testing.assert_array_equal(state.episode_length, [2, 2])
    np.testing.assert_array_equal(state.episode_return, [2.0, 2.0])
    # The observation handed on is that of the environments' state (CartPole observes
    # its state's x, x_dot, theta, theta_dot).
    np.testing.assert_array_equal(state.obs, jax.vmap(env.get_obs)(state.env_state))


def test_zero_discount_lambda_and_loss_weights_are_accepted():
    """gamma = 0 (myopic), gae_lambda = 0 (one-step TD advantages), no entropy bonus
    (Pendulum's tuned run) and no value-loss weight are settings, not errors; a run of
    exactly one batch is one update."""
    check_hparams(PPOHParams(gamma=0.0, gae_lambda=0.0, ent_coef=0.0, vf_coef=0.0))
    assert PPOConfig(num_envs=4, num_steps=8, total_timesteps=32).num_updates == 1
