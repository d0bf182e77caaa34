"""Behavioural cloning: regress the demonstrator's action from the observation.

An offline learner (see jaxrl.algos): it never steps an env while training.
One `train_step` is one gradient step on a minibatch drawn uniformly from the
training episodes' samples (`jaxrl.data.demos`). Observations and actions are
standardized with statistics of the training samples, computed once when the
data is loaded and kept in the TrainState, so evaluation, checkpoints and
export apply the same ones.

Losses: "mse" on the standardized action, or "nll", the negative
log-likelihood of a diagonal Gaussian (the policy acts with its mean). The
augmentation `obs_noise` adds Gaussian noise to standardized observations in
training: it widens the states the policy has seen around the demonstrations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import normalize
from jaxrl.algos import offline
from jaxrl.data import demos as demo_data
from jaxrl.export import ExportError
from jaxrl.networks import MLP

OFFLINE = True
LOSSES = ("mse", "nll")
BEST_BY = offline.BEST_BY
STD_MIN = 1e-3  # a floor on the Gaussian's spread: the NLL of a collapsed std is unbounded below


@dataclasses.dataclass(frozen=True)
class Config(offline.DataConfig):  # data, data_filter, obs_keys, val_fraction, split_seed
    batch_size: int = 256  # samples per gradient step
    learning_rate: float = 1e-3  # Adam step size
    max_grad_norm: float = 1.0  # global gradient-norm clip
    hidden_layer_sizes: tuple[int, ...] = (256, 256)
    activation: str = "relu"  # swish, relu, tanh or elu
    loss: str = "mse"  # "mse" or "nll"
    obs_noise: float = 0.0  # std of the noise added to standardized observations in training; 0: none


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    offline.validate_data(cfg, "bc")
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.obs_noise < 0.0:
        raise ValueError(f"obs_noise must be >= 0, got {cfg.obs_noise}")


def steps_per_iteration(cfg: Config) -> int:
    return 1  # one gradient step


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """What it takes to rebuild the policy from its parameters (static, hashable)."""

    layer_sizes: tuple[int, ...]  # hidden sizes + the output size
    activation: str
    obs_keys: tuple[str, ...]  # entries of a dict observation the policy reads, flattened in this order
    obs_shapes: tuple[tuple[int, ...], ...]  # each entry's shape without batch axes
    gaussian: bool  # the network outputs a mean and a std per action ("nll")

    def network(self) -> MLP:
        return MLP(self.layer_sizes, self.activation)


@struct.dataclass
class PolicyParams:
    network: Any
    obs_stats: normalize.RunningStats  # of the flattened observation
    action_stats: normalize.RunningStats
    spec: PolicySpec = struct.field(pytree_node=False)


@struct.dataclass
class TrainState:
    params: Any  # the policy network's
    opt_state: Any
    obs_stats: normalize.RunningStats
    action_stats: normalize.RunningStats
    key: jax.Array
    iteration: jax.Array  # int32 scalar: gradient steps taken
    policy_spec: PolicySpec = struct.field(pytree_node=False)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))


load_data = offline.load_data
resolved_config = offline.resolved_config
abstract_data = offline.abstract_data


def _policy_spec(cfg: Config, env, action_size: int) -> PolicySpec:
    outputs = 2 * action_size if cfg.loss == "nll" else action_size
    return PolicySpec(tuple(cfg.hidden_layer_sizes) + (outputs,), cfg.activation, tuple(cfg.obs_keys),
                      offline.obs_shapes(cfg, env), cfg.loss == "nll")


def init(key: jax.Array, env, cfg: Config, demos: demo_data.DemoSet) -> TrainState:
    """The policy network and optimizer; the data's normalization statistics. `env` gives the spaces."""
    validate(cfg)
    key_network, key_state = jax.random.split(key)
    spec = _policy_spec(cfg, env, demos.actions.shape[-1])
    params = spec.network().init(key_network, jnp.zeros(demos.obs.shape[-1:]))
    return TrainState(params=params, opt_state=_optimizer(cfg).init(params), obs_stats=demos.obs_stats,
                      action_stats=demos.action_stats, key=key_state,
                      iteration=jnp.zeros((), jnp.int32), policy_spec=spec)


def policy_params(state: TrainState) -> PolicyParams:
    return PolicyParams(network=state.params, obs_stats=state.obs_stats, action_stats=state.action_stats,
                        spec=state.policy_spec)


def _split_output(output: jax.Array, gaussian: bool) -> tuple[jax.Array, jax.Array | None]:
    """(mean, std) in standardized action units; std None for a plain regression."""
    if not gaussian:
        return output, None
    mean, raw_std = jnp.split(output, 2, axis=-1)
    return mean, jnp.maximum(jax.nn.softplus(raw_std), STD_MIN)


def policy(params: PolicyParams, obs, key: jax.Array | None = None) -> jax.Array:
    """Actions in [-1, 1] for observations with any leading batch axes; a key samples the Gaussian."""
    spec = params.spec
    x = normalize.normalize(params.obs_stats, demo_data.flatten_obs(obs, spec.obs_keys, spec.obs_shapes))
    mean, std = _split_output(spec.network().apply(params.network, x), spec.gaussian)
    if key is not None and std is not None:
        mean = mean + std * jax.random.normal(key, mean.shape)
    return jnp.clip(normalize.denormalize(params.action_stats, mean), -1.0, 1.0)


def export_policy(params: PolicyParams):
    """Not available yet: `jaxrl export` checks a policy on the observations its checkpoint holds, and
    a bc checkpoint holds none (it never steps an env)."""
    raise ExportError("ONNX export of bc policies is not supported yet; evaluate them with `jaxrl eval`")


def _loss(network_params, spec: PolicySpec, obs: jax.Array, actions: jax.Array):
    """Mean loss of standardized (obs [B, D], actions [B, A]) and its parts."""
    mean, std = _split_output(spec.network().apply(network_params, obs), spec.gaussian)
    mse = jnp.mean(jnp.square(mean - actions))
    if std is None:
        return mse, {"action_mse": mse}
    nll = jnp.mean(jnp.sum(0.5 * jnp.square((actions - mean) / std) + jnp.log(std), axis=-1))
    return nll, {"action_mse": mse, "action_std": jnp.mean(std)}


def _standardized(state: TrainState, demos: demo_data.DemoSet, index: jax.Array):
    obs, actions, _ = demo_data.windows(demos, index, obs_history=1, action_horizon=1)
    return (normalize.normalize(state.obs_stats, obs[:, 0]),
            normalize.normalize(state.action_stats, actions[:, 0]))


def train_step(state: TrainState, env, cfg: Config, demos: demo_data.DemoSet) -> tuple[TrainState, dict]:
    """One gradient step on `batch_size` samples of the training episodes. Pure."""
    key, key_batch, key_noise = jax.random.split(state.key, 3)
    picks = jax.random.randint(key_batch, (cfg.batch_size,), 0, demos.train_index.shape[0])
    obs, actions = _standardized(state, demos, demos.train_index[picks])
    if cfg.obs_noise > 0.0:
        obs = obs + cfg.obs_noise * jax.random.normal(key_noise, obs.shape)
    (loss, parts), grads = jax.value_and_grad(_loss, has_aux=True)(state.params, state.policy_spec, obs,
                                                                   actions)
    updates, opt_state = _optimizer(cfg).update(grads, state.opt_state, state.params)
    metrics = {"loss/bc": loss, "grad_norm": optax.tree.norm(grads),
               **{f"loss/{k}": v for k, v in parts.items()}}
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state, key=key,
                         iteration=state.iteration + 1), metrics


def validation_metrics(state: TrainState, cfg: Config, demos: demo_data.DemoSet) -> dict:
    """The loss on every sample of the held-out episodes (none when nothing is held out)."""
    if demos.val_index.shape[0] == 0:
        return {}
    obs, actions = _standardized(state, demos, demos.val_index)
    loss, parts = _loss(state.params, state.policy_spec, obs, actions)
    return {"val/loss": loss, **{f"val/{k}": v for k, v in parts.items()}}
