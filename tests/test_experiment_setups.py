"""The experiment scripts run the configurations their docstrings, the README and
shared/REFERENCE.md give (PureJaxRL's for CartPole-v1, the textbook's for Sutton and
Barto's tasks, the learning tests' for the deep cat rooms) and report what they say
they report. Each script's training is replaced by a recorder: nothing here trains."""

import inspect
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from experiments import (
    cartpole,
    cat_room,
    cat_room_deep,
    changing_mazes,
    cliff_walking,
    dyna_maze,
    minatar_breakout,
    windy_gridworld,
)


class Trained(Exception):
    """Raised in place of training."""


def make_train_recording(made: list):
    """A make_train that records (algorithm, num_episodes) of each config it is given,
    and raises Trained at the second (a script's two methods) instead of training."""

    def recording_make_train(config, env, params):
        made.append((config.algorithm, config.num_episodes))
        if len(made) == 2:
            raise Trained
        return lambda key, hparams: None

    return recording_make_train


# ------------------------------------------------ 2. CartPole is PureJaxRL's configuration
def test_cartpole_setups_are_purejaxrls_default_configurations():
    """The module docstring and README: PureJaxRL's ppo.py and dqn.py for CartPole-v1."""
    config, hparams = cartpole.ppo_setup()
    assert (config.num_envs, config.num_steps, config.total_timesteps) == (4, 128, 500_000)
    assert (config.update_epochs, config.num_minibatches) == (4, 4)
    assert config.hidden_sizes == (64, 64) and config.activation == "tanh"
    assert config.anneal_lr and config.clip_value_loss and config.network == "mlp"
    assert hparams._asdict() == {
        "lr": 2.5e-4, "gamma": 0.99, "gae_lambda": 0.95, "clip_eps": 0.2,
        "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "reward_scale": 1.0,
    }  # fmt: skip
    config, hparams = cartpole.dqn_setup()
    assert (config.num_envs, config.total_timesteps) == (10, 500_000)
    assert (config.buffer_size, config.batch_size) == (10_000, 128)
    assert (config.train_frequency, config.learning_starts) == (10, 10_000)
    assert (config.target_update_frequency, config.target_update) == (500, "hard")
    assert config.hidden_sizes == (120, 84) and config.activation == "relu"
    assert not config.double_dqn and not config.clip_gradients
    assert config.kernel_init == "lecun_normal"
    assert (hparams.lr, hparams.gamma, hparams.tau) == (2.5e-4, 0.99, 1.0)
    assert (hparams.epsilon_start, hparams.epsilon_end) == (1.0, 0.05)
    # "a Huber loss with delta 1000, beyond any TD error here": a squared error
    assert hparams.huber_delta >= 1e3


@pytest.mark.parametrize("script", [cartpole, minatar_breakout], ids=["cartpole", "minatar"])
def test_neural_scripts_score_ten_full_length_greedy_episodes_per_seed(script, monkeypatch):
    """README (MinAtar): "greedy, 10 episodes per seed"; each episode may run to the
    environment's own limit (CartPole-v1 500 steps, Breakout-MinAtar 1000)."""
    from experiments.seed_runs import train_over_seeds

    defaults = {
        name: p.default for name, p in inspect.signature(train_over_seeds).parameters.items()
    }
    seen = {}

    def recording(*args, **kwargs):
        seen.update({**defaults, **kwargs})
        raise Trained

    monkeypatch.setattr(script, "train_over_seeds", recording)
    with pytest.raises(Trained):
        script.run(1, 491_520 if script is minatar_breakout else 50_000, log=lambda *_: None)
    env, params = script.make_env() if script is minatar_breakout else script.make("CartPole-v1")
    assert seen["eval_episodes"] == 10
    assert seen["eval_max_steps"] >= int(params.max_steps_in_episode)


# ----------------------------------------------------- 3. the cat room's "after" GIF
def test_cat_room_after_gif_shows_the_best_agent(monkeypatch, tmp_path):
    """greedy_after.gif and results.json's gifs.after.agent: the agent with the highest
    mean greedy return in the static room."""
    from jrl.envs import make

    env, _ = make("CatRoom-v0")
    labels = list(cat_room.AGENTS)
    best = labels[2]

    def fake_run(room, num_seeds, num_episodes=None, seed=0, **_):
        episodes = cat_room.ROOMS[room][1]
        return {
            label: {
                "returns": np.zeros((num_seeds, episodes)),
                "greedy_returns": np.full(num_seeds, 10.0 if label == best else float(i)),
                "q_values": np.zeros((num_seeds, env.num_states, env.num_actions)),
            }
            for i, label in enumerate(labels)
        }

    monkeypatch.setattr(cat_room, "run", fake_run)
    monkeypatch.setattr(cat_room, "provenance", lambda: {})
    monkeypatch.setattr(sys, "argv", ["cat_room.py", "--out", str(tmp_path), "--seeds", "2"])
    cat_room.main()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["gifs"]["after"]["agent"] == best


# --------------------------------------------------------- 4. the deep cat rooms' runs
def test_cat_room_deep_scale_steps_reaches_every_run(monkeypatch, tmp_path):
    seen = []

    def recording_run(room, agent, num_seeds=8, steps=None, seed=0):
        seen.append((agent, room, steps))
        raise Trained

    monkeypatch.setattr(cat_room_deep, "run", recording_run)
    monkeypatch.setattr(cat_room_deep, "provenance", lambda: {})
    monkeypatch.setattr(cat_room_deep, "random_policy_return", lambda *a, **k: 0.0)
    argv = ["cat_room_deep.py", "--out", str(tmp_path), "--seeds", "1", "--scale-steps", "0.5"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(Trained):
        cat_room_deep.main()
    assert seen == [("PPO", "static", 100_000)]


def test_cat_room_deep_budgets_and_settings_are_the_documented_ones():
    """README's table (steps per seed) and the learning tests' settings that the
    docstring says the script uses (tests/test_ppo.py, tests/test_dqn.py)."""
    assert cat_room_deep.STEPS == {
        ("PPO", "static"): 200_000, ("PPO", "dynamic"): 800_000,
        ("DQN", "static"): 80_000, ("DQN", "dynamic"): 300_000,
    }  # fmt: skip
    config, hparams = cat_room_deep.ppo_setup(200_000)
    assert (config.num_envs, config.num_steps, config.update_epochs) == (32, 128, 4)
    assert (hparams.lr, hparams.gae_lambda, hparams.ent_coef, hparams.reward_scale) == (
        3e-3, 1.0, 0.1, 0.1,
    )  # fmt: skip
    config, hparams = cat_room_deep.dqn_setup(80_000)
    assert config.double_dqn and (config.num_envs, config.batch_size) == (8, 64)
    assert (hparams.lr, hparams.gamma, hparams.epsilon_decay_fraction) == (1e-3, 0.95, 0.5)


def test_cat_room_deep_sees_the_one_hot_grid_flattened():
    from jrl.envs import make

    env, params = cat_room_deep.make_env("CatRoom-v0")
    grid_env, grid_params = make("CatRoom-v0", observation="grid")
    expected = int(np.prod(grid_env.observation_space(grid_params).shape))
    assert env.observation_space(params).shape == (expected,)


@pytest.mark.parametrize("room, arrangements", [("static", 1), ("dynamic", 4)])
def test_cat_room_deep_judges_the_static_room_in_its_one_arrangement(
    room, arrangements, monkeypatch
):
    from experiments.seed_runs import SeedRuns

    seen = []

    def fake_train_over_seeds(agent, *args, **kwargs):
        arrays = np.arange(1, 3), np.zeros((1, 2)), np.zeros((1, 1)), np.ones((1, 1), np.int32)
        return SeedRuns(*arrays, {"w": np.zeros((1, 1))}, 0.0, 0.0, 1.0, 1.0)

    def fake_greedy(module, network, params, arrangements_):
        seen.append(len(arrangements_))
        return np.zeros((1, len(arrangements_)))

    monkeypatch.setattr(cat_room_deep, "train_over_seeds", fake_train_over_seeds)
    monkeypatch.setattr(cat_room_deep, "greedy_in_arrangements", fake_greedy)
    cat_room_deep.run(room, "PPO", 1, steps=32 * 128 * 2)
    assert seen == [arrangements]


# ------------------------------------------------ 5. textbook settings, as documented
def test_textbook_scripts_use_their_documented_settings():
    """Each docstring's alpha / gamma / epsilon, planning steps and kappa."""
    assert cliff_walking.HPARAMS._asdict()["alpha"] == 0.5
    assert (cliff_walking.HPARAMS.gamma, cliff_walking.HPARAMS.epsilon) == (1.0, 0.1)
    assert (windy_gridworld.HPARAMS.alpha, windy_gridworld.HPARAMS.gamma) == (0.5, 1.0)
    assert (dyna_maze.HPARAMS.alpha, dyna_maze.HPARAMS.gamma, dyna_maze.HPARAMS.epsilon) == (
        0.1, 0.95, 0.1,
    )  # fmt: skip
    assert changing_mazes.TASKS == {
        "blocking": ("BlockingMaze-v0", 10, 1e-4, 3000, 1000),
        "shortcut": ("ShortcutMaze-v0", 50, 1e-3, 6000, 3000),
    }
    agents = cat_room.AGENTS
    assert agents["Dyna-Q (n=10), epsilon-greedy"][0].planning_steps == 10
    assert agents["Q-learning, optimistic Q0=5"][1].q_init == 5.0


def test_changing_mazes_runs_use_alpha_1(monkeypatch):
    """The docstring and results.json's config say alpha 1."""
    seen = []

    def recording_run_sweep(train, key, grid, num_runs):
        seen.append(float(np.asarray(grid.alpha)[0]))
        raise Trained

    monkeypatch.setattr(changing_mazes, "run_sweep", recording_run_sweep)
    with pytest.raises(Trained):
        changing_mazes.run("blocking", 1)
    assert seen == [1.0]


def test_windy_gridworld_converged_path_is_q_learnings(monkeypatch):
    """The docstring: Sarsa for 8000 steps, then the converged greedy path Q-learning's
    after 500 episodes."""
    made = []
    recording_make_train = make_train_recording(made)
    monkeypatch.setattr(windy_gridworld, "make_train", recording_make_train)
    monkeypatch.setattr(windy_gridworld, "run_sweep", lambda *a, **k: (None, None))
    with pytest.raises(Trained):
        windy_gridworld.run(1)
    assert made == [("sarsa", 1000), ("q_learning", 500)]


# ------------------------------------------- 6. what the textbook scripts hand to training
def test_textbook_scripts_explore_and_plan_as_the_reference_says():
    """REFERENCE.md: epsilon 0.1 throughout; Dyna Maze planning steps n = 0, 5, 50. The
    README: the cat room's Boltzmann temperature 1 -> 0.05, its epsilon-greedy agents 0.1."""
    assert (cliff_walking.HPARAMS.epsilon, windy_gridworld.HPARAMS.epsilon) == (0.1, 0.1)
    assert dyna_maze.PLANNING_STEPS == (0, 5, 50)
    agents = cat_room.AGENTS
    boltzmann = agents["Q-learning, Boltzmann"][1]
    assert (boltzmann.temperature, boltzmann.temperature_end) == (1.0, 0.05)
    for label in ("Q-learning, epsilon-greedy", "Dyna-Q (n=10), epsilon-greedy"):
        assert agents[label][1].epsilon == 0.1


def test_cliff_walking_trains_each_method_for_the_episodes_asked(monkeypatch):
    made = []
    recording_make_train = make_train_recording(made)
    state = SimpleNamespace(q_values=np.zeros((1, 1, 48, 4)))  # 4 x 12 cells, 4 actions
    metrics = SimpleNamespace(episode_returns=np.zeros((1, 1, 120)))
    monkeypatch.setattr(cliff_walking, "make_train", recording_make_train)
    monkeypatch.setattr(cliff_walking, "run_sweep", lambda *a, **k: (state, metrics))
    with pytest.raises(Trained):
        cliff_walking.run(1, num_episodes=120)
    assert made == [("sarsa", 120), ("q_learning", 120)]


def test_windy_gridworld_counts_episodes_by_each_of_the_8000_steps(monkeypatch):
    """REFERENCE.md: Sarsa for 8000 time steps; the figure counts the episodes completed
    by each of them."""
    from jrl.envs import make

    env, _ = make("WindyGridworld-v0")
    # Every episode of run 0 takes 100 steps (80 fit in 8000), of run 1 160 (50 fit).
    lengths = np.zeros((1, 2, 1000), np.int32)
    lengths[0, 0, :80], lengths[0, 1, :50] = 100, 160
    metrics = SimpleNamespace(episode_lengths=lengths, num_completed=np.array([[80, 50]]))
    state = SimpleNamespace(q_values=np.zeros((1, 2, env.num_states, env.num_actions)))
    made = []

    def recording_make_train(config, env, params):
        made.append((config.algorithm, config.max_steps))
        return config

    monkeypatch.setattr(windy_gridworld, "make_train", recording_make_train)
    monkeypatch.setattr(windy_gridworld, "run_sweep", lambda *a, **k: (state, metrics))
    results = windy_gridworld.run(2)
    assert made[0] == ("sarsa", 8000)
    t = np.arange(1, 8001)
    np.testing.assert_array_equal(results["episodes_by_step"], [t // 100, t // 160])
    assert results["episodes_completed"].tolist() == [80, 50]


@pytest.mark.parametrize("task", list(changing_mazes.TASKS))
def test_changing_mazes_give_dyna_q_plus_alone_its_bonus_and_judge_the_last_layout(
    task, monkeypatch
):
    """Dyna-Q has no bonus, Dyna-Q+ the task's kappa, both the task's planning steps,
    gamma 0.95, epsilon 0.1 and its whole run of steps; the greedy paths are those of
    the layout after the change (the wall moved or opened)."""
    env_id, planning_steps, kappa, steps, _ = changing_mazes.TASKS[task]
    seen, layouts = [], []

    def fake_run_sweep(config, key, grid, num_runs):
        # float32 in the grid: to 6 places, as the scripts give them
        values = [round(float(np.asarray(v)[0]), 6) for v in (*grid[:3], grid.kappa)]
        seen.append((config.algorithm, config.planning_steps, config.num_episodes,
                     config.max_steps, *values))  # fmt: skip
        state = SimpleNamespace(q_values=np.zeros((1, num_runs, 1, 1)))
        return state, SimpleNamespace(episode_lengths=np.zeros((1, num_runs, 1), np.int32))

    def recording_lengths(self, params, q_values, layout=0):
        layouts.append((self.num_layouts, layout))
        return [0] * len(q_values)

    env, _ = changing_mazes.make(env_id)
    monkeypatch.setattr(changing_mazes, "make_train", lambda config, env, params: config)
    monkeypatch.setattr(changing_mazes, "run_sweep", fake_run_sweep)
    monkeypatch.setattr(type(env), "greedy_path_lengths", recording_lengths)
    changing_mazes.run(task, 2)
    assert seen == [
        ("dyna_q", planning_steps, steps, steps, 1.0, 0.95, 0.1, 0.0),
        ("dyna_q_plus", planning_steps, steps, steps, 1.0, 0.95, 0.1, kappa),
    ]
    assert layouts == [(2, 1), (2, 1)]  # two layouts: judged in the second


@pytest.mark.parametrize("completed, layout", [(800, 3), (100, 0), (101, 1), (401, 0), (0, 0)])
def test_cat_room_greedy_return_is_judged_in_the_last_episodes_arrangement(completed, layout):
    """The dynamic room changes arrangement every 100 episodes, cycling through four:
    after N episodes the last (the N-th) was played in arrangement ((N - 1) // 100) % 4."""
    from jrl.envs import make

    env, params = make("CatRoomDynamic-v0")
    assert cat_room.SWITCH_EVERY == int(params.switch_every) == 100
    metrics = SimpleNamespace(num_completed=np.array([[completed]]))
    assert int(np.asarray(cat_room._final_layout(env, params, metrics))[0, 0]) == layout


def test_cat_room_deep_setups_are_the_learning_tests_but_for_their_length():
    """The docstring: the settings of tests/test_ppo.py's and tests/test_dqn.py's cat-room
    learning tests, with longer runs: every other field at its default there too."""
    from jrl.agents import dqn, ppo

    config, hparams = cat_room_deep.ppo_setup(200_000)
    assert config == ppo.PPOConfig(num_envs=32, num_steps=128, total_timesteps=200_000)
    assert hparams == ppo.PPOHParams(
        lr=3e-3, gamma=0.99, gae_lambda=1.0, ent_coef=0.1, reward_scale=0.1
    )
    config, hparams = cat_room_deep.dqn_setup(80_000)
    assert config == dqn.DQNConfig(
        num_envs=8, total_timesteps=80_000, buffer_size=10_000, batch_size=64,
        learning_starts=500, train_frequency=8, target_update_frequency=400,
        double_dqn=True, log_frequency=2_000, hidden_sizes=(64, 64),
    )  # fmt: skip
    assert hparams == dqn.DQNHParams(lr=1e-3, gamma=0.95, epsilon_decay_fraction=0.5)


def test_cat_room_deep_plays_whole_greedy_episodes_and_random_cats_as_it_says(
    monkeypatch, tmp_path
):
    """One greedy episode per seed (the room is deterministic) to the room's time limit;
    results.json's random cat: "10000 uniformly random episodes (cut at 100 steps)"."""
    seen, randoms = {}, []

    def fake_train_over_seeds(agent, *args, **kwargs):
        seen.update(kwargs)
        raise Trained

    env, params = cat_room_deep.make_env("CatRoom-v0")
    monkeypatch.setattr(cat_room_deep, "train_over_seeds", fake_train_over_seeds)
    with pytest.raises(Trained):
        cat_room_deep.run("static", "PPO", 1, steps=32 * 128 * 2)
    assert seen["eval_episodes"] == 1
    assert seen["eval_max_steps"] >= int(params.max_steps_in_episode) == 100

    def recording_random(env, env_params, key, num_episodes=1000, max_steps=1000):
        randoms.append((num_episodes, max_steps))
        raise Trained

    monkeypatch.setattr(cat_room_deep, "random_policy_return", recording_random)
    monkeypatch.setattr(cat_room_deep, "provenance", lambda: {})
    monkeypatch.setattr(sys, "argv", ["cat_room_deep.py", "--out", str(tmp_path)])
    with pytest.raises(Trained):
        cat_room_deep.main()
    assert randoms == [(10_000, 100)]


# The README's run counts ("50 runs x 500 episodes", "30 runs", "20 runs", "32 seeds",
# "8 seeds x 5e5 steps") and the docstrings' (MinAtar: 8 seeds, its full 1e7 steps).
DEFAULT_RUNS = [
    (cliff_walking, {"num_runs": 50, "num_episodes": 500}),
    (windy_gridworld, {"num_runs": 50}),
    (dyna_maze, {"num_runs": 30, "num_episodes": 50}),
    (changing_mazes, {"num_runs": 20}),
    (cat_room, {"num_seeds": 32}),
    (cartpole, {"num_seeds": 8, "steps": 500_000}),
    (minatar_breakout, {"num_seeds": 8, "steps": 10_000_000}),
    (cat_room_deep, {"num_seeds": 8}),
]


@pytest.mark.parametrize(
    "script, expected", DEFAULT_RUNS, ids=[s.__name__.rsplit(".", 1)[-1] for s, _ in DEFAULT_RUNS]
)
def test_scripts_run_their_documented_number_of_runs_by_default(
    script, expected, tmp_path, monkeypatch
):
    signature = inspect.signature(script.run)
    seen = {}

    def recording_run(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        seen.update(bound.arguments)
        raise Trained

    monkeypatch.setattr(script, "run", recording_run)
    monkeypatch.setattr(script, "provenance", lambda: {})
    if script is cat_room_deep:  # its random cats play before it trains
        monkeypatch.setattr(script, "random_policy_return", lambda *a, **k: 0.0)
    monkeypatch.setattr(sys, "argv", [script.__file__, "--out", str(tmp_path / "out")])
    with pytest.raises(Trained):
        script.main()
    assert {name: seen[name] for name in expected} == expected
