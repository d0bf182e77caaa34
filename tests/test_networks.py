"""Diffusion Policy's noise predictor: shapes, conditioning, and that it learns a toy denoising task.

Compiling a U-Net is what costs here (the 2-core CPU needs seconds per graph), so shape checks run on
`jax.eval_shape` (no compilation), the numeric tests share one small network's params and graphs, and
those graphs compile with LLVM's lighter optimization levels.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl import noise_schedule as ns
from jaxrl.networks import ConditionalUnet1D, SinusoidalEmbedding, TemporalConv

SMALL_UNET = ConditionalUnet1D(down_dims=(16, 32), kernel_size=3, n_groups=4, time_embed_dim=16)
BATCH, HORIZON, ACTION_SIZE, COND_SIZE = 64, 8, 2, 3


def compile_quickly(fn, *args, optimization_level=0):
    """`fn` jitted and compiled for `args` with LLVM's optimization at `optimization_level` (XLA's
    default is 3): a graph run once or twice is done sooner at 0, one with a training loop at 1 (on
    this CPU -O1 halves the U-Net's compile time and runs it about as fast as -O3; -O0 runs it 10x
    slower)."""
    options = {"xla_backend_optimization_level": optimization_level}
    return jax.jit(fn).lower(*args).compile(compiler_options=options)


def output_shape(net, x_shape, cond_shape):
    """The network's params and output shapes, traced abstractly: nothing is compiled or run."""
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    t = jax.ShapeDtypeStruct(x_shape[:1], jnp.int32)
    cond = None if cond_shape is None else jax.ShapeDtypeStruct(cond_shape, jnp.float32)
    params = jax.eval_shape(net.init, jax.random.key(0), x, t, cond)
    return params, jax.eval_shape(net.apply, params, x, t, cond).shape


@pytest.mark.parametrize("net, x_shape, cond_shape", [
    (ConditionalUnet1D(), (2, 16, 4), (2, 80)),
    (ConditionalUnet1D(down_dims=(16, 32, 64), kernel_size=3), (3, 8, 7), (3, 5)),
    (ConditionalUnet1D(down_dims=(16,), n_groups=4), (1, 5, 2), None),  # one level: any horizon
])
def test_output_has_the_shape_of_the_noisy_actions(net, x_shape, cond_shape):
    assert output_shape(net, x_shape, cond_shape)[1] == x_shape


def test_default_unet_is_modest():
    params, _ = output_shape(ConditionalUnet1D(), (1, 16, 4), (1, 2 * 40))
    num_params = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert 1_000_000 < num_params < 3_000_000


@pytest.mark.parametrize("net, x_shape, match", [
    (ConditionalUnet1D(), (2, 10, 4), "horizon 10 must be divisible by .* 4"),
    (ConditionalUnet1D(down_dims=(12, 24)), (2, 8, 4), "divisible by n_groups=8"),
    (ConditionalUnet1D(), (16, 4), r"\[batch, horizon, action_size\]"),
])
def test_bad_shapes_raise_a_clear_error(net, x_shape, match):
    with pytest.raises(ValueError, match=match):
        output_shape(net, x_shape, (x_shape[0], 3))


@pytest.mark.parametrize("kernel_size, stride, horizon",
                         [(5, 1, 16), (1, 1, 7), (3, 2, 16), (3, 2, 5), (4, 1, 6)])
def test_temporal_conv_is_a_same_padded_conv(kernel_size, stride, horizon):
    """The slices-and-matmul conv computes what XLA's convolution (nn.Conv, 'SAME') does with its params."""
    x = jax.random.normal(jax.random.key(1), (3, horizon, 6))
    layer = TemporalConv(5, kernel_size, stride=stride)
    params = layer.init(jax.random.key(2), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias too
    expected = nn.Conv(5, (kernel_size,), strides=(stride,), padding="SAME").apply(params, x)
    out = layer.apply(params, x)
    assert out.shape == (3, -(-horizon // stride), 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_sinusoidal_embedding():
    features = SinusoidalEmbedding(8).apply({}, jnp.array([0, 1, 50]))
    assert features.shape == (3, 8)
    np.testing.assert_allclose(features[0], [0, 0, 0, 0, 1, 1, 1, 1])  # sin 0, cos 0
    np.testing.assert_allclose(features[1, 0], math.sin(1.0), rtol=1e-6)  # the fastest frequency is 1
    assert not np.allclose(features[1], features[2])


@jax.jit
def random_inputs(key):
    x_key, t_key, cond_key = jax.random.split(key, 3)
    x = jax.random.normal(x_key, (BATCH, HORIZON, ACTION_SIZE))
    t = jax.random.randint(t_key, (BATCH,), 0, 100)
    return x, t, jax.random.normal(cond_key, (BATCH, COND_SIZE))


@pytest.fixture(scope="module")
def small_unet():
    """SMALL_UNET's initial params and its compiled apply, shared by the numeric tests."""
    inputs = random_inputs(jax.random.key(0))
    params = compile_quickly(SMALL_UNET.init, jax.random.key(0), *inputs)(jax.random.key(0), *inputs)
    return params, compile_quickly(SMALL_UNET.apply, params, *inputs)


def test_conditioning_and_timestep_steer_the_output(small_unet):
    params, apply = small_unet
    x, t, cond = random_inputs(jax.random.key(1))
    eps = np.asarray(apply(params, x, t, cond))
    assert np.all(np.isfinite(eps))
    per_example_change = lambda other: np.abs(np.asarray(other) - eps).max(axis=(1, 2))
    assert np.all(per_example_change(apply(params, x, t, cond + 1.0)) > 1e-3)
    assert np.all(per_example_change(apply(params, x, (t + 37) % 100, cond)) > 1e-3)
    # GroupNorm, not BatchNorm: each example's output ignores the rest of the batch.
    others_changed = apply(params, x.at[1:].multiply(-2.0), t.at[1:].set(0), cond.at[1:].add(3.0))
    np.testing.assert_allclose(np.asarray(others_changed[0]), eps[0], atol=1e-5)


def test_gradient_reaches_the_conditioning(small_unet):
    params, _ = small_unet
    x, t, cond = random_inputs(jax.random.key(2))
    squared_output = lambda params, x, t, cond: jnp.sum(SMALL_UNET.apply(params, x, t, cond) ** 2)
    grad_wrt_cond = jax.grad(squared_output, argnums=3)
    cond_grad = compile_quickly(grad_wrt_cond, params, x, t, cond)(params, x, t, cond)
    assert np.all(np.linalg.norm(np.asarray(cond_grad), axis=-1) > 1e-4)  # every example, not only some


def toy_trajectories(cond):
    """A fixed map cond -> clean action chunk: sine waves whose amplitude cond sets and whose phase, a
    shift along the horizon, it sets too; convolutions over time should find this easy."""
    time = jnp.arange(HORIZON) / HORIZON
    frequency = jnp.arange(1, ACTION_SIZE + 1)
    phase = math.pi * cond[:, 0, None, None]
    amplitude = 0.5 + 0.4 * jnp.tanh(cond[:, 1, None, None])
    return amplitude * jnp.sin(2 * math.pi * frequency * time[:, None] + phase)


def test_unet_learns_to_predict_the_noise(small_unet):
    params, _ = small_unet
    schedule = ns.make_schedule(100)
    optimizer = optax.adam(3e-3)

    def noisy_batch(key):
        cond_key, noise_key, t_key = jax.random.split(key, 3)
        cond = jax.random.normal(cond_key, (BATCH, COND_SIZE))
        noise = jax.random.normal(noise_key, (BATCH, HORIZON, ACTION_SIZE))
        t = jax.random.randint(t_key, (BATCH,), 0, schedule.num_train_steps)
        return ns.add_noise(schedule, toy_trajectories(cond), noise, t), t, cond, noise

    def loss(params, batch):
        x_t, t, cond, noise = batch
        return jnp.mean((SMALL_UNET.apply(params, x_t, t, cond) - noise) ** 2)

    def train(params, key):
        """200 Adam steps on fresh batches, in one compiled scan; the held-out loss before and after."""
        def step(carry, step_key):
            params, opt_state = carry
            grads = jax.grad(loss)(params, noisy_batch(step_key))
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        train_key, eval_key = jax.random.split(key)
        held_out = noisy_batch(eval_key)
        step_keys = jax.random.split(train_key, 200)
        (trained, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), step_keys)
        return loss(params, held_out), loss(trained, held_out)

    key = jax.random.key(3)
    initial_loss, final_loss = compile_quickly(train, params, key, optimization_level=1)(params, key)
    assert final_loss < 0.3 * initial_loss, (initial_loss, final_loss)
