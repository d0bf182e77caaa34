"""Proximal Policy Optimization, pure-functional.

One `train_step` is one iteration, compiled once:
  1. roll out `unroll_length` steps of `num_envs` envs (lax.scan),
  2. GAE advantages, bootstrapping truncated episodes on their final observation,
  3. `num_updates_per_batch` epochs over `num_minibatches` shuffled minibatches
     of the clipped-surrogate + value + entropy loss,
  4. fold the rollout's observations into the running normalizer.

Knob names follow brax/Playground PPO so recipes translate; brax's
`batch_size * num_minibatches` corresponds to our `num_envs` (one unroll per
env per iteration).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import normalize
from jaxrl.algos import actor, rollout


@dataclasses.dataclass(frozen=True)
class Config:
    num_envs: int = 256  # parallel training envs: the unit of parallelism
    unroll_length: int = 20  # env steps per env per iteration
    num_minibatches: int = 8  # minibatches the iteration's num_envs * unroll_length steps split into
    num_updates_per_batch: int = 4  # epochs over the iteration's data
    learning_rate: float = 3e-4  # Adam step size
    entropy_cost: float = 1e-2  # weight of the entropy bonus
    discounting: float = 0.97  # gamma
    gae_lambda: float = 0.95  # GAE's bias/variance trade-off
    clipping_epsilon: float = 0.2  # PPO ratio clip
    # 1.0, not brax's default 0.5: the RSL-RL weighting, which the recipes here were tuned with.
    vf_loss_coefficient: float = 1.0  # value loss = 0.5 * this * mean squared error (brax's convention)
    max_grad_norm: float = 1.0  # global gradient-norm clip
    reward_scaling: float = 1.0  # rewards are multiplied by this before GAE
    normalize_observations: bool = True  # running mean/std normalization of observations
    normalize_advantage: bool = True  # per-minibatch advantage standardization
    policy_hidden_layer_sizes: tuple[int, ...] = (32, 32, 32, 32)
    value_hidden_layer_sizes: tuple[int, ...] = (256, 256, 256, 256, 256)
    activation: str = "swish"  # swish, relu, tanh or elu
    policy_obs_key: str = "state"  # with dict observations: what the actor sees
    value_obs_key: str = "privileged_state"  # with dict observations: what the critic sees


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    if not cfg.learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {cfg.learning_rate}")
    steps = cfg.num_envs * cfg.unroll_length
    if steps % cfg.num_minibatches:
        raise ValueError(
            f"num_envs * unroll_length = {steps} must divide into num_minibatches = "
            f"{cfg.num_minibatches} equal minibatches")
    for name in ("num_envs", "unroll_length", "num_minibatches", "num_updates_per_batch"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")


def steps_per_iteration(cfg: Config) -> int:
    return cfg.num_envs * cfg.unroll_length


@struct.dataclass
class Networks:
    policy: Any
    value: Any


@struct.dataclass
class TrainState:
    params: Networks
    opt_state: Any
    obs_stats: normalize.RunningStats  # of what the networks read (actor.observed)
    env_state: Any  # envs_mjx State with a leading [num_envs] axis
    key: jax.Array
    iteration: jax.Array  # int32 scalar
    policy_spec: actor.NetworkSpec = struct.field(pytree_node=False)
    value_spec: actor.NetworkSpec = struct.field(pytree_node=False)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


def init(key: jax.Array, env, cfg: Config) -> TrainState:
    """Networks, optimizer and `num_envs` reset envs; `env` is batched (wrap_for_training)."""
    key_policy, key_value, key_env, key_state = jax.random.split(key, 4)
    # jit: run eagerly, MJX's reset dispatches op by op (tens of seconds).
    env_state = jax.jit(env.reset)(jax.random.split(key_env, cfg.num_envs))
    one_obs = jax.tree.map(lambda x: x[0], env_state.obs)
    policy_spec = actor.policy_spec(cfg.policy_hidden_layer_sizes, cfg.activation, cfg.policy_obs_key,
                                    env.action_size)
    value_spec = actor.NetworkSpec(tuple(cfg.value_hidden_layer_sizes) + (1,), cfg.activation,
                                   actor.critic_obs_key(one_obs, cfg.policy_obs_key, cfg.value_obs_key))
    one_obs = actor.observed(one_obs, policy_spec, value_spec)  # what the normalizer covers
    params = Networks(
        policy=policy_spec.network().init(key_policy, actor.select(one_obs, policy_spec.obs_key)),
        value=value_spec.network().init(key_value, actor.select(one_obs, value_spec.obs_key)),
    )
    return TrainState(
        params=params,
        opt_state=_optimizer(cfg).init(params),
        obs_stats=normalize.from_batch(actor.observed(env_state.obs, policy_spec, value_spec)),
        env_state=env_state,
        key=key_state,
        iteration=jnp.zeros((), jnp.int32),
        policy_spec=policy_spec,
        value_spec=value_spec,
    )


policy_params = actor.policy_params
policy = actor.policy
export_policy = actor.export_policy


def _value(network_params, spec: actor.NetworkSpec, obs_stats, obs) -> jax.Array:
    return spec.network().apply(network_params, actor.normalized_input(obs_stats, obs, spec.obs_key))[..., 0]


def compute_gae(rewards, values, next_values, terminations, dones, discounting, gae_lambda):
    """Generalized advantage estimation over [T, B] arrays.

    next_values[t] is V of the true successor of step t (the final observation
    when the episode ended there). `terminations` zero the bootstrap (the env
    ended the episode); `dones` (terminations and truncations) cut the
    advantage recursion between episodes.
    Returns (advantages, value targets), both [T, B].
    """
    deltas = rewards + discounting * (1.0 - terminations) * next_values - values

    def backward(next_advantage, step):
        delta, done = step
        advantage = delta + discounting * gae_lambda * (1.0 - done) * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, dones), reverse=True)
    return advantages, advantages + values


def _rollout(state: TrainState, env, cfg: Config, key: jax.Array):
    """`unroll_length` steps of every env with the stochastic policy."""

    def act(obs, key_step):
        dist = actor.distribution(state.params.policy, state.policy_spec, state.obs_stats, obs)
        pre_tanh = dist.sample_pre_tanh(key_step)
        return jnp.tanh(pre_tanh), {"pre_tanh": pre_tanh, "log_prob": dist.log_prob_pre_tanh(pre_tanh)}

    return rollout.unroll(env, state.env_state, act, key, cfg.unroll_length)


def _loss(params: Networks, batch: dict, key: jax.Array, state: TrainState, cfg: Config):
    """Clipped surrogate + value + entropy loss of one minibatch [N, ...]."""
    dist = actor.distribution(params.policy, state.policy_spec, state.obs_stats, batch["obs"])
    log_prob = dist.log_prob_pre_tanh(batch["pre_tanh"])
    log_ratio = log_prob - batch["log_prob"]
    ratio = jnp.exp(log_ratio)
    advantages = batch["advantages"]
    if cfg.normalize_advantage:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped = jnp.clip(ratio, 1.0 - cfg.clipping_epsilon, 1.0 + cfg.clipping_epsilon)
    policy_loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))

    values = _value(params.value, state.value_spec, state.obs_stats, batch["obs"])
    value_loss = 0.5 * cfg.vf_loss_coefficient * jnp.mean(jnp.square(values - batch["returns"]))
    entropy = jnp.mean(dist.entropy(key))
    total = policy_loss + value_loss - cfg.entropy_cost * entropy
    return total, {
        "loss/total": total,
        "loss/policy": policy_loss,
        "loss/value": value_loss,
        "loss/entropy": entropy,
        "loss/approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "loss/clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > cfg.clipping_epsilon),
    }


def train_step(state: TrainState, env, cfg: Config) -> tuple[TrainState, dict]:
    """One PPO iteration; `env` is the batched training env. Pure."""
    key, key_rollout, key_epochs = jax.random.split(state.key, 3)
    env_state, trajectory, episode_metrics = _rollout(state, env, cfg, key_rollout)

    value_of = functools.partial(_value, state.params.value, state.value_spec, state.obs_stats)
    values = value_of(trajectory.obs)  # [T, B]
    # The successor of step t is obs[t + 1] (the state after the rollout for the
    # last t), except where an episode was truncated: there obs[t + 1] already
    # belongs to the next episode and the bootstrap needs V(final_obs[t]).
    # That second critic pass runs only when some episode was truncated.
    shifted = jnp.concatenate([values[1:], value_of(env_state.obs)[None]])
    next_values = jax.lax.cond(
        jnp.any(trajectory.truncation > 0),
        lambda: jnp.where(trajectory.truncation > 0, value_of(trajectory.final_obs), shifted),
        lambda: shifted)
    terminations = trajectory.done * (1.0 - trajectory.truncation)
    advantages, returns = compute_gae(
        trajectory.reward * cfg.reward_scaling, values, next_values, terminations,
        trajectory.done, cfg.discounting, cfg.gae_lambda)

    # Flatten [T, B] into N samples; minibatches are drawn across time and envs.
    observed = actor.observed(trajectory.obs, state.policy_spec, state.value_spec)
    data = {"obs": observed, "pre_tanh": trajectory.extras["pre_tanh"],
            "log_prob": trajectory.extras["log_prob"],
            "advantages": advantages, "returns": returns}
    data = rollout.merge_time_and_envs(data)
    num_samples = steps_per_iteration(cfg)
    optimizer = _optimizer(cfg)
    grad_fn = jax.grad(_loss, has_aux=True)

    def minibatch_step(carry, xs):
        params, opt_state = carry
        batch, key_entropy = xs
        grads, metrics = grad_fn(params, batch, key_entropy, state, cfg)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return (optax.apply_updates(params, updates), opt_state), metrics

    def epoch(carry, key_epoch):
        key_perm, key_minibatches = jax.random.split(key_epoch)
        order = jax.random.permutation(key_perm, num_samples)
        minibatches = jax.tree.map(
            lambda x: x[order].reshape((cfg.num_minibatches, -1) + x.shape[1:]), data)
        keys = jax.random.split(key_minibatches, cfg.num_minibatches)
        return jax.lax.scan(minibatch_step, carry, (minibatches, keys))

    (params, opt_state), loss_metrics = jax.lax.scan(
        epoch, (state.params, state.opt_state),
        jax.random.split(key_epochs, cfg.num_updates_per_batch))

    # The normalizer absorbs this rollout only after the updates, so the
    # log-probabilities recorded while acting match those in the loss.
    obs_stats = state.obs_stats
    if cfg.normalize_observations:
        obs_stats = normalize.update(obs_stats, observed, batch_ndim=2)

    metrics = jax.tree.map(jnp.mean, loss_metrics)
    metrics.update(episode_metrics)
    new_state = state.replace(params=params, opt_state=opt_state, obs_stats=obs_stats,
                              env_state=env_state, key=key, iteration=state.iteration + 1)
    return new_state, metrics
