"""Dreamer's recurrent state-space model (RSSM) and the heads that read its latent state, in Flax.

The latent state of one env is `deter` (a GRU's state: what the model
remembers) and `stoch` (`stoch` categorical variables of `classes` classes:
what it is unsure of). Each step, the GRU advances `deter` from the last state
and action; the prior guesses `stoch` from `deter` alone (imagination), the
posterior from `deter` and the observation's embedding (filtering). An
episode's first step starts from the zero state with a zero action, so chunks
of replay that cross episodes do not leak one episode into the next.

Every hidden layer is Dense -> RMSNorm -> SiLU. The reward head's output layer
starts at zero: its two-hot prediction is exactly 0 until it learns (twohot).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxrl import categorical_latent, twohot


class Latent(NamedTuple):
    deter: jax.Array  # [..., deter]
    stoch: jax.Array  # [..., stoch, classes]: one-hot samples (straight-through)

    def features(self) -> jax.Array:
        """[..., deter + stoch * classes]: what the heads, the actor and the critic read."""
        return jnp.concatenate([self.deter, self.stoch.reshape(*self.stoch.shape[:-2], -1)], axis=-1)


class RMSNorm(nn.Module):
    """x / rms(x) over the last axis, times a learned scale: flax's nn.RMSNorm (same parameter), written
    out because jax2onnx 0.17 turns flax's into an opset-18 ReduceMean and `jaxrl export` writes opset 17."""

    epsilon: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        mean_square = jnp.sum(jnp.square(x), axis=-1, keepdims=True) / x.shape[-1]
        return x * jax.lax.rsqrt(mean_square + self.epsilon) * scale


class NormDense(nn.Module):
    """Dense -> RMSNorm -> SiLU."""

    size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.silu(RMSNorm()(nn.Dense(self.size, use_bias=False)(x)))


class NormMLP(nn.Module):
    """Hidden NormDense layers, then a plain Dense output (zero-initialised where `zero_output`)."""

    layer_sizes: Sequence[int]
    out_size: int
    zero_output: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in self.layer_sizes:
            x = NormDense(size)(x)
        init = nn.initializers.zeros if self.zero_output else nn.initializers.lecun_uniform()
        return nn.Dense(self.out_size, kernel_init=init, name="out")(x)


class NormGRUCell(nn.Module):
    """A GRU whose gates come from one normalised Dense of [input, state]; the update gate starts biased
    towards keeping the state (-1 before its sigmoid)."""

    size: int

    @nn.compact
    def __call__(self, state: jax.Array, x: jax.Array) -> jax.Array:
        gates = RMSNorm()(nn.Dense(3 * self.size, use_bias=False)(jnp.concatenate([x, state], -1)))
        reset, candidate, update = jnp.split(gates, 3, axis=-1)
        reset = nn.sigmoid(reset)
        candidate = jnp.tanh(reset * candidate)
        update = nn.sigmoid(update - 1.0)
        return update * candidate + (1.0 - update) * state


class RSSM(nn.Module):
    deter: int = 512
    hidden: int = 64
    stoch: int = 32
    classes: int = 32
    unimix: float = 0.01

    def initial(self, batch_shape: tuple[int, ...]) -> Latent:
        stoch = jnp.zeros((*batch_shape, self.stoch, self.classes))
        return Latent(jnp.zeros((*batch_shape, self.deter)), stoch)

    def setup(self):
        self.gru_input = NormDense(self.hidden)
        self.gru = NormGRUCell(self.deter)
        self.prior_net = NormMLP([self.hidden], self.stoch * self.classes)
        self.posterior_net = NormMLP([self.hidden], self.stoch * self.classes)

    def _logits(self, net: nn.Module, x: jax.Array) -> jax.Array:
        return net(x).reshape(*x.shape[:-1], self.stoch, self.classes)

    def _draw(self, key: jax.Array | None, logits: jax.Array) -> jax.Array:
        """A straight-through sample of `logits`, or without a key their mode."""
        if key is None:
            return categorical_latent.mode(logits)
        return categorical_latent.sample(key, logits, self.unimix)

    def imagine_step(self, latent: Latent, action: jax.Array,
                     key: jax.Array | None) -> tuple[Latent, jax.Array]:
        """The next latent state from the prior (its mode without a key), and the prior's logits
        [..., stoch, classes]."""
        flat_stoch = latent.stoch.reshape(*latent.stoch.shape[:-2], -1)
        deter = self.gru(latent.deter, self.gru_input(jnp.concatenate([flat_stoch, action], -1)))
        logits = self._logits(self.prior_net, deter)
        return Latent(deter, self._draw(key, logits)), logits

    def observe_step(self, latent: Latent, action: jax.Array, embed: jax.Array, is_first: jax.Array,
                     key: jax.Array | None) -> tuple[Latent, jax.Array, jax.Array]:
        """(posterior latent state, prior logits, posterior logits) of a step that saw `embed`; where
        `is_first`, from the zero state and a zero action. Without a key, the modes instead of samples."""
        keep = (1.0 - is_first.astype(action.dtype))[..., None]
        latent = Latent(latent.deter * keep, latent.stoch * keep[..., None])
        prior_key, posterior_key = (None, None) if key is None else jax.random.split(key)
        prior, prior_logits = self.imagine_step(latent, action * keep, prior_key)
        posterior_logits = self._logits(self.posterior_net, jnp.concatenate([prior.deter, embed], -1))
        posterior = Latent(prior.deter, self._draw(posterior_key, posterior_logits))
        return posterior, prior_logits, posterior_logits

    def __call__(self, latent: Latent, action: jax.Array, embed: jax.Array, is_first: jax.Array,
                 key: jax.Array):
        """observe_step; `init` builds every parameter through it."""
        return self.observe_step(latent, action, embed, is_first, key)


def observe(step, latent: Latent, actions: jax.Array, embeds: jax.Array, is_first: jax.Array,
            key: jax.Array) -> tuple[Latent, jax.Array, jax.Array]:
    """The posterior latent states [T, ...] of a chunk, filtered by `step` (an applied
    RSSM.observe_step) from `latent` (the state before its first step), with the prior and posterior
    logits [T, ..., stoch, classes]. `actions[t]` is the action taken before step t."""

    def scanned(latent, inputs):
        latent, prior_logits, posterior_logits = step(latent, *inputs)
        return latent, (latent, prior_logits, posterior_logits)

    keys = jax.random.split(key, actions.shape[0])
    _, (latents, prior_logits, posterior_logits) = jax.lax.scan(scanned, latent,
                                                                (actions, embeds, is_first, keys))
    return latents, prior_logits, posterior_logits


def imagine(step, policy, latent: Latent, horizon: int, key: jax.Array):
    """`horizon` steps of `step` (an applied RSSM.imagine_step) from `latent` [...] with actions of
    `policy(features, key)`: the latent states [horizon + 1, ...] (the start first) and the actions
    [horizon, ..., action] taken between them."""

    def scanned(latent, step_key):
        action_key, model_key = jax.random.split(step_key)
        action = policy(latent.features(), action_key)
        following, _ = step(latent, action, model_key)
        return following, (following, action)

    _, (latents, actions) = jax.lax.scan(scanned, latent, jax.random.split(key, horizon))
    start = jax.tree.map(lambda x: x[None], latent)
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), start, latents), actions


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """DreamerV3's names; the defaults are its 1M-parameter size (`dmc_proprio`)."""

    deter: int = 512  # GRU state
    hidden: int = 64  # width of every hidden layer, and of the observation's embedding
    stoch: int = 32  # categorical variables
    classes: int = 32  # classes of each
    unimix: float = 0.01  # uniform share mixed into every categorical
    free_nats: float = 1.0  # KL below this is not pushed down
    dyn_scale: float = 1.0  # weight of the KL's dynamics part (trains the prior)
    rep_scale: float = 0.1  # weight of its representation part (trains the posterior)
    layers: int = 2  # hidden layers of encoder, decoder, reward and continue heads
    num_bins: int = 255  # of the reward head's two-hot


class WorldModel(nn.Module):
    """Encoder (of symlog observations), RSSM, decoder (to symlog observations), reward head (two-hot over
    symexp bins) and continue head (a Bernoulli logit) for flat observations of `obs_size`."""

    cfg: WorldModelConfig
    obs_size: int

    def setup(self):
        cfg, widths = self.cfg, [self.cfg.hidden] * self.cfg.layers
        self.encoder = NormMLP(widths, cfg.hidden)
        self.rssm = RSSM(cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.unimix)
        self.decoder = NormMLP(widths, self.obs_size)
        self.reward_head = NormMLP(widths, cfg.num_bins, zero_output=True)
        self.continue_head = NormMLP(widths, 1)

    def embed(self, obs: jax.Array) -> jax.Array:
        return self.encoder(twohot.symlog(obs))

    def observe_step(self, latent, action, embed, is_first, key):
        return self.rssm.observe_step(latent, action, embed, is_first, key)

    def imagine_step(self, latent, action, key):
        return self.rssm.imagine_step(latent, action, key)

    def heads(self, features: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(decoded symlog observation, reward logits [..., num_bins], continue logit [...])."""
        return (self.decoder(features), *self.reward_and_continue(features))

    def reward_and_continue(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(reward logits [..., num_bins], continue logit [...]): what imagination needs of the heads."""
        return self.reward_head(features), self.continue_head(features)[..., 0]

    def __call__(self, latent: Latent, action: jax.Array, obs: jax.Array, is_first: jax.Array,
                 key: jax.Array):
        """One filtered step and its heads; `init` builds every parameter through it."""
        latent, _, _ = self.observe_step(latent, action, self.embed(obs), is_first, key)
        return self.heads(latent.features())


def world_model_loss(model: WorldModel, params, chunk: dict, latent: Latent, key: jax.Array):
    """(mean loss, (posterior latent states [T, B], metrics)) of a time-major chunk: "obs" [T, B, obs],
    "action" (taken before each step) [T, B, action], "reward" (received on arriving) [T, B], "is_first"
    and "is_terminal" [T, B]. Only termination ends a continuation; a time limit does not."""
    cfg = model.cfg
    step = functools.partial(model.apply, params, method=WorldModel.observe_step)
    embeds = model.apply(params, chunk["obs"], method=WorldModel.embed)
    latents, prior_logits, posterior_logits = observe(step, latent, chunk["action"], embeds,
                                                      chunk["is_first"], key)
    decoded, reward_logits, continue_logit = model.apply(params, latents.features(), method=WorldModel.heads)
    terms = {
        "reconstruction": jnp.sum(jnp.square(decoded - twohot.symlog(chunk["obs"])), -1),
        "reward": twohot.loss(reward_logits, chunk["reward"], twohot.symexp_bins(cfg.num_bins)),
        "continue": optax.sigmoid_binary_cross_entropy(continue_logit, 1.0 - chunk["is_terminal"]),
    }
    terms["dynamics"], terms["representation"] = categorical_latent.kl_losses(
        posterior_logits, prior_logits, cfg.unimix, cfg.free_nats)
    scales = {"dynamics": cfg.dyn_scale, "representation": cfg.rep_scale}
    total = sum(scales.get(name, 1.0) * term for name, term in terms.items())
    return jnp.mean(total), (latents, {f"loss/{name}": jnp.mean(term) for name, term in terms.items()})
