"""Dreamer's actor and critic losses on an imagined trajectory (see imagined_returns for its returns).

Steps deep in imagination count less: each state weighs the chance, as the
continue head predicts it, that the episode is still running there, times the
discount. The critic is a two-hot head trained towards the lambda-returns and,
as a regulariser, towards a slow copy of itself (an exponential moving average
of its weights). The actor follows the policy gradient of advantages divided
by the return range (REINFORCE on its own samples), plus an entropy bonus; or, with
a differentiable world model and reparameterized actions, the returns' own gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl import twohot


def state_weights(continues: jax.Array, discount: float) -> jax.Array:
    """[H + 1, ...] weights of the states of a trajectory whose H transitions continue with probability
    `continues` [H, ...]: 1 for the start, then the running product of discount x continue."""
    running = jnp.cumprod(discount * continues, axis=0)
    return jax.lax.stop_gradient(jnp.concatenate([jnp.ones_like(running[:1]), running]))


def critic_loss(value_logits: jax.Array, slow_values: jax.Array, returns: jax.Array, weights: jax.Array,
                bins: jax.Array, slow_regulariser: float = 1.0) -> jax.Array:
    """Mean weighted cross-entropy of the critic's logits [H, ..., bins] of states 0 .. H-1 against the
    two-hot of their `returns` [H, ...], plus `slow_regulariser` times that against the slow critic's
    values [H, ...]. `weights` [H, ...] from state_weights."""
    to_returns = twohot.loss(value_logits, returns, bins)  # twohot.loss holds its targets constant
    to_slow = twohot.loss(value_logits, slow_values, bins)
    return jnp.mean(weights * (to_returns + slow_regulariser * to_slow))


def actor_loss(log_probs: jax.Array, entropies: jax.Array, returns: jax.Array, values: jax.Array,
               scale: jax.Array, weights: jax.Array, entropy_cost: float) -> jax.Array:
    """Mean weighted -(advantage log pi + entropy_cost entropy) over states 0 .. H-1 [H, ...], the
    advantage (returns - values) / scale held constant: the score-function gradient of the return."""
    advantages = jax.lax.stop_gradient((returns - values) / scale)
    return -jnp.mean(weights * (advantages * log_probs + entropy_cost * entropies))


def backprop_actor_loss(returns: jax.Array, entropies: jax.Array, scale: jax.Array, weights: jax.Array,
                        entropy_cost: float) -> jax.Array:
    """Mean weighted -(return / scale + entropy_cost entropy) over states 0 .. H-1 [H, ...]: the actor
    climbs the returns by their gradient through the imagined states (reparameterized actions, a
    differentiable world model), as DreamerV3's first release does for continuous actions."""
    return -jnp.mean(weights * (returns / scale + entropy_cost * entropies))
