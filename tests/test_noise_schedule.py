"""The diffusion process: schedules, q(x_t | x_0), DDIM steps and sampling, against NumPy written here."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import noise_schedule as ns


def reference_cosine_alphas_cumprod(num_train_steps: int) -> np.ndarray:
    """alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2), after t+1 steps.

    The product of alpha_t = f(t+1) / f(t) telescopes to this, up to the last step, whose beta the
    schedule clips at 0.999.
    """
    s = 0.008
    f = lambda fraction: math.cos((fraction + s) / (1 + s) * math.pi / 2) ** 2
    values = [f((t + 1) / num_train_steps) / f(0.0) for t in range(num_train_steps - 1)]
    values.append(values[-1] * (1 - 0.999))
    return np.array(values)


def reference_ddim_step(alphas_cumprod, x_t, eps, t, t_prev, clip):
    """DDIM (eta = 0) in float64 with per-example scalar loops, written apart from the module's."""
    x_prev = np.empty_like(x_t, dtype=np.float64)
    for b in range(x_t.shape[0]):
        a = float(alphas_cumprod[t[b]])
        a_prev = 1.0 if t_prev[b] < 0 else float(alphas_cumprod[t_prev[b]])
        x0_hat = (x_t[b] - math.sqrt(1 - a) * eps[b]) / math.sqrt(a)
        if clip is not None:
            x0_hat = np.minimum(np.maximum(x0_hat, -clip), clip)
        direction = (x_t[b] - math.sqrt(a) * x0_hat) / math.sqrt(1 - a)
        x_prev[b] = math.sqrt(a_prev) * x0_hat + math.sqrt(1 - a_prev) * direction
    return x_prev


def test_cosine_schedule_matches_the_closed_form():
    schedule = ns.make_schedule(100, "cosine")
    expected = reference_cosine_alphas_cumprod(100)
    np.testing.assert_allclose(np.asarray(schedule.alphas_cumprod), expected, rtol=1e-5, atol=1e-9)
    for t in (0, 10, 50, 98):  # spot values, each from the closed form alone
        np.testing.assert_allclose(float(schedule.alphas_cumprod[t]), expected[t], rtol=1e-5)
    np.testing.assert_allclose(float(schedule.betas[-1]), 0.999, rtol=1e-6)
    assert schedule.num_train_steps == 100


def test_linear_schedule_matches_numpy():
    schedule = ns.make_schedule(50, "linear")
    betas = np.linspace(1e-4, 2e-2, 50)
    np.testing.assert_allclose(np.asarray(schedule.betas), betas, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(schedule.alphas), 1 - betas, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(schedule.alphas_cumprod), np.cumprod(1 - betas), rtol=1e-5)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_alphas_cumprod_decrease_inside_the_unit_interval(kind):
    schedule = ns.make_schedule(100, kind)
    alphas_cumprod = np.asarray(schedule.alphas_cumprod)
    assert alphas_cumprod.dtype == np.float32 and alphas_cumprod.shape == (100,)
    assert np.all(np.diff(alphas_cumprod) < 0)
    assert np.all((alphas_cumprod > 0) & (alphas_cumprod < 1))
    assert np.all((np.asarray(schedule.betas) > 0) & (np.asarray(schedule.betas) < 1))


def test_unknown_schedule_names_the_valid_ones():
    with pytest.raises(ValueError, match="cosine.*linear"):
        ns.make_schedule(100, "quadratic")


def test_add_noise_has_the_forward_process_statistics():
    schedule = ns.make_schedule(100)
    num_samples = 20_000
    t = jnp.asarray(np.arange(num_samples) % 4 * 30)  # timesteps 0, 30, 60, 90, one per example
    x0 = jnp.full((num_samples, 3), 0.7)
    noise = jax.random.normal(jax.random.key(0), x0.shape)
    x_t = np.asarray(ns.add_noise(schedule, x0, noise, t))
    for step in (0, 30, 60, 90):
        a = float(schedule.alphas_cumprod[step])
        draws = x_t[np.asarray(t) == step]
        np.testing.assert_allclose(draws.mean(), math.sqrt(a) * 0.7, atol=0.02)
        np.testing.assert_allclose(draws.std(), math.sqrt(1 - a), rtol=0.03)
    # One timestep for the whole batch broadcasts the same way.
    np.testing.assert_allclose(np.asarray(ns.add_noise(schedule, x0, noise, jnp.asarray(30))),
                               np.asarray(ns.add_noise(schedule, x0, noise, jnp.full(num_samples, 30))))


def test_ddim_timesteps_are_descending_and_evenly_spaced():
    np.testing.assert_array_equal(ns.ddim_timesteps(100, 10), np.arange(99, 0, -10))
    np.testing.assert_array_equal(ns.ddim_timesteps(100, 100), np.arange(99, -1, -1))
    np.testing.assert_array_equal(ns.ddim_timesteps(100, 1), [99])
    uneven = ns.ddim_timesteps(100, 3)
    assert uneven[0] == 99 and np.all(np.diff(uneven) < 0) and np.ptp(np.diff(uneven)) <= 1
    with pytest.raises(ValueError, match="num_inference_steps"):
        ns.ddim_timesteps(10, 11)


@pytest.mark.parametrize("clip", [1.0, None])
def test_ddim_step_matches_a_numpy_reference(clip):
    schedule = ns.make_schedule(100)
    rng = np.random.default_rng(0)
    x_t = rng.normal(size=(5, 16, 4)).astype(np.float32) * 1.5  # large enough that clipping bites
    eps = rng.normal(size=(5, 16, 4)).astype(np.float32)
    t = np.array([99, 50, 20, 9, 3])
    t_prev = np.array([89, 40, 10, -1, -1])  # two final steps straight to x_0
    got = ns.ddim_step(schedule, jnp.asarray(x_t), jnp.asarray(eps), jnp.asarray(t), jnp.asarray(t_prev),
                       clip)
    expected = reference_ddim_step(np.asarray(schedule.alphas_cumprod, np.float64), x_t, eps, t, t_prev, clip)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)
    if clip is not None:
        np.testing.assert_array_less(np.abs(np.asarray(got)[3:]), 1.0 + 1e-6)  # the x_0 steps are clipped


def test_ddim_step_with_the_true_noise_lands_on_the_forward_process():
    # Deterministic DDIM keeps the noise direction: from x_t = q(x_0, n, t) with the true eps = n it
    # reaches exactly q(x_0, n, t_prev).
    schedule = ns.make_schedule(100)
    x0 = jax.random.uniform(jax.random.key(1), (3, 8, 2), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.key(2), x0.shape)
    x_t = ns.add_noise(schedule, x0, noise, jnp.asarray(70))
    x_prev = ns.ddim_step(schedule, x_t, noise, jnp.asarray(70), jnp.asarray(35))
    expected = ns.add_noise(schedule, x0, noise, jnp.asarray(35))
    np.testing.assert_allclose(np.asarray(x_prev), np.asarray(expected), atol=1e-5)


def oracle_denoiser(schedule, x0):
    """The exact eps of x_t for a known x_0: (x_t - sqrt(a) x0) / sqrt(1 - a)."""
    def denoise(x_t, t):
        assert t.shape == (x_t.shape[0],) and t.dtype == jnp.int32
        a = schedule.alphas_cumprod[t][:, None, None]
        return (x_t - jnp.sqrt(a) * x0) / jnp.sqrt(1 - a)
    return denoise


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_ddim_sample_with_the_exact_noise_recovers_x0(kind):
    schedule = ns.make_schedule(100, kind)
    x0 = jax.random.uniform(jax.random.key(3), (4, 16, 2), minval=-0.95, maxval=0.95)
    sample = jax.jit(lambda key: ns.ddim_sample(oracle_denoiser(schedule, x0), schedule, key, x0.shape, 10))
    np.testing.assert_allclose(np.asarray(sample(jax.random.key(4))), np.asarray(x0), atol=1e-5)


def test_ddim_steps_from_a_noised_x0_recover_it_at_every_step_count():
    schedule = ns.make_schedule(100)
    x0 = jnp.linspace(-0.9, 0.9, 16 * 3).reshape(1, 16, 3)
    noised = ns.add_noise(schedule, x0, jax.random.normal(jax.random.key(5), x0.shape), jnp.asarray(99))
    denoise = oracle_denoiser(schedule, x0)
    for num_inference_steps in (1, 7, 100):
        timesteps = ns.ddim_timesteps(100, num_inference_steps)
        x_t = noised
        for t, t_prev in zip(timesteps, [*timesteps[1:], -1], strict=True):
            eps = denoise(x_t, jnp.full((1,), t, jnp.int32))
            x_t = ns.ddim_step(schedule, x_t, eps, jnp.asarray(t), jnp.asarray(t_prev))
        # One step goes straight from t=99, where sqrt(alphas_cumprod) ~ 5e-4 divides float32 rounding.
        tolerance = 1e-3 if num_inference_steps == 1 else 1e-5
        np.testing.assert_allclose(np.asarray(x_t), np.asarray(x0), atol=tolerance)


def test_ddim_sample_compiles_once_and_depends_on_the_key():
    schedule = ns.make_schedule(100)
    traces = []

    @jax.jit
    def sample(scale, key):
        traces.append(1)  # runs only while tracing
        return ns.ddim_sample(lambda x, t: scale * x, schedule, key, (2, 8, 3), 10)

    first = sample(jnp.float32(0.5), jax.random.key(6))
    second = sample(jnp.float32(0.3), jax.random.key(7))
    assert len(traces) == 1
    assert first.shape == (2, 8, 3) and not np.allclose(np.asarray(first), np.asarray(second))
    assert np.all(np.abs(np.asarray(first)) <= 1.0 + 1e-6)  # the last step returns the clipped x0_hat


def test_ddim_sample_denoises_the_noise_its_key_draws():
    schedule = ns.make_schedule(100)
    denoise = lambda x, t: 0.5 * x + 1e-3 * t[:, None, None]
    key = jax.random.key(8)
    sampled = ns.ddim_sample(denoise, schedule, key, (2, 8, 3), 5)
    denoised = ns.ddim_denoise(denoise, schedule, jax.random.normal(key, (2, 8, 3)), 5)
    np.testing.assert_array_equal(np.asarray(sampled), np.asarray(denoised))
