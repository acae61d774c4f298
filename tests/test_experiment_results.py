"""Which number goes into which field of the experiments' results.json (the textbook
scripts, CartPole, MinAtar Breakout and the deep cat rooms, seed_runs.train_over_seeds):
each script's main() run on made-up results whose every figure is known (no training)."""

import copy
import json
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.seed_runs import SeedRuns


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
                "q_values": np.zeros((num_seeds, env.num_states, env.num_actions))
                + 7.0 * (np.arange(num_seeds) == 1)[:, None, None],
            }
            for label in cat_room.AGENTS
        }

    gifs, drawn = [], cat_room.greedy_gif
    monkeypatch.setattr(
        cat_room, "greedy_gif", lambda path, q, *a, **k: gifs.append(q) or drawn(path, q, *a, **k)
    )
    results = _main(cat_room, monkeypatch, tmp_path, fake_run, "--seeds", "2")
    # The "after" GIF is the best greedy seed's (seed 1: 10.0), its Q-table all 7s.
    assert (np.asarray(gifs[-1]) == 7.0).all()
    for room, by_agent in (("static", results["static"]), ("dynamic", results["dynamic"])):
        returns = np.arange(cat_room.ROOMS[room][1]) % cat_room.SWITCH_EVERY + 1000.0 * (
            np.arange(cat_room.ROOMS[room][1]) < cat_room.SWITCH_EVERY
        )
        for figures in by_agent.values():
            assert figures["mean_return_last_50_episodes"] == returns[-50:].mean()
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


def fake_runs(num_seeds, rows, every, returns, compile_s=3.0, compile_cpu_s=5.0):
    return SeedRuns(
        timesteps=np.arange(1, rows + 1) * every,
        returns=np.asarray(returns, float),
        greedy_returns=np.arange(num_seeds * 2, dtype=float).reshape(num_seeds, 2),
        greedy_lengths=np.ones((num_seeds, 2), np.int32),
        final_params={"w": np.arange(num_seeds, dtype=np.float32)[:, None]},
        compile_s=compile_s,
        compile_cpu_s=compile_cpu_s,
        run_s=2.0,
        steps_per_s=1234.0,
    )


def test_cartpole_results_put_each_agents_figures_in_its_own_entry(monkeypatch, tmp_path):
    from experiments import cartpole

    nan = np.nan
    # PPO: 3 seeds x 40 rows of 512 steps; seed 1's first episode ends in row 3.
    ppo_returns = np.tile(np.arange(40.0), (3, 1))
    ppo_returns[1, :3] = nan
    # DQN: 3 seeds x 10 rows of 5000; seed 0 ends no episode, seed 2 none in the last row.
    dqn_returns = np.array([[nan] * 10, np.arange(10.0) + 100, [7.0] * 9 + [nan]])

    def fake_run(num_seeds, steps, seed=0, log=print):
        return {
            "PPO": (fake_runs(3, 40, 512, ppo_returns), *cartpole.ppo_setup(steps)),
            "DQN": (fake_runs(3, 10, 5000, dqn_returns, 4.0, 6.0), *cartpole.dqn_setup(steps)),
        }

    monkeypatch.setattr(cartpole, "random_policy_return", lambda *a, **k: 22.5)
    results = _main(cartpole, monkeypatch, tmp_path, fake_run, "--seeds", "3", "--steps", "50000")
    ppo, dqn = results["agents"]["PPO"], results["agents"]["DQN"]
    assert results["random_policy_return"] == 22.5
    assert (ppo["steps_per_seed"], dqn["steps_per_seed"]) == (40 * 512, 50_000)
    assert (ppo["compile_seconds"], ppo["compile_cpu_seconds"]) == (3.0, 5.0)
    assert (dqn["compile_seconds"], dqn["compile_cpu_seconds"]) == (4.0, 6.0)
    assert (ppo["run_seconds"], ppo["steps_per_second"]) == (2.0, 1234)
    assert dqn["seeds_without_episodes"] == [0]
    assert dqn["final_return"]["seeds_before_window"] == [2]  # seed 2, not its index 1
    assert dqn["final_return"]["per_seed"] == [109.0, 7.0]
    # Gaps filled (no null) in the per-seed returns: seed 1's first rows take row 3's value.
    assert ppo["returns_per_seed"]["returns"][1][:4] == [3.0, 3.0, 3.0, 3.0]
    assert dqn["returns_per_seed"]["returns"][2][-1] == 7.0
    # Each curve's x axis is its own agent's, from the first row every seed had an episode.
    assert ppo["curve"]["timesteps"] == [512 * r for r in range(4, 41)]
    assert len(ppo["curve"]["mean"]) == len(ppo["curve"]["timesteps"])
    assert dqn["curve"]["timesteps"] == [5000 * r for r in range(1, 11)]
    assert len(dqn["curve"]["mean"]) == len(dqn["curve"]["timesteps"])


def test_minatar_curve_x_axis_starts_where_the_curve_does(monkeypatch, tmp_path):
    from experiments import minatar_breakout

    returns = np.tile(np.arange(60.0), (2, 1))
    returns[1, :5] = np.nan  # seed 1's first episode ends in row 5

    def fake_run(num_seeds, steps, seed=0, log=print):
        return (fake_runs(2, 60, 8192, returns), *minatar_breakout.setup(steps))

    monkeypatch.setattr(minatar_breakout, "random_policy_return", lambda *a, **k: 0.5)
    results = _main(
        minatar_breakout, monkeypatch, tmp_path, fake_run, "--seeds", "2", "--steps", "491520"
    )
    assert results["curve"]["timesteps"] == [8192 * r for r in range(6, 61)]
    assert len(results["curve"]["mean"]) == len(results["curve"]["timesteps"])
    assert results["steps_per_seed"] == 60 * 8192
    assert results["purejaxrl_full_run_steps"] == 10_000_000


def test_minatar_setup_is_purejaxrls_minatar_configuration():
    """The docstring's configuration: 64 envs x 128 steps, 4 epochs x 8 minibatches, Adam
    5e-3, gamma 0.99, GAE 0.95, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5, 64-64
    ReLU, 1e7 steps by default."""
    from experiments import minatar_breakout

    config, hparams = minatar_breakout.setup()
    assert (config.num_envs, config.num_steps) == (64, 128)
    assert (config.update_epochs, config.num_minibatches) == (4, 8)
    assert config.hidden_sizes == (64, 64) and config.activation == "relu"
    assert config.total_timesteps == 10_000_000 and config.anneal_lr
    assert hparams._asdict() == {
        "lr": 5e-3,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_eps": 0.2,
        "ent_coef": 0.01,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "reward_scale": 1.0,
    }


def test_cat_room_deep_results_outcomes_random_cat_and_completeness(monkeypatch, tmp_path):
    from experiments import cat_room_deep

    greedy = {
        "static": np.array([[10.0], [1.0], [-5.0], [0.0]]),  # [4 seeds, 1 arrangement]
        "dynamic": np.array([[10.0, 10.0, 1.0, -5.0]] * 4),  # [4 seeds, 4 arrangements]
    }

    def fake_run(room, agent, num_seeds=8, steps=None, seed=0):
        runs = fake_runs(4, 20, 100, np.tile(np.arange(20.0), (4, 1)))
        if room == "static":  # seed 0 diverged: its NaN policy is no cat's
            runs = runs._replace(finite=np.array([False, True, True, True]))
        config, hparams = cat_room_deep.AGENTS[agent][1](steps)
        return runs, config, hparams, greedy[room], None

    # The random cat returns 1.0 in the static room, 2, 4, 6, 8 in the dynamic room's
    # four arrangements (in that order).
    randoms = iter([1.0, 2.0, 4.0, 6.0, 8.0])
    monkeypatch.setattr(cat_room_deep, "random_policy_return", lambda *a, **k: next(randoms))
    monkeypatch.setattr(cat_room_deep, "greedy_gif", lambda *a, **k: 10.0)
    written = []
    real_write = cat_room_deep.write_json
    monkeypatch.setattr(
        cat_room_deep,
        "write_json",
        lambda path, data: (written.append(copy.deepcopy(data)), real_write(path, data))[1],
    )
    results = _main(cat_room_deep, monkeypatch, tmp_path, fake_run, "--seeds", "4")
    assert [w["complete"] for w in written] == [False, True]  # after each room
    static, dynamic = results["rooms"]["static"], results["rooms"]["dynamic"]
    assert static["random_policy_return"] == 1.0
    assert dynamic["random_policy_return_per_arrangement"] == [2.0, 4.0, 6.0, 8.0]
    assert dynamic["random_policy_return"] == 5.0  # their mean
    outcomes = ("tall_post", "rug_post", "furniture", "wandered")
    for agent in cat_room_deep.AGENTS:
        for room, expected in ((static, [0.0] + [1 / 3] * 3), (dynamic, [0.5, 0.25, 0.25, 0.0])):
            assert [room[agent]["greedy_outcomes"][k] for k in outcomes] == expected
        assert static[agent]["diverged_seeds"] == [0] and static[agent]["gif"]["seed"] == 1
        assert not static[agent]["greedy_return"]["definition"].endswith("first arrangement")
        assert dynamic[agent]["greedy_return"]["definition"].endswith(", in the first arrangement")


def test_cat_room_deep_greedy_in_arrangements_is_seeds_by_arrangements():
    """float[S, A]: seed s's policy (its parameter is s) in arrangement a scores
    100000 s + a number that tells the arrangements apart."""
    from experiments import cat_room_deep
    from jrl.envs.cat_room import CAT_ROOM_ARRANGEMENTS

    def tag(room):  # differs between the four layouts
        return jnp.sum(room.cell_type[0] * jnp.arange(77.0).reshape(7, 11))

    def greedy_episode(key, env, room, network, params, max_steps):
        return (params * 100_000.0 + tag(room),)

    module = SimpleNamespace(greedy_episode=greedy_episode)
    params = jnp.arange(3.0)  # 3 seeds
    out = cat_room_deep.greedy_in_arrangements(module, None, params, CAT_ROOM_ARRANGEMENTS)
    tags = [
        float(tag(cat_room_deep.make_env("CatRoom-v0", layout=a)[1])) for a in CAT_ROOM_ARRANGEMENTS
    ]
    assert len(set(tags)) == 4
    np.testing.assert_array_equal(out, [[100_000.0 * s + t for t in tags] for s in range(3)])


class _Metrics(NamedTuple):
    timesteps: jax.Array
    episode_return: jax.Array


class _State(NamedTuple):
    params: jax.Array


def test_train_over_seeds_steps_per_second_and_its_evaluation_keys():
    """steps/s counts every seed's steps; the greedy episodes draw their own keys, not
    the ones the training run splits from its key (the run's final "parameters" here are
    what it drew from those)."""
    from experiments.seed_runs import train_over_seeds
    from jrl.agents.ppo import PPOHParams

    E = 3

    def train(key, hparams):
        draws = jax.vmap(jax.random.uniform)(jax.random.split(key, E))
        metrics = _Metrics(jnp.arange(1, 5) * 100, jnp.arange(4.0))
        return _State(params=draws), metrics

    def greedy_episode(key, env, env_params, network, params, max_steps):
        return jax.random.uniform(key), jnp.int32(1), None

    agent = SimpleNamespace(train=train, network=None)
    runs = train_over_seeds(
        agent, greedy_episode, None, None, PPOHParams(), jax.random.key(0), 2, eval_episodes=E,
        devices=jax.devices()[:1],
    )  # fmt: skip
    assert runs.steps_per_s == pytest.approx(2 * 400 / runs.run_s)
    assert runs.greedy_returns.shape == (2, E)
    assert not np.isin(runs.greedy_returns, runs.final_params).any()
    assert runs.finite.tolist() == [True, True]
    # One NaN among a seed's parameters is a diverged seed, not most of them finite.
    agent = SimpleNamespace(
        train=lambda key, hparams: (_State(params=jnp.array([jnp.nan, 1.0])), train(key, 0)[1]),
        network=None,
    )
    runs = train_over_seeds(
        agent, greedy_episode, None, None, PPOHParams(), jax.random.key(0), 2, eval_episodes=E,
        devices=jax.devices()[:1],
    )  # fmt: skip
    assert runs.finite.tolist() == [False, False]


def _recording(calls):
    """A stand-in for a plotting function: records its curves and keywords, draws nothing."""

    def plot(path, curves, **kwargs):
        calls.append({"curves": curves, **kwargs})

    return plot


def test_cliff_walking_plots_10_episode_averages_against_the_books_figures(monkeypatch, tmp_path):
    """cliff_walking.png's y label says "10-episode average"; its reference lines and
    results.json's reference are REFERENCE.md's Sarsa ~ -25 and Q-learning ~ -50."""
    from experiments import cliff_walking

    # Episode e (from 0) of run r returned -e - r for Sarsa, twice that for Q-learning.
    def fake_run(num_runs, num_episodes, seed=0):
        returns = (-np.arange(num_episodes) - np.arange(num_runs)[:, None]).astype(float)
        return {
            "sarsa": {"returns": returns, "greedy_path_lengths": [15] * num_runs},
            "q_learning": {"returns": 2 * returns, "greedy_path_lengths": [13] * num_runs},
        }

    plotted = []
    monkeypatch.setattr(cliff_walking, "plot_curves", _recording(plotted))
    results = _main(cliff_walking, monkeypatch, tmp_path, fake_run, "--runs", "2")
    assert results["reference"] == {"sarsa": -25.0, "q_learning": -50.0}
    ((plot,),) = (plotted,)
    assert plot["hlines"] == {"Sarsa ~ -25": -25, "Q-learning ~ -50": -50}
    # The mean of episodes e-9..e is -(e - 4.5) - r; before episode 9, of 0..e: -e/2 - r.
    e = np.arange(500)
    expected = -np.where(e >= 9, e - 4.5, e / 2) - np.arange(2)[:, None]
    np.testing.assert_allclose(plot["curves"]["sarsa"], expected)
    np.testing.assert_allclose(plot["curves"]["q_learning"], 2 * expected)


def test_cliff_walking_of_100_episodes_averages_all_of_them(monkeypatch, tmp_path):
    """With no episodes past the 100th, the figure averages every episode (it has no
    early learning to leave out), and config records the episodes run."""
    from experiments import cliff_walking

    def fake_run(num_runs, num_episodes, seed=0):
        returns = (-np.arange(num_episodes) - np.arange(num_runs)[:, None]).astype(float)
        return {
            m: {"returns": returns, "greedy_path_lengths": [13] * num_runs}
            for m in cliff_walking.METHODS
        }

    monkeypatch.setattr(cliff_walking, "plot_curves", _recording([]))
    results = _main(
        cliff_walking, monkeypatch, tmp_path, fake_run, "--runs", "3", "--episodes", "100"
    )
    assert results["config"]["episodes"] == 100 and results["config"]["runs"] == 3
    for method in cliff_walking.METHODS:
        assert results[method] == {
            "mean_return_episodes_0_100": pytest.approx(-99 / 2 - 1),
            "greedy_path_length_median": 13.0,
            "greedy_path_reached": 1.0,
        }


def test_windy_gridworld_results_config_counts_8000_steps(monkeypatch, tmp_path):
    from experiments import windy_gridworld

    def fake_run(num_runs, seed=0):
        return {
            "episodes_by_step": np.tile(np.arange(8000) // 50, (num_runs, 1)),
            "episodes_completed": np.full(num_runs, 160),
            "sarsa_greedy_path_lengths": [17] * num_runs,
            "converged_greedy_path_lengths": [15] * num_runs,
        }

    plotted = []
    monkeypatch.setattr(windy_gridworld, "plot_curves", _recording(plotted))
    results = _main(windy_gridworld, monkeypatch, tmp_path, fake_run, "--runs", "3")
    assert results["config"]["steps"] == 8000 and results["config"]["runs"] == 3
    assert (results["config"]["alpha"], results["config"]["epsilon"]) == (0.5, 0.1)
    assert plotted[0]["curves"]["Sarsa"].shape == (3, 8000)


def test_dyna_maze_plots_each_episode_from_the_second_at_its_own_number(monkeypatch, tmp_path):
    """Figure 8.2 starts at episode 2 (the first episode is the same for every n): the
    curve's x is the number of the episode whose steps it shows."""
    from experiments import dyna_maze

    # Run r's episode e (from 1) took 1000 * n + 10 * e + r steps.
    def fake_run(num_runs, seed=0):
        episodes = np.arange(1, 51)
        return {
            n: {
                "steps_per_episode": 1000 * n + 10 * episodes + np.arange(num_runs)[:, None],
                "greedy_path_lengths": [14] * num_runs,
            }
            for n in dyna_maze.PLANNING_STEPS
        }

    plotted = []
    monkeypatch.setattr(dyna_maze, "plot_curves", _recording(plotted))
    _main(dyna_maze, monkeypatch, tmp_path, fake_run, "--runs", "3")
    ((plot,),) = (plotted,)
    x = np.asarray(plot["x"])
    np.testing.assert_array_equal(x, np.arange(2, 51))
    for n in dyna_maze.PLANNING_STEPS:
        curve = np.asarray(plot["curves"][f"{n} planning steps"])
        np.testing.assert_allclose(curve.mean(axis=0), 1000 * n + 10 * x + 1)
    assert plot["hlines"] == {"optimal 14": 14}


def test_changing_mazes_results_name_each_tasks_planning_steps_kappa_and_steps(
    monkeypatch, tmp_path
):
    from experiments import changing_mazes

    def fake_run(task, num_runs=20, seed=0):
        steps = changing_mazes.TASKS[task][3]
        reward = np.tile(np.arange(1, steps + 1), (num_runs, 1))
        return {
            m: {"cumulative_reward": reward, "greedy_path_lengths": [10] * num_runs}
            for m in changing_mazes.METHODS
        }

    monkeypatch.setattr(changing_mazes, "plot_curves", _recording([]))
    results = _main(changing_mazes, monkeypatch, tmp_path, fake_run, "--runs", "2")
    # REFERENCE.md: Blocking n = 10, kappa 1e-4; Shortcut n = 50, kappa 1e-3.
    assert {k: results["blocking"][k] for k in ("planning_steps", "kappa")} == {
        "planning_steps": 10,
        "kappa": 1e-4,
    }
    assert {k: results["shortcut"][k] for k in ("planning_steps", "kappa")} == {
        "planning_steps": 50,
        "kappa": 1e-3,
    }
    assert (results["blocking"]["steps"], results["shortcut"]["steps"]) == (3000, 6000)


def test_cat_room_curves_are_20_episode_averages_and_the_before_gif_knows_nothing(
    monkeypatch, tmp_path
):
    """The y label says "20-episode average"; greedy_before.gif is the cat with Q = 0
    (README), greedy_after.gif the best agent's."""
    from experiments import cat_room
    from jrl.envs import make

    env, _ = make("CatRoom-v0")

    # Episode e returned e, for every seed; every learned Q-table is all 3s.
    def fake_run(room, num_seeds, num_episodes=None, seed=0, **_):
        episodes = cat_room.ROOMS[room][1]
        return {
            label: {
                "returns": np.tile(np.arange(float(episodes)), (num_seeds, 1)),
                "greedy_returns": np.ones(num_seeds),
                "q_values": np.full((num_seeds, env.num_states, env.num_actions), 3.0),
            }
            for label in cat_room.AGENTS
        }

    plotted, gifs = [], []
    drawn = cat_room.plot_learning_curves
    monkeypatch.setattr(
        cat_room,
        "plot_learning_curves",
        lambda path, curves, **k: plotted.append(curves) or drawn(path, curves, **k),
    )
    monkeypatch.setattr(cat_room, "greedy_gif", lambda path, q, *a, **k: gifs.append(q) or 0.0)
    results = _main(cat_room, monkeypatch, tmp_path, fake_run, "--seeds", "2")
    for curves, room in zip(plotted, cat_room.ROOMS, strict=True):
        e = np.arange(cat_room.ROOMS[room][1])
        # Each seed's mean over the last 50 episodes, E - 50 .. E - 1: E - 25.5.
        for figures in results[room].values():
            assert figures["return_last_50_episodes"]["per_seed"] == [len(e) - 25.5] * 2
        # The mean of episodes e-19..e is e - 9.5; before episode 19, of 0..e: e/2.
        expected = np.tile(np.where(e >= 19, e - 9.5, e / 2), (2, 1))
        for label in cat_room.AGENTS:
            np.testing.assert_allclose(curves[label], expected)
    before, after = gifs
    assert (np.asarray(before) == 0.0).all() and (np.asarray(after) == 3.0).all()


def test_minatar_title_says_full_run_only_for_its_1e7_steps(monkeypatch, tmp_path):
    from experiments import minatar_breakout

    returns = np.tile(np.arange(60.0), (2, 1))

    def fake_run(num_seeds, steps, seed=0, log=print):
        return (fake_runs(2, 60, 8192, returns), *minatar_breakout.setup(steps))

    titles = []
    drawn = minatar_breakout.plot_learning_curves
    monkeypatch.setattr(
        minatar_breakout,
        "plot_learning_curves",
        lambda path, curves, **k: titles.append(k["title"]) or drawn(path, curves, **k),
    )
    monkeypatch.setattr(minatar_breakout, "random_policy_return", lambda *a, **k: 0.5)
    _main(minatar_breakout, monkeypatch, tmp_path, fake_run, "--seeds", "2", "--steps", "5000000")
    assert titles[0].endswith("5e+06 steps of its 1e7")


def test_learning_curves_average_one_row_in_fifty_and_label_only_smoothed_curves():
    from experiments.seed_runs import learning_curves, return_label

    runs = fake_runs(2, 100, 10, np.tile(np.arange(100.0), (2, 1)))
    curves, timesteps, window = learning_curves(runs)
    assert window == 2  # 100 rows // 50 points
    np.testing.assert_allclose(curves[:, 1:], np.tile(np.arange(1, 100) - 0.5, (2, 1)))
    np.testing.assert_array_equal(timesteps, np.arange(1, 101) * 10)
    assert return_label({"PPO": 1}) == "episode return"
    assert return_label({"PPO": 1, "DQN": 4}) == ("episode return (trailing mean over rows: DQN 4)")


def test_summarize_definitions_name_the_final_windows_steps_and_the_greedy_episodes():
    from experiments.seed_runs import summarize

    # 3 seeds, 40 rows of 512 steps; 2 greedy episodes per seed.
    entry = summarize(fake_runs(3, 40, 512, np.tile(np.arange(40.0), (3, 1))), 3)
    # The last 5% of 40 rows, rows 39 and 40: the steps from row 38's end to row 40's.
    definition = entry["final_return"]["definition"]
    assert "the last 2 of 40 logged rows" in definition
    assert f"steps {38 * 512}-{40 * 512} per seed" in definition
    assert entry["final_return"]["per_seed"] == [38.5] * 3
    assert "mean of 2 episodes per seed" in entry["greedy_return"]["definition"]
