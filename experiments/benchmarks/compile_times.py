"""Compile times that are compiles: every benchmark's ``__main__`` calls
:func:`no_persistent_cache` before it times anything.

JAX's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``, which clusters and
jrl's test suite set) would make a second run's ``compile_s`` a read of the program an
earlier run compiled.
"""

from __future__ import annotations


def no_persistent_cache() -> None:
    """Turn the cache off in this process and the processes it starts. JAX decides at
    its first compile whether the cache is used (an import of gymnax or jrl compiles
    already), so the decision is made again."""
    import os

    import jax
    from jax._src import compilation_cache

    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
