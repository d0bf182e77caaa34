"""Lift (or place) a cube with a parallel-jaw gripper on a Cartesian gantry.

Action (4, each in [-1, 1]): dx, dy, dz move the gripper's position target by
up to `max_step` metres from where the gripper is; the fourth sets both
fingers' opening (-1 closed, +1 fully open). Five 4 ms physics steps make one
20 ms control step.

Observation: a dict of named parts (`obs_parts`, in order) plus "state", their
concatenation, which learners use:
  gripper_pos     [3]    the grip centre between the finger pads (world)
  gripper_vel     [3]    gantry velocity
  finger_opening  [2]    each finger's travel from closed, 0-0.04 m
  cube_pos        [3]    cube centre
  cube_quat       [4]    cube orientation (w, x, y, z)
  cube_rel_pos    [3]    cube centre minus grip centre
  tactile_left    [3, 4] normal force on each taxel of the left pad, newtons
  tactile_right   [3, 4]
  target_pos      [3]    place only: where the cube must go
  cube_to_target  [3]    place only: target minus cube centre

Reward: dense shaping for RL, a sum of named terms in [0, 1] times their
scales (reach the cube, hold it with both pads, raise it, and for placing,
bring it to the target), each logged as "reward/<name>". Metric "success" is 1
on the single step where the task is first achieved and held for `hold_steps`
control steps, so its episode sum is 0 or 1: lift, the cube's underside at
least `lift_height` above the table; place, its centre within
`place_tolerance` of the target. The episode ends early only if the cube
leaves the table.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs_mjx.core import ASSETS, MjxEnv, MjxEnvConfig, State, array_module
from envs_mjx.grasp import randomize
from envs_mjx.grasp.randomize import RandomizationConfig
from envs_mjx.grasp.tactile import PAD_COLS, PAD_ROWS, TactilePads

OBS_PARTS = (("gripper_pos", (3,)), ("gripper_vel", (3,)), ("finger_opening", (2,)), ("cube_pos", (3,)),
             ("cube_quat", (4,)), ("cube_rel_pos", (3,)), ("tactile_left", (PAD_ROWS, PAD_COLS)),
             ("tactile_right", (PAD_ROWS, PAD_COLS)))
PLACE_OBS_PARTS = OBS_PARTS + (("target_pos", (3,)), ("cube_to_target", (3,)))
TASKS = ("lift", "place")


@dataclasses.dataclass(frozen=True)
class RewardScales:
    reach: float = 1.0  # 1 - tanh(10 d), d = grip centre to cube centre
    grasp: float = 1.0  # both pads press the cube
    lift: float = 4.0  # held, and raised towards lift_height (fraction of it)
    place: float = 4.0  # place only: held, 1 - tanh(10 d), d = cube to target


@dataclasses.dataclass(frozen=True)
class LiftCubeConfig(MjxEnvConfig):
    episode_length: int = 200  # control steps of 0.02 s: 4 s episodes
    task: str = "lift"  # "lift" or "place" (carry the cube to target_pos)
    max_step: float = 0.01  # gripper target displacement per control step at |action| = 1, metres
    grasp_force: float = 0.5  # newtons on each pad for the cube to count as held
    lift_height: float = 0.1  # lift success: the cube's underside this high above the table, metres
    place_tolerance: float = 0.02  # place success: cube centre this close to the target, metres
    hold_steps: int = 10  # success needs the goal kept for this many control steps
    target_xy: float = 0.12  # place target at U(-r, r) per axis
    target_height: tuple[float, float] = (0.05, 0.2)  # place target's centre height range, metres
    randomization: RandomizationConfig = RandomizationConfig()
    rewards: RewardScales = RewardScales()


@dataclasses.dataclass(frozen=True)
class PlaceCubeConfig(LiftCubeConfig):
    task: str = "place"


class LiftCube(MjxEnv):
    render_camera = "table"  # fixed, on the whole table top (lift_cube.xml)

    def __init__(self, config: LiftCubeConfig = LiftCubeConfig()):
        if config.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {config.task!r}")
        if config.hold_steps < 1:
            raise ValueError(f"hold_steps must be >= 1, got {config.hold_steps}")
        super().__init__(ASSETS / "grasp" / "lift_cube.xml", config, n_substeps=5)
        model = self.mj_model
        self.obs_parts = tuple(name for name, _ in self.obs_layout)
        self.reward_terms = ("reach", "grasp", "lift") + (("place",) if config.task == "place" else ())
        self._cube_body, self._cube_geom = model.body("cube").id, model.geom("cube").id
        # Constants are NumPy arrays: they serve both MJX (under jit) and plain MuJoCo (see `outcome`).
        self._gantry_low, self._gantry_high = (a.astype(np.float32) for a in model.jnt_range[1:4].T)
        self._finger_open = float(model.jnt_range[model.joint("finger_left").id, 1])
        # The gripper body sits at the gantry joints' position; the grip centre is a site on it.
        self._grip_offset = model.site("grip_center").pos.astype(np.float32)
        # The cube leaving the table top (or falling below it) ends the episode.
        self._table_half_size = float(model.geom("table").size[0])
        self.tactile = TactilePads(model)

    @property
    def obs_layout(self) -> tuple:
        """(name, shape) of each observation part, in the order "state" concatenates them."""
        return PLACE_OBS_PARTS if self.config.task == "place" else OBS_PARTS

    @property
    def state_layout(self) -> tuple[tuple[str, int], ...]:
        return tuple((name, math.prod(shape)) for name, shape in self.obs_layout)

    @property
    def action_size(self) -> int:
        return 4

    @property
    def action_names(self) -> tuple[str, ...]:
        return ("move_x", "move_y", "move_z", "fingers")

    @property
    def control_affine(self) -> None:
        """None: the gantry targets move relative to where the gripper is."""
        return None

    # ----------------------------------------------------------------- episode

    def reset(self, key: jax.Array) -> State:
        dr = self.config.randomization
        key, key_cube, key_xy, key_yaw, key_gripper_xy, key_height, key_target = jax.random.split(key, 7)
        cube = randomize.sample(key_cube, dr)
        cube_xy = jax.random.uniform(key_xy, (2,), minval=-dr.cube_xy, maxval=dr.cube_xy)
        yaw = jax.random.uniform(key_yaw, minval=-dr.cube_yaw, maxval=dr.cube_yaw)
        gripper = jnp.concatenate([
            jax.random.uniform(key_gripper_xy, (2,), minval=-dr.gripper_xy, maxval=dr.gripper_xy),
            jax.random.uniform(key_height, (1,), minval=dr.gripper_height[0], maxval=dr.gripper_height[1])])
        fingers = jnp.full(2, self._finger_open)
        qpos = jnp.concatenate([cube_xy, cube.half_size[None], jnp.array([jnp.cos(yaw / 2), 0.0, 0.0]),
                                jnp.sin(yaw / 2)[None], gripper, fingers])
        model = self._episode_model(cube)
        data = self.init_data(qpos, jnp.zeros(self.mj_model.nv), model)
        data = data.replace(ctrl=jnp.concatenate([gripper, fingers]))

        info = {"rng": key, "cube": cube, "target": self._sample_target(key_target),
                "hold": jnp.int32(0), "succeeded": jnp.bool_(False)}
        obs = self.observe(data, info)
        metrics = {f"reward/{name}": jnp.zeros(()) for name in self.reward_terms}
        metrics.update(success=jnp.zeros(()), cube_height=jnp.zeros(()))
        return State(data=data, obs=obs, reward=jnp.zeros(()), done=jnp.zeros(()), metrics=metrics, info=info)

    def step(self, state: State, action: jax.Array) -> State:
        info = state.info
        action = jnp.clip(action, -1.0, 1.0)
        data = self.physics_step(state.data, self.control(state.data.qpos, action),
                                 self._episode_model(info["cube"]))
        out = self.outcome(data, info)
        info = {**info, "hold": out["hold"], "succeeded": out["succeeded"]}
        metrics = {f"reward/{name}": value for name, value in out["reward_terms"].items()}
        metrics.update(success=out["success"].astype(jnp.float32), cube_height=out["cube_height"])
        return state.replace(data=data, obs=out["obs"], reward=out["reward"],
                             done=out["terminated"].astype(jnp.float32), metrics=metrics, info=info)

    # Control, observation and reward take MJX data or plain MuJoCo's MjData (see `array_module`).

    def control(self, qpos, action):
        """Actuator targets: the gantry moved by up to `max_step` from where it is, the finger opening."""
        xp = array_module(qpos)
        target = xp.clip(qpos[7:10] + self.config.max_step * action[:3], self._gantry_low, self._gantry_high)
        fingers = xp.full(2, (action[3] + 1.0) / 2.0 * self._finger_open)
        return xp.concatenate([target, fingers])

    def outcome(self, data, info: dict) -> dict:
        """What a control step that ended in `data` gave: "obs", the scaled "reward_terms" and their sum
        "reward", "terminated", "success" (on the step it is reached), the cube's height and the new
        "hold" count and "succeeded" flag; `info` holds the episode's "cube", "target", "hold" and
        "succeeded"."""
        cfg = self.config
        xp = array_module(data.qpos)
        obs = self.observe(data, info)
        cube_pos = data.qpos[:3]
        height = cube_pos[2] - info["cube"].half_size
        held = self.is_held(obs)
        if cfg.task == "place":
            achieved = xp.linalg.norm(obs["cube_to_target"]) < cfg.place_tolerance
        else:
            achieved = held & (height >= cfg.lift_height)
        hold = xp.where(achieved, info["hold"] + 1, 0)
        newly_succeeded = (hold >= cfg.hold_steps) & ~info["succeeded"]

        terms = self._reward_terms(obs, held, height)
        scaled = {name: getattr(cfg.rewards, name) * value for name, value in terms.items()}
        off_table = (xp.max(xp.abs(cube_pos[:2])) > self._table_half_size) | (cube_pos[2] < -0.05)
        return {
            "obs": obs,
            "reward_terms": scaled,
            "reward": xp.nan_to_num(sum(scaled.values())),
            "terminated": off_table | ~xp.all(xp.isfinite(data.qpos)),
            "success": newly_succeeded,
            "cube_height": height,
            "hold": hold,
            "succeeded": info["succeeded"] | newly_succeeded,
        }

    def _episode_model(self, cube: randomize.CubeParams):
        return cube.apply(self.mjx_model, self._cube_body, self._cube_geom)

    def episode_mj_model(self, state: State) -> mujoco.MjModel:
        """The nominal model with the episode's cube (its size is what shows)."""
        model = copy.copy(self.mj_model)
        self.write_cube(model, state)
        return model

    def write_cube(self, mj_model: mujoco.MjModel, state: State) -> None:
        """Put the cube of the episode `state` is in into a plain MuJoCo model, in place."""
        jax.device_get(state.info["cube"]).write_into(mj_model, self._cube_body, self._cube_geom)

    def _sample_target(self, key: jax.Array) -> jax.Array:
        cfg = self.config
        key_xy, key_z = jax.random.split(key)
        xy = jax.random.uniform(key_xy, (2,), minval=-cfg.target_xy, maxval=cfg.target_xy)
        z = jax.random.uniform(key_z, (1,), minval=cfg.target_height[0], maxval=cfg.target_height[1])
        return jnp.concatenate([xy, z])

    # ------------------------------------------------------------ observation, reward

    def observe(self, data, info: dict) -> dict:
        xp = array_module(data.qpos)
        pads = self.tactile.read(data)
        gripper_pos = data.qpos[7:10] + self._grip_offset
        cube_pos = data.qpos[:3]
        obs = {
            "gripper_pos": gripper_pos,
            "gripper_vel": data.qvel[6:9],
            "finger_opening": data.qpos[10:12],
            "cube_pos": cube_pos,
            "cube_quat": data.qpos[3:7],
            "cube_rel_pos": cube_pos - gripper_pos,
            "tactile_left": pads["left"],
            "tactile_right": pads["right"],
        }
        if self.config.task == "place":
            obs.update(target_pos=info["target"], cube_to_target=info["target"] - cube_pos)
        obs = {name: xp.nan_to_num(value) for name, value in obs.items()}
        obs["state"] = xp.concatenate([obs[name].ravel() for name in self.obs_parts])
        return obs

    def is_held(self, obs: dict) -> jax.Array:
        """Both pads press the cube with at least `grasp_force`."""
        force, xp = self.config.grasp_force, array_module(obs["tactile_left"])
        return (xp.sum(obs["tactile_left"]) >= force) & (xp.sum(obs["tactile_right"]) >= force)

    def _reward_terms(self, obs: dict, held: jax.Array, height: jax.Array) -> dict:
        """Unscaled terms in [0, 1], one per entry of `RewardScales` the task uses."""
        cfg, xp = self.config, array_module(obs["cube_rel_pos"])
        terms = {
            "reach": 1.0 - xp.tanh(10.0 * xp.linalg.norm(obs["cube_rel_pos"])),
            "grasp": held.astype(xp.float32),
            "lift": held * xp.clip(height / cfg.lift_height, 0.0, 1.0),
        }
        if cfg.task == "place":
            terms["place"] = held * (1.0 - xp.tanh(10.0 * xp.linalg.norm(obs["cube_to_target"])))
        return terms

