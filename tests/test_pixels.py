"""Depth images from mjx.ray (envs_mjx.pixels): what the cartpole's side camera sees, against geometry
worked out by hand, and a batch rendered under vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_mjx
from envs_mjx.pixels import camera_rays, depth_image

SIZE = 64  # the pole (9 cm) is wider than a pixel (6.5 cm at the rail): every row above the cart sees it


@pytest.fixture(scope="module")
def cartpole():
    env = envs_mjx.make("cartpole-balance")
    render = jax.jit(lambda data: depth_image(env.mjx_model, data, 0, SIZE, SIZE))
    return env, jax.jit(env.init_data), render


def test_the_side_camera_sees_the_upright_pole_the_cart_and_the_floor(cartpole):
    env, init_data, render = cartpole
    upright = init_data(jnp.zeros(2), jnp.zeros(2))
    depth = np.asarray(render(upright))
    assert depth.shape == (SIZE, SIZE) and depth.dtype == np.float32 and np.all(depth <= 10.0)
    # The camera stands 5 m in front of the rail at 1.2 m, looking at it: the middle column meets the pole
    # (radius 0.045) just above the camera's height, the cart's face (0.15 m off the rail) just below.
    middle = depth[:, SIZE // 2]
    assert middle[SIZE // 2 - 1] == pytest.approx(5.0 - 0.045, abs=0.02)  # a ray 3 cm off its axis
    assert middle[SIZE // 2 + 3] == pytest.approx(5.0 - 0.15, abs=0.02)  # the cart's face
    origin, directions = (np.asarray(x) for x in camera_rays(env.mjx_model, upright, 0, SIZE, SIZE))
    corner = directions[-1, 0]  # the bottom left pixel looks down at the floor (z = -0.05)
    assert corner[2] < 0 and depth[-1, 0] == pytest.approx((origin[2] + 0.05) / -corner[2], rel=1e-4)


def test_the_pole_moves_in_the_image_with_the_cart(cartpole):
    _, init_data, render = cartpole
    row = SIZE // 2 - 6  # 1.6 m up at the rail: the pole alone, against nothing
    centred = np.asarray(render(init_data(jnp.zeros(2), jnp.zeros(2))))[row]
    moved = np.asarray(render(init_data(jnp.array([1.0, 0.0]), jnp.zeros(2))))[row]
    assert np.argmin(moved) > np.argmin(centred) + 2  # +x is to the camera's right


def test_a_batch_of_envs_renders_a_batch_of_images(cartpole):
    env, init_data, _ = cartpole
    positions = jnp.stack([jnp.linspace(-1, 1, 4), jnp.zeros(4)], -1)
    data = jax.vmap(init_data)(positions, jnp.zeros((4, 2)))
    images = jax.jit(jax.vmap(lambda d: depth_image(env.mjx_model, d, 0, SIZE, SIZE)))(data)
    assert images.shape == (4, SIZE, SIZE) and np.all(np.isfinite(images))
    assert len({np.asarray(image).tobytes() for image in images}) == 4
