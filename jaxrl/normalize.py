"""Running mean and variance of observations, as a pure pytree.

Batches are merged with Chan et al.'s parallel update, so the result does not
depend on how the data was split. Works on any pytree of arrays (dict
observations included).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

STD_MIN = 1e-6
CLIP = 10.0  # normalized observations beyond 10 standard deviations are outliers


@struct.dataclass
class RunningStats:
    count: jax.Array  # float32 scalar: number of samples merged so far
    mean: object  # pytree like one observation
    m2: object  # sum of squared deviations from the mean


def init(example_obs) -> RunningStats:
    """Empty statistics for observations shaped like `example_obs` (no batch axis)."""
    def zeros():  # a fresh array per field: one buffer in two fields cannot be donated to a jitted call
        return jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), example_obs)

    return RunningStats(count=jnp.zeros((), jnp.float32), mean=zeros(), m2=zeros())


def update(stats: RunningStats, batch, batch_ndim: int) -> RunningStats:
    """Merge a batch whose leading `batch_ndim` axes index samples."""
    axes = tuple(range(batch_ndim))
    leaves = jax.tree.leaves(batch)
    n = float(math.prod(leaves[0].shape[:batch_ndim]))
    total = stats.count + n

    def merge(mean, m2, x):
        batch_mean = jnp.mean(x, axis=axes)
        batch_m2 = jnp.sum(jnp.square(x - batch_mean), axis=axes)
        delta = batch_mean - mean
        new_mean = mean + delta * n / total
        new_m2 = m2 + batch_m2 + jnp.square(delta) * stats.count * n / total
        return new_mean, new_m2

    merged = jax.tree.map(merge, stats.mean, stats.m2, batch)
    is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
    mean = jax.tree.map(lambda p: p[0], merged, is_leaf=is_pair)
    m2 = jax.tree.map(lambda p: p[1], merged, is_leaf=is_pair)
    return RunningStats(count=total, mean=mean, m2=m2)


def from_batch(batch, batch_ndim: int = 1) -> RunningStats:
    """Statistics of a first batch (e.g. the reset observations a learner starts from).

    A learner that starts from empty statistics acts on raw observations until its
    first update and then on standardized ones: a jump (Go1 joint velocities move by
    about 20 standard deviations). Seeded from the starts, it standardizes from step one.
    """
    return update(init(jax.tree.map(lambda x: x[(0,) * batch_ndim], batch)), batch, batch_ndim)


def std(stats: RunningStats):
    """Per-entry standard deviation; 1 where a value has not varied yet.

    A value constant so far (the last action at a reset, a push force before the
    first push) has no scale yet: dividing by a floor near 0 would send its first
    change to the clip, so it passes unscaled until the data shows its spread.
    """
    def of(m2):
        variance = m2 / jnp.maximum(stats.count, 1.0)
        return jnp.where(variance < STD_MIN**2, 1.0, jnp.sqrt(variance))

    return jax.tree.map(of, stats.m2)


def normalize(stats: RunningStats, obs):
    """(obs - mean) / std, clipped; the identity while no sample has been seen."""
    seen = stats.count > 0
    return jax.tree.map(
        lambda x, mean, s: jnp.where(seen, jnp.clip((x - mean) / s, -CLIP, CLIP), x),
        obs, stats.mean, std(stats))


def denormalize(stats: RunningStats, x):
    """mean + std * x: standardized values (a network's output) back in the data's units."""
    seen = stats.count > 0
    return jax.tree.map(lambda v, mean, s: jnp.where(seen, mean + s * v, v), x, stats.mean, std(stats))
