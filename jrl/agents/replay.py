"""A uniform experience-replay buffer as a fixed-size pytree ring (Lin 1992; Mnih et al. 2015).

The buffer is a :class:`ReplayBuffer` NamedTuple: ``data`` is a pytree shaped like one
transition with a leading axis of ``capacity`` on every leaf, plus where the next write
goes (``position``) and how many slots hold data (``size``). Three pure functions work
on it, so it lives inside ``jit``/``lax.scan`` and batches under ``vmap`` (one buffer
per seed):

- :func:`buffer_init` ``(example, capacity)``: zeros shaped ``[capacity, *leaf.shape]``;
- :func:`buffer_add` ``(buffer, batch)``: writes B transitions (leading axis B) at slots
  ``(position + i) mod capacity``, i = 0..B-1, overwriting the oldest once full (FIFO);
- :func:`buffer_sample` ``(key, buffer, batch_size)``: ``batch_size`` transitions drawn
  uniformly, with replacement, from the ``size`` filled slots;
- :func:`buffer_gather` ``(buffer, slots)``: the transitions in given slots (for
  callers that draw the slots themselves, several samples' worth at once).

Shapes and the capacity are static; position and size are int32 scalars (traced).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class ReplayBuffer(NamedTuple):
    """Ring-buffer state.

    data: pytree, each leaf ``[capacity, ...]``. position: int32, the slot the next
    transition is written to. size: int32, the number of filled slots (<= capacity);
    slots ``0 .. size-1`` are filled (writes start at slot 0 and go round).
    """

    data: Any
    position: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def buffer_init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer for transitions shaped like ``example`` (one transition, no
    batch axis): every leaf becomes zeros ``[capacity, *leaf.shape]`` of its dtype."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    data = jax.tree.map(
        lambda leaf: jnp.zeros((capacity, *jnp.shape(leaf)), jnp.asarray(leaf).dtype), example
    )
    return ReplayBuffer(data=data, position=jnp.int32(0), size=jnp.int32(0))


def buffer_add(buffer: ReplayBuffer, batch: Any) -> ReplayBuffer:
    """Write a batch of B transitions (leaves ``[B, ...]``, B <= capacity) into the ring.

    Transition i goes to slot ``(position + i) mod capacity``; then
    ``position <- (position + B) mod capacity`` and ``size <- min(size + B, capacity)``.
    The batch must have the buffer's structure, each leaf its stored shape after the
    batch axis, and a dtype that casts to the stored one without losing its kind (no
    float into an int or bool slot, no complex into a real one): ValueError naming the
    leaf otherwise (a wrong shape was broadcast into the slots; a float reward truncated
    by an int slot).
    """
    capacity = buffer.capacity
    if jax.tree.structure(batch) != jax.tree.structure(buffer.data):
        raise ValueError(
            f"a batch needs the buffer's structure {jax.tree.structure(buffer.data)}, "
            f"got {jax.tree.structure(batch)}"
        )
    stores = jax.tree_util.tree_leaves_with_path(buffer.data)
    for (path, store), new in zip(stores, jax.tree.leaves(batch), strict=True):
        name = jax.tree_util.keystr(path) or "the batch"
        if jnp.ndim(new) < 1 or jnp.shape(new)[1:] != store.shape[1:]:
            raise ValueError(
                f"{name}: a batch of transitions shaped {store.shape[1:]} needs shape "
                f"[B, *{store.shape[1:]}], got {jnp.shape(new)}"
            )
        stored, given = store.dtype, jnp.result_type(new)
        cuts_fraction = jnp.issubdtype(given, jnp.inexact) and not jnp.issubdtype(
            stored, jnp.inexact
        )
        cuts_imaginary = jnp.issubdtype(given, jnp.complexfloating) and not jnp.issubdtype(
            stored, jnp.complexfloating
        )
        if cuts_fraction or cuts_imaginary or (stored == jnp.bool_ and given != jnp.bool_):
            raise ValueError(
                f"{name}: the buffer holds {stored}, and {given} values would be cut to it "
                "(make the example passed to buffer_init of the values' dtype, e.g. 0.0 "
                "for a float reward)"
            )
    sizes = {jnp.shape(leaf)[0] for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1:
        raise ValueError(f"every leaf of a batch needs one leading size, got {sizes}")
    num = sizes.pop()
    if num > capacity:
        raise ValueError(f"batch of {num} transitions exceeds the buffer capacity {capacity}")
    slots = (buffer.position + jnp.arange(num, dtype=jnp.int32)) % capacity
    data = jax.tree.map(
        lambda store, new: store.at[slots].set(new.astype(store.dtype), unique_indices=True),
        buffer.data,
        batch,
    )
    return ReplayBuffer(
        data=data,
        position=(buffer.position + num) % capacity,
        size=jnp.minimum(buffer.size + num, capacity),
    )


def buffer_sample(key: jax.Array, buffer: ReplayBuffer, batch_size: int) -> Any:
    """``batch_size`` transitions (leaves ``[batch_size, ...]``) drawn uniformly with
    replacement from the filled slots ``0 .. size-1``. Needs ``size >= 1`` (with an
    empty buffer every draw is slot 0, which holds zeros)."""
    slots = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return buffer_gather(buffer, slots)


def buffer_gather(buffer: ReplayBuffer, slots: jax.Array) -> Any:
    """The transitions in ``slots`` (int[...], each in ``0 .. capacity-1``): leaves
    ``[*slots.shape, ...]``."""
    return jax.tree.map(lambda store: store[slots], buffer.data)
