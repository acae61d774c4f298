"""Random-policy throughput of jrl's grid engine against gymnax's FourRooms.

The work, the same for every environment: ``num_envs`` environments stepped
``num_steps`` times inside one jitted ``lax.scan``. Each scan step splits the key,
draws a uniformly random action per environment with ``jax.random.randint``, splits
one key per environment and vmaps ``env.step`` over them (auto-reset included), and
adds every observation and reward into an accumulator, so that XLA cannot drop work
whose result nobody reads (see shared/REFERENCE.md: navix's 13.7M vs 5.4M steps/s).

Environments: jrl's ``CatRoom-v0`` (7x11, five actions; ``jrl.envs.make``) with its
index observation, the same with the grid observation (float32[7, 11, 6]) as an extra
figure, the same with FourRooms' slip of 1/3 (``slip_prob=1/3``) as a like-for-like
figure, and gymnax's ``FourRooms-misc`` (13x13, four actions, a slip of 1/3;
``gymnax.make``) as the baseline. A "harness" row runs the same loop with a null
environment (its state is the running sum of its actions; it ignores its key, so
XLA drops the per-environment key split): the floor that every row pays, so
harness / baseline bounds the speedup any environment could show here.

Compile time (lower + compile of the whole scan) is reported apart from run time,
the median of ``--repeats`` calls of the compiled function with fresh keys. The rows
are run round-robin, one repeat of each in turn, so that the noise of a shared
machine falls on all of them alike. ``speedup`` is ours / baseline steps per second
(medians); ``speedup_best_of_repeats`` compares the fastest repeats, and
``speedup_ceiling`` is harness / baseline, the most any environment could show here.
The params are closed over, so they are compile-time constants for both (as in
gymnax-style training code); jrl's deterministic tasks (slip 0) then draw no random
numbers, while FourRooms draws its slip of 1/3 for every environment at every step —
so ``speedup`` (CatRoom as the task defines it) is partly the price of FourRooms'
randomness, and ``speedup_same_slip`` (CatRoom slipping as FourRooms does) is the
engine against engine figure.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib import metadata

import gymnax
import jax
import jax.numpy as jnp

import jrl.envs

TARGET_SPEEDUP = 4.0


def make_run(env, params, num_envs: int, num_steps: int):
    """Jitted ``run(key) -> float32`` stepping ``num_envs`` envs ``num_steps`` times.

    ``env=None`` runs the harness with a null environment (see the module docstring).
    """
    num_actions = 4 if env is None else env.action_space(params).n

    def run(key):
        key_reset, key_scan = jax.random.split(key)
        if env is None:
            state = jnp.zeros(num_envs, jnp.int32)
        else:
            reset_keys = jax.random.split(key_reset, num_envs)
            _, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)

        def one_step(carry, _):
            state, acc, key = carry
            key, key_act, key_env = jax.random.split(key, 3)
            action = jax.random.randint(key_act, (num_envs,), 0, num_actions)
            env_keys = jax.random.split(key_env, num_envs)
            if env is None:
                # The null env reads its action, not its key: XLA drops the split.
                state = state + action
                obs, reward = state, jnp.zeros(num_envs)
            else:
                obs, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                    env_keys, state, action, params
                )
            acc = acc + obs.astype(jnp.float32).sum() + reward.sum()
            return (state, acc, key), None

        (_, acc, _), _ = jax.lax.scan(
            one_step, (state, jnp.float32(0.0), key_scan), None, length=num_steps
        )
        return acc

    return jax.jit(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--num-steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ours, ours_params = jrl.envs.make("CatRoom-v0")
    ours_grid, ours_grid_params = jrl.envs.make("CatRoom-v0", observation="grid")
    ours_slip, ours_slip_params = jrl.envs.make("CatRoom-v0", slip_prob=1 / 3)
    base, base_params = gymnax.make("FourRooms-misc")
    rows = {
        "ours": ("jrl CatRoom-v0 (index obs)", ours, ours_params),
        "ours_grid_obs": ("jrl CatRoom-v0 (grid obs)", ours_grid, ours_grid_params),
        "ours_slip": ("jrl CatRoom-v0 (index obs, slip 1/3)", ours_slip, ours_slip_params),
        "baseline": ("gymnax FourRooms-misc", base, base_params),
        "harness": ("null env: random actions and the accumulator only", None, None),
    }

    key = jax.random.key(args.seed)
    compiled, figures = {}, {}
    for name, (label, env, params) in rows.items():
        run = make_run(env, params, args.num_envs, args.num_steps)
        start = time.perf_counter()
        compiled[name] = run.lower(key).compile()
        compile_s = time.perf_counter() - start
        compiled[name](key).block_until_ready()  # warm-up
        figures[name] = {"env": label, "compile_s": round(compile_s, 3), "times": []}

    for repeat in range(args.repeats):
        for name in rows:
            run_key = jax.random.fold_in(key, repeat + 1)
            start = time.perf_counter()
            compiled[name](run_key).block_until_ready()
            figures[name]["times"].append(time.perf_counter() - start)

    steps = args.num_envs * args.num_steps
    for row in figures.values():
        times = row.pop("times")
        row["run_s"] = round(statistics.median(times), 4)
        row["run_s_min_max"] = [round(min(times), 4), round(max(times), 4)]
        row["steps_per_s"] = round(steps / statistics.median(times))

    def ratio(a: str, b: str) -> float:
        return round(figures[a]["steps_per_s"] / figures[b]["steps_per_s"], 3)

    def best_ratio(a: str, b: str) -> float:  # from the fastest repeats: less load noise
        return round(figures[b]["run_s_min_max"][0] / figures[a]["run_s_min_max"][0], 3)

    result = {
        "benchmark": "grid_throughput",
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "repeats": args.repeats,
        **figures,
        "speedup": ratio("ours", "baseline"),
        "speedup_grid_obs": ratio("ours_grid_obs", "baseline"),
        "speedup_same_slip": ratio("ours_slip", "baseline"),
        "speedup_best_of_repeats": best_ratio("ours", "baseline"),
        "speedup_ceiling": ratio("harness", "baseline"),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": ratio("ours", "baseline") >= TARGET_SPEEDUP,
        "device": str(jax.devices()[0].device_kind),
        "cpu_count": os.cpu_count(),
        "versions": {"jax": jax.__version__, "gymnax": metadata.version("gymnax")},
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    from compile_times import no_persistent_cache  # (this script's directory)

    no_persistent_cache()
    main()
