"""Seeds x a grid of sweepable hyperparameters in one compiled call.

A grid is a pytree of hyperparameters (e.g. a ``TabularHParams``) whose leaves
all have one leading axis G: the grid points. ``run_sweep`` vmaps ``train(key,
hparams)`` over seeds inside and over grid points outside, so results come back
shaped (G, num_seeds, ...), and every grid point sees the same seed keys (common
random numbers: differences between grid points are not seed noise). ``to_dataset``
gives those results named axes (the product grid's hyperparameters, ``seed``, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jrl.agents.checks import check_bool
from jrl.agents.evaluation import key_batch_shape
from jrl.host import compiler_options, release_unused_memory
from jrl.progress import call_stoppable, check_progress
from jrl.recent import Recent


def product_grid(base: Any, **axes: Sequence[float]) -> Any:
    """Cartesian product of the given values on top of ``base`` (a NamedTuple).

    ``product_grid(TabularHParams(), alpha=[0.1, 0.5], epsilon=[0.0, 0.1])`` gives
    4 grid points, the last named axis varying fastest. Unknown names, values that are
    not a non-empty list of numbers, and a value listed twice (as float32, the type
    the runs hold) raise ValueError.
    """
    if not _is_namedtuple(base):
        named = getattr(base, "__name__", type(base).__name__)
        raise TypeError(
            f"product_grid's base is one hyperparameter point, got {named}: "
            "product_grid(TabularHParams(), alpha=[...]) (an instance, with its defaults)"
        )
    fields = base._fields
    unknown = sorted(set(axes) - set(fields))
    if unknown:
        close = [m for name in unknown for m in difflib.get_close_matches(name, fields, n=1)]
        raise ValueError(
            f"{type(base).__name__} has no field {', '.join(map(repr, unknown))}"
            f"{_static_hint(base, unknown)}"
            f"{f' (did you mean {close[0]!r}?)' if len(close) == len(unknown) == 1 else ''}"
            f"; sweepable fields: {', '.join(fields)}"
        )
    shaped = {field: np.shape(value) for field, value in base._asdict().items() if np.ndim(value)}
    if shaped:
        raise ValueError(
            f"product_grid's base is one point (a value per field), got shapes {shaped}: "
            "give the values to sweep as keyword lists"
        )
    for field, value in base._asdict().items():
        check_number(field, value)
    names = list(axes)
    for name in names:
        axes[name] = _axis_values(name, axes[name])
    points = list(itertools.product(*(axes[name] for name in names)))
    columns = {
        name: np.array([point[i] for point in points], np.float32) for i, name in enumerate(names)
    }
    return type(base)(
        **{
            field: columns.get(field, np.full(len(points), getattr(base, field), np.float32))
            for field in fields
        }
    )


def _axis_values(name: str, values: Any) -> np.ndarray:
    """``values`` of one product_grid axis as float32[n], or a ValueError saying what
    an axis needs."""
    array = None if isinstance(values, str | bytes) else np.asarray(values)
    # A bool among numbers is a number to np.asarray ([True, 0.9] -> [1.0, 0.9]).
    has_bool = isinstance(values, list | tuple) and any(
        np.asarray(value).dtype.kind == "b" for value in values
    )
    if (
        array is None
        or array.ndim != 1
        or array.size == 0
        or array.dtype.kind not in "iuf"
        or has_bool
    ):
        raise ValueError(
            f"{name}= needs a non-empty list of numbers (not bools) to sweep, got "
            f"{values!r} (one value: {name}=[value])"
        )
    check_float32(name, array)
    as_float32 = array.astype(np.float32)
    if len(np.unique(as_float32)) != len(as_float32):
        raise ValueError(
            f"{name}={array.tolist()} lists one value twice (as float32, what a run holds: "
            f"{as_float32}); each grid point must be distinct"
        )
    return as_float32


def check_number(name: str, values: Any) -> None:
    """Reject a hyperparameter that is not a number (a string, None, a bool: every
    sweepable field is a rate, coefficient or count, and ``gamma=True`` would run as 1.0),
    then what :func:`check_float32` rejects."""
    kind = np.asarray(values).dtype.kind
    if kind not in "iuf":
        got = "a bool" if kind == "b" else "not a number"
        raise ValueError(f"{name} must be a number, got {values!r} ({got})")
    check_float32(name, values)


def check_float32(name: str, values: Any) -> None:
    """Reject values a run's float32 would change beyond rounding: a finite number past
    its largest (3.4e38, it would become inf), a nonzero one below its smallest normal
    number (1.2e-38: lr=1e-50 would train at 0, 1e-40 with a few bits left) and an int
    it cannot hold (2**24 + 1)."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        return
    with np.errstate(over="ignore"):
        as_float32 = array.astype(np.float32)
    limits = np.finfo(np.float32)
    if array.dtype.kind in "iu":
        changed, why = as_float32.astype(np.float64) != array, "an int float32 cannot hold"
    elif np.any(np.isfinite(array) & ~np.isfinite(as_float32)):
        changed, why = np.isfinite(array), f"past float32's largest number ({limits.max:.3g})"
    else:
        changed = (array != 0) & np.isfinite(array) & (np.abs(array) < limits.tiny)
        why = f"below float32's smallest normal number ({limits.tiny:.3g})"
    if np.any(changed):
        raise ValueError(
            f"{name}={array} is {why}; runs hold hyperparameters as float32, where it "
            f"would be {as_float32}"
        )


def _static_hint(hparams: Any, names: Sequence[str]) -> str:
    """Where ``names`` are fields of a static config dataclass beside ``hparams``'s type
    (``PPOConfig`` beside ``PPOHParams``), say so: they decide shapes or loop lengths,
    so they cannot vary inside one compiled sweep."""
    module = sys.modules.get(type(hparams).__module__)
    paired = type(hparams).__name__.removesuffix("HParams") + "Config"  # PPOHParams: PPOConfig
    for config in vars(module).values() if module else ():
        if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
            continue
        if config.__name__ != paired and hasattr(module, paired):
            continue
        static = [name for name in names if name in {f.name for f in dataclasses.fields(config)}]
        if static:
            listed = ", ".join(map(repr, static))
            return (
                f" ({listed}: static, a field of {config.__name__}; static settings decide "
                "shapes or loop lengths, so they cannot vary inside one compiled sweep: "
                f"build one {config.__name__} per value and sweep each)"
            )
    return ""


def check_grid(grid: Any, check: Callable[[Any], None] | None = None) -> None:
    """Reject impossible hyperparameters on the host, before anything compiles.

    A value that is not a finite number (a bool is not one here) is an error, and so
    is one that float32 (what the runs hold) would zero or alter
    (:func:`check_float32`), and whatever the ``check_hparams`` function of the module
    that defines the grid's type rejects (``jrl.agents.ppo.check_hparams`` for a
    ``PPOHParams`` grid: a negative learning rate, gamma above 1, ...), and whatever
    ``check(grid)`` rejects (``run_sweep`` passes a train function's own
    ``check_hparams`` attribute, which knows its config: the tabular agents' checks
    that an algorithm index names one of ``config.algorithm``). Works on one point or a
    whole grid; a grid of traced values (``run_sweep`` called under ``jit``) cannot be
    read and is left alone.
    """
    leaves = _leaves_with_path(grid)
    if any(isinstance(leaf, jax.core.Tracer) for _, leaf in leaves):
        return
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path, simple=True, separator=".") or "a hyperparameter"
        check_number(name, leaf)
        with np.errstate(over="ignore"):
            finite = np.all(np.isfinite(np.asarray(leaf, np.float32)))
        if not finite:
            raise ValueError(
                f"{name} must be a finite number, got {np.asarray(leaf)} (to turn a clip "
                "or threshold off, give it a large finite value)"
            )
    module = sys.modules.get(type(grid).__module__)
    for check_values in (getattr(module, "check_hparams", None), check):
        if callable(check_values):
            check_values(grid)


def _leaves_with_path(tree: Any) -> list:
    """(path, leaf) of every leaf of ``tree``, a None among them: ``jax.tree`` takes None
    for an empty subtree, so a field set to None would vanish from every check and
    fail later, inside the run (``jnp.asarray(None)``) or its checks."""
    return jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda leaf: leaf is None)[0]


def stack_grid(points: Sequence[Any]) -> Any:
    """Stack a list of hyperparameter NamedTuples, all of one type, into one grid
    (float32; points of two types are a TypeError, and a value that is not a number —
    None included — or that float32 would zero or alter is refused first,
    :func:`check_number`)."""
    if _is_namedtuple(points) or not isinstance(points, Sequence) or isinstance(points, str):
        raise TypeError(
            f"stack_grid takes a list of points, got {type(points).__name__}: "
            "stack_grid([point]) for one point (product_grid(base, name=[...]) for a product)"
        )
    if not points:
        raise ValueError("stack_grid needs at least one point")
    types = list(dict.fromkeys(type(point) for point in points))
    if not all(map(_is_namedtuple, points)):
        raise TypeError(
            "stack_grid stacks hyperparameter NamedTuples (PPOHParams(...), ...), got "
            f"{', '.join(sorted({t.__name__ for t in types}))}"
        )
    if len(types) > 1:
        first = next(i for i, point in enumerate(points) if type(point) is not types[0])
        raise TypeError(
            f"stack_grid stacks points of one hyperparameter type, got {types[0].__name__} "
            f"(points[0]) and {types[1].__name__} (points[{first}]): one grid runs one agent"
        )
    for i, point in enumerate(points):
        for path, value in _leaves_with_path(point):
            if not isinstance(value, jax.core.Tracer):
                check_number(f"points[{i}]{jax.tree_util.keystr(path)}", value)
    return jax.tree.map(lambda *leaves: np.asarray(leaves, np.float32), *points)


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def grid_size(grid: Any) -> int:
    """G, the number of grid points: every hyperparameter must be shaped (G,)."""
    leaves = jax.tree_util.tree_leaves_with_path(grid)
    shapes = {jax.tree_util.keystr(path).lstrip("."): np.shape(leaf) for path, leaf in leaves}
    sizes = {shape[0] for shape in shapes.values() if len(shape) == 1}
    if len(sizes) != 1 or any(len(shape) != 1 for shape in shapes.values()) or 0 in sizes:
        raise ValueError(
            "every hyperparameter of a grid must be shaped (G,) with one G >= 1 (one value "
            f"per grid point), got shapes {shapes}: build grids with product_grid or "
            "stack_grid"
        )
    return sizes.pop()


def _trace_context() -> Any:
    """JAX's configuration that a trace reads (x64, matmul precision, ...; what
    ``jax.jit``'s own cache keys on), or a new object (no reuse) where this JAX has none."""
    try:
        from jax._src import config
    except ImportError:  # pragma: no cover - a JAX without it
        return object()
    return config.trace_context() if hasattr(config, "trace_context") else object()


# run_sweep's compiled programs, by what decides them (its own fn is a new closure per
# call, which jax.jit's cache would never find): a notebook looping over seed batches or
# grids of the same shape compiles once.
_COMPILED: Recent = Recent(keep=8)


def run_sweep(
    train: Callable,
    key: jax.Array,
    grid: Any,
    num_seeds: int,
    jit: bool = True,
    sequential: bool = False,
    devices: Sequence[jax.Device] | None = None,
    progress: Any = None,
):
    """Run ``train`` for every grid point and seed: outputs shaped (G, num_seeds, ...).

    ``sequential=True`` runs the G * num_seeds runs one after another (``lax.map``)
    instead of in lockstep (``vmap``): the same runs, and for the tabular agents the
    same numbers bit for bit; for PPO and DQN, XLA:CPU fuses the two programs
    differently, so the last bits differ and chaotic tasks (CartPole) then diverge into
    other episodes (README, "Same seed, same numbers"). The same holds for ``devices``
    and for the number of seeds and grid points. On CPU that is much
    faster for scalar loops such as the tabular agents: indexing stays plain dynamic
    slices instead of batched gathers and scatters, no run idles until the slowest
    one ends, and (with a large enough ``xla_cpu_small_while_loop_byte_threshold``)
    XLA:CPU compiles the whole loop as one kernel. With ``devices`` the runs are
    split over those devices (``shard_map``), each running its share vmapped (in
    sequence with ``sequential=True``) — on a CPU host made into N devices
    (``jrl.host.use_cpu_cores(N)`` at the top of the script) that uses N cores; one
    device runs them all there (with ``jit=False``, where the caller's ``jit`` puts them).
    The outputs stay split over the devices where these divide the runs; otherwise the
    runs are padded with copies of the last, and the outputs come back on the first.
    The grid's values are checked first (:func:`check_grid`): a ValueError, not a run.
    A second call with the same ``train`` (the same object), grid and seed shapes,
    devices and JAX configuration (x64, matmul precision) runs the program the first
    compiled (the last 8 are kept): what ``train`` reads when traced (a config it closes
    over, changed in place since) is not looked at again — make a new ``train``.
    ``progress``: the ``jrl.progress.Progress`` that ``train`` reports to (built with
    ``jrl.progress.train_with_progress``); the compiled run then goes through
    ``jrl.progress.call_stoppable``, so its clock starts after compiling and a Ctrl-C
    ends it within 1% of its updates; not with ``sequential=True`` (a ValueError).
    ``key`` is one PRNG key, ``jit`` and ``sequential`` are bools and ``devices`` holds
    ``jax.Device`` objects (``jax.devices()``), or a ValueError says so.
    """
    _check_key(key)
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int | np.integer) or num_seeds < 1:
        raise ValueError(f"num_seeds must be a positive int, got {num_seeds!r}")
    check_bool("jit", jit)
    check_bool("sequential", sequential)
    if devices is not None:
        devices = _checked_devices(devices)
    if progress is not None:
        check_progress(progress)
    if progress is not None and not jit:
        raise ValueError(
            "progress= needs jit=True (run_sweep then runs the compiled call); with "
            "jit=False, pass your own compiled call to jrl.progress.call_stoppable"
        )
    if progress is not None and sequential:
        raise ValueError(
            "progress= counts the updates of runs that go together; with sequential=True "
            "the runs go one after another, each from update 0, so it would show 100% "
            "after the first: drop one of the two"
        )
    size = grid_size(grid)
    check_grid(grid, getattr(train, "check_hparams", None))
    keys = jax.random.split(key, num_seeds)
    if devices is not None and not len(devices):
        raise ValueError("devices= needs at least one device (or None)")
    finish = None
    if sequential or (devices is not None and len(devices) > 1):
        num_runs = size * num_seeds
        padded = num_runs if devices is None else -(-num_runs // len(devices)) * len(devices)

        def as_grid(x):
            return x.reshape(size, num_seeds, *x.shape[1:])

        def over_all(keys, grid):
            flat_keys = jnp.concatenate([keys] * size)  # grid-major; every point, the same keys
            flat_grid = jax.tree.map(lambda leaf: jnp.repeat(leaf, num_seeds, axis=0), grid)
            out = _map_runs(train, (flat_keys, flat_grid), devices, sequential)
            return jax.tree.map(as_grid, out) if padded == num_runs else out

        if padded != num_runs:
            # Runs the devices do not divide cannot stay split over them, and cut inside
            # the compiled call they were copied onto every device (N copies of every
            # result, a replay buffer's included): the padded copies are cut on the first.
            def finish(out):
                return jax.tree.map(
                    lambda x: as_grid(jax.device_put(x, devices[0])[:num_runs]), out
                )

        fn = over_all
    else:
        fn = vmap_or_call(vmap_or_call(train, (0, None), num_seeds), (None, 0), size)
    grid = jax.tree.map(jnp.asarray, grid)
    finish = finish or (lambda out: out)
    if not jit:
        return finish(fn(keys, grid))
    if devices is not None and len(devices) == 1:  # the compiled call runs where its inputs are
        keys, grid = jax.device_put((keys, grid), devices[0])
    options = compiler_options()
    signature = (
        _trace_context(),
        train, size, num_seeds, sequential, None if devices is None else tuple(devices),
        tuple(sorted(options.items())), jax.tree.structure((keys, grid)),
        tuple((jax.typeof(x), x.sharding) for x in jax.tree.leaves((keys, grid))),
    )  # fmt: skip

    def compile_sweep():
        compiled = jax.jit(fn, compiler_options=options).lower(keys, grid).compile()
        release_unused_memory()  # the compiler's freed memory, before the run allocates
        return compiled

    try:
        hash(signature)
    except TypeError:  # a train object that cannot be hashed: compiled for this call only
        signature = None
    compiled = _COMPILED.get(signature, compile_sweep)
    if progress is not None:
        return finish(call_stoppable(progress, compiled, keys, grid))
    return finish(compiled(keys, grid))


def _check_key(key: Any) -> None:
    """ValueError unless ``key`` is one PRNG key (typed, shape (); or raw uint32 words,
    shape (2,)): jax.random's own errors for an int seed or a batch of keys advise
    ``jax.vmap``, which is not what run_sweep needs."""
    if key_batch_shape(key) == ():
        return
    got = f"shape {key.shape} and dtype {key.dtype}" if hasattr(key, "dtype") else repr(key)
    raise ValueError(
        "key must be one PRNG key (jax.random.key(seed)); run_sweep splits it into "
        f"num_seeds keys itself, got {got}"
    )


def _checked_devices(devices: Any) -> list:
    """``devices`` as a list of distinct ``jax.Device``, or a ValueError: an entry that is
    not one (a platform name "cpu", an index 0) failed inside ``jax.device_put``, one
    given twice only after compiling."""
    if isinstance(devices, jax.Device | str) or not hasattr(devices, "__iter__"):
        raise ValueError(f"devices= takes a list of jax.Device (jax.devices()), got {devices!r}")
    devices = list(devices)
    for i, device in enumerate(devices):
        if not isinstance(device, jax.Device):
            raise ValueError(
                f"devices[{i}] must be a jax.Device (an entry of jax.devices()), got {device!r}"
            )
        if device in devices[:i]:
            raise ValueError(
                f"devices[{i}] is {device}, which devices[{devices.index(device)}] is too: "
                "give each device once"
            )
    return devices


def vmap_or_call(fn: Callable, in_axes: tuple, size: int) -> Callable:
    """``jax.vmap(fn, in_axes)``, or for an axis of size 1 a plain call whose outputs get
    the axis back: a single run does not pay for batching (under ``vmap`` a
    ``lax.cond`` runs both branches and gathers become batched gathers)."""
    if size != 1:
        return jax.vmap(fn, in_axes=in_axes)

    def call(*args):
        args = [
            arg if axis is None else jax.tree.map(lambda x: x[0], arg)
            for arg, axis in zip(args, in_axes, strict=True)
        ]
        return jax.tree.map(lambda x: jnp.asarray(x)[None], fn(*args))

    return call


def _map_runs(train: Callable, runs: Any, devices: Sequence[jax.Device] | None, sequential: bool):
    """``train`` over the leading axis of ``runs`` = (keys, hparams), in sequence or
    vmapped on each device; runs are padded with copies of the last to divide evenly
    over the devices, and the outputs keep those copies at their end."""

    def run_share(runs):
        if sequential:
            return jax.lax.map(lambda args: train(*args), runs)
        return jax.vmap(train)(*runs)

    if devices is None or len(devices) == 1:
        return run_share(runs)
    num_runs = jax.tree.leaves(runs)[0].shape[0]
    padded = -(-num_runs // len(devices)) * len(devices)
    runs = jax.tree.map(
        lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - num_runs, axis=0)]), runs
    )
    mesh = Mesh(np.asarray(devices), ("runs",))
    sharded = jax.shard_map(
        run_share, mesh=mesh, in_specs=P("runs"), out_specs=P("runs"), check_vma=False
    )
    return sharded(runs)


def to_dataset(results: Any, grid: Any, axes: Sequence[str] = (), dims: Sequence[str] = ()):
    """A sweep's results with named axes: an ``xarray.Dataset`` of the fields of
    ``results`` (a NamedTuple whose leaves are [G, S, ...], as ``run_sweep`` returns
    metrics; or a dict of such arrays), so that ``ds.episode_return.sel(lr=1e-3).mean(
    "seed")`` reads as what it is.

    Dimensions, in order:

    - the grid: with ``axes`` — the names given to :func:`product_grid`, in its order —
      one dimension per name, its coordinates the values swept (G unstacked; a grid
      that is not that product is refused), every other hyperparameter a coordinate
      over those dimensions; without, one dimension ``"grid"``, with every
      hyperparameter of ``grid`` as a coordinate along it;
    - ``"seed"`` (0 .. S-1);
    - the rest: ``dims`` names them for every field with that many more axes (e.g.
      ``("update",)`` for PPO's metrics), otherwise ``"<field>_<k>"``.
    """
    import xarray as xr

    if not (hasattr(results, "_asdict") or isinstance(results, dict)):
        if hasattr(results, "shape") and hasattr(results, "dtype"):
            got = f"one array of shape {tuple(results.shape)}: name it, as {{'return': array}}"
        else:
            got = (
                f"a {type(results).__name__} (run_sweep returns (state, metrics): pass the metrics)"
            )
        raise ValueError(
            f"results must be a NamedTuple or a dict of [G, seeds, ...] arrays, got {got}"
        )
    if isinstance(dims, str) or not all(isinstance(name, str) for name in dims):
        raise ValueError(
            f"dims must be a sequence of axis names, got {dims!r} (one axis: dims=('update',))"
        )
    fields = {name: _metric_array(name, value) for name, value in _fields_of(results).items()}
    size = grid_size(grid)
    columns = {name: np.asarray(v) for name, v in _fields_of(grid).items()}
    unknown = [name for name in axes if name not in columns]
    if unknown:
        raise ValueError(f"axes {unknown} are not hyperparameters of the grid: {list(columns)}")
    clash = sorted(set(fields) & {*columns, "seed", "grid"})
    if clash:
        raise ValueError(
            f"results field(s) {clash} share a name with the dataset's coordinates (the "
            "grid's hyperparameters, 'seed', 'grid'): rename them"
        )
    shape, coords = _product_axes(columns, axes, size)
    grid_dims = list(axes) or ["grid"]
    coords |= {
        name: (grid_dims, as_written(values).reshape(shape))
        for name, values in columns.items()
        if name not in axes
    }
    variables = {}
    for name, value in fields.items():
        if value.ndim < 2 or value.shape[0] != size:
            raise ValueError(
                f"{name}: expected [G={size}, seeds, ...] as run_sweep returns, got {value.shape}"
            )
        rest = value.shape[2:]
        names = list(dims) if len(dims) == len(rest) else [f"{name}_{k}" for k in range(len(rest))]
        variables[name] = ([*grid_dims, "seed", *names], value.reshape(*shape, *value.shape[1:]))
    extra = {name: value.shape[2:] for name, value in fields.items()}
    if dims and not any(len(rest) == len(dims) for rest in extra.values()):
        raise ValueError(
            f"dims names {len(dims)} extra axes, but no field has {len(dims)} past "
            f"[G, seeds]: {extra}"
        )
    repeated = sorted({name for name in dims if list(dims).count(name) > 1})
    if repeated:
        raise ValueError(f"dims {repeated} are given more than once: each axis needs its name")
    taken = sorted(set(dims) & {*columns, *fields, "seed", "grid"})
    if taken:
        raise ValueError(
            f"dims {taken} are names of the dataset's grid dimensions, coordinates or "
            "fields (its hyperparameters, 'seed', 'grid', the results' fields): name the "
            "extra axes otherwise"
        )
    seeds = {name: value.shape[1] for name, value in fields.items()}
    if len(set(seeds.values())) > 1:
        raise ValueError(
            f"the fields' seed axes (axis 1) differ: {seeds}; give one sweep's results"
        )
    num_seeds = next(iter(seeds.values()), 0)
    return xr.Dataset(variables, coords={**coords, "seed": np.arange(num_seeds)})


def as_written(values: np.ndarray) -> np.ndarray:
    """Hyperparameter values as the float64 of the shortest digits of their float32 (what
    a run holds): float32(0.1) as 0.1, not 0.10000000149, so that they join and compare
    with the values written as one writes them (config.yaml keeps the digits given:
    0.30000001 there is 0.3 here, the same float32); other dtypes as they are."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        return values
    shortest = [float(str(np.float32(v))) for v in values.ravel()]
    return np.array(shortest, np.float64).reshape(values.shape)


def _metric_array(name: str, value: Any) -> np.ndarray:
    """``value`` (field ``name`` of a sweep's results) as a NumPy array; a ValueError for
    what a run's state holds instead of metrics: a nest of arrays (network parameters,
    an optimiser's state, an environment's state) or PRNG keys."""
    keys = hasattr(value, "dtype") and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)
    nested = isinstance(value, dict | tuple) or dataclasses.is_dataclass(value)
    array = None if keys or nested else np.asarray(value)
    if array is None or array.dtype == object:
        what = "PRNG keys" if keys else f"a {type(value).__name__}"
        raise ValueError(
            f"results.{name} is {what}, not an array of [G, seeds, ...] values: to_dataset "
            "takes a sweep's metrics, not a run's state (run_sweep returns (state, "
            "metrics): pass the metrics)"
        )
    return array


def _fields_of(tree: Any) -> dict:
    """{name: leaf} of a NamedTuple or a dict."""
    return tree._asdict() if hasattr(tree, "_asdict") else dict(tree)


def _product_axes(columns: dict, axes: Sequence[str], size: int) -> tuple[tuple, dict]:
    """(grid shape, coordinates) of a grid that is ``product_grid(..., *axes)``: the
    last axis varying fastest; ValueError otherwise."""
    if not axes:
        return (size,), {}
    values = {name: list(dict.fromkeys(columns[name].tolist())) for name in axes}
    shape = tuple(len(values[name]) for name in axes)
    mesh = np.meshgrid(*(np.asarray(values[name]) for name in axes), indexing="ij")
    if int(np.prod(shape)) != size or any(
        not np.array_equal(columns[name], m.reshape(-1)) for name, m in zip(axes, mesh, strict=True)
    ):
        raise ValueError(
            f"the grid is not product_grid(..., {', '.join(f'{n}=...' for n in axes)}) in "
            f"this order (last varying fastest): name its axes as product_grid was given them"
        )
    return shape, {name: as_written(np.asarray(values[name])) for name in axes}
