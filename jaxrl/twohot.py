"""Values of any scale as classes: symlog, and two-hot targets over exponentially spaced bins.

Dreamer's reward and critic heads predict a distribution over fixed bins
(symexp of evenly spaced points, so the bins are dense near 0 and reach about
5e8), trained by cross-entropy against the target's two-hot encoding: the two
bins around it, weighted by how close it lies to each. The loss does not
grow with the value's scale, so returns of 1 and of 1e4 train alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def symlog(x: jax.Array) -> jax.Array:
    """sign(x) log(1 + |x|): the identity near 0, logarithmic far from it."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """The inverse of symlog."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def symexp_bins(num_bins: int = 255, limit: float = 20.0) -> jax.Array:
    """symexp of `num_bins` points evenly spaced in [-limit, limit]: symmetric about 0, which is a bin."""
    if num_bins < 3 or num_bins % 2 == 0:
        raise ValueError(f"num_bins must be odd and at least 3 (0 is the middle bin), got {num_bins}")
    positive = symexp(jnp.linspace(0.0, limit, num_bins // 2 + 1)[1:])
    return jnp.concatenate([-positive[::-1], jnp.zeros(1), positive])  # mirrored exactly, as decode needs


def encode(x: jax.Array, bins: jax.Array) -> jax.Array:
    """[..., num_bins]: weights on the two bins around each x (summing to 1), linear in the distance to
    each; values beyond the outer bins go all to the outer bin."""
    x = jnp.clip(x, bins[0], bins[-1])
    below = jnp.clip(jnp.searchsorted(bins, x, side="right") - 1, 0, len(bins) - 2)
    low, high = bins[below], bins[below + 1]
    weight_high = (x - low) / (high - low)
    one_hot = jax.nn.one_hot(below, len(bins), dtype=x.dtype)
    return one_hot * (1.0 - weight_high)[..., None] + jnp.roll(one_hot, 1, axis=-1) * weight_high[..., None]


def decode(logits: jax.Array, bins: jax.Array) -> jax.Array:
    """The expected value of softmax(logits) over the bins. Each positive bin is summed with its negative
    mirror first: uniform probabilities (a zero-initialised head) give exactly 0, where a plain dot product
    would leave float32 rounding of bins up to 5e8."""
    probs = jax.nn.softmax(logits, axis=-1)
    middle = len(bins) // 2
    above, below = probs[..., middle + 1:], probs[..., middle - 1::-1]  # below: nearest to 0 first
    return jnp.sum((above - below) * bins[middle + 1:], axis=-1)


def loss(logits: jax.Array, target: jax.Array, bins: jax.Array) -> jax.Array:
    """Cross-entropy of softmax(logits) against the two-hot encoding of `target` (held constant)."""
    weights = jax.lax.stop_gradient(encode(target, bins))
    return -jnp.sum(weights * jax.nn.log_softmax(logits, axis=-1), axis=-1)
