"""The tanh-Gaussian MLP actor that PPO and SAC train, and what reads it.

The actor is an MLP from the normalized observation (one entry of a dict
observation) to the mean and softplus std of a Gaussian in pre-tanh space
(`distributions.TanhNormal`). Both learners hand evaluation and export the same
`PolicyParams`, so `policy` and `export_policy` serve them both.

A learner keeps statistics (and SAC its replay) only of the entries its networks
read (`observed`); every network picks its entry out of the observation before
normalizing it, so it takes the env's full observation, the learner's cut-down
one or the flat vector of that entry alike.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import normalize
from jaxrl.distributions import TanhNormal
from jaxrl.networks import MLP


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """What it takes to rebuild an MLP from its parameters (static, hashable)."""

    layer_sizes: tuple[int, ...]  # hidden sizes + the output size
    activation: str
    obs_key: str  # the entry it reads when observations are a dict

    def network(self) -> MLP:
        return MLP(self.layer_sizes, self.activation)


@struct.dataclass
class PolicyParams:
    """Everything the deterministic policy needs: what `policy` and export take."""

    network: Any
    obs_stats: normalize.RunningStats
    spec: NetworkSpec = struct.field(pytree_node=False)


def policy_params(state) -> PolicyParams:
    """The PolicyParams of a learner's TrainState (fields params.policy, obs_stats, policy_spec)."""
    return PolicyParams(network=state.params.policy, obs_stats=state.obs_stats, spec=state.policy_spec)


def select(obs, key: str):
    """The observation a network sees: obs[key] for dict observations."""
    if isinstance(obs, Mapping):
        if key not in obs:
            raise KeyError(f"observation dict has no key {key!r}; it has {sorted(obs)}")
        return obs[key]
    return obs


def observed(obs, *specs: NetworkSpec):
    """The part of `obs` that networks `specs` read: their entries of a dict, a flat array whole."""
    if isinstance(obs, Mapping):
        return {spec.obs_key: select(obs, spec.obs_key) for spec in specs}
    return obs


def normalized_input(obs_stats: normalize.RunningStats, obs, key: str) -> jax.Array:
    """The entry `key` of `obs`, normalized by the statistics of that entry."""
    entry_stats = obs_stats.replace(mean=select(obs_stats.mean, key), m2=select(obs_stats.m2, key))
    return normalize.normalize(entry_stats, select(obs, key))


def critic_obs_key(one_obs, policy_obs_key: str, value_obs_key: str) -> str:
    """Asymmetric actor-critic when the env provides the privileged entry."""
    if isinstance(one_obs, Mapping) and value_obs_key in one_obs:
        return value_obs_key
    return policy_obs_key


def policy_spec(hidden_layer_sizes, activation: str, obs_key: str, action_size: int) -> NetworkSpec:
    return NetworkSpec(tuple(hidden_layer_sizes) + (2 * action_size,), activation, obs_key)


def distribution(network_params, spec: NetworkSpec, obs_stats, obs) -> TanhNormal:
    """The action distribution of the actor `network_params` at raw observations `obs`."""
    x = normalized_input(obs_stats, obs, spec.obs_key)
    return TanhNormal.from_network_output(spec.network().apply(network_params, x))


def policy(params: PolicyParams, obs, key: jax.Array | None = None) -> jax.Array:
    """Actions in [-1, 1] for observations with any leading batch axes.

    Without a key: the deterministic action (what evaluation and export use).
    """
    dist = distribution(params.network, params.spec, params.obs_stats, obs)
    if key is None:
        return dist.mode()
    return jnp.tanh(dist.sample_pre_tanh(key))


def export_policy(params: PolicyParams) -> Callable[[jax.Array], jax.Array]:
    """The deterministic policy as a function of the actor's flat input alone.

    x[B, n] (obs[spec.obs_key] of dict observations) -> action[B, a] in [-1, 1]:
    `policy` itself, which reads that entry's statistics whatever observation it is given.
    """
    return functools.partial(policy, params)
