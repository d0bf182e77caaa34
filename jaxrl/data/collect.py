"""Roll a policy out in an env, many episodes at once, and write each episode as a demo.

A round runs `num_envs` episodes side by side in one compiled loop of at most
`episode_length` steps without auto-reset (one episode per env), which stops as
soon as every episode has ended or succeeded: demos that end at success are
often much shorter than the time limit. The host then cuts each env's steps at
the end of its episode and writes them in env order. Round r draws from
`fold_in(key, r)`: the same key writes the same demos.

The policy is one with memory, as `jaxrl.evaluation.policy_with_memory` gives
a learner's: the envs of a round all start together, so its memory starts at
their first step and steps in lockstep, as in evaluation. A per-env function
obs -> action (a scripted expert) becomes one with `memoryless`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import envs_mjx
from jaxrl.data.writer import DemoWriter

ROUNDS_BEFORE_GIVING_UP = 3  # with only_success: rounds without any success before stopping
FLAT_OBS_KEY = "state"  # the name a flat (array) observation is written under


class CollectError(RuntimeError):
    """The collection cannot produce the demos asked for; the message says why."""


class CollectStats(NamedTuple):
    """Where a collection stands (passed to the progress callback after each round, and returned)."""

    demos_written: int
    demos_wanted: int
    episodes_run: int
    successes: int
    env_steps: int  # steps simulated (a round runs until its last episode ends, so some after others end)
    seconds: float  # wall-clock of the rounds and of writing their demos
    compile_seconds: float

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / max(self.seconds, 1e-9)

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.episodes_run, 1)


def recorded_obs_keys(env: envs_mjx.Env, obs) -> tuple[str, ...] | None:
    """Keys of `env`'s observation `obs` that are written; None for a flat observation (written as "state").

    A dict observation is written whole unless the env names the parts a policy
    should see in `obs_parts` (leaving out e.g. a critic's privileged state).
    """
    if not isinstance(obs, Mapping):
        return None
    parts = getattr(env.unwrapped, "obs_parts", None)
    return tuple(parts) if parts is not None else tuple(obs)


# (initial_memory(params, obs[B, ...]) -> memory, act(params, obs[B, ...], memory, key) -> (action[B, A],
# memory)): a policy for a batch of envs that start together (jaxrl.evaluation.policy_with_memory's form).
MemoryPolicy = tuple[Callable, Callable]


@functools.lru_cache(maxsize=8)  # the same per_env, the same policy: make_round's cache compiles it once
def memoryless(per_env: Callable) -> MemoryPolicy:
    """The policy with (empty) memory of `per_env(obs) -> action`, a pure function of one env's
    observation such as a scripted expert; it ignores the params."""
    def act(params, obs, memory, key):
        return jax.vmap(per_env)(obs), memory

    return (lambda params, obs: ()), act


@functools.lru_cache(maxsize=8)
def uniform_random(action_size: int) -> MemoryPolicy:
    """The policy that acts uniformly in [-1, 1] (collect it with sample=True: it needs a key)."""
    def act(params, obs, memory, key):
        batch = jax.tree.leaves(obs)[0].shape[0]
        return jax.random.uniform(key, (batch, action_size), minval=-1.0, maxval=1.0), memory

    return (lambda params, obs: ()), act


@functools.lru_cache(maxsize=8)  # collecting again with the same env and policy compiles once
def make_round(env: envs_mjx.Env, policy: MemoryPolicy, num_envs: int, noise: float,
               sample: bool = False) -> Callable:
    """jit-compiled (params, key) -> (steps taken, a dict of [episode_length, num_envs, ...] arrays).

    Rows past the steps taken are zeros: every episode had ended before them.
    """
    initial_memory, policy_act = policy
    episode_length = env.config.episode_length
    batched = envs_mjx.wrap_for_eval(env, episode_length)
    first = jax.eval_shape(env.reset, jax.random.PRNGKey(0))  # shapes only: tracing MJX is slow
    obs_keys = recorded_obs_keys(env, first.obs)
    reports_success = "success" in first.metrics

    def recorded(obs) -> dict:
        return {FLAT_OBS_KEY: obs} if obs_keys is None else {key: obs[key] for key in obs_keys}

    def step(params, state, memory, noise_key):
        # A key for the policy only if it samples: a learned policy acts deterministically, and only
        # `noise` makes its demos vary.
        policy_key = jax.random.fold_in(noise_key, 1) if sample else None
        action, memory = policy_act(params, state.obs, memory, policy_key)
        if noise > 0:
            action = action + noise * jax.random.normal(noise_key, action.shape)
        # The env clips too; clipping here makes the recorded action the one executed.
        action = jnp.clip(action, -1.0, 1.0)
        next_state = batched.step(state, action)
        truncation = next_state.info["truncation"]
        record = {"obs": recorded(state.obs), "next_obs": recorded(next_state.obs), "actions": action,
                  "rewards": next_state.reward, "dones": next_state.done,
                  "terminals": next_state.done * (1 - truncation), "truncation": truncation}
        if reports_success:
            record["success"] = next_state.metrics["success"]
        return next_state, memory, record

    def run_round(params, key):
        key_reset, key_noise = jax.random.split(key)
        state = batched.reset(jax.random.split(key_reset, num_envs))
        memory = initial_memory(params, state.obs)
        one_step = jax.eval_shape(step, params, state, memory, key_noise)[2]
        steps = jax.tree.map(lambda x: jnp.zeros((episode_length, *x.shape), x.dtype), one_step)

        def unfinished(carry):
            t, _, _, ended, _ = carry
            return (t < episode_length) & ~jnp.all(ended)

        def advance(carry):
            t, state, memory, ended, steps = carry
            state, memory, record = step(params, state, memory, jax.random.fold_in(key_noise, t))
            steps = jax.tree.map(lambda rows, row: rows.at[t].set(row), steps, record)
            ended = ended | (record["dones"] > 0) | (record.get("success", 0.0) > 0)
            return t + 1, state, memory, ended, steps

        carry = (jnp.int32(0), state, memory, jnp.zeros(num_envs, bool), steps)
        taken, _, _, _, steps = jax.lax.while_loop(unfinished, advance, carry)
        return taken, steps

    return jax.jit(run_round)


def split_episodes(steps: dict) -> list[tuple[dict, bool]]:
    """(demo arrays, success) per env of a round's host arrays [T, num_envs, ...], in env order.

    A demo runs to the first step where the episode is done, or, when the env
    reports a "success" metric, to the first step where it is > 0 if that comes
    first: such demos end when the task is done. Without that metric an episode
    succeeds when it reached the time limit without the env ending it.
    """
    done = steps["dones"] > 0
    horizon, num_envs = done.shape
    # Every episode ended within the steps: done (the time limit sets it at the last step) or success.
    ends = np.where(done.any(axis=0), np.argmax(done, axis=0), horizon - 1)
    if "success" in steps:
        succeeded = steps["success"] > 0
        first_success = np.where(succeeded.any(axis=0), np.argmax(succeeded, axis=0), horizon)
        success = first_success <= ends
        ends = np.minimum(ends, first_success)
    else:
        success = steps["truncation"][ends, np.arange(num_envs)] > 0
    demos = []
    for env_index in range(num_envs):
        length = ends[env_index] + 1
        demo = {field: jax.tree.map(lambda x, n=length, i=env_index: x[:n, i], steps[field])
                for field in ("obs", "next_obs", "actions", "rewards", "dones", "terminals")}
        demo["dones"] = demo["dones"].copy()
        demo["dones"][-1] = 1.0  # every demo ends its episode: by the env, the time limit or success
        demos.append((demo, bool(success[env_index])))
    return demos


def collect(env: envs_mjx.Env, policy: MemoryPolicy, episodes: int, writer: DemoWriter, *, num_envs: int,
            key: jax.Array, params: Any = None, noise: float = 0.0, only_success: bool = False,
            sample: bool = False, progress: Callable[[CollectStats], None] | None = None) -> CollectStats:
    """Write `episodes` demos of `policy` with `params` acting in `env` (unwrapped) to `writer`.

    policy: (initial_memory, act) acting on the batch of a round's envs (see
    MemoryPolicy; `memoryless` of a per-env function), without a key: it acts
    deterministically; with `sample` it gets a key each step (`uniform_random`).
    Gaussian noise of std `noise` is added to its actions (then clipped to
    [-1, 1]); the policy's memory never sees the noise. With
    `only_success`, failed episodes are dropped and rounds go on until enough
    succeeded. `progress(stats)` is called after each round; a KeyboardInterrupt
    raised there (or by Ctrl-C) stops the collection with every finished demo on disk.
    """
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes ({episodes}) and num_envs ({num_envs}) must be >= 1")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation, >= 0; got {noise}")
    started = time.monotonic()
    # Compiled apart from the first round, so that steps/s measures the simulation.
    run_round = make_round(env, policy, num_envs, noise, sample).lower(params, key).compile()
    compile_seconds = time.monotonic() - started
    started = time.monotonic()
    written = episodes_run = successes = rounds = env_steps = 0
    stats = CollectStats(0, episodes, 0, 0, 0, 0.0, compile_seconds)
    while written < episodes:
        if only_success and successes == 0 and rounds >= ROUNDS_BEFORE_GIVING_UP:
            raise CollectError(
                f"no episode succeeded in {rounds} rounds ({episodes_run} episodes, success rate 0%), so no "
                f"demo was written; check that the policy solves the task (with less noise?) or collect "
                f"failed episodes too")
        taken, steps = run_round(params, jax.random.fold_in(key, rounds))
        taken = int(taken)
        steps = jax.device_get(jax.tree.map(lambda rows, n=taken: rows[:n], steps))
        rounds += 1
        env_steps += taken * num_envs
        for demo, success in split_episodes(steps):
            episodes_run += 1
            successes += success
            if written < episodes and (success or not only_success):
                writer.add(**demo, success=success)
                written += 1
        stats = CollectStats(written, episodes, episodes_run, successes, env_steps,
                             time.monotonic() - started, compile_seconds)
        if progress is not None:
            progress(stats)
    return stats
