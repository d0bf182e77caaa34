"""Action distributions on distrax.

TanhNormal (PPO, SAC) acts in [-1, 1] through a tanh squash. The learner keeps the
*pre-tanh* sample: log-probabilities of a squashed action near +-1 would need
atanh of it, which loses all precision there.
"""

from __future__ import annotations

import functools

import distrax
import jax
import jax.numpy as jnp


class TanhNormal:
    """A diagonal Gaussian in pre-tanh space, squashed into [-1, 1]."""

    def __init__(self, loc: jax.Array, scale: jax.Array):
        self.loc, self.scale = loc, scale

    # distrax is built on first use: the deterministic action needs only `loc`, and distrax
    # cannot be traced with a symbolic batch size (ONNX export) as it reads concrete shapes.
    @functools.cached_property
    def base(self) -> distrax.MultivariateNormalDiag:
        return distrax.MultivariateNormalDiag(self.loc, self.scale)

    @functools.cached_property
    def squash(self) -> distrax.Block:
        return distrax.Block(distrax.Tanh(), ndims=1)

    @classmethod
    def from_network_output(cls, output: jax.Array, min_std: float = 1e-3) -> TanhNormal:
        """Split [..., 2 * action] into mean and softplus-positive std."""
        loc, raw_scale = jnp.split(output, 2, axis=-1)
        return cls(loc, jax.nn.softplus(raw_scale) + min_std)

    def sample_pre_tanh(self, key: jax.Array) -> jax.Array:
        return self.base.sample(seed=key)

    def log_prob_pre_tanh(self, pre_tanh: jax.Array) -> jax.Array:
        """log-density of the squashed action tanh(pre_tanh)."""
        return self.base.log_prob(pre_tanh) - self.squash.forward_log_det_jacobian(pre_tanh)

    def entropy(self, key: jax.Array) -> jax.Array:
        """One-sample estimate: the squashed entropy has no closed form."""
        sample = self.base.sample(seed=key)
        return self.base.entropy() + self.squash.forward_log_det_jacobian(sample)

    def mode(self) -> jax.Array:
        """The deterministic action: the squashed mean."""
        return jnp.tanh(self.loc)


def squash(pre_tanh: jax.Array) -> jax.Array:
    return jnp.tanh(pre_tanh)


class BoundedNormal:
    """A diagonal Gaussian whose mean is tanh-bounded to [-1, 1] and whose std lies in [min_std, max_std]
    (Dreamer's actor). Samples are not squashed: its log-probability and entropy stay exact, and the
    caller clips a sample to [-1, 1] where an env or a world model takes it."""

    def __init__(self, loc: jax.Array, scale: jax.Array):
        self.loc, self.scale = loc, scale

    @classmethod
    def from_network_output(cls, output: jax.Array, min_std: float = 0.1,
                            max_std: float = 1.0) -> BoundedNormal:
        """Split [..., 2 * action] into the mean's and the std's pre-activations; the std starts near
        max_std (its sigmoid is shifted by +2)."""
        raw_loc, raw_scale = jnp.split(output, 2, axis=-1)
        return cls(jnp.tanh(raw_loc), (max_std - min_std) * jax.nn.sigmoid(raw_scale + 2.0) + min_std)

    @functools.cached_property
    def base(self) -> distrax.MultivariateNormalDiag:
        return distrax.MultivariateNormalDiag(self.loc, self.scale)

    def sample(self, key: jax.Array) -> jax.Array:
        return self.base.sample(seed=key)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return self.base.log_prob(action)

    def entropy(self) -> jax.Array:
        return self.base.entropy()

    def mode(self) -> jax.Array:
        """The deterministic action: the mean, already in [-1, 1]."""
        return self.loc
