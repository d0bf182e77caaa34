"""Soft Actor-Critic, pure-functional, with the replay buffer on the device.

One `train_step` is one iteration, compiled once:
  1. step the `num_envs` envs `unroll_length` times with the stochastic actor
     (uniformly random actions while the buffer holds fewer than
     `min_replay_size` transitions); its Gaussian noise is white, or with
     `noise_correlation` > 0 carried over from each env's step before, so that
     a push lasts long enough to pump energy into a swing,
  2. write those transitions into the replay ring buffer and fold their
     observations into the running normalizer (of a dict observation, both
     keep only the entries the actor and the critics read),
  3. `grad_updates_per_step` gradient steps per batched env step, each on
     `batch_size` transitions drawn from the buffer: the twin critics regress
     on the soft Bellman target of the target critics, the actor maximizes
     min Q - alpha log pi (reparameterized), the temperature alpha moves the
     policy's entropy towards `target_entropy`, and the target critics follow
     the critics by Polyak averaging. Each of these is a small pure function
     (soft_bellman_target, critic_loss, actor_loss, temperature_loss, polyak).

Transitions store termination and truncation apart: the target bootstraps
through a time-limit cut (on the true successor observation, `final_obs`) and
not through a terminal state. Knob names follow brax's SAC where one exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import normalize, replay
from jaxrl.algos import actor, rollout


@dataclasses.dataclass(frozen=True)
class Config:
    num_envs: int = 128  # parallel training envs
    unroll_length: int = 1  # env steps per env per iteration
    grad_updates_per_step: int = 1  # gradient steps per step of the batched env
    batch_size: int = 256  # transitions per gradient step
    replay_capacity: int = 1_000_000  # transitions kept (oldest overwritten) in rows of num_envs; must fit
    min_replay_size: int = 10_000  # transitions of uniformly random actions before learning starts
    learning_rate: float = 3e-4  # Adam step size of actor, critics and temperature
    discounting: float = 0.99  # gamma
    tau: float = 0.005  # Polyak rate of the target critics
    reward_scaling: float = 1.0  # rewards are multiplied by this in the critic target
    init_alpha: float = 1.0  # starting entropy temperature
    noise_correlation: float = 0.0  # of the actor's sampling noise from one env step to the next; 0: white
    target_entropy: float | None = None  # entropy the temperature steers towards; None: -action_size
    normalize_observations: bool = True  # running mean/std normalization of observations
    policy_hidden_layer_sizes: tuple[int, ...] = (256, 256)
    q_hidden_layer_sizes: tuple[int, ...] = (256, 256)
    activation: str = "relu"  # swish, relu, tanh or elu
    policy_obs_key: str = "state"  # with dict observations: what the actor sees
    value_obs_key: str = "privileged_state"  # with dict observations: what the critics see


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    for name in ("num_envs", "unroll_length", "grad_updates_per_step", "batch_size", "replay_capacity"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.replay_capacity < steps_per_iteration(cfg):
        raise ValueError(f"replay_capacity = {cfg.replay_capacity:,} cannot hold one iteration's "
                         f"num_envs * unroll_length = {steps_per_iteration(cfg):,} transitions")
    kept = cfg.replay_capacity // cfg.num_envs * cfg.num_envs  # whole rows of num_envs (jaxrl.replay)
    if cfg.min_replay_size > kept:
        raise ValueError(f"min_replay_size = {cfg.min_replay_size:,} exceeds the {kept:,} transitions "
                         f"replay_capacity = {cfg.replay_capacity:,} keeps in rows of num_envs = "
                         f"{cfg.num_envs}: learning would never start")
    if not 0.0 < cfg.tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {cfg.tau}")
    if not 0.0 <= cfg.noise_correlation < 1.0:
        raise ValueError(f"noise_correlation must be in [0, 1), got {cfg.noise_correlation}")
    if cfg.init_alpha <= 0.0:
        raise ValueError(f"init_alpha must be > 0, got {cfg.init_alpha}")


def steps_per_iteration(cfg: Config) -> int:
    return cfg.num_envs * cfg.unroll_length


@struct.dataclass
class Networks:
    policy: Any
    q: Any  # the twin critics' parameters, stacked on a leading axis of 2
    target_q: Any
    log_alpha: jax.Array


@struct.dataclass
class OptStates:
    policy: Any
    q: Any
    log_alpha: Any


@struct.dataclass
class TrainState:
    params: Networks
    opt_state: OptStates
    obs_stats: normalize.RunningStats
    # transitions: obs, action, reward, terminated, truncated, next_obs; of a dict observation only
    # the entries the actor and the critics read (actor.observed), as in obs_stats
    replay: replay.ReplayBuffer
    env_state: Any  # envs_mjx State with a leading [num_envs] axis
    policy_memory: jax.Array  # each training env's sampling noise [num_envs, action_size] (correlated_noise)
    key: jax.Array
    iteration: jax.Array  # int32 scalar
    policy_spec: actor.NetworkSpec = struct.field(pytree_node=False)
    q_spec: actor.NetworkSpec = struct.field(pytree_node=False)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.adam(cfg.learning_rate)


def q_values(q_params, spec: actor.NetworkSpec, obs_stats, obs, action) -> jax.Array:
    """Both critics' Q(obs, action) at raw observations: [2, ...batch]."""
    x = jnp.concatenate([actor.normalized_input(obs_stats, obs, spec.obs_key), action], axis=-1)
    return jax.vmap(lambda params: spec.network().apply(params, x)[..., 0])(q_params)


def init(key: jax.Array, env, cfg: Config) -> TrainState:
    """Networks, optimizers, an empty replay buffer and `num_envs` reset envs; `env` is batched."""
    key_policy, key_q, key_env, key_state = jax.random.split(key, 4)
    # jit: run eagerly, MJX's reset dispatches op by op (tens of seconds).
    env_state = jax.jit(env.reset)(jax.random.split(key_env, cfg.num_envs))
    one_obs = jax.tree.map(lambda x: x[0], env_state.obs)
    no_action = jnp.zeros(env.action_size)
    policy_spec = actor.policy_spec(cfg.policy_hidden_layer_sizes, cfg.activation, cfg.policy_obs_key,
                                    env.action_size)
    q_spec = actor.NetworkSpec(tuple(cfg.q_hidden_layer_sizes) + (1,), cfg.activation,
                               actor.critic_obs_key(one_obs, cfg.policy_obs_key, cfg.value_obs_key))
    one_obs = actor.observed(one_obs, policy_spec, q_spec)  # what the buffer and the normalizer hold
    q_input = jnp.concatenate([actor.select(one_obs, q_spec.obs_key), no_action])
    q_params = jax.vmap(lambda k: q_spec.network().init(k, q_input))(jax.random.split(key_q, 2))
    params = Networks(
        policy=policy_spec.network().init(key_policy, actor.select(one_obs, policy_spec.obs_key)),
        # The targets get their own buffers, so the state can be donated to a jitted call.
        q=q_params, target_q=jax.tree.map(jnp.copy, q_params),
        log_alpha=jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32)))
    optimizer = _optimizer(cfg)
    example = {"obs": one_obs, "action": no_action, "reward": jnp.zeros(()), "terminated": jnp.zeros(()),
               "truncated": jnp.zeros(()), "next_obs": one_obs}
    replay.check_fits(example, cfg.replay_capacity, "algo.replay_capacity")
    return TrainState(
        params=params,
        opt_state=OptStates(policy=optimizer.init(params.policy), q=optimizer.init(params.q),
                            log_alpha=optimizer.init(params.log_alpha)),
        obs_stats=normalize.from_batch(actor.observed(env_state.obs, policy_spec, q_spec)),
        replay=replay.init(example, cfg.replay_capacity, cfg.num_envs),
        env_state=env_state,
        policy_memory=jnp.zeros((cfg.num_envs, env.action_size)),
        key=key_state,
        iteration=jnp.zeros((), jnp.int32),
        policy_spec=policy_spec,
        q_spec=q_spec,
    )


policy_params = actor.policy_params
policy = actor.policy
export_policy = actor.export_policy


def _target_entropy(cfg: Config, action_size: int) -> float:
    return -float(action_size) if cfg.target_entropy is None else cfg.target_entropy


def soft_bellman_target(reward, terminated, next_q, next_log_prob, alpha, cfg: Config) -> jax.Array:
    """reward_scaling * r + gamma * (1 - terminated) * (min_i next_q[i] - alpha * next_log_prob).

    next_q [2, N]: the target critics at the successor and an action the policy
    sampled there, whose log-probability is next_log_prob [N]. Only termination
    cuts the bootstrap: a truncated episode's successor goes on.
    """
    next_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return cfg.reward_scaling * reward + cfg.discounting * (1.0 - terminated) * next_value


def critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Half the squared error of both critics' q [2, N] to the target [N], summed over the critics."""
    return 0.5 * jnp.sum(jnp.mean(jnp.square(q - target), axis=-1))


def actor_loss(alpha, log_prob: jax.Array, q: jax.Array) -> jax.Array:
    """mean(alpha * log pi - min_i q[i]) over actions the policy sampled (q [2, N], log_prob [N])."""
    return jnp.mean(alpha * log_prob - jnp.min(q, axis=0))


def temperature_loss(log_alpha, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """Descending it raises log_alpha while the policy's entropy (-log_prob) is below the target."""
    entropy_gap = jax.lax.stop_gradient(jnp.mean(log_prob) + target_entropy)
    return -log_alpha * entropy_gap


def polyak(q_params, target_q_params, tau: float):
    """The target critics moved a share tau of the way to the critics: tau * q + (1 - tau) * target."""
    return optax.incremental_update(q_params, target_q_params, tau)


def correlated_noise(previous: jax.Array, key: jax.Array, correlation: float) -> jax.Array:
    """Standard normal noise that keeps a share `correlation` of the step before's: an AR(1) process
    (Ornstein-Uhlenbeck in discrete time) whose every draw is N(0, 1) once it has run for about
    1 / (1 - correlation) steps from zero. correlation 0: white noise."""
    fresh = jax.random.normal(key, previous.shape, previous.dtype)
    return correlation * previous + jnp.sqrt(1.0 - correlation ** 2) * fresh


def _sampled(dist, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """An action drawn from `dist` and its log-probability."""
    pre_tanh = dist.sample_pre_tanh(key)
    log_prob = dist.log_prob_pre_tanh(pre_tanh)
    return jnp.tanh(pre_tanh), log_prob


def _gradient_step(params: Networks, opt_state: OptStates, batch: dict, key: jax.Array,
                   state: TrainState, cfg: Config):
    """One update of critics, actor, temperature and target critics on `batch` [N, ...]."""
    key_next, key_new = jax.random.split(key)
    obs_stats, optimizer = state.obs_stats, _optimizer(cfg)
    alpha = jnp.exp(params.log_alpha)

    def dist_at(policy_params, obs):
        return actor.distribution(policy_params, state.policy_spec, obs_stats, obs)

    def q_at(q_params, obs, action):
        return q_values(q_params, state.q_spec, obs_stats, obs, action)

    next_action, next_log_prob = _sampled(dist_at(params.policy, batch["next_obs"]), key_next)
    target = jax.lax.stop_gradient(soft_bellman_target(
        batch["reward"], batch["terminated"], q_at(params.target_q, batch["next_obs"], next_action),
        next_log_prob, alpha, cfg))

    def critic_objective(q_params):
        q = q_at(q_params, batch["obs"], batch["action"])
        return critic_loss(q, target), q

    (q_loss, q), q_grads = jax.value_and_grad(critic_objective, has_aux=True)(params.q)
    q_updates, q_opt_state = optimizer.update(q_grads, opt_state.q, params.q)
    q_params = optax.apply_updates(params.q, q_updates)

    def actor_objective(policy_params):  # against the critics just updated
        action, log_prob = _sampled(dist_at(policy_params, batch["obs"]), key_new)
        return actor_loss(alpha, log_prob, q_at(q_params, batch["obs"], action)), log_prob

    (policy_loss, log_prob), policy_grads = jax.value_and_grad(actor_objective, has_aux=True)(params.policy)
    policy_updates, policy_opt_state = optimizer.update(policy_grads, opt_state.policy, params.policy)

    alpha_loss, alpha_grad = jax.value_and_grad(temperature_loss)(
        params.log_alpha, log_prob, _target_entropy(cfg, batch["action"].shape[-1]))
    alpha_updates, alpha_opt_state = optimizer.update(alpha_grad, opt_state.log_alpha, params.log_alpha)

    new_params = Networks(
        policy=optax.apply_updates(params.policy, policy_updates),
        q=q_params,
        target_q=polyak(q_params, params.target_q, cfg.tau),
        log_alpha=optax.apply_updates(params.log_alpha, alpha_updates))
    metrics = {
        "loss/critic": q_loss,
        "loss/actor": policy_loss,
        "loss/alpha": alpha_loss,
        "alpha": alpha,
        "q_mean": jnp.mean(q),
        "entropy": -jnp.mean(log_prob),
        "grad_norm/critic": optax.tree.norm(q_grads),
        "grad_norm/actor": optax.tree.norm(policy_grads),
    }
    return new_params, OptStates(policy=policy_opt_state, q=q_opt_state, log_alpha=alpha_opt_state), metrics


def train_step(state: TrainState, env, cfg: Config) -> tuple[TrainState, dict]:
    """One SAC iteration; `env` is the batched training env. Pure."""
    key, key_rollout, key_updates = jax.random.split(state.key, 3)
    warming_up = state.replay.size < cfg.min_replay_size

    acting = policy_params(state)

    def act(obs, noise, key_step):  # noise: zeroed where an episode ended (rollout's memory contract)
        key_noise, key_uniform = jax.random.split(key_step)
        noise = correlated_noise(noise, key_noise, cfg.noise_correlation)
        dist = actor.distribution(acting.network, acting.spec, acting.obs_stats, obs)
        learned = jnp.tanh(dist.loc + dist.scale * noise)
        uniform = jax.random.uniform(key_uniform, learned.shape, minval=-1.0, maxval=1.0)
        return jnp.where(warming_up, uniform, learned), noise, {}

    env_state, noise, trajectory, episode_metrics = rollout.unroll_with_memory(
        env, state.env_state, state.policy_memory, act, key_rollout, cfg.unroll_length)

    def observed(obs):  # the buffer and the normalizer keep only what the actor and the critics read
        return actor.observed(obs, state.policy_spec, state.q_spec)

    transitions = {
        "obs": observed(trajectory.obs), "action": trajectory.action, "reward": trajectory.reward,
        "terminated": trajectory.done * (1.0 - trajectory.truncation), "truncated": trajectory.truncation,
        "next_obs": observed(trajectory.final_obs)}
    buffer = replay.insert(state.replay, transitions)
    obs_stats = state.obs_stats
    if cfg.normalize_observations:
        obs_stats = normalize.update(obs_stats, transitions["obs"], batch_ndim=2)
    learner = state.replace(obs_stats=obs_stats, replay=buffer)

    def update(carry, key_update):
        params, opt_state = carry
        key_sample, key_step = jax.random.split(key_update)
        batch = replay.sample(buffer, key_sample, cfg.batch_size)
        params, opt_state, metrics = _gradient_step(params, opt_state, batch, key_step, learner, cfg)
        return (params, opt_state), metrics

    def learn():
        keys = jax.random.split(key_updates, cfg.grad_updates_per_step * cfg.unroll_length)
        (params, opt_state), metrics = jax.lax.scan(update, (state.params, state.opt_state), keys)
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def wait():  # still collecting random transitions: the same outputs, unchanged
        shapes = jax.eval_shape(learn)[2]
        return state.params, state.opt_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    params, opt_state, metrics = jax.lax.cond(buffer.size >= cfg.min_replay_size, learn, wait)
    metrics.update(episode_metrics)
    metrics["replay_size"] = buffer.size.astype(jnp.float32)
    new_state = learner.replace(params=params, opt_state=opt_state, env_state=env_state,
                                policy_memory=noise, key=key,
                                iteration=state.iteration + 1)
    return new_state, metrics
