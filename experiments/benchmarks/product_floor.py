"""Benchmark: how much of a one-seed CartPole run is matrix products, and so how fast
any implementation of the same configuration could be on this host. One JSON line.

For PPO and DQN with PureJaxRL's default CartPole configurations (the ones of
``ppo_cartpole.py`` and ``dqn_cartpole.py``), it times

- ``jrl`` and ``purejaxrl``: one seed's whole run, as those benchmarks time it (fresh
  processes, their calls alternating; PureJaxRL only with $PUREJAXRL_DIR);
- ``products``: only the matrix products of the run's gradient steps, at their shapes,
  as ``lax.scan`` over a linear version of the networks — per gradient step the
  forward products (PPO: actor and critic on the minibatch; DQN: the online network on
  s and the target network on s'), the backward products (every layer's weight
  gradient x^T dy, and dy W^T for all but the first layer) and an SGD update of the
  weights with a traced learning rate of 0 (so nothing is constant-folded or hoisted).
  No activation, loss, optimiser state, environment or acting; so ``products_s`` is
  below the time of any implementation that computes the same gradients in float32
  on one core, the way XLA:CPU runs them here (one device per seed; products this
  small run on one core).

Reported per algorithm: ``speedup`` = PureJaxRL's run time / ours;
``products_fraction`` = products_s / our run time; ``speedup_bound`` = PureJaxRL's run
time / products_s, the speedup of a run that did nothing but the products; and
``other_s_at_1_5x``, the time left for everything but the products (environments,
acting, losses, Adam, loop control) in a run 1.5x faster than PureJaxRL's.

    PUREJAXRL_DIR=/path/to/purejaxrl python experiments/benchmarks/product_floor.py \
        [--steps 500000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dqn_cartpole  # noqa: E402
import ppo_cartpole  # noqa: E402
import purejaxrl_baseline as baseline  # noqa: E402

import jrl.host  # noqa: E402

SCRIPTS = {"ppo": HERE / "ppo_cartpole.py", "dqn": HERE / "dqn_cartpole.py"}
OBS_DIM, NUM_ACTIONS = 4, 2  # CartPole-v1


def gradient_steps(algo: str, steps: int) -> tuple[int, int, list, int]:
    """(gradient steps in a run of ``steps``, batch size, networks as layer widths, how
    many of those networks only run forward) for PureJaxRL's CartPole configuration,
    as ``ppo_cartpole.py`` and ``dqn_cartpole.py`` run it."""
    if algo == "ppo":
        config, _ = ppo_cartpole.jrl_config(steps)
        count = config.num_updates * config.update_epochs * config.num_minibatches
        widths = [OBS_DIM, *config.hidden_sizes]
        return count, config.minibatch_size, [widths + [NUM_ACTIONS], widths + [1]], 0
    config, _ = dqn_cartpole.jrl_config(steps)
    learning = config.num_chunks * config.log_frequency - config.learning_starts
    count = -(-learning // config.train_frequency)
    widths = [OBS_DIM, *config.hidden_sizes, NUM_ACTIONS]
    return count, config.batch_size, [widths, widths], 1


def products_seconds(algo: str, steps: int, repeats: int = 5) -> tuple[float, float]:
    """(seconds for the run's products, microseconds per gradient step): the best of
    ``repeats`` timings of a scan over 2,000 gradient steps' products."""
    import jax
    import jax.numpy as jnp

    count, batch, networks, forward_only = gradient_steps(algo, steps)
    num_trained = len(networks) - forward_only
    length = 2_000

    def step(carry, _):
        weights, lr = carry
        # Every input depends on the trained weights, so no network's products are
        # loop-invariant (the target network's weights are): none is hoisted.
        varying = lr * weights[0][0][0, 0]
        forward_outputs = []
        for layers in weights[num_trained:]:
            x = jnp.full((batch, layers[0].shape[0]), 0.5, jnp.float32) + varying
            for w in layers:
                x = x @ w
            forward_outputs.append(x)
        new_weights = []
        for layers in weights[:num_trained]:
            x = jnp.full((batch, layers[0].shape[0]), 0.5, jnp.float32) + varying
            inputs = []
            for w in layers:
                inputs.append(x)
                x = x @ w
            # The forward-only networks' outputs enter the loss (DQN's target network:
            # the TD error), so their products are live.
            grad_out, grads = sum(forward_outputs, x), []
            for i in reversed(range(len(layers))):
                grads.append(inputs[i].T @ grad_out)
                if i:
                    grad_out = grad_out @ layers[i].T
            new_weights.append([w - lr * g for w, g in zip(layers, reversed(grads), strict=True)])
        return (new_weights + weights[num_trained:], lr), None

    weights = [
        [jnp.full((a, b), 0.01, jnp.float32) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        for widths in networks
    ]
    run = jax.jit(
        lambda w, lr: jax.lax.scan(step, (w, lr), None, length=length)[0][0],
        compiler_options=jrl.host.compiler_options(),
    )
    compiled = run.lower(weights, jnp.float32(0)).compile()
    jax.block_until_ready(compiled(weights, jnp.float32(0)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(weights, jnp.float32(0)))
        best = min(best, time.perf_counter() - start)
    per_step = best / length
    return per_step * count, per_step * 1e6


def run_seconds(algo: str, steps: int) -> dict:
    """{impl: one seed's run seconds} for ours and (with $PUREJAXRL_DIR) PureJaxRL's, as
    ``ppo_cartpole.py`` / ``dqn_cartpole.py`` time them by default: paired, medians of
    up to five alternating calls within 30 s."""
    report = baseline.compare(str(SCRIPTS[algo]), algo, [1], steps, repeats=5, budget_s=30.0)
    row = report["seeds_1"]
    return {impl: row[impl]["run_s"] for impl in ("jrl", "purejaxrl") if impl in row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--child", choices=["products"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        jrl.host.use_cpu_cores(1)
        report = {}
        for algo in SCRIPTS:
            seconds, per_step = products_seconds(algo, args.steps)
            report[algo] = {
                "products_s": round(seconds, 2),
                "products_us_per_step": round(per_step, 1),
            }
        print(json.dumps(report))
        return
    done = subprocess.run(
        [sys.executable, __file__, "--child", "products", "--steps", str(args.steps)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"products failed:\n{done.stderr[-4000:]}")
    products = json.loads(done.stdout.strip().splitlines()[-1])
    report: dict = {"benchmark": "product_floor", "steps_per_seed": args.steps}
    for algo in SCRIPTS:
        row = dict(products[algo])
        runs = run_seconds(algo, args.steps)
        ours = row["jrl_run_s"] = runs["jrl"]
        row["products_fraction"] = round(row["products_s"] / ours, 2)
        if "purejaxrl" in runs:
            theirs = row["purejaxrl_run_s"] = runs["purejaxrl"]
            row["speedup"] = round(theirs / ours, 2)
            row["speedup_bound"] = round(theirs / row["products_s"], 2)
            row["other_s_at_1_5x"] = round(theirs / 1.5 - row["products_s"], 2)
            row["other_s_jrl"] = round(ours - row["products_s"], 2)
        report[algo] = row
    print(json.dumps(report))


if __name__ == "__main__":
    from compile_times import no_persistent_cache  # (this script's directory)

    no_persistent_cache()
    main()
