"""The experiment scripts run the configurations their docstrings, the README and
shared/REFERENCE.md give (PureJaxRL's for CartPole-v1, the textbook's for Sutton and
Barto's tasks, the learning tests' for the deep cat rooms) and report what they say
they report. Each script's training is replaced by a recorder: nothing here trains."""

import inspect
import json
import sys

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

    def recording_make_train(config, env, params):
        made.append((config.algorithm, config.num_episodes))
        if len(made) == 2:
            raise Trained
        return lambda key, hparams: None

    monkeypatch.setattr(windy_gridworld, "make_train", recording_make_train)
    monkeypatch.setattr(windy_gridworld, "run_sweep", lambda *a, **k: (None, None))
    with pytest.raises(Trained):
        windy_gridworld.run(1)
    assert made == [("sarsa", 1000), ("q_learning", 500)]
