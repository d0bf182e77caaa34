"""`jaxrl play --compare RUN_DIR`: the same episodes in MJX and in plain MuJoCo.

Episode i starts from the MJX env's reset with the same key on both sides; MJX
runs the run's JAX policy, plain MuJoCo runs the exported ONNX policy with the
observation and reward computed in NumPy. The env is configured the way the
twin plays (`PlainEnv.matching_config`: no sensor noise, nominal model, the
start command held), so the two sides differ only in physics engine and
policy runtime, which is what a sim-to-sim check measures. A policy with
memory runs as exported on both sides: MJX runs its JAX fn, and each episode
starts from zero memory on both.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import envs_mjx
from jaxrl import algos
from jaxrl.export.onnx_policy import OnnxPolicy
from jaxrl.export.play import episode_key, onnx_actor, play_episode
from jaxrl.export.state_vector import policy_input


@dataclasses.dataclass(frozen=True)
class Comparison:
    mjx_returns: np.ndarray  # [episodes]
    plain_returns: np.ndarray  # [episodes]

    @property
    def kept(self) -> float:
        """Plain MuJoCo's mean return as a share of MJX's (1.0: all of it)."""
        return float(np.mean(self.plain_returns) / np.mean(self.mjx_returns))


def mjx_returns(env, act, memory_size: int, keys: jax.Array, episode_length: int) -> np.ndarray:
    """Returns [len(keys)] of the deterministic `act(obs, memory) -> (action, memory)` (one env's, memory
    [memory_size] zeros at the start), one MJX episode per key."""

    def episode(key):
        def step(carry, _):
            state, memory, alive = carry
            action, memory = act(state.obs, memory)
            state = env.step(state, action)
            reward = jnp.where(alive, state.reward, 0.0)
            return (state, memory, alive & (state.done == 0)), reward

        start = (env.reset(key), jnp.zeros(memory_size, jnp.float32), jnp.bool_(True))
        _, rewards = jax.lax.scan(step, start, None, length=episode_length)
        return jnp.sum(rewards)

    return np.asarray(jax.jit(jax.vmap(episode))(keys))


def jax_actor(algo, params):
    """(act(obs, memory) -> (action, memory) for one env, memory size): the learner's deterministic
    policy, or for a policy with memory its exported fn (what the ONNX file computes)."""
    memory_size = algos.export_memory_size(algo, params)
    if not memory_size:
        return (lambda obs, memory: (algo.policy(params, obs), memory)), 0
    fn = algo.export_policy(params)

    def act(obs, memory):
        action, memory = fn(policy_input(obs)[None], memory[None])
        return action[0], memory[0]

    return act, memory_size


def compare(algo, params, env_name: str, env_config, policy: OnnxPolicy, episodes: int,
            seed: int = 0) -> Comparison:
    """Returns of `episodes` matched episodes: `algo`'s JAX policy in MJX, `policy` in plain MuJoCo."""
    plain_class = envs_mjx.plain_class(env_name)
    env = envs_mjx.make(env_name, plain_class.matching_config(env_config))
    keys = jax.vmap(lambda i: episode_key(seed, i))(jnp.arange(episodes))
    length = env.config.episode_length
    in_mjx = mjx_returns(env, *jax_actor(algo, params), keys, length)

    twin, reset, act = plain_class(env), jax.jit(env.reset), onnx_actor(policy)
    in_plain = []
    for key in keys:
        policy.reset()
        in_plain.append(list(play_episode(act, twin, reset(key), length))[-1].episode_return)
    return Comparison(in_mjx, np.asarray(in_plain))
