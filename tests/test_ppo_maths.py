"""PPO's maths: GAE against a plain NumPy loop (terminations and truncations mixed), the value loss."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_mjx
from jaxrl.algos import ppo
from jaxrl.algos.ppo import compute_gae


def numpy_gae(rewards, values, next_values, terminations, dones, gamma, lam):
    T, B = rewards.shape
    advantages = np.zeros((T, B))
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminations[t, b] else next_values[t, b]
            delta = rewards[t, b] + gamma * bootstrap - values[t, b]
            running = delta + (0.0 if dones[t, b] else gamma * lam * running)
            advantages[t, b] = running
    return advantages, advantages + values


def test_gae_matches_numpy_with_terminations_and_truncations():
    rng = np.random.default_rng(0)
    T, B = 12, 5
    rewards = rng.normal(size=(T, B))
    values = rng.normal(size=(T, B))
    next_values = rng.normal(size=(T, B))
    terminations = np.zeros((T, B))
    truncations = np.zeros((T, B))
    terminations[[2, 7], [0, 3]] = 1
    truncations[[4, 11, 9], [1, 3, 4]] = 1
    terminations[5, 2] = 1  # an env with both kinds across the rollout
    truncations[9, 2] = 1
    dones = np.maximum(terminations, truncations)

    got_adv, got_ret = compute_gae(rewards, values, next_values, terminations, dones, 0.97, 0.9)
    want_adv, want_ret = numpy_gae(rewards, values, next_values, terminations, dones, 0.97, 0.9)
    np.testing.assert_allclose(got_adv, want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_ret, want_ret, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_but_termination_does_not():
    ones = np.ones((1, 1))
    zeros = np.zeros((1, 1))
    # One step, reward 1, V(s)=0, V(s')=10: truncated -> 1 + 0.9*10, terminated -> 1.
    truncated, _ = compute_gae(ones, zeros, 10 * ones, zeros, ones, 0.9, 0.95)
    terminated, _ = compute_gae(ones, zeros, 10 * ones, ones, ones, 0.9, 0.95)
    np.testing.assert_allclose(truncated, [[10.0]], rtol=1e-6)
    np.testing.assert_allclose(terminated, [[1.0]], rtol=1e-6)


@pytest.mark.parametrize("coefficient", [1.0, 0.25])
def test_value_loss_is_brax_s_half_mean_squared_error_times_the_coefficient(coefficient):
    """brax: v_loss = 0.5 * vf_loss_coefficient * mean((V - returns)^2); a recipe translates as it is."""
    env = envs_mjx.wrap_for_training(envs_mjx.make("cartpole-balance"), episode_length=20)
    cfg = dataclasses.replace(ppo.Config(num_envs=4, num_minibatches=1), vf_loss_coefficient=coefficient)
    state = ppo.init(jax.random.PRNGKey(0), env, cfg)
    obs = state.env_state.obs
    returns = jnp.arange(4.0)
    batch = {"obs": obs, "pre_tanh": jnp.zeros((4, 1)), "log_prob": jnp.zeros(4), "advantages": jnp.ones(4),
             "returns": returns}
    _, metrics = ppo._loss(state.params, batch, jax.random.PRNGKey(1), state, cfg)
    values = np.asarray(ppo._value(state.params.value, state.value_spec, state.obs_stats, obs))
    want = 0.5 * coefficient * np.mean(np.square(values - np.asarray(returns)))
    np.testing.assert_allclose(float(metrics["loss/value"]), want, rtol=1e-5)
