"""Depth images rendered in JAX: one mjx.ray per pixel from one of the model's cameras, no OpenGL.

A pure function of the MJX model and data, so it runs under jit and vmap with
the physics: a batch of envs renders a batch of images on whatever device
steps them. Each pixel is the distance along its ray to the nearest geom, or
`far` where the ray meets nothing (or only farther). The camera is MuJoCo's:
it looks along the -z axis of its frame (data.cam_xmat) with y up, and its
vertical field of view is the model's cam_fovy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs_mjx._mjx import mjx


def camera_rays(mjx_model, data, camera_id: int, width: int, height: int) -> tuple[jax.Array, jax.Array]:
    """(origin [3], unit directions [height, width, 3]) of the camera's pixel centres, row 0 at the top."""
    half_height = jnp.tan(jnp.deg2rad(mjx_model.cam_fovy[camera_id]) / 2)
    half_width = half_height * width / height
    x = (2 * (jnp.arange(width) + 0.5) / width - 1) * half_width
    y = (1 - 2 * (jnp.arange(height) + 0.5) / height) * half_height
    in_camera = jnp.stack(jnp.broadcast_arrays(x[None, :], y[:, None], -jnp.ones((height, width))), -1)
    rotation = data.cam_xmat[camera_id].reshape(3, 3)  # its columns: the camera's axes in the world
    directions = in_camera @ rotation.T
    return data.cam_xpos[camera_id], directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)


def depth_image(mjx_model, data, camera_id: int = 0, width: int = 64, height: int = 64,
                far: float = 10.0) -> jax.Array:
    """[height, width] float32 distances from the camera to the geoms its pixels see, at most `far`."""
    if mjx_model.mat_rgba.shape[0] == 0:
        # mjx.ray reads mat_rgba[geom_matid] even where geom_matid is -1 (no material), which fails on a
        # model without materials; one unused material row lets it through.
        mjx_model = mjx_model.replace(mat_rgba=jnp.ones((1, 4), jnp.float32))
    origin, directions = camera_rays(mjx_model, data, camera_id, width, height)
    hit = jax.vmap(lambda direction: mjx.ray(mjx_model, data, origin, direction)[0])
    distance = hit(directions.reshape(-1, 3)).reshape(height, width)
    return jnp.where((distance < 0) | (distance > far), far, distance).astype(jnp.float32)
