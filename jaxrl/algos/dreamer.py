"""Dreamer (after DreamerV3), pure-functional: a world model learned from replayed chunks of experience,
an actor and a critic learned from trajectories the world model imagines.

One `train_step` is one iteration, compiled once:
  1. step the `num_envs` envs `unroll_length` times; the policy filters each env's observations into its
     latent state (the policy's memory, kept per env in the TrainState) and acts on it (uniformly random
     actions while the replay holds fewer than `min_replay_size` steps),
  2. write every step into the replay once, as it arrives: the observation, the action that led there,
     the reward received, whether the episode terminated there, and whether the step it came from was
     its episode's first (the world model then starts it from the zero state),
  3. `updates_per_iteration(cfg)` updates (`train_ratio` replayed steps per env step), each on
     `batch_size` chunks of `batch_length` consecutive steps of one env: the world model
     (jaxrl.world_model.world_model_loss), then the actor and the critic on trajectories of
     `imag_horizon` steps imagined from every posterior state of the chunks (jaxrl.actor_critic), and
     the slow critic a step towards the critic.

A step stored as it arrives holds the successor an episode's last action led to (the terminal
observation, or the last one before a time limit), so the continue head learns terminations, and
truncations are not terminations. What is not stored is an episode's reset observation. The knobs keep
DreamerV3's names (`deter`, `stoch`, `classes`, `train_ratio`, `horizon`, `actent`, ...).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import actor_critic, replay, twohot
from jaxrl.algos import actor, rollout
from jaxrl.distributions import BoundedNormal
from jaxrl.imagined_returns import ReturnRange, lambda_returns
from jaxrl.world_model import (
    Latent,
    NormMLP,
    WorldModel,
    WorldModelConfig,
    check_image_shape,
    imagine,
    is_image,
    time_major_chunks,
    world_model_update,
)

ACTOR_GRADS = ("backprop", "reinforce")  # how the actor's loss reaches its parameters


@dataclasses.dataclass(frozen=True)
class Config(WorldModelConfig):
    num_envs: int = 16  # parallel training envs
    unroll_length: int = 4  # env steps per env per iteration
    train_ratio: int = 512  # replayed steps per env step (batch_size x batch_length per update)
    batch_size: int = 16  # chunks per update
    batch_length: int = 64  # consecutive steps of one env per chunk
    replay_capacity: int = 1_000_000  # steps kept (oldest overwritten), in rows of num_envs; must fit
    min_replay_size: int = 5_000  # steps of uniformly random actions before learning starts
    imag_horizon: int = 15  # imagined steps from each posterior state of a batch
    horizon: float = 333.0  # the discount is 1 - 1 / horizon
    return_lambda: float = 0.95  # lambda of the imagined lambda-returns
    actent: float = 3e-4  # the actor's entropy bonus, against advantages divided by the return range
    slowreg: float = 1.0  # weight of the critic's loss towards the slow critic's values
    slow_critic_rate: float = 0.02  # per update, the share the slow critic moves towards the critic
    retnorm_rate: float = 0.01  # EMA rate of the imagined returns' 5th and 95th percentiles
    model_lr: float = 1e-4  # Adam step size of the world model
    actor_lr: float = 3e-5  # of the actor
    critic_lr: float = 3e-5  # of the critic
    model_clip: float = 1000.0  # global norm the world model's gradient is clipped to
    actor_clip: float = 100.0  # the actor's
    critic_clip: float = 100.0  # the critic's
    actor_min_std: float = 0.1  # the actor's Gaussian std lies in [actor_min_std, actor_max_std]
    actor_max_std: float = 1.0
    actor_grad: str = "backprop"  # backprop (the returns' gradient through imagined states) or reinforce
    obs_key: str = "state"  # with dict observations: what the world model sees


def validate(cfg: Config) -> None:
    """Raise ValueError for settings that cannot run."""
    for name in ("num_envs", "unroll_length", "train_ratio", "batch_size", "batch_length", "imag_horizon",
                 "deter", "hidden", "stoch", "classes", "cnn_depth"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    replayed = cfg.train_ratio * steps_per_iteration(cfg)
    per_update = cfg.batch_size * cfg.batch_length
    if replayed % per_update:
        ratios = [r for r in range(1, 4 * cfg.train_ratio + 1)
                  if r * steps_per_iteration(cfg) % per_update == 0]
        near = sorted(ratios, key=lambda r: abs(r - cfg.train_ratio))[:3] or ["(none: change batch_size)"]
        raise ValueError(
            f"train_ratio = {cfg.train_ratio} replays {replayed:,} steps an iteration (train_ratio x "
            f"num_envs x unroll_length), not a whole number of updates of batch_size x batch_length = "
            f"{per_update:,}: "
            f"set train_ratio to e.g. {', '.join(map(str, sorted(near)))}")
    chunk_rows = cfg.num_envs * cfg.batch_length
    if cfg.min_replay_size < chunk_rows:
        raise ValueError(f"min_replay_size = {cfg.min_replay_size:,} must be at least num_envs x "
                         f"batch_length = {chunk_rows:,}: a chunk needs batch_length steps of one env")
    kept = cfg.replay_capacity // cfg.num_envs * cfg.num_envs  # whole rows of num_envs (jaxrl.replay)
    if cfg.min_replay_size > kept:
        raise ValueError(f"min_replay_size = {cfg.min_replay_size:,} exceeds the {kept:,} steps "
                         f"replay_capacity = {cfg.replay_capacity:,} keeps: learning would never start")
    if not 0.0 < cfg.slow_critic_rate <= 1.0:
        raise ValueError(f"slow_critic_rate must be in (0, 1], got {cfg.slow_critic_rate}")
    if cfg.horizon <= 1.0:
        raise ValueError(f"horizon must be > 1 (the discount is 1 - 1 / horizon), got {cfg.horizon}")
    if cfg.actor_grad not in ACTOR_GRADS:
        raise ValueError(f"actor_grad must be one of {', '.join(ACTOR_GRADS)}, got {cfg.actor_grad!r}")
    if not 0.0 < cfg.actor_min_std <= cfg.actor_max_std:
        raise ValueError(f"need 0 < actor_min_std <= actor_max_std, got {cfg.actor_min_std}, "
                         f"{cfg.actor_max_std}")


def steps_per_iteration(cfg: Config) -> int:
    return cfg.num_envs * cfg.unroll_length


def updates_per_iteration(cfg: Config) -> int:
    """World-model and actor-critic updates of one iteration: train_ratio replayed steps per env step."""
    return cfg.train_ratio * steps_per_iteration(cfg) // (cfg.batch_size * cfg.batch_length)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What it takes to rebuild the networks from their parameters (static, hashable): shapes and sizes,
    no float a population could sweep."""

    obs_key: str
    obs_shape: tuple[int, ...]  # one env's: [N] vectors or [H, W, C] images
    action_size: int
    deter: int
    hidden: int
    stoch: int
    classes: int
    layers: int
    num_bins: int
    cnn_depth: int

    @classmethod
    def of(cls, cfg: Config, obs_shape: tuple[int, ...], action_size: int) -> Spec:
        return cls(cfg.obs_key, tuple(obs_shape), action_size, cfg.deter, cfg.hidden, cfg.stoch,
                   cfg.classes, cfg.layers, cfg.num_bins, cfg.cnn_depth)

    def world_model(self, cfg: WorldModelConfig | None = None) -> WorldModel:
        """The world model of this size, with `cfg`'s loss settings (default: DreamerV3's)."""
        sizes = {name: getattr(self, name) for name in ("deter", "hidden", "stoch", "classes", "layers",
                                                         "num_bins", "cnn_depth")}
        settings = {field.name: getattr(cfg, field.name) for field in dataclasses.fields(WorldModelConfig)
                    } if cfg is not None else {}
        return WorldModel(WorldModelConfig(**{**settings, **sizes}), self.obs_shape)

    def actor(self) -> NormMLP:
        return NormMLP([self.hidden] * self.layers, 2 * self.action_size)

    def critic(self) -> NormMLP:
        return NormMLP([self.hidden] * self.layers, self.num_bins, zero_output=True)

    @property
    def features(self) -> int:
        return self.deter + self.stoch * self.classes


@struct.dataclass
class Networks:
    world_model: Any
    actor: Any
    critic: Any
    slow_critic: Any  # an exponential moving average of the critic: the critic's regulariser


@struct.dataclass
class OptStates:
    world_model: Any
    actor: Any
    critic: Any


@struct.dataclass
class PolicyMemory:
    """What the policy carries from one step of an env to the next; all zeros at an episode's start."""

    latent: Latent  # [B, ...]: the latent state after the last observation
    action: jax.Array  # [B, action]: the action taken from it
    started: jax.Array  # [B]: 0 before the episode's first step, 1 after


@struct.dataclass
class TrainState:
    params: Networks
    opt_state: OptStates
    return_range: ReturnRange  # of imagined returns, what the actor's advantages are divided by
    # steps as they arrive: obs (of the successor), action (that led there), reward, is_terminal,
    # is_first (the step came from an episode's first); of a dict observation only obs_key is kept
    replay: replay.ReplayBuffer
    env_state: Any  # envs_mjx State with a leading [num_envs] axis
    policy_memory: PolicyMemory  # of each training env, [num_envs, ...]
    key: jax.Array
    iteration: jax.Array  # int32 scalar
    spec: Spec = struct.field(pytree_node=False)


@struct.dataclass
class PolicyParams:
    """What the policy needs: the world model (to filter observations into latent states) and the actor."""

    world_model: Any
    actor: Any
    spec: Spec = struct.field(pytree_node=False)


def _optimizer(lr, clip) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr, eps=1e-8))


def _optimizers(cfg: Config) -> OptStates:
    """The three optimizers, in an OptStates of GradientTransformations."""
    return OptStates(world_model=_optimizer(cfg.model_lr, cfg.model_clip),
                     actor=_optimizer(cfg.actor_lr, cfg.actor_clip),
                     critic=_optimizer(cfg.critic_lr, cfg.critic_clip))


def zero_memory(spec: Spec, batch: int) -> PolicyMemory:
    latent = Latent(jnp.zeros((batch, spec.deter)), jnp.zeros((batch, spec.stoch, spec.classes)))
    return PolicyMemory(latent, jnp.zeros((batch, spec.action_size)), jnp.zeros(batch))


def init(key: jax.Array, env, cfg: Config) -> TrainState:
    """Networks, optimizers, an empty replay and `num_envs` reset envs; `env` is batched."""
    key_model, key_actor, key_critic, key_env, key_state = jax.random.split(key, 5)
    # jit: run eagerly, MJX's reset dispatches op by op (tens of seconds).
    env_state = jax.jit(env.reset)(jax.random.split(key_env, cfg.num_envs))
    one_obs = actor.select(jax.tree.map(lambda x: x[0], env_state.obs), cfg.obs_key)
    check_image_shape(one_obs.shape)
    spec = Spec.of(cfg, one_obs.shape, env.action_size)
    memory = zero_memory(spec, 1)
    model_params = spec.world_model().init(key_model, memory.latent, memory.action, one_obs[None],
                                           jnp.ones(1), key_model)
    features = jnp.zeros((1, spec.features))
    critic_params = spec.critic().init(key_critic, features)
    params = Networks(world_model=model_params, actor=spec.actor().init(key_actor, features),
                      critic=critic_params, slow_critic=jax.tree.map(jnp.copy, critic_params))
    optimizers = _optimizers(cfg)
    example = {"obs": one_obs, "action": jnp.zeros(env.action_size), "reward": jnp.zeros(()),
               "is_first": jnp.zeros(()), "is_terminal": jnp.zeros(())}
    replay.check_fits(example, cfg.replay_capacity, "algo.replay_capacity")
    return TrainState(
        params=params,
        opt_state=OptStates(world_model=optimizers.world_model.init(params.world_model),
                            actor=optimizers.actor.init(params.actor),
                            critic=optimizers.critic.init(params.critic)),
        return_range=ReturnRange.zeros(),
        replay=replay.init(example, cfg.replay_capacity, cfg.num_envs),
        env_state=env_state,
        policy_memory=zero_memory(spec, cfg.num_envs),
        key=key_state,
        iteration=jnp.zeros((), jnp.int32),
        spec=spec,
    )


def policy_params(state: TrainState) -> PolicyParams:
    return PolicyParams(world_model=state.params.world_model, actor=state.params.actor, spec=state.spec)


def start_from(state: TrainState, params) -> TrainState:
    """`state` with the world model of another run's `params` (a world_model run's, or a Dreamer run's
    policy parameters); its optimizer starts afresh. ValueError when the sizes differ."""
    mine, theirs = state.spec, params.spec
    names = [field.name for field in dataclasses.fields(Spec)]
    differing = [f"{name} {getattr(theirs, name)} there, {getattr(mine, name)} here"
                 for name in names if getattr(theirs, name) != getattr(mine, name)]
    if differing:
        raise ValueError(f"its world model has another shape ({'; '.join(differing)}): set the same "
                         f"algo.deter, hidden, stoch, classes, ... as it was trained with")
    return state.replace(params=state.params.replace(world_model=params.world_model))


def prefill(state: TrainState, steps: dict) -> TrainState:
    """`state` with recorded `steps` (a stream of STEP_FIELDS, as jaxrl.data.sequences loads episodes) in
    its replay's first rows: the stream cut into `num_envs` runs of consecutive steps, one per env's column,
    the steps past a whole number of rows left out. The live steps then follow each column, their first
    flagged is_first, and learning starts once the replay holds min_replay_size steps. ValueError when the
    steps do not fit the replay."""
    buffer = state.replay
    recorded = jax.tree.leaves(steps)[0].shape[0]
    rows = recorded // buffer.num_envs
    if not 1 <= rows <= buffer.rows:
        raise ValueError(f"{recorded:,} recorded steps fill {rows:,} rows of the replay's {buffer.num_envs} "
                         f"env columns, which holds {buffer.rows:,}: record at least num_envs steps and at "
                         f"most algo.replay_capacity")
    for name, stored in buffer.data.items():
        if steps[name].shape[1:] != stored.shape[2:]:
            raise ValueError(f"the recorded {name!r} is {steps[name].shape[1:]} a step, the replay's "
                             f"{stored.shape[2:]}: were the episodes recorded with other settings?")
    columns = jax.tree.map(lambda values, stored: jnp.swapaxes(
        values[:rows * buffer.num_envs].reshape(buffer.num_envs, rows, *values.shape[1:]), 0, 1
    ).astype(stored.dtype), steps, buffer.data)
    return state.replace(replay=replay.insert(buffer, columns))


def _action_distribution(spec: Spec, actor_params, features: jax.Array, cfg: Config | None = None):
    bounds = {} if cfg is None else {"min_std": cfg.actor_min_std, "max_std": cfg.actor_max_std}
    return BoundedNormal.from_network_output(spec.actor().apply(actor_params, features), **bounds)


def _act(model: WorldModel, params: PolicyParams, obs, memory: PolicyMemory, key: jax.Array | None,
         cfg: Config | None = None) -> tuple[jax.Array, PolicyMemory]:
    """(actions [B, A] in [-1, 1], memory) of the policy that filters `obs` [B, ...] into the latent
    state: sampled with a key, the modes of posterior and actor without one."""
    spec = params.spec
    key_filter, key_action = (None, None) if key is None else jax.random.split(key)
    embed = model.apply(params.world_model, actor.select(obs, spec.obs_key), method=WorldModel.embed)
    latent, _, _ = model.apply(params.world_model, memory.latent, memory.action, embed, 1.0 - memory.started,
                               key_filter, method=WorldModel.observe_step)
    dist = _action_distribution(spec, params.actor, latent.features(), cfg)
    action = dist.mode() if key is None else jnp.clip(dist.sample(key_action), -1.0, 1.0)
    return action, PolicyMemory(latent, action, jnp.ones_like(memory.started))


def initial_memory(params: PolicyParams, obs) -> PolicyMemory:
    """The memory at an episode's start (zeros), for observations [B, ...] of its first step."""
    return zero_memory(params.spec, actor.select(obs, params.spec.obs_key).shape[0])


def act(params: PolicyParams, obs, memory: PolicyMemory,
        key: jax.Array | None = None) -> tuple[jax.Array, PolicyMemory]:
    """(actions [B, A] in [-1, 1], memory) for observations [B, ...]: deterministic without a key."""
    return _act(params.spec.world_model(), params, obs, memory, key)


def policy(params: PolicyParams, obs, key: jax.Array | None = None) -> jax.Array:
    """Actions in [-1, 1] for observations [B, ...] without memory: each the first of its episode. The
    faithful policy is `act`, which evaluation, collection and export run."""
    return act(params, obs, initial_memory(params, obs), key)[0]


def export_memory_size(params: PolicyParams) -> int:
    """Floats of memory per env: a started flag, the latent state (deter, stoch x classes), the action."""
    return 1 + params.spec.features + params.spec.action_size


def export_policy(params: PolicyParams):
    """fn(x[B, n], memory[B, m]) -> (action[B, a], memory[B, m]), `act` without a key; memory zeros at an
    episode's start, then [started, deter, stoch one-hots, action] as `act` left them. Refuses a policy
    that reads images (ValueError): an exported policy reads the env's state vector."""
    spec = params.spec
    if is_image(spec.obs_shape):
        shape = "x".join(map(str, spec.obs_shape))
        raise ValueError(f"this policy reads images ({spec.obs_key!r}, {shape}), and exported policies read "
                         f"the env's state vector: export a run trained on states (algo.obs_key=state)")
    ends = list(itertools.accumulate([1, spec.deter, spec.stoch * spec.classes]))

    def act_flat(x, memory):
        started, deter, stoch, action = jnp.split(memory, ends, axis=-1)
        latent = Latent(deter, stoch.reshape(-1, spec.stoch, spec.classes))
        action, memory = act(params, x, PolicyMemory(latent, action, started[:, 0]))
        return action, jnp.concatenate([memory.started[:, None], memory.latent.features(), memory.action], -1)

    return act_flat


def _behaviour_loss(actor_params, critic_params, return_range: ReturnRange, model: WorldModel, model_params,
                    starts: Latent, key: jax.Array, spec: Spec, cfg: Config):
    """(actor loss, (imagined trajectory, return range, metrics)) on `imag_horizon` steps imagined from
    `starts` [N] by the world model and the actor. Differentiate it by the actor's parameters alone: the
    world model and the critic only judge. The trajectory holds the features [H + 1, N, F] of its
    states, the lambda-returns [H, N] of states 0 .. H-1 and their weights, held constant, for the
    critic's loss."""
    discount = 1.0 - 1.0 / cfg.horizon
    bins = twohot.symexp_bins(spec.num_bins)
    backprop = cfg.actor_grad == "backprop"

    def step(latent, action, key_step):  # the world model takes the action the env would: clipped
        return model.apply(model_params, latent, jnp.clip(action, -1.0, 1.0), key_step,
                           method=WorldModel.imagine_step)

    # With backprop, the returns' gradient flows back through the imagined states into the actions
    # (reparameterized samples); with reinforce, only through the log-probabilities of held samples.
    sampling_actor = actor_params if backprop else jax.lax.stop_gradient(actor_params)

    def sample_action(features, key_action):
        return _action_distribution(spec, sampling_actor, features, cfg).sample(key_action)

    latents, actions = imagine(step, sample_action, starts, cfg.imag_horizon, key)
    features = latents.features()  # [H + 1, N, F]
    if not backprop:
        features, actions = jax.lax.stop_gradient(features), jax.lax.stop_gradient(actions)
    reward_logits, continue_logits = model.apply(model_params, features[1:],
                                                 method=WorldModel.reward_and_continue)
    continues = jax.nn.sigmoid(continue_logits)
    values = twohot.decode(spec.critic().apply(critic_params, features), bins)
    returns = lambda_returns(twohot.decode(reward_logits, bins), continues, values, discount,
                             cfg.return_lambda)
    weights = actor_critic.state_weights(continues, discount)[:-1]
    return_range = return_range.update(returns, cfg.retnorm_rate)

    dist = _action_distribution(spec, actor_params, features[:-1], cfg)
    entropies = dist.entropy()
    if backprop:
        loss = actor_critic.backprop_actor_loss(returns, entropies, return_range.scale(), weights, cfg.actent)
    else:
        loss = actor_critic.actor_loss(dist.log_prob(actions), entropies, returns, values[:-1],
                                       return_range.scale(), weights, cfg.actent)
    trajectory = jax.lax.stop_gradient({"features": features, "returns": returns, "weights": weights})
    metrics = {"loss/actor": loss, "imagined_return": jnp.mean(returns), "return_scale": return_range.scale(),
               "entropy": jnp.mean(entropies)}
    return loss, (trajectory, return_range, metrics)


def _critic_loss(critic_params, slow_critic_params, trajectory: dict, spec: Spec, cfg: Config) -> jax.Array:
    """The critic's two-hot loss towards the imagined returns, regularised towards the slow critic."""
    bins, features = twohot.symexp_bins(spec.num_bins), trajectory["features"][:-1]
    slow_values = twohot.decode(spec.critic().apply(slow_critic_params, features), bins)
    return actor_critic.critic_loss(spec.critic().apply(critic_params, features), slow_values,
                                    trajectory["returns"], trajectory["weights"], bins, cfg.slowreg)


def _update(params: Networks, opt_state: OptStates, return_range: ReturnRange, buffer: replay.ReplayBuffer,
            key: jax.Array, spec: Spec, cfg: Config):
    """One world-model update on a batch of chunks, then one actor-critic update on trajectories imagined
    from the batch's posterior states (by the updated world model)."""
    key_sample, key_model, key_imagine = jax.random.split(key, 3)
    model, optimizers = spec.world_model(cfg), _optimizers(cfg)
    chunks = time_major_chunks(replay.sample_chunks(buffer, key_sample, cfg.batch_size, cfg.batch_length))
    model_params, model_opt_state, posteriors, metrics = world_model_update(
        model, params.world_model, opt_state.world_model, optimizers.world_model, chunks, key_model)

    starts = jax.tree.map(lambda x: jax.lax.stop_gradient(x.reshape(-1, *x.shape[2:])), posteriors)
    (_, (trajectory, return_range, behaviour_metrics)), actor_grads = jax.value_and_grad(
        _behaviour_loss, has_aux=True)(params.actor, params.critic, return_range, model, model_params, starts,
                                       key_imagine, spec, cfg)
    critic_loss, critic_grads = jax.value_and_grad(_critic_loss)(params.critic, params.slow_critic,
                                                                 trajectory, spec, cfg)
    behaviour_metrics["loss/critic"] = critic_loss
    actor_updates, actor_opt_state = optimizers.actor.update(actor_grads, opt_state.actor, params.actor)
    critic_updates, critic_opt_state = optimizers.critic.update(critic_grads, opt_state.critic, params.critic)
    critic_params = optax.apply_updates(params.critic, critic_updates)
    new_params = Networks(
        world_model=model_params, actor=optax.apply_updates(params.actor, actor_updates),
        critic=critic_params,
        slow_critic=optax.incremental_update(critic_params, params.slow_critic, cfg.slow_critic_rate))
    metrics.update(behaviour_metrics)
    metrics.update({"grad_norm/actor": optax.tree.norm(actor_grads),
                    "grad_norm/critic": optax.tree.norm(critic_grads)})
    return new_params, OptStates(model_opt_state, actor_opt_state, critic_opt_state), return_range, metrics


def train_step(state: TrainState, env, cfg: Config) -> tuple[TrainState, dict]:
    """One Dreamer iteration; `env` is the batched training env. Pure."""
    key, key_rollout, key_updates = jax.random.split(state.key, 3)
    spec, model = state.spec, state.spec.world_model(cfg)
    warming_up = state.replay.size < cfg.min_replay_size

    def act_and_remember(obs, memory, key_step):
        key_policy, key_uniform = jax.random.split(key_step)
        learned, remembered = _act(model, policy_params(state), obs, memory, key_policy, cfg)
        uniform = jax.random.uniform(key_uniform, learned.shape, minval=-1.0, maxval=1.0)
        action = jnp.where(warming_up, uniform, learned)
        return action, remembered.replace(action=action), {"is_first": 1.0 - memory.started}

    env_state, memory, trajectory, episode_metrics = rollout.unroll_with_memory(
        env, state.env_state, state.policy_memory, act_and_remember, key_rollout, cfg.unroll_length)
    arrivals = {"obs": actor.select(trajectory.final_obs, spec.obs_key), "action": trajectory.action,
                "reward": trajectory.reward, "is_first": trajectory.extras["is_first"],
                "is_terminal": trajectory.done * (1.0 - trajectory.truncation)}
    buffer = replay.insert(state.replay, arrivals)

    def update(carry, key_update):
        params, opt_state, return_range = carry
        params, opt_state, return_range, metrics = _update(params, opt_state, return_range, buffer,
                                                           key_update, spec, cfg)
        return (params, opt_state, return_range), metrics

    def learn():
        carry = (state.params, state.opt_state, state.return_range)
        keys = jax.random.split(key_updates, updates_per_iteration(cfg))
        carry, metrics = jax.lax.scan(update, carry, keys)
        return (*carry, jax.tree.map(jnp.mean, metrics))

    def wait():  # still collecting random steps: the same outputs, unchanged
        shapes = jax.eval_shape(learn)[3]
        return (state.params, state.opt_state, state.return_range,
                jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

    params, opt_state, return_range, metrics = jax.lax.cond(buffer.size >= cfg.min_replay_size, learn, wait)
    metrics.update(episode_metrics)
    metrics["replay_size"] = buffer.size.astype(jnp.float32)
    new_state = state.replace(params=params, opt_state=opt_state, return_range=return_range, replay=buffer,
                              env_state=env_state, policy_memory=memory, key=key,
                              iteration=state.iteration + 1)
    return new_state, metrics
