"""The networks as their docstrings give them ("37 implementation details"
initialisation: orthogonal torsos of gain sqrt(2), heads of 0.01 and 1.0, zero biases;
layers in hidden_sizes' order; the CNN's activations), the greedy mode, the categorical's
log-probabilities and entropy per row, and the Boltzmann sampler's CDF inversion."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jrl.agents.distributions import categorical
from jrl.agents.dqn import QNetwork
from jrl.agents.exploration import boltzmann_from_uniforms
from jrl.agents.networks import ActorCritic, CNNTorso, GaussianActorCritic, MLPTorso, init_params


def _gram(w):  # over the shorter side: the one whose vectors can be orthogonal
    w = np.asarray(w)
    return w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w


def _assert_orthogonal(kernel, gain):
    gram = _gram(kernel)
    np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-5 + 1e-4 * gain**2)


@pytest.mark.parametrize("network, obs_shape", [("mlp", (4,)), ("cnn", (5, 5, 3))])
def test_kernel_init_orthogonal_or_lecun_normal(network, obs_shape):
    """Orthogonal weights have orthogonal rows or columns (scaled by the gain, sqrt 2 in
    the torso); LeCun-normal ones are draws of variance 1 / fan_in, not orthogonal."""

    def first_kernel(kernel_init):
        net = QNetwork(2, network, (256,), "relu", kernel_init)
        params = net.init(jax.random.key(0), jnp.zeros(obs_shape))["params"]["torso"]
        return np.asarray(params["Conv_0" if network == "cnn" else "Dense_0"]["kernel"])

    orthogonal, lecun = first_kernel("orthogonal"), first_kernel("lecun_normal")
    eye = np.eye(min(orthogonal.shape))
    np.testing.assert_allclose(_gram(orthogonal), 2.0 * eye, atol=1e-4)
    assert np.abs(_gram(lecun) * (1 - eye)).max() > 0.1
    assert lecun.std() == pytest.approx(1 / np.sqrt(lecun.shape[0]), rel=0.15)


@pytest.mark.parametrize(
    "network",
    [ActorCritic(3, hidden_sizes=(64, 32)), GaussianActorCritic(3, hidden_sizes=(64, 32))],
)
def test_actor_critic_init_is_the_documented_one(network):
    """Separate actor and critic torsos of hidden_sizes in order, orthogonal with gain
    sqrt(2); heads gain 0.01 (policy) and 1.0 (value); every bias zero."""
    params = init_params(network, jax.random.key(0), jnp.zeros(5))["params"]
    for torso in ("actor_torso", "critic_torso"):
        layers = params[torso]
        assert [layers[f"Dense_{i}"]["kernel"].shape for i in range(2)] == [(5, 64), (64, 32)]
        for layer in layers.values():
            _assert_orthogonal(layer["kernel"], np.sqrt(2.0))
    assert params["actor_head"]["kernel"].shape == (32, 3)
    _assert_orthogonal(params["actor_head"]["kernel"], 0.01)
    assert params["critic_head"]["kernel"].shape == (32, 1)
    _assert_orthogonal(params["critic_head"]["kernel"], 1.0)
    biases = [
        leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if path[-1].key == "bias"
    ]
    assert len(biases) == 6 and all(np.all(np.asarray(b) == 0) for b in biases)
    # The critic reads its own torso: changing the actor's leaves the value as it was.
    obs = jax.random.normal(jax.random.key(1), (4, 5))
    moved = jax.tree.map(lambda x: x, params)
    moved["actor_torso"] = jax.tree.map(lambda x: x + 1.0, params["actor_torso"])
    _, value = network.apply({"params": params}, obs)
    _, value_moved = network.apply({"params": moved}, obs)
    np.testing.assert_array_equal(value, value_moved)


def test_gaussian_log_std_starts_at_log_std_init():
    network = GaussianActorCritic(2, log_std_init=-0.5)
    params = init_params(network, jax.random.key(0), jnp.zeros(3))
    np.testing.assert_array_equal(params["params"]["log_std"], [-0.5, -0.5])
    (_, log_std), _ = network.apply(params, jnp.ones((4, 3)))
    np.testing.assert_array_equal(log_std, np.full((4, 2), -0.5))


def test_q_network_layers_follow_hidden_sizes_in_order():
    params = init_params(QNetwork(2), jax.random.key(0), jnp.zeros(4))["params"]  # (120, 84)
    assert params["torso"]["Dense_0"]["kernel"].shape == (4, 120)
    assert params["torso"]["Dense_1"]["kernel"].shape == (120, 84)
    assert params["head"]["kernel"].shape == (84, 2)


def test_cnn_torso_is_two_relu_convolutions_then_a_relu_dense():
    """CNNTorso == relu(Conv 3x3 SAME) x 2, flatten, relu(Dense), with the same weights
    as flax's nn.Conv / nn.Dense (kernel [9 C, ch] reshaped to [3, 3, C, ch])."""
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    torso = CNNTorso((32,))
    params = torso.init(jax.random.key(1), x)["params"]
    # Non-zero biases, so a dropped bias or activation shows too.
    params = jax.tree.map(
        lambda leaf: leaf + 0.1 * jax.random.normal(jax.random.key(2), leaf.shape), params
    )
    h, channels = x, 3
    for i in range(2):
        layer = params[f"Conv_{i}"]
        out = layer["kernel"].shape[-1]
        conv = nn.Conv(out, (3, 3), padding="SAME")
        kernel = layer["kernel"].reshape(3, 3, channels, out)
        h = nn.relu(conv.apply({"params": {"kernel": kernel, "bias": layer["bias"]}}, h))
        channels = out
    h = h.reshape(2, -1)
    dense = params["Dense_0"]
    expected = nn.relu(h @ dense["kernel"] + dense["bias"])
    np.testing.assert_allclose(torso.apply({"params": params}, x), expected, atol=1e-5)


def test_categorical_mode_is_the_most_likely_action():
    mode = categorical().mode(jnp.array([[0.0, 2.0, 1.0], [3.0, -1.0, 0.5]]))
    np.testing.assert_array_equal(mode, [1, 0])


def test_mlp_torso_is_dense_then_activation_per_width():
    x = jax.random.normal(jax.random.key(0), (3, 5))
    for activation, fn in (("tanh", jnp.tanh), ("relu", nn.relu)):
        torso = MLPTorso((8, 4), activation)
        params = torso.init(jax.random.key(1), x)["params"]
        params = jax.tree.map(
            lambda leaf: leaf + 0.3 * jax.random.normal(jax.random.key(2), leaf.shape), params
        )
        h = x
        for i in range(2):
            h = fn(h @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"])
        np.testing.assert_allclose(torso.apply({"params": params}, x), h, atol=1e-5)


def test_cnn_dense_layer_has_hidden_sizes_last_width():
    x = jnp.zeros((4, 4, 2))
    params = CNNTorso((32, 8)).init(jax.random.key(0), x)["params"]
    assert params["Dense_0"]["kernel"].shape == (4 * 4 * 16, 8)


@pytest.mark.parametrize("network", [ActorCritic(3), GaussianActorCritic(3)])
def test_policy_head_is_linear(network):
    """logits / mean = torso features @ W + b, no squashing (big weights show a tanh)."""
    obs = jax.random.normal(jax.random.key(0), (4, 5))
    params = network.init(jax.random.key(1), obs[0])["params"]
    params["actor_head"] = {
        "kernel": params["actor_head"]["kernel"] * 1000.0,
        "bias": params["actor_head"]["bias"] + 2.0,
    }
    out, _ = network.apply({"params": params}, obs)
    out = out[0] if isinstance(network, GaussianActorCritic) else out
    feats = MLPTorso((64, 64), "tanh").apply({"params": params["actor_torso"]}, obs)
    want = feats @ params["actor_head"]["kernel"] + params["actor_head"]["bias"]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


def test_every_cnn_layer_is_orthogonal_with_the_torsos_gain():
    """Both convolutions and the dense layer after the flatten: orthogonal, gain sqrt(2)
    (not only the first convolution)."""
    params = CNNTorso((32,)).init(jax.random.key(0), jnp.zeros((4, 4, 3)))["params"]
    assert sorted(params) == ["Conv_0", "Conv_1", "Dense_0"]
    for layer in params.values():
        _assert_orthogonal(layer["kernel"], np.sqrt(2.0))


def test_lecun_normal_reaches_every_mlp_layer():
    """kernel_init="lecun_normal" draws every torso layer (not just the first) with
    variance 1 / fan_in, not orthogonal."""
    params = QNetwork(2, "mlp", (128, 256), "relu", "lecun_normal").init(
        jax.random.key(0), jnp.zeros(64)
    )["params"]["torso"]
    for name, fan_in in (("Dense_0", 64), ("Dense_1", 128)):
        kernel = np.asarray(params[name]["kernel"])
        eye = np.eye(min(kernel.shape))
        assert np.abs(_gram(kernel) * (1 - eye)).max() > 0.1, name
        assert kernel.std() == pytest.approx(1 / np.sqrt(fan_in), rel=0.15), name


def test_mlp_flattens_every_observation_axis_with_obs_ndim():
    """obs_ndim=2: a [B, 10, 5] batch is read as [B, 50] features, one output row per
    observation, the first layer a dense layer over all 50."""
    x = jax.random.normal(jax.random.key(0), (3, 10, 5))
    torso = MLPTorso((8,), "tanh", obs_ndim=2)
    params = torso.init(jax.random.key(1), x[0])["params"]
    assert params["Dense_0"]["kernel"].shape == (50, 8)
    want = jnp.tanh(x.reshape(3, 50) @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
    np.testing.assert_allclose(torso.apply({"params": params}, x), want, atol=1e-5)


def test_categorical_log_prob_and_entropy_normalise_each_row():
    """On a batch of logits [B, A]: log pi(a) = logits_a - log sum_b exp(logits_b) per
    row, and H = -sum_a pi(a) log pi(a) (log A for uniform logits), one per row."""
    logits = np.array([[0.0, 1.0, 2.0], [3.0, 3.0, 3.0], [-1.0, 0.5, 4.0]])
    actions = np.array([2, 0, 1])
    dist = categorical()
    log_z = np.log(np.exp(logits).sum(axis=-1))
    want_log_prob = logits[np.arange(3), actions] - log_z
    np.testing.assert_allclose(dist.log_prob(jnp.array(logits), actions), want_log_prob, rtol=1e-5)
    probs = np.exp(logits - log_z[:, None])
    want_entropy = -(probs * np.log(probs)).sum(axis=-1)
    entropy = dist.entropy(jnp.array(logits))
    np.testing.assert_allclose(entropy, want_entropy, rtol=1e-5)
    assert float(entropy[1]) == pytest.approx(np.log(3.0), rel=1e-5)


def test_boltzmann_draws_the_last_action_at_the_top_of_the_cdf():
    """Inverting the CDF: uniform Q values over 4 actions with u in [0.75, 1) give the
    last action, u in [0.5, 0.75) the third."""
    q_values = jnp.zeros(4)
    for u, want in ((0.99, 3), (0.8, 3), (0.6, 2), (0.1, 0)):
        action = boltzmann_from_uniforms(jnp.array([u, 0.0]), q_values, 1.0)
        assert int(action) == want, u
