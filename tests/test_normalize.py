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


def test_statistics_from_a_first_batch_standardize_it_and_leave_constant_entries_unscaled():
    rng = np.random.default_rng(3)
    batch = {"state": np.concatenate([rng.normal(5.0, 3.0, size=(64, 2)), np.zeros((64, 1))], axis=1)}
    stats = normalize.from_batch(batch)
    assert float(stats.count) == 64
    z = np.asarray(normalize.normalize(stats, batch)["state"])
    np.testing.assert_allclose(z[:, :2].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0), 1.0, atol=1e-4)
    # The entry that never varied has no scale yet: its first change passes unscaled, not to the clip.
    moved = normalize.normalize(stats, {"state": jnp.array([5.0, 5.0, 0.5])})["state"]
    np.testing.assert_allclose(moved[2], 0.5, rtol=1e-6)


def test_ppo_and_sac_start_from_the_statistics_of_their_reset_observations():
    import jax

    import envs_mjx
    from jaxrl.algos import ppo, sac

    env = envs_mjx.wrap_for_training(envs_mjx.make("cartpole-balance"), episode_length=50)
    for algo, cfg in ((ppo, ppo.Config(num_envs=8, num_minibatches=2)),
                      (sac, sac.Config(num_envs=8, replay_capacity=64, min_replay_size=8))):
        state = algo.init(jax.random.PRNGKey(0), env, cfg)
        obs = np.asarray(state.env_state.obs)
        assert float(state.obs_stats.count) == 8
        np.testing.assert_allclose(state.obs_stats.mean, obs.mean(0), rtol=1e-5, atol=1e-6)
