"""Go1 joystick: walk, turn and strafe at a commanded (vx, vy, yaw rate).

The policy sets joint position targets around the home pose; five 4 ms physics
steps make one 20 ms control step. The reward is a sum of small named terms
(`REWARD_TERMS`), each scaled by its entry in `RewardScales` and multiplied by
the control step, so a return is "reward per second" summed over the episode;
every scaled term is logged in `metrics` under "reward/<name>". A step's reward
is their sum clipped at 0: were a step worth less than nothing, ending the
episode early would pay (the termination penalty is one step's worth), so
falling would be learned; clipped, a fall only forfeits the steps it cuts off.

Observations (`{"state", "privileged_state"}`, layouts in `STATE_LAYOUT` and
`PRIVILEGED_LAYOUT`): the policy sees what the robot's own sensors give, with
noise; the critic also sees the true body velocity, foot contacts and heights
and the push being applied. MJX skips the MJCF's sensors: the env computes the
same readings from the physics state (tests check them against MuJoCo's).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs_mjx.core import ASSETS, MjxEnv, MjxEnvConfig, State, array_module
from envs_mjx.go1 import randomize, terrain
from envs_mjx.go1.randomize import RandomizationConfig
from envs_mjx.go1.terrain import HeightMap, TerrainConfig

LEGS = ("FR", "FL", "RR", "RL")
STATE_LAYOUT = (("gyro", 3), ("gravity", 3), ("joint_pos", 12), ("joint_vel", 12), ("last_action", 12),
                ("command", 3))
PRIVILEGED_LAYOUT = STATE_LAYOUT + (("local_linvel", 3), ("feet_contact", 4), ("feet_height", 4),
                                    ("push_force", 3))
REWARD_TERMS = ("tracking_lin_vel", "tracking_ang_vel", "lin_vel_z", "ang_vel_xy", "orientation", "torques",
                "action_rate", "joint_limits", "feet_air_time", "foot_slip", "stand_still", "termination")
FOOT_RADIUS = 0.023


@dataclasses.dataclass(frozen=True)
class CommandConfig:
    vx: tuple[float, float] = (-1.0, 1.5)  # forward speed range, m/s
    vy: tuple[float, float] = (-0.8, 0.8)  # sideways speed range, m/s
    yaw_rate: tuple[float, float] = (-1.2, 1.2)  # turning rate range, rad/s
    zero_probability: float = 0.1  # share of commands that are "stand still"
    resample_interval: float = 5.0  # seconds between new commands


@dataclasses.dataclass(frozen=True)
class ObservationNoise:
    level: float = 1.0  # multiplies every amplitude below; 0 turns noise off
    gyro: float = 0.2  # rad/s, uniform in [-a, a]
    gravity: float = 0.05
    joint_pos: float = 0.03  # rad
    joint_vel: float = 1.5  # rad/s


@dataclasses.dataclass(frozen=True)
class RewardScales:
    """Scale per reward term (0 switches a term off); the terms are in `Go1Joystick._reward_terms`."""

    tracking_lin_vel: float = 1.0
    tracking_ang_vel: float = 0.5
    lin_vel_z: float = -0.5
    ang_vel_xy: float = -0.05
    orientation: float = -5.0
    torques: float = -2e-4
    action_rate: float = -0.01
    joint_limits: float = -1.0
    feet_air_time: float = 0.1
    foot_slip: float = -0.1
    stand_still: float = -0.5
    termination: float = -1.0


@dataclasses.dataclass(frozen=True)
class Go1JoystickConfig(MjxEnvConfig):
    episode_length: int = 1000  # control steps of 0.02 s: 20 s episodes
    terrain: str = "flat"  # "flat" or "rough" (procedural heightfield, see `rough`)
    action_scale: float = 0.5  # joint target = home + action_scale * action, radians
    tracking_sigma: float = 0.25  # width of the exponential tracking kernels
    air_time_target: float = 0.1  # swings longer than this (s) earn the air-time reward
    soft_joint_limit: float = 0.95  # share of each joint's range inside which no limit penalty applies
    contact_height: float = 0.005  # a foot lower than this over the ground (m) counts as in contact
    termination_height: float = 0.1  # the episode ends when the trunk is this low over the ground (m)
    spawn_radius: float = 5.0  # rough terrain: start anywhere within this distance of the centre (m)
    impl: str = "jax"  # MJX backend: "jax" (XLA, any device) or "warp" (MuJoCo Warp: the warp extra)
    warp_contact_slots: int = 65536  # warp: contacts pooled over a batch, >= envs x 5 (4 feet, rough: 5)
    commands: CommandConfig = CommandConfig()
    noise: ObservationNoise = ObservationNoise()
    rewards: RewardScales = RewardScales()
    randomization: RandomizationConfig = RandomizationConfig()
    rough: TerrainConfig = TerrainConfig()


@dataclasses.dataclass(frozen=True)
class Go1JoystickRoughConfig(Go1JoystickConfig):
    terrain: str = "rough"


def _steps(seconds: float, dt: float) -> int:
    return max(1, round(seconds / dt))


class Go1Joystick(MjxEnv):
    render_camera = "tracking"  # follows the robot (go1.xml)

    def __init__(self, config: Go1JoystickConfig = Go1JoystickConfig()):
        if config.terrain not in ("flat", "rough"):
            raise ValueError(f"terrain must be 'flat' or 'rough', got {config.terrain!r}")
        model = mujoco.MjModel.from_xml_path(str(ASSETS / "go1" / f"scene_{config.terrain}.xml"))
        if config.terrain == "rough":
            heights = terrain.fill_heightfield(model, config.rough)
            half_x, half_y = model.hfield_size[0, :2]
            self.ground = HeightMap(np.asarray(heights, np.float32), float(half_x), float(half_y))
        else:
            self.ground = HeightMap(None)
        super().__init__(model, config, n_substeps=5, mjx_sensors=False, impl=config.impl,
                         warp_contact_slots=config.warp_contact_slots)

        self._trunk = model.body("trunk").id
        self._imu = model.site("imu").id
        self._feet = np.array([model.site(f"{leg}_foot").id for leg in LEGS])
        self._calves = np.array([model.body(f"{leg}_calf").id for leg in LEGS])
        # Constants are NumPy arrays: they serve both MJX (under jit) and plain MuJoCo (see `outcome`).
        self._home_qpos = model.key("home").qpos.astype(np.float32)
        self._home_joints = self._home_qpos[7:]
        home = mujoco.MjData(model)
        mujoco.mj_resetDataKeyframe(model, home, model.key("home").id)
        mujoco.mj_kinematics(model, home)
        self._home_feet_xy = jnp.asarray(home.site_xpos[self._feet, :2] - home.qpos[:2], jnp.float32)
        low, high = model.jnt_range[1:].T  # joint 0 is the trunk's free joint
        self._joint_low, self._joint_high = low.astype(np.float32), high.astype(np.float32)
        mid, half = (high + low) / 2, (high - low) / 2 * config.soft_joint_limit
        self._soft_low, self._soft_high = (mid - half).astype(np.float32), (mid + half).astype(np.float32)
        noise = config.noise
        amplitudes = {"gyro": noise.gyro, "gravity": noise.gravity, "joint_pos": noise.joint_pos,
                      "joint_vel": noise.joint_vel}
        self._noise_amplitude = noise.level * jnp.concatenate(
            [jnp.full(size, amplitudes.get(name, 0.0)) for name, size in STATE_LAYOUT])
        commands = config.commands
        self._command_low = jnp.array([commands.vx[0], commands.vy[0], commands.yaw_rate[0]])
        self._command_high = jnp.array([commands.vx[1], commands.vy[1], commands.yaw_rate[1]])
        self._command_steps = _steps(commands.resample_interval, self.dt)
        dr = config.randomization
        self._push_steps = _steps(dr.push_duration, self.dt)
        self._push_interval_steps = tuple(_steps(seconds, self.dt) for seconds in dr.push_interval)

    @property
    def state_layout(self) -> tuple[tuple[str, int], ...]:
        return STATE_LAYOUT

    @property
    def control_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint position targets: home pose + action_scale * action."""
        return np.asarray(self._home_joints), np.full(12, self.config.action_scale, np.float32)

    # ----------------------------------------------------------------- episode

    def reset(self, key: jax.Array) -> State:
        cfg, dr = self.config, self.config.randomization
        key, key_params, key_xy, key_yaw, key_joints, key_vel, key_command, key_push, key_noise = (
            jax.random.split(key, 9))
        params = randomize.sample(key_params, self.mjx_model, dr, self._trunk)

        xy = jnp.zeros(2)
        if cfg.terrain == "rough":
            xy = jax.random.uniform(key_xy, (2,), minval=-cfg.spawn_radius, maxval=cfg.spawn_radius)
        yaw = jax.random.uniform(key_yaw, minval=-jnp.pi, maxval=jnp.pi)
        # Stand on the highest ground under the feet, so no foot starts buried deeper than on a floor.
        turn = jnp.array([[jnp.cos(yaw), -jnp.sin(yaw)], [jnp.sin(yaw), jnp.cos(yaw)]])
        feet_xy = xy + self._home_feet_xy @ turn.T
        height = self._home_qpos[2] + jnp.max(self.ground.height_at(feet_xy))
        quat = jnp.array([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])
        joints = self._home_joints + jax.random.uniform(
            key_joints, (12,), minval=-dr.init_joint_noise, maxval=dr.init_joint_noise)
        joints = jnp.clip(joints, self._joint_low, self._joint_high)
        qpos = jnp.concatenate([xy, height[None], quat, joints])
        base_velocity = jax.random.uniform(key_vel, (6,), minval=-dr.init_base_velocity,
                                           maxval=dr.init_base_velocity)
        qvel = jnp.concatenate([base_velocity, jnp.zeros(12)])
        data = self.init_data(qpos, qvel, params.apply(self.mjx_model))

        info = {
            "rng": key,
            "model_params": params,
            "command": self._sample_command(key_command),
            "command_timer": jnp.int32(self._command_steps),
            "last_action": jnp.zeros(12),
            "feet_air_time": jnp.zeros(4),
            "push_force": jnp.zeros(3),
            "push_left": jnp.int32(0),
            "push_timer": self._sample_push_interval(key_push),
        }
        sensed = self.sense(data)
        obs = self._observe(sensed, info, jnp.zeros(4, bool), jnp.zeros(3), key_noise)
        metrics = {f"reward/{name}": jnp.zeros(()) for name in REWARD_TERMS}
        metrics.update(lin_vel_error=jnp.zeros(()), ang_vel_error=jnp.zeros(()))
        return State(data=data, obs=obs, reward=jnp.zeros(()), done=jnp.zeros(()), metrics=metrics, info=info)

    def step(self, state: State, action: jax.Array) -> State:
        cfg, info = self.config, state.info
        key, key_command, key_push, key_push_interval, key_noise = jax.random.split(info["rng"], 5)
        action = jnp.clip(action, -1.0, 1.0)

        push, push_info = self._next_push(info, key_push, key_push_interval)
        data = state.data.replace(xfrc_applied=state.data.xfrc_applied.at[self._trunk, :3].set(push))
        targets = self._home_joints + cfg.action_scale * action
        data = self.physics_step(data, targets, info["model_params"].apply(self.mjx_model))

        out = self.outcome(data, info, action)

        timer = info["command_timer"] - 1
        command = jnp.where(timer <= 0, self._sample_command(key_command), info["command"])
        info = {
            **info, **push_info,
            "rng": key,
            "command": command,
            "command_timer": jnp.where(timer <= 0, self._command_steps, timer),
            "last_action": action,
            "feet_air_time": out["feet_air_time"],
        }
        obs = self._observe(out["sensed"], info, out["contact"], push, key_noise)
        metrics = {f"reward/{name}": value for name, value in out["reward_terms"].items()}
        metrics.update(lin_vel_error=out["lin_vel_error"], ang_vel_error=out["ang_vel_error"])
        return state.replace(data=data, obs=obs, reward=out["reward"],
                             done=out["terminated"].astype(jnp.float32), metrics=metrics, info=info)

    def outcome(self, data, info: dict, action) -> dict:
        """What a control step that ended in `data` earned, on MJX data or plain MuJoCo's MjData.

        `info` holds the step's "command", the "last_action" before `action` and the
        "feet_air_time" so far. Returns the readings ("sensed"), foot "contact", the new
        "feet_air_time", the scaled "reward_terms" and their sum "reward", "terminated",
        and the tracking errors.
        """
        cfg = self.config
        xp = array_module(data.qpos)
        sensed = self.sense(data)
        contact = sensed["feet_height"] < cfg.contact_height
        air_time = info["feet_air_time"] + self.dt
        first_contact = contact & (info["feet_air_time"] > 0)  # airborne last step, down now
        trunk_height = data.qpos[2] - self.ground.height_at(data.qpos[:2])
        terminated = (sensed["up_z"] < 0.0) | (trunk_height < cfg.termination_height)
        terminated = terminated | ~xp.all(xp.isfinite(data.qpos))

        terms = self._reward_terms(data, sensed, info, action, contact, first_contact, air_time, terminated)
        scaled = {name: getattr(cfg.rewards, name) * value * self.dt for name, value in terms.items()}
        return {
            "sensed": sensed,
            "contact": contact,
            "feet_air_time": xp.where(contact, 0.0, air_time),
            "reward_terms": scaled,
            "reward": xp.maximum(xp.nan_to_num(sum(scaled.values())), 0.0),  # see the module docstring
            "terminated": terminated,
            "lin_vel_error": xp.linalg.norm(info["command"][:2] - sensed["local_linvel"][:2]),
            "ang_vel_error": xp.abs(info["command"][2] - sensed["gyro"][2]),
        }

    # ------------------------------------------------------------ commands, pushes

    def _sample_command(self, key: jax.Array) -> jax.Array:
        key_value, key_zero = jax.random.split(key)
        command = jax.random.uniform(key_value, (3,), minval=self._command_low, maxval=self._command_high)
        return jnp.where(jax.random.uniform(key_zero) < self.config.commands.zero_probability, 0.0, command)

    def _sample_push_interval(self, key: jax.Array) -> jax.Array:
        low, high = self._push_interval_steps
        return jax.random.randint(key, (), low, high + 1, dtype=jnp.int32)

    def _next_push(self, info: dict, key: jax.Array, key_interval: jax.Array):
        """(force on the trunk this step [3], the push fields of the next info)."""
        dr = self.config.randomization
        if not dr.pushes:
            return jnp.zeros(3), {}
        start = info["push_timer"] <= 0
        key_angle, key_magnitude = jax.random.split(key)
        angle = jax.random.uniform(key_angle, minval=-jnp.pi, maxval=jnp.pi)
        magnitude = jax.random.uniform(key_magnitude, minval=dr.push_force[0], maxval=dr.push_force[1])
        new_force = magnitude * jnp.array([jnp.cos(angle), jnp.sin(angle), 0.0])
        force = jnp.where(start, new_force, info["push_force"])
        left = jnp.where(start, self._push_steps, info["push_left"])
        applied = jnp.where(left > 0, force, 0.0)
        timer = jnp.where(start, self._sample_push_interval(key_interval), info["push_timer"] - 1)
        return applied, {"push_force": applied, "push_left": jnp.maximum(left - 1, 0), "push_timer": timer}

    # ------------------------------------------------------------ observation

    def sense(self, data) -> dict:
        """What the IMU and foot sensors of the MJCF would read, from the physics state.

        Works on MJX data and on plain MuJoCo's MjData alike (whose xmat rows are flat).
        """
        xp = array_module(data.qpos)
        rotation = data.xmat[self._trunk].reshape(3, 3)  # body-to-world
        gyro = data.qvel[3:6]  # a free joint's angular velocity is in the body frame
        angular_world = rotation @ gyro
        # qvel[:3] is the world velocity of the trunk's origin; move it to the IMU's position.
        lever = data.site_xpos[self._imu] - data.xpos[self._trunk]
        local_linvel = rotation.T @ (data.qvel[:3] + xp.cross(angular_world, lever))
        feet_pos = data.site_xpos[self._feet]
        # Body velocities (cvel: [angular, linear]) are taken at the subtree centre of mass of
        # the trunk's tree; move each calf's to its foot.
        calf_velocity = data.cvel[self._calves]
        lever = feet_pos - data.subtree_com[self._trunk]
        feet_linvel = calf_velocity[:, 3:] + xp.cross(calf_velocity[:, :3], lever)
        return {
            "gyro": gyro,
            "gravity": -rotation[2],  # world "down" in the body frame
            "up_z": rotation[2, 2],
            "local_linvel": local_linvel,
            "joint_pos": data.qpos[7:],
            "joint_vel": data.qvel[6:],
            "feet_pos": feet_pos,
            "feet_linvel": feet_linvel,
            "feet_height": feet_pos[:, 2] - FOOT_RADIUS - self.ground.height_at(feet_pos[:, :2]),
        }

    def policy_state(self, sensed: dict, last_action, command):
        """The policy's observation (`STATE_LAYOUT`) before sensor noise; NumPy or JAX."""
        xp = array_module(sensed["gyro"])
        return xp.concatenate([sensed["gyro"], sensed["gravity"], sensed["joint_pos"] - self._home_joints,
                               sensed["joint_vel"], last_action, command])

    def _observe(self, sensed: dict, info: dict, contact: jax.Array, push: jax.Array, key: jax.Array) -> dict:
        state = self.policy_state(sensed, info["last_action"], info["command"])
        noisy = state + self._noise_amplitude * jax.random.uniform(key, state.shape, minval=-1.0, maxval=1.0)
        privileged = jnp.concatenate([state, sensed["local_linvel"], contact.astype(jnp.float32),
                                      sensed["feet_height"], push])
        return {"state": jnp.nan_to_num(noisy), "privileged_state": jnp.nan_to_num(privileged)}

    # ------------------------------------------------------------ reward

    def _reward_terms(self, data, sensed, info, action, contact, first_contact, air_time, terminated) -> dict:
        """Unscaled terms, one per entry of `RewardScales`; the command is the one just pursued."""
        cfg = self.config
        xp = array_module(data.qpos)
        command = info["command"]
        moving = xp.linalg.norm(command) > 0.1
        joints = sensed["joint_pos"]
        lin_error = xp.sum(xp.square(command[:2] - sensed["local_linvel"][:2]))
        yaw_error = xp.square(command[2] - sensed["gyro"][2])
        over_limits = xp.maximum(joints - self._soft_high, 0.0) + xp.maximum(self._soft_low - joints, 0.0)
        slip = xp.sum(xp.square(sensed["feet_linvel"][:, :2]), axis=-1)
        return {
            "tracking_lin_vel": xp.exp(-lin_error / cfg.tracking_sigma),
            "tracking_ang_vel": xp.exp(-yaw_error / cfg.tracking_sigma),
            "lin_vel_z": xp.square(data.qvel[2]),
            "ang_vel_xy": xp.sum(xp.square(sensed["gyro"][:2])),
            "orientation": xp.sum(xp.square(sensed["gravity"][:2])),
            "torques": xp.sum(xp.square(data.actuator_force)),
            "action_rate": xp.sum(xp.square(action - info["last_action"])),
            "joint_limits": xp.sum(over_limits),
            "feet_air_time": xp.sum((air_time - cfg.air_time_target) * first_contact) * moving,
            "foot_slip": xp.sum(slip * contact),
            "stand_still": xp.sum(xp.abs(joints - self._home_joints)) * ~moving,
            "termination": terminated.astype(xp.float32),
        }
