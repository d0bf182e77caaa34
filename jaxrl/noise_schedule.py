"""The diffusion process of a diffusion policy: noise schedules, q(x_t | x_0) and DDIM sampling.

Conventions (DDPM, Ho et al. 2020; DDIM, Song et al. 2021; as Chi et al.'s Diffusion Policy uses them):
train timesteps t run 0 .. T-1, t = 0 is the least noisy; `alphas_cumprod[t]` is the fraction of the
signal's variance left at t, so x_t = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) eps.
The denoiser predicts eps. Sampling runs DDIM (eta = 0: deterministic given the starting noise) over
`num_inference_steps` of the T train timesteps, which is what makes a 100-step-trained policy act in
10 network calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

SCHEDULE_KINDS = ("cosine", "linear")
COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps beta_0 from being vanishingly small
COSINE_MAX_BETA = 0.999  # their clip: the last step's beta would otherwise be 1 (alpha_bar(T) = 0)
LINEAR_BETA_START = 1e-4
LINEAR_BETA_END = 2e-2


@struct.dataclass
class NoiseSchedule:
    betas: jax.Array  # [T] float32: per-step noise variance
    alphas: jax.Array  # [T] float32: 1 - betas
    alphas_cumprod: jax.Array  # [T] float32: prod_{s <= t} alphas[s], strictly decreasing in (0, 1)
    num_train_steps: int = struct.field(pytree_node=False)  # T, static so shapes and timesteps are known


def make_schedule(num_train_steps: int = 100, kind: str = "cosine") -> NoiseSchedule:
    """The `kind` beta schedule over `num_train_steps` train timesteps.

    "cosine" is Nichol & Dhariwal's squared-cosine alpha_bar (Diffusion Policy's default,
    "squaredcos_cap_v2"); "linear" is DDPM's betas from 1e-4 to 2e-2.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown noise schedule {kind!r}; choose one of {list(SCHEDULE_KINDS)}")
    if num_train_steps < 1:
        raise ValueError(f"num_train_steps must be at least 1, got {num_train_steps}")
    # The table is a constant built once on the host; float64 keeps the cumulative product exact to
    # float32 rounding even where alphas_cumprod gets small at the noisy end.
    if kind == "cosine":
        def alpha_bar(fraction: np.ndarray) -> np.ndarray:
            return np.cos((fraction + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

        step_starts = np.arange(num_train_steps, dtype=np.float64) / num_train_steps
        step_ends = np.arange(1, num_train_steps + 1, dtype=np.float64) / num_train_steps
        betas = np.minimum(1 - alpha_bar(step_ends) / alpha_bar(step_starts), COSINE_MAX_BETA)
    else:
        betas = np.linspace(LINEAR_BETA_START, LINEAR_BETA_END, num_train_steps, dtype=np.float64)
    alphas = 1 - betas
    return NoiseSchedule(
        betas=jnp.asarray(betas, jnp.float32),
        alphas=jnp.asarray(alphas, jnp.float32),
        alphas_cumprod=jnp.asarray(np.cumprod(alphas), jnp.float32),
        num_train_steps=num_train_steps,
    )


def _per_example(values: jax.Array, like: jax.Array) -> jax.Array:
    """`values` ([] or [B]) with trailing unit axes so it broadcasts against `like` ([B, ...])."""
    return values.reshape(values.shape + (1,) * (like.ndim - values.ndim))


def add_noise(schedule: NoiseSchedule, x0: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
    """A draw of q(x_t | x_0): sqrt(a_t) x0 + sqrt(1 - a_t) noise, a_t = alphas_cumprod[t].

    x0, noise: [B, ...]; t: int, [] (one timestep for all) or [B] (one per example).
    """
    alpha_cumprod = _per_example(schedule.alphas_cumprod[t], x0)
    return jnp.sqrt(alpha_cumprod) * x0 + jnp.sqrt(1 - alpha_cumprod) * noise


def ddim_timesteps(num_train_steps: int, num_inference_steps: int) -> np.ndarray:
    """The `num_inference_steps` train timesteps DDIM visits, descending, evenly spaced.

    The first is always T-1, the noisiest, so sampling starts where N(0, I) is the right start
    ("trailing" spacing, Lin et al. 2024); the last is T/N - 1 and its step goes straight to x_0.
    E.g. T=100, N=10: [99, 89, ..., 9]. Integer arithmetic keeps them distinct when N does not divide T.
    """
    if not 1 <= num_inference_steps <= num_train_steps:
        raise ValueError(f"num_inference_steps must be in [1, num_train_steps={num_train_steps}], "
                         f"got {num_inference_steps}")
    steps_left = np.arange(num_inference_steps, 0, -1)
    return (steps_left * num_train_steps // num_inference_steps - 1).astype(np.int32)


def ddim_step(
    schedule: NoiseSchedule,
    x_t: jax.Array,
    eps: jax.Array,
    t: jax.Array,
    t_prev: jax.Array,
    clip: float | None = 1.0,
) -> jax.Array:
    """One deterministic DDIM update from timestep t to the less noisy t_prev; t_prev = -1 is x_0.

    x_t, eps: [B, ...]; t, t_prev: int, [] or [B]. With a = alphas_cumprod[t] and
    a' = alphas_cumprod[t_prev] (a' = 1 at t_prev = -1):
        x0_hat = (x_t - sqrt(1 - a) eps) / sqrt(a)            the clean sample eps implies
        x0_hat = clip(x0_hat, -clip, clip)                    actions are normalized to [-1, 1]
        eps'   = (x_t - sqrt(a) x0_hat) / sqrt(1 - a)         the noise consistent with the clipped x0_hat
        x_prev = sqrt(a') x0_hat + sqrt(1 - a') eps'          eta = 0: no fresh noise
    Re-deriving eps after the clip keeps x_prev on the line between x0_hat and x_t's noise; mixing the
    clipped x0_hat with the raw eps would not. `clip=None` skips the clip (then eps' = eps).
    """
    alpha_cumprod = _per_example(schedule.alphas_cumprod[t], x_t)
    alpha_cumprod_prev = _per_example(
        jnp.where(t_prev >= 0, schedule.alphas_cumprod[jnp.maximum(t_prev, 0)], 1.0), x_t)
    x0_hat = (x_t - jnp.sqrt(1 - alpha_cumprod) * eps) / jnp.sqrt(alpha_cumprod)
    if clip is not None:
        x0_hat = jnp.clip(x0_hat, -clip, clip)
        eps = (x_t - jnp.sqrt(alpha_cumprod) * x0_hat) / jnp.sqrt(1 - alpha_cumprod)
    return jnp.sqrt(alpha_cumprod_prev) * x0_hat + jnp.sqrt(1 - alpha_cumprod_prev) * eps


def ddim_sample(
    denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
    schedule: NoiseSchedule,
    key: jax.Array,
    shape: Sequence[int],
    num_inference_steps: int,
    clip: float | None = 1.0,
) -> jax.Array:
    """x_0 of `shape` ([B, ...]) by DDIM from a draw of N(0, I), calling `denoise_fn` num_inference_steps
    times; see `ddim_denoise`. `shape` and `num_inference_steps` are static."""
    x_start = jax.random.normal(key, tuple(shape), jnp.float32)
    return ddim_denoise(denoise_fn, schedule, x_start, num_inference_steps, clip)


def ddim_denoise(
    denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
    schedule: NoiseSchedule,
    x_start: jax.Array,
    num_inference_steps: int,
    clip: float | None = 1.0,
) -> jax.Array:
    """x_0 by DDIM from the given noise x_start [B, ...] (taken as x at timestep T-1).

    Apart from `ddim_sample` so a deterministic policy can start from noise it is handed (an input or
    a constant): jax2onnx does not convert jax.random's bits faithfully, while this loop exports.

    `denoise_fn(x_t, t) -> eps` gets x_t [B, ...] and t int32 [B] (every entry the same timestep) and
    must be traceable: close over the network's params and the conditioning, e.g.
    `lambda x, t: unet.apply(params, x, t, cond)`. `num_inference_steps` is static; call this inside
    jit (the steps are one `lax.scan`, so it compiles to one loop whatever their number).
    """
    timesteps = ddim_timesteps(schedule.num_train_steps, num_inference_steps)
    previous_timesteps = np.append(timesteps[1:], -1).astype(np.int32)
    batch_size = x_start.shape[0]

    def denoise_once(x_t: jax.Array, step: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        t, t_prev = step
        # broadcast_to, not jnp.full: jax2onnx converts it with a symbolic batch size, jnp.full not.
        eps = denoise_fn(x_t, jnp.broadcast_to(t, (batch_size,)))
        return ddim_step(schedule, x_t, eps, t, t_prev, clip), None

    x0, _ = jax.lax.scan(denoise_once, x_start, (jnp.asarray(timesteps), jnp.asarray(previous_timesteps)))
    return x0
