"""The RSSM's stochastic state: `stoch` categorical variables of `classes` classes each, on distrax.

Logits have shape [..., stoch, classes]. Two details keep the world model
trainable: a small uniform mix in every distribution (`unimix`), so that no
class has probability 0 and no KL is infinite; and straight-through samples,
one-hot forwards with the gradient of the probabilities backwards.

The KL between the posterior (which saw the observation) and the prior (which
did not) is split in two with stop-gradients: the dynamics loss moves the prior
towards the posterior, the representation loss (weighted less) the posterior
towards the prior. Each is at least `free_nats`: below it, neither is pushed.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp


def distribution(logits: jax.Array, unimix: float) -> distrax.Distribution:
    """Independent one-hot categoricals over the last two axes, each mixed with `unimix` of uniform."""
    probs = jax.nn.softmax(logits, axis=-1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return distrax.Independent(distrax.OneHotCategorical(probs=probs), reinterpreted_batch_ndims=1)


def sample(key: jax.Array, logits: jax.Array, unimix: float) -> jax.Array:
    """A one-hot sample [..., stoch, classes] whose gradient is that of the probabilities."""
    dist = distribution(logits, unimix)
    probs = dist.distribution.probs
    one_hot = dist.sample(seed=key).astype(probs.dtype)
    return one_hot + probs - jax.lax.stop_gradient(probs)


def mode(logits: jax.Array) -> jax.Array:
    """The most likely class of each variable, one-hot [..., stoch, classes]: the deterministic state a
    policy filters without a key (evaluation, export). Written without distrax, which cannot be traced
    with a symbolic batch size (ONNX export)."""
    return jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=logits.dtype)


def kl_losses(posterior_logits: jax.Array, prior_logits: jax.Array, unimix: float,
              free_nats: float) -> tuple[jax.Array, jax.Array]:
    """(dynamics loss, representation loss) [...]: KL(posterior || prior) summed over the variables, with
    the gradient to the prior alone and to the posterior alone, each clipped below at `free_nats`."""
    stop = jax.lax.stop_gradient
    dynamics = distribution(stop(posterior_logits), unimix).kl_divergence(distribution(prior_logits, unimix))
    representation = distribution(posterior_logits, unimix).kl_divergence(distribution(stop(prior_logits),
                                                                                        unimix))
    return jnp.maximum(dynamics, free_nats), jnp.maximum(representation, free_nats)
