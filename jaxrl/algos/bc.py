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
`dropout` drops hidden units of the MLP in training.

Observation history: the network reads the last `obs_history` observations,
the current one last (before an episode's start its first observation repeats,
as `demos.windows` cuts them): concatenated into the MLP, or with `lstm_size`
> 0 through an LSTM run over the window from a zero state, whose last output
the MLP reads. The window restarts at every step, so training on windows and
acting are the same computation.

Action chunking (ACT, Zhao et al. 2023): the network predicts the actions of
the next `action_horizon` steps, from the current one; steps past an
episode's end are left out of the loss. At execution every step predicts a new
chunk and acts with the temporal ensemble: the mean of all predictions the
last `action_horizon` chunks made for this step, weighted exp(-m i) with i = 0
the oldest (m = `ensemble_decay`). `act` carries the window and the ensemble
between steps (`PolicyMemory`); `policy` is the memoryless form, for a single
observation: the window is that observation repeated and the action the
chunk's first. The defaults (one observation, one action) are a plain MLP.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl import normalize
from jaxrl.algos import offline
from jaxrl.data import demos as demo_data
from jaxrl.export import state_vector
from jaxrl.networks import MLP, RecurrentMLP

OFFLINE = True
LOSSES = ("mse", "nll")
BEST_BY = offline.BEST_BY
STD_MIN = 1e-3  # a floor on the Gaussian's spread: the NLL of a collapsed std is unbounded below
MAX_LOG_WEIGHT = 80.0  # |ensemble_decay| * (action_horizon - 1) stays below float32's exp overflow (88)


@dataclasses.dataclass(frozen=True)
class Config(offline.DataConfig):  # data, data_filter, obs_keys, val_fraction, split_seed
    batch_size: int = 256  # samples per gradient step
    learning_rate: float = 1e-3  # Adam step size
    max_grad_norm: float = 1.0  # global gradient-norm clip
    hidden_layer_sizes: tuple[int, ...] = (256, 256)
    activation: str = "relu"  # swish, relu, tanh or elu
    loss: str = "mse"  # "mse" or "nll"
    obs_noise: float = 0.0  # std of the noise added to standardized observations in training; 0: none
    dropout: float = 0.0  # share of each hidden layer's units dropped in training; 0: none
    obs_history: int = 1  # observations the policy reads, the current one last
    lstm_size: int = 0  # > 0: an LSTM of this size reads the history, the MLP its last output; 0: no LSTM
    action_horizon: int = 1  # actions predicted per step, the current one first (ACT's chunk); 1: none
    ensemble_decay: float = 0.01  # ACT's m: predictions for a step weigh exp(-m i), i = 0 the oldest


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    offline.validate_data(cfg, "bc")
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.obs_noise < 0.0:
        raise ValueError(f"obs_noise must be >= 0, got {cfg.obs_noise}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.obs_history < 1 or cfg.action_horizon < 1 or cfg.lstm_size < 0:
        raise ValueError(f"obs_history and action_horizon must be >= 1 and lstm_size >= 0, got "
                         f"{cfg.obs_history}, {cfg.action_horizon}, {cfg.lstm_size}")
    if abs(cfg.ensemble_decay) * (cfg.action_horizon - 1) > MAX_LOG_WEIGHT:
        raise ValueError(f"|ensemble_decay| * (action_horizon - 1) must be <= {MAX_LOG_WEIGHT:g} (the "
                         f"ensemble's weights would overflow), got {cfg.ensemble_decay} and "
                         f"{cfg.action_horizon}")


def steps_per_iteration(cfg: Config) -> int:
    return 1  # one gradient step


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """What it takes to rebuild the policy from its parameters (static, hashable)."""

    layer_sizes: tuple[int, ...]  # hidden sizes + the output size (action_horizon rows of outputs)
    activation: str
    obs_keys: tuple[str, ...]  # entries of a dict observation the policy reads, flattened in this order
    obs_shapes: tuple[tuple[int, ...], ...]  # each entry's shape without batch axes
    gaussian: bool  # the network outputs a mean and a std per action ("nll")
    state_layout: tuple[tuple[str, int], ...] = ()  # the env's policy vector (what export reads)
    dropout: float = 0.0
    obs_history: int = 1
    lstm_size: int = 0
    action_horizon: int = 1
    ensemble_decay: float = 0.01

    def network(self) -> MLP | RecurrentMLP:
        """A network of `network_input(window)`; its output [..., layer_sizes[-1]]."""
        if self.lstm_size:
            return RecurrentMLP(self.lstm_size, self.layer_sizes, self.activation, self.dropout)
        return MLP(self.layer_sizes, self.activation, self.dropout)

    def network_input(self, window: jax.Array) -> jax.Array:
        """What the network reads of observation windows [..., H, D]: the LSTM the window, the MLP it
        concatenated ([..., H * D])."""
        return window if self.lstm_size else window.reshape(*window.shape[:-2], -1)


@struct.dataclass
class PolicyParams:
    network: Any
    obs_stats: normalize.RunningStats  # of the flattened observation
    action_stats: normalize.RunningStats
    spec: PolicySpec = struct.field(pytree_node=False)


@struct.dataclass
class PolicyMemory:
    """What `act` carries between steps, per env: the window's past and the ensemble's running sums.

    A part the settings do not need is None (no empty arrays: they would not export to ONNX).
    """

    history: jax.Array | None = None  # [B, H - 1, D] standardized observations before the current one
    sums: jax.Array | None = None  # [B, K - 1, A] per coming step, the weighted sum of its predictions so far
    weights: jax.Array | None = None  # [B, K - 1] the sum of those predictions' weights


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
    return PolicySpec(
        tuple(cfg.hidden_layer_sizes) + (cfg.action_horizon * outputs,), cfg.activation, tuple(cfg.obs_keys),
        offline.obs_shapes(cfg, env), cfg.loss == "nll",
        state_layout=state_vector.layout_of(env),
        dropout=cfg.dropout, obs_history=cfg.obs_history, lstm_size=cfg.lstm_size,
        action_horizon=cfg.action_horizon, ensemble_decay=cfg.ensemble_decay)


def init(key: jax.Array, env, cfg: Config, demos: demo_data.DemoSet) -> TrainState:
    """The policy network and optimizer; the data's normalization statistics. `env` gives the spaces."""
    key_network, key_state = jax.random.split(key)
    spec = _policy_spec(cfg, env, demos.actions.shape[-1])
    window = jnp.zeros((1, cfg.obs_history, demos.obs.shape[-1]))
    params = spec.network().init(key_network, spec.network_input(window))
    return TrainState(params=params, opt_state=_optimizer(cfg).init(params), obs_stats=demos.obs_stats,
                      action_stats=demos.action_stats, key=key_state,
                      iteration=jnp.zeros((), jnp.int32), policy_spec=spec)


def policy_params(state: TrainState) -> PolicyParams:
    return PolicyParams(network=state.params, obs_stats=state.obs_stats, action_stats=state.action_stats,
                        spec=state.policy_spec)


# --- acting -------------------------------------------------------------------------------------------

def _predict(network_params, spec: PolicySpec, window: jax.Array, key_dropout: jax.Array | None = None):
    """(mean, std) [..., action_horizon, A] in standardized action units, of standardized observation
    windows [..., H, D]; std None for a plain regression. A key turns dropout on (training)."""
    train = key_dropout is not None and spec.dropout > 0.0
    output = spec.network().apply(network_params, spec.network_input(window), deterministic=not train,
                                  rngs={"dropout": key_dropout} if train else None)
    output = output.reshape(*output.shape[:-1], spec.action_horizon, -1)
    if not spec.gaussian:
        return output, None
    mean, raw_std = jnp.split(output, 2, axis=-1)
    return mean, jnp.maximum(jax.nn.softplus(raw_std), STD_MIN)


def _to_action(params: PolicyParams, standardized: jax.Array) -> jax.Array:
    return jnp.clip(normalize.denormalize(params.action_stats, standardized), -1.0, 1.0)


def ensemble(sums: jax.Array, weights: jax.Array, chunk: jax.Array, decay: float):
    """One step of ACT's temporal ensembling: (action [..., A], sums, weights) after the chunk [..., K, A]
    predicted at this step (its row k for k steps ahead).

    ACT acts at step t with the mean of the predictions for t of the chunks of steps s = t-n+1..t
    (n <= K, as many as were made), weighted exp(-m i) with i = 0 the oldest. Normalized, those weights
    are proportional to exp(m (t - s)), and t - s is the row the prediction has in its chunk: each
    prediction's weight is fixed when it is made. So running sums per coming step, `sums` [..., K-1, A]
    of weighted predictions and `weights` [..., K-1] of their weights (zeros at an episode's start),
    shifted by one every step, give ACT's mean exactly in O(K) memory.
    """
    horizon = chunk.shape[-2]
    row_weights = jnp.asarray(np.exp(decay * np.arange(horizon)), chunk.dtype)  # a constant of the graph
    sums = jnp.concatenate([sums, jnp.zeros_like(chunk[..., :1, :])], axis=-2) + row_weights[:, None] * chunk
    weights = jnp.concatenate([weights, jnp.zeros_like(chunk[..., :1, 0])], axis=-1) + row_weights
    return sums[..., 0, :] / weights[..., :1], sums[..., 1:, :], weights[..., 1:]


def _act_standardized(params: PolicyParams, latest: jax.Array,
                      memory: PolicyMemory) -> tuple[jax.Array, PolicyMemory]:
    """(actions [B, A] in [-1, 1], memory) given the standardized observations latest [B, D]."""
    spec = params.spec
    window = latest[:, None]
    if spec.obs_history > 1:
        window = jnp.concatenate([memory.history, window], axis=1)
        memory = memory.replace(history=window[:, 1:])
    chunk, _ = _predict(params.network, spec, window)
    if spec.action_horizon == 1:
        return _to_action(params, chunk[:, 0]), memory
    action, sums, weights = ensemble(memory.sums, memory.weights, chunk, spec.ensemble_decay)
    return _to_action(params, action), memory.replace(sums=sums, weights=weights)


def _memory_parts(params: PolicyParams) -> dict[str, tuple[int, ...]]:
    """The shape per env of each part of PolicyMemory the settings use; {} for a plain MLP."""
    spec = params.spec
    obs_size, action_size = params.obs_stats.mean.shape[-1], params.action_stats.mean.shape[-1]
    shapes = {"history": (spec.obs_history - 1, obs_size), "sums": (spec.action_horizon - 1, action_size),
              "weights": (spec.action_horizon - 1,)}
    return {name: shape for name, shape in shapes.items() if shape[0] > 0}


def _memory_at_start(params: PolicyParams, first: jax.Array) -> PolicyMemory:
    """The memory before an episode's first step, of its standardized observations `first` [B, D]: the
    history that observation repeated (as `windows` repeats it before an episode's start), the ensemble
    empty."""
    parts = _memory_parts(params)
    zeros = {name: jnp.zeros((first.shape[0], *shape), first.dtype) for name, shape in parts.items()}
    if "history" in parts:
        zeros["history"] = jnp.repeat(first[:, None], params.spec.obs_history - 1, axis=1)
    return PolicyMemory(**zeros)


def initial_memory(params: PolicyParams, obs) -> PolicyMemory:
    """The memory at an episode's start, for observations [B, ...] of its first step."""
    return _memory_at_start(params, offline.standardized_obs(params, obs))


def act(params: PolicyParams, obs, memory: PolicyMemory,
        key: jax.Array | None = None) -> tuple[jax.Array, PolicyMemory]:
    """(actions [B, A] in [-1, 1], memory) for observations [B, ...]: a new chunk of the window, and the
    temporal ensemble of this step's predictions. Deterministic (the Gaussian's mean): `key` is unused."""
    return _act_standardized(params, offline.standardized_obs(params, obs), memory)


def _memoryless(params: PolicyParams, latest: jax.Array, key: jax.Array | None = None) -> jax.Array:
    spec = params.spec
    window = jnp.repeat(latest[..., None, :], spec.obs_history, axis=-2)
    mean, std = _predict(params.network, spec, window)
    mean = mean[..., 0, :]
    if key is not None and std is not None:
        mean = mean + std[..., 0, :] * jax.random.normal(key, mean.shape)
    return _to_action(params, mean)


def policy(params: PolicyParams, obs, key: jax.Array | None = None) -> jax.Array:
    """Actions in [-1, 1] for observations with any leading batch axes, without memory: the window is the
    observation repeated, the action the chunk's first. A key samples the Gaussian. Evaluation, videos
    and collection run `act`, the faithful policy (jaxrl.evaluation.policy_with_memory); this one is the
    policy of observations alone (stateless settings export it)."""
    return _memoryless(params, offline.standardized_obs(params, obs), key)


# --- export -------------------------------------------------------------------------------------------

def export_memory_size(params: PolicyParams) -> int:
    """Floats of memory per env the exported policy carries; 0: stateless (one observation, one action).

    The vector: a flag that the episode has started, the history [(H - 1) * D], the ensemble's sums
    [(K - 1) * A] and weights [K - 1].
    """
    parts = _memory_parts(params)
    return 1 + sum(math.prod(shape) for shape in parts.values()) if parts else 0


def export_policy(params: PolicyParams) -> Callable:
    """The deterministic policy as a function of the env's policy vector (`state_vector`).

    Stateless (export_memory_size 0): fn(x[B, n]) -> action[B, a], `policy`. Otherwise
    fn(x[B, n], memory[B, m]) -> (action[B, a], memory[B, m]), `act`, with memory all zeros at an
    episode's start (its first entry is then 0, and the history is filled with that first
    observation). Actions in [-1, 1]; normalization inside.
    """
    spec = params.spec
    state_vector.check_readable(spec.obs_keys, spec.state_layout)

    used = _memory_parts(params)  # after the started flag, each of these flattened, in this order
    if not used:
        return lambda x: _memoryless(params, offline.standardized_policy_vector(params, x))

    def unpacked(memory) -> PolicyMemory:
        ends = list(itertools.accumulate(math.prod(shape) for shape in used.values()))
        parts = jnp.split(memory[:, 1:], ends[:-1], axis=-1)
        return PolicyMemory(**{name: part.reshape(memory.shape[0], *shape)
                               for (name, shape), part in zip(used.items(), parts, strict=True)})

    def act_flat(x, memory):
        latest = offline.standardized_policy_vector(params, x)
        started = memory[:, :1] > 0.5  # zeros: this is an episode's first step

        def kept(past, at_start):
            return jnp.where(started.reshape(started.shape[:1] + (1,) * (past.ndim - 1)), past, at_start)

        memory = jax.tree.map(kept, unpacked(memory), _memory_at_start(params, latest))
        action, memory = _act_standardized(params, latest, memory)
        parts = [getattr(memory, name).reshape(x.shape[0], math.prod(shape)) for name, shape in used.items()]
        return action, jnp.concatenate([jnp.ones_like(started, x.dtype), *parts], axis=-1)

    return act_flat


# --- learning -----------------------------------------------------------------------------------------

def _loss(network_params, spec: PolicySpec, window: jax.Array, chunks: jax.Array, valid: jax.Array,
          key_dropout: jax.Array | None = None):
    """Loss of standardized observation windows [B, H, D] and action chunks [B, K, A], over the chunk
    rows `valid` [B, K] (those within the episode), and its parts. A key: dropout on."""
    mean, std = _predict(network_params, spec, window, key_dropout)
    mask = valid[..., None].astype(mean.dtype)
    rows = jnp.sum(mask)  # >= B: a chunk's first row is always valid
    mse = jnp.sum(mask * jnp.square(mean - chunks)) / (rows * mean.shape[-1])
    if std is None:
        return mse, {"action_mse": mse}
    nll = jnp.sum(mask * (0.5 * jnp.square((chunks - mean) / std) + jnp.log(std))) / rows
    return nll, {"action_mse": mse, "action_std": jnp.sum(mask * std) / (rows * mean.shape[-1])}


def _standardized(state: TrainState, demos: demo_data.DemoSet, index: jax.Array):
    """(observation windows [B, H, D], action chunks [B, K, A], standardized; valid rows [B, K])."""
    spec = state.policy_spec
    obs, actions, valid = demo_data.windows(demos, index, spec.obs_history, spec.action_horizon)
    return normalize.normalize(state.obs_stats, obs), normalize.normalize(state.action_stats, actions), valid


def train_step(state: TrainState, env, cfg: Config, demos: demo_data.DemoSet) -> tuple[TrainState, dict]:
    """One gradient step on `batch_size` samples of the training episodes. Pure."""
    key, key_batch, key_noise, key_dropout = jax.random.split(state.key, 4)
    picks = jax.random.randint(key_batch, (cfg.batch_size,), 0, demos.train_index.shape[0])
    window, chunks, valid = _standardized(state, demos, demos.train_index[picks])
    if cfg.obs_noise > 0.0:
        window = window + cfg.obs_noise * jax.random.normal(key_noise, window.shape)
    (loss, parts), grads = jax.value_and_grad(_loss, has_aux=True)(state.params, state.policy_spec, window,
                                                                   chunks, valid, key_dropout)
    updates, opt_state = _optimizer(cfg).update(grads, state.opt_state, state.params)
    metrics = {"loss/bc": loss, "grad_norm": optax.tree.norm(grads),
               **{f"loss/{k}": v for k, v in parts.items()}}
    return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state, key=key,
                         iteration=state.iteration + 1), metrics


def validation_metrics(state: TrainState, cfg: Config, demos: demo_data.DemoSet) -> dict:
    """The loss on every sample of the held-out episodes (none when nothing is held out); no dropout."""
    if demos.val_index.shape[0] == 0:
        return {}
    loss, parts = _loss(state.params, state.policy_spec, *_standardized(state, demos, demos.val_index))
    return {"val/loss": loss, **{f"val/{k}": v for k, v in parts.items()}}
