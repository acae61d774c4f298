"""DQN: the replay ring, the target by hand, config checks, determinism, sweeps, learning.

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
from gymnax.environments.classic_control.cartpole import CartPole

from jrl.agents.dqn import (
    DQNConfig,
    DQNHParams,
    check_hparams,
    dqn_target,
    draw_chunk_noise,
    greedy_episode,
    greedy_policy,
    huber_loss,
    make_dqn,
    make_train,
)
from jrl.agents.exploration import epsilon_greedy_from_uniforms
from jrl.agents.replay import buffer_add, buffer_init, buffer_sample
from jrl.envs import make
from jrl.host import compiler_options
from jrl.sweep import product_grid, run_sweep

# ------------------------------------------------------------------------- replay


def _items(start: int, num: int):
    """A batch of ``num`` transitions whose leaves all encode their index."""
    index = jnp.arange(start, start + num)
    return {"obs": jnp.stack([index, -index], axis=1).astype(jnp.float32), "action": index}


@pytest.mark.parametrize("jit", [False, True])
def test_replay_ring_wraps_around_overwriting_the_oldest(jit):
    add = jax.jit(buffer_add) if jit else buffer_add
    buffer = buffer_init({"obs": jnp.zeros(2), "action": jnp.int32(0)}, capacity=5)
    assert buffer.data["obs"].shape == (5, 2) and buffer.data["action"].dtype == jnp.int32
    buffer = add(buffer, _items(0, 3))
    assert (int(buffer.position), int(buffer.size)) == (3, 3)
    np.testing.assert_array_equal(buffer.data["action"], [0, 1, 2, 0, 0])
    buffer = add(buffer, _items(3, 3))  # 3, 4 fill the ring; 5 overwrites slot 0
    assert (int(buffer.position), int(buffer.size)) == (1, 5)
    np.testing.assert_array_equal(buffer.data["action"], [5, 1, 2, 3, 4])
    buffer = add(buffer, _items(6, 5))  # a whole ring's worth from slot 1
    assert (int(buffer.position), int(buffer.size)) == (1, 5)
    np.testing.assert_array_equal(buffer.data["action"], [10, 6, 7, 8, 9])
    np.testing.assert_array_equal(buffer.data["obs"][:, 1], -np.array([10, 6, 7, 8, 9]))


def test_replay_rejects_a_batch_larger_than_the_ring():
    buffer = buffer_init({"obs": jnp.zeros(2), "action": jnp.int32(0)}, capacity=4)
    with pytest.raises(ValueError, match="capacity"):
        buffer_add(buffer, _items(0, 5))
    with pytest.raises(ValueError, match="capacity"):
        buffer_init({"x": jnp.zeros(1)}, capacity=0)


def test_replay_refuses_a_batch_it_would_store_wrongly():
    """A transition of another shape was broadcast into the slots (4 scalars filled 4
    slots with the whole vector), and a float reward cut by an int slot (0.5 -> 0)."""
    buffer = buffer_init({"obs": jnp.zeros(4), "reward": 0}, capacity=8)
    rewards = jnp.array([0.5, -0.7])
    with pytest.raises(ValueError, match=r"\['obs'\]: .* needs shape \[B, \*\(4,\)\], got \(4,\)"):
        buffer_add(buffer, {"obs": jnp.arange(4.0), "reward": jnp.zeros(4, jnp.int32)})
    with pytest.raises(ValueError, match=r"\['reward'\]: the buffer holds int32, and float32"):
        buffer_add(buffer, {"obs": jnp.zeros((2, 4)), "reward": rewards})
    with pytest.raises(ValueError, match="a batch needs the buffer's structure"):
        buffer_add(buffer, {"obs": jnp.zeros((2, 4))})
    with pytest.raises(ValueError, match="one leading size"):
        buffer_add(buffer, {"obs": jnp.zeros((2, 4)), "reward": jnp.zeros(1, jnp.int32)})
    flags = buffer_init({"done": jnp.bool_(False)}, capacity=2)
    with pytest.raises(ValueError, match="the buffer holds bool, and int32"):
        buffer_add(flags, {"done": jnp.array([0, 2])})
    with pytest.raises(ValueError, match="the buffer holds float32, and complex64"):
        buffer_add(buffer_init(0.0, 4), jnp.array([1 + 2j, 3j], jnp.complex64))  # was [1, 0]
    # Casts that keep the values' kind still go through (int actions into float slots).
    floats = buffer_add(buffer_init({"obs": jnp.zeros(4), "reward": 0.0}, 8), {
        "obs": jnp.ones((2, 4), jnp.int32), "reward": rewards
    })  # fmt: skip
    np.testing.assert_array_equal(floats.data["reward"][:2], rewards)


@pytest.mark.parametrize("jit", [False, True])
def test_replay_samples_uniformly_from_the_filled_slots_only(jit):
    sample = jax.jit(buffer_sample, static_argnums=2) if jit else buffer_sample
    buffer = buffer_init({"obs": jnp.zeros(2), "action": jnp.int32(0)}, capacity=10)
    buffer = buffer_add(buffer, _items(1, 3))  # slots 0-2 hold 1, 2, 3; 3-9 are empty (0)
    batch = sample(jax.random.key(0), buffer, 3000)
    actions = np.asarray(batch["action"])
    assert set(actions.tolist()) == {1, 2, 3}
    np.testing.assert_allclose(np.bincount(actions)[1:] / 3000, [1 / 3] * 3, atol=0.04)
    np.testing.assert_array_equal(batch["obs"][:, 0], actions)  # leaves stay paired
    np.testing.assert_array_equal(batch["obs"][:, 1], -actions)


# ----------------------------------------------------------------------- target

# Three transitions, gamma = 0.5, two actions. Transition 0 goes on; transition 1 is
# truncated (s' = final_observation, so it bootstraps like any other); transition 2
# terminates (its Q_target(s', .) = [100, 100] must be ignored).
REWARD = jnp.array([1.0, 2.0, -1.0])
TERMINATED = jnp.array([False, False, True])
NEXT_Q_TARGET = jnp.array([[4.0, 6.0], [10.0, 2.0], [100.0, 100.0]])
# The online net prefers the other action in transitions 0 and 1.
NEXT_Q_ONLINE = jnp.array([[9.0, 1.0], [0.0, 5.0], [1.0, 3.0]])
# DQN:    y = r + 0.5 (1 - term) max_a Q_target(s', a)  = [1 + 3, 2 + 5, -1]
HAND_DQN = [4.0, 7.0, -1.0]
# Double: y = r + 0.5 (1 - term) Q_target(s', argmax_a Q_online(s', a))
#           = [1 + 0.5*4, 2 + 0.5*2, -1]
HAND_DOUBLE = [3.0, 3.0, -1.0]


@pytest.mark.parametrize("jit", [False, True])
def test_dqn_target_matches_hand_computed_example(jit):
    fn = jax.jit(dqn_target) if jit else dqn_target
    np.testing.assert_allclose(fn(REWARD, TERMINATED, NEXT_Q_TARGET, 0.5), HAND_DQN)
    np.testing.assert_allclose(
        fn(REWARD, TERMINATED, NEXT_Q_TARGET, 0.5, NEXT_Q_ONLINE), HAND_DOUBLE
    )


def test_dqn_target_rejects_mismatched_shapes():
    with pytest.raises(AssertionError):
        dqn_target(REWARD[:2], TERMINATED, NEXT_Q_TARGET, 0.5)
    with pytest.raises(AssertionError):
        dqn_target(REWARD, TERMINATED, NEXT_Q_TARGET, 0.5, NEXT_Q_ONLINE[:, :1])


@functools.cache
def _reference_pieces(agent, config, hparams):
    """The compiled pieces of :func:`_reference_chunk`, each on its own (run eagerly, op
    by op, the test took a minute and a half), compiled once for all of a test's chunks:
    -> (env step over envs, network apply, epsilon-greedy over envs, gradient step)."""
    env, _ = make("CartPole-v1", max_steps_in_episode=3)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    act = jax.jit(jax.vmap(epsilon_greedy_from_uniforms, in_axes=(0, 0, None)))  # tested alone
    optimizer = optax.chain(
        optax.clip_by_global_norm(hparams.max_grad_norm), optax.adam(hparams.lr)
    )
    rows = jnp.arange(config.batch_size)

    def huber(error, delta):
        small = jnp.abs(error) <= delta
        return jnp.where(small, 0.5 * error**2, delta * (jnp.abs(error) - 0.5 * delta))

    @jax.jit
    def gradient_step(params, opt_state, o, a, y):
        def loss(p):
            error = agent.network.apply(p, o)[rows, a] - y
            return huber(error, hparams.huber_delta).mean(), (error + y).mean()  # Q(s, a)

        measured, grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, measured

    return step, jax.jit(agent.network.apply), act, gradient_step


def _reference_chunk(agent, config, hparams, state, double_dqn: bool, polyak: bool, record=None):
    """One chunk of DQN written out step by step from Mnih et al. 2015 (van Hasselt et
    al. 2016 for the double target), on the chunk's own noise: a Python list as the
    replay ring, epsilon-greedy acting, Huber loss, clip + Adam, then the target moved
    every ``target_update_frequency`` steps by Polyak's tau (or copied). -> (params,
    target_params); each gradient step's (loss, mean Q(s, a)) appended to ``record``."""
    env, env_params = make("CartPole-v1", max_steps_in_episode=3)
    step, apply, act, gradient_step = _reference_pieces(agent, config, hparams)
    noise = draw_chunk_noise(jax.random.fold_in(state.key, 0), config, state.buffer.size)
    params, target, opt_state = state.params, state.target_params, state.opt_state
    ring, obs, env_state, t = [], state.obs, state.env_state, 0
    rows = jnp.arange(config.batch_size)
    duration = hparams.epsilon_decay_fraction * config.steps_run

    for i in range(config.iterations_per_chunk):
        for v in range(config.vector_steps_per_iteration):
            fraction = min(1.0, t / duration)
            epsilon = hparams.epsilon_start + fraction * (
                hparams.epsilon_end - hparams.epsilon_start
            )
            q = apply(params, obs)
            action = act(noise.act_uniforms[i, v], q, jnp.float32(epsilon))
            next_obs, env_state, reward, terminated, _, info = step(
                noise.env_keys[i, v], env_state, action, env_params
            )
            for n in range(config.num_envs):
                item = (obs[n], action[n], reward[n], terminated[n], info["final_observation"][n])
                if len(ring) < config.buffer_size:
                    ring.append(item)
                else:
                    ring[(t + n) % config.buffer_size] = item
            obs, t = next_obs, t + config.num_envs
        if t >= config.learning_starts:
            for g in range(config.gradient_steps_per_iteration):
                batch = [ring[slot] for slot in np.asarray(noise.slots[i, g])]
                o, a, r, term, o_next = (jnp.stack(column) for column in zip(*batch, strict=True))
                q_target = apply(target, o_next)
                chooser = apply(params, o_next) if double_dqn else q_target
                bootstrap = q_target[rows, jnp.argmax(chooser, -1)]
                y = r + hparams.gamma * (1.0 - term.astype(jnp.float32)) * bootstrap
                params, opt_state, (value, q_taken) = gradient_step(params, opt_state, o, a, y)
                if record is not None:
                    record.append((float(value), float(q_taken)))
        if t % config.target_update_frequency == 0:
            target = optax.incremental_update(params, target, hparams.tau if polyak else 1.0)
    return params, target


def _largest_difference(a, b) -> float:
    return max(
        float(jnp.abs(x - y).max())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("double_dqn, target_update", [(True, "polyak"), (False, "hard")])
def test_a_chunk_equals_dqn_written_out_step_by_step(double_dqn, target_update):
    """Two environments stepping together, a ring of 10 slots that wraps six times, two
    gradient steps per iteration, time-outs every 3 steps: jrl's chunk ends on the parameters
    and target of the written-out algorithm — and not on those of the other target
    rule or of a target that stays put, so a double_dqn flag or a Polyak step that
    training ignored (or a tau applied the wrong way round) would show."""
    config = DQNConfig(
        num_envs=2,
        total_timesteps=64,
        buffer_size=10,
        batch_size=4,
        learning_starts=4,
        train_frequency=1,
        target_update_frequency=16,
        target_update=target_update,
        double_dqn=double_dqn,
        log_frequency=64,
        hidden_sizes=(8,),
    )
    polyak = target_update == "polyak"
    # A large step, so that online and target networks part enough to choose
    # different next actions.
    hparams = DQNHParams(lr=3e-2, tau=0.3 if polyak else 1.0, huber_delta=0.5, gamma=0.9)
    env, env_params = make("CartPole-v1", max_steps_in_episode=3)
    agent = make_dqn(config, env, env_params)
    state = agent.init(jax.random.key(0), hparams)
    after, metrics = agent.update(state, hparams)
    steps = []
    params, target = _reference_chunk(agent, config, hparams, state, double_dqn, polyak, steps)
    assert _largest_difference(after.params, params) < 1e-6
    assert _largest_difference(after.target_params, target) < 1e-6
    # The chunk's metrics are the means over its gradient steps.
    assert int(metrics.gradient_steps) == len(steps) > 1
    loss, q_value = np.mean(steps, axis=0)
    assert float(metrics.loss) == pytest.approx(loss, rel=1e-5)
    assert float(metrics.q_value) == pytest.approx(q_value, rel=1e-5, abs=1e-6)
    moved = _largest_difference(after.params, state.params)
    assert moved > 1e-3
    other_rule, _ = _reference_chunk(agent, config, hparams, state, not double_dqn, polyak)
    assert _largest_difference(after.params, other_rule) > 1e-4
    if polyak:
        _, copied = _reference_chunk(agent, config, hparams, state, double_dqn, polyak=False)
        assert _largest_difference(after.target_params, copied) > 1e-4
        assert _largest_difference(after.target_params, state.target_params) > 1e-4


def test_each_chunk_draws_its_own_noise_and_reports_the_rate_at_its_last_step():
    """Two chunks of two iterations, each of two vector steps of two envs: the epsilon
    reported is the rate at a chunk's last vector step (t = 18 and 38 of 40 on a
    schedule over the whole run), and at epsilon 1, where actions come from the chunk's
    uniforms alone, the second chunk does not play the first one's actions again."""
    config = DQNConfig(
        num_envs=2,
        train_frequency=4,
        total_timesteps=40,
        log_frequency=20,
        buffer_size=40,
        batch_size=4,
        learning_starts=4,
        target_update_frequency=4,
        hidden_sizes=(8,),
    )
    assert config.vector_steps_per_iteration == 2 and config.num_chunks == 2
    env, env_params = make("CartPole-v1")
    train = jax.jit(make_train(config, env, env_params))  # one compile: hparams are traced
    annealed = DQNHParams(epsilon_start=1.0, epsilon_end=0.0, epsilon_decay_fraction=1.0)
    _, metrics = train(jax.random.key(0), annealed)
    np.testing.assert_allclose(metrics.epsilon, [1 - 18 / 40, 1 - 38 / 40], atol=1e-6)
    state, _ = train(jax.random.key(0), DQNHParams(epsilon_start=1.0, epsilon_end=1.0))
    actions = np.asarray(state.buffer.data.action)  # the ring holds both chunks, in order
    assert not np.array_equal(actions[:20], actions[20:])


def test_the_greedy_policy_takes_the_action_of_the_highest_q_value():
    env, env_params = make("CartPole-v1")
    agent = make_dqn(DQNConfig(hidden_sizes=(8,)), env, env_params)
    params = agent.network.init(jax.random.key(1), jnp.zeros((1, 4)))
    obs = jax.random.normal(jax.random.key(2), (64, 4))
    actions = greedy_policy(agent.network, params)(None, obs)
    q = np.asarray(agent.network.apply(params, obs))
    np.testing.assert_array_equal(actions, q.argmax(-1))
    assert 0 < int(actions.sum()) < 64  # both actions come up: the argmax is tested


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_envs": 0}, "num_envs"),
        ({"total_timesteps": 1e5}, "total_timesteps"),
        ({"buffer_size": 5}, "buffer_size"),
        # 8 transitions stored before each iteration's gradient step: 4 of them unsampled.
        (
            {"num_envs": 2, "train_frequency": 8, "buffer_size": 4, "batch_size": 4},
            r"buffer_size=4 must hold one iteration's transitions \(.* = 8\)",
        ),
        ({"batch_size": 20_000}, "batch_size"),
        ({"learning_starts": -1}, "learning_starts"),
        ({"learning_starts": 500_001}, "learning_starts"),
        ({"total_timesteps": 2**31, "log_frequency": 2**20 * 10}, "total_timesteps"),
        ({"buffer_size": 2**31}, "buffer_size"),
        ({"eval_every": 51}, "eval_every"),
        ({"train_frequency": 4}, "train_frequency"),
        ({"target_update_frequency": 505}, "target_update_frequency"),
        # No target update after learning starts: the target stays the initial network.
        ({"target_update_frequency": 1_000_000}, "target_update_frequency=1000000: no target"),
        # Learning from the first step: its first gradient step is after one iteration.
        ({"learning_starts": 0, "target_update_frequency": 1_000_000}, "no target update"),
        (
            {"learning_starts": 400_000, "target_update_frequency": 300_000},
            r"no target update would come after the first gradient step \(at step 400000",
        ),
        ({"log_frequency": 1005}, "log_frequency"),
        ({"total_timesteps": 5000}, "total_timesteps"),
        ({"target_update": "soft"}, "target_update"),
        ({"double_dqn": 1}, "double_dqn"),
        ({"clip_gradients": "no"}, "clip_gradients"),
        ({"network": "transformer"}, "network"),
        ({"activation": "gelu"}, "activation"),
        ({"hidden_sizes": [64]}, "hidden_sizes"),
        ({"kernel_init": "xavier"}, "kernel_init"),
    ],
)
def test_config_rejects_impossible_settings_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DQNConfig(**kwargs)
    # The limits themselves are runs: the last iteration's gradient step, the last row.
    DQNConfig(learning_starts=500_000, eval_every=50)
    DQNConfig(learning_starts=400_000, target_update_frequency=250_000)


def test_config_derived_loop_sizes():
    config = DQNConfig(num_envs=4, train_frequency=1, total_timesteps=10_000, log_frequency=1000)
    assert config.iteration_steps == 4 and config.gradient_steps_per_iteration == 4
    assert (config.iterations_per_chunk, config.num_chunks) == (250, 10)
    config = DQNConfig(
        num_envs=4, train_frequency=8, target_update_frequency=504, log_frequency=1000
    )
    assert (config.vector_steps_per_iteration, config.gradient_steps_per_iteration) == (2, 1)


@pytest.mark.parametrize(
    "num_envs, train_frequency, vector_steps, gradient_steps", [(4, 2, 1, 2), (2, 4, 2, 1)]
)
def test_chunk_noise_samples_only_slots_filled_by_each_iteration(
    num_envs, train_frequency, vector_steps, gradient_steps
):
    """Iteration i of a chunk samples after its I transitions are in: from the first
    min(size + (i + 1) I, capacity) slots, and from all of them once the ring is full —
    I = 4 transitions whether four envs step once or two envs step twice."""
    config = DQNConfig(
        num_envs=num_envs,
        train_frequency=train_frequency,
        buffer_size=50,
        batch_size=50,
        log_frequency=80,
    )
    chunk, steps = config.iterations_per_chunk, config.iteration_steps
    assert (chunk, steps, config.gradient_steps_per_iteration) == (20, 4, gradient_steps)
    noise = jax.jit(draw_chunk_noise, static_argnums=1)(jax.random.key(0), config, 6)
    assert noise.act_uniforms.shape == (chunk, vector_steps, num_envs, 2)
    assert noise.env_keys.shape == (chunk, vector_steps, num_envs)
    assert noise.slots.shape == (chunk, gradient_steps, 50)
    filled = np.minimum(6 + steps * np.arange(1, chunk + 1), 50)
    highest = np.asarray(noise.slots).max(axis=(1, 2))
    assert np.all(highest < filled)
    assert np.mean(highest == filled - 1) >= 0.5  # 100 draws over <= 50 slots: mostly
    assert np.asarray(noise.slots).min() == 0
    keys = jax.random.key_data(noise.env_keys).reshape(chunk * 4, -1)
    assert len(np.unique(np.asarray(keys), axis=0)) == chunk * 4  # 4 env steps an iteration
    other = draw_chunk_noise(jax.random.key(1), config, 6)
    assert not np.array_equal(noise.slots, other.slots)


@pytest.mark.parametrize(
    "name, overrides, config, message",
    [
        ("CatRoom-v0", {}, DQNConfig(), "observation='grid'"),
        ("CartPole-v1", {}, DQNConfig(network="cnn"), "grid observations"),
        # Each refusal names what to use instead.
        ("Catch-bsuite", {}, DQNConfig(network="cnn"), "network='mlp' takes it, flattened"),
        ("Pendulum-v1", {}, DQNConfig(), "discrete actions; Pendulum-v1 has Box"),
        ("Pendulum-v1", {}, DQNConfig(), "use PPO, whose Gaussian policy takes them"),
        # Not a jrl grid: no observation='grid' to point to.
        ("FrozenLake-misc", {}, DQNConfig(), "a scalar index (the tabular agents learn"),
    ],
)
def test_make_train_rejects_an_env_the_network_cannot_read(name, overrides, config, message):
    env, params = make(name, **overrides)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_train(config, env, params)


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.0),
        ("gamma", 1.5),
        ("tau", 0.0),
        ("epsilon_end", -0.1),
        ("huber_delta", 0.0),
        ("max_grad_norm", 0.0),  # a clip to norm 0 zeroes every gradient
        ("epsilon_decay_fraction", 0.0),  # a schedule over no steps
        # Each range's other end too, and epsilon_start's (no range was checked):
        ("epsilon_start", 1.5),
        ("epsilon_start", -0.1),
        ("gamma", -0.1),
        ("tau", 1.5),
        ("epsilon_decay_fraction", 1.5),
    ],
)
def test_check_hparams_rejects_impossible_values(field, value):
    check_hparams(DQNHParams())
    with pytest.raises(ValueError, match=field):
        check_hparams(DQNHParams()._replace(**{field: value}))


def test_a_hard_target_update_rejects_a_tau_it_would_ignore():
    env, params = make("CartPole-v1")
    grid = product_grid(DQNHParams(), tau=[0.01, 1.0])
    hard = make_train(DQNConfig(), env, params)
    with pytest.raises(ValueError, match="tau=.*target_update='polyak'"):
        run_sweep(hard, jax.random.key(0), grid, num_seeds=1, jit=False)
    with pytest.raises(ValueError, match="tau"):
        check_hparams(DQNHParams(tau=0.5), DQNConfig())
    check_hparams(DQNHParams(tau=1.0), DQNConfig())
    check_hparams(DQNHParams(tau=0.5), DQNConfig(target_update="polyak"))
    # Without clipping, max_grad_norm is never read.
    unclipped = make_train(DQNConfig(clip_gradients=False), env, params)
    with pytest.raises(ValueError, match="max_grad_norm=.*clip_gradients=False ignores it"):
        grid = product_grid(DQNHParams(), max_grad_norm=[1, 10])
        run_sweep(unclipped, jax.random.key(0), grid, 1)
    check_hparams(DQNHParams(max_grad_norm=1.0), DQNConfig())


@pytest.mark.parametrize("delta", [0.5, 10.0, 1e3, 1e7, 1e30])
def test_huber_loss_values_and_exact_gradients_for_any_delta(delta):
    error = jnp.array([0.01, 0.3, -0.7, 1.0, 3.0, -50.0, 2e3], jnp.float32)
    delta = jnp.float32(delta)
    e, d = np.asarray(error, np.float64), float(delta)
    expected = np.where(np.abs(e) <= d, 0.5 * e**2, d * (np.abs(e) - 0.5 * d))
    np.testing.assert_allclose(huber_loss(error, delta), expected, rtol=1e-6)
    gradient = jax.grad(lambda x: huber_loss(x, delta).sum())(error)
    # d/de = clip(e, -delta, delta), with no rounding: optax.huber_loss's gradient is
    # off by 1e-5 at delta 1e3 and zero at 1e30.
    np.testing.assert_array_equal(gradient, jnp.clip(error, -delta, delta))


# -------------------------------------------------------------- small runs

# Double DQN with Polyak target updates on CartPole cut at 10 steps (so episodes end
# by truncation as well as by termination), 2 seeds. The buffer holds exactly the last
# 500 steps, in order (its size divides the run).
SMALL = DQNConfig(
    num_envs=4,
    total_timesteps=2_000,
    buffer_size=500,
    batch_size=32,
    learning_starts=200,
    train_frequency=4,
    target_update_frequency=100,
    target_update="polyak",
    double_dqn=True,
    log_frequency=500,
    hidden_sizes=(32, 32),
)
SMALL_HPARAMS = DQNHParams(tau=0.5)


@pytest.mark.timeout(300)
def test_epsilon_decays_over_the_steps_run_not_the_remainder_dropped():
    """total_timesteps 2400 in chunks of 500 runs 2000 steps: an epsilon annealed over
    the whole run (fraction 1) must reach its end there, not stop a sixth short."""
    config = dataclasses.replace(SMALL, total_timesteps=2_400)
    assert config.steps_run == 2_000
    env, params = make("CartPole-v1")
    hparams = SMALL_HPARAMS._replace(epsilon_end=0.0, epsilon_decay_fraction=1.0)
    _, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0), hparams)
    # The last vector step of the run is taken at t = 2000 - num_envs.
    np.testing.assert_allclose(metrics.epsilon[-1], 1 - 1996 / 2000, atol=1e-6)


@pytest.fixture(scope="module")
def small():
    env, params = make("CartPole-v1")
    train = make_train(SMALL, env, params.replace(max_steps_in_episode=10))
    keys = jax.random.split(jax.random.key(7), 2)
    # Compiled as run_sweep compiles (its compiler options).
    run = jax.jit(jax.vmap(train, in_axes=(0, None)), compiler_options=compiler_options())
    state, metrics = jax.block_until_ready(run(keys, SMALL_HPARAMS))
    return train, run, keys, state, metrics


@pytest.mark.timeout(300)
def test_same_key_gives_bit_identical_results(small):
    _, run, keys, state, metrics = small
    state_again, metrics_again = run(keys, SMALL_HPARAMS)
    for a, b in zip(
        jax.tree.leaves((metrics, state.params, state.target_params)),
        jax.tree.leaves((metrics_again, state_again.params, state_again.target_params)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)  # NaNs (no episode ended) compare equal


@pytest.mark.timeout(300)
def test_same_key_gives_bit_identical_results_from_two_compilations(small, no_compilation_cache):
    """Built and compiled again, as another process would: anything drawn while tracing
    (Python's or NumPy's randomness, a dict's order) would tell the runs apart."""
    _, _, keys, state, metrics = small
    env, params = make("CartPole-v1")
    train = make_train(SMALL, env, params.replace(max_steps_in_episode=10))
    run = jax.jit(jax.vmap(train, in_axes=(0, None)), compiler_options=compiler_options())
    state_again, metrics_again = run(keys, SMALL_HPARAMS)
    for a, b in zip(
        jax.tree.leaves((metrics, state.params, state.target_params)),
        jax.tree.leaves((metrics_again, state_again.params, state_again.target_params)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.timeout(300)
def test_metrics_are_per_chunk(small):
    _, _, _, state, metrics = small
    for leaf in jax.tree.leaves(metrics):
        assert leaf.shape == (2, SMALL.num_chunks)
    np.testing.assert_array_equal(metrics.timesteps[0], [500, 1000, 1500, 2000])
    # Learning starts at 200 steps: 76 of the first chunk's 125 iterations learn.
    np.testing.assert_array_equal(metrics.gradient_steps[0], [76, 125, 125, 125])
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    assert np.all(np.asarray(state.timesteps) == 2000)
    # Polyak steps of 0.5 keep the target apart from the online network (the step
    # itself is checked by hand in test_a_chunk_equals_dqn_written_out_step_by_step).
    for a, b in zip(
        jax.tree.leaves(state.params), jax.tree.leaves(state.target_params), strict=True
    ):
        assert not np.allclose(a, b)


@pytest.mark.timeout(300)
def test_replay_stores_the_final_observation_at_episode_ends(small):
    """s' of a truncated (or terminated) transition is the pre-reset observation, not
    the next stored one (the reset); elsewhere s' is the next observation."""
    _, _, _, state, _ = small
    assert np.all(np.asarray(state.buffer.position) == 0)
    data = jax.tree.map(lambda x: np.asarray(x).reshape(2, 125, 4, *x.shape[2:]), state.buffer.data)
    done = data.terminated | data.truncated
    assert data.truncated.any() and data.terminated.any()
    same = np.all(data.next_obs[:, :-1] == data.obs[:, 1:], axis=-1)
    np.testing.assert_array_equal(same, ~done[:, :-1])


@pytest.mark.timeout(300)
def test_clip_gradients_false_traces_no_clip(small):
    """Without clipping, no global norm is traced and a tiny max_grad_norm changes
    nothing: the run equals a clipped one whose norm never binds (to float rounding:
    the two programs are compiled apart, and XLA may order a sum differently in each;
    on some hosts they agree bit for bit) and differs from one where it binds."""
    train, run, keys, _, _ = small
    env, params = make("CartPole-v1")
    unclipped = make_train(
        dataclasses.replace(SMALL, clip_gradients=False),
        env,
        params.replace(max_steps_in_episode=10),
    )

    def square_roots(fn):
        jaxpr = jax.make_jaxpr(fn)(keys[0], SMALL_HPARAMS)
        return str(jaxpr).count(" sqrt ")

    # Adam takes square roots either way; the global norm adds its own.
    assert square_roots(unclipped) < square_roots(train)
    tiny = SMALL_HPARAMS._replace(max_grad_norm=1e-3)
    _, free = jax.jit(jax.vmap(unclipped, in_axes=(0, None)))(keys, tiny)
    _, never_binds = run(keys, SMALL_HPARAMS._replace(max_grad_norm=1e30))
    _, binds = run(keys, tiny)
    np.testing.assert_allclose(free.loss, never_binds.loss, rtol=1e-6)
    np.testing.assert_allclose(free.q_value, never_binds.q_value, rtol=1e-6)
    assert not np.allclose(free.loss, binds.loss, rtol=1e-3)


@pytest.mark.timeout(300)
def test_a_sweep_grid_point_equals_that_configuration_run_alone(small):
    train, run, keys, _, _ = small
    grid = product_grid(SMALL_HPARAMS, lr=[1e-3, 2.5e-4], gamma=[0.9, 0.99])
    swept_state, swept = run_sweep(train, jax.random.key(7), grid, num_seeds=2)
    assert swept.loss.shape == (4, 2, SMALL.num_chunks)
    point = 2  # lr 2.5e-4, gamma 0.9
    hparams = jax.tree.map(lambda leaf: leaf[point], grid)
    assert float(hparams.lr) == pytest.approx(2.5e-4)
    assert float(hparams.gamma) == pytest.approx(0.9)
    alone_state, alone = run(keys, hparams)
    for a, b in zip(
        jax.tree.leaves((alone, alone_state.params)),
        jax.tree.leaves((swept, swept_state.params)),
        strict=True,
    ):
        # Close, not equal: XLA:CPU fuses a batch of 4 x 2 runs otherwise than one of 2
        # (README, "Same seed, same numbers"); a mixed-up grid point is far off.
        np.testing.assert_allclose(a, np.asarray(b)[point], rtol=1e-5, atol=1e-6)
    assert not np.allclose(swept.loss[0], swept.loss[point])  # the grid points differ


# ------------------------------------------------------------------- CartPole

# PureJaxRL's CartPole DQN settings (the DQNConfig / DQNHParams defaults: 10 envs,
# buffer 10k, batch 128, lr 2.5e-4, epsilon 1 -> 0.05 over 25% of the run, learning
# from 1000 steps, a gradient step every 10 steps, hard target update every 500) with
# a Huber loss of delta 10. 1e5 steps is the smallest budget tried (5e4, 7e4, 8e4,
# 1e5) whose 4-seed mean passed for every key tried (3 keys: 500, 395, 312); 7e4
# gave 209-384 and 8e4 230 (DQN on CartPole has deep dips: the threshold is the mean).
CARTPOLE = DQNConfig(total_timesteps=100_000, log_frequency=5_000)
NUM_SEEDS = 4


@pytest.fixture(scope="module")
def cartpole():
    env, params = make("CartPole-v1")
    dqn = make_dqn(CARTPOLE, env, params)
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    state, metrics = jax.block_until_ready(
        jax.jit(jax.vmap(dqn.train, in_axes=(0, None)))(keys, DQNHParams())
    )
    return dqn, keys, state, metrics


@pytest.mark.timeout(300)
def test_dqn_learns_cartpole_over_vmapped_seeds(cartpole):
    _, _, _, metrics = cartpole
    returns = np.asarray(metrics.episode_return)
    assert returns.shape == (NUM_SEEDS, CARTPOLE.num_chunks)
    # Mean return of the episodes ended in the last 10k steps, averaged over seeds.
    final = np.nanmean(returns[:, -2:], axis=1)
    assert final.mean() >= 200, final
    assert np.nanmean(returns[:, 0]) < 40  # it started near random (~22)
    epsilon = np.asarray(metrics.epsilon[0])
    assert epsilon[0] > 0.5 and epsilon[-1] == pytest.approx(0.05)


@pytest.mark.timeout(300)
def test_vmapped_seeds_get_distinct_params_and_data(cartpole):
    dqn, keys, _, metrics = cartpole
    initial = jax.jit(jax.vmap(dqn.init, in_axes=(0, None)))(keys, DQNHParams())
    kernel = np.asarray(initial.params["params"]["torso"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(
        kernel, initial.target_params["params"]["torso"]["Dense_0"]["kernel"]
    )
    first_obs = np.asarray(initial.obs)
    for envs_first_obs in first_obs:  # each env of a seed starts from a reset of its own
        assert len(np.unique(envs_first_obs, axis=0)) == len(envs_first_obs) > 1
    loop_keys = np.asarray(jax.random.key_data(initial.key))  # acting's and sampling's keys
    for i in range(NUM_SEEDS):
        for j in range(i):
            assert not np.array_equal(loop_keys[i], loop_keys[j])
            assert not np.allclose(kernel[i], kernel[j])
            assert not np.allclose(first_obs[i], first_obs[j])
            assert not np.array_equal(metrics.loss[i], metrics.loss[j])
            assert not np.array_equal(metrics.num_episodes[i], metrics.num_episodes[j])


# --------------------------------------------------------------------- cat room


@pytest.mark.timeout(300)
def test_dqn_solves_the_static_cat_room_greedy_cat_scratches_the_tall_post():
    """The greedy policy walks the 12 steps to the tall post (+10) past the rug (+1, 4
    steps) for most seeds. Epsilon-greedy from 1 gives Q-learning random episodes, 3% of
    which end on the tall post. Double DQN made it reliable: after 5e4 steps 148 of 160
    seeds (20 keys x 8) took the tall post, the rest the rug or a loop; 4e4 steps gave
    138-143 of 160 for three random streams of the loop (149-152 for two streams drawn
    before DQN drew a chunk's randomness at once, ``ChunkNoise``), and the plain max
    target 20 of 24 (3 keys) at 4e4; 3e4 steps gave 12 of 16. gamma 0.95 (0.99 left most
    greedy policies looping at this budget). The grid observation is flattened for the
    MLP: the CNN torso ran at ~1.2k steps/s here, 15x slower. Peak memory ~1 GB (the
    replay holds 462-float grids)."""
    from gymnax.wrappers.purerl import FlattenObservationWrapper

    env, params = make("CatRoom-v0", observation="grid")
    env = FlattenObservationWrapper(env)
    config = DQNConfig(
        num_envs=8,
        total_timesteps=50_000,
        buffer_size=10_000,
        batch_size=64,
        learning_starts=500,
        train_frequency=8,
        target_update_frequency=400,
        double_dqn=True,
        log_frequency=2_000,
        hidden_sizes=(64, 64),
    )
    dqn = make_dqn(config, env, params)
    hparams = DQNHParams(lr=1e-3, gamma=0.95, epsilon_decay_fraction=0.5)

    def run(key):
        state, metrics = dqn.train(key, hparams)
        return metrics, greedy_episode(key, env, params, dqn.network, state.params, 100)

    num_seeds = 8
    metrics, (greedy_return, greedy_length, terminated) = jax.jit(jax.vmap(run))(
        jax.random.split(jax.random.key(0), num_seeds)
    )
    assert np.nanmean(np.asarray(metrics.episode_return)[:, 0]) < 0  # furniture at first
    tall = (np.asarray(greedy_return) == 10.0) & np.asarray(terminated)
    assert tall.sum() >= 6, greedy_return  # 6 of 8 with this key
    np.testing.assert_array_equal(np.asarray(greedy_length)[tall], 12)  # the shortest path


def test_defaults_are_the_documented_ones():
    """DQNHParams' and DQNConfig's docstrings give these values (PureJaxRL's but decay
    0.25, clip 10, delta 10; learning_starts 1000, orthogonal); no fast test read them."""
    assert DQNHParams() == DQNHParams(
        lr=2.5e-4,
        gamma=0.99,
        tau=1.0,
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=0.25,
        max_grad_norm=10.0,
        huber_delta=10.0,
    )
    config = DQNConfig()
    expected = dict(
        num_envs=10,
        total_timesteps=500_000,
        buffer_size=10_000,
        batch_size=128,
        learning_starts=1_000,
        train_frequency=10,
        target_update_frequency=500,
        target_update="hard",
        double_dqn=False,
        clip_gradients=True,
        log_frequency=10_000,
        network="mlp",
        hidden_sizes=(120, 84),
        activation="relu",
        kernel_init="orthogonal",
    )
    assert {k: getattr(config, k) for k in expected} == expected


def test_a_ring_of_exactly_one_iteration_is_accepted():
    """The refusal is for a ring smaller than one iteration's transitions; one that
    holds exactly them loses none."""
    config = DQNConfig(
        num_envs=4,
        train_frequency=4,
        buffer_size=4,
        batch_size=4,
        learning_starts=4,
        target_update_frequency=4,
        total_timesteps=40,
        log_frequency=40,
    )
    assert config.buffer_size == config.iteration_steps


def test_replay_refuses_a_bool_capacity_and_an_unbatched_leaf():
    """buffer_init(capacity=True) was taken; an unbatched leaf was an IndexError."""
    with pytest.raises(ValueError, match="capacity"):
        buffer_init({"x": jnp.zeros(2)}, capacity=True)
    buffer = buffer_init({"obs": jnp.zeros(2), "reward": 0.0}, capacity=4)
    with pytest.raises(ValueError, match=r"\['reward'\]: .* needs shape \[B"):
        buffer_add(buffer, {"obs": jnp.zeros((1, 2)), "reward": jnp.float32(1.0)})


def tiny_config(**changes) -> DQNConfig:
    """Four CartPole environments, a step of each per gradient step, two chunks of 40."""
    settings = dict(
        num_envs=4, train_frequency=4, total_timesteps=80, log_frequency=40, buffer_size=80,
        batch_size=4, learning_starts=8, target_update_frequency=8, hidden_sizes=(8,),
    )  # fmt: skip
    return DQNConfig(**{**settings, **changes})


class NegatedScaledCartPole(CartPole):
    """CartPole paying -2.5 a step (instead of +1): return and length part, and a
    reward outside [-1, 1] shows any clipping."""

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, -2.5 * reward, terminated, info


def test_episode_metrics_and_stored_rewards_on_five_step_episodes():
    """Every other test pays +1 a step, where return = length and a reward clip changes
    nothing. Here episodes are cut at 5 steps (CartPole cannot fall in 5),
    4 envs in sync, chunks of 40 steps: each chunk ends 8 episodes of length 5 and
    return -12.5, and the replay holds the env's reward -2.5 for every step."""
    env = NegatedScaledCartPole()
    params = env.default_params.replace(max_steps_in_episode=5)
    config = tiny_config()
    agent = make_dqn(config, env, params)
    state, metrics = jax.jit(agent.train)(jax.random.key(0), DQNHParams())
    np.testing.assert_array_equal(metrics.num_episodes, [8, 8])
    np.testing.assert_array_equal(metrics.episode_length, [5.0, 5.0])
    np.testing.assert_array_equal(metrics.episode_return, [-12.5, -12.5])
    assert not np.asarray(state.buffer.data.terminated).any()
    np.testing.assert_array_equal(state.buffer.data.reward, np.full(80, -2.5, np.float32))


def test_a_chunk_samples_from_every_filled_slot_of_a_full_ring(monkeypatch):
    """Once the ring is full (position back at 0, size =
    capacity), a chunk's slots must be drawn from all of it, not from the slots written
    since position 0 (the last chunk's transitions only). The chunk test starts empty,
    where size == position, and the chunk-noise test calls draw_chunk_noise itself."""
    import jrl.agents.dqn as dqn

    env, params = CartPole(), CartPole().default_params
    config = tiny_config(
        total_timesteps=32, log_frequency=16, buffer_size=16, learning_starts=4,
        target_update_frequency=4,
    )  # fmt: skip
    agent = make_dqn(config, env, params)
    state, _ = agent.update(agent.init(jax.random.key(0), DQNHParams()), DQNHParams())
    assert (int(state.buffer.position), int(state.buffer.size)) == (0, 16)
    seen = []
    draw = dqn.draw_chunk_noise

    def recording(key, config, buffer_size):
        seen.append(int(buffer_size))
        return draw(key, config, buffer_size)

    monkeypatch.setattr(dqn, "draw_chunk_noise", recording)
    agent.update(state, DQNHParams())
    assert seen == [16]


def test_buffer_sample_draws_from_every_slot_of_a_wrapped_ring():
    """After the ring wraps (position 1, size 5) sampling
    must reach all five slots; the suite's sampling test has position == size."""
    buffer = buffer_init({"action": jnp.int32(0)}, capacity=5)
    buffer = buffer_add(buffer, {"action": jnp.arange(1, 4)})
    buffer = buffer_add(buffer, {"action": jnp.arange(4, 7)})  # 6 overwrites slot 0
    assert (int(buffer.position), int(buffer.size)) == (1, 5)
    actions = np.asarray(buffer_sample(jax.random.key(0), buffer, 500)["action"])
    assert set(actions.tolist()) == {2, 3, 4, 5, 6}


def test_a_chunk_without_gradient_steps_reports_nan_loss():
    """DQNMetrics documents NaN loss and q_value for a chunk with no gradient step (the
    gymnax test skips that chunk's loss); a 0 would read as a perfect fit. With
    learning_starts 41 the first gradient step is at t = 44."""
    env, params = CartPole(), CartPole().default_params
    config = tiny_config(learning_starts=41)
    _, metrics = jax.jit(make_dqn(config, env, params).train)(jax.random.key(0), DQNHParams())
    np.testing.assert_array_equal(metrics.gradient_steps, [0, 10])
    assert np.isnan(metrics.loss[0]) and np.isnan(metrics.q_value[0])
    assert np.isfinite(metrics.loss[1]) and np.isfinite(metrics.q_value[1])
