"""The cat room: does the cat learn to scratch its posts instead of the furniture?

Tabular agents on the static room (``CatRoom-v0``) and on the room whose posts and
furniture move every 100 episodes (``CatRoomDynamic-v0``), 32 seeds each:
Q-learning with epsilon-greedy and with Boltzmann exploration, Dyna-Q, and
Q-learning with optimistic initial values. The rug post (+1) is three steps from the
start; the tall post (+10) is far, past the furniture (-5): undirected exploration
settles for the rug, exploration that is planned or optimistic finds the tall post.

Writes to --out: results.json (per agent and room the figures printed, per-seed values
with mean and IQM and bootstrap intervals, and the learning curve), static_room.png and
dynamic_room.png (mean and IQM over seeds, bootstrap bands), greedy_before.gif and
greedy_after.gif (the greedy policy before and after learning).

    python experiments/cat_room.py --out results/cat_room
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jrl.agents.exploration import epsilon_greedy
from jrl.agents.tabular import TabularConfig, TabularHParams, greedy_episode, make_train
from jrl.envs import make, rollout_frames, save_gif
from jrl.envs.cat_room import LARGE_TREAT
from jrl.reporting import (
    check_experiment_args,
    final_summary,
    plot_learning_curves,
    smooth,
    write_json,
)
from jrl.run_dir import provenance
from jrl.sweep import run_sweep, stack_grid

BASE = TabularHParams(alpha=0.1, gamma=0.95, epsilon=0.1)
# label: (static config, hyperparameters); agents sharing a config share one compile.
AGENTS = {
    "Q-learning, epsilon-greedy": (TabularConfig(), BASE),
    "Q-learning, optimistic Q0=5": (TabularConfig(), BASE._replace(q_init=5.0)),
    "Q-learning, Boltzmann": (
        TabularConfig(exploration="boltzmann", schedule="exponential"),
        BASE._replace(temperature=1.0, temperature_end=0.05, decay_steps=10_000.0),
    ),
    "Dyna-Q (n=10), epsilon-greedy": (TabularConfig(algorithm="dyna_q", planning_steps=10), BASE),
}
ROOMS = {"static": ("CatRoom-v0", 500), "dynamic": ("CatRoomDynamic-v0", 800)}
SWITCH_EVERY = 100  # CatRoomDynamic-v0's default: the arrangement changes every 100 episodes


def run(
    room: str = "static",
    num_seeds: int = 32,
    num_episodes: int | None = None,
    seed: int = 0,
    agents=None,
    log=print,
) -> dict:
    """Per agent: episode returns float[seeds, episodes], the greedy return of each
    seed's final Q-table (in the layout in use at the end), and the Q-tables."""
    env_id, default_episodes = ROOMS[room]
    num_episodes = num_episodes or default_episodes
    env, params = make(env_id)
    agents = AGENTS if agents is None else agents
    groups: dict[TabularConfig, list[str]] = {}
    for label, (config, _) in agents.items():
        groups.setdefault(config, []).append(label)
    # One program for every group (a jit made in the loop compiled it once per group).
    greedy_returns = jax.jit(
        jax.vmap(
            jax.vmap(
                lambda q, final: greedy_episode(
                    jax.random.key(seed + 1),
                    env,
                    params.in_layout(final),
                    q,
                    int(params.max_steps_in_episode),
                )[0]
            )
        )
    )
    out = {}
    for config, labels in groups.items():
        started = time.perf_counter()
        config = TabularConfig(**{**config.__dict__, "num_episodes": num_episodes})
        grid = stack_grid([agents[label][1] for label in labels])
        state, metrics = run_sweep(
            make_train(config, env, params), jax.random.key(seed), grid, num_seeds
        )
        greedy = greedy_returns(state.q_values, _final_layout(env, params, metrics))
        for i, label in enumerate(labels):
            out[label] = {
                "returns": np.asarray(metrics.episode_returns[i]),
                "greedy_returns": np.asarray(greedy[i]),
                "q_values": np.asarray(state.q_values[i]),
            }
        log(f"  {room} room: {', '.join(labels)}: {time.perf_counter() - started:.1f} s")
    return out


def _final_layout(env, params, metrics):
    """Arrangement in use in the last episode (for the dynamic room)."""
    from jrl.envs.grid import layout_index

    last = jnp.maximum(metrics.num_completed - 1, 0)
    return layout_index(params, last, jnp.zeros_like(last))


def greedy_gif(path, q_values, seed: int = 0, env_id: str = "CatRoom-v0"):
    """GIF of one greedy episode (ties broken at random) in the room."""
    env, params = make(env_id)
    policy = lambda key, obs: epsilon_greedy(key, q_values[obs], 0.0)  # noqa: E731
    frames, rewards, _ = rollout_frames(
        env, params, policy, jax.random.key(seed), int(params.max_steps_in_episode) // 2
    )
    save_gif(path, frames)
    return float(rewards.sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/cat_room")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_experiment_args(parser, args)
    run_provenance = provenance()  # the start, the code run
    summary = {
        "config": {
            "seeds": args.seeds,
            "seed": args.seed,
            "agents": {
                label: {"config": config.__dict__, "hparams": hp._asdict()}
                for label, (config, hp) in AGENTS.items()
            },
        },
    }
    best = None
    for room, (env_id, num_episodes) in ROOMS.items():
        print(
            f"Training on {env_id}: {len(AGENTS)} agents x {args.seeds} seeds x "
            f"{num_episodes} episodes"
        )
        results = run(room, args.seeds, seed=args.seed)
        summary[room] = {}
        for label, result in results.items():
            greedy = result["greedy_returns"]
            returns = result["returns"]
            figures = {"mean_return_last_50_episodes": float(returns[:, -50:].mean())}
            if room == "static":
                figures["greedy_return_mean"] = float(greedy.mean())
                figures["fraction_greedy_scratches_tall_post"] = float(
                    (greedy == LARGE_TREAT).mean()
                )
            else:  # how far each change knocks the agent back, and how far it recovers
                periods = returns.reshape(len(returns), -1, SWITCH_EVERY)[:, 1:]
                figures["mean_return_first_20_after_change"] = float(periods[..., :20].mean())
                figures["mean_return_last_20_before_next"] = float(periods[..., -20:].mean())
            # The outcome is bimodal (rug or tall post): the IQM and the per-seed values
            # say what the mean alone hides.
            figures["return_last_50_episodes"] = final_summary(returns[:, -50:].mean(axis=1))
            if room == "static":
                figures["greedy_return"] = final_summary(greedy)
            summary[room][label] = figures
            if room == "static" and (best is None or greedy.mean() > best[1]):
                best = (label, greedy.mean(), result["q_values"][int(np.argmax(greedy))])
        _, curves = plot_learning_curves(
            f"{args.out}/{room}_room.png",
            {label: smooth(r["returns"], 20) for label, r in results.items()},
            xlabel="episode",
            ylabel="return (20-episode average)",
            title=f"{env_id}: rug post +1, tall post +10, furniture -5",
        )
        for label, stats in curves.items():
            summary[room][label]["curve"] = {
                "definition": "per episode, the 20-episode trailing average of the return; "
                "mean and IQM over seeds with 95% percentile-bootstrap intervals",
                **{name: np.asarray(value).tolist() for name, value in stats._asdict().items()},
            }
    env, _ = make("CatRoom-v0")
    before = greedy_gif(
        f"{args.out}/greedy_before.gif", jnp.zeros((env.num_states, env.num_actions)), args.seed
    )
    after = greedy_gif(f"{args.out}/greedy_after.gif", jnp.asarray(best[2]), args.seed)
    summary["gifs"] = {"before": {"return": before}, "after": {"agent": best[0], "return": after}}
    write_json(f"{args.out}/results.json", {**summary, "provenance": run_provenance})
    print("static room (greedy return / fraction of seeds whose greedy cat uses the tall post):")
    for label, figures in summary["static"].items():
        print(
            f"  {label:32s} {figures['greedy_return_mean']:6.2f} "
            f"/ {figures['fraction_greedy_scratches_tall_post']:.2f}"
        )
    print("dynamic room (return in the 20 episodes after a change / before the next one):")
    for label, figures in summary["dynamic"].items():
        print(
            f"  {label:32s} {figures['mean_return_first_20_after_change']:6.2f} "
            f"/ {figures['mean_return_last_20_before_next']:.2f}"
        )
    print(
        f"Wrote {args.out}/results.json, static_room.png, dynamic_room.png, "
        "greedy_before.gif, greedy_after.gif"
    )


if __name__ == "__main__":
    main()
