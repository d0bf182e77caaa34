"""Stepping the batched training env with a policy, the part every online learner shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Transition:
    """One step of every env; fields are [T, B, ...] after `unroll`."""

    obs: Any
    action: jax.Array  # in [-1, 1], what the env was given
    reward: jax.Array
    done: jax.Array  # the episode ended here, by the env or by the time limit
    truncation: jax.Array  # ...by the time limit: the successor still has a value
    final_obs: Any  # the true successor observation, before any auto-reset
    extras: dict  # what the acting function returned besides the action


def unroll(env, env_state, act: Callable, key: jax.Array, length: int):
    """`length` steps of the batched, auto-resetting `env` from `env_state`.

    `act(obs, key) -> (action, extras)` chooses the actions.
    Returns (env_state after the last step, Transition [length, B, ...], episode
    metrics): the sums "episode_sum/<name>" over the episodes that ended, and
    their number "episode_count", as the train loop expects them.
    """
    def act_without_memory(obs, memory, key_step):
        action, extras = act(obs, key_step)
        return action, memory, extras

    env_state, _, trajectory, episode_metrics = unroll_with_memory(env, env_state, (), act_without_memory,
                                                                   key, length)
    return env_state, trajectory, episode_metrics


def unroll_with_memory(env, env_state, memory, act: Callable, key: jax.Array, length: int):
    """`unroll` for a policy that carries `memory` (leaves [B, ...]) from step to step:
    `act(obs, memory, key) -> (action, memory, extras)`. An env's memory is zeroed where its episode
    ends, so its next episode starts from all zeros (the memory contract of jaxrl.algos).

    Returns (env_state, memory after the last step, Transition [length, B, ...], episode metrics).
    """

    def step(carry, key_step):
        env_state, memory, episode_sums, episode_count = carry
        action, memory, extras = act(env_state.obs, memory, key_step)
        next_state = env.step(env_state, action)
        done = next_state.done
        # Selected, not multiplied by `done`: NaN * 0 is NaN, and one env's blow-up would poison the sums.
        episode_sums = jax.tree.map(lambda total, x: total + jnp.sum(jnp.where(done > 0, x, 0.0)),
                                    episode_sums, next_state.info["episode_metrics"])
        memory = jax.tree.map(lambda m: jnp.where(_per_env(done, m) > 0, jnp.zeros_like(m), m), memory)
        transition = Transition(
            obs=env_state.obs, action=action, reward=next_state.reward, done=done,
            truncation=next_state.info["truncation"], final_obs=next_state.info["final_obs"],
            extras=extras)
        return (next_state, memory, episode_sums, episode_count + jnp.sum(done)), transition

    zero_sums = jax.tree.map(lambda x: jnp.zeros(()), env_state.info["episode_metrics"])
    (env_state, memory, episode_sums, episode_count), trajectory = jax.lax.scan(
        step, (env_state, memory, zero_sums, jnp.zeros(())), jax.random.split(key, length))
    episode_metrics = {f"episode_sum/{k}": v for k, v in episode_sums.items()}
    episode_metrics["episode_count"] = episode_count
    return env_state, memory, trajectory, episode_metrics


def _per_env(done: jax.Array, leaf: jax.Array) -> jax.Array:
    """done [B] shaped to broadcast against a memory leaf [B, ...]."""
    return done.reshape(done.shape + (1,) * (leaf.ndim - done.ndim))


def merge_time_and_envs(tree):
    """[T, B, ...] leaves as [T * B, ...]: one sample per env step."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)
