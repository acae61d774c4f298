"""Which number goes into which field of the textbook experiments' results.json: each
script's main() run on made-up results whose every figure is known (no training)."""

import json

import numpy as np
import pytest


def _main(script, monkeypatch, tmp_path, fake_run, *argv):
    """Run an experiment script's main() on ``fake_run``'s results; its results.json."""
    monkeypatch.setattr(script, "run", fake_run)
    monkeypatch.setattr(script, "provenance", lambda: {})
    monkeypatch.setattr("sys.argv", [script.__name__, "--out", str(tmp_path), *argv])
    script.main()
    return json.loads((tmp_path / "results.json").read_text())


def test_dyna_maze_results_report_episode_5_and_episodes_40_to_50(monkeypatch, tmp_path):
    from experiments import dyna_maze

    # Run r's episode e (from 1) took 1000 * n + 10 * e + r steps.
    def fake_run(num_runs, seed=0):
        episodes = np.arange(1, 51)
        return {
            n: {
                "steps_per_episode": 1000 * n + 10 * episodes + np.arange(num_runs)[:, None],
                "greedy_path_lengths": [14, 15, 16][:num_runs],
            }
            for n in dyna_maze.PLANNING_STEPS
        }

    results = _main(dyna_maze, monkeypatch, tmp_path, fake_run, "--runs", "3")
    for n in dyna_maze.PLANNING_STEPS:
        entry = results[f"n={n}"]
        assert entry["mean_steps_episode_5"] == 1000 * n + 50 + 1
        assert entry["mean_steps_episodes_40_50"] == pytest.approx(1000 * n + 450 + 1)
        assert entry["greedy_path_length_median"] == 15


def test_changing_mazes_reward_after_change_counts_from_the_step_of_the_change(
    monkeypatch, tmp_path
):
    from experiments import changing_mazes

    # One reward per step from step 1 (cumulative reward t at step t), plus the run's index.
    def fake_run(task, num_runs=20, seed=0):
        steps = changing_mazes.TASKS[task][3]
        reward = np.arange(1, steps + 1) + np.arange(num_runs)[:, None]
        return {
            m: {"cumulative_reward": reward, "greedy_path_lengths": [10] * num_runs}
            for m in changing_mazes.METHODS
        }

    results = _main(changing_mazes, monkeypatch, tmp_path, fake_run, "--runs", "2")
    for task, (_, _, _, steps, change) in changing_mazes.TASKS.items():
        for method in changing_mazes.METHODS:
            entry = results[task][method]
            assert entry["cumulative_reward_final"] == steps + 0.5
            # The steps after the change, change + 1 .. steps, each earned one.
            assert entry["reward_after_change"] == steps - change


def test_cliff_walking_results_average_episodes_100_to_500_of_every_run(monkeypatch, tmp_path):
    from experiments import cliff_walking

    # Episode e (from 0) of run r returned -e - r; two greedy paths of 13, one that loops.
    def fake_run(num_runs, num_episodes, seed=0):
        returns = -np.arange(num_episodes) - np.arange(num_runs)[:, None]
        return {
            m: {"returns": returns.astype(float), "greedy_path_lengths": [13, -1, 13]}
            for m in cliff_walking.METHODS
        }

    results = _main(cliff_walking, monkeypatch, tmp_path, fake_run, "--runs", "3")
    for method in cliff_walking.METHODS:
        entry = results[method]
        assert entry["mean_return_episodes_100_500"] == pytest.approx(-(100 + 499) / 2 - 1)
        assert entry["greedy_path_length_median"] == 13.0
        assert entry["greedy_path_reached"] == pytest.approx(2 / 3)


def test_cat_room_dynamic_figures_leave_out_the_period_before_the_first_change(
    monkeypatch, tmp_path
):
    from experiments import cat_room
    from jrl.envs import make

    env, _ = make("CatRoom-v0")

    # Episode e returns its place in its period (e % 100), plus 1000 in the first period,
    # which no change precedes.
    def fake_run(room, num_seeds, num_episodes=None, seed=0, **_):
        episodes = np.arange(cat_room.ROOMS[room][1])
        returns = episodes % cat_room.SWITCH_EVERY + 1000.0 * (episodes < cat_room.SWITCH_EVERY)
        return {
            label: {
                "returns": np.tile(returns, (num_seeds, 1)),
                "greedy_returns": np.array([1.0, 10.0][:num_seeds]),
                "q_values": np.zeros((num_seeds, env.num_states, env.num_actions)),
            }
            for label in cat_room.AGENTS
        }

    results = _main(cat_room, monkeypatch, tmp_path, fake_run, "--seeds", "2")
    for figures in results["dynamic"].values():
        assert figures["mean_return_first_20_after_change"] == pytest.approx(9.5)
        assert figures["mean_return_last_20_before_next"] == pytest.approx(89.5)
    for figures in results["static"].values():
        assert figures["greedy_return_mean"] == 5.5
        assert figures["fraction_greedy_scratches_tall_post"] == 0.5


def test_windy_gridworld_results_keep_sarsa_and_converged_paths_apart(monkeypatch, tmp_path):
    from experiments import windy_gridworld

    def fake_run(num_runs, seed=0):
        return {
            "episodes_by_step": np.tile(np.arange(8000) // 50, (num_runs, 1)),
            "episodes_completed": np.array([150, 170, 160][:num_runs]),
            "sarsa_greedy_path_lengths": [17, 17, 19],
            "converged_greedy_path_lengths": [15] * 3,
        }

    results = _main(windy_gridworld, monkeypatch, tmp_path, fake_run, "--runs", "3")
    assert results["episodes_completed_by_8000_steps"] == {"mean": 160.0, "min": 150, "max": 170}
    assert results["sarsa_greedy_path_length_median"] == 17.0
    assert results["converged_greedy_path_length_median"] == 15.0
