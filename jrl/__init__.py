"""jrl: JAX reinforcement learning in the functional style.

Agents and environments are pure functions over pytrees with explicit PRNG keys, so a
whole training run is one ``jax.jit``-compiled function that ``jax.vmap`` turns into a
sweep over seeds and hyperparameters. Subpackages are imported explicitly, e.g.
``import jrl.envs``; importing ``jrl`` alone does not pull in JAX.
"""

__version__ = "0.1.0"
