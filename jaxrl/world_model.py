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


def _fold_batch(x: jax.Array, image_dims: int) -> tuple[jax.Array, tuple[int, ...]]:
    """x [..., *image] as [N, *image], and the leading shape to unfold it with."""
    leading = x.shape[:x.ndim - image_dims]
    return x.reshape(-1, *x.shape[x.ndim - image_dims:]), leading


class PatchConv(nn.Module):
    """A 2-d convolution ("SAME" zero padding) as one matrix product over its patches, each output pixel's
    `size` x `size` window of [N, H, W, C] gathered by strided slices. XLA's CPU backend runs the
    gradients of lax's convolutions inside a loop (the update scan) at several times their cost outside
    one; slices and a matrix product keep their speed there."""

    features: int
    size: int
    stride: int = 1
    use_bias: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, height, width, _ = x.shape
        low = (self.size - self.stride) // 2
        x = jnp.pad(x, ((0, 0), (low, self.size - self.stride - low), (low, self.size - self.stride - low),
                        (0, 0)))
        out_h, out_w = height // self.stride, width // self.stride
        step = self.stride
        patches = jnp.concatenate([x[:, i:i + step * out_h:step, j:j + step * out_w:step]
                                   for i in range(self.size) for j in range(self.size)], axis=-1)
        return nn.Dense(self.features, use_bias=self.use_bias)(patches)


class ConvEncoder(nn.Module):
    """Images [..., H, W, C] -> embeddings [..., out]: stride-2 convolutions (4x4 kernels, RMSNorm over
    channels, SiLU) doubling from `depth` channels until 4 x 4 pixels are left, then a NormDense."""

    depth: int
    out_size: int

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        x, leading = _fold_batch(image, 3)
        channels = self.depth
        while x.shape[1] > 4:
            x = nn.silu(RMSNorm()(PatchConv(channels, 4, stride=2)(x)))
            channels *= 2
        return NormDense(self.out_size)(x.reshape(*leading, -1))


class ConvDecoder(nn.Module):
    """Features [..., F] -> images [..., H, W, C]: the encoder's mirror (a Dense to 4 x 4 pixels, then
    doublings of the side, each halving the channels down to `depth`, the last to C channels)."""

    depth: int
    image_shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x, leading = _fold_batch(features, 1)
        height, width, out_channels = self.image_shape
        doublings = (height // 4).bit_length() - 1
        channels = self.depth * 2 ** (doublings - 1)
        x = nn.Dense(4 * 4 * channels)(x).reshape(-1, 4, 4, channels)
        for layer in range(doublings):
            last = layer == doublings - 1
            out = out_channels if last else channels // 2
            # A sub-pixel convolution (a 3x3 convolution to 4 x out channels at this size, each pixel's
            # four then spread over a 2 x 2 block of the next size): a transposed convolution's upsampling.
            x = PatchConv(4 * out, 3, use_bias=last)(x)
            n, h, w, _ = x.shape
            x = x.reshape(n, h, w, 2, 2, out).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, out)
            if not last:
                x, channels = nn.silu(RMSNorm()(x)), out
        return x.reshape(*leading, height, width, out_channels)


def is_image(obs_shape: tuple[int, ...]) -> bool:
    """Whether observations of this shape (one env's) are images [H, W, C] rather than vectors."""
    return len(obs_shape) == 3


def check_image_shape(obs_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless the world model can encode observations of this shape."""
    if len(obs_shape) not in (1, 3):
        raise ValueError(f"the world model reads vectors [N] or images [H, W, C], not observations of "
                         f"shape {obs_shape}")
    if is_image(obs_shape):
        height, width, _ = obs_shape
        if height != width or height < 8 or height & (height - 1):
            raise ValueError(f"images for the world model must be square with a power-of-two side of at "
                             f"least 8 (e.g. env.pixels=32 or 64), got {height} x {width}")


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
    cnn_depth: int = 32  # channels of the first convolution, for image observations


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward head (two-hot over symexp bins) and continue head (a Bernoulli
    logit) for observations of `obs_shape`: vectors [N] (symlog, MLPs) or uint8 images [H, W, C] (scaled
    to [-0.5, 0.5], CNNs). The decoder predicts the observation in that scaled form (`target`)."""

    cfg: WorldModelConfig
    obs_shape: tuple[int, ...]

    def setup(self):
        cfg, widths = self.cfg, [self.cfg.hidden] * self.cfg.layers
        if is_image(self.obs_shape):
            self.encoder = ConvEncoder(cfg.cnn_depth, cfg.hidden)
            self.decoder = ConvDecoder(cfg.cnn_depth, self.obs_shape)
        else:
            self.encoder = NormMLP(widths, cfg.hidden)
            self.decoder = NormMLP(widths, self.obs_shape[0])
        self.rssm = RSSM(cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.unimix)
        self.reward_head = NormMLP(widths, cfg.num_bins, zero_output=True)
        self.continue_head = NormMLP(widths, 1)

    def target(self, obs: jax.Array) -> jax.Array:
        """The form the encoder reads and the decoder predicts: symlog of vectors, images in [-0.5, 0.5]."""
        if is_image(self.obs_shape):
            return obs.astype(jnp.float32) / 255.0 - 0.5
        return twohot.symlog(obs)

    def embed(self, obs: jax.Array) -> jax.Array:
        return self.encoder(self.target(obs))

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
    """(mean loss, (posterior latent states [T, B], metrics)) of a time-major chunk: "obs" [T, B, *obs],
    "action" (taken before each step) [T, B, action], "reward" (received on arriving) [T, B], "is_first"
    and "is_terminal" [T, B]. Only termination ends a continuation; a time limit does not."""
    cfg = model.cfg
    step = functools.partial(model.apply, params, method=WorldModel.observe_step)
    embeds = model.apply(params, chunk["obs"], method=WorldModel.embed)
    latents, prior_logits, posterior_logits = observe(step, latent, chunk["action"], embeds,
                                                      chunk["is_first"], key)
    decoded, reward_logits, continue_logit = model.apply(params, latents.features(), method=WorldModel.heads)
    target = model.apply(params, chunk["obs"], method=WorldModel.target)
    obs_axes = tuple(range(-len(model.obs_shape), 0))
    terms = {
        "reconstruction": jnp.sum(jnp.square(decoded - target), obs_axes),
        "reward": twohot.loss(reward_logits, chunk["reward"], twohot.symexp_bins(cfg.num_bins)),
        "continue": optax.sigmoid_binary_cross_entropy(continue_logit, 1.0 - chunk["is_terminal"]),
    }
    terms["dynamics"], terms["representation"] = categorical_latent.kl_losses(
        posterior_logits, prior_logits, cfg.unimix, cfg.free_nats)
    scales = {"dynamics": cfg.dyn_scale, "representation": cfg.rep_scale}
    total = sum(scales.get(name, 1.0) * term for name, term in terms.items())
    return jnp.mean(total), (latents, {f"loss/{name}": jnp.mean(term) for name, term in terms.items()})


def time_major_chunks(chunks: dict) -> dict:
    """Batch-major chunks [B, T, ...] of stored steps as the world model learns from them: time-major
    [T, B, ...], each starting as an episode does (a chunk that starts mid-episode has no latent state to
    go on)."""
    chunks = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), chunks)
    return {**chunks, "is_first": chunks["is_first"].at[0].set(1.0)}


def world_model_update(model: WorldModel, params, opt_state, optimizer: optax.GradientTransformation,
                       chunks: dict, key: jax.Array):
    """One gradient step of `world_model_loss` on time-major `chunks` [T, B] (time_major_chunks):
    (params, opt_state, posterior latent states [T, B], metrics: the loss, its parts, the gradient's
    norm)."""
    cfg, batch = model.cfg, chunks["action"].shape[1]
    start = Latent(jnp.zeros((batch, cfg.deter)), jnp.zeros((batch, cfg.stoch, cfg.classes)))
    (loss, (posteriors, metrics)), grads = jax.value_and_grad(
        lambda p: world_model_loss(model, p, chunks, start, key), has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    metrics.update({"loss/world_model": loss, "grad_norm/world_model": optax.tree.norm(grads)})
    return optax.apply_updates(params, updates), opt_state, posteriors, metrics
