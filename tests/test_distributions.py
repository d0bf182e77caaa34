import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxrl.distributions import TanhNormal


def test_log_prob_is_gaussian_density_with_tanh_change_of_variables():
    loc, scale = jnp.array([0.3, -1.0]), jnp.array([0.5, 2.0])
    dist = TanhNormal(loc, scale)
    u = dist.sample_pre_tanh(jax.random.PRNGKey(0))
    u_np = np.asarray(u)
    expected = stats.norm.logpdf(u_np, loc, scale).sum() - np.log(1 - np.tanh(u_np) ** 2).sum()
    np.testing.assert_allclose(dist.log_prob_pre_tanh(u), expected, rtol=1e-4)


def test_log_prob_stays_finite_where_tanh_saturates():
    dist = TanhNormal(jnp.zeros(1), jnp.ones(1))
    assert np.isfinite(float(dist.log_prob_pre_tanh(jnp.array([30.0]))))


def test_mode_is_squashed_mean_and_network_output_split():
    dist = TanhNormal.from_network_output(jnp.array([2.0, -50.0]))
    np.testing.assert_allclose(dist.mode(), np.tanh([2.0]), rtol=1e-6)
    assert float(dist.base.stddev()[0]) >= 1e-3  # min_std keeps a collapsed std positive
