"""Unit tests of the tabular update rules, exploration, Dyna model and training loop."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.agents import exploration
from jrl.agents.tabular import (
    TabularConfig,
    TabularHParams,
    check_hparams,
    draw,
    expected_sarsa_target,
    greedy_episode,
    init_model,
    make_policy,
    make_tabular,
    make_train,
    plan,
    q_learning_target,
    sarsa_target,
    td_update,
    update_model,
)
from jrl.envs import make
from jrl.sweep import product_grid, run_sweep, stack_grid

Q_NEXT = jnp.array([1.0, 3.0, 2.0])


@pytest.mark.parametrize("jit", [False, True])
def test_targets_match_hand_computed_values(jit):
    wrap = jax.jit if jit else (lambda f: f)
    # r + discount * max Q(s') = 1 + 0.5 * 3
    assert wrap(q_learning_target)(Q_NEXT, 1.0, 0.5) == pytest.approx(2.5)
    # r + discount * Q(s', a'=2) = 1 + 0.5 * 2
    assert wrap(sarsa_target)(Q_NEXT, 2, 1.0, 0.5) == pytest.approx(2.0)
    # r + discount * (0.1 * 1 + 0.8 * 3 + 0.1 * 2) = 1 + 0.5 * 2.7
    probs = jnp.array([0.1, 0.8, 0.1])
    assert wrap(expected_sarsa_target)(Q_NEXT, probs, 1.0, 0.5) == pytest.approx(2.35)
    # Terminal transition: discount 0 leaves the reward alone.
    assert wrap(q_learning_target)(Q_NEXT, -1.0, 0.0) == pytest.approx(-1.0)


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_draw_gives_keys_and_the_uniforms_jax_random_would(impl):
    key = jax.random.key(3, impl=impl)
    keys, uniforms = jax.jit(draw, static_argnums=(1, 2))(key, 3, 5)
    assert keys.shape == (3,) and jax.random.key_impl(keys) == jax.random.key_impl(key)
    assert len({tuple(np.asarray(k)) for k in jax.random.key_data(keys)}) == 3
    assert uniforms.shape == (5,) and uniforms.dtype == jnp.float32
    # Alone, the uniforms are jax.random.uniform's bit for bit (the same words, the same
    # mantissa trick); after keys they are the words that follow.
    np.testing.assert_array_equal(draw(key, 0, 5)[1], jax.random.uniform(key, (5,)))
    assert ((uniforms >= 0) & (uniforms < 1)).all()


def test_td_update_moves_one_entry_by_alpha_times_error():
    q = jnp.zeros((3, 2)).at[1, 0].set(2.0)
    updated = td_update(q, 1, 0, 4.0, 0.5)  # 2 + 0.5 * (4 - 2)
    assert updated[1, 0] == pytest.approx(3.0)
    assert jnp.count_nonzero(updated - q) == 1
    assert jnp.array_equal(td_update(q, 1, 0, 4.0, 0.5, active=False), q)


def test_epsilon_greedy_probs_share_greedy_mass_among_ties():
    probs = exploration.epsilon_greedy_probs(jnp.array([1.0, 3.0, 3.0, 0.0]), 0.2)
    np.testing.assert_allclose(probs, [0.05, 0.45, 0.45, 0.05], rtol=1e-6)


def _softmax_by_hand(q_values, temperature):
    weights = np.exp(np.asarray(q_values, np.float64) / temperature)
    return weights / weights.sum()


@pytest.mark.parametrize("temperature", [0.1, 0.7, 5.0])
def test_boltzmann_probs_are_softmax_of_q_over_temperature(temperature):
    """pi(a) = exp(Q(a)/T) / sum_b exp(Q(b)/T) (Sutton & Barto 2.8): a low temperature
    is nearly greedy, a high one nearly uniform."""
    q_values = jnp.array([1.0, 3.0, 3.0, 0.0])
    probs = exploration.boltzmann_probs(q_values, temperature)
    np.testing.assert_allclose(probs, _softmax_by_hand(q_values, temperature), rtol=1e-5)


# The probabilities each sampler should follow, computed by hand (not by the module).
Q_SAMPLED = [1.0, 3.0, 3.0, 0.0]


@pytest.mark.parametrize(
    "sample, param, expected",
    [
        (exploration.epsilon_greedy, 0.2, [0.05, 0.45, 0.45, 0.05]),
        (exploration.epsilon_greedy, 0.0, [0.0, 0.5, 0.5, 0.0]),
        (exploration.boltzmann, 0.7, _softmax_by_hand(Q_SAMPLED, 0.7)),
    ],
)
def test_samplers_follow_their_probabilities(sample, param, expected):
    q_values = jnp.array(Q_SAMPLED)
    keys = jax.random.split(jax.random.key(0), 40_000)
    actions = jax.jit(jax.vmap(lambda k: sample(k, q_values, param)))(keys)
    frequencies = np.bincount(np.asarray(actions), minlength=4) / len(keys)
    np.testing.assert_allclose(frequencies, expected, atol=0.01)


def test_schedules():
    assert exploration.linear_schedule(1.0, 0.1, 100)(50) == pytest.approx(0.55)
    assert exploration.linear_schedule(1.0, 0.1, 100)(500) == pytest.approx(0.1)
    assert exploration.exponential_schedule(1.0, 0.01, 100)(50) == pytest.approx(0.1)
    assert exploration.exponential_schedule(1.0, 0.01, 100)(1000) == pytest.approx(0.01)
    assert exploration.constant_schedule(0.3)(10**6) == pytest.approx(0.3)
    # A duration of 0 gave NaN at count 0 (0 / 0: read as greedy by an epsilon draw).
    for schedule in (exploration.linear_schedule, exploration.exponential_schedule):
        for duration in (0, -10, jnp.float32(0)):
            with pytest.raises(ValueError, match="a schedule's duration must be > 0"):
                schedule(1.0, 0.05, duration)
        traced = jax.jit(lambda d, schedule=schedule: schedule(1.0, 0.05, d)(jnp.float32(5)))
        assert float(traced(jnp.float32(10))) == pytest.approx(schedule(1.0, 0.05, 10)(5))


def test_dyna_model_records_transitions_and_observed_states():
    model = update_model(init_model(5, 4), 2, 1, 0.5, 3, False, step=1)
    assert (model.next_state[2, 1], model.reward[2, 1], model.last_tried[2, 1]) == (3, 0.5, 1)
    assert int(model.num_states) == 1 and int(model.states[0]) == 2
    again = update_model(model, 2, 3, 0.5, 4, False, step=2)
    assert int(again.num_states) == 1  # a state is listed once, whatever its action
    later = update_model(again, 4, 0, 0.0, 2, True, step=3)
    assert int(later.num_states) == 2 and np.asarray(later.states[:2]).tolist() == [2, 4]
    # Untried pairs stay put with reward 0 (what Dyna-Q+ plans with).
    assert int(later.next_state[2, 0]) == 2 and float(later.reward[2, 0]) == 0.0


def test_planning_draws_a_state_then_an_action_tried_there():
    """Sutton & Barto's figure 8.1: a random observed state, then a random action taken
    in it. State 0 has one tried action, state 1 three: each state is drawn half the
    time (uniform over the four pairs would give state 0 a quarter)."""
    model = init_model(3, 4)
    for step, (state, action) in enumerate([(0, 2), (1, 0), (1, 1), (1, 3)], start=1):
        model = update_model(model, state, action, 1.0, 2, True, step)
    hparams = TabularHParams(alpha=1.0, gamma=0.0)
    uniforms = jax.random.uniform(jax.random.key(0), (4000, 2))

    def planned_pair(u, bonus):  # alpha 1, gamma 0: the updated entry leaves -1 for r >= 0
        return jnp.argmax(plan(u[None], -jnp.ones((3, 4)), model, hparams, 5, bonus).ravel())

    counts = np.bincount(
        np.asarray(jax.vmap(planned_pair, (0, None))(uniforms, False)), minlength=12
    )
    assert counts.sum() == 4000 and set(np.flatnonzero(counts)) == {2, 4, 5, 7}
    assert abs(counts[2] / 4000 - 0.5) < 0.04
    for pair in (4, 5, 7):
        assert abs(counts[pair] / 4000 - 1 / 6) < 0.04
    # Dyna-Q+: every action of an observed state, the state drawn first as well.
    plus = np.bincount(np.asarray(jax.vmap(planned_pair, (0, None))(uniforms, True)), minlength=12)
    assert set(np.flatnonzero(plus)) == set(range(8))
    assert abs(plus[:4].sum() / 4000 - 0.5) < 0.04


def test_truncation_bootstraps_from_the_final_observation():
    """Every episode is cut after one step of reward -1 in a one-cell room.

    Bootstrapping on truncation gives Q = -1 / (1 - gamma) = -2; treating the time-out
    as termination would give -1."""
    env, params = make("WindyGridworld-v0", layout="S", wind=(0,), max_steps_in_episode=1)
    train = make_train(TabularConfig(num_episodes=4000, max_steps=4000), env, params)
    state, metrics = jax.jit(train)(jax.random.key(0), TabularHParams(gamma=0.5, epsilon=1.0))
    assert int(metrics.num_completed) == 4000
    np.testing.assert_allclose(state.q_values[0], -2.0, atol=1e-3)


# Cut after one step from the left cell of a two-cell room (reward -1 a step, gamma 0.5,
# uniform actions): "right" ends in the right cell, never acted from (Q = 0 there), so
# Q(start, right) = -1 + 0.5 * 0 = -1; the three others bump into a wall and stay,
# x = Q(start, stay) = -1 + 0.5 * v(start) with Q-learning's v = max(x, -1) = -1
# (x = -1.5) or Expected SARSA's v = (3x - 1) / 4 (x = -1.8). Bootstrapping from the
# start cell the time-out resets to would give every action -1 / (1 - 0.5) = -2.
@pytest.mark.parametrize("algorithm, stay", [("q_learning", -1.5), ("expected_sarsa", -1.8)])
def test_a_time_out_bootstraps_from_the_final_cell_not_the_reset_one(algorithm, stay):
    """A time-out's target must read Q of the cell the step reached; the reset cell the
    environment has already returned to is the start of the next episode."""
    env, params = make("WindyGridworld-v0", layout="S.", wind=(0, 0), max_steps_in_episode=1)
    config = TabularConfig(algorithm=algorithm, num_episodes=4000, max_steps=4000)
    state, metrics = jax.jit(make_train(config, env, params))(
        jax.random.key(0), TabularHParams(gamma=0.5, epsilon=1.0)
    )
    assert int(metrics.num_completed) == 4000
    np.testing.assert_allclose(state.q_values[0], [stay, stay, stay, -1.0], atol=1e-3)
    np.testing.assert_array_equal(state.q_values[1], 0.0)


def test_training_loop_bookkeeping():
    env, params = make("CliffWalking-v0")
    train = make_train(TabularConfig(num_episodes=30), env, params)
    _, metrics = jax.jit(train)(jax.random.key(1), TabularHParams())
    assert int(metrics.num_completed) == 30
    assert int(metrics.episode_lengths.sum()) == int(metrics.num_steps)
    assert np.all(np.asarray(metrics.episode_lengths) >= 13)  # the shortest path
    # Cliff rewards: -1 per step, -100 per fall; a return is -length - 99 * falls.
    falls = (-np.asarray(metrics.episode_returns) - np.asarray(metrics.episode_lengths)) / 99
    np.testing.assert_allclose(falls, np.round(falls), atol=1e-4)


def test_step_budget_stops_the_run_and_keeps_unfinished_episode_out():
    env, params = make("WindyGridworld-v0")
    train = make_train(TabularConfig(num_episodes=1000, max_steps=500), env, params)
    _, metrics = jax.jit(train)(jax.random.key(0), TabularHParams())
    assert int(metrics.num_steps) == 500
    assert int(metrics.episode_lengths.sum()) <= 500
    assert np.all(np.asarray(metrics.episode_lengths[int(metrics.num_completed) :]) == 0)


def test_episodes_a_step_budget_left_unplayed_have_no_return():
    """A return of 0 is one an episode can have (the cat room's time limit, bare floor):
    unplayed slots held 0 too, so a mean over the last episodes with the README's
    `.mean("seed")` took them for real ones. They are NaN; the played ones are kept."""
    env, params = make("CatRoom-v0")
    config = TabularConfig(num_episodes=300, max_steps=600)
    hparams = TabularHParams(epsilon=1.0)  # a random cat: many episodes reach the limit
    _, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0), hparams)
    returns, done = np.asarray(metrics.episode_returns), int(metrics.num_completed)
    assert 0 < done < 300 and (returns[:done] == 0).any()
    assert np.isfinite(returns[:done]).all() and np.isnan(returns[done:]).all()


def test_a_step_budget_sizes_the_episode_buffers_not_a_huge_episode_count():
    # No run completes more episodes than it takes steps: an episode count left at 10**7
    # beside a step budget of 5000 must give the run with 5000 (10**7 slots would be
    # 80 MB a run; 10**9, 8 GB).
    env, params = make("WindyGridworld-v0")
    key, hparams = jax.random.key(2), TabularHParams()
    huge = make_train(TabularConfig(num_episodes=10**7, max_steps=5000), env, params)
    _, metrics = jax.jit(huge)(key, hparams)
    assert metrics.episode_returns.shape == metrics.episode_lengths.shape == (5000,)
    _, same = jax.jit(make_train(TabularConfig(num_episodes=5000, max_steps=5000), env, params))(
        key, hparams
    )
    jax.tree.map(np.testing.assert_array_equal, metrics, same)
    assert int(metrics.num_steps) == 5000 and int(metrics.num_completed) > 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("algorithm", ["sarsa", "expected_sarsa", "dyna_q_plus"])
def test_same_key_same_numbers_and_seeds_differ(algorithm):
    env, params = make("CliffWalking-v0")
    planning = 3 if algorithm.startswith("dyna") else 0
    config = TabularConfig(algorithm=algorithm, planning_steps=planning, num_episodes=20)
    sweep = jax.jit(
        lambda key: run_sweep(
            make_train(config, env, params),
            key,
            stack_grid([TabularHParams(kappa=1e-3 if algorithm == "dyna_q_plus" else 0.0)]),
            3,
            jit=False,
        )
    )
    first, second = sweep(jax.random.key(7)), sweep(jax.random.key(7))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        assert np.array_equal(a, b)
    returns = np.asarray(first[1].episode_returns[0])
    assert not np.array_equal(returns[0], returns[1])


@pytest.mark.timeout(300)
def test_a_grid_point_equals_that_configuration_run_alone():
    env, params = make("CliffWalking-v0")
    train = make_train(TabularConfig(algorithm="sarsa", num_episodes=50), env, params)
    grid = product_grid(TabularHParams(), alpha=[0.2, 0.5], epsilon=[0.05, 0.1])
    assert grid.alpha.tolist() == pytest.approx([0.2, 0.2, 0.5, 0.5])
    _, swept = run_sweep(train, jax.random.key(3), grid, 2)
    seed_keys = jax.random.split(jax.random.key(3), 2)
    _, alone = jax.jit(train)(seed_keys[1], TabularHParams(alpha=0.5, epsilon=0.05))
    np.testing.assert_array_equal(swept.episode_returns[2, 1], alone.episode_returns)
    np.testing.assert_array_equal(swept.episode_lengths[2, 1], alone.episode_lengths)


@pytest.mark.parametrize("algorithm", ["q_learning", "sarsa", "expected_sarsa"])
def test_every_draw_of_a_step_uses_the_schedule_at_the_next_step_count(monkeypatch, algorithm):
    """A_{t+1} (and Expected SARSA's policy at S_{t+1}) follows the schedule at count t+1:
    SARSA's bootstrap action is the action it then takes, so it must not lag a step."""
    counts = []
    linear = exploration.SCHEDULES["linear"]

    def logged(start, end, duration):
        value = linear(start, end, duration)

        def at(count):
            jax.debug.callback(lambda c: counts.append(int(c)), count)
            return value(count)

        return at

    monkeypatch.setitem(exploration.SCHEDULES, "linear", logged)
    env, env_params = make("CliffWalking-v0")
    config = TabularConfig(
        algorithm=algorithm,
        schedule="linear",
        num_episodes=5,
        max_steps=6,
        steps_per_iteration=1,
    )
    tabular = make_tabular(config, env, env_params)
    hparams = TabularHParams(epsilon=1.0, epsilon_end=0.0, decay_steps=4.0)
    state = tabular.init(jax.random.key(0), hparams)
    update = jax.jit(tabular.update)
    for step in range(3):
        counts.clear()
        state, _ = jax.block_until_ready(update(state, hparams))
        assert counts and set(counts) == {step + 1}


def test_invalid_settings_are_rejected_before_compiling():
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'.*q_learning"):
        TabularConfig(algorithm="dqn")
    with pytest.raises(ValueError, match="planning_steps=5 needs algorithm 'dyna_q'"):
        TabularConfig(planning_steps=5)
    with pytest.raises(ValueError, match="max_steps=2147483648 is more than the int32"):
        TabularConfig(max_steps=2**31)
    with pytest.raises(ValueError, match=r"algorithm must be the index .* got \[0.  0.5\]"):
        check_hparams(TabularHParams(algorithm=np.array([0.0, 0.5])))
    with pytest.raises(ValueError, match="num_episodes must be a positive int"):
        TabularConfig(num_episodes=0)
    with pytest.raises(ValueError, match="steps_per_iteration must be a positive int"):
        TabularConfig(steps_per_iteration=True)
    with pytest.raises(ValueError, match="planning_steps must be an int >= 0, got True"):
        TabularConfig(algorithm="dyna_q", planning_steps=True)
    with pytest.raises(ValueError, match="alpha must be in"):
        check_hparams(TabularHParams(alpha=0.0))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        check_hparams(TabularHParams(temperature=np.array([1.0, 0.0])))
    with pytest.raises(ValueError, match="no field 'lr'"):
        product_grid(TabularHParams(), lr=[0.1])
    env, params = make("CatRoom-v0", observation="grid")
    with pytest.raises(ValueError, match="discrete observation.*use observation='index'"):
        make_train(TabularConfig(), env, params)
    env, params = make("CartPole-v1")  # no observation='index' to point to there
    with pytest.raises(ValueError, match="need a network: jrl train dqn or jrl train ppo"):
        make_train(TabularConfig(), env, params)
    env, params = make("Pendulum-v1")  # continuous actions: DQN would refuse them
    with pytest.raises(ValueError, match=r"need a network: jrl train ppo\.$"):
        make_train(TabularConfig(), env, params)
    # kappa is Dyna-Q+'s alone.
    with pytest.raises(ValueError, match="kappa=0.001 is Dyna-Q\\+'s exploration bonus"):
        check_hparams(TabularHParams(kappa=1e-3), TabularConfig(algorithm="sarsa"))
    check_hparams(
        TabularHParams(kappa=1e-3), TabularConfig(algorithm="dyna_q_plus", planning_steps=5)
    )
    # An index past config.algorithm, swept directly (the run driver checks it too).
    env, params = make("CliffWalking-v0")
    train = make_train(TabularConfig(algorithm=("sarsa", "q_learning")), env, params)
    grid = product_grid(TabularHParams(), algorithm=[0.0, 2.0])
    with pytest.raises(ValueError, match="algorithm"):
        run_sweep(train, jax.random.key(0), grid, 1)


@pytest.mark.parametrize(
    "config, swept, message",
    [
        (TabularConfig(), {"temperature": [0.5, 1.0]}, "exploration='epsilon_greedy' ignores"),
        (
            TabularConfig(exploration="boltzmann", schedule="linear"),
            {"epsilon": [0.1, 0.2]},
            "exploration='boltzmann' ignores",
        ),
        (TabularConfig(), {"decay_steps": [100.0, 1000.0]}, "schedule='constant' ignores"),
        (TabularConfig(), {"epsilon_end": [0.0, 0.05]}, "schedule='constant' ignores"),
        (TabularConfig(algorithm="dyna_q"), {"kappa": [0.0, 1e-3]}, "Dyna-Q\\+'s exploration"),
        # Dyna-Q+ adds its bonus in planning only: without planning steps, none.
        (TabularConfig(algorithm="dyna_q_plus"), {"kappa": [0.0, 1e-3]}, "planning_steps=0 ig"),
        # Both settings missing: the fix names both.
        (
            TabularConfig(exploration="boltzmann"),
            {"epsilon_end": [0.0, 0.05]},
            "use schedule='linear' or 'exponential' with exploration='epsilon_greedy'",
        ),
    ],
)
def test_a_sweep_over_a_hyperparameter_the_config_ignores_is_rejected(config, swept, message):
    """Every point of such a grid would run alike; run_sweep says which setting
    ignores it before anything is traced."""
    env, params = make("CliffWalking-v0")
    traced = []
    train = make_train(dataclasses.replace(config, num_episodes=5), env, params)

    def spied(key, hparams):
        traced.append(hparams)
        return train(key, hparams)

    spied.check_hparams = train.check_hparams
    with pytest.raises(ValueError, match=message):
        run_sweep(spied, jax.random.key(0), product_grid(TabularHParams(), **swept), 1)
    assert traced == []
    # The same values where the config reads them pass (and a default is always fine).
    reading = TabularConfig(
        algorithm="dyna_q_plus", exploration="boltzmann", schedule="linear", planning_steps=1
    )
    name = next(iter(swept))
    if name.startswith("epsilon"):
        reading = dataclasses.replace(reading, exploration="epsilon_greedy")
    check_hparams(product_grid(TabularHParams(), **swept), reading)
    check_hparams(TabularHParams(), config)


def test_an_exponential_schedule_from_or_to_epsilon_zero_is_refused():
    """It moves geometrically between its ends: epsilon 0 made 0 * inf = NaN actions
    and a NaN Q-table."""
    config = TabularConfig(algorithm="expected_sarsa", schedule="exponential")
    for name in ("epsilon", "epsilon_end"):
        with pytest.raises(ValueError, match=f"{name}=0.0: schedule='exponential' needs"):
            check_hparams(TabularHParams(**{name: 0.0}), config)
    check_hparams(TabularHParams(epsilon=0.0), dataclasses.replace(config, schedule="linear"))


def test_greedy_episode_takes_a_numpy_q_table():
    """The experiments hold Q-tables as NumPy arrays; the episode indexes the table with
    a traced observation, which a NumPy array refuses unless it is made a JAX one."""
    env, params = make("CliffWalking-v0")
    q_values = np.zeros((env.num_states, 4), np.float32)
    for cell in range(24, 35):  # up from the start (36), right along row 2, down to 47
        q_values[cell, 3] = 1.0
    q_values[36, 0], q_values[35, 1] = 1.0, 1.0
    total, length, terminated = greedy_episode(jax.random.key(0), env, params, q_values, 50)
    assert (float(total), int(length), bool(terminated)) == (-13.0, 13, True)


def test_sarsa_after_a_time_out_acts_from_the_reset_state():
    """Cut after every step, greedy: once Q(start, right) = -100 < Q(start, up), an
    episode's first action never walks into the cliff. The action Sarsa drew for its
    bootstrap from the final state (all ties there) fell a quarter of the time."""
    env, params = make("CliffWalking-v0", max_steps_in_episode=1)
    config = TabularConfig(algorithm="sarsa", num_episodes=4000, max_steps=4000)
    _, metrics = jax.jit(make_train(config, env, params))(
        jax.random.key(0), TabularHParams(alpha=0.5, epsilon=0.0)
    )
    assert (np.asarray(metrics.episode_returns)[2000:] == -100).sum() == 0


def test_dyna_model_does_not_record_time_outs_as_terminal():
    """One step per episode never reaches the maze's goal: no modelled transition ends an
    episode, so planning keeps bootstrapping through the time-outs."""
    env, params = make("DynaMaze-v0", max_steps_in_episode=1)
    config = TabularConfig(algorithm="dyna_q", planning_steps=2, num_episodes=50, max_steps=50)
    state, _ = jax.jit(make_train(config, env, params))(jax.random.key(0), TabularHParams())
    assert int(state.model.terminal.sum()) == 0


def test_planning_does_not_bootstrap_past_a_terminal_transition():
    model = update_model(init_model(2, 1), 0, 0, 1.0, 1, True, 1)  # 0 -> 1, r 1, terminal
    q_values = jnp.zeros((2, 1)).at[1, 0].set(10.0)
    hparams = TabularHParams(alpha=1.0, gamma=0.5)
    q_values = plan(jnp.zeros((1, 2)), q_values, model, hparams, 2, False)
    assert float(q_values[0, 0]) == 1.0  # r alone, not 1 + 0.5 * 10


def test_dyna_q_plus_bonus_is_kappa_times_the_root_of_the_steps_since_last_tried():
    """Sutton & Barto's section 8.3: planning at step 10 on a pair last tried at step 1
    adds kappa * sqrt(10 - 1); a bonus linear in tau, or one counting a step less, would
    mis-weigh how long the pair has gone untried. A never-tried action counts from 0."""
    model = update_model(init_model(1, 2), 0, 0, 1.0, 0, False, step=1)  # 0 -> 0, r 1
    hparams = TabularHParams(alpha=1.0, gamma=0.0, kappa=0.5)
    uniforms = jnp.array([[0.0, 0.0], [0.0, 0.5]])  # state 0, then actions 0 and 1
    q_values = plan(uniforms, jnp.zeros((1, 2)), model, hparams, 10, True)
    np.testing.assert_allclose(
        q_values[0], [1.0 + 0.5 * np.sqrt(10 - 1), 0.0 + 0.5 * np.sqrt(10 - 0)], rtol=1e-6
    )


def test_boltzmann_uses_the_temperature_hyperparameter():
    """Under the constant schedule the policy's temperature is ``temperature``, not the
    schedule's end: softmax([0, 1] / 1)."""
    config = TabularConfig(exploration="boltzmann")
    _, probs = make_policy(config, TabularHParams(temperature=1.0, temperature_end=0.1))
    e = np.e
    expected = [1 / (1 + e), e / (1 + e)]
    np.testing.assert_allclose(probs(jnp.array([0.0, 1.0]), 0), expected, rtol=1e-6)


def test_the_policy_goes_from_the_start_to_the_end_value_of_its_schedule():
    """make_policy hands each exploration its own hyperparameters: epsilon from epsilon
    to epsilon_end, the temperature from temperature to temperature_end."""
    from jrl.agents.tabular import make_policy

    q = jnp.array([0.0, 1.0])
    hparams = TabularHParams(
        epsilon=1.0, epsilon_end=0.2, temperature=1.0, temperature_end=0.5, decay_steps=10.0
    )
    _, probs = make_policy(TabularConfig(schedule="linear"), hparams)
    np.testing.assert_allclose(probs(q, 5), [0.3, 0.7], rtol=1e-6)  # epsilon 0.6
    np.testing.assert_allclose(probs(q, 10), [0.1, 0.9], rtol=1e-6)  # epsilon 0.2
    config = TabularConfig(exploration="boltzmann", schedule="linear")
    _, probs = make_policy(config, hparams)
    np.testing.assert_allclose(probs(q, 10), jax.nn.softmax(q / 0.5), rtol=1e-6)


# --------------------------------------------- planning, the model, the sampler, counts
def test_planning_bootstraps_from_the_modelled_next_state_with_step_size_alpha():
    """Two planning updates, (1, 0) first then (0, 0): 0 -a0-> 1 (r 0), 1 -a0-> end (r 1).
    alpha 0.5, gamma 0.5: Q(1,0) = 0.5 * 1 = 0.5; then Q(0,0) = 0.5 * (0 + 0.5 * 0.5) =
    0.125, reading Q(1) as the first update left it."""
    model = update_model(init_model(2, 1), 0, 0, 0.0, 1, False, step=1)
    model = update_model(model, 1, 0, 1.0, 0, True, step=2)
    hparams = TabularHParams(alpha=0.5, gamma=0.5)
    uniforms = jnp.array([[0.75, 0.0], [0.0, 0.0]])  # state 1, then state 0
    q = plan(uniforms, jnp.zeros((2, 1)), model, hparams, 3, False)
    np.testing.assert_allclose(q[:, 0], [0.125, 0.5], rtol=1e-6)


def test_the_model_keeps_the_latest_reward_and_next_state_of_a_pair():
    """Deterministic model (figure 8.1: Model(S, A) <- R, S'): a pair tried again is
    overwritten, not accumulated."""
    model = update_model(init_model(3, 2), 0, 1, 1.0, 1, False, step=1)
    model = update_model(model, 0, 1, 2.0, 2, True, step=2)
    assert float(model.reward[0, 1]) == 2.0 and int(model.next_state[0, 1]) == 2
    assert bool(model.terminal[0, 1]) and int(model.last_tried[0, 1]) == 2


def test_boltzmann_actions_follow_the_temperature_schedule():
    """The sampler (not only probs) reads the scheduled temperature: at step 10 of a
    linear 1 -> 0.01 schedule, q = [0, 1] picks action 1 with prob 1/(1+e^-100)."""
    config = TabularConfig(exploration="boltzmann", schedule="linear")
    hparams = TabularHParams(temperature=1.0, temperature_end=0.01, decay_steps=10.0)
    sample, _ = make_policy(config, hparams)
    uniforms = jax.random.uniform(jax.random.key(0), (4000, 2))
    q = jnp.array([0.0, 1.0])
    late = jax.vmap(lambda u: sample(u, q, jnp.int32(10)))(uniforms)
    early = jax.vmap(lambda u: sample(u, q, jnp.int32(0)))(uniforms)
    assert (np.asarray(late) == 1).all()
    assert abs(np.mean(np.asarray(early) == 1) - np.e / (1 + np.e)) < 0.03


def test_an_iteration_reports_the_step_count_at_its_end():
    env, params = make("CliffWalking-v0")
    tabular = make_tabular(TabularConfig(num_episodes=5, steps_per_iteration=7), env, params)
    state = tabular.init(jax.random.key(0), TabularHParams())
    new, metrics = jax.jit(tabular.update)(state, TabularHParams())
    assert int(new.step) == 7 and int(metrics.timesteps) == 7


def test_check_hparams_accepts_gamma_zero_and_rejects_the_first_index_past_the_names():
    check_hparams(TabularHParams(gamma=0.0))
    config = TabularConfig(algorithm=("sarsa", "q_learning"))
    with pytest.raises(ValueError, match="indexes config.algorithm"):
        check_hparams(TabularHParams(algorithm=2.0), config)


def test_dyna_q_plus_bonus_counts_the_steps_since_the_latest_try_of_the_pair():
    """tau is the number of real steps since the pair was last tried (section 8.3): a pair
    tried at steps 1 and 4, planned at step 10, earns kappa * sqrt(10 - 4), not the
    sqrt(10 - 1) of its first try; trying a pair again resets its bonus."""
    model = update_model(init_model(1, 1), 0, 0, 1.0, 0, False, step=1)
    model = update_model(model, 0, 0, 1.0, 0, False, step=4)
    hparams = TabularHParams(alpha=1.0, gamma=0.0, kappa=0.5)
    q_values = plan(jnp.zeros((1, 2)), jnp.zeros((1, 1)), model, hparams, 10, True)
    np.testing.assert_allclose(q_values[0, 0], 1.0 + 0.5 * np.sqrt(6.0), rtol=1e-6)


def test_check_hparams_refuses_an_epsilon_end_past_one_and_a_schedule_of_no_length():
    """epsilon_end is a probability like epsilon; decay_steps divides the step count
    (0 gave NaN at step 0 where the value is traced and the schedule cannot check it)."""
    with pytest.raises(ValueError, match=r"epsilon_end must be in \[0.0, 1.0\]"):
        check_hparams(TabularHParams(epsilon_end=1.5))
    with pytest.raises(ValueError, match=r"epsilon_end must be in \[0.0, 1.0\]"):
        check_hparams(TabularHParams(epsilon_end=-0.1))
    for decay_steps in (0.0, -5.0):
        with pytest.raises(ValueError, match="decay_steps must be > 0"):
            check_hparams(TabularHParams(decay_steps=decay_steps))


def test_greedy_episode_never_explores():
    """The greedy evaluation takes the table's best action at every step, whatever the
    key: along the cliff's edge every one of 64 episodes takes the 13-step path (an
    epsilon of 0.05 would leave it in most of them)."""
    env, params = make("CliffWalking-v0")
    q_values = np.zeros((env.num_states, 4), np.float32)
    for cell in range(24, 35):  # up from the start (36), right along row 2, down to 47
        q_values[cell, 3] = 1.0
    q_values[36, 0], q_values[35, 1] = 1.0, 1.0
    keys = jax.random.split(jax.random.key(1), 64)
    total, length, terminated = jax.vmap(
        lambda key: greedy_episode(key, env, params, q_values, 50)
    )(keys)
    assert (np.asarray(total) == -13.0).all() and (np.asarray(length) == 13).all()
    assert np.asarray(terminated).all()


def test_greedy_episode_refuses_a_table_of_another_shape():
    """A table of another task's size would be indexed out of its range (JAX clamps the
    index without a word) or act with actions the environment has not got."""
    env, params = make("CliffWalking-v0")
    for shape in ((env.num_states, 5), (env.num_states - 1, 4), (env.num_states * 4,)):
        with pytest.raises(ValueError, match=r"q_values must be shaped \(num_states, num_a"):
            greedy_episode(jax.random.key(0), env, params, np.zeros(shape, np.float32), 5)
