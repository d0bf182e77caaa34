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


class CountingEnv(Env):
    """obs = [steps taken, horizon]; the episode terminates when the count reaches its horizon,
    drawn per episode from {3, 100}: with a time limit of 6, some episodes end by termination
    and the others by truncation."""

    action_size = 1
    dt = 0.01

    def reset(self, key):
        horizon = jnp.where(jax.random.bernoulli(key), 3.0, 100.0)
        return State(data=NoPhysics(jnp.zeros(())), obs=jnp.stack([0.0, horizon]), reward=jnp.zeros(()),
                     done=jnp.zeros(()))

    def step(self, state, action):
        count = state.obs[0] + 1.0
        return state.replace(obs=jnp.stack([count, state.obs[1]]), reward=count,
                             done=(count >= state.obs[1]).astype(jnp.float32))


@dataclasses.dataclass(frozen=True)
class PointMassConfig(EnvConfig):
    episode_length: int = 100


class PointMass(Env):
    """A damped point mass on a line, pushed by the action: obs = [position, velocity], reward
    exp(-4 position^2) per step, starts anywhere in [-1, 1] at rest. A policy must push towards 0 and
    brake before it (the velocity keeps 90% a step): about 16 of 100 for doing nothing, 95 for a good
    policy. A control task that learns in seconds."""

    action_size = 1
    dt = 0.05

    def __init__(self, config: PointMassConfig = PointMassConfig()):
        self.config = config

    def reset(self, key):
        position = jax.random.uniform(key, (), minval=-1.0, maxval=1.0)
        return State(data=NoPhysics(jnp.zeros(())), obs=jnp.stack([position, 0.0]), reward=jnp.zeros(()),
                     done=jnp.zeros(()))

    def step(self, state, action):
        position, velocity = state.obs
        velocity = 0.9 * velocity + 0.05 * action[0]
        position = position + velocity
        return state.replace(obs=jnp.stack([position, velocity]), reward=jnp.exp(-4.0 * position**2),
                             done=jnp.zeros(()))


def _spec(env_class: str) -> registry.EnvSpec:
    return registry.EnvSpec(__name__, env_class, f"{env_class}Config", "a toy env (tests)")


def register(monkeypatch, name: str = "step-counter", env_class: str = "StepCounter") -> str:
    """Registers `env_class` of this module under `name` for this test (config.load and jaxrl train
    find it)."""
    monkeypatch.setitem(registry._ENVS, name, _spec(env_class))
    return name


def register_in_process(name: str, env_class: str) -> None:
    """Registers `env_class` under `name` for the rest of this process (a child process a test starts)."""
    registry._ENVS[name] = _spec(env_class)
