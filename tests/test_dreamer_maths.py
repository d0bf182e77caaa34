"""Dreamer's maths against NumPy: symlog and two-hot values, lambda-returns and their percentile scale, the
categorical latent's KL with free nats and the dynamics/representation split, and the actor and critic
losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import actor_critic, categorical_latent, twohot
from jaxrl.distributions import BoundedNormal
from jaxrl.imagined_returns import ReturnRange, lambda_returns

BINS = twohot.symexp_bins()


def test_symlog_and_symexp_are_inverse_and_logarithmic_far_from_zero():
    x = np.array([-1e6, -3.0, -1e-3, 0.0, 1e-3, 3.0, 1e6], np.float32)
    want = np.sign(x) * np.log1p(np.abs(x.astype(np.float64)))
    np.testing.assert_allclose(twohot.symlog(x), want, rtol=1e-6)
    np.testing.assert_allclose(twohot.symexp(twohot.symlog(x)), x, rtol=1e-5)


def test_bins_are_mirrored_about_a_zero_bin_and_reach_symexp_of_the_limit():
    bins = np.asarray(BINS)
    assert bins.shape == (255,) and bins[127] == 0.0 and np.all(np.diff(bins) > 0)
    np.testing.assert_array_equal(bins, -bins[::-1])
    assert bins[-1] == pytest.approx(np.expm1(20.0), rel=1e-6)
    with pytest.raises(ValueError, match="odd"):
        twohot.symexp_bins(256)


@pytest.mark.parametrize("x", [0.0, 0.37, -2.5, 1234.5, -8e5])
def test_two_hot_puts_the_value_on_its_two_neighbouring_bins(x):
    weights = np.asarray(twohot.encode(jnp.float32(x), BINS))
    bins = np.asarray(BINS)
    nonzero = np.flatnonzero(weights)
    assert weights.sum() == pytest.approx(1.0, abs=1e-6) and np.all(weights >= 0)
    assert len(nonzero) <= 2 and (len(nonzero) == 1 or nonzero[1] == nonzero[0] + 1)
    assert bins[nonzero[0]] <= x <= bins[nonzero[-1]]
    assert weights @ bins == pytest.approx(x, rel=1e-5, abs=1e-6)


def test_two_hot_puts_values_beyond_the_outer_bins_on_them():
    weights = np.asarray(twohot.encode(jnp.array([1e12, -1e12]), BINS))
    np.testing.assert_array_equal(weights[0], np.eye(255)[-1])
    np.testing.assert_array_equal(weights[1], np.eye(255)[0])


def test_decode_is_the_expected_bin_and_exactly_zero_for_a_zero_initialised_head():
    assert float(twohot.decode(jnp.zeros(255), BINS)) == 0.0
    logits = np.random.default_rng(0).normal(size=(4, 255)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    want = probs.astype(np.float64) @ np.asarray(BINS, np.float64)
    np.testing.assert_allclose(twohot.decode(logits, BINS), want, rtol=1e-3)
    for x in (0.37, -2.5, 1234.5):  # the two-hot of x as probabilities decodes to x
        weights = twohot.encode(jnp.float32(x), BINS)
        assert float(twohot.decode(jnp.log(weights + 1e-30), BINS)) == pytest.approx(x, rel=1e-5)


def test_two_hot_loss_is_the_cross_entropy_and_pulls_the_logits_to_the_target():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=255), jnp.float32)
    weights = np.asarray(twohot.encode(jnp.float32(3.0), BINS))
    log_probs = np.asarray(jax.nn.log_softmax(logits))
    assert float(twohot.loss(logits, jnp.float32(3.0), BINS)) == pytest.approx(-(weights * log_probs).sum(),
                                                                                rel=1e-5)
    grad = jax.grad(twohot.loss)(logits, jnp.float32(3.0), BINS)
    np.testing.assert_allclose(grad, np.exp(log_probs) - weights, atol=1e-6)


def numpy_lambda_returns(rewards, continues, values, discount, lambda_):
    returns, later = np.zeros_like(rewards), values[-1]
    for t in reversed(range(len(rewards))):
        later = rewards[t] + discount * continues[t] * ((1 - lambda_) * values[t + 1] + lambda_ * later)
        returns[t] = later
    return returns


@pytest.mark.parametrize("lambda_", [0.0, 0.95, 1.0])
def test_lambda_returns_match_the_recursion(lambda_):
    rng = np.random.default_rng(2)
    rewards, values = rng.normal(size=(15, 3)).astype(np.float32), rng.normal(size=(16, 3)).astype(np.float32)
    continues = (rng.uniform(size=(15, 3)) > 0.1).astype(np.float32)
    got = lambda_returns(rewards, continues, values, 0.99, lambda_)
    want = numpy_lambda_returns(rewards, continues, values, 0.99, lambda_)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if lambda_ == 0.0:  # one-step targets
        np.testing.assert_allclose(got, rewards + 0.99 * continues * values[1:], rtol=1e-6)
    with pytest.raises(ValueError, match="one more step"):
        lambda_returns(rewards, continues, values[:-1], 0.99, lambda_)


def test_return_range_follows_the_percentiles_slowly_and_scales_by_at_least_one():
    returns = np.arange(101, dtype=np.float32)  # percentiles 5 and 95: 5 and 95
    moments = ReturnRange.zeros().update(returns, rate=0.01)
    assert float(moments.low) == pytest.approx(0.05) and float(moments.high) == pytest.approx(0.95)
    assert float(moments.scale()) == 1.0  # a range of 0.9 is below the floor
    for _ in range(999):
        moments = moments.update(returns, rate=0.01)
    assert float(moments.scale()) == pytest.approx(90.0 * (1 - 0.99 ** 1000), rel=1e-4)


def numpy_kl(p_logits, q_logits, unimix):
    def probs(logits):
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return (1 - unimix) * e / e.sum(-1, keepdims=True) + unimix / logits.shape[-1]

    p, q = probs(p_logits), probs(q_logits)
    return (p * (np.log(p) - np.log(q))).sum(axis=(-2, -1))


def test_kl_losses_are_the_mixed_categoricals_kl_clipped_at_free_nats():
    rng = np.random.default_rng(3)
    post, prior = (rng.normal(size=(5, 4, 6)).astype(np.float32) * 3 for _ in range(2))
    want = numpy_kl(post, prior, 0.01)
    dynamics, representation = categorical_latent.kl_losses(post, prior, unimix=0.01, free_nats=0.0)
    np.testing.assert_allclose(dynamics, want, rtol=1e-4)
    np.testing.assert_allclose(representation, want, rtol=1e-4)
    free = np.median(want)
    clipped, _ = categorical_latent.kl_losses(post, prior, unimix=0.01, free_nats=free)
    np.testing.assert_allclose(clipped, np.maximum(want, free), rtol=1e-4)


def test_the_dynamics_loss_trains_the_prior_and_the_representation_loss_the_posterior():
    rng = np.random.default_rng(4)
    post, prior = (jnp.asarray(rng.normal(size=(4, 6)), jnp.float32) for _ in range(2))

    def gradients(which: int):  # of loss `which` (0 dynamics, 1 representation) to posterior and prior
        loss = lambda a, b: categorical_latent.kl_losses(a, b, unimix=0.01, free_nats=0.0)[which].sum()  # noqa: E731
        return jax.grad(loss, argnums=(0, 1))(post, prior)

    (d_post, d_prior), (r_post, r_prior) = gradients(0), gradients(1)
    assert np.all(d_post == 0) and np.abs(d_prior).max() > 1e-3
    assert np.all(r_prior == 0) and np.abs(r_post).max() > 1e-3
    # Above free nats the loss is constant: no gradient at all.
    assert np.all(jax.grad(lambda b: categorical_latent.kl_losses(post, b, 0.01, 1e3)[0].sum())(prior) == 0)


def test_a_sample_is_one_hot_with_the_gradient_of_the_probabilities():
    logits = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4, 6)), jnp.float32)
    key = jax.random.PRNGKey(0)
    sample = np.asarray(categorical_latent.sample(key, logits, 0.01))
    np.testing.assert_allclose(sample.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.sort(sample, -1)[..., -1], 1.0, atol=1e-6)  # one-hot (up to rounding)
    weights = jnp.arange(6.0)
    got = jax.grad(lambda x: jnp.sum(categorical_latent.sample(key, x, 0.01) * weights))(logits)
    probs = lambda x: categorical_latent.distribution(x, 0.01).distribution.probs  # noqa: E731
    want = jax.grad(lambda x: jnp.sum(probs(x) * weights))(logits)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_state_weights_are_the_discounted_chance_the_episode_still_runs():
    continues = np.array([[1.0, 0.5], [0.8, 0.0], [1.0, 1.0]], np.float32)
    want = np.concatenate([np.ones((1, 2)), np.cumprod(0.9 * continues, axis=0)])
    np.testing.assert_allclose(actor_critic.state_weights(continues, 0.9), want, rtol=1e-6)
    np.testing.assert_allclose(want[:, 1], [1.0, 0.45, 0.0, 0.0])  # nothing after a certain end


def test_the_critic_moves_towards_the_returns_on_the_states_that_weigh():
    logits, returns = jnp.zeros((3, 2, 255)), jnp.array([[5.0, 5.0], [-2.0, -2.0], [0.5, 0.5]])
    weights = jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # the second trajectory ended at once
    loss = lambda lg, reg: actor_critic.critic_loss(lg, jnp.zeros((3, 2)), returns, weights, BINS, reg)  # noqa: E731
    grad = jax.grad(loss)(logits, 0.0)
    assert np.all(grad[:, 1] == 0)
    moved = np.asarray(twohot.decode(logits - grad, BINS)[:, 0])
    assert np.all(np.sign(moved) == np.sign(returns[:, 0]))  # from 0 towards each return
    at_returns = jnp.log(twohot.encode(returns, BINS) + 1e-30)  # the two-hot of the returns: the optimum
    np.testing.assert_allclose(jax.grad(loss)(at_returns, 0.0), 0.0, atol=1e-6)
    want = np.mean(np.asarray(weights) * np.asarray(twohot.loss(logits, returns, BINS) + 0.5 * np.log(255)))
    assert float(loss(logits, 0.5)) == pytest.approx(want, rel=1e-5)  # zero logits: slow term is log 255


def test_the_actor_raises_the_chance_of_actions_better_than_the_critic_expects():
    log_probs, entropies = jnp.array([[-1.0, -1.0]]), jnp.array([[0.5, 0.5]])
    returns, values, weights = jnp.array([[3.0, 1.0]]), jnp.array([[1.0, 2.0]]), jnp.ones((1, 2))

    def loss(log_probs, entropies, returns, values):
        return actor_critic.actor_loss(log_probs, entropies, returns, values, jnp.float32(2.0), weights, 0.1)

    d_log_prob, d_entropy, d_returns, d_values = jax.grad(loss, argnums=(0, 1, 2, 3))(log_probs, entropies,
                                                                                      returns, values)
    np.testing.assert_allclose(d_log_prob, [[-0.5, 0.25]])  # -(advantage / scale) / 2 states
    np.testing.assert_allclose(d_entropy, [[-0.05, -0.05]])  # more entropy lowers the loss
    assert np.all(d_returns == 0) and np.all(d_values == 0)  # the critic is not trained through the actor


def test_the_mode_is_the_one_hot_of_each_variables_largest_logit():
    logits = jnp.asarray([[[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]]])
    np.testing.assert_array_equal(categorical_latent.mode(logits), [[[0, 1, 0], [1, 0, 0]]])


def test_the_backprop_actor_loss_climbs_the_scaled_returns_and_the_entropy():
    returns, entropies = jnp.asarray([[2.0, 4.0], [1.0, 0.0]]), jnp.asarray([[0.5, 0.5], [1.0, 2.0]])
    weights, scale, cost = jnp.asarray([[1.0, 1.0], [0.5, 0.25]]), jnp.asarray(2.0), 0.1
    want = -np.mean(np.asarray(weights) * (np.asarray(returns) / 2.0 + cost * np.asarray(entropies)))
    loss = actor_critic.backprop_actor_loss(returns, entropies, scale, weights, cost)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    grad = jax.grad(actor_critic.backprop_actor_loss)(returns, entropies, scale, weights, cost)
    np.testing.assert_allclose(grad, -np.asarray(weights) / scale / returns.size, rtol=1e-6)


def test_the_bounded_normal_keeps_its_mean_in_the_action_range_and_its_std_in_bounds():
    output = jnp.asarray([[-50.0, 0.0, 50.0, -50.0, 0.0, 50.0]])  # 3 means' then 3 stds' pre-activations
    dist = BoundedNormal.from_network_output(output, min_std=0.1, max_std=1.0)
    np.testing.assert_allclose(dist.mode(), [[-1.0, 0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(dist.scale, [[0.1, 0.1 + 0.9 * jax.nn.sigmoid(2.0), 1.0]], rtol=1e-6)
    gaussian_entropy = np.sum(0.5 * np.log(2 * np.pi * np.e * np.asarray(dist.scale) ** 2))
    np.testing.assert_allclose(dist.entropy(), [gaussian_entropy], rtol=1e-5)
    sample = dist.sample(jax.random.PRNGKey(0))
    want = np.sum(-0.5 * ((sample - dist.loc) / dist.scale) ** 2 - np.log(dist.scale * np.sqrt(2 * np.pi)))
    np.testing.assert_allclose(dist.log_prob(sample), [want], rtol=1e-5)
