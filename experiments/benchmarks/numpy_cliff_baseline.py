"""Plain-NumPy speed baseline: Sarsa and Q-learning on Cliff Walking.

Sutton & Barto (2018), Example 6.6 and Figure 6.4, written the way a textbook reader
would: a Python loop over runs, episodes and steps, with one NumPy Q table per run.
Nothing is vectorised across runs; this is the baseline that jrl's jit/vmap tabular
agents are compared against, on the same work.

Environment: a 4x12 grid, rows 0..3 top to bottom. Start (3, 0), goal (3, 11), cliff
cells (3, 1)..(3, 10). Actions 0 up, 1 down, 2 left, 3 right; a move off the grid
leaves the agent where it is. Reward -1 per step; stepping into the cliff gives -100
and sends the agent back to the start without ending the episode; reaching the goal
ends the episode (reward -1 for that step). gamma = 1, Q initialised to 0,
epsilon-greedy with random tie-breaking among maximal actions.

Run as a script, it prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

HEIGHT, WIDTH = 4, 12
NUM_STATES, NUM_ACTIONS = HEIGHT * WIDTH, 4
START = (3, 0)
GOAL = (3, 11)
# Row and column change for actions 0 up, 1 down, 2 left, 3 right.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
METHODS = ("sarsa", "q_learning")


def step(row: int, col: int, action: int) -> tuple[int, int, float, bool]:
    """One environment step from (row, col); returns (row', col', reward, terminal)."""
    d_row, d_col = MOVES[action]
    row = min(max(row + d_row, 0), HEIGHT - 1)
    col = min(max(col + d_col, 0), WIDTH - 1)
    if row == 3 and 1 <= col <= 10:  # the cliff: back to the start, episode goes on
        return START[0], START[1], -100.0, False
    if (row, col) == GOAL:
        return row, col, -1.0, True
    return row, col, -1.0, False


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Random action with probability epsilon, else a greedy one (ties broken at random)."""
    if rng.random() < epsilon:
        return int(rng.integers(NUM_ACTIONS))
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[rng.integers(len(best))])


def run_sarsa(
    num_episodes: int, alpha: float, epsilon: float, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """One Sarsa run (S&B eq. 6.7); returns (returns per episode, environment steps)."""
    q = np.zeros((NUM_STATES, NUM_ACTIONS))
    returns = np.zeros(num_episodes)
    steps = 0
    for episode in range(num_episodes):
        row, col = START
        state = row * WIDTH + col
        action = epsilon_greedy(q[state], epsilon, rng)
        total, terminal = 0.0, False
        while not terminal:
            row, col, reward, terminal = step(row, col, action)
            next_state = row * WIDTH + col
            next_action = epsilon_greedy(q[next_state], epsilon, rng)
            target = reward + (0.0 if terminal else q[next_state, next_action])
            q[state, action] += alpha * (target - q[state, action])
            state, action = next_state, next_action
            total += reward
            steps += 1
        returns[episode] = total
    return returns, steps


def run_q_learning(
    num_episodes: int, alpha: float, epsilon: float, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """One Q-learning run (S&B eq. 6.8); returns (returns per episode, environment steps)."""
    q = np.zeros((NUM_STATES, NUM_ACTIONS))
    returns = np.zeros(num_episodes)
    steps = 0
    for episode in range(num_episodes):
        row, col = START
        state = row * WIDTH + col
        total, terminal = 0.0, False
        while not terminal:
            action = epsilon_greedy(q[state], epsilon, rng)
            row, col, reward, terminal = step(row, col, action)
            next_state = row * WIDTH + col
            target = reward + (0.0 if terminal else q[next_state].max())
            q[state, action] += alpha * (target - q[state, action])
            state = next_state
            total += reward
            steps += 1
        returns[episode] = total
    return returns, steps


def run_numpy_cliff(
    num_runs: int = 50,
    num_episodes: int = 500,
    alpha: float = 0.5,
    epsilon: float = 0.1,
    seed: int = 0,
) -> dict:
    """Runs Sarsa and Q-learning ``num_runs`` times each on Cliff Walking.

    Returns a dict with ``"sarsa"`` and ``"q_learning"``: float arrays of shape
    ``(num_runs, num_episodes)``, the sum of rewards of each episode; ``"steps"``: the
    total number of environment steps taken by both methods; and ``"steps_by_method"``.
    Each (method, run) pair has its own generator, spawned from ``seed``.
    """
    runners = {"sarsa": run_sarsa, "q_learning": run_q_learning}
    method_seeds = np.random.SeedSequence(seed).spawn(len(METHODS))
    out: dict = {"steps_by_method": {}}
    for method, method_seed in zip(METHODS, method_seeds, strict=True):
        returns = np.zeros((num_runs, num_episodes))
        method_steps = 0
        for run, run_seed in enumerate(method_seed.spawn(num_runs)):
            rng = np.random.default_rng(run_seed)
            returns[run], run_steps = runners[method](num_episodes, alpha, epsilon, rng)
            method_steps += run_steps
        out[method] = returns
        out["steps_by_method"][method] = method_steps
    out["steps"] = sum(out["steps_by_method"].values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-runs", type=int, default=50)
    parser.add_argument("--num-episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    result = run_numpy_cliff(num_runs=args.num_runs, num_episodes=args.num_episodes, seed=args.seed)
    seconds = time.perf_counter() - start
    # Mean over runs of the mean return over episodes 100..499 (all but the first 100).
    first = min(100, args.num_episodes - 1)
    figures = {
        "benchmark": "numpy_cliff_baseline",
        "num_runs": args.num_runs,
        "num_episodes": args.num_episodes,
        "seconds": round(seconds, 3),
        "steps": result["steps"],
        "steps_per_s": round(result["steps"] / seconds, 1),
    }
    for method in METHODS:
        figures[f"{method}_mean_return_ep{first}_{args.num_episodes - 1}"] = round(
            float(result[method][:, first:].mean(axis=1).mean()), 3
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
