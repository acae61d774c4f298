"""The tabular agent split into init / update / finished for chunked training.

``make_train``'s results must not move when its loop is rebuilt from those pieces, and a
host driver that runs ``update`` K times per jitted call until ``finished`` must give the
same numbers bit for bit. ``_reference_make_train`` below is a frozen copy of the loop as
it was before the split (commit 7502c87), its random numbers drawn as since the change
that draws an iteration's in one call (``_draw`` below, a copy of ``tabular.draw``): if
you change the algorithm on purpose, change it here too.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.agents.tabular import (
    TabularConfig,
    TabularHParams,
    TabularMetrics,
    TabularState,
    _set_unless_out_of_range,
    expected_sarsa_target,
    init_model,
    make_policy,
    make_tabular,
    make_train,
    num_states_of,
    plan,
    q_learning_target,
    sarsa_target,
    td_update,
    update_model,
)
from jrl.envs import make

pytestmark = pytest.mark.timeout(300)


class _Carry(NamedTuple):
    q_values: jax.Array
    model: Any
    env_state: Any
    obs: jax.Array
    action: jax.Array
    step: jax.Array
    episode: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    returns: jax.Array
    lengths: jax.Array


def _draw(key, num_keys, num_uniforms):
    """Frozen copy of ``jrl.agents.tabular.draw``: keys and uniforms from one block of words."""
    width = jax.random.key_data(key).shape[-1]
    words = jax.random.bits(key, (num_keys * width + num_uniforms,), jnp.uint32)
    keys = jax.random.wrap_key_data(
        words[: num_keys * width].reshape(num_keys, width), impl=jax.random.key_impl(key)
    )
    mantissas = (words[num_keys * width :] >> 9) | np.uint32(0x3F800000)
    return keys, jax.lax.bitcast_convert_type(mantissas, jnp.float32) - 1.0


def _reference_make_train(config: TabularConfig, env, env_params):
    """make_train as of commit 7502c87 (a while_loop of scans whose steps past the budget
    change nothing), drawing its random numbers as make_train does now."""
    num_states = num_states_of(env, env_params)
    num_actions = env.action_space(env_params).n
    num_episodes = config.num_episodes
    algorithms = config.algorithms
    is_dyna = algorithms[0].startswith("dyna")
    bonus = algorithms[0] == "dyna_q_plus"
    num_uniforms = 4 + 2 * config.planning_steps

    def train(key: jax.Array, hparams: TabularHParams):
        hparams = TabularHParams(*(jnp.asarray(v, jnp.float32) for v in hparams))
        sample, probs = make_policy(config, hparams)
        which = jnp.clip(hparams.algorithm, 0, len(algorithms) - 1).astype(jnp.int32)
        (key_reset, key_steps), u_first = _draw(key, 2, 2)
        obs, env_state = env.reset(key_reset, env_params)
        q_values = jnp.full((num_states, num_actions), hparams.q_init, jnp.float32)

        def real_step(carry: _Carry, randomness):
            key_env, uniforms = randomness
            active = (carry.episode < num_episodes) & (carry.step < config.max_steps)
            u_next, u_bootstrap = uniforms[:2], uniforms[2:4]
            u_plan = uniforms[4:].reshape(config.planning_steps, 2)
            state, action = carry.obs, carry.action
            obs, env_state, reward, terminated, truncated, info = env.step(
                key_env, carry.env_state, action, env_params
            )
            final_obs = info["final_observation"]
            done = terminated | truncated
            discount = hparams.gamma * (1.0 - terminated.astype(jnp.float32))
            q_next = carry.q_values[final_obs]
            targets = []
            for name in algorithms:
                if name == "sarsa":
                    bootstrap_action = sample(u_bootstrap, q_next, carry.step + 1)
                    targets.append(sarsa_target(q_next, bootstrap_action, reward, discount))
                elif name == "expected_sarsa":
                    next_probs = probs(q_next, carry.step + 1)
                    targets.append(expected_sarsa_target(q_next, next_probs, reward, discount))
                else:
                    targets.append(q_learning_target(q_next, reward, discount))
            target = targets[0] if len(targets) == 1 else jax.lax.select_n(which, *targets)
            q = td_update(carry.q_values, state, action, target, hparams.alpha, active)
            model = carry.model
            step = carry.step + 1
            if is_dyna:
                model = update_model(
                    model, state, action, reward, final_obs, terminated, step, active
                )
                if config.planning_steps:
                    q = plan(u_plan, q, model, hparams, step, bonus, active)
            next_action = sample(u_next, q[obs], step)
            if "sarsa" in algorithms:
                fresh = done
                if len(algorithms) > 1:
                    fresh = done | (which != algorithms.index("sarsa"))
                next_action = jnp.where(fresh, next_action, bootstrap_action)

            episode_return = carry.episode_return + reward
            episode_length = carry.episode_length + 1
            slot = jnp.where(active & done, carry.episode, num_episodes)
            keep = lambda new, old: jax.tree.map(  # noqa: E731
                lambda n, o: jnp.where(active, n, o), new, old
            )
            return _Carry(
                q_values=q,
                model=model,
                env_state=keep(env_state, carry.env_state),
                obs=keep(obs, carry.obs),
                action=keep(next_action, carry.action),
                step=keep(step, carry.step),
                episode=carry.episode + (active & done),
                episode_return=keep(jnp.where(done, 0.0, episode_return), carry.episode_return),
                episode_length=keep(jnp.where(done, 0, episode_length), carry.episode_length),
                returns=_set_unless_out_of_range(carry.returns, slot, episode_return),
                lengths=_set_unless_out_of_range(carry.lengths, slot, episode_length),
            ), None

        def iteration(loop):
            carry, key = loop
            steps = config.steps_per_iteration
            keys, uniforms = _draw(key, 1 + steps, steps * num_uniforms)
            randomness = (keys[1:], uniforms.reshape(steps, num_uniforms))
            carry, _ = jax.lax.scan(real_step, carry, randomness)
            return carry, keys[0]

        def running(loop):
            carry, _ = loop
            return (carry.episode < num_episodes) & (carry.step < config.max_steps)

        carry = _Carry(
            q_values=q_values,
            model=init_model(num_states, num_actions) if is_dyna else init_model(0, 0),
            env_state=env_state,
            obs=obs,
            action=sample(u_first, q_values[obs], jnp.int32(0)),
            step=jnp.int32(0),
            episode=jnp.int32(0),
            episode_return=jnp.float32(0.0),
            episode_length=jnp.int32(0),
            returns=jnp.zeros(num_episodes, jnp.float32),
            lengths=jnp.zeros(num_episodes, jnp.int32),
        )
        carry, _ = jax.lax.while_loop(running, iteration, (carry, key_steps))
        metrics = TabularMetrics(carry.returns, carry.lengths, carry.episode, carry.step)
        return TabularState(carry.q_values, carry.model), metrics

    return train


# (env id, env overrides, config, hparams): every code path of the step, both stopping
# rules, a step count that does not divide by steps_per_iteration, several algorithms
# in one program, time-outs.
CASES = {
    "q_learning": (
        "CliffWalking-v0",
        {},
        TabularConfig(num_episodes=20),
        TabularHParams(),
    ),
    "sarsa_boltzmann_step_budget": (
        "WindyGridworld-v0",
        {},
        TabularConfig(
            algorithm="sarsa",
            exploration="boltzmann",
            schedule="linear",
            num_episodes=1000,
            max_steps=333,
            steps_per_iteration=7,
        ),
        TabularHParams(temperature=2.0, decay_steps=200.0, q_init=-1.0),
    ),
    "expected_sarsa_timeouts": (
        "CatRoom-v0",
        {"max_steps_in_episode": 9},
        TabularConfig(algorithm="expected_sarsa", schedule="exponential", num_episodes=30),
        TabularHParams(gamma=0.9, epsilon=0.5, decay_steps=100.0),
    ),
    "dyna_q": (
        "DynaMaze-v0",
        {},
        TabularConfig(algorithm="dyna_q", planning_steps=5, num_episodes=3),
        TabularHParams(alpha=0.1, gamma=0.95),
    ),
    "dyna_q_plus": (
        "BlockingMaze-v0",
        {},
        TabularConfig(algorithm="dyna_q_plus", planning_steps=4, num_episodes=100, max_steps=600),
        TabularHParams(alpha=1.0, gamma=0.95, kappa=1e-3),
    ),
    "one_program_three_rules": (
        "CliffWalking-v0",
        {},
        TabularConfig(algorithm=("sarsa", "q_learning", "expected_sarsa"), num_episodes=15),
        TabularHParams(algorithm=np.array([0.0, 1.0, 2.0], np.float32)),
    ),
}


def _case(name):
    env_id, overrides, config, hparams = CASES[name]
    env, params = make(env_id, **overrides)
    return env, params, config, hparams


def _keys_and_hparams(hparams, num_seeds=3):
    """Seeds x grid points flattened to one batch axis (every seed with every point)."""
    num_points = np.size(hparams.algorithm)
    keys = jax.random.split(jax.random.key(11), num_seeds)
    keys = jnp.tile(keys, num_points)
    batch = jax.tree.map(lambda v: np.repeat(np.broadcast_to(v, num_points), num_seeds), hparams)
    return keys, batch


def _assert_bitwise_equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        assert x.tobytes() == y.tobytes()


def _episode_slots_cut(results, config):
    """The reference's results with its episode buffers cut from num_episodes to
    make_train's min(num_episodes, max_steps) slots, checking that the cut-off slots
    held nothing (no run completes more episodes than it takes steps)."""
    state, metrics = results
    slots = min(config.num_episodes, config.max_steps)
    for buffer in (metrics.episode_returns, metrics.episode_lengths):
        assert not np.asarray(buffer)[..., slots:].any()
    # make_train gives the slots a step budget left unplayed no return (NaN).
    played = np.arange(slots) < np.asarray(metrics.num_completed)[..., None]
    cut = metrics._replace(
        episode_returns=np.where(played, metrics.episode_returns[..., :slots], np.float32(np.nan)),
        episode_lengths=metrics.episode_lengths[..., :slots],
    )
    return state, cut


@pytest.mark.parametrize("name", list(CASES))
def test_train_gives_the_numbers_of_the_loop_before_the_split(name):
    env, params, config, hparams = _case(name)
    keys, batch = _keys_and_hparams(hparams)
    reference = jax.jit(jax.vmap(_reference_make_train(config, env, params)))(keys, batch)
    ours = jax.jit(jax.vmap(make_train(config, env, params)))(keys, batch)
    _assert_bitwise_equal(ours, _episode_slots_cut(reference, config))
    # Unbatched (the sequential sweep's path) too, on one run.
    one = jax.tree.map(lambda x: x[-1], (keys, batch))
    reference = jax.jit(_reference_make_train(config, env, params))(*one)
    _assert_bitwise_equal(
        jax.jit(make_train(config, env, params))(*one), _episode_slots_cut(reference, config)
    )


def _run_in_chunks(tabular, keys, hparams, iterations_per_chunk):
    """A host driver: K updates per jitted call until every run has finished."""

    @jax.jit
    def chunk(state):
        return jax.lax.scan(
            lambda s, _: jax.vmap(tabular.update)(s, hparams), state, length=iterations_per_chunk
        )

    state = jax.jit(jax.vmap(tabular.init))(keys, hparams)
    rows = []
    while not bool(jax.vmap(tabular.finished)(state).all()):
        state, metrics = chunk(state)
        rows.append(metrics)
    return state, jax.tree.map(lambda *x: np.concatenate(x), *rows)


@pytest.mark.parametrize(
    "name", ["sarsa_boltzmann_step_budget", "expected_sarsa_timeouts", "dyna_q_plus"]
)
def test_updates_in_chunks_give_what_train_gives(name):
    env, params, config, hparams = _case(name)
    keys, batch = _keys_and_hparams(hparams)
    tabular = make_tabular(config, env, params)
    # 5 iterations a chunk: runs end mid-chunk (and, counting episodes, at different
    # iterations), so the last chunk calls update on finished runs.
    state, rows = _run_in_chunks(tabular, keys, batch, iterations_per_chunk=5)
    _assert_bitwise_equal(
        jax.vmap(tabular.results)(state), jax.jit(jax.vmap(tabular.train))(keys, batch)
    )

    # The per-iteration rows account for every step and every completed episode.
    active = rows.active  # [iterations, runs]
    assert not active.all()  # some iterations ran after their run had finished...
    assert (np.diff(active.astype(int), axis=0) <= 0).all()  # ...and only after
    np.testing.assert_array_equal(rows.timesteps[-1], state.step)
    np.testing.assert_array_equal(rows.num_episodes.sum(0), state.episode)
    assert (rows.num_episodes[~active] == 0).all()
    ended = rows.num_episodes > 0
    assert np.isnan(rows.episode_return[~ended]).all()
    totals = np.where(ended, rows.episode_return * rows.num_episodes, 0.0).sum(0)
    np.testing.assert_allclose(totals, np.asarray(state.returns).sum(-1), rtol=1e-5)
    lengths = np.where(ended, rows.episode_length * rows.num_episodes, 0.0).sum(0)
    np.testing.assert_allclose(lengths, np.asarray(state.lengths).sum(-1), rtol=1e-5)


def test_update_of_a_finished_run_changes_nothing():
    # q_init -0.0: an update that added a zero step would turn it into +0.0.
    env, params, config, _ = _case("q_learning")
    tabular = make_tabular(config, env, params)
    hparams = TabularHParams(q_init=-0.0)
    state = jax.jit(tabular.init)(jax.random.key(0), hparams)
    update = jax.jit(tabular.update)
    while not bool(tabular.finished(state)):
        state, metrics = update(state, hparams)
        assert bool(metrics.active)
    again, metrics = update(state, hparams)
    assert not bool(metrics.active) and int(metrics.num_episodes) == 0
    assert int(metrics.timesteps) == int(state.step)
    _assert_bitwise_equal(jax.random.key_data(again.key), jax.random.key_data(state.key))
    _assert_bitwise_equal(again._replace(key=None), state._replace(key=None))
