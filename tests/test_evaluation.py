"""Evaluation inside a training run (``eval_every``): rows, keys, independence from
training, a real branch under ``vmap``, and clear errors. Tiny budgets: each agent is
compiled with and without evaluation once (module fixtures)."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from jrl.agents import dqn, ppo, reinforce
from jrl.agents.evaluation import (
    MAX_TIMESTEPS,
    check_episode_steps,
    check_eval_cut,
    eval_max_steps,
    make_evaluate,
    random_policy_returns,
    run_episode,
)
from jrl.envs import make

pytestmark = pytest.mark.timeout(300)

SEEDS = jax.random.split(jax.random.key(0), 2)
PPO_CONFIG = dict(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 6)
DQN_CONFIG = dict(
    num_envs=4,
    total_timesteps=2000,
    buffer_size=500,
    batch_size=32,
    learning_starts=200,
    train_frequency=4,
    target_update_frequency=100,
    log_frequency=400,
    hidden_sizes=(16, 16),
)


def run(agent, hparams):
    """(state, metrics) of ``agent.train`` vmapped over two seeds."""
    return jax.jit(jax.vmap(agent.train, in_axes=(0, None)))(SEEDS, hparams)


@pytest.fixture(scope="module")
def cartpole_ppo():
    """PPO on CartPole, 6 updates, evaluated after updates 3 and 6 (and not at all)."""
    env, params = make("CartPole-v1")
    evaluated = ppo.make_ppo(
        ppo.PPOConfig(**PPO_CONFIG, eval_every=3, eval_episodes=3), env, params
    )
    plain = ppo.make_ppo(ppo.PPOConfig(**PPO_CONFIG), env, params)
    return env, params, evaluated, run(evaluated, ppo.PPOHParams()), run(plain, ppo.PPOHParams())


def assert_same_training(with_eval, without_eval):
    """Every metric but eval_return, and the final state, bit for bit."""
    (state_a, metrics_a), (state_b, metrics_b) = with_eval, without_eval
    for name in metrics_a._fields:
        if name != "eval_return":
            np.testing.assert_array_equal(getattr(metrics_a, name), getattr(metrics_b, name))
    for a, b in zip(jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(np.asarray(metrics_b.eval_return)).all()


def test_ppo_evaluates_every_third_update_without_touching_training(cartpole_ppo):
    env, params, agent, evaluated, plain = cartpole_ppo
    returns = np.asarray(evaluated[1].eval_return)
    assert returns.shape == (2, 6)
    assert np.isnan(returns[:, [0, 1, 3, 4]]).all()
    assert np.isfinite(returns[:, [2, 5]]).all() and (returns[:, [2, 5]] >= 8).all()
    assert_same_training(evaluated, plain)

    # The last evaluation is the final policy's greedy episodes on the fixed keys
    # split from key(eval_seed), cut at CartPole's time limit (what `jrl eval` plays).
    keys = jax.random.split(jax.random.key(12345), 3)
    for seed in range(2):
        final = jax.tree.map(lambda x, seed=seed: x[seed], evaluated[0].params)
        episodes = [
            float(ppo.greedy_episode(k, env, params, agent.network, final, 500)[0]) for k in keys
        ]
        assert returns[seed, 5] == pytest.approx(np.mean(episodes), rel=1e-6)
        assert float(jax.jit(agent.evaluate)(final)) == pytest.approx(returns[seed, 5], rel=1e-6)


def test_evaluation_is_a_real_branch_under_vmap(cartpole_ppo):
    """The evaluation's predicate is the loop index, not a per-seed counter: under vmap
    over seeds it stays a ``cond`` (a batched predicate would run the evaluation at every
    update). Without evaluation nothing is staged."""
    env, params, agent, _, _ = cartpole_ppo
    plain = ppo.make_ppo(ppo.PPOConfig(**PPO_CONFIG), env, params)

    def staged(agent):
        train = jax.vmap(agent.train, in_axes=(0, None))
        return str(jax.make_jaxpr(train)(SEEDS, ppo.PPOHParams()))

    # (the plain program has platform-dependent conds of its own: count them)
    assert staged(agent).count("cond[") == staged(plain).count("cond[") + 1


def test_dqn_and_reinforce_evaluate_in_their_rows():
    env, params = make("CartPole-v1")
    agent = dqn.make_dqn(dqn.DQNConfig(**DQN_CONFIG, eval_every=2, eval_episodes=2), env, params)
    plain = dqn.make_dqn(dqn.DQNConfig(**DQN_CONFIG), env, params)
    hparams = dqn.DQNHParams(epsilon_decay_fraction=0.5)
    evaluated = run(agent, hparams)
    # 5 chunks: evaluated after 2 and 4, and after the last, which 2 does not divide.
    returns = np.asarray(evaluated[1].eval_return)
    assert np.isnan(returns[:, [0, 2]]).all() and np.isfinite(returns[:, [1, 3, 4]]).all()
    assert_same_training(evaluated, run(plain, hparams))

    config = reinforce.ReinforceConfig(num_envs=4, num_steps=32, total_timesteps=512)
    agent = reinforce.make_reinforce(
        reinforce.ReinforceConfig(**{**config.__dict__, "eval_every": 4}), env, params
    )
    evaluated = run(agent, reinforce.ReinforceHParams())
    returns = np.asarray(evaluated[1].eval_return)
    assert np.isnan(returns[:, :3]).all() and np.isfinite(returns[:, 3]).all()
    plain = reinforce.make_reinforce(config, env, params)
    assert_same_training(evaluated, run(plain, reinforce.ReinforceHParams()))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("eval_every", -1, "eval_every must be a non-negative int"),
        ("eval_every", 2.5, "eval_every must be a non-negative int"),
        ("eval_episodes", 0, "eval_episodes must be a positive int"),
        ("eval_episodes", 2**31, "eval_episodes=2147483648 is more than the int32"),
        ("eval_max_steps", -5, "eval_max_steps must be a non-negative int"),
        ("eval_max_steps", 2**31, "eval_max_steps=2147483648 is more than the int32"),
        ("eval_seed", True, "eval_seed must be a non-negative int"),
        # key(2**32 + 5) holds the key data of key(5): the same evaluation episodes.
        ("eval_seed", 2**32 + 5, r"eval_seed must be an int in \[0, 2\*\*32\), got 4294967301"),
        ("eval_every", 10**9, "eval_every=1000000000 is more than the run's .*: only the last"),
    ],
)
def test_bad_evaluation_settings_are_refused_naming_the_field(field, value, message):
    for config in (ppo.PPOConfig, dqn.DQNConfig, reinforce.ReinforceConfig):
        with pytest.raises(ValueError, match=message):
            config(**{field: value})


def test_eval_max_steps_takes_the_time_limit_or_asks_for_one():
    config = ppo.PPOConfig(eval_every=1)
    assert eval_max_steps(config, make("CartPole-v1")[1]) == 500
    assert eval_max_steps(config, make("CatRoom-v0")[1]) == 100
    assert eval_max_steps(ppo.PPOConfig(eval_every=1, eval_max_steps=7), object()) == 7
    with pytest.raises(ValueError, match="set eval_max_steps"):
        eval_max_steps(config, object())
    no_steps = make("BernoulliBandit-misc")[1].replace(max_steps_in_episode=0.0)
    with pytest.raises(ValueError, match="max_steps_in_episode is 0.0, which plays no step"):
        eval_max_steps(config, no_steps)
    # The textbook grids' "no time limit" (10**6 steps) is none to take: a greedy policy
    # looping in WindyGridworld-v0 played 10**6 steps per evaluation episode (hours for
    # the defaults) and reported -1e6 as its return. Refused before compiling.
    from jrl.agents.evaluation import check_eval_cut
    from jrl.training import RunSpec, resolve

    env, no_limit = make("WindyGridworld-v0", observation="grid")
    with pytest.raises(ValueError, match="it has none .max_steps_in_episode 1000000"):
        check_eval_cut(config, no_limit)
    spec = RunSpec(
        agent="ppo",
        env="WindyGridworld-v0",
        env_overrides={"observation": "grid"},
        config={"eval_every": 1, "network": "cnn", "num_envs": 2, "num_steps": 8},
    )
    with pytest.raises(ValueError, match="--env-overrides max_steps_in_episode N"):
        resolve(spec)
    # A run directory made before the rule still resumes and evaluates as it was made.
    assert resolve(spec, new_run=False).config["eval_max_steps"] == 0
    check_eval_cut(ppo.PPOConfig(eval_every=1, eval_max_steps=1000), no_limit)
    check_eval_cut(config, make("WindyGridworld-v0", max_steps_in_episode=500)[1])


def test_make_train_called_directly_warns_of_an_evaluation_without_a_cut():
    """jrl train refuses it (above); the library's factories, which an older run
    directory's resume also calls, say it: every evaluation episode of a policy that
    never reaches the goal would play 10**6 steps."""
    import warnings

    env, no_limit = make("WindyGridworld-v0", observation="grid")
    settings = {"num_envs": 2, "total_timesteps": 320, "network": "cnn"}
    replay = {
        "learning_starts": 8,
        "buffer_size": 64,
        "batch_size": 8,
        "log_frequency": 80,
        "target_update_frequency": 80,
    }
    configs = (
        (ppo, ppo.PPOConfig, {**settings, "num_steps": 8}),
        (reinforce, reinforce.ReinforceConfig, {**settings, "num_steps": 8}),
        (dqn, dqn.DQNConfig, {**settings, **replay}),
    )
    for module, config, fields in configs:
        with pytest.warns(UserWarning, match="plays 1000000 steps in every evaluation episode"):
            module.make_train(config(**fields, eval_every=1), env, no_limit)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            module.make_train(config(**fields, eval_every=1, eval_max_steps=1000), env, no_limit)
            module.make_train(config(**fields), env, no_limit)  # no evaluation
            limited = make("WindyGridworld-v0", observation="grid", max_steps_in_episode=500)
            module.make_train(config(**fields, eval_every=1), *limited)


def test_jrl_eval_says_when_its_cut_comes_before_the_runs_evaluation_cut(capsys):
    """Its returns then differ from eval_return (Freeway-MinAtar's limit is 2500, jrl
    eval's default cut 1000); runs that never evaluated have no eval_return to differ
    from, and a cut past the time limit is the time limit."""
    from types import SimpleNamespace

    from jrl.agents import tabular
    from jrl.run_analysis import _note_shorter_cut

    cartpole = make("CartPole-v1")[1]
    cases = [
        (ppo.PPOConfig(eval_every=1), cartpole, 100, "cut (500 steps)"),
        (ppo.PPOConfig(eval_every=1, eval_max_steps=50), cartpole, 100, None),
        (ppo.PPOConfig(eval_every=1, eval_max_steps=2000), cartpole, 500, None),
        (ppo.PPOConfig(eval_every=1, eval_max_steps=2000), cartpole, 400, "cut (500 steps)"),
        (ppo.PPOConfig(), cartpole, 100, None),
        (tabular.TabularConfig(), make("CliffWalking-v0")[1], 1000, None),
    ]
    for config, env_params, max_steps, said in cases:
        _note_shorter_cut(SimpleNamespace(config=config, env_params=env_params), max_steps)
        err = capsys.readouterr().err
        assert (said in err) if said else err == "", (config, max_steps, err)


def play_in_python(key, env, params, act, max_steps):
    """run_episode's contract, one step at a time on the host: step t acts and steps with
    the halves of fold_in(key, t); stop when the episode ends or after max_steps."""
    obs, state = env.reset(key, params)
    total, length, terminated = 0.0, 0, False
    while length < max_steps:
        key_act, key_env = jax.random.split(jax.random.fold_in(key, length))
        obs, state, reward, terminated, truncated, _ = env.step(
            key_env, state, act(key_act, obs), params
        )
        total, length = total + float(reward), length + 1
        if terminated or truncated:
            break
    return total, length, bool(terminated)


@pytest.mark.parametrize(
    "name, overrides, max_steps",
    [
        ("CartPole-v1", {}, 10**6),  # a million-step cap: the loop stops at the episode's end
        ("CartPole-v1", {}, 12),  # cut before the end: not terminated
        ("WindyGridworld-v0", {}, 60),
        ("CatRoom-v0", {"max_steps_in_episode": 9}, 50),  # ends by truncation
    ],
)
def test_run_episode_plays_one_episode_and_stops(name, overrides, max_steps):
    env, params = make(name, **overrides)
    space = env.action_space(params)
    act = lambda key, obs: space.sample(key)  # noqa: E731
    keys = jax.random.split(jax.random.key(4), 3)
    episodes = jax.jit(jax.vmap(lambda key: run_episode(key, env, params, act, max_steps)))
    total, length, terminated = jax.device_get(episodes(keys))
    for i, key in enumerate(keys):
        expected = play_in_python(key, env, params, act, max_steps)
        assert (float(total[i]), int(length[i]), bool(terminated[i])) == pytest.approx(expected)
    assert length.min() > 0 and length.max() <= max_steps
    if max_steps == 12:
        assert (length == 12).all() and not terminated.any()


def test_evaluation_uses_the_configs_eval_seed():
    env, env_params = make("CartPole-v1")
    space = env.action_space(env_params)
    act = lambda key, obs: space.sample(key)  # noqa: E731

    def by_hand(seed):
        keys = jax.random.split(jax.random.key(seed), 6)
        return np.mean([float(run_episode(k, env, env_params, act, 200)[0]) for k in keys])

    config = SimpleNamespace(eval_max_steps=200, eval_seed=7, eval_episodes=6)
    value = float(jax.jit(make_evaluate(config, env, env_params, lambda params: act))(None))
    assert value == pytest.approx(by_hand(7), rel=1e-6)
    assert value != pytest.approx(by_hand(12345), rel=1e-6)


@pytest.mark.parametrize("name", ["CliffWalking-v0", "CartPole-v1"])
def test_random_policy_returns_are_the_returns_of_random_episodes(name):
    """One episode per key, a fresh action draw per step (the step's key), its *return*
    (CliffWalking: -1 per step, -100 at the cliff, so not the length)."""
    env, params = make(name)
    space = env.action_space(params)
    act = lambda key, obs: space.sample(key)  # noqa: E731
    keys = jax.random.split(jax.random.key(5), 4)
    got = np.asarray(random_policy_returns(keys, env, params, 60))
    want = [play_in_python(k, env, params, act, 60)[0] for k in keys]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_make_evaluate_averages_returns_not_lengths():
    """On CliffWalking, where a return is not a length (the other evaluation tests play
    CartPole, where the two are equal)."""
    env, params = make("CliffWalking-v0")
    space = env.action_space(params)
    act = lambda key, obs: space.sample(key)  # noqa: E731
    config = SimpleNamespace(eval_max_steps=40, eval_seed=3, eval_episodes=4)
    value = float(jax.jit(make_evaluate(config, env, params, lambda p: act))(None))
    keys = jax.random.split(jax.random.key(3), 4)
    want = np.mean([play_in_python(k, env, params, act, 40)[0] for k in keys])
    assert value == pytest.approx(want, rel=1e-6) and value < 0


def test_step_counts_up_to_int32_max_are_accepted():
    check_episode_steps(MAX_TIMESTEPS)  # 2**31 - 1: the int32 counters hold it
    with pytest.raises(ValueError, match="int32"):
        check_episode_steps(MAX_TIMESTEPS + 1)


def test_a_run_without_evaluation_needs_no_cut():
    _, no_limit = make("WindyGridworld-v0", observation="grid")
    check_eval_cut(ppo.PPOConfig(), no_limit)  # eval_every=0: nothing to cut


def test_factory_fails_before_compiling_when_there_is_no_cut_to_take():
    """check_eval_steps: eval_max_steps=0 and a time limit of 0 is an error at make_ppo
    (not a warning there and an error only when train is traced); the agents' check of
    env_params now refuses that time limit first, for every run."""
    import warnings

    env, params = make("CartPole-v1")
    config = ppo.PPOConfig(num_envs=2, num_steps=8, total_timesteps=32, eval_every=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="max_steps_in_episode is 0: a time limit must"):
            ppo.make_ppo(config, env, params.replace(max_steps_in_episode=0))
    with pytest.raises(ValueError, match="which plays no step"):
        eval_max_steps(config, params.replace(max_steps_in_episode=0))


def test_an_eval_max_steps_of_one_is_a_cut_of_one_step():
    """Any eval_max_steps >= 1, 1 included, is the cut; only 0 takes the time limit."""
    _, params = make("CartPole-v1")
    assert eval_max_steps(ppo.PPOConfig(eval_every=1, eval_max_steps=1), params) == 1
    assert eval_max_steps(ppo.PPOConfig(eval_every=1, eval_max_steps=2), params) == 2
    assert eval_max_steps(ppo.PPOConfig(eval_every=1, eval_max_steps=0), params) == 500
