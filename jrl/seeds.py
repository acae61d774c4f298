"""Seeds: which ints make distinct JAX keys. Imports no JAX, so the command line can
check a --seed before it starts JAX."""

from __future__ import annotations

from typing import Any

MAX_SEED = 2**32  # jax.random.key keeps a seed's low 32 bits


def check_seed(name: str, value: Any) -> None:
    """ValueError unless ``value`` is an int in [0, 2**32): ``jax.random.key`` keeps a
    seed's low 32 bits, so 2**32 + 3 would give seed 3's keys (and 2**63 overflows)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_SEED:
        raise ValueError(
            f"{name} must be an int in [0, 2**32), got {value!r} (jax.random.key keeps a "
            "seed's low 32 bits: a larger one would repeat a smaller seed's keys)"
        )
