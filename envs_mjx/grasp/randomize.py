"""Per-episode randomization of the cube: where it starts, its size, mass and friction.

Like the Go1's, the drawn `CubeParams` ride in the env state and are written
over the MJX model on every step, so each env of a batch holds its own cube.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

from envs_mjx.core import array_module


@dataclasses.dataclass(frozen=True)
class RandomizationConfig:
    cube_xy: float = 0.1  # cube starts at U(-r, r) per axis from the table centre, metres
    cube_yaw: float = math.pi  # start yaw U(-r, r), radians
    cube_half_size: tuple[float, float] = (0.02, 0.03)  # half an edge: 4-6 cm cubes
    cube_mass: tuple[float, float] = (0.05, 0.2)  # kg
    cube_friction: tuple[float, float] = (0.6, 1.2)  # sliding friction against table and pads
    gripper_xy: float = 0.05  # gripper starts at U(-r, r) per axis over the table centre
    gripper_height: tuple[float, float] = (0.2, 0.25)  # gantry z at the start, metres


@struct.dataclass
class CubeParams:
    """One episode's cube; `apply` writes it into the model's full arrays."""

    half_size: jax.Array  # scalar
    mass: jax.Array  # scalar
    friction: jax.Array  # scalar

    def _entries(self, cube_body: int, cube_geom: int):
        """(model field, index, value) for everything the episode's cube sets (NumPy or JAX values)."""
        xp = array_module(self.half_size)
        # A solid cube of edge 2h has inertia m (2h)^2 / 6 about every axis through its centre.
        inertia = xp.full(3, self.mass * (2 * self.half_size) ** 2 / 6)
        return (("geom_size", cube_geom, xp.full(3, self.half_size)),
                ("geom_rbound", cube_geom, math.sqrt(3.0) * self.half_size),
                ("geom_friction", (cube_geom, 0), self.friction),
                ("body_mass", cube_body, self.mass),
                ("body_inertia", cube_body, inertia))

    def apply(self, model, cube_body: int, cube_geom: int):
        """The MJX model with this cube (a new model: MJX models are immutable)."""
        return model.replace(**{field: getattr(model, field).at[index].set(value)
                                for field, index, value in self._entries(cube_body, cube_geom)})

    def write_into(self, mj_model, cube_body: int, cube_geom: int) -> None:
        """Put this cube (NumPy values) into a plain MuJoCo model, in place."""
        for field, index, value in self._entries(cube_body, cube_geom):
            getattr(mj_model, field)[index] = value
        # MuJoCo's broad phase also reads the geom's bounding box, which MJX does not keep.
        mj_model.geom_aabb[cube_geom, 3:] = self.half_size


def sample(key: jax.Array, cfg: RandomizationConfig) -> CubeParams:
    keys = jax.random.split(key, 3)
    bounds = (cfg.cube_half_size, cfg.cube_mass, cfg.cube_friction)
    half_size, mass, friction = (jax.random.uniform(k, (), jnp.float32, *b)
                                 for k, b in zip(keys, bounds, strict=True))
    return CubeParams(half_size=half_size, mass=mass, friction=friction)
