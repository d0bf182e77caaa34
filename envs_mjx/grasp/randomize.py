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

    def apply(self, model, cube_body: int, cube_geom: int):
        # A solid cube of edge 2h has inertia m (2h)^2 / 6 about every axis through its centre.
        inertia = jnp.full(3, self.mass * (2 * self.half_size) ** 2 / 6)
        return model.replace(
            geom_size=model.geom_size.at[cube_geom].set(jnp.full(3, self.half_size)),
            geom_rbound=model.geom_rbound.at[cube_geom].set(jnp.sqrt(3.0) * self.half_size),
            geom_friction=model.geom_friction.at[cube_geom, 0].set(self.friction),
            body_mass=model.body_mass.at[cube_body].set(self.mass),
            body_inertia=model.body_inertia.at[cube_body].set(inertia),
        )


def sample(key: jax.Array, cfg: RandomizationConfig) -> CubeParams:
    keys = jax.random.split(key, 3)
    bounds = (cfg.cube_half_size, cfg.cube_mass, cfg.cube_friction)
    half_size, mass, friction = (jax.random.uniform(k, (), jnp.float32, *b)
                                 for k, b in zip(keys, bounds, strict=True))
    return CubeParams(half_size=half_size, mass=mass, friction=friction)
