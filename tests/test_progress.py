"""Progress from inside a run compiled whole (jrl.progress)."""

import io

import jax
import numpy as np
import pytest

from jrl.agents.dqn import DQNConfig, DQNHParams, make_dqn
from jrl.agents.ppo import PPOConfig, PPOHParams, make_ppo
from jrl.envs import make
from jrl.progress import Progress, train_with_progress
from jrl.sweep import run_sweep, stack_grid


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_progress_reports_every_kth_update_once_and_changes_no_number(algo):
    env, params = make("CartPole-v1")
    if algo == "ppo":
        config = PPOConfig(num_envs=2, num_steps=16, total_timesteps=2 * 16 * 10)
        agent, hparams, num_updates = make_ppo(config, env, params), PPOHParams(), 10
    else:
        config = DQNConfig(
            num_envs=2, total_timesteps=400, log_frequency=40, learning_starts=64, batch_size=16
        )
        agent, hparams, num_updates = make_dqn(config, env, params), DQNHParams(), 10
    seen = []
    train = train_with_progress(agent, num_updates, lambda index: seen.append(int(index)), every=3)
    key = jax.random.key(0)
    grid = stack_grid([hparams])
    _, plain = jax.jit(lambda k: run_sweep(agent.train, k, grid, 3, jit=False))(key)
    _, reported = jax.jit(lambda k: run_sweep(train, k, grid, 3, jit=False))(key)
    # Once per update reported, not once per seed (the index is not batched), and the last.
    assert seen == [2, 5, 8, 9]
    assert plain.timesteps.shape[-1] == num_updates
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(reported), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_progress_prints_each_update_once_and_no_more_often_than_asked():
    out = io.StringIO()
    progress = Progress("PPO", 200, min_interval_s=0.0, file=out)
    for index in (49, 49, 9, 99):  # a second device's copy and a late one are dropped
        progress(np.int32(index))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines == progress.lines
    assert lines[0].startswith("  PPO: 25% (update 50 of 200), 0m0")
    assert "50% (update 100 of 200)" in lines[1] and lines[1].endswith("left")
    quiet = Progress("PPO", 200, min_interval_s=3600.0, file=io.StringIO())
    quiet(49)
    assert quiet.lines == []  # within an interval of the start


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_progress_rejects_a_bad_update_count(bad):
    with pytest.raises(ValueError, match="num_updates must be a positive int"):
        Progress("x", bad)
    with pytest.raises(ValueError, match="every must be a positive int"):
        train_with_progress(None, 10, print, every=bad or -1)
