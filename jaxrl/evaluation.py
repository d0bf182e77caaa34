"""Evaluating a policy: one episode in each of N parallel envs, and a success rate's confidence.

Training evaluates with these, `jaxrl eval` too, so a run's logged figures and
a later evaluation of its checkpoint mean the same thing.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

CONFIDENCE_Z = 1.96  # a 95% interval


@functools.cache  # one pair of functions per learner: the programs built on them are cached by them
def policy_with_memory(algo):
    """(initial_memory(params, obs), act(params, obs, memory, key) -> (action, memory)) of `algo`.

    Learners whose policy carries state between steps (an observation history,
    an action chunk being executed) define both; for every other learner the
    memory is empty and `act` is the deterministic `policy`.
    """
    if hasattr(algo, "act"):
        return algo.initial_memory, algo.act
    return (lambda params, obs: ()), (lambda params, obs, memory, key: (algo.policy(params, obs), memory))


@functools.lru_cache(maxsize=16)  # the same evaluation in the same process traces and compiles once
def make_evaluator(eval_env, algo, num_envs: int, episode_length: int):
    """jit-compiled (policy_params, key) -> per-episode means of the deterministic policy.

    The policy is the one `jaxrl export` ships: `act` without a key (a diffusion
    policy samples its chunks from the fixed noise the ONNX file holds). The key
    draws the episodes' starts. `eval_env` runs one episode per env
    (envs_mjx.wrap_for_eval), all started together, so a policy's memory starts at
    the first step for all of them; an episode's metrics count once, on the step
    it ends (selected, not multiplied by a mask: NaN * 0 is NaN).
    """
    initial_memory, act = policy_with_memory(algo)

    def evaluate(params, key):
        state = eval_env.reset(jax.random.split(key, num_envs))
        totals = jax.tree.map(jnp.zeros_like, state.info["episode_metrics"])

        def step(carry, _):
            state, memory, active, totals = carry
            action, memory = act(params, state.obs, memory, None)
            state = eval_env.step(state, action)
            ended = active & (state.done > 0)
            totals = jax.tree.map(lambda total, m: total + jnp.where(ended, m, 0.0), totals,
                                  state.info["episode_metrics"])
            return (state, memory, active & ~ended, totals), None

        carry = (state, initial_memory(params, state.obs), jnp.ones(num_envs, bool), totals)
        (_, _, _, totals), _ = jax.lax.scan(step, carry, None, length=episode_length)
        return {f"eval/episode_{k}" if k in ("return", "length") else f"eval/{k}": jnp.mean(v)
                for k, v in totals.items()}

    return jax.jit(evaluate)


def wilson_interval(successes: int, trials: int, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """Confidence interval of a success rate (Wilson score: sound near 0% and 100%, unlike p +- z*se)."""
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def add_success_interval(results: dict, episodes: int) -> dict:
    """`results` (host floats) with eval/success_ci_low and _high when the env reports success."""
    if "eval/success" not in results:
        return results
    successes = round(results["eval/success"] * episodes)  # each episode's success sums to 0 or 1
    low, high = wilson_interval(successes, episodes)
    return {**results, "eval/success_ci_low": max(low, 0.0), "eval/success_ci_high": min(high, 1.0)}
