"""Sweeps: vmapped, sequential and sharded runs agree bit for bit; several one-step
algorithms in one program equal each run alone."""

import json
import os
import subprocess
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.agents.tabular import TabularConfig, TabularHParams, make_train
from jrl.envs import make
from jrl.sweep import check_grid, product_grid, run_sweep, stack_grid, to_dataset

pytestmark = pytest.mark.timeout(300)
METHODS = ("sarsa", "q_learning", "expected_sarsa")
SHARDED_SCRIPT = """
import json, sys, jax
from jrl.agents.tabular import TabularConfig, TabularHParams, make_train
from jrl.envs import make
from jrl.sweep import product_grid, run_sweep, stack_grid, to_dataset
env, params = make("CliffWalking-v0")
train = make_train(TabularConfig(algorithm="sarsa", num_episodes=40), env, params)
grid = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
_, in_sequence = run_sweep(train, jax.random.key(5), grid, 3, sequential=True,
                           devices=jax.devices())
_, vmapped = run_sweep(train, jax.random.key(5), grid, 3, devices=jax.devices())
_, on_second = run_sweep(train, jax.random.key(5), grid, 3, devices=jax.devices()[1:])
# Three runs on two devices, padded to four.
toy = lambda key, hparams: jax.random.uniform(key) + hparams.alpha
one_point = stack_grid([TabularHParams(alpha=0.5)])
uneven_one = run_sweep(toy, jax.random.key(0), one_point, 3, sequential=True)
uneven_two = run_sweep(toy, jax.random.key(0), one_point, 3, devices=jax.devices())
# The same train and shapes, first on the default device, then asked to split.
two_points = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
plain = run_sweep(toy, jax.random.key(0), two_points, 2)
split = run_sweep(toy, jax.random.key(0), two_points, 2, devices=jax.devices())
print(json.dumps({"devices": len(jax.devices()),
                  "plain_on": sorted(d.id for d in plain.devices()),
                  "split_on": sorted(d.id for d in split.devices()),
                  "uneven_on": sorted(d.id for d in uneven_two.devices()),
                  "uneven_one": uneven_one.tolist(), "uneven_two": uneven_two.tolist(),
                  "uneven_held": sum(s.data.size for s in uneven_two.addressable_shards),
                  "one_device": [d.id for d in on_second.episode_returns.devices()],
                  "on_second": on_second.episode_returns.tolist(),
                  "sequential": in_sequence.episode_returns.tolist(),
                  "vmapped": vmapped.episode_returns.tolist()}))
"""


@pytest.fixture(scope="module")
def cliff():
    return make("CliffWalking-v0")


def test_sequential_equals_vmapped(cliff):
    env, params = cliff
    train = make_train(TabularConfig(algorithm="sarsa", num_episodes=40), env, params)
    grid = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
    _, vmapped = run_sweep(train, jax.random.key(5), grid, 3)
    _, sequential = run_sweep(train, jax.random.key(5), grid, 3, sequential=True)
    assert vmapped.episode_returns.shape == sequential.episode_returns.shape == (2, 3, 40)
    for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(sequential), strict=True):
        np.testing.assert_array_equal(a, b)
    # The same with a raw uint32 key (jax.random.PRNGKey): keys[S, 2], not key[S].
    _, raw_vmapped = run_sweep(train, jax.random.PRNGKey(5), grid, 3)
    _, raw_sequential = run_sweep(train, jax.random.PRNGKey(5), grid, 3, sequential=True)
    np.testing.assert_array_equal(raw_sequential.episode_returns, raw_vmapped.episode_returns)
    np.testing.assert_array_equal(raw_vmapped.episode_returns, vmapped.episode_returns)


def test_single_run_is_called_without_vmap_and_matches_the_batched_runs(cliff):
    env, params = cliff
    train = make_train(TabularConfig(algorithm="sarsa", num_episodes=40), env, params)
    hparams = TabularHParams(alpha=0.5)
    key = jax.random.key(5)
    _, single = run_sweep(train, key, stack_grid([hparams]), 1)
    _, batched = run_sweep(train, key, stack_grid([hparams, hparams]), 3)
    _, alone = jax.jit(train)(jax.random.split(key, 1)[0], hparams)
    assert single.episode_returns.shape == (1, 1, 40)
    np.testing.assert_array_equal(single.episode_returns[0, 0], alone.episode_returns)
    np.testing.assert_array_equal(single.episode_returns[0, 0], batched.episode_returns[1, 0])


def test_one_program_of_several_algorithms_equals_each_alone(cliff):
    env, params = cliff
    config = TabularConfig(algorithm=METHODS, num_episodes=30)
    grid = stack_grid([TabularHParams(algorithm=float(i)) for i in range(len(METHODS))])
    _, together = run_sweep(make_train(config, env, params), jax.random.key(2), grid, 2)
    for i, method in enumerate(METHODS):
        alone = make_train(TabularConfig(algorithm=method, num_episodes=30), env, params)
        _, metrics = run_sweep(alone, jax.random.key(2), stack_grid([TabularHParams()]), 2)
        np.testing.assert_array_equal(together.episode_returns[i], metrics.episode_returns[0])
    # The methods really differ: Q-learning's returns are not Sarsa's.
    assert not np.array_equal(together.episode_returns[0], together.episode_returns[1])


@pytest.fixture(scope="module")
def on_two_devices():
    """SHARDED_SCRIPT's results, in a process whose CPU is made into two devices."""
    environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sharded_over_two_cpu_devices_equals_one_device_in_sequence_and_vmapped(
    cliff, on_two_devices
):
    env, params = cliff
    train = make_train(TabularConfig(algorithm="sarsa", num_episodes=40), env, params)
    grid = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
    _, expected = run_sweep(train, jax.random.key(5), grid, 3, sequential=True)
    result = on_two_devices
    assert result["devices"] == 2
    assert result["one_device"] == [1]  # devices=[one device] runs there, not on the first
    np.testing.assert_array_equal(np.array(result["on_second"]), expected.episode_returns)
    np.testing.assert_array_equal(np.array(result["sequential"]), expected.episode_returns)
    np.testing.assert_array_equal(np.array(result["vmapped"]), expected.episode_returns)


def test_invalid_combinations_are_rejected(cliff):
    env, params = cliff
    with pytest.raises(ValueError, match="unknown algorithm 'dyna_q'"):
        TabularConfig(algorithm=("sarsa", "dyna_q"))
    with pytest.raises(ValueError, match="distinct"):
        TabularConfig(algorithm=("sarsa", "sarsa"))
    train = make_train(TabularConfig(num_episodes=5), env, params)
    with pytest.raises(ValueError, match="at least one device"):
        run_sweep(train, jax.random.key(0), stack_grid([TabularHParams()]), 2, devices=[])


def test_a_static_setting_in_a_grid_is_rejected_naming_its_config():
    from jrl.agents.dqn import DQNHParams
    from jrl.agents.ppo import PPOHParams
    from jrl.sweep import product_grid

    with pytest.raises(ValueError, match=r"'num_envs': static, a field of PPOConfig") as error:
        product_grid(PPOHParams(), lr=[1e-3, 3e-4], num_envs=[4, 8])
    assert "sweepable fields: lr, gamma" in str(error.value)
    with pytest.raises(ValueError, match=r"'buffer_size': static, a field of DQNConfig"):
        product_grid(DQNHParams(), buffer_size=[1000, 10_000])
    with pytest.raises(ValueError, match=r"'planning_steps': static, a field of TabularConfig"):
        product_grid(TabularHParams(), planning_steps=[5, 50])
    with pytest.raises(ValueError, match=r"has no field 'learning_rate'; sweepable"):
        product_grid(PPOHParams(), learning_rate=[1e-3])


def test_impossible_hyperparameters_are_rejected_before_compiling(cliff):
    from jrl.agents.dqn import DQNHParams
    from jrl.agents.ppo import PPOHParams

    env, params = cliff
    train = make_train(TabularConfig(num_episodes=5), env, params)
    traced = []

    def spied_train(key, hparams):
        traced.append(hparams)
        return train(key, hparams)

    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"alpha must be in \(0.0, 1.0\], got \[0.5 0. \]"):
        run_sweep(spied_train, key, product_grid(TabularHParams(), alpha=[0.5, 0.0]), 2)
    with pytest.raises(ValueError, match=r"epsilon must be a finite number, got \[0.1 nan\]"):
        run_sweep(spied_train, key, product_grid(TabularHParams(), epsilon=[0.1, np.nan]), 2)
    assert traced == []  # rejected before tracing, so before compiling
    # Every agent's hyperparameter type brings its own check.
    with pytest.raises(ValueError, match="lr must be > 0"):
        check_grid(product_grid(PPOHParams(), lr=[3e-4, -3e-4]))
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\]"):
        check_grid(DQNHParams(tau=0.0))
    with pytest.raises(ValueError, match=r"max_grad_norm must be a finite number, got \[0.5 inf\]"):
        check_grid(product_grid(PPOHParams(), max_grad_norm=[0.5, np.inf]))
    check_grid(product_grid(PPOHParams(), lr=[3e-4, 1e-3], max_grad_norm=[0.5, 1e9]))
    # Under jit the grid is traced: nothing to read, and no error for a valid run.
    _, metrics = jax.jit(lambda grid: run_sweep(spied_train, key, grid, 2, jit=False))(
        stack_grid([TabularHParams()])
    )
    assert metrics.episode_returns.shape == (1, 2, 5) and len(traced) == 1


class Rows(NamedTuple):
    value: jax.Array
    total: jax.Array


def test_to_dataset_refuses_a_runs_state_naming_the_field():
    """A run's state (run_sweep's first output) failed with JAX's "PRNGKey dtype cannot
    be converted to a NumPy array", or for its network parameters said "params:
    expected [G=2, seeds, ...], got ()"; no compiling here."""
    from jrl.agents.ppo import PPOState

    grid = product_grid(TabularHParams(), alpha=[0.1, 0.5])
    runs = np.zeros((2, 3))
    keys = jax.random.split(jax.random.key(0), 6).reshape(2, 3)
    state = PPOState(
        params={"w": runs}, opt_state=(runs,), env_state=runs, obs=runs,
        episode_return=runs, episode_length=runs, update=runs, key=keys,
    )  # fmt: skip
    said = "is {}, not an array of .* to_dataset takes a sweep's metrics, not a run's state"
    with pytest.raises(ValueError, match="results.params " + said.format("a dict")):
        to_dataset(state, grid)
    with pytest.raises(ValueError, match="results.opt_state " + said.format("a tuple")):
        to_dataset(state._replace(params=runs), grid)
    with pytest.raises(ValueError, match="results.key " + said.format("PRNG keys")):
        to_dataset(state._replace(params=runs, opt_state=runs), grid)


def test_results_as_a_dataset_with_named_axes():
    """to_dataset names the grid's product axes, the seeds and the rest: a value picked
    by name is the run that made it."""
    grid = product_grid(TabularHParams(), alpha=[0.1, 0.5], epsilon=[0.0, 0.1, 0.2])

    def train(key, hparams):  # a run's rows: [3 updates], from its seed and hparams
        noise = jax.random.uniform(key)
        value = hparams.alpha * 100 + hparams.epsilon * 10 + noise + jax.numpy.arange(3.0)
        return Rows(value=value, total=value.sum())

    rows = run_sweep(train, jax.random.key(0), grid, num_seeds=4)
    ds = to_dataset(rows, grid, axes=("alpha", "epsilon"), dims=("update",))
    assert ds.value.dims == ("alpha", "epsilon", "seed", "update")
    assert ds.total.dims == ("alpha", "epsilon", "seed")
    assert ds.value.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(ds.epsilon.values, [0.0, 0.1, 0.2])
    noise = np.asarray(rows.value)[0, :, 0] - 10  # every grid point sees the same keys
    picked = ds.value.sel(alpha=0.5, epsilon=0.2, seed=2, update=1)
    assert float(picked) == pytest.approx(50 + 2 + noise[2] + 1, rel=1e-6)
    np.testing.assert_allclose(ds.value.sel(alpha=0.1).sum("update"), ds.total.sel(alpha=0.1))

    flat = to_dataset(rows, grid)  # no axes: one "grid" dimension, hparams along it
    assert flat.value.dims == ("grid", "seed", "value_0")
    np.testing.assert_allclose(flat.alpha.values, [0.1] * 3 + [0.5] * 3)
    # The values config.yaml and summary.json write (0.1), not float32(0.1) widened
    # (0.10000000149): a pandas join or isin on them found no row.
    for dataset in (ds, flat):
        frame = dataset.total.to_dataframe().reset_index()
        assert frame.alpha.isin([0.1]).sum() == 12 and frame.epsilon.isin([0.1]).sum() == 8
        assert json.dumps(sorted(set(frame.alpha.tolist()))) == "[0.1, 0.5]"
    with pytest.raises(ValueError, match="not product_grid"):
        to_dataset(rows, grid, axes=("epsilon", "alpha"))
    with pytest.raises(ValueError, match=r"axes \['lr'\] are not hyperparameters"):
        to_dataset(rows, grid, axes=("lr",))
    with pytest.raises(ValueError, match=r"share a name with the dataset's coordinates"):
        to_dataset({"alpha": rows.value}, grid)
    with pytest.raises(ValueError, match=r"got a tuple \(run_sweep returns \(state, metrics\)"):
        to_dataset((rows, rows), grid)
    with pytest.raises(ValueError, match=r"got one array of shape \(2, 3\): name it"):
        to_dataset(np.zeros((2, 3)), grid)  # was "got a ndarray (run_sweep returns ...)"
    with pytest.raises(ValueError, match=r"dims \['alpha'\] are names of the dataset's"):
        to_dataset(rows, grid, dims=("alpha",))
    with pytest.raises(ValueError, match=r"dims \['u'\] are given more than once"):
        to_dataset({"m": np.zeros((6, 4, 2, 3))}, grid, dims=("u", "u"))
    # ("update") is a string, not a 1-tuple: it named no axis, or ['e'] "more than once".
    for dims in ("update", "episode", [1]):
        with pytest.raises(ValueError, match=r"dims must be a sequence of axis names"):
            to_dataset(rows, grid, dims=dims)
    # A field's name made that field a coordinate and named another field's axis after it.
    with pytest.raises(ValueError, match=r"dims \['total'\] are names of .* the results' fields"):
        to_dataset(rows, grid, dims=("total",))
    with pytest.raises(ValueError, match=r"seed axes \(axis 1\) differ: \{'a': 4, 'b': 3\}"):
        to_dataset({"a": rows.value, "b": rows.value[:, :3]}, grid)


def test_a_dataset_keeps_every_hyperparameter_that_varies_with_its_axes():
    """A grid where gamma moves with alpha (stack_grid), named by alpha alone: gamma is
    a coordinate over alpha, not dropped."""
    grid = stack_grid([TabularHParams(alpha=0.1, gamma=0.9), TabularHParams(alpha=0.5, gamma=0.99)])
    ds = to_dataset({"r": np.zeros((2, 3))}, grid, axes=("alpha",))
    assert ds.gamma.dims == ("alpha",)
    np.testing.assert_allclose(ds.gamma.sel(alpha=0.5), 0.99)
    assert float(ds.epsilon.sel(alpha=0.1)) == pytest.approx(TabularHParams().epsilon)


@pytest.mark.parametrize(
    "grid",
    [
        TabularHParams(*[np.zeros((1, 2), np.float32)] * 10),  # a vector per point
        TabularHParams(*[np.zeros(0, np.float32)] * 10),  # no point
        TabularHParams(),  # scalars: no grid axis
    ],
)
def test_a_grid_whose_leaves_are_not_one_value_per_point_is_refused(grid):
    with pytest.raises(ValueError, match=r"must be shaped \(G,\).*'alpha'"):
        run_sweep(lambda key, hparams: hparams.alpha, jax.random.key(0), grid, 2)


@pytest.mark.parametrize(
    "base, axes, message",
    [
        (TabularHParams(), {"alpha": 0.5}, r"alpha= needs a non-empty list of numbers"),
        (TabularHParams(), {"alpha": "0.5"}, r"alpha= needs a non-empty list"),
        (TabularHParams(), {"alpha": []}, r"alpha= needs a non-empty list"),
        (TabularHParams(), {"alpha": [[0.1, 0.9]]}, r"alpha= needs a non-empty list"),
        (TabularHParams(), {"alpha": [0.1, None]}, r"alpha= needs a non-empty list"),
        (TabularHParams(), {"alpha": [0.1, 0.1]}, r"lists one value twice"),
        # Distinct in float64, one value as the float32 a run holds.
        (TabularHParams(), {"alpha": [0.1, 0.1 + 1e-10]}, r"lists one value twice"),
        (TabularHParams(), {"decay_steps": [2**24 + 1]}, r"an int float32 cannot hold"),
        (TabularHParams(), {"epsilon": [1e-50]}, r"smallest normal.*would be \[0.\]"),
        (TabularHParams(), {"decay_steps": [1e39]}, r"past float32's largest.*would be \[inf\]"),
        (TabularHParams(decay_steps=2**24 + 1), {"alpha": [0.1]}, r"decay_steps=16777217 is an"),
        (TabularHParams(alpha="0.1"), {"epsilon": [0.1]}, r"alpha must be a number"),
        (TabularHParams(gamma=True), {"alpha": [0.1]}, r"gamma must be a number.*a bool"),
        (TabularHParams(), {"gamma": [True, False]}, r"gamma= needs .*numbers \(not bools\)"),
        # Mixed with numbers, np.asarray makes a bool a number (True -> 1.0).
        (TabularHParams(), {"gamma": [True, 0.9]}, r"gamma= needs .*numbers \(not bools\)"),
        (TabularHParams(), {"decay_steps": (2, np.bool_(True))}, r"\(not bools\)"),
        (TabularHParams(alpha=np.array([0.1, 0.2])), {"epsilon": [0.1]}, r"base is one point"),
        (TabularHParams(), {"alhpa": [0.1]}, r"no field 'alhpa' \(did you mean 'alpha'\?\)"),
    ],
)
def test_product_grid_refuses_what_is_not_a_list_of_distinct_float32_values(base, axes, message):
    with pytest.raises(ValueError, match=message):
        product_grid(base, **axes)


def test_values_a_float32_cannot_hold_are_refused_before_compiling():
    """A single point (jrl train's, stack_grid's input) is checked as it was given:
    lr=1e-50 passes 'lr > 0' and would train at lr 0 once the run casts it."""
    from jrl.agents.ppo import PPOHParams

    with pytest.raises(ValueError, match=r"lr=1e-50 is below float32's smallest.*be 0.0"):
        check_grid(PPOHParams(lr=1e-50))
    with pytest.raises(ValueError, match=r"gamma must be a number, got '0.99'"):
        check_grid(PPOHParams(gamma="0.99"))
    with pytest.raises(ValueError, match="at least one point"):
        stack_grid([])
    with pytest.raises(ValueError, match=r"points\[1\].lr=1e-50 is below float32's smallest"):
        stack_grid([PPOHParams(), PPOHParams(lr=1e-50)])
    # gamma=True would run as 1.0, and the string as 0.99: neither is what was meant.
    with pytest.raises(ValueError, match=r"gamma must be a number, got True \(a bool\)"):
        check_grid(PPOHParams(gamma=True))
    with pytest.raises(ValueError, match=r"points\[0\].gamma must be a number, got '0.99'"):
        stack_grid([PPOHParams(gamma="0.99")])
    with pytest.raises(ValueError, match=r"points\[0\].gamma must be a number.*a bool"):
        stack_grid([PPOHParams(gamma=np.bool_(True))])
    check_grid(PPOHParams(lr=1e-30, max_grad_norm=1e30))  # small and large, but float32


@pytest.mark.parametrize("num_seeds", [0, -1, True, 2.0])
def test_run_sweep_refuses_a_bad_seed_count(num_seeds):
    grid = stack_grid([TabularHParams()])
    with pytest.raises(ValueError, match="num_seeds must be a positive int"):
        run_sweep(lambda key, hparams: hparams.alpha, jax.random.key(0), grid, num_seeds)


def test_a_width_in_a_grid_names_the_agents_config():
    from jrl.agents.dqn import DQNHParams
    from jrl.agents.ppo import PPOHParams

    for hparams, config in ((PPOHParams(), "PPOConfig"), (DQNHParams(), "DQNConfig")):
        with pytest.raises(ValueError, match=f"a field of {config}; .* one {config} per value"):
            product_grid(hparams, hidden_sizes=[(64,), (128,)])


def test_sharded_sweep_whose_runs_do_not_divide_by_the_devices(on_two_devices):
    """Three runs on two devices are padded to four: each seed keeps its own result, held
    once (cut inside the compiled call, the three were copied onto both devices)."""
    assert on_two_devices["devices"] == 2
    np.testing.assert_array_equal(on_two_devices["uneven_two"], on_two_devices["uneven_one"])
    assert np.shape(on_two_devices["uneven_two"]) == (1, 3)
    assert on_two_devices["uneven_held"] == 3
    assert on_two_devices["uneven_on"] == [0]  # (documented: on the first device)


def test_a_sweep_asked_to_split_after_one_on_the_default_device_is_split(on_two_devices):
    """The same train and shapes run once plainly, then with devices=jax.devices(): the
    cached one-device program ran again (one core, no error) while devices were left
    out of what keys run_sweep's compiled programs."""
    assert (on_two_devices["plain_on"], on_two_devices["split_on"]) == ([0], [0, 1])


def test_product_grid_keeps_the_bases_values_of_the_fields_not_swept():
    grid = product_grid(TabularHParams(alpha=0.2, q_init=5.0), epsilon=[0.05, 0.1])
    np.testing.assert_allclose(grid.alpha, [0.2, 0.2])
    np.testing.assert_allclose(grid.q_init, [5.0, 5.0])
    np.testing.assert_allclose(grid.epsilon, [0.05, 0.1])


def test_a_single_run_is_called_without_vmap():
    batched = []

    def train(key, hparams):
        batched.append(isinstance(hparams.alpha, jax.core.Tracer))
        return hparams.alpha

    run_sweep(train, jax.random.key(0), stack_grid([TabularHParams()]), 1, jit=False)
    assert batched == [False]
    run_sweep(
        train,
        jax.random.key(0),
        stack_grid([TabularHParams(), TabularHParams(alpha=0.2)]),
        1,
        jit=False,
    )
    assert batched == [False, True]  # two grid points: vmapped


def test_one_run_returns_what_a_batch_of_runs_does_for_python_and_numpy_outputs():
    """One seed and one grid point is a plain call (no vmap); its outputs got their axes
    back by indexing, which a Python float cannot take, and NumPy's float64 kept."""

    def train(key, hparams):
        return {"x": hparams.alpha + jax.random.uniform(key), "rate": 3e-4, "c": np.float64(0.5)}

    grid = stack_grid([TabularHParams(alpha=0.5)])
    for jit in (True, False):
        one, two = (run_sweep(train, jax.random.key(0), grid, n, jit=jit) for n in (1, 2))
        for name in ("x", "rate", "c"):
            assert one[name].shape == (1, 1) and two[name].shape == (1, 2)
            assert one[name].dtype == two[name].dtype == np.float32, (jit, name)
        assert one["rate"][0, 0] == two["rate"][0, 1] == np.float32(3e-4)


def test_recent_keeps_the_most_recently_used_and_refuses_an_unhashable_key_before_making():
    from jrl.recent import Recent

    made = []

    def maker(value):
        return lambda: made.append(value) or value

    recent = Recent(keep=2)
    assert recent.get("a", maker(1)) == 1
    assert recent.get("b", maker(2)) == 2
    assert recent.get("a", maker(3)) == 1  # kept, and now the most recently used
    assert recent.get("c", maker(4)) == 4  # "b", the least recently used, goes
    assert len(recent) == 2
    assert recent.get("a", maker(5)) == 1
    assert recent.get("b", maker(6)) == 6
    assert made == [1, 2, 4, 6]
    with pytest.raises(TypeError):
        recent.get(["a"], maker(7))
    assert made == [1, 2, 4, 6]
    # None is kept nowhere; any other key is, an empty or zero one too.
    assert recent.get(None, maker(8)) == 8 and recent.get(None, maker(9)) == 9
    assert recent.get((), maker(10)) == 10 and recent.get((), maker(11)) == 10
    assert recent.get(0, maker(12)) == 12 and recent.get(0, maker(13)) == 12
    assert made == [1, 2, 4, 6, 8, 9, 10, 12] and len(recent) == 2


def test_a_sweep_of_a_train_that_cannot_be_hashed_runs_and_keeps_nothing(monkeypatch):
    """A callable object with __eq__ and no __hash__ (a dataclass, say) is a train too:
    its program is compiled for the call, not kept."""
    from jrl import sweep
    from jrl.recent import Recent

    monkeypatch.setattr(sweep, "_COMPILED", Recent(keep=8))

    class Shifted:
        __hash__ = None

        def __init__(self, shift):
            self.shift = shift

        def __eq__(self, other):
            return isinstance(other, Shifted) and other.shift == self.shift

        def __call__(self, key, hparams):
            return jax.random.uniform(key) + hparams.alpha + self.shift

    grid = stack_grid([TabularHParams(alpha=0.5)])
    one = run_sweep(Shifted(0.0), jax.random.key(0), grid, 2)
    two = run_sweep(Shifted(1.0), jax.random.key(0), grid, 2)
    np.testing.assert_allclose(np.asarray(two) - np.asarray(one), 1.0, rtol=1e-6)
    assert len(sweep._COMPILED) == 0


def test_a_second_sweep_of_the_same_train_and_shapes_runs_the_program_compiled_once(
    cliff, monkeypatch, compilations
):
    """A notebook looping over seed batches or grid values: run_sweep compiled its
    program again at every call (its function is a new closure each time)."""
    from jrl import sweep
    from jrl.recent import Recent

    monkeypatch.setattr(sweep, "_COMPILED", Recent(keep=8))  # what other tests kept does not count
    env, params = cliff
    train = make_train(TabularConfig(algorithm="sarsa", num_episodes=20), env, params)
    first = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
    _, before = run_sweep(train, jax.random.key(1), first, 2)
    assert compilations
    compilations.clear()
    other = stack_grid([TabularHParams(alpha=0.1), TabularHParams(alpha=0.3)])
    _, again = run_sweep(train, jax.random.key(2), other, 2)
    assert not compilations
    _, alone = run_sweep(train, jax.random.key(2), stack_grid([TabularHParams(alpha=0.3)]), 2)
    assert compilations  # another number of grid points: another program
    # JAX settings a trace reads make another program (small eager ops compile
    # anyway under a new setting: count the programs kept instead).
    assert len(sweep._COMPILED) == 2
    with jax.default_matmul_precision("highest"):
        run_sweep(train, jax.random.key(2), other, 2)
    assert len(sweep._COMPILED) == 3
    # So do the other ways to run the same runs: in sequence, under other compiler options.
    _, in_sequence = run_sweep(train, jax.random.key(2), other, 2, sequential=True)
    assert len(sweep._COMPILED) == 4
    monkeypatch.setattr(sweep, "compiler_options", lambda: {"xla_backend_optimization_level": 2})
    run_sweep(train, jax.random.key(2), other, 2)
    assert len(sweep._COMPILED) == 5
    np.testing.assert_array_equal(in_sequence.episode_returns, again.episode_returns)
    np.testing.assert_array_equal(again.episode_returns[1], alone.episode_returns[0])
    assert not np.array_equal(again.episode_returns, before.episode_returns)


def test_a_seed_draws_the_same_key_whatever_the_number_of_seeds(cliff):
    """Seed i of a sweep is seed i of a larger one: a tabular sweep run again with more
    seeds keeps the runs it had, bit for bit (jax.random.split gives the same first keys
    for any count under jax_threefry_partitionable, JAX's default). The deep agents get
    the same keys; their numbers match to float rounding (README: Same seed, same numbers)."""
    env, params = cliff
    train = make_train(TabularConfig(algorithm="q_learning", num_episodes=30), env, params)
    grid = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
    _, three = run_sweep(train, jax.random.key(4), grid, 3)
    _, five = run_sweep(train, jax.random.key(4), grid, 5)
    np.testing.assert_array_equal(five.episode_returns[:, :3], three.episode_returns)
    assert not np.array_equal(five.episode_returns[:, 3], five.episode_returns[:, 0])


def test_a_product_grid_given_in_descending_order_keeps_its_order():
    """to_dataset reads a product grid's axes in the order product_grid was given them
    (not sorted): each value selects its own results."""
    grid = product_grid(TabularHParams(), alpha=[0.5, 0.1])
    ds = to_dataset({"r": np.arange(4.0).reshape(2, 2)}, grid, axes=("alpha",))
    assert ds.r.sel(alpha=0.5).values.tolist() == [0.0, 1.0]
    assert ds.r.sel(alpha=0.1).values.tolist() == [2.0, 3.0]


def test_an_extra_axis_named_grid_is_refused_without_product_axes():
    """dims=("grid",) with no axes= named a result's extra axis as the dataset's own
    grid axis: a dataset with 'grid' twice, of which xarray only warns."""
    grid = stack_grid([TabularHParams(alpha=0.5), TabularHParams(alpha=0.2)])
    with pytest.raises(ValueError, match=r"dims \['grid'\] are names of the dataset's"):
        to_dataset({"m": np.zeros((2, 3, 2))}, grid, dims=("grid",))


def test_stack_grid_names_the_first_point_of_another_type():
    from jrl.agents.dqn import DQNHParams
    from jrl.agents.ppo import PPOHParams

    with pytest.raises(
        TypeError, match=r"PPOHParams \(points\[0\]\) and DQNHParams \(points\[2\]\)"
    ):
        stack_grid([PPOHParams(), PPOHParams(), DQNHParams()])


def test_run_sweep_under_jit_with_only_some_hyperparameters_traced():
    """A grid of concrete values with one field traced (jit over alpha alone): the
    checks leave the grid alone (they raised TracerArrayConversionError on it)."""
    grid = stack_grid([TabularHParams(alpha=0.5)])
    toy = lambda key, hparams: jax.random.uniform(key) + hparams.alpha  # noqa: E731

    @jax.jit
    def with_alpha(alpha):
        return run_sweep(toy, jax.random.key(0), grid._replace(alpha=alpha), 2, jit=False)

    assert with_alpha(jnp.array([0.25], jnp.float32)).shape == (1, 2)


def test_an_unsigned_int_that_float32_cannot_hold_is_refused():
    """uint values are ints too: 2**24 + 1 would have run as 2**24."""
    with pytest.raises(ValueError, match="an int float32 cannot hold"):
        product_grid(TabularHParams(), decay_steps=np.array([2**24 + 1], np.uint32))


@pytest.mark.parametrize(
    "points, said",
    [
        (TabularHParams(), "takes a list of points, got TabularHParams: stack_grid.\\[point\\]."),
        ({"alpha": 0.5}, "takes a list of points, got dict"),
        ([{"alpha": 0.5}], "stacks hyperparameter NamedTuples .*got dict"),
    ],
)
def test_stack_grid_refuses_what_is_not_a_list_of_hparams(points, said):
    """stack_grid(point) stacked the point's fields into one array of 10 (no error)."""
    with pytest.raises(TypeError, match=f"stack_grid {said}"):
        stack_grid(points)


@pytest.mark.parametrize("base", [TabularHParams, {"alpha": 0.5}], ids=["class", "dict"])
def test_product_grid_takes_a_point_as_its_base(base):
    """The class itself: "_asdict() missing self"; a dict: AttributeError '_fields'."""
    with pytest.raises(TypeError, match="product_grid's base is one hyperparameter point"):
        product_grid(base, alpha=[0.1, 0.5])


def test_to_dataset_refuses_dims_that_name_no_fields_axes():
    """dims of another length than any field's extra axes were dropped silently (the
    axes named m_0, m_1 instead)."""
    grid = stack_grid([TabularHParams(alpha=0.5)])
    with pytest.raises(ValueError, match=r"dims names 1 extra axes, but no field has 1 .*\(4, 5\)"):
        to_dataset({"m": np.zeros((1, 2, 4, 5))}, grid, dims=("update",))
    assert to_dataset({"m": np.zeros((1, 2, 4))}, grid, dims=("update",)).m.dims[-1] == "update"
