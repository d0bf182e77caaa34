"""Tiny pure-JAX envs (no physics) for tests of the wrappers, the evaluator and the train loop."""

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from envs_mjx import registry
from envs_mjx.core import Env, EnvConfig, State


@struct.dataclass
class NoPhysics:
    """Stands in for mjx.Data, including the merge the auto-reset wrapper calls."""

    placeholder: jax.Array

    def where(self, condition, other):
        return jax.tree.map(lambda mine, theirs: jnp.where(condition, theirs, mine), self, other)


@dataclasses.dataclass(frozen=True)
class StepCounterConfig(EnvConfig):
    episode_length: int = 10
    horizon: int = 3  # the env ends an episode when its step count is a multiple of this
    nan_share: float = 0.0  # share of episodes whose metric "m" is NaN once, at their second step


class StepCounter(Env):
    """obs = [steps taken, 1 if this episode's metric goes NaN]; reward 1 and metric "m" 1 per step.

    Its episodes end at known steps (multiples of `horizon`; without an auto-reset a
    stepped-on env ends again at the next one), and a drawn share of them report a
    NaN metric once.
    """

    action_size = 1
    dt = 0.01

    def __init__(self, config: StepCounterConfig = StepCounterConfig()):
        self.config = config

    def reset(self, key):
        goes_nan = jax.random.bernoulli(key, self.config.nan_share).astype(jnp.float32)
        return State(data=NoPhysics(jnp.zeros(())), obs=jnp.stack([0.0, goes_nan]), reward=jnp.zeros(()),
                     done=jnp.zeros(()), metrics={"m": jnp.zeros(())})

    def step(self, state, action):
        count = state.obs[0] + 1.0
        nan = (state.obs[1] > 0) & (count == 2.0)
        done = (count % self.config.horizon == 0).astype(jnp.float32)
        return state.replace(obs=jnp.stack([count, state.obs[1]]), reward=jnp.ones(()) + 0.0 * action[0],
                             done=done, metrics={"m": jnp.where(nan, jnp.nan, 1.0)})


def register(monkeypatch, name: str = "step-counter") -> str:
    """Registers StepCounter under `name` for this test (config.load and jaxrl train find it)."""
    monkeypatch.setitem(registry._ENVS, name, registry.EnvSpec(
        "toy_envs", "StepCounter", "StepCounterConfig", "a step counter (tests)"))
    return name
