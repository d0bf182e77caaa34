"""Dreamer's world model trained on its own, from recorded episodes: what robotics users pretrain.

An offline learner (see jaxrl.algos) without a policy. One `train_step` is one
gradient step of Dreamer's world-model loss (jaxrl.world_model) on
`batch_size` chunks of `batch_length` consecutive steps of the training
episodes (jaxrl.data.sequences: the steps as Dreamer's replay stores them).
The sizes and loss settings keep Dreamer's names, so a Dreamer run of the same
sizes starts from the result: `jaxrl train ENV dreamer train.init_from=RUN_DIR`.

Each evaluation reports, on chunks of the held-out episodes: the loss and its
parts (reconstruction, reward, continue, dynamics, representation), and the
open-loop prediction: the model filters `open_loop_context` steps, then
imagines `imag_horizon` more from the recorded actions alone, and
`val/open_loop_obs_error` is its mean squared error against those steps'
observations (summed over an observation's values, in the decoder's units:
symlog of vectors, images in [-0.5, 0.5]), `val/open_loop_reward_error` the
mean absolute error of its rewards. `val/hold_last_obs_error` is the same error
of predicting that the last filtered observation stays: the bar a model of the
dynamics must clear. Imagined steps past an episode's end are left out.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import twohot
from jaxrl.algos import offline
from jaxrl.algos.dreamer import Spec, zero_memory
from jaxrl.data import sequences
from jaxrl.data.validate import DatasetError
from jaxrl.world_model import (
    WorldModel,
    WorldModelConfig,
    check_image_shape,
    time_major_chunks,
    world_model_loss,
    world_model_update,
)

OFFLINE = True
POLICY = False  # what it learns is a model of the env; `jaxrl eval`, `export` and `play` refuse its runs
BEST_BY = ("-val/loss",)
VALIDATION_KEY = 0  # the validation loss samples latent states with this fixed key: evaluations compare


@dataclasses.dataclass(frozen=True)
class Config(WorldModelConfig):
    data: str = ""  # episode files "a.hdf5,b.hdf5"; a suffix ":success" or ":all" filters one
    data_filter: str = "all"  # filter of the files without a suffix
    obs_key: str = "state"  # the observation the world model sees (a dict observation's entry)
    val_fraction: float = 0.1  # share of episodes held out for validation
    split_seed: int = 0  # which episodes are held out
    batch_size: int = 16  # chunks per gradient step
    batch_length: int = 64  # consecutive steps per chunk
    imag_horizon: int = 15  # steps of open-loop prediction in validation
    open_loop_context: int = 8  # steps filtered before the open-loop prediction starts
    model_lr: float = 1e-4  # Adam step size
    model_clip: float = 1000.0  # global norm the gradient is clipped to


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    offline.validate_data(cfg, "world_model")
    for name in ("batch_size", "batch_length", "imag_horizon", "open_loop_context", "deter", "hidden",
                 "stoch", "classes", "cnn_depth"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")


def steps_per_iteration(cfg: Config) -> int:
    return 1  # one gradient step


@struct.dataclass
class ModelParams:
    """The world model's parameters and sizes: what a Dreamer run starts from (Dreamer's PolicyParams
    hold the same two fields)."""

    world_model: Any
    spec: Spec = struct.field(pytree_node=False)


@struct.dataclass
class TrainState:
    params: Any  # the world model's
    opt_state: Any
    key: jax.Array
    iteration: jax.Array  # int32 scalar: gradient steps taken
    spec: Spec = struct.field(pytree_node=False)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.model_clip), optax.adam(cfg.model_lr, eps=1e-8))


def load_data(cfg: Config, env) -> sequences.SequenceSet:
    """The episodes of cfg.data as step sequences on the device, checked against `env`."""
    data = sequences.load_for_env(cfg.data, cfg.data_filter, cfg.obs_key, cfg.val_fraction, cfg.split_seed,
                                  env)
    check_image_shape(data.train["obs"].shape[1:])
    recorded = sequences.num_steps(data.train)
    if recorded < cfg.batch_length:
        raise DatasetError(f"the training episodes hold {recorded:,} steps, fewer than one chunk of "
                           f"batch_length={cfg.batch_length}: record more episodes or shorten batch_length")
    return data


def resolved_config(cfg: Config, data: sequences.SequenceSet) -> Config:
    return cfg  # the env gives everything a restore needs (obs_key names its observation)


def abstract_data(cfg: Config, env) -> sequences.SequenceSet:
    obs = sequences.env_obs(env, cfg.obs_key)
    return sequences.abstract_sequences(obs.shape, obs.dtype, env.action_size)


def init(key: jax.Array, env, cfg: Config, data: sequences.SequenceSet) -> TrainState:
    """The world model of Dreamer's structure for the data's observations and actions, and its optimizer."""
    key_model, key_state = jax.random.split(key)
    one_obs, action_size = data.train["obs"][:1], data.train["action"].shape[-1]
    spec = Spec.of(cfg, one_obs.shape[1:], action_size)
    params = spec.world_model().init(key_model, zero_memory(spec, 1).latent, jnp.zeros((1, action_size)),
                                     one_obs, jnp.ones(1), key_model)
    return TrainState(params=params, opt_state=_optimizer(cfg).init(params), key=key_state,
                      iteration=jnp.zeros((), jnp.int32), spec=spec)


def policy_params(state: TrainState) -> ModelParams:
    """What a run keeps for others: the world model (no policy; see POLICY)."""
    return ModelParams(world_model=state.params, spec=state.spec)


def train_step(state: TrainState, env, cfg: Config, data: sequences.SequenceSet) -> tuple[TrainState, dict]:
    """One gradient step on `batch_size` chunks of the training episodes. Pure."""
    key, key_chunks, key_model = jax.random.split(state.key, 3)
    chunks = time_major_chunks(sequences.sample_chunks(data.train, key_chunks, cfg.batch_size,
                                                       cfg.batch_length))
    params, opt_state, _, metrics = world_model_update(state.spec.world_model(cfg), state.params,
                                                       state.opt_state, _optimizer(cfg), chunks, key_model)
    return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics


def _open_loop(model: WorldModel, params, chunks: dict, posteriors, context: int) -> dict:
    """Open-loop errors of time-major chunks [context + H, B] from the posterior after `context` steps."""
    step = functools.partial(model.apply, params, method=WorldModel.imagine_step)
    start = jax.tree.map(lambda x: x[context - 1], posteriors)

    def imagined(latent, action):
        latent, _ = step(latent, action, None)  # the prior's mode: the model's best guess
        return latent, latent.features()

    _, features = jax.lax.scan(imagined, start, chunks["action"][context:])
    decoded, reward_logits, _ = model.apply(params, features, method=WorldModel.heads)
    target = model.apply(params, chunks["obs"], method=WorldModel.target)
    obs_axes = tuple(range(2, target.ndim))
    # A step counts while no episode has started since the context: the recorded actions are then this
    # episode's, and what follows them is what the model is asked to predict.
    within = jnp.cumsum(chunks["is_first"][context:], axis=0) == 0
    weights = within / jnp.maximum(jnp.sum(within), 1.0)
    future = target[context:]
    rewards = twohot.decode(reward_logits, twohot.symexp_bins(model.cfg.num_bins))
    return {
        "open_loop_obs_error": jnp.sum(weights * jnp.sum(jnp.square(decoded - future), obs_axes)),
        "hold_last_obs_error": jnp.sum(weights * jnp.sum(jnp.square(target[context - 1] - future), obs_axes)),
        "open_loop_reward_error": jnp.sum(weights * jnp.abs(rewards - chunks["reward"][context:])),
    }


def validation_metrics(state: TrainState, cfg: Config, data: sequences.SequenceSet) -> dict:
    """The loss and the open-loop errors on the held-out episodes' chunks of open_loop_context +
    imag_horizon steps (none when they hold no whole chunk)."""
    length = cfg.open_loop_context + cfg.imag_horizon
    if sequences.num_steps(data.val) < length:
        return {}
    model = state.spec.world_model(cfg)
    chunks = time_major_chunks(sequences.split_chunks(data.val, length))
    start = zero_memory(state.spec, chunks["action"].shape[1]).latent
    loss, (posteriors, parts) = world_model_loss(model, state.params, chunks, start,
                                                 jax.random.PRNGKey(VALIDATION_KEY))
    errors = _open_loop(model, state.params, chunks, posteriors, cfg.open_loop_context)
    return {"val/loss": loss, **{f"val/{name[5:]}": value for name, value in parts.items()},
            **{f"val/{name}": value for name, value in errors.items()}}
