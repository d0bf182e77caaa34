"""Diffusion policy (Chi et al. 2023): a denoiser of action chunks conditioned on an observation history.

An offline learner (see jaxrl.algos). Training is DDPM's noise-prediction
loss: a chunk of `action_horizon` demonstrated actions gets the noise of a
random train timestep and a 1-D temporal U-Net (jaxrl.networks.
ConditionalUnet1D, FiLM-conditioned on the flattened standardized history of
`obs_history` observations) predicts that noise. Acting runs DDIM over
`num_inference_steps` of the timesteps (jaxrl.noise_schedule), one
`lax.scan` inside the jitted policy.

Alignment: for a sample t the condition is observations t-H+1..t and the
target chunk is actions t..t+K-1 (what `demo_data.windows` cuts), so every
predicted action is one still to execute: the policy that has just seen obs t
executes the chunk's first `action_exec` actions, from t on. (Chi et al. start
the chunk at the first observation and execute from its H-th action; with H = 2
that spends one row of the chunk on the action already taken.)

Chunks running past an episode's end repeat its last action, and the loss
counts those rows as Chi et al. do: the U-Net's convolutions mix every row of
the chunk, so a row the loss ignored would be an input the denoiser never
learnt to handle when it samples whole chunks.

Actions stay in the env's units, which already are [-1, 1]: DDIM's clip of the
predicted clean chunk to [-1, 1] is then exactly the set of valid actions
(standardized actions would reach beyond it). Observations are standardized
with the training samples' statistics, kept in the TrainState.

The policy acts with an exponential moving average of the weights (EMA), the
usual choice for diffusion models: single gradient steps of the
noise-prediction loss are noisy, and the average samples smoother chunks.

Export (`export_policy`) is `act` without a key: each chunk starts from the
same fixed noise, a constant of the ONNX graph, and the memory (history, plan,
position in the plan) is one flat vector per env that the file takes and
returns, zeros at an episode's start.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl import noise_schedule as diffusion_process
from jaxrl import normalize
from jaxrl.algos import offline
from jaxrl.data import demos as demo_data
from jaxrl.export import state_vector
from jaxrl.networks import ConditionalUnet1D

OFFLINE = True
BEST_BY = offline.BEST_BY
# The EMA's decay grows as min(ema_decay, (1 + n) / (EMA_WARMUP + n)) after n steps: a constant decay
# would keep the random initial weights in the average for ~1 / (1 - ema_decay) steps (0.995**200 is
# still 37%), so early evaluations would judge the initialization rather than the training.
EMA_WARMUP = 10
VAL_LOSS_SAMPLES = 2048  # at most this many held-out samples in val/loss (evenly spaced): bounded memory
VAL_SAMPLED_CHUNKS = 256  # held-out samples whose sampled chunks val/action_mse compares with the demos'
VAL_SEED = 0  # the noise and timesteps of val/loss: the same at every evaluation, so they compare
FIXED_NOISE_SEED = 0  # the starting noise of the deterministic policy
# Largest |ONNX - JAX| `jaxrl export` accepts (others: 1e-5). A chunk is 10 U-Net calls deep: a trained
# policy (CPU preset, 3,500 gradient steps) differed by up to 9.5e-6 over 16 episodes x 200 steps.
EXPORT_TOLERANCE = 5e-5


@dataclasses.dataclass(frozen=True)
class Config(offline.DataConfig):  # data, data_filter, obs_keys, val_fraction, split_seed
    obs_history: int = 2  # observations the policy is conditioned on, the current one last
    action_horizon: int = 16  # actions per predicted chunk; divisible by 2 ** (len(down_dims) - 1)
    action_exec: int = 8  # actions of each chunk executed before the next is sampled; <= action_horizon
    num_train_steps: int = 100  # diffusion timesteps in training
    num_inference_steps: int = 10  # DDIM steps (U-Net calls) per sampled chunk
    schedule: str = "cosine"  # "cosine" or "linear" betas
    down_dims: tuple[int, ...] = (64, 128, 256)  # U-Net channels per level
    kernel_size: int = 5  # temporal convolutions' width
    n_groups: int = 8  # GroupNorm groups; divides every down_dims entry
    time_embed_dim: int = 64  # the timestep embedding's size; even, >= 4
    batch_size: int = 256  # samples per gradient step
    learning_rate: float = 1e-4  # AdamW step size
    weight_decay: float = 1e-6  # AdamW's decoupled weight decay
    max_grad_norm: float = 1.0  # global gradient-norm clip
    ema_decay: float = 0.995  # the EMA's decay once warmed up (see EMA_WARMUP)


def _validate_chunks(cfg: Config) -> None:
    if cfg.obs_history < 1 or cfg.action_horizon < 1:
        raise ValueError(f"obs_history and action_horizon must be >= 1, got {cfg.obs_history} and "
                         f"{cfg.action_horizon}")
    if not 1 <= cfg.action_exec <= cfg.action_horizon:
        raise ValueError(f"action_exec must be in [1, action_horizon={cfg.action_horizon}] (the chunk's "
                         f"actions it executes), got {cfg.action_exec}")
    if not 1 <= cfg.num_inference_steps <= cfg.num_train_steps:
        raise ValueError(f"num_inference_steps must be in [1, num_train_steps={cfg.num_train_steps}], got "
                         f"{cfg.num_inference_steps}")
    if cfg.schedule not in diffusion_process.SCHEDULE_KINDS:
        raise ValueError(f"schedule must be one of {', '.join(diffusion_process.SCHEDULE_KINDS)}, got "
                         f"{cfg.schedule!r}")


def _validate_network(cfg: Config) -> None:
    if not cfg.down_dims or any(dim % cfg.n_groups for dim in cfg.down_dims):
        raise ValueError(f"down_dims needs at least one entry, each divisible by n_groups={cfg.n_groups}; "
                         f"got {list(cfg.down_dims)}")
    levels = 2 ** (len(cfg.down_dims) - 1)
    if cfg.action_horizon % levels:
        raise ValueError(f"action_horizon={cfg.action_horizon} must be divisible by {levels}: the U-Net "
                         f"halves it {len(cfg.down_dims) - 1} times for down_dims={list(cfg.down_dims)}")
    if cfg.time_embed_dim % 2 or cfg.time_embed_dim < 4:
        raise ValueError(f"time_embed_dim must be even and >= 4, got {cfg.time_embed_dim}")


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    offline.validate_data(cfg, "diffusion")
    _validate_chunks(cfg)
    _validate_network(cfg)
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")


def steps_per_iteration(cfg: Config) -> int:
    return 1  # one gradient step


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """What it takes to rebuild the policy from its parameters (static, hashable)."""

    obs_keys: tuple[str, ...]  # entries of a dict observation the policy reads, flattened in this order
    obs_shapes: tuple[tuple[int, ...], ...]  # each entry's shape without batch axes
    action_size: int
    obs_history: int
    action_horizon: int
    action_exec: int
    down_dims: tuple[int, ...]
    kernel_size: int
    n_groups: int
    time_embed_dim: int
    num_train_steps: int
    num_inference_steps: int
    schedule: str
    state_layout: tuple[tuple[str, int], ...] = ()  # the env's policy vector (what export reads)

    def network(self) -> ConditionalUnet1D:
        return ConditionalUnet1D(self.down_dims, self.kernel_size, self.n_groups, self.time_embed_dim)

    def noise_schedule(self) -> diffusion_process.NoiseSchedule:
        return diffusion_process.make_schedule(self.num_train_steps, self.schedule)

    @property
    def chunk_shape(self) -> tuple[int, int]:
        return self.action_horizon, self.action_size


@struct.dataclass
class PolicyParams:
    network: Any  # the EMA weights
    obs_stats: normalize.RunningStats  # of the flattened observation
    spec: PolicySpec = struct.field(pytree_node=False)


@struct.dataclass
class TrainState:
    params: Any  # the U-Net's, as the optimizer moves them
    ema_params: Any  # their moving average: what the policy acts with
    opt_state: Any
    obs_stats: normalize.RunningStats
    key: jax.Array
    iteration: jax.Array  # int32 scalar: gradient steps taken
    policy_spec: PolicySpec = struct.field(pytree_node=False)


@struct.dataclass
class PolicyMemory:
    """What `act` carries between steps; every env of the batch steps in lockstep."""

    history: jax.Array  # [B, obs_history, D] standardized observations, the latest last
    plan: jax.Array  # [B, action_exec, A] the actions of the chunk being executed
    step: jax.Array  # int32 scalar: steps taken; a chunk is sampled when it is a multiple of action_exec


load_data = offline.load_data
resolved_config = offline.resolved_config
abstract_data = offline.abstract_data


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                       optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay))


def _policy_spec(cfg: Config, env, action_size: int) -> PolicySpec:
    return PolicySpec(
        obs_keys=tuple(cfg.obs_keys), obs_shapes=offline.obs_shapes(cfg, env),
        action_size=action_size, obs_history=cfg.obs_history, action_horizon=cfg.action_horizon,
        action_exec=cfg.action_exec, down_dims=tuple(cfg.down_dims), kernel_size=cfg.kernel_size,
        n_groups=cfg.n_groups, time_embed_dim=cfg.time_embed_dim, num_train_steps=cfg.num_train_steps,
        num_inference_steps=cfg.num_inference_steps, schedule=cfg.schedule,
        state_layout=state_vector.layout_of(env))


def init(key: jax.Array, env, cfg: Config, demos: demo_data.DemoSet) -> TrainState:
    """The U-Net, its EMA (equal at first) and optimizer; the data's statistics. `env` gives the spaces."""
    key_network, key_state = jax.random.split(key)
    spec = _policy_spec(cfg, env, demos.actions.shape[-1])
    cond = jnp.zeros((1, cfg.obs_history * demos.obs.shape[-1]))
    params = spec.network().init(key_network, jnp.zeros((1, *spec.chunk_shape)), jnp.zeros((1,), jnp.int32),
                                 cond)
    return TrainState(params=params, ema_params=params, opt_state=_optimizer(cfg).init(params),
                      obs_stats=demos.obs_stats, key=key_state, iteration=jnp.zeros((), jnp.int32),
                      policy_spec=spec)


def policy_params(state: TrainState) -> PolicyParams:
    return PolicyParams(network=state.ema_params, obs_stats=state.obs_stats, spec=state.policy_spec)


# --- acting -------------------------------------------------------------------------------------------

def sample_chunks(params: PolicyParams, history: jax.Array, noise: jax.Array) -> jax.Array:
    """[B, K, A] action chunks in [-1, 1] by DDIM from `noise` [B, K, A], given history [B, H, D]."""
    spec = params.spec
    cond = history.reshape(history.shape[0], -1)
    network = spec.network()

    def predict_noise(x_t, t):
        return network.apply(params.network, x_t, t, cond)

    return diffusion_process.ddim_denoise(predict_noise, spec.noise_schedule(), noise,
                                          spec.num_inference_steps)


def initial_memory(params: PolicyParams, obs) -> PolicyMemory:
    """The memory at an episode's start: the first observation fills the history (as `windows` repeats an
    episode's first observation before its start); no plan yet, so `act` samples one first."""
    first = offline.standardized_obs(params, obs)  # [B, D]
    spec = params.spec
    history = jnp.repeat(first[:, None], spec.obs_history, axis=1)
    plan = jnp.zeros((first.shape[0], spec.action_exec, spec.action_size))
    return PolicyMemory(history=history, plan=plan, step=jnp.zeros((), jnp.int32))


def fixed_noise(spec: PolicySpec) -> jax.Array:
    """[K, A]: the starting noise of every chunk the deterministic policy samples (FIXED_NOISE_SEED)."""
    return jax.random.normal(jax.random.PRNGKey(FIXED_NOISE_SEED), spec.chunk_shape)


def _chunk_noise(spec: PolicySpec, batch_size: int, key: jax.Array | None) -> jax.Array:
    """[B, K, A] starting noise of DDIM: a draw of `key`, or without one the fixed noise for every env."""
    if key is None:
        return jnp.broadcast_to(fixed_noise(spec), (batch_size, *spec.chunk_shape))
    return jax.random.normal(key, (batch_size, *spec.chunk_shape))


def _follow_plan(params: PolicyParams, history: jax.Array, plan: jax.Array, slot: jax.Array,
                 noise: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(actions [B, A], plans [B, action_exec, A]): each env's action `slot` [B] of its plan, where the
    envs at slot 0 first get a new plan, a chunk sampled from `noise` [B, K, A] given history [B, H, D].

    The sampling (num_inference_steps U-Net calls) is the costly part: `lax.cond` skips it on the steps
    no env needs it, which in lockstep (evaluation, one env deployed) are action_exec - 1 of action_exec.
    """
    spec = params.spec
    replan = slot == 0

    def sample():
        chunks = sample_chunks(params, history, noise)[:, :spec.action_exec]
        return jnp.where(replan[:, None, None], chunks, plan)

    plan = jax.lax.cond(jnp.any(replan), sample, lambda: plan)
    # A one-hot sum rather than a gather: exact (the other terms are zeros) and simple to export.
    chosen = jnp.arange(spec.action_exec) == slot[:, None]  # [B, action_exec]
    return jnp.sum(jnp.where(chosen[..., None], plan, 0.0), axis=1), plan


def act(params: PolicyParams, obs, memory: PolicyMemory,
        key: jax.Array | None = None) -> tuple[jax.Array, PolicyMemory]:
    """(actions [B, A], memory) for a batch of observations [B, ...]: the next action of the plan.

    Every `action_exec` steps a chunk is sampled, from a draw of `key` or, without one, from the fixed
    noise (deterministic: what the exported policy does); every env of the batch steps in lockstep.
    """
    spec = params.spec
    latest = offline.standardized_obs(params, obs)
    history = jnp.concatenate([memory.history[:, 1:], latest[:, None]], axis=1)
    batch_size = latest.shape[0]
    slot = jnp.full((batch_size,), memory.step % spec.action_exec)
    action, plan = _follow_plan(params, history, memory.plan, slot, _chunk_noise(spec, batch_size, key))
    return action, PolicyMemory(history=history, plan=plan, step=memory.step + 1)


def policy(params: PolicyParams, obs, key: jax.Array | None = None) -> jax.Array:
    """Actions in [-1, 1] for observations with any leading batch axes, without memory.

    A one-step receding horizon: the history is the current observation repeated, one chunk is
    sampled and its first action returned. Without a key DDIM starts from one fixed draw of noise,
    the same for every observation, so the action is a function of the observation alone (whatever
    the batch). Evaluation, videos and collection run `act`, the faithful policy
    (jaxrl.evaluation.policy_with_memory).
    """
    spec = params.spec
    latest = offline.standardized_obs(params, obs)
    batch_shape = latest.shape[:-1]
    latest = latest.reshape(-1, latest.shape[-1])
    history = jnp.repeat(latest[:, None], spec.obs_history, axis=1)
    noise = _chunk_noise(spec, latest.shape[0], key)
    return sample_chunks(params, history, noise)[:, 0].reshape(*batch_shape, spec.action_size)


# --- export -------------------------------------------------------------------------------------------
# The exported policy is `act` without a key, its memory one flat float32 vector per env (the contract in
# jaxrl.algos): the standardized observation history [H * D], the plan [action_exec * A] and how many of
# the plan's actions have been executed, in 1..action_exec during an episode and 0 only at its start,
# when the whole memory is zeros. Each env keeps its own count, so envs need not start together.

def _memory_sizes(spec: PolicySpec) -> tuple[int, int, int]:
    """Sizes of the memory's history, plan and executed-count parts."""
    obs_size = sum(math.prod(shape) for shape in spec.obs_shapes)
    return spec.obs_history * obs_size, spec.action_exec * spec.action_size, 1


def export_memory_size(params: PolicyParams) -> int:
    return sum(_memory_sizes(params.spec))


def export_policy(params: PolicyParams):
    """fn(x [B, n], memory [B, m]) -> (actions [B, A] in [-1, 1], memory [B, m]): `act` without a key.

    x is the env's policy vector (state_vector); memory is zeros at an episode's start and fn's last
    output after. The starting noise is a constant of the graph (jax.random does not convert to ONNX).
    """
    spec = params.spec
    state_vector.check_readable(spec.obs_keys, spec.state_layout)
    noise = np.asarray(fixed_noise(spec))
    history_size, plan_size, _ = _memory_sizes(spec)
    history_shape = (spec.obs_history, history_size // spec.obs_history)
    plan_shape = (spec.action_exec, spec.action_size)

    def fn(x: jax.Array, memory: jax.Array) -> tuple[jax.Array, jax.Array]:
        batch_size = x.shape[0]
        latest = offline.standardized_policy_vector(params, x)
        history = memory[:, :history_size].reshape(batch_size, *history_shape)
        plan = memory[:, history_size:history_size + plan_size].reshape(batch_size, *plan_shape)
        executed = memory[:, -1]
        # At an episode's start the first observation fills the history, as in `initial_memory`.
        history = jnp.where((executed == 0)[:, None, None], latest[:, None], history)
        history = jnp.concatenate([history[:, 1:], latest[:, None]], axis=1)
        slot = jnp.where(executed >= spec.action_exec, 0.0, executed)  # no `%`: it does not convert
        chunk_noise = jnp.broadcast_to(noise, (batch_size, *spec.chunk_shape))
        action, plan = _follow_plan(params, history, plan, slot.astype(jnp.int32), chunk_noise)
        next_memory = jnp.concatenate([history.reshape(batch_size, -1), plan.reshape(batch_size, -1),
                                       (slot + 1.0)[:, None]], axis=1)
        return action, next_memory

    return fn


# --- learning -----------------------------------------------------------------------------------------

def _training_pairs(obs_stats: normalize.RunningStats, demos: demo_data.DemoSet, index: jax.Array,
                    spec: PolicySpec) -> tuple[jax.Array, jax.Array]:
    """(standardized observation histories [B, H, D], action chunks [B, K, A]) of samples `index`."""
    obs, actions, _ = demo_data.windows(demos, index, spec.obs_history, spec.action_horizon)
    return normalize.normalize(obs_stats, obs), actions


def _noise_prediction_loss(network_params, spec: PolicySpec, history: jax.Array, chunks: jax.Array,
                           key: jax.Array) -> jax.Array:
    """DDPM's loss: mean squared error of the U-Net's noise prediction at uniformly drawn timesteps."""
    key_t, key_noise = jax.random.split(key)
    t = jax.random.randint(key_t, (chunks.shape[0],), 0, spec.num_train_steps)
    noise = jax.random.normal(key_noise, chunks.shape)
    noisy = diffusion_process.add_noise(spec.noise_schedule(), chunks, noise, t)
    predicted = spec.network().apply(network_params, noisy, t, history.reshape(history.shape[0], -1))
    return jnp.mean(jnp.square(predicted - noise))


def ema_decay(cfg: Config, iteration: jax.Array) -> jax.Array:
    """The EMA's decay at gradient step `iteration` (0 first): warms up to cfg.ema_decay."""
    steps = iteration.astype(jnp.float32)
    return jnp.minimum(cfg.ema_decay, (1.0 + steps) / (EMA_WARMUP + steps))


def train_step(state: TrainState, env, cfg: Config, demos: demo_data.DemoSet) -> tuple[TrainState, dict]:
    """One gradient step on `batch_size` samples of the training episodes, then the EMA. Pure."""
    key, key_batch, key_loss = jax.random.split(state.key, 3)
    picks = jax.random.randint(key_batch, (cfg.batch_size,), 0, demos.train_index.shape[0])
    history, chunks = _training_pairs(state.obs_stats, demos, demos.train_index[picks], state.policy_spec)
    loss, grads = jax.value_and_grad(_noise_prediction_loss)(state.params, state.policy_spec, history,
                                                             chunks, key_loss)
    updates, opt_state = _optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = ema_decay(cfg, state.iteration)
    ema_params = optax.incremental_update(params, state.ema_params, 1.0 - decay)
    metrics = {"loss/diffusion": loss, "grad_norm": optax.tree.norm(grads), "ema_decay": decay}
    return state.replace(params=params, ema_params=ema_params, opt_state=opt_state, key=key,
                         iteration=state.iteration + 1), metrics


def _evenly_spaced(index: jax.Array, count: int) -> jax.Array:
    """At most `count` entries of `index`, spread over all of it (static count: jit-able)."""
    if index.shape[0] <= count:
        return index
    return index[jnp.linspace(0, index.shape[0] - 1, count).astype(jnp.int32)]


def _sampled_action_mse(state: TrainState, demos: demo_data.DemoSet, index: jax.Array) -> jax.Array:
    """Mean squared error of DDIM-sampled chunks vs the demos', over the actions the policy executes."""
    spec = state.policy_spec
    obs, chunks, valid = demo_data.windows(demos, index, spec.obs_history, spec.action_horizon)
    noise = jax.random.normal(jax.random.PRNGKey(VAL_SEED), chunks.shape)
    sampled = sample_chunks(policy_params(state), normalize.normalize(state.obs_stats, obs), noise)
    executed = valid[:, :spec.action_exec, None]
    error = jnp.square(sampled - chunks)[:, :spec.action_exec]
    return jnp.sum(error * executed) / jnp.maximum(jnp.sum(executed) * spec.action_size, 1)


def validation_metrics(state: TrainState, cfg: Config, demos: demo_data.DemoSet) -> dict:
    """The EMA weights on held-out episodes (none when nothing is held out): the noise-prediction loss
    with fixed noise and timesteps (val/loss), and the error of sampled chunks (val/action_mse)."""
    if demos.val_index.shape[0] == 0:
        return {}
    spec = state.policy_spec
    index = _evenly_spaced(demos.val_index, VAL_LOSS_SAMPLES)
    history, chunks = _training_pairs(state.obs_stats, demos, index, spec)
    loss = _noise_prediction_loss(state.ema_params, spec, history, chunks, jax.random.PRNGKey(VAL_SEED))
    action_mse = _sampled_action_mse(state, demos, _evenly_spaced(demos.val_index, VAL_SAMPLED_CHUNKS))
    return {"val/loss": loss, "val/action_mse": action_mse}
