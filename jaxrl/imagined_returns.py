"""Returns of imagined trajectories, and the scale Dreamer's actor divides them by.

An imagined trajectory is states s_0 .. s_H from the world model, with the
reward and continue probability predicted for each transition s_t -> s_t+1
and the critic's value of every state. The lambda-return mixes bootstrapped
values with longer sums of rewards; the actor's advantages are these returns
over a slowly moving scale: the 5th-95th percentile range of recent returns,
never below 1, so that sparse small rewards are not blown up into noise.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def lambda_returns(rewards: jax.Array, continues: jax.Array, values: jax.Array, discount: float,
                   lambda_: float) -> jax.Array:
    """[H, ...] returns R_0 .. R_H-1 of `rewards` and `continues` [H, ...] (of transition t -> t+1) and
    `values` [H + 1, ...] (of states 0 .. H):
        R_t = r_t + discount c_t ((1 - lambda) v_t+1 + lambda R_t+1),  R_H = v_H."""
    if values.shape[0] != rewards.shape[0] + 1:
        raise ValueError(f"values needs one more step than rewards (the last state's), got {values.shape[0]} "
                         f"for {rewards.shape[0]}")

    def backward(later_return, step):
        reward, cont, next_value = step
        ret = reward + discount * cont * ((1.0 - lambda_) * next_value + lambda_ * later_return)
        return ret, ret

    _, returns = jax.lax.scan(backward, values[-1], (rewards, continues, values[1:]), reverse=True)
    return returns


class ReturnRange(NamedTuple):
    """Exponential moving averages of the 5th and 95th percentiles of the returns seen (from 0, 0)."""

    low: jax.Array
    high: jax.Array

    @classmethod
    def zeros(cls) -> ReturnRange:
        return cls(jnp.zeros(()), jnp.zeros(()))

    def update(self, returns: jax.Array, rate: float = 0.01, percentiles: tuple = (5.0, 95.0)) -> ReturnRange:
        low, high = jnp.percentile(jax.lax.stop_gradient(returns), jnp.asarray(percentiles))
        return ReturnRange(self.low + rate * (low - self.low), self.high + rate * (high - self.high))

    def scale(self, floor: float = 1.0) -> jax.Array:
        """What returns are divided by: the range, or `floor` where the range is smaller."""
        return jnp.maximum(floor, self.high - self.low)
