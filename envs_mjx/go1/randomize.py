"""Per-episode domain randomization of the Go1's physics.

Each episode draws its own `ModelParams` in `reset`; they ride in the env state
and are written over the nominal MJX model on every step (`apply`), so under
vmap every env of a batch has its own friction, masses, gains... and a reset
env gets fresh ones. Nothing is fixed when the env is built.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct


@dataclasses.dataclass(frozen=True)
class RandomizationConfig:
    model: bool = True  # draw the physical parameters below per episode (False: the nominal model)
    friction: tuple[float, float] = (0.4, 1.0)  # foot-ground sliding friction
    trunk_mass_delta: tuple[float, float] = (-1.0, 1.0)  # kg added to the trunk (payload)
    trunk_com_offset: float = 0.03  # trunk centre of mass moved by U(-r, r) per axis, metres
    link_mass_scale: tuple[float, float] = (0.9, 1.1)  # factor on each leg link's mass
    joint_friction_scale: tuple[float, float] = (0.5, 1.5)  # factor on each joint's frictionloss
    armature_scale: tuple[float, float] = (1.0, 1.05)  # factor on each joint's armature
    actuator_gain_scale: tuple[float, float] = (0.9, 1.1)  # factor on each servo's kp
    init_joint_noise: float = 0.1  # initial joint angles: home + U(-r, r), radians
    init_base_velocity: float = 0.5  # initial trunk linear and angular velocity ~ U(-r, r)
    pushes: bool = True  # shove the trunk now and then during an episode
    push_interval: tuple[float, float] = (5.0, 10.0)  # seconds between pushes
    push_force: tuple[float, float] = (10.0, 60.0)  # horizontal force, newtons
    push_duration: float = 0.2  # seconds each push lasts


@struct.dataclass
class ModelParams:
    """The MJX model fields one episode randomizes (full arrays, nominal where untouched)."""

    geom_friction: jax.Array  # [ngeom, 3]
    body_mass: jax.Array  # [nbody]
    body_ipos: jax.Array  # [nbody, 3]
    dof_frictionloss: jax.Array  # [nv]
    dof_armature: jax.Array  # [nv]
    actuator_gainprm: jax.Array  # [nu, 10]
    actuator_biasprm: jax.Array  # [nu, 10]

    @classmethod
    def nominal(cls, model) -> ModelParams:
        return cls(**{f.name: getattr(model, f.name) for f in dataclasses.fields(cls)})

    def apply(self, model):
        """`model` with this episode's parameters written in."""
        return model.replace(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


def _uniform(key, bounds, shape=()):
    return jax.random.uniform(key, shape, minval=bounds[0], maxval=bounds[1])


def sample(key: jax.Array, model, cfg: RandomizationConfig, trunk_id: int) -> ModelParams:
    """One episode's parameters around the nominal `model` (an mjx.Model).

    Leg links are the bodies after the trunk; joints are the dofs after the
    trunk's free joint (6 dofs); every actuator is a position servo, whose
    stiffness kp sits in gainprm[0] and, negated, in biasprm[1].
    """
    params = ModelParams.nominal(model)
    if not cfg.model:
        return params
    keys = jax.random.split(key, 7)
    nbody, nv, nu = model.body_mass.shape[0], model.dof_armature.shape[0], model.actuator_gainprm.shape[0]
    friction = params.geom_friction.at[:, 0].set(_uniform(keys[0], cfg.friction))
    is_link = jnp.arange(nbody) > trunk_id
    link_scale = jnp.where(is_link, _uniform(keys[1], cfg.link_mass_scale, (nbody,)), 1.0)
    body_mass = (params.body_mass * link_scale).at[trunk_id].add(_uniform(keys[2], cfg.trunk_mass_delta))
    com_offset = _uniform(keys[3], (-cfg.trunk_com_offset, cfg.trunk_com_offset), (3,))
    body_ipos = params.body_ipos.at[trunk_id].add(com_offset)
    is_joint = jnp.arange(nv) >= 6
    frictionloss = params.dof_frictionloss * jnp.where(
        is_joint, _uniform(keys[4], cfg.joint_friction_scale, (nv,)), 1.0)
    armature = params.dof_armature * jnp.where(is_joint, _uniform(keys[5], cfg.armature_scale, (nv,)), 1.0)
    kp = params.actuator_gainprm[:, 0] * _uniform(keys[6], cfg.actuator_gain_scale, (nu,))
    return params.replace(
        geom_friction=friction, body_mass=body_mass, body_ipos=body_ipos, dof_frictionloss=frictionloss,
        dof_armature=armature, actuator_gainprm=params.actuator_gainprm.at[:, 0].set(kp),
        actuator_biasprm=params.actuator_biasprm.at[:, 1].set(-kp))
