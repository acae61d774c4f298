"""Tabular control as pure functions: Q-learning, SARSA, Expected SARSA, Dyna-Q, Dyna-Q+.

``make_train(config, env, env_params)`` returns ``train(key, hparams)``: a whole
tabular experiment — acting, learning, planning, episode bookkeeping — as one
function to ``jit``, and to ``vmap`` over seeds and over the sweepable
hyperparameters (:class:`TabularHParams`, traced values). The static settings that
fix shapes and loop lengths are in :class:`TabularConfig`. ``make_tabular`` gives the
same run as pieces — ``init``, ``update`` (one iteration), ``finished`` — for a host
loop that runs it in chunks, writing metrics and checkpoints in between, with the same
numbers bit for bit.

Update rules (Sutton & Barto 2nd ed., chapter 6 and 8), for a transition
(s, a, r, s') with ``discount = gamma * (1 - terminated)``:

    Q-learning (6.8):      target = r + discount * max_a' Q(s', a')
    SARSA (6.7):           target = r + discount * Q(s', a'),  a' ~ pi(. | s')
    Expected SARSA (6.9):  target = r + discount * sum_a' pi(a' | s') Q(s', a')
    all:                   Q(s, a) <- Q(s, a) + alpha * (target - Q(s, a))

On a time-out s' is ``info["final_observation"]`` and the target bootstraps from it;
on termination it bootstraps from zero. Dyna-Q (section 8.2) adds, after each real
step, ``planning_steps`` Q-learning updates on transitions from a learned
deterministic model, each on a state drawn uniformly from those observed so far and an
action drawn uniformly from those taken there (the book's "Tabular Dyna-Q" box).
Dyna-Q+ (section 8.3) plans over every action of every visited state (untried ones
modelled as staying put with reward 0) and adds the bonus ``kappa * sqrt(tau)``, tau
being the number of real steps since the pair was last tried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jrl.agents import exploration
from jrl.agents.checks import (
    Ignored,
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
from jrl.agents.evaluation import check_one_key, check_step_count, run_episode

ALGORITHMS = ("q_learning", "sarsa", "expected_sarsa", "dyna_q", "dyna_q_plus")
EXPLORATIONS = ("epsilon_greedy", "boltzmann")
# The algorithms one compiled program can hold together: config.algorithm a tuple of
# them, hparams.algorithm the (traced) index of the one each grid point runs.
ONE_STEP_ALGORITHMS = ("q_learning", "sarsa", "expected_sarsa")


class TabularHParams(NamedTuple):
    """Sweepable hyperparameters: traced scalars, so ``vmap`` runs a grid of them.

    alpha: step size. gamma: discount. epsilon / temperature: exploration at step 0,
    moving to epsilon_end / temperature_end over decay_steps environment steps
    under the config's schedule (ignored by the constant schedule). kappa: Dyna-Q+
    exploration bonus. q_init: initial action value. algorithm: when the config
    names several one-step algorithms, the index of the one this grid point runs.
    """

    alpha: Any = 0.5
    gamma: Any = 1.0
    epsilon: Any = 0.1
    epsilon_end: Any = 0.01
    temperature: Any = 1.0
    temperature_end: Any = 0.1
    decay_steps: Any = 10_000.0
    kappa: Any = 0.0
    q_init: Any = 0.0
    algorithm: Any = 0.0


@dataclass(frozen=True)
class TabularConfig:
    """Static settings (they decide shapes, loop lengths and which code is traced).

    The run stops after ``num_episodes`` episodes or ``max_steps`` environment
    steps, whichever comes first. ``steps_per_iteration`` real steps run per
    iteration of the outer loop (a speed knob: it changes which random numbers a run
    draws, not their distribution).
    """

    algorithm: str | tuple[str, ...] = "q_learning"
    exploration: str = "epsilon_greedy"
    schedule: str = "constant"
    planning_steps: int = 0
    num_episodes: int = 500
    max_steps: int = 1_000_000
    steps_per_iteration: int = 16

    def __post_init__(self):
        python_scalars(self)
        if isinstance(self.algorithm, tuple):
            if not self.algorithm or len(set(self.algorithm)) != len(self.algorithm):
                raise ValueError(f"algorithm tuple needs distinct names, got {self.algorithm!r}")
            for name in self.algorithm:
                check_choice("algorithm", name, ONE_STEP_ALGORITHMS)
        else:
            check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_choice("exploration", self.exploration, EXPLORATIONS)
        check_choice("schedule", self.schedule, tuple(exploration.SCHEDULES))
        for name in ("num_episodes", "max_steps", "steps_per_iteration"):
            check_positive_int(name, getattr(self, name))
            # The run counts episodes and steps, and loops over an iteration's, in int32.
            check_step_count(name, getattr(self, name))
        steps = self.planning_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"planning_steps must be an int >= 0, got {self.planning_steps!r}")
        if self.planning_steps and self.algorithm not in ("dyna_q", "dyna_q_plus"):
            raise ValueError(
                f"planning_steps={self.planning_steps} needs algorithm 'dyna_q' or "
                f"'dyna_q_plus', not {self.algorithm!r}"
            )

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithm names this config compiles (``hparams.algorithm`` indexes them)."""
        return self.algorithm if isinstance(self.algorithm, tuple) else (self.algorithm,)


def check_hparams(hparams: TabularHParams, config: TabularConfig | None = None) -> None:
    """Reject impossible hyperparameters on the host, before anything compiles; given
    the ``config`` they will run with, also those it would ignore or misread: an
    ``algorithm`` index past ``config.algorithm``'s names (the compiled program would
    run the last one), and any hyperparameter :func:`ignored_hparams` lists set away
    from its default (a ``kappa`` without Dyna-Q+, a temperature under epsilon-greedy
    exploration, a schedule's end under the constant schedule)."""
    check_hparams_type(TabularHParams, hparams)
    values = {name: np.asarray(value) for name, value in hparams._asdict().items()}
    bounds = {
        "alpha": (0.0, 1.0, False),
        "gamma": (0.0, 1.0, True),
        "epsilon": (0.0, 1.0, True),
        "epsilon_end": (0.0, 1.0, True),
    }
    for name, (low, high, low_inclusive) in bounds.items():
        v = values[name]
        if np.any(v > high) or np.any(v < low) or (not low_inclusive and np.any(v == low)):
            bracket = "[" if low_inclusive else "("
            raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {v}")
    for name in ("temperature", "temperature_end", "decay_steps"):
        if np.any(values[name] <= 0):
            raise ValueError(f"{name} must be > 0, got {values[name]}")
    if np.any(values["kappa"] < 0):
        raise ValueError(f"kappa must be >= 0, got {values['kappa']}")
    which = values["algorithm"]
    if np.any(which < 0) or np.any(which != np.round(which)):
        raise ValueError(
            f"algorithm must be the index (0, 1, ...) of a name in config.algorithm, got {which}"
        )
    if config is None:
        return
    check_config_hparams(hparams, config)
    reject_ignored(hparams, ignored_hparams(config))


def ignored_hparams(config: TabularConfig) -> dict[str, Ignored]:
    """The hyperparameters ``config`` never reads, and why (with the settings that
    would read them, all of them where two are missing)."""
    schedule = "schedule='linear' or 'exponential'"
    if config.exploration == "epsilon_greedy":
        unread, what, other = ("temperature", "temperature_end"), "a temperature", "boltzmann"
    else:
        unread, what, other = ("epsilon", "epsilon_end"), "an epsilon-greedy rate", "epsilon_greedy"
    ignored = {
        name: Ignored(what, f"exploration={config.exploration!r}", f"use exploration={other!r}")
        for name in unread
    }
    if config.schedule == "constant":
        ends = "where the exploration schedule ends"
        for name in ("epsilon_end", "temperature_end"):
            ignored[name] = Ignored(
                ends,
                "schedule='constant'",
                f"use {schedule}" + (f" with exploration={other!r}" if name in unread else ""),
            )
        ignored["decay_steps"] = Ignored(
            "the schedule's length", "schedule='constant'", f"use {schedule}"
        )
    if "dyna_q_plus" not in config.algorithms:
        ignored["kappa"] = Ignored(
            "Dyna-Q+'s exploration bonus",
            f"config.algorithm={config.algorithm!r}",
            "use algorithm='dyna_q_plus' (alone) with planning_steps > 0",
        )
    elif config.planning_steps == 0:
        ignored["kappa"] = Ignored(
            "Dyna-Q+'s exploration bonus (added to planning updates only)",
            "planning_steps=0",
            "use planning_steps > 0",
        )
    return ignored


def check_every_algorithm_runs(points, config: TabularConfig) -> None:
    """Reject a ``config.algorithm`` tuple some name of which no grid point in ``points``
    (TabularHParams) runs: the run would record both and compute one."""
    names = config.algorithms
    used = {int(np.asarray(point.algorithm)) for point in points}
    unused = [name for i, name in enumerate(names) if i not in used]
    if len(names) > 1 and unused:
        raise ValueError(
            f"config.algorithm={names!r}, but no grid point runs {unused} (hparams.algorithm "
            f"is the index each point runs; here {sorted(used)}): sweep it (jrl sweep tabular "
            "... --grid algorithm=0,1) or name one algorithm"
        )


def check_config_hparams(hparams: TabularHParams, config: TabularConfig) -> None:
    """Reject hyperparameters ``config`` would misread: an ``algorithm`` index past
    ``config.algorithm``'s names (the compiled program would clamp it and run the last
    one), and an epsilon-greedy rate of 0 under the exponential schedule (it
    interpolates the logs of its ends: an epsilon of 0 gives NaN from step 1 on, an
    epsilon_end of 0 drops the rate to 0 at step 1 instead of decaying to it)."""
    which, names = np.asarray(hparams.algorithm), config.algorithms
    if np.any(which >= len(names)):
        raise ValueError(
            f"algorithm={which} indexes config.algorithm={names!r}, which has "
            f"{len(names)} name(s): give an index below {len(names)}"
        )
    if config.schedule == "exponential" and config.exploration == "epsilon_greedy":
        for name in ("epsilon", "epsilon_end"):
            value = np.asarray(getattr(hparams, name))
            if np.any(value <= 0):
                raise ValueError(
                    f"{name}={value}: schedule='exponential' needs epsilon and epsilon_end "
                    "> 0 (it moves geometrically between them); use schedule='linear' to "
                    "reach 0"
                )


class DynaModel(NamedTuple):
    """A learned deterministic model and the states planning may draw from.

    next_state, reward, terminal, last_tried: [S, A] (last_tried: the step count when
    the pair was last tried, 0 never); states: int32[S], the observed states in order
    of first observation; num_states: how many of them are filled.
    """

    next_state: jax.Array
    reward: jax.Array
    terminal: jax.Array
    last_tried: jax.Array
    states: jax.Array
    num_states: jax.Array


class TabularState(NamedTuple):
    q_values: jax.Array  # float32[S, A]
    model: DynaModel


class TabularMetrics(NamedTuple):
    """episode_returns, episode_lengths: [min(num_episodes, max_steps)] (an episode
    takes at least one step, so no run completes more); past num_completed, the
    episodes a step budget left unplayed, returns are NaN (0 is a return an episode
    can have) and lengths 0; num_completed: episodes finished; num_steps: environment
    steps taken."""

    episode_returns: jax.Array
    episode_lengths: jax.Array
    num_completed: jax.Array
    num_steps: jax.Array


def td_update(q_values, state, action, target, alpha, active=True):
    """Q(s, a) <- Q(s, a) + alpha (target - Q(s, a)); no change where ``active`` is False.

    Written with dynamic slices, not ``.at[].add``: unbatched (``run_sweep(...,
    sequential=True)``) that is no scatter, so XLA:CPU can compile the loop as one
    kernel; under ``vmap`` it becomes the same gather and scatter as before.
    """
    old = jax.lax.dynamic_slice(q_values, (state, action), (1, 1))
    delta = jnp.where(active, alpha * (target - old[0, 0]), 0.0)
    return jax.lax.dynamic_update_slice(q_values, old + delta, (state, action))


def _set_unless_out_of_range(values, index, value):
    """``values.at[index].set(value, mode="drop")`` for 0 <= index, without a scatter."""
    clamped = jnp.minimum(index, values.shape[0] - 1)
    old = jax.lax.dynamic_slice(values, (clamped,), (1,))
    new = jnp.where(index < values.shape[0], jnp.asarray(value, values.dtype), old)
    return jax.lax.dynamic_update_slice(values, new, (clamped,))


def q_learning_target(q_next, reward, discount):
    """r + discount * max_a' Q(s', a')."""
    return reward + discount * q_next.max(axis=-1)


def sarsa_target(q_next, next_action, reward, discount):
    """r + discount * Q(s', a')."""
    return reward + discount * q_next[next_action]


def expected_sarsa_target(q_next, next_probs, reward, discount):
    """r + discount * sum_a' pi(a' | s') Q(s', a')."""
    return reward + discount * jnp.dot(next_probs, q_next)


def init_model(num_states: int, num_actions: int) -> DynaModel:
    """Untried pairs are modelled as staying put with reward 0 (Dyna-Q+'s prior)."""
    shape = (num_states, num_actions)
    return DynaModel(
        next_state=jnp.broadcast_to(jnp.arange(num_states, dtype=jnp.int32)[:, None], shape),
        reward=jnp.zeros(shape, jnp.float32),
        terminal=jnp.zeros(shape, bool),
        last_tried=jnp.zeros(shape, jnp.int32),
        states=jnp.zeros(num_states, jnp.int32),
        num_states=jnp.int32(0),
    )


def update_model(
    model: DynaModel,
    state,
    action,
    reward,
    next_state,
    terminal,
    step,
    active=True,
) -> DynaModel:
    """Record a real transition; a state seen for the first time joins the states
    planning draws from (:func:`plan`)."""
    is_new = active & ~_visited(model, state)
    states = _set_unless_out_of_range(
        model.states, jnp.where(is_new, model.num_states, model.states.shape[0]), state
    )
    where = (state, action)
    return DynaModel(
        next_state=model.next_state.at[where].set(
            jnp.where(active, next_state, model.next_state[where])
        ),
        reward=model.reward.at[where].set(jnp.where(active, reward, model.reward[where])),
        terminal=model.terminal.at[where].set(jnp.where(active, terminal, model.terminal[where])),
        last_tried=model.last_tried.at[where].set(jnp.where(active, step, model.last_tried[where])),
        states=states,
        num_states=model.num_states + is_new.astype(jnp.int32),
    )


def _visited(model: DynaModel, state):
    return (model.last_tried[state] > 0).any()


def plan(
    uniforms, q_values, model: DynaModel, hparams: TabularHParams, step, bonus: bool, active=True
):
    """One-step tabular Q-learning updates on simulated transitions, one per row of
    ``uniforms`` (float[n, 2] in [0, 1)): the first picks a state uniformly among the
    observed ones, the second an action uniformly among those tried there (Dyna-Q) or
    among all actions (Dyna-Q+, ``bonus``)."""
    num_actions = q_values.shape[1]
    num_steps = uniforms.shape[0]

    def uniform_index(u, count):
        return jnp.minimum(jnp.floor(u * count), count - 1).astype(jnp.int32)

    def one_update(i, q):
        state = model.states[uniform_index(uniforms[i, 0], model.num_states)]
        if bonus:
            action = uniform_index(uniforms[i, 1], num_actions)
        else:
            tried = model.last_tried[state] > 0
            nth = uniform_index(uniforms[i, 1], tried.sum())
            action = jnp.argmax(jnp.cumsum(tried) > nth).astype(jnp.int32)
        reward = model.reward[state, action]
        if bonus:
            tau = (step - model.last_tried[state, action]).astype(jnp.float32)
            reward = reward + hparams.kappa * jnp.sqrt(tau)
        discount = hparams.gamma * (1.0 - model.terminal[state, action])
        target = q_learning_target(q[model.next_state[state, action]], reward, discount)
        return td_update(q, state, action, target, hparams.alpha, active & (model.num_states > 0))

    return jax.lax.fori_loop(0, num_steps, one_update, q_values)


def draw(key: jax.Array, num_keys: int, num_uniforms: int) -> tuple[jax.Array, jax.Array]:
    """``num_keys`` new keys and ``num_uniforms`` uniforms in [0, 1) from ``key`` with one
    call to the PRNG: (keys[num_keys], float32[num_uniforms]).

    Made as ``split`` and ``uniform`` make them — ``split`` cuts random words into keys,
    ``uniform`` puts 23 random bits in a float32's mantissa — but from one block of
    random words instead of a ``split`` and a draw per use: on XLA:CPU every threefry
    call is a while loop of its own, and compiling those was a large part of compiling
    a tabular run.
    """
    width = jax.random.key_data(key).shape[-1]
    words = jax.random.bits(key, (num_keys * width + num_uniforms,), jnp.uint32)
    keys = jax.random.wrap_key_data(
        words[: num_keys * width].reshape(num_keys, width), impl=jax.random.key_impl(key)
    )
    mantissas = (words[num_keys * width :] >> 9) | np.uint32(0x3F800000)  # in [1, 2)
    return keys, jax.lax.bitcast_convert_type(mantissas, jnp.float32) - 1.0


def num_states_of(env, env_params) -> int:
    space = env.observation_space(env_params)
    if not hasattr(space, "n"):
        from jrl.envs.grid import GridWorld

        discrete = hasattr(env.action_space(env_params), "n")
        hint = (
            "For jrl's grids use observation='index'."
            if isinstance(env, GridWorld)
            else "Its observations need a network: "
            + ("jrl train dqn or jrl train ppo." if discrete else "jrl train ppo.")
        )
        raise ValueError(
            f"tabular agents need a discrete observation (a state index); {env.name} "
            f"observes {space}. {hint}"
        )
    return int(space.n)


def make_policy(config: TabularConfig, hparams: TabularHParams):
    """(sample(uniforms[2], q_values, step), probs(q_values, step)) for the configured
    exploration, its parameter following the configured schedule in the step count."""
    schedule = exploration.SCHEDULES[config.schedule]
    if config.exploration == "epsilon_greedy":
        epsilon = schedule(hparams.epsilon, hparams.epsilon_end, hparams.decay_steps)
        return (
            lambda u, q, step: exploration.epsilon_greedy_from_uniforms(u, q, epsilon(step)),
            lambda q, step: exploration.epsilon_greedy_probs(q, epsilon(step)),
        )
    temperature = schedule(hparams.temperature, hparams.temperature_end, hparams.decay_steps)
    return (
        lambda u, q, step: exploration.boltzmann_from_uniforms(u, q, temperature(step)),
        lambda q, step: exploration.boltzmann_probs(q, temperature(step)),
    )


class TabularRunState(NamedTuple):
    """Everything a run carries from one iteration to the next (what a checkpoint holds).

    q_values: float32[S, A]. model: the Dyna model (empty [0, 0] tables unless Dyna).
    env_state, obs: the environment's. action: the action to take in ``obs`` (SARSA
    picks it when it bootstraps). step, episode: environment steps taken and episodes
    completed (int32). episode_return, episode_length: of the episode under way.
    returns, lengths: float32[E], int32[E] of completed episodes, E =
    min(num_episodes, max_steps) (zeros past ``episode``). key: the next iteration's
    key; an iteration draws its random numbers and its successor's key from it in one
    :func:`draw`, so they depend on where the run is, not on how it was cut into calls.
    """

    q_values: jax.Array
    model: DynaModel
    env_state: Any
    obs: jax.Array
    action: jax.Array
    step: jax.Array
    episode: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    returns: jax.Array
    lengths: jax.Array
    key: jax.Array


class TabularIterationMetrics(NamedTuple):
    """What one ``update`` (one iteration of ``steps_per_iteration`` steps) reports.

    timesteps: environment steps taken by the end of the iteration. episode_return,
    episode_length: means over the episodes that ended in it (NaN when none did);
    num_episodes: how many. active: False when the run had already finished (the
    iteration changed nothing; drop its row).
    """

    timesteps: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    num_episodes: jax.Array
    active: jax.Array


class Tabular(NamedTuple):
    """The pure functions of one configured tabular agent (what :func:`make_tabular`
    returns), for a host loop that runs a run in chunks.

    init(key, hparams) -> TabularRunState. update(state, hparams) -> (TabularRunState,
    TabularIterationMetrics): one iteration, a no-op once finished. finished(state) ->
    bool: the episode or step budget is spent. results(state) -> (TabularState,
    TabularMetrics): what ``train`` returns. train(key, hparams) = results of
    ``while not finished: update``, in one ``lax.while_loop``.
    """

    init: Callable
    update: Callable
    finished: Callable
    results: Callable
    train: Callable


def make_tabular(config: TabularConfig, env, env_params) -> Tabular:
    """Build the pure functions of a tabular agent on ``env`` (index observations).

    Any driver that calls ``update`` until ``finished`` — K iterations per jitted call,
    with a checkpoint between calls — gives bit for bit what ``train`` gives.
    """
    check_config_type(TabularConfig, config)
    env_params = env_params_or_default(env, env_params)
    num_states = num_states_of(env, env_params)
    action_space = env.action_space(env_params)
    if not hasattr(action_space, "n"):
        raise ValueError(f"tabular agents need discrete actions; {env.name} has {action_space}")
    num_actions = int(action_space.n)
    obs_dtype = check_env_outputs(env, env_params).dtype
    if not jnp.issubdtype(obs_dtype, jnp.integer):
        raise ValueError(
            f"tabular agents index their table with the observation; {env.name} observes "
            f"{obs_dtype}: return a state index of an integer dtype in [0, {num_states})"
        )
    num_episodes = config.num_episodes
    # No run completes more episodes than it takes steps: a step budget with an episode
    # count left huge must not size huge buffers.
    episode_slots = min(num_episodes, config.max_steps)
    algorithms = config.algorithms
    is_dyna = algorithms[0].startswith("dyna")
    bonus = algorithms[0] == "dyna_q_plus"
    num_uniforms = 4 + 2 * config.planning_steps

    # What run_sweep checks a grid with (train.check_hparams, below); cast checks concrete
    # hyperparameters with it too.
    check = functools.partial(check_hparams, config=config)

    def cast(hparams: TabularHParams) -> TabularHParams:
        return float32_hparams(TabularHParams, hparams, check)

    def running(state: TabularRunState):
        return (state.episode < num_episodes) & (state.step < config.max_steps)

    def init(key: jax.Array, hparams: TabularHParams) -> TabularRunState:
        hparams = cast(hparams)
        sample, _ = make_policy(config, hparams)
        (key_reset, key_steps), u_first = draw(key, 2, 2)
        obs, env_state = env.reset(key_reset, env_params)
        q_values = jnp.full((num_states, num_actions), hparams.q_init, jnp.float32)
        return TabularRunState(
            q_values=q_values,
            model=init_model(num_states, num_actions) if is_dyna else init_model(0, 0),
            env_state=env_state,
            obs=obs,
            action=sample(u_first, q_values[obs], jnp.int32(0)),
            step=jnp.int32(0),
            episode=jnp.int32(0),
            episode_return=jnp.float32(0.0),
            episode_length=jnp.int32(0),
            returns=jnp.zeros(episode_slots, jnp.float32),
            lengths=jnp.zeros(episode_slots, jnp.int32),
            key=key_steps,
        )

    def iterate(run: TabularRunState, hparams: TabularHParams) -> TabularRunState:
        """``steps_per_iteration`` real steps, or fewer when the budget runs out."""
        sample, probs = make_policy(config, hparams)
        which = jnp.clip(hparams.algorithm, 0, len(algorithms) - 1).astype(jnp.int32)

        def real_step(carry: TabularRunState, key_env, uniforms) -> TabularRunState:
            # Always true here (the loop below stops with the run), but XLA cannot know
            # it: the updates stay masked, so XLA:CPU compiles their arithmetic as when
            # it could be false (unmasked, it may fuse a multiply-add and round otherwise).
            active = running(carry)
            u_next, u_bootstrap = uniforms[:2], uniforms[2:4]
            u_plan = uniforms[4:].reshape(config.planning_steps, 2)
            state, action = carry.obs, carry.action
            obs, env_state, reward, terminated, truncated, info = env.step(
                key_env, carry.env_state, action, env_params
            )
            final_obs = info["final_observation"]
            done = terminated | truncated
            discount = hparams.gamma * (1.0 - terminated.astype(jnp.float32))
            q_next = carry.q_values[final_obs]
            targets = []
            for name in algorithms:
                if name == "sarsa":
                    bootstrap_action = sample(u_bootstrap, q_next, carry.step + 1)
                    targets.append(sarsa_target(q_next, bootstrap_action, reward, discount))
                elif name == "expected_sarsa":
                    next_probs = probs(q_next, carry.step + 1)
                    targets.append(expected_sarsa_target(q_next, next_probs, reward, discount))
                else:
                    targets.append(q_learning_target(q_next, reward, discount))
            target = targets[0] if len(targets) == 1 else jax.lax.select_n(which, *targets)
            q = td_update(carry.q_values, state, action, target, hparams.alpha, active)
            model = carry.model
            step = carry.step + 1
            if is_dyna:
                model = update_model(
                    model, state, action, reward, final_obs, terminated, step, active
                )
                if config.planning_steps:
                    q = plan(u_plan, q, model, hparams, step, bonus, active)
            next_action = sample(u_next, q[obs], step)
            if "sarsa" in algorithms:
                fresh = done
                if len(algorithms) > 1:
                    fresh = done | (which != algorithms.index("sarsa"))
                next_action = jnp.where(fresh, next_action, bootstrap_action)

            episode_return = carry.episode_return + reward
            episode_length = carry.episode_length + 1
            slot = jnp.where(done, carry.episode, episode_slots)
            return TabularRunState(
                q_values=q,
                model=model,
                env_state=env_state,
                obs=obs,
                action=next_action,
                step=step,
                episode=carry.episode + done,
                episode_return=jnp.where(done, 0.0, episode_return),
                episode_length=jnp.where(done, 0, episode_length),
                returns=_set_unless_out_of_range(carry.returns, slot, episode_return),
                lengths=_set_unless_out_of_range(carry.lengths, slot, episode_length),
                key=carry.key,
            )

        # The random numbers of a whole iteration, and the next iteration's key, in one
        # draw: cheaper than per step, and far cheaper to compile than several draws.
        steps = config.steps_per_iteration
        keys, uniforms = draw(run.key, 1 + steps, steps * num_uniforms)
        uniforms = uniforms.reshape(steps, num_uniforms)
        # A loop that stops when the run does, rather than a scan whose steps past the
        # budget would have to leave every field as it was: less to compile.
        _, run = jax.lax.while_loop(
            lambda loop: (loop[0] < steps) & running(loop[1]),
            lambda loop: (loop[0] + 1, real_step(loop[1], keys[1 + loop[0]], uniforms[loop[0]])),
            (jnp.int32(0), run),
        )
        return run._replace(key=keys[0])

    def finished(state: TabularRunState) -> jax.Array:
        return ~running(state)

    def update(state: TabularRunState, hparams: TabularHParams):
        hparams = cast(hparams)
        active = running(state)
        # A real branch when unbatched (a finished run costs nothing); a select under vmap.
        new = jax.lax.cond(active, iterate, lambda run, _: run, state, hparams)
        # One iteration ends at most steps_per_iteration episodes: read just those slots.
        index = state.episode + jnp.arange(config.steps_per_iteration)
        ended = index < new.episode
        index = jnp.minimum(index, episode_slots - 1)
        count = ended.sum()

        def mean_over_ended(values):
            total = jnp.where(ended, values[index].astype(jnp.float32), 0.0).sum()
            return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)

        metrics = TabularIterationMetrics(
            timesteps=new.step,
            episode_return=mean_over_ended(new.returns),
            episode_length=mean_over_ended(new.lengths),
            num_episodes=count,
            active=active,
        )
        return new, metrics

    def results(state: TabularRunState) -> tuple[TabularState, TabularMetrics]:
        played = jnp.arange(episode_slots) < state.episode
        returns = jnp.where(played, state.returns, jnp.nan)
        metrics = TabularMetrics(returns, state.lengths, state.episode, state.step)
        return TabularState(state.q_values, state.model), metrics

    def train(key: jax.Array, hparams: TabularHParams):
        check_one_key(key)
        hparams = cast(hparams)
        state = jax.lax.while_loop(running, lambda run: iterate(run, hparams), init(key, hparams))
        return results(state)

    # run_sweep checks a grid with it before compiling: an index past config.algorithm
    # would run the last algorithm silently, a hyperparameter the config ignores would
    # sweep nothing.
    train.check_hparams = check
    return Tabular(init=init, update=update, finished=finished, results=results, train=train)


def make_train(config: TabularConfig, env, env_params):
    """Build ``train(key, hparams) -> (TabularState, TabularMetrics)`` (pure; jit/vmap it).
    Concrete hyperparameters are checked as ``jrl.sweep.run_sweep`` checks a grid (an
    alpha of -0.5, an algorithm index past config.algorithm's names); traced ones cannot
    be (:func:`~jrl.agents.checks.float32_hparams`).
    """
    return make_tabular(config, env, env_params).train


def greedy_episode(key, env, env_params, q_values, max_steps: int):
    """Return and length of one episode of the greedy policy (ties broken at random),
    cut at ``max_steps`` (an int >= 1): (return float32, length int32, terminated bool).
    ``q_values`` float[S, A] may be a NumPy array (it is indexed by a traced
    observation); S and A must be the environment's numbers of states and actions."""
    expected = (num_states_of(env, env_params), int(env.action_space(env_params).n))
    if np.shape(q_values) != expected:
        raise ValueError(
            f"q_values must be shaped (num_states, num_actions) = {expected} for "
            f"{env.name}, got {np.shape(q_values)}: a table of another environment "
            "would be indexed out of its range (JAX clamps the index) or act with actions "
            "the environment has not got"
        )
    q_values = jnp.asarray(q_values)
    return run_episode(
        key,
        env,
        env_params,
        lambda key, obs: exploration.epsilon_greedy(key, q_values[obs], 0.0),
        max_steps,
    )
