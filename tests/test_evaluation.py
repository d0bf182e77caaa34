"""The evaluator and the episode bookkeeping: each episode counted once, a NaN in one env kept to it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_envs import StepCounter, StepCounterConfig

import envs_mjx
from jaxrl.algos import ppo, rollout
from jaxrl.evaluation import make_evaluator


def evaluate_untrained(env, num_envs=8, episode_length=10):
    train_env = envs_mjx.wrap_for_training(env, episode_length)
    state = ppo.init(jax.random.PRNGKey(0), train_env, ppo.Config(num_envs=4, num_minibatches=1))
    evaluator = make_evaluator(envs_mjx.wrap_for_eval(env, episode_length), ppo, num_envs, episode_length)
    return {k: float(v) for k, v in evaluator(ppo.policy_params(state), jax.random.PRNGKey(1)).items()}


@pytest.mark.parametrize("horizon, length", [(3, 3), (4, 4), (20, 10)])
def test_the_evaluator_counts_each_episode_once(horizon, length):
    """Episodes end at step `horizon` (or are cut at the limit of 10); an env stepped on after its end
    ends again at 2 x horizon, which must not count."""
    results = evaluate_untrained(StepCounter(StepCounterConfig(horizon=horizon)))
    assert results["eval/episode_length"] == length
    assert results["eval/episode_return"] == length and results["eval/m"] == length


def test_a_nan_metric_ends_its_episode_and_stays_out_of_every_sum():
    env = StepCounter(StepCounterConfig(horizon=5, nan_share=0.5))
    batched = envs_mjx.wrap_for_training(env, episode_length=10)
    state = jax.jit(batched.reset)(jax.random.split(jax.random.PRNGKey(3), 32))
    goes_nan = np.asarray(state.obs[:, 1]) > 0
    assert 0 < goes_nan.sum() < 32
    act = lambda obs, key: (jnp.zeros((obs.shape[0], 1)), {})  # noqa: E731
    unroll = jax.jit(lambda s: rollout.unroll(batched, s, act, jax.random.PRNGKey(0), 2))
    state, trajectory, sums = unroll(state)
    done = np.asarray(trajectory.done)
    # The envs whose metric went NaN at their second step ended there and started afresh.
    np.testing.assert_array_equal(done[1], goes_nan.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(trajectory.truncation[1]), 0.0)
    assert np.all(np.asarray(state.obs[goes_nan, 0]) == 0.0)
    assert np.all(np.asarray(state.obs[~goes_nan, 0]) == 2.0)
    assert np.all(np.isfinite(np.asarray(trajectory.reward)))
    # Their episodes: 2 steps each, m counted 1 (the NaN step counts 0), return 1.
    assert float(sums["episode_count"]) == goes_nan.sum()
    assert float(sums["episode_sum/length"]) == 2 * goes_nan.sum()
    assert float(sums["episode_sum/m"]) == goes_nan.sum()
    assert float(sums["episode_sum/return"]) == goes_nan.sum()

    results = evaluate_untrained(env, num_envs=32)
    assert all(np.isfinite(v) for v in results.values()), results
