"""Flax modules shared by the learners."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "swish": nn.swish,
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers of `layer_sizes`; the last one has no activation.

    `dropout` > 0 drops that share of each hidden layer's outputs when called with deterministic=False
    (training; `apply` then needs rngs={"dropout": key}); deterministic calls, the default, never do.
    """

    layer_sizes: Sequence[int]
    activation: str = "swish"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        act = activation(self.activation)
        for i, size in enumerate(self.layer_sizes):
            x = nn.Dense(size, kernel_init=nn.initializers.lecun_uniform(), name=f"dense_{i}")(x)
            if i < len(self.layer_sizes) - 1:
                x = act(x)
                if self.dropout > 0.0:
                    x = nn.Dropout(self.dropout, deterministic=deterministic)(x)
        return x


class RecurrentMLP(nn.Module):
    """An LSTM run over a sequence x [..., T, D] from a zero state, then an MLP of its last output.

    The T steps are a Python loop of one shared cell rather than nn.RNN's scan: T is short (an
    observation history), and the unrolled steps convert to ONNX with a symbolic batch size, which
    the scan (its carry initialized from the batch shape) does not.
    """

    lstm_size: int
    layer_sizes: Sequence[int]
    activation: str = "swish"
    dropout: float = 0.0  # the MLP's

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        cell = nn.OptimizedLSTMCell(self.lstm_size, name="lstm")
        zeros = jnp.zeros((*x.shape[:-2], self.lstm_size), x.dtype)
        carry, out = (zeros, zeros), zeros
        for t in range(x.shape[-2]):
            carry, out = cell(carry, x[..., t, :])
        return MLP(self.layer_sizes, self.activation, self.dropout, name="mlp")(out, deterministic)


def mish(x: jax.Array) -> jax.Array:
    """x tanh(softplus(x)), the activation of Diffusion Policy's U-Net.

    Written out rather than jax.nn.mish: jax2onnx turns that into ONNX's Mish operator, which needs
    opset 18, and `jaxrl export` writes opset 17; these three operators exist there.
    """
    return x * jnp.tanh(jax.nn.softplus(x))


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sin/cos features of a scalar per example (a timestep): [B] -> [B, features].

    Frequencies are geometric from 1 to 1/max_period, so neighbouring timesteps differ in the fast
    features and distant ones in the slow; no parameters.
    """

    features: int
    max_period: float = 10_000.0

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        if self.features % 2 or self.features < 4:
            raise ValueError(f"SinusoidalEmbedding needs an even features >= 4, got {self.features}")
        half = self.features // 2
        frequencies = jnp.exp(-jnp.log(self.max_period) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
        angles = jnp.asarray(t, jnp.float32)[..., None] * frequencies
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class TemporalConv(nn.Module):
    """A 1-D convolution over the time axis written as window slices and one matmul; x [B, H, C] -> out.

    'SAME' padding as XLA pads: with `stride` s the output has ceil(H / s) rows.
    Params are nn.Conv's (kernel [K, C, features], bias), so the layer is an ordinary conv. Why not
    nn.Conv: XLA:CPU computes a convolution's weight gradient about 18x slower inside a `lax.scan`
    (the train loop) than outside it, and the matmul form differentiates 60x faster there, which
    made diffusion training on the CPU several times faster. On a GPU both are one cuDNN/cuBLAS call.
    The slices and the matmul also export to ONNX as they are.
    """

    features: int
    kernel_size: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.kernel_size, in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        horizon = x.shape[-2]
        rows = -(-horizon // self.stride)
        padding = max((rows - 1) * self.stride + self.kernel_size - horizon, 0)  # XLA's 'SAME'
        padded = jnp.pad(x, ((0, 0), (padding // 2, padding - padding // 2), (0, 0)))
        # Tap-major concatenation [B, H', K * C] matches kernel.reshape(K * C, features).
        windows = jnp.concatenate(
            [padded[:, tap:tap + horizon:self.stride] for tap in range(self.kernel_size)], axis=-1)
        return windows @ kernel.reshape(self.kernel_size * in_features, self.features) + bias


class Conv1dBlock(nn.Module):
    """Conv1D over the time axis ('SAME') -> GroupNorm -> Mish; x [B, H, C_in] -> [B, H, features].

    Mish (x tanh(softplus(x))) as Diffusion Policy's U-Net has it; GroupNorm rather than BatchNorm so
    the output of one example never depends on the rest of the batch (sampling uses any batch size).
    """

    features: int
    kernel_size: int
    n_groups: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = TemporalConv(self.features, self.kernel_size)(x)
        return mish(nn.GroupNorm(num_groups=self.n_groups)(x))


class ConditionalResidualBlock1D(nn.Module):
    """Two Conv1dBlocks with FiLM between them and a residual path; x [B, H, C_in] -> [B, H, features].

    FiLM: the global conditioning gives a per-channel scale and bias, so the observation and the
    timestep steer every feature map of every block, not only the input.
    """

    features: int
    kernel_size: int
    n_groups: int

    @nn.compact
    def __call__(self, x: jax.Array, global_cond: jax.Array) -> jax.Array:
        h = Conv1dBlock(self.features, self.kernel_size, self.n_groups)(x)
        film = nn.Dense(2 * self.features, name="film")(mish(global_cond))
        scale, bias = jnp.split(film[:, None, :], 2, axis=-1)  # [B, 1, features]: the same at every time
        # 1 + scale: at init (scale ~ 0 on average) FiLM leaves h near itself instead of shrinking it.
        h = (1 + scale) * h + bias
        h = Conv1dBlock(self.features, self.kernel_size, self.n_groups)(h)
        # A 1x1 conv matches the channels when they change; otherwise the skip is the identity.
        residual = x if x.shape[-1] == self.features else TemporalConv(self.features, 1, name="residual")(x)
        return h + residual


class ConditionalUnet1D(nn.Module):
    """Diffusion Policy's noise predictor (Chi et al. 2023): a 1-D temporal U-Net over an action chunk.

    `__call__(x, t, cond) -> eps`: x [B, H, A] noisy actions (H the horizon, A the action size), t [B]
    int train timesteps (or a scalar for all), cond [B, C] the flattened normalized observation
    history (or None). Output [B, H, A].

    The timestep's sinusoidal embedding goes through an MLP and is concatenated with cond into the
    global conditioning that FiLM feeds to every residual block. Levels 0 .. L-2 (L = len(down_dims))
    each run two residual blocks at down_dims[i] channels, keep a skip, and halve the horizon with a
    stride-2 conv; the bottleneck runs two blocks at down_dims[-1]; the way up doubles the horizon (a
    sub-pixel transposed conv) to down_dims[i] channels, concatenates the level's skip and runs two blocks. So
    H must be divisible by 2 ** (L - 1). The defaults give about 2.7M parameters for A=4, H=16, C=80.
    """

    down_dims: Sequence[int] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8  # GroupNorm groups; every down_dims entry must be divisible by it
    time_embed_dim: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        if x.ndim != 3:
            raise ValueError(f"x must be [batch, horizon, action_size], got shape {x.shape}")
        if not self.down_dims:
            raise ValueError("down_dims needs at least one entry")
        batch_size, horizon, action_size = x.shape
        num_downsamples = len(self.down_dims) - 1
        if horizon % 2**num_downsamples:
            raise ValueError(
                f"horizon {horizon} must be divisible by 2**(len(down_dims)-1) = {2**num_downsamples} "
                f"for down_dims={tuple(self.down_dims)}")
        for dim in self.down_dims:
            if dim % self.n_groups:
                raise ValueError(f"every down_dims entry must be divisible by n_groups={self.n_groups}; "
                                 f"got down_dims={tuple(self.down_dims)}")

        t = jnp.broadcast_to(t, (batch_size,))
        time_features = SinusoidalEmbedding(self.time_embed_dim)(t)
        time_features = nn.Dense(4 * self.time_embed_dim, name="time_dense_0")(time_features)
        time_features = nn.Dense(self.time_embed_dim, name="time_dense_1")(mish(time_features))
        global_cond = time_features if cond is None else jnp.concatenate([time_features, cond], axis=-1)

        def residual_block(features: int, name: str) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(features, self.kernel_size, self.n_groups, name=name)

        skips = []
        for level, dim in enumerate(self.down_dims[:-1]):
            x = residual_block(dim, f"down_{level}_block_0")(x, global_cond)
            x = residual_block(dim, f"down_{level}_block_1")(x, global_cond)
            skips.append(x)
            x = TemporalConv(dim, 3, stride=2, name=f"down_{level}_downsample")(x)

        x = residual_block(self.down_dims[-1], "bottleneck_block_0")(x, global_cond)
        x = residual_block(self.down_dims[-1], "bottleneck_block_1")(x, global_cond)

        for level in reversed(range(num_downsamples)):
            dim = self.down_dims[level]
            # Doubles the horizon: a conv to 2 * dim channels whose halves become the even and odd rows
            # (a stride-2 transposed conv in sub-pixel form, built from TemporalConv for its speed).
            x = TemporalConv(2 * dim, 3, name=f"up_{level}_upsample")(x)
            x = x.reshape(x.shape[0], 2 * x.shape[1], dim)
            x = jnp.concatenate([x, skips[level]], axis=-1)
            x = residual_block(dim, f"up_{level}_block_0")(x, global_cond)
            x = residual_block(dim, f"up_{level}_block_1")(x, global_cond)

        x = Conv1dBlock(self.down_dims[0], self.kernel_size, self.n_groups, name="final_block")(x)
        return TemporalConv(action_size, 1, name="final_conv")(x)
