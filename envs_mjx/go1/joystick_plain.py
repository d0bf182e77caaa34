"""The Go1 joystick on plain MuJoCo (see `envs_mjx.plain`).

The command is the episode's start command, redrawn every
`commands.resample_interval` seconds from the env's ranges as in training
(from a NumPy generator seeded by the episode's key), or one the user holds
(`hold_command`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs_mjx.core import State
from envs_mjx.go1.joystick import Go1Joystick, Go1JoystickConfig
from envs_mjx.plain import PlainEnv, PlainStep


class Go1JoystickPlain(PlainEnv):
    env: Go1Joystick

    @classmethod
    def matching_config(cls, config: Go1JoystickConfig) -> Go1JoystickConfig:
        """No sensor noise, nominal model, no pushes, and the start command held all episode."""
        longer_than_an_episode = float(config.episode_length)  # seconds; a control step is < 1 s
        return dataclasses.replace(
            config, noise=dataclasses.replace(config.noise, level=0.0),
            randomization=dataclasses.replace(config.randomization, model=False, pushes=False),
            commands=dataclasses.replace(config.commands, resample_interval=longer_than_an_episode))

    def __init__(self, env: Go1Joystick):
        super().__init__(env)
        self.fixed_command = None

    def hold_command(self, command) -> None:
        if len(command) != 3:
            raise ValueError(f"a Go1 command is vx,vy,yaw (3 numbers), got {len(command)}")
        self.fixed_command = np.asarray(command, np.float64)

    def begin_episode(self, start: State) -> None:
        self.rng = np.random.default_rng(np.asarray(start.info["rng"]))
        self.command = (np.asarray(start.info["command"], np.float64) if self.fixed_command is None
                        else self.fixed_command)
        self.command_timer = self.env._command_steps
        self.last_action = np.zeros(self.env.action_size)
        self.feet_air_time = np.zeros(4)

    def control(self, action: np.ndarray) -> np.ndarray:
        offset, scale = self.env.control_affine
        return offset + scale * action

    def observation(self) -> np.ndarray:
        sensed = self.env.sense(self.data)
        return self.env.policy_state(sensed, self.last_action, self.command).astype(np.float32)

    def finish_step(self, action: np.ndarray) -> PlainStep:
        info = {"command": self.command, "last_action": self.last_action, "feet_air_time": self.feet_air_time}
        out = self.env.outcome(self.data, info, action)
        self.last_action, self.feet_air_time = action, out["feet_air_time"]
        self._advance_command()
        obs = self.env.policy_state(out["sensed"], action, self.command).astype(np.float32)
        metrics = {f"reward/{name}": float(value) for name, value in out["reward_terms"].items()}
        metrics.update(lin_vel_error=float(out["lin_vel_error"]), ang_vel_error=float(out["ang_vel_error"]))
        return PlainStep(obs, float(out["reward"]), bool(out["terminated"]), metrics)

    def _advance_command(self) -> None:
        """The env's schedule: a new command every resample interval, some of them "stand still"."""
        self.command_timer -= 1
        if self.fixed_command is not None or self.command_timer > 0:
            return
        self.command_timer = self.env._command_steps
        self.command = self.rng.uniform(np.asarray(self.env._command_low), np.asarray(self.env._command_high))
        if self.rng.uniform() < self.env.config.commands.zero_probability:
            self.command = np.zeros(3)
