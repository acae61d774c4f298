"""Actor-critic networks (flax linen) and an initialisation that is safe under ``vmap``.

Two torsos, chosen by name (``TORSOS``):

- ``"mlp"``: dense layers of static widths over vector observations ``float[..., D]``
  (PureJaxRL's PPO network: 2 x 64, tanh); observations of higher rank (bsuite's
  Catch, [10, 5]; a one-hot grid) are flattened first (``obs_ndim``).
- ``"cnn"``: a small convolutional torso for jrl's gridworld observations
  ``float[..., H, W, C]`` (``jrl.envs.make("CatRoom-v0", observation="grid")``): two
  3x3 convolutions (16 channels each, SAME padding, stride 1 — the grids are small)
  then one dense layer of ``hidden_sizes[-1]`` units (convolutions as im2col + dense:
  see :class:`CNNTorso`).

:class:`ActorCritic` has *separate* actor and critic torsos (no shared features, as
PureJaxRL), orthogonally initialised (Saxe et al. 2014) with gain sqrt(2) in the
torsos, 0.01 on the policy head and 1.0 on the value head, biases zero (the
"37 implementation details of PPO", Huang et al. 2022). :class:`GaussianActorCritic`
is its twin for continuous actions: the actor head gives the mean of a diagonal
Gaussian, and the log standard deviation is a state-independent parameter vector
(PureJaxRL's ``ppo_continuous_action.py``, CleanRL's ``ppo_continuous_action.py``).

The deadlock (shared/REFERENCE.md): with jaxlib 0.10-0.11 on the CPU, a *batched* QR
— which is what ``vmap`` makes of flax's ``orthogonal()`` initializer when
initialising over seeds — can hang the process silently. Every orthogonal
initializer here is :func:`orthogonal`, which on the CPU runs the QR through
``jax.custom_batching.sequential_vmap``: under ``vmap`` (nested too) it becomes a
loop of unbatched QRs, so no code path of ours issues a batched one there. On other
platforms (``jax.lax.platform_dependent``, resolved when lowering, so the CPU
compiler never sees the other branch) the QR stays batched: on a GPU the loop of
2048 seeds' unbatched QRs took ~1.5 s of a PPO run's ~26 s (2026-12-04, H200). The
values are those of ``flax.linen.initializers.orthogonal`` for the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jrl.agents.checks import check_choice

TORSOS = ("mlp", "cnn")
KERNEL_INITS = ("orthogonal", "lecun_normal")
"""Weight initialisations of the dense layers: ``"orthogonal"`` (Saxe et al. 2014,
with the layer's gain: :func:`orthogonal`) or ``"lecun_normal"`` (flax's default for
``nn.Dense``: truncated normal of variance 1 / fan_in, LeCun et al. 1998; the gain
is not applied)."""
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"tanh": nn.tanh, "relu": nn.relu}


def observation_shape(torso: str, env, env_params) -> tuple[int, ...]:
    """The shape of ``env``'s observations, or a ValueError when the ``torso`` (one of
    :data:`TORSOS`) cannot read them: the MLP reads arrays of any rank >= 1 (flattened:
    bsuite's Catch observes [10, 5]), the CNN grids [H, W, C]."""
    space = env.observation_space(env_params)
    if not hasattr(space, "shape"):  # gymnax's Dict and Tuple spaces
        raise ValueError(
            f"network={torso!r} needs one array per observation; {env.name} observes "
            f"{space}: flatten it into one array in a wrapper of "
            "the environment (its observation_space a Box)"
        )
    obs_shape = tuple(space.shape or ())
    wanted = {"mlp": 1, "cnn": 3}[torso]
    if len(obs_shape) != wanted and not (torso == "mlp" and obs_shape):
        kind = "array observations [D, ...]" if wanted == 1 else "grid observations [H, W, C]"
        from jrl.envs.grid import GridWorld

        hint = (
            " (jrl grids: make(..., observation='grid') with network='cnn'; on the command "
            "line --env-overrides observation grid --config.network cnn)"
            if not obs_shape and isinstance(env, GridWorld)
            else " (the tabular agents learn from a scalar index)"
            if not obs_shape
            else " (network='mlp' takes it, flattened)"
            if torso == "cnn"
            else ""
        )
        raise ValueError(
            f"network={torso!r} needs {kind}; {env.name} observes shape "
            f"{obs_shape or 'a scalar index'}{hint}"
        )
    return obs_shape


CNN_CHANNELS = (16, 16)


def orthogonal(scale: float = 1.0) -> Callable:
    """flax's orthogonal initializer, its QR made sequential under ``vmap`` on the CPU.

    Same signature and values as ``nn.initializers.orthogonal(scale)``; batching it
    (over seeds, grid points, devices) gives, on the CPU, a ``lax.map`` of unbatched
    QRs instead of one batched QR, which avoids the jaxlib 0.10-0.11 CPU deadlock;
    elsewhere one batched QR, as flax's.
    """
    base = nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        shape = tuple(shape)

        def draw(key):
            return base(key, shape, dtype)

        return jax.lax.platform_dependent(
            key, cpu=jax.custom_batching.sequential_vmap(draw), default=draw
        )

    return init


def dense(
    features: int, scale: float, name: str | None = None, kernel_init: str = "orthogonal"
) -> nn.Dense:
    """A dense layer, biases zero, weights from :data:`KERNEL_INITS` (``scale``: the
    orthogonal gain)."""
    check_choice("kernel_init", kernel_init, KERNEL_INITS)
    weights = orthogonal(scale) if kernel_init == "orthogonal" else nn.initializers.lecun_normal()
    return nn.Dense(features, kernel_init=weights, bias_init=nn.initializers.zeros, name=name)


class MLPTorso(nn.Module):
    """float[..., D] -> float[..., hidden_sizes[-1]]: dense + activation per width.
    With ``obs_ndim`` k > 1, inputs are [..., D_1, ..., D_k], flattened to D_1 ... D_k
    features first."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    kernel_init: str = "orthogonal"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_choice("activation", self.activation, ACTIVATIONS)
        act = ACTIVATIONS[self.activation]
        if self.obs_ndim > 1:
            x = x.reshape(*x.shape[: x.ndim - self.obs_ndim], -1)
        for width in self.hidden_sizes:
            x = act(dense(width, np.sqrt(2.0), kernel_init=self.kernel_init)(x))
        return x


def patches_3x3(x: jax.Array) -> jax.Array:
    """float[..., H, W, C] -> float[..., H, W, 9 C]: each cell's 3x3 neighbourhood
    (zero-padded, row-major over the offsets, channels last), i.e. im2col for a 3x3
    SAME convolution of stride 1."""
    height, width = x.shape[-3], x.shape[-2]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)])
    shifts = [padded[..., i : i + height, j : j + width, :] for i in range(3) for j in range(3)]
    return jnp.concatenate(shifts, axis=-1)


class CNNTorso(nn.Module):
    """float[..., H, W, C] -> float[..., hidden_sizes[-1]]: a 3x3 SAME convolution per
    entry of CNN_CHANNELS (stride 1, activation after each), flatten, dense.

    Each convolution is written as :func:`patches_3x3` then a dense layer over the
    9 C patch features — the same function as ``nn.Conv(channels, (3, 3),
    padding="SAME")`` with the kernel reshaped to [9 C, channels]. Why: on this CPU
    XLA's convolution gradient inside ``lax.scan`` (where PPO's minibatch loop runs)
    was about 12x slower than this form (90 ms against 7.6 ms for a 128-sample
    gradient with 16 and 32 channels on a 7x11x6 grid): with nn.Conv PPO ran at 180
    env steps/s here. Two 16-channel layers keep it at about 2k steps/s.
    """

    hidden_sizes: Sequence[int] = (64,)
    activation: str = "relu"
    kernel_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_choice("activation", self.activation, ACTIVATIONS)
        act = ACTIVATIONS[self.activation]
        gain, init = np.sqrt(2.0), self.kernel_init
        for i, channels in enumerate(CNN_CHANNELS):
            x = act(dense(channels, gain, f"Conv_{i}", init)(patches_3x3(x)))
        x = x.reshape(*x.shape[:-3], -1)
        return act(dense(self.hidden_sizes[-1], gain, "Dense_0", init)(x))


def torso_module(
    torso: str,
    hidden_sizes: Sequence[int],
    activation: str,
    obs_ndim: int = 1,
    name: str | None = None,
    kernel_init: str = "orthogonal",
) -> nn.Module:
    """The torso named ``torso`` (:data:`TORSOS`); ``obs_ndim``: the MLP's input rank."""
    check_choice("torso", torso, TORSOS)
    if torso == "mlp":
        return MLPTorso(tuple(hidden_sizes), activation, kernel_init, obs_ndim, name=name)
    return CNNTorso(tuple(hidden_sizes), activation, kernel_init, name=name)


class ActorCritic(nn.Module):
    """Observations [..., *obs_shape] -> (logits float[..., num_actions], value float[...]).

    The actor and the critic each have their own torso of kind ``torso``.
    """

    num_actions: int
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    obs_ndim: int = 1

    def _torso(self, name: str) -> nn.Module:
        return torso_module(self.torso, self.hidden_sizes, self.activation, self.obs_ndim, name)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        obs = obs.astype(jnp.float32)
        logits = dense(self.num_actions, 0.01, "actor_head")(self._torso("actor_torso")(obs))
        value = dense(1, 1.0, "critic_head")(self._torso("critic_torso")(obs))
        return logits, value[..., 0]


class GaussianActorCritic(nn.Module):
    """Observations [..., *obs_shape] -> ((mean float[..., action_dim], log_std
    float[..., action_dim]), value float[...]).

    pi(a | s) = N(a; mean(s), diag(exp(log_std))^2): ``mean`` from the actor torso and
    a linear head (orthogonal, gain 0.01), ``log_std`` one learned vector (initialised
    to ``log_std_init``), the same in every state and broadcast to ``mean``'s shape.
    The critic is :class:`ActorCritic`'s.
    """

    action_dim: int
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    obs_ndim: int = 1

    def _torso(self, name: str) -> nn.Module:
        return torso_module(self.torso, self.hidden_sizes, self.activation, self.obs_ndim, name)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        obs = obs.astype(jnp.float32)
        mean = dense(self.action_dim, 0.01, "actor_head")(self._torso("actor_torso")(obs))
        log_std = self.param(
            "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
        )
        value = dense(1, 1.0, "critic_head")(self._torso("critic_torso")(obs))
        return (mean, jnp.broadcast_to(log_std, mean.shape)), value[..., 0]


def init_params(network: nn.Module, key: jax.Array, example_obs: jax.Array):
    """``network.init(key, example_obs)`` — safe to ``vmap`` over keys.

    Every orthogonal initializer of this module batches as a loop on the CPU (see
    :func:`orthogonal`), so ``jax.vmap(lambda k: init_params(net, k, obs))(keys)`` makes
    no batched QR there. ``example_obs`` is one observation (no batch axis needed).
    """
    return network.init(key, example_obs)
