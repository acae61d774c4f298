"""Deep Q-Networks (Mnih et al. 2015) and Double DQN (van Hasselt et al. 2016), as pure
functions (PureJaxRL style).

``make_train(config, env, env_params)`` returns ``train(key, hparams) -> (DQNState,
DQNMetrics)``: a whole run — epsilon-greedy acting in ``config.num_envs`` copies of a
gymnax-API environment, a uniform replay ring (:mod:`jrl.agents.replay`), Huber-loss
gradient steps and target-network updates — as one function to ``jit`` and to ``vmap``
over seeds and the sweepable hyperparameters (:class:`DQNHParams`, traced values;
``jrl.sweep.run_sweep`` does both). :class:`DQNConfig` holds the static settings.

The loop, in environment steps (transitions; one vector step of the N envs is N of
them). One *iteration* is ``I = max(train_frequency, num_envs)`` steps: ``I / N`` vector
steps, each adding its N transitions to the buffer, then ``I / train_frequency``
gradient steps once at least ``learning_starts`` steps have been taken. Each gradient
step samples B = ``batch_size`` transitions (s, a, r, s', terminated) uniformly and
takes one step of Adam, its gradient clipped to global norm ``max_grad_norm``, on

    L(theta) = mean_B huber( Q_theta(s, a) - y ),   y = :func:`dqn_target` (held fixed)

    huber(x) = x^2 / 2 if |x| <= delta else delta (|x| - delta / 2),  delta = huber_delta.

Every ``target_update_frequency`` steps the target network moves to the online one:
theta^- <- theta (``target_update="hard"``) or theta^- <- tau theta + (1 - tau) theta^-
(``"polyak"``). The exploration rate is epsilon_t = epsilon_start + (epsilon_end -
epsilon_start) min(1, t / (epsilon_decay_fraction * steps_run)) at step t (steps_run:
``total_timesteps`` rounded down to whole chunks, the steps the run takes), and
actions are epsilon-greedy with ties broken at random (:mod:`jrl.agents.exploration`).

Episode boundaries: the stored s' is ``info["final_observation"]`` (the observation
before gymnax's auto-reset), and only ``terminated`` zeroes the bootstrap, so a
truncated episode bootstraps from Q_target(final_observation) and a terminated one
from zero.

Metrics are reduced inside the loop: one row per chunk of ``log_frequency`` steps (no
array of length total_timesteps is ever built). With ``eval_every = k > 0`` every k-th
chunk, and the last, ends with ``eval_episodes`` greedy episodes (argmax Q) on fixed evaluation keys
(``jrl.agents.evaluation``): their mean return is the row's ``eval_return``.
:func:`make_dqn` also gives the one-chunk ``update`` (and ``update_at``, with the
evaluation) so a host loop can run, log and checkpoint chunk by chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jrl.agents.checks import (
    Ignored,
    check_bools,
    check_choice,
    check_config_type,
    check_env_outputs,
    check_hparams_type,
    check_positive_int,
    env_params_or_default,
    float32_hparams,
    python_scalars,
    reject_ignored,
)
from jrl.agents.evaluation import (
    check_eval_every,
    check_eval_fields,
    check_eval_steps,
    check_step_count,
    make_evaluate,
    run_episode,
    scan_run,
    with_periodic_evaluation,
)
from jrl.agents.exploration import epsilon_greedy_from_uniforms, linear_schedule
from jrl.agents.networks import (
    ACTIVATIONS,
    KERNEL_INITS,
    TORSOS,
    dense,
    init_params,
    observation_shape,
    torso_module,
)
from jrl.agents.replay import ReplayBuffer, buffer_add, buffer_gather, buffer_init

TARGET_UPDATES = ("hard", "polyak")


class DQNHParams(NamedTuple):
    """Sweepable hyperparameters: traced scalars, so ``vmap`` runs a grid of them.

    Defaults are PureJaxRL's CartPole DQN's except ``epsilon_decay_fraction`` (0.25;
    PureJaxRL and CleanRL 0.5), ``max_grad_norm`` and ``huber_delta`` (below), and
    ``DQNConfig``'s ``learning_starts`` (1000; they take 10000); the CartPole
    experiment and benchmark set PureJaxRL's values. lr: Adam step size. gamma: discount.
    tau: Polyak step of the target update (with ``target_update="polyak"``; a
    ``"hard"`` update copies the weights, and a tau other than 1 is rejected).
    epsilon_start, epsilon_end: the exploration rate's linear schedule, reached after
    ``epsilon_decay_fraction * steps_run`` steps (the run's steps, ``DQNConfig``'s
    ``steps_run``). max_grad_norm: global
    gradient-norm clip (10, Stable-Baselines3's DQN default; PureJaxRL does not clip).
    huber_delta: where the loss turns from squared to linear (:func:`huber_loss`; a
    delta beyond every TD error is the squared error, with exact gradients). Mnih et
    al.'s error clipping is delta 1, made for rewards clipped to [-1, 1]; on CartPole
    (+1 a step, Q up to 100) delta 1 diverged here with the other defaults (mean Q
    about 2e5 after 1e5 steps, return 10: a robust loss discounts the few terminal
    targets that bound Q), while delta 10 and the squared error (PureJaxRL's choice)
    learn. Default 10.
    """

    lr: Any = 2.5e-4
    gamma: Any = 0.99
    tau: Any = 1.0
    epsilon_start: Any = 1.0
    epsilon_end: Any = 0.05
    epsilon_decay_fraction: Any = 0.25
    max_grad_norm: Any = 10.0
    huber_delta: Any = 10.0


@dataclass(frozen=True)
class DQNConfig:
    """Static settings (they decide shapes, loop lengths and which code is traced).

    All frequencies count environment steps (transitions, summed over the envs).
    num_envs: environments stepped together. total_timesteps: the run's length; it runs
    ``num_chunks = total_timesteps // log_frequency`` chunks (a remainder is not run).
    buffer_size: replay capacity (transitions). batch_size: transitions per gradient
    step. learning_starts: steps taken before the first gradient step (below
    batch_size, the first batches repeat transitions: sampling is with replacement from
    what is stored; PureJaxRL waits for a full batch). train_frequency:
    steps per gradient step (a multiple or a divisor of num_envs).
    target_update_frequency: steps between target updates; target_update: ``"hard"``
    (copy) or ``"polyak"`` (step tau). double_dqn: pick the bootstrap action with the
    online network (van Hasselt et al. 2016). clip_gradients: clip the gradient's
    global norm to ``hparams.max_grad_norm``; False traces no clipping (PureJaxRL's DQN
    does not clip; the norm and rescale cost ~10% of a CartPole iteration on a CPU).
    log_frequency: steps per metrics row; a chunk's random numbers are drawn at once,
    so it also changes which random numbers a run draws (not their distribution), as
    tabular's ``steps_per_iteration`` does: compare runs logged alike.
    network: ``"mlp"`` for vector observations (others flattened), ``"cnn"`` for grid observations
    [H, W, C] (its dense layer has ``hidden_sizes[-1]`` units); hidden_sizes,
    activation: the torso's (PureJaxRL's Q-network is 120, 84, ReLU). kernel_init: the
    weights' initialisation, one of ``KERNEL_INITS``: ``"orthogonal"`` (PPO's) or
    ``"lecun_normal"`` (flax's default, which PureJaxRL's ``dqn.py`` uses). Neither
    learns faster everywhere (CartPole-v1, 2026-12-04): in PureJaxRL's configuration
    (learning from 10k steps, squared error, no clipping), 8 seeds x 2.5e5 steps, LeCun's
    reached a final return of 440 against 258. In these defaults, 8 seeds each
    (orthogonal against LeCun, final return): CartPole-v1 355 against 113 at 1e5 steps
    and 475 against 70 at 3e5 (five LeCun seeds fell to 9.6, one action); Acrobot-v1
    -104 against -96 at 1e5; the cat rooms (``experiments/cat_room_deep.py``'s Double
    DQN) 9.7 against 9.8 static, 8.9 against 7.1 moving; MinAtar Breakout (CNN, 4 seeds
    x 2e5 steps) 7.4 against 7.7 — hence the default.
    eval_every: evaluate after every ``eval_every``-th chunk (metrics row; 0: never)
    and after the last:
    the mean return of ``eval_episodes`` greedy episodes, each cut at ``eval_max_steps``
    steps (0: the environment's time limit), on keys split from
    ``jax.random.key(eval_seed)``, the same for every seed and every evaluation.
    """

    num_envs: int = 10
    total_timesteps: int = 500_000
    buffer_size: int = 10_000
    batch_size: int = 128
    learning_starts: int = 1_000
    train_frequency: int = 10
    target_update_frequency: int = 500
    target_update: str = "hard"
    double_dqn: bool = False
    clip_gradients: bool = True
    log_frequency: int = 10_000
    network: str = "mlp"
    hidden_sizes: tuple[int, ...] = (120, 84)
    activation: str = "relu"
    kernel_init: str = "orthogonal"
    eval_every: int = 0
    eval_episodes: int = 10
    eval_max_steps: int = 0
    eval_seed: int = 12345

    def __post_init__(self):
        python_scalars(self)
        for name in (
            "num_envs",
            "total_timesteps",
            "buffer_size",
            "batch_size",
            "train_frequency",
            "target_update_frequency",
            "log_frequency",
        ):
            check_positive_int(name, getattr(self, name))
        check_eval_fields(self)
        starts = self.learning_starts
        if not isinstance(starts, int) or isinstance(starts, bool) or starts < 0:
            raise ValueError(f"learning_starts must be a non-negative int, got {starts!r}")
        check_choice("target_update", self.target_update, TARGET_UPDATES)
        check_bools(self, ("double_dqn", "clip_gradients"))
        check_choice("network", self.network, TORSOS)
        check_choice("kernel_init", self.kernel_init, KERNEL_INITS)
        check_choice("activation", self.activation, ACTIVATIONS)
        sizes = self.hidden_sizes
        if (
            not isinstance(sizes, tuple)
            or not sizes
            or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in sizes)
        ):
            raise ValueError(
                f"hidden_sizes must be a non-empty tuple of positive ints, got {sizes!r}"
            )
        if self.buffer_size < self.iteration_steps:
            raise ValueError(
                f"buffer_size={self.buffer_size} must hold one iteration's transitions "
                f"(max(train_frequency, num_envs) = {self.iteration_steps}), which are "
                "stored before its gradient steps: a smaller ring overwrites some unsampled"
            )
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size={self.batch_size} exceeds buffer_size={self.buffer_size}")
        if self.train_frequency % self.num_envs and self.num_envs % self.train_frequency:
            raise ValueError(
                f"train_frequency={self.train_frequency} must be a multiple or a divisor of "
                f"num_envs={self.num_envs} (one vector step adds num_envs transitions)"
            )
        steps = self.iteration_steps
        for name in ("target_update_frequency", "log_frequency"):
            if getattr(self, name) % steps:
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of "
                    f"max(train_frequency, num_envs) = {steps}"
                )
        if self.total_timesteps < self.log_frequency:
            raise ValueError(
                f"total_timesteps={self.total_timesteps} is less than one chunk "
                f"(log_frequency={self.log_frequency}): nothing would run"
            )
        check_step_count("total_timesteps", self.total_timesteps)
        check_step_count("buffer_size", self.buffer_size)
        if self.learning_starts > self.steps_run:
            raise ValueError(
                f"learning_starts={self.learning_starts} is more than the steps run "
                f"({self.steps_run}): no gradient step would be taken"
            )
        first_learning = max(steps, -(-self.learning_starts // steps) * steps)
        first_target_move = -(-first_learning // self.target_update_frequency) * (
            self.target_update_frequency
        )
        if first_target_move > self.steps_run:
            raise ValueError(
                f"target_update_frequency={self.target_update_frequency}: no target update "
                f"would come after the first gradient step (at step {first_learning}; the "
                f"run ends at {self.steps_run}), so every target would be the initial "
                "network's: lower it or run longer"
            )
        check_eval_every(self.eval_every, self.num_chunks, "chunks (metrics rows)")

    @property
    def iteration_steps(self) -> int:
        """Environment steps per iteration (vector steps then gradient steps)."""
        return max(self.train_frequency, self.num_envs)

    @property
    def vector_steps_per_iteration(self) -> int:
        return self.iteration_steps // self.num_envs

    @property
    def gradient_steps_per_iteration(self) -> int:
        return self.iteration_steps // self.train_frequency

    @property
    def iterations_per_chunk(self) -> int:
        return self.log_frequency // self.iteration_steps

    @property
    def num_chunks(self) -> int:
        return self.total_timesteps // self.log_frequency

    @property
    def steps_run(self) -> int:
        """Environment steps the run takes: whole chunks of ``log_frequency``."""
        return self.num_chunks * self.log_frequency


def check_hparams(hparams: DQNHParams, config: DQNConfig | None = None) -> None:
    """Reject impossible hyperparameters on the host, before anything compiles; given
    the ``config`` they will run with, also one it would ignore set away from its
    default (:func:`ignored_hparams`)."""
    check_hparams_type(DQNHParams, hparams)
    values = {name: np.asarray(value) for name, value in hparams._asdict().items()}
    for name in ("lr", "max_grad_norm", "huber_delta"):
        if np.any(values[name] <= 0):
            raise ValueError(f"{name} must be > 0, got {values[name]}")
    for name in ("gamma", "epsilon_start", "epsilon_end"):
        if np.any(values[name] < 0) or np.any(values[name] > 1):
            raise ValueError(f"{name} must be in [0, 1], got {values[name]}")
    for name in ("tau", "epsilon_decay_fraction"):
        if np.any(values[name] <= 0) or np.any(values[name] > 1):
            raise ValueError(f"{name} must be in (0, 1], got {values[name]}")
    if config is not None:
        reject_ignored(hparams, ignored_hparams(config))


def ignored_hparams(config: DQNConfig) -> dict[str, Ignored]:
    """The hyperparameters ``config`` never reads, and why: ``tau`` under a hard target
    update (it copies the weights: tau 1), ``max_grad_norm`` without clipping."""
    ignored = {}
    if config.target_update == "hard":
        ignored["tau"] = Ignored(
            "the Polyak step of target_update='polyak'",
            "target_update='hard' (a copy of the weights)",
            "set target_update='polyak'",
        )
    if not config.clip_gradients:
        ignored["max_grad_norm"] = Ignored(
            "the gradient-norm clip", "clip_gradients=False", "set clip_gradients=True"
        )
    return ignored


def huber_loss(error: jax.Array, delta: jax.Array) -> jax.Array:
    """Huber's loss (1964), elementwise: error^2 / 2 where |error| <= delta, else
    delta (|error| - delta / 2).

    Written as c (error - c / 2) with c = clip(error, -delta, delta), whose gradient is
    c exactly for any delta. ``optax.huber_loss`` has the same values, but its backward
    pass forms delta + (|error| - delta), which float32 rounds: with a delta of 1e3
    (a squared error on CartPole) its gradients are off by up to ~3e-5 (half of
    float32's spacing at 1e3), with 1e7 they are rounded to whole numbers (those of
    errors below 0.5 in size are zero, those from 0.5 to 1 are +-1), with 1e30 all are zero."""
    clipped = jnp.clip(error, -delta, delta)
    return clipped * (error - 0.5 * clipped)


def dqn_target(reward, terminated, next_q_target, gamma, next_q_online=None):
    """The bootstrapped Q-learning target y for a batch of transitions (s, a, r, s').

    DQN (Mnih et al. 2015):                    a* = argmax_a' Q_target(s', a')
    Double DQN (van Hasselt et al. 2016):      a* = argmax_a' Q_online(s', a')

        y = r + gamma * (1 - terminated) * Q_target(s', a*)

    s' is the true next state: ``info["final_observation"]`` when the episode ended,
    so a truncated transition bootstraps from Q_target(final_observation) and only a
    terminated one from zero. (Double DQN decouples selecting a* from evaluating it.)

    Args:
      reward: float[B].
      terminated: bool[B], s' is terminal.
      next_q_target: float[B, A], Q_target(s', .).
      gamma: scalar (may be traced).
      next_q_online: float[B, A], Q_online(s', .), for Double DQN; None for DQN.
    Returns:
      float[B], y.
    """
    chex.assert_rank(next_q_target, 2)
    chex.assert_equal_shape([reward, terminated])
    chex.assert_equal_shape_prefix([reward, next_q_target], 1)
    selector = next_q_target if next_q_online is None else next_q_online
    chex.assert_equal_shape([selector, next_q_target])
    best = jnp.argmax(selector, axis=-1)
    bootstrap = jnp.take_along_axis(next_q_target, best[:, None], axis=-1)[:, 0]
    not_terminal = 1.0 - jnp.asarray(terminated, jnp.float32)
    return reward + gamma * not_terminal * bootstrap


class QNetwork(nn.Module):
    """Observations [..., *obs_shape] -> action values float[..., num_actions].

    A torso (``"mlp"``: :class:`MLPTorso`, ``"cnn"``: :class:`CNNTorso`) and a linear
    head; weights initialised by ``kernel_init`` (``"orthogonal"``: gain sqrt(2) in the
    torso, 1 on the head; or ``"lecun_normal"``, flax's default), biases zero.
    """

    num_actions: int
    torso: str = "mlp"
    hidden_sizes: Sequence[int] = (120, 84)
    activation: str = "relu"
    kernel_init: str = "orthogonal"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        torso = torso_module(
            self.torso, self.hidden_sizes, self.activation, self.obs_ndim, "torso", self.kernel_init
        )
        features = torso(obs.astype(jnp.float32))
        return dense(self.num_actions, 1.0, "head", self.kernel_init)(features)


class Transition(NamedTuple):
    """What the replay stores, one entry per environment step. next_obs is
    ``info["final_observation"]`` (pre-reset); truncated is kept for analysis (the
    target reads only terminated)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array


class DQNState(NamedTuple):
    """The runner state. episode_return, episode_length: float32[N], int32[N] of the
    episodes under way. timesteps: environment steps taken (int32). key: the loop's key
    (chunk c draws its :class:`ChunkNoise` from fold_in(key, c))."""

    params: Any
    target_params: Any
    opt_state: Any
    buffer: ReplayBuffer
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    timesteps: jax.Array
    key: jax.Array


class ChunkNoise(NamedTuple):
    """The randomness of one chunk of C = ``iterations_per_chunk`` iterations, drawn in
    one go at its start (V vector steps of N envs and G gradient steps per iteration,
    B transitions per gradient step).

    act_uniforms: float32[C, V, N, 2], epsilon-greedy's two uniforms per env and step
    (:func:`~jrl.agents.exploration.epsilon_greedy_from_uniforms`). env_keys: key[C, V,
    N], each env step's key. slots: int32[C, G, B], the replay slots each gradient step
    reads, uniform over the slots filled by then.

    A few large draws per chunk instead of several small ones per iteration: XLA:CPU
    runs each small threefry call as a loop of tiny operations, which cost DQN on
    CartPole-v1 (10 envs, one gradient step per iteration) ~13% of a single seed's run.
    """

    act_uniforms: jax.Array
    env_keys: jax.Array
    slots: jax.Array


class DQNMetrics(NamedTuple):
    """One entry per chunk of ``log_frequency`` steps (arrays [num_chunks] out of train).

    timesteps: steps taken by the end of the chunk. episode_return, episode_length:
    means over the episodes that ended in the chunk (NaN when none); num_episodes: how
    many. loss, q_value: means over the chunk's gradient steps of the Huber loss and of
    Q(s, a) on the sampled batches (NaN when none was taken); gradient_steps: how many.
    epsilon: the exploration rate at the chunk's last vector step. eval_return: the
    mean greedy return on the evaluation keys at the end of the chunk (NaN unless it
    is an evaluation chunk of ``eval_every``).
    """

    timesteps: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    num_episodes: jax.Array
    loss: jax.Array
    q_value: jax.Array
    gradient_steps: jax.Array
    epsilon: jax.Array
    eval_return: jax.Array


class DQN(NamedTuple):
    """The pure functions of one configured DQN (what :func:`make_dqn` returns).

    network: the flax module (``network.apply(params, obs) -> q``). init(key, hparams)
    -> DQNState. update(state, hparams) -> (DQNState, DQNMetrics): one chunk.
    update_at(state, hparams, index): ``update`` as chunk number ``index`` (int32,
    unbatched), with the evaluation when ``eval_every`` says. evaluate(params) ->
    float32: the mean greedy return on the evaluation keys. train(key, hparams) ->
    (DQNState, DQNMetrics[num_chunks]).
    num_updates: U, the ``update_at`` calls of a whole run.
    """

    network: nn.Module
    init: Callable
    update: Callable
    train: Callable
    update_at: Callable
    evaluate: Callable
    num_updates: int


def _check_env(config: DQNConfig, env, env_params) -> tuple[int, tuple[int, ...]]:
    action_space = env.action_space(env_params)
    if not hasattr(action_space, "n"):
        raise ValueError(
            f"DQN needs discrete actions; {env.name} has {action_space}: for continuous "
            "actions use PPO, whose Gaussian policy takes them (jrl train ppo)"
        )
    obs_shape = observation_shape(config.network, env, env_params)
    check_env_outputs(env, env_params)
    return int(action_space.n), obs_shape


def make_optimizer(
    hparams: DQNHParams, clip_gradients: bool = True
) -> optax.GradientTransformation:
    """Global-norm clipping (or, with ``clip_gradients=False``, nothing: the state keeps
    the same structure) then Adam (``hparams`` may be traced)."""
    clip = optax.clip_by_global_norm(hparams.max_grad_norm) if clip_gradients else optax.identity()
    return optax.chain(clip, optax.adam(learning_rate=hparams.lr))


def draw_chunk_noise(key: jax.Array, config: DQNConfig, buffer_size: jax.Array) -> ChunkNoise:
    """The :class:`ChunkNoise` of one chunk of ``config``'s run from ``key``;
    ``buffer_size``: the replay's filled slots at the chunk's start. Iteration i's
    gradient steps sample after its own I transitions are in, from the first
    min(buffer_size + (i + 1) I, capacity) slots (the ring fills from slot 0)."""
    chunk = config.iterations_per_chunk
    vector_steps = config.vector_steps_per_iteration
    num_envs = config.num_envs
    key_act, key_env, key_slots = jax.random.split(key, 3)
    env_keys = jax.random.split(key_env, chunk * vector_steps * num_envs)
    filled = jnp.minimum(
        buffer_size + config.iteration_steps * jnp.arange(1, chunk + 1), config.buffer_size
    )
    return ChunkNoise(
        act_uniforms=jax.random.uniform(key_act, (chunk, vector_steps, num_envs, 2)),
        # (a raw uint32 key's splits carry a trailing axis of its two words)
        env_keys=env_keys.reshape(chunk, vector_steps, num_envs, *env_keys.shape[1:]),
        slots=jax.random.randint(
            key_slots,
            (chunk, config.gradient_steps_per_iteration, config.batch_size),
            0,
            jnp.maximum(filled, 1)[:, None, None],
        ),
    )


def epsilon_schedule(config: DQNConfig, hparams: DQNHParams) -> Callable[[jax.Array], jax.Array]:
    """The exploration rate as a function of the steps taken t: ``epsilon_start`` to
    ``epsilon_end`` linearly over ``epsilon_decay_fraction * config.steps_run`` steps,
    then ``epsilon_end`` (``train`` gives it its float32 hyperparameters)."""
    duration = hparams.epsilon_decay_fraction * config.steps_run
    return linear_schedule(hparams.epsilon_start, hparams.epsilon_end, duration)


def make_dqn(config: DQNConfig, env, env_params) -> DQN:
    """Build the pure functions of DQN on ``env`` (a gymnax-API environment)."""
    check_config_type(DQNConfig, config)
    env_params = env_params_or_default(env, env_params)
    num_actions, obs_shape = _check_env(config, env, env_params)
    network = QNetwork(
        num_actions,
        config.network,
        config.hidden_sizes,
        config.activation,
        config.kernel_init,
        obs_ndim=len(obs_shape),
    )
    num_envs = config.num_envs
    reset_envs = jax.vmap(env.reset, in_axes=(0, None))
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    act = jax.vmap(epsilon_greedy_from_uniforms, in_axes=(0, 0, None))
    check_eval_steps(config, env_params)
    evaluate = make_evaluate(config, env, env_params, lambda params: greedy_policy(network, params))

    # What run_sweep checks a grid with (train.check_hparams, below); cast checks concrete
    # hyperparameters with it too.
    check = functools.partial(check_hparams, config=config)

    def cast(hparams: DQNHParams) -> DQNHParams:
        return float32_hparams(DQNHParams, hparams, check)

    def init(key: jax.Array, hparams: DQNHParams) -> DQNState:
        hparams = cast(hparams)
        key_params, key_reset, key_loop = jax.random.split(key, 3)
        obs, env_state = reset_envs(jax.random.split(key_reset, num_envs), env_params)
        params = init_params(network, key_params, jnp.zeros(obs_shape, jnp.float32))
        example = Transition(
            obs=obs[0],
            action=jnp.int32(0),
            reward=jnp.float32(0),
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            next_obs=obs[0],
        )
        return DQNState(
            params=params,
            target_params=params,
            opt_state=make_optimizer(hparams, config.clip_gradients).init(params),
            buffer=buffer_init(example, config.buffer_size),
            env_state=env_state,
            obs=obs,
            episode_return=jnp.zeros(num_envs, jnp.float32),
            episode_length=jnp.zeros(num_envs, jnp.int32),
            timesteps=jnp.int32(0),
            key=key_loop,
        )

    def loss_fn(params, batch: Transition, targets: jax.Array, delta: jax.Array):
        q = network.apply(params, batch.obs)
        q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
        return huber_loss(q_taken - targets, delta).mean(), q_taken.mean()

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def gradient_step(carry, slots, buffer, hparams: DQNHParams):
        params, opt_state, target_params = carry
        batch = buffer_gather(buffer, slots)
        next_q_target = network.apply(target_params, batch.next_obs)
        next_q_online = network.apply(params, batch.next_obs) if config.double_dqn else None
        targets = dqn_target(
            batch.reward, batch.terminated, next_q_target, hparams.gamma, next_q_online
        )
        (loss, q_mean), grads = grad_fn(
            params, batch, jax.lax.stop_gradient(targets), hparams.huber_delta
        )
        updates, opt_state = make_optimizer(hparams, config.clip_gradients).update(
            grads, opt_state, params
        )
        return (optax.apply_updates(params, updates), opt_state, target_params), (loss, q_mean)

    def iteration(state: DQNState, hparams: DQNHParams, noise: ChunkNoise):
        """I / N vector steps, then I / train_frequency gradient steps once learning
        has started, then the target update when due, with ``noise`` this iteration's
        slice of the chunk's (leading axis dropped). Returns the new state and sums for
        the chunk's metrics."""
        epsilon_at = epsilon_schedule(config, hparams)

        def env_step(carry, step_noise):
            buffer, env_state, obs, ep_return, ep_length, timesteps = carry
            uniforms, env_keys = step_noise
            epsilon = epsilon_at(timesteps)
            q = network.apply(state.params, obs)
            action = act(uniforms, q, epsilon)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                env_keys, env_state, action, env_params
            )
            reward = jnp.asarray(reward, jnp.float32)
            transition = Transition(
                obs, action, reward, terminated, truncated, info["final_observation"]
            )
            buffer = buffer_add(buffer, transition)
            done = jnp.logical_or(terminated, truncated)
            ep_return = ep_return + reward
            ep_length = ep_length + 1
            stats = (
                jnp.where(done, ep_return, 0.0).sum(),
                jnp.where(done, ep_length, 0).sum(),
                done.sum(),
            )
            carry = (
                buffer,
                env_state,
                next_obs,
                jnp.where(done, 0.0, ep_return),
                jnp.where(done, 0, ep_length),
                timesteps + num_envs,
            )
            return carry, (stats, epsilon)

        carry = (
            state.buffer,
            state.env_state,
            state.obs,
            state.episode_return,
            state.episode_length,
            state.timesteps,
        )
        carry, (episode_stats, epsilons) = jax.lax.scan(
            env_step, carry, (noise.act_uniforms, noise.env_keys)
        )
        buffer, env_state, obs, ep_return, ep_length, timesteps = carry
        episode_stats = jax.tree.map(jnp.sum, episode_stats)

        # The replay buffer is read, never returned, by the learning branch: carrying it
        # through the cond and the scan made XLA keep a second copy of it.
        def learn(operand):
            carry, (losses, q_means) = jax.lax.scan(
                lambda c, slots: gradient_step(c, slots, buffer, hparams), operand, noise.slots
            )
            return carry, (losses.sum(), q_means.sum())

        def skip(operand):
            return operand, (jnp.float32(0), jnp.float32(0))

        learning = timesteps >= config.learning_starts
        (params, opt_state, target_params), (loss_sum, q_sum) = jax.lax.cond(
            learning, learn, skip, (state.params, state.opt_state, state.target_params)
        )

        def move_target(target_params):
            if config.target_update == "hard":
                return params
            return optax.incremental_update(params, target_params, hparams.tau)

        target_params = jax.lax.cond(
            timesteps % config.target_update_frequency == 0,
            move_target,
            lambda target_params: target_params,
            target_params,
        )
        grad_steps = jnp.where(learning, config.gradient_steps_per_iteration, 0)
        new_state = DQNState(
            params=params,
            target_params=target_params,
            opt_state=opt_state,
            buffer=buffer,
            env_state=env_state,
            obs=obs,
            episode_return=ep_return,
            episode_length=ep_length,
            timesteps=timesteps,
            key=state.key,
        )
        return new_state, (*episode_stats, loss_sum, q_sum, grad_steps, epsilons[-1])

    def update(state: DQNState, hparams: DQNHParams) -> tuple[DQNState, DQNMetrics]:
        """One chunk: ``log_frequency`` environment steps and their learning."""
        hparams = cast(hparams)
        chunk_key = jax.random.fold_in(state.key, state.timesteps // config.log_frequency)
        noise = draw_chunk_noise(chunk_key, config, state.buffer.size)
        state, stats = jax.lax.scan(lambda s, n: iteration(s, hparams, n), state, noise)
        return_sum, length_sum, count, loss_sum, q_sum, grad_steps, epsilons = stats
        count, grad_steps = count.sum(), grad_steps.sum()
        episodes, learned = jnp.maximum(count, 1), jnp.maximum(grad_steps, 1)
        metrics = DQNMetrics(
            timesteps=state.timesteps,
            episode_return=jnp.where(count > 0, return_sum.sum() / episodes, jnp.nan),
            episode_length=jnp.where(count > 0, length_sum.sum() / episodes, jnp.nan),
            num_episodes=count,
            loss=jnp.where(grad_steps > 0, loss_sum.sum() / learned, jnp.nan),
            q_value=jnp.where(grad_steps > 0, q_sum.sum() / learned, jnp.nan),
            gradient_steps=grad_steps,
            epsilon=epsilons[-1],
            eval_return=jnp.float32(jnp.nan),
        )
        return state, metrics

    update_at = with_periodic_evaluation(update, evaluate, config.eval_every, config.num_chunks)

    train = scan_run(init, update_at, config.num_chunks)

    # run_sweep checks a grid with it before compiling: one the config ignores sweeps nothing.
    train.check_hparams = check
    return DQN(
        network=network,
        init=init,
        update=update,
        train=train,
        update_at=update_at,
        evaluate=evaluate,
        num_updates=config.num_chunks,
    )


def make_train(config: DQNConfig, env, env_params) -> Callable:
    """``train(key, hparams) -> (DQNState, DQNMetrics)``: a whole DQN run (pure; jit/vmap
    it, or hand it to ``jrl.sweep.run_sweep``). Concrete hyperparameters are checked as
    run_sweep checks a grid; traced ones cannot be (:func:`~jrl.agents.checks.float32_hparams`).
    """
    return make_dqn(config, env, env_params).train


def greedy_episode(key, env, env_params, network: nn.Module, params, max_steps: int):
    """One episode of the greedy policy argmax_a Q(s, a): (return float32, length int32,
    terminated bool), cut at ``max_steps`` steps (ties go to the lowest action)."""
    return run_episode(key, env, env_params, greedy_policy(network, params), max_steps)


def greedy_policy(network: nn.Module, params) -> Callable:
    """``act(key, obs) -> argmax_a Q(obs, a)`` (ties to the lowest action; key unused)."""
    return lambda key, obs: jnp.argmax(network.apply(params, obs), axis=-1)
