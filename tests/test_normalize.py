import jax.numpy as jnp
import numpy as np

from jaxrl import normalize


def test_running_stats_match_numpy_over_all_batches_for_dict_observations():
    rng = np.random.default_rng(1)
    batches = [{"state": rng.normal(3.0, 2.0, size=(4, 6, 3)), "privileged_state": rng.normal(size=(4, 6, 2))}
               for _ in range(3)]
    stats = normalize.init({"state": jnp.zeros(3), "privileged_state": jnp.zeros(2)})
    for batch in batches:
        stats = normalize.update(stats, batch, batch_ndim=2)
    for key in ("state", "privileged_state"):
        everything = np.concatenate([b[key].reshape(-1, b[key].shape[-1]) for b in batches])
        np.testing.assert_allclose(stats.mean[key], everything.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(normalize.std(stats)[key], everything.std(0), rtol=1e-4)
    assert float(stats.count) == 72


def test_normalize_is_identity_before_any_data_and_standardizes_after():
    stats = normalize.init(jnp.zeros(2))
    x = jnp.array([5.0, -3.0])
    np.testing.assert_allclose(normalize.normalize(stats, x), x)
    data = np.random.default_rng(2).normal(10.0, 4.0, size=(1000, 2))
    stats = normalize.update(stats, data, batch_ndim=1)
    z = np.asarray(normalize.normalize(stats, data))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
