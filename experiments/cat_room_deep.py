"""The cat room with neural agents: PPO and DQN on the static room (``CatRoom-v0``) and
on the room whose posts and furniture move every 100 episodes (``CatRoomDynamic-v0``).

Both agents see the room as its one-hot grid (``observation="grid"``: the cat, then one
plane per kind of cell but the floor), flattened to a vector for an MLP, as PureJaxRL
feeds MinAtar to its MLP. The rug post (+1) is three steps from the start and the tall
post (+10) far past the furniture (-5); scratching a post or the furniture ends the
episode. A uniformly random cat ends 3% of its episodes on the tall post, 20% on the
rug and 64% on the furniture, so an agent that exploits what it found first settles
for the rug (as tabular Q-learning with epsilon-greedy exploration does in
``cat_room.py``). The settings below are those of
the learning tests in ``tests/test_ppo.py`` and ``tests/test_dqn.py`` (whose docstrings
say what was tried), with longer runs.

Each agent is judged by its greedy policy after training: where does the cat end its
episode — on the tall post (return 10), the rug (1), the furniture (-5), or nowhere
(it wanders until the time limit)? In the dynamic room the greedy policy is played in
each of the four arrangements (the observation shows the arrangement, so one policy
can serve all four).

Writes to --out: results.json, static_room.png, dynamic_room.png (mean and IQM
learning curves over seeds) and ppo_greedy.gif, dqn_greedy.gif (seed 0's greedy cat in
the static room).

    python experiments/cat_room_deep.py --out results/cat_room_deep [--seeds 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import jrl.host

if __name__ == "__main__":  # before gymnax's import starts JAX's backend
    jrl.host.use_cpu_cores()  # one XLA device per core: the seeds split over them

import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np
from gymnax.wrappers.purerl import FlattenObservationWrapper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_runs import (  # noqa: E402
    finite_seeds,
    learning_curves,
    random_policy_return,
    return_label,
    summarize,
    train_over_seeds,
    updates_in,
)

from jrl.agents import dqn, ppo  # noqa: E402
from jrl.envs import make, rollout_frames, save_gif  # noqa: E402
from jrl.envs.cat_room import CAT_ROOM_ARRANGEMENTS, LARGE_TREAT, PENALTY, SMALL_TREAT  # noqa: E402
from jrl.reporting import check_experiment_args, plot_learning_curves, write_json  # noqa: E402
from jrl.run_dir import provenance  # noqa: E402

ROOMS = {"static": "CatRoom-v0", "dynamic": "CatRoomDynamic-v0"}


def ppo_setup(steps: int):
    """PPO for the cat room (``tests/test_ppo.py``'s): (PPOConfig, PPOHParams). Many
    episodes per update, Monte Carlo advantages (lambda 1), returns scaled to the value
    clip's unit scale, entropy 0.1: what let the tall post win over the rug."""
    config = ppo.PPOConfig(
        num_envs=32,
        num_steps=128,
        total_timesteps=steps,
        update_epochs=4,
        num_minibatches=4,
        hidden_sizes=(64, 64),
        activation="tanh",
    )
    hparams = ppo.PPOHParams(lr=3e-3, gamma=0.99, gae_lambda=1.0, ent_coef=0.1, reward_scale=0.1)
    return config, hparams


def dqn_setup(steps: int):
    """Double DQN for the cat room (``tests/test_dqn.py``'s): (DQNConfig, DQNHParams)."""
    config = dqn.DQNConfig(
        num_envs=8,
        total_timesteps=steps,
        buffer_size=10_000,
        batch_size=64,
        learning_starts=500,
        train_frequency=8,
        target_update_frequency=400,
        double_dqn=True,
        log_frequency=2_000,
        hidden_sizes=(64, 64),
    )
    return config, dqn.DQNHParams(lr=1e-3, gamma=0.95, epsilon_decay_fraction=0.5)


AGENTS = {"PPO": (ppo, ppo_setup), "DQN": (dqn, dqn_setup)}
STEPS = {
    ("PPO", "static"): 200_000,
    ("PPO", "dynamic"): 800_000,
    ("DQN", "static"): 80_000,
    ("DQN", "dynamic"): 300_000,
}


def make_env(env_id: str, **overrides):
    """The room with its grid observation flattened: (env, params)."""
    env, params = make(env_id, observation="grid", **overrides)
    return FlattenObservationWrapper(env), params


def outcome_fractions(returns) -> dict:
    """Where greedy episodes ended, as fractions of ``returns`` (episode returns)."""
    returns = np.asarray(returns)
    ends = {
        "tall_post": returns == LARGE_TREAT,
        "rug_post": returns == SMALL_TREAT,
        "furniture": returns == PENALTY,
    }
    ends["wandered"] = ~(ends["tall_post"] | ends["rug_post"] | ends["furniture"])
    return {name: float(mask.mean()) for name, mask in ends.items()}


def greedy_in_arrangements(module, network, params_over_seeds, arrangements) -> np.ndarray:
    """Greedy return of each seed's policy in each arrangement (a static room laid out
    that way): float[S, A]."""
    env, _ = make_env("CatRoom-v0")
    rooms = [make_env("CatRoom-v0", layout=layout)[1] for layout in arrangements]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *rooms)

    def one(params, room):
        return module.greedy_episode(jax.random.key(0), env, room, network, params, 100)[0]

    over_rooms = jax.vmap(one, in_axes=(None, 0))
    return np.asarray(jax.jit(jax.vmap(over_rooms, in_axes=(0, None)))(params_over_seeds, stacked))


def run(room: str, agent: str, num_seeds: int = 8, steps: int | None = None, seed: int = 0):
    """Train ``agent`` in ``room`` over seeds: (SeedRuns, config, hparams, greedy
    returns float[S, A] in each arrangement A of the room)."""
    module, setup = AGENTS[agent]
    steps = STEPS[(agent, room)] if steps is None else steps
    env, params = make_env(ROOMS[room])
    config, hparams = setup(steps)
    built = (ppo.make_ppo if module is ppo else dqn.make_dqn)(config, env, params)
    runs = train_over_seeds(
        built,
        module.greedy_episode,
        env,
        params,
        hparams,
        jax.random.key(seed),
        num_seeds,
        eval_episodes=1,  # the room, its start and the greedy policy are deterministic
        eval_max_steps=100,
        num_updates=updates_in(config),
        label=agent,
    )
    arrangements = CAT_ROOM_ARRANGEMENTS if room == "dynamic" else CAT_ROOM_ARRANGEMENTS[:1]
    greedy = greedy_in_arrangements(module, built.network, runs.final_params, arrangements)
    return runs, config, hparams, greedy, built.network


def greedy_gif(path, module, network, params, seed: int = 0) -> float:
    """GIF of one greedy episode in the static room; returns its return."""
    env, room = make("CatRoom-v0", observation="grid")
    act = lambda key, obs: jnp.argmax(_action_values(module, network, params, obs))  # noqa: E731
    frames, rewards, _ = rollout_frames(env, room, act, jax.random.key(seed), 30)
    save_gif(path, frames)
    return float(rewards.sum())


def _action_values(module, network, params, obs):
    out = network.apply(params, obs.reshape(-1))
    return out[0] if module is ppo else out  # PPO: (logits, value); DQN: Q-values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/cat_room_deep")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scale-steps", type=float, default=1.0, help="multiply every run's length"
    )
    args = parser.parse_args()
    if not (math.isfinite(args.scale_steps) and args.scale_steps > 0):
        parser.error(f"--scale-steps must be finite and > 0, got {args.scale_steps}")
    for (agent, room), steps in STEPS.items():  # every config checked before any training
        try:
            AGENTS[agent][1](int(steps * args.scale_steps))
        except ValueError as error:
            parser.error(f"--scale-steps {args.scale_steps}: {agent} in the {room} room: {error}")
    check_experiment_args(parser, args)
    started, run_provenance = time.perf_counter(), provenance()  # the start, the code run
    summary = {"seed": args.seed, "complete": False, "rooms": {}}
    for room, env_id in ROOMS.items():
        env, params = make_env(env_id)
        key = jax.random.key(args.seed + 1)
        # Per arrangement (the dynamic room cycles through its four; reset starts in the
        # first), and their mean as the room's: training sees each in turn.
        per_arrangement = [
            random_policy_return(env, params.in_layout(layout), key, 10_000, 100)
            for layout in range(params.cell_type.shape[0])
        ]
        random_return = float(np.mean(per_arrangement))
        curves, xs, windows = {}, {}, {}
        summary["rooms"][room] = {
            "env": env_id,
            "random_policy_return": random_return,
            "random_policy_return_per_arrangement": per_arrangement,
            "random_policy_definition": "mean return of 10000 uniformly random episodes "
            "(cut at 100 steps) in each arrangement, and the mean over arrangements",
        }
        for agent in AGENTS:
            steps = int(STEPS[(agent, room)] * args.scale_steps)
            print(f"{agent} in {env_id}: {args.seeds} seeds x {steps} steps")
            runs, config, hparams, greedy, network = run(room, agent, args.seeds, steps, args.seed)
            print(
                f"  compile {runs.compile_s:.1f} s, run {runs.run_s:.1f} s "
                f"({runs.steps_per_s:,.0f} steps/s)"
            )
            # A diverged seed's NaN policy is no cat's (summarize leaves it out too).
            finite = finite_seeds(runs)
            entry = {
                "config": dataclasses.asdict(config),
                "hparams": hparams._asdict(),
                **summarize(runs, args.seeds),
                "greedy_outcomes": {
                    "definition": "where each seed's greedy cat ends, in each arrangement, "
                    "of the seeds that did not diverge",
                    **outcome_fractions(greedy[finite]),
                },
                "greedy_return_per_seed_and_arrangement": greedy,
            }
            if room == "static" and finite.any():
                module = AGENTS[agent][0]
                seed = int(np.flatnonzero(finite)[0])
                params = jax.tree.map(lambda x, s=seed: x[s], runs.final_params)
                gif = Path(args.out) / f"{agent.lower()}_greedy.gif"
                entry["gif"] = {"path": gif.name, "seed": seed}
                entry["gif"]["return"] = greedy_gif(gif, module, network, params, args.seed)
            if room == "dynamic":
                entry["greedy_return"]["definition"] += ", in the first arrangement"
            summary["rooms"][room][agent] = entry
            curves[agent], xs[agent], windows[agent] = learning_curves(runs)
            print(f"  greedy cat ends: {outcome_fractions(greedy[finite])}")
        _, stats = plot_learning_curves(
            f"{args.out}/{room}_room.png",
            curves,
            x=xs,
            xlabel="environment steps per seed",
            ylabel=return_label(windows),
            title=f"{env_id} (grid observation, MLP): rug post +1, tall post +10, furniture -5",
            hlines={
                f"random cat ({random_return:.2f}"
                f"{', mean over arrangements' if len(per_arrangement) > 1 else ''})": random_return
            },
        )
        for agent, curve in stats.items():
            summary["rooms"][room][agent]["curve"] = {
                "timesteps": xs[agent],
                "moving_average_rows": windows[agent],
                **curve._asdict(),
            }
        # After each room, so that results.json always goes with the figures beside it
        # (complete: false until the last room is done).
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        summary["complete"] = room == list(ROOMS)[-1]
        write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    print(f"Wrote {args.out}/results.json, static_room.png, dynamic_room.png and GIFs")


if __name__ == "__main__":
    main()
