"""Scripted expert for the cube tasks: approach above, descend, close, lift (or carry).

A state machine whose state is read off the observation each step rather than
remembered, so it is a plain policy `obs -> action` (jit- and vmap-able, no
carry) and recovers by itself: a cube that slips out of the pads sends it back
to approaching. Phases, first match wins:

  carry     both pads press the cube: keep closed, raise it (lift), or raise
            it off the table and then move it to the target (place)
  close     the cube sits between the pads at grasp height, or the fingers are
            already closing around it: close, hold still
  descend   the grip centre is over the cube: open, lower to the cube's centre
  approach  otherwise: open, rise to a safe height over the cube, then move
            over it

Movements are proportional: the action asks for the remaining distance, capped
at the env's per-step limit, which makes the gripper settle on its goal.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from envs_mjx.grasp.lift_cube import LiftCube

PHASES = ("approach", "descend", "close", "carry")


@dataclasses.dataclass(frozen=True)
class ExpertConfig:
    align_tolerance: float = 0.004  # xy distance (m) from over the cube at which descending starts
    grasp_tolerance: float = 0.004  # height (m) from the cube's centre at which the fingers close
    between_tolerance: float = 0.015  # the cube counts as between the pads within this, per axis
    closing_opening: float = 0.038  # fingers opened less than this (m) are closing
    clearance: float = 0.07  # grip centre this high above the cube's centre to travel sideways
    lift_to: float = 0.2  # lift: raise the cube's centre to this height (underside >= 0.17 m)
    carry_height: float = 0.07  # place: carry the cube sideways with its centre at least this high
    over_target: float = 0.01  # place: within this xy distance of the target, head straight for it


def make_expert(env: LiftCube, cfg: ExpertConfig = ExpertConfig()):
    """policy(obs, key=None) -> action in [-1, 1]^4 for one unbatched observation of `env`.

    The key is unused (the expert is deterministic); it is accepted so that the
    expert has the same signature as a learner's policy.
    """
    env = env.unwrapped
    if not isinstance(env, LiftCube):
        raise TypeError(f"the grasp expert drives LiftCube envs, not {type(env).__name__}")
    max_step, place = env.config.max_step, env.config.task == "place"

    def towards(offset):
        return jnp.clip(offset / max_step, -1.0, 1.0)

    def policy(obs: dict, key: jax.Array | None = None) -> jax.Array:
        del key
        rel, cube = obs["cube_rel_pos"], obs["cube_pos"]  # rel: cube centre minus grip centre
        phase = phase_of(obs, env, cfg)
        over_cube = jnp.concatenate([towards(rel[:2]), jnp.zeros(1)])
        high_enough = -rel[2] >= cfg.clearance - cfg.align_tolerance
        approach = jnp.where(high_enough, over_cube, 0.0).at[2].set(towards(rel[2] + cfg.clearance))
        descend = over_cube.at[2].set(towards(rel[2]))
        raise_cube = jnp.array([0.0, 0.0, 1.0]) * towards(cfg.lift_to - cube[2])
        if place:
            # Off the table first (dragging a cube sideways can twist it out of the pads), then
            # travel at carry height or above, and go straight to the target once over it.
            to_target = obs["cube_to_target"]
            far = jnp.linalg.norm(to_target[:2]) > cfg.over_target
            cruise = to_target.at[2].set(jnp.maximum(to_target[2], cfg.carry_height - cube[2]))
            low = cube[2] < cfg.carry_height - cfg.over_target
            carry = jnp.where(far & low, raise_cube, towards(jnp.where(far, cruise, to_target)))
        else:
            carry = raise_cube
        moves = jnp.stack([approach, descend, jnp.zeros(3), carry])
        gripper = jnp.array([1.0, 1.0, -1.0, -1.0])  # open, open, close, close
        return jnp.concatenate([moves[phase], gripper[phase][None]])

    return policy


def phase_of(obs: dict, env: LiftCube, cfg: ExpertConfig = ExpertConfig()) -> jax.Array:
    """Index into PHASES of what the expert does for `obs` (int32 scalar)."""
    rel = obs["cube_rel_pos"]
    held = env.is_held(obs)
    between = jnp.all(jnp.abs(rel) < cfg.between_tolerance)
    closing = jnp.mean(obs["finger_opening"]) < cfg.closing_opening
    at_grasp_height = jnp.abs(rel[2]) < cfg.grasp_tolerance
    over_cube = jnp.linalg.norm(rel[:2]) < cfg.align_tolerance
    conditions = [held, between & (closing | at_grasp_height), over_cube]
    return jnp.select(conditions, [3, 2, 1], 0).astype(jnp.int32)
