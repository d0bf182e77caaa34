"""Plain MuJoCo twins of the MJX envs: what playback and deployment run.

A twin steps `mujoco.MjModel`/`MjData` on the CPU and computes observations
and rewards in NumPy, with the env's own definitions (observation and reward
code picks NumPy or JAX by its input: `core.array_module`), so a policy sees
in plain MuJoCo exactly what it saw in training. Only the physics differs:
MuJoCo in float64 here, MJX in float32 there.

Episodes start from an MJX reset state (`reset(env.reset(key))`): the same
start distribution as training, and, for sim-to-sim checks, the very same
episode. A twin has no domain randomization or pushes and no sensor noise:
it plays the nominal robot.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import jax
import mujoco
import numpy as np

from envs_mjx.core import EnvConfig, MjxEnv, State


class PlainStep(NamedTuple):
    obs: np.ndarray  # the policy's flat observation (see the env's `state_layout`)
    reward: float
    done: bool  # the episode terminated (time limits are the caller's)
    metrics: dict[str, float]  # the env's per-step metrics (reward terms ...)


class PlainEnv:
    """Twin of an env whose observation and reward depend on the physics state only.

    Such an env provides `observe(data)` and `reward(data, ctrl) -> (reward, terms)`
    (the classic envs). Envs with more episode state subclass this.
    """

    @classmethod
    def matching_config(cls, config: EnvConfig) -> EnvConfig:
        """`config` changed so that MJX plays the episodes this twin plays (for sim-to-sim checks)."""
        return config

    def __init__(self, env: MjxEnv):
        self.env = env.unwrapped
        self.model = copy.copy(self.env.mj_model)  # its own: twins may write episode parameters into it
        self.data = mujoco.MjData(self.model)
        self.dt = self.env.dt

    def reset(self, start: State) -> np.ndarray:
        """Begin the episode that the unbatched MJX state `start` begins; its first observation."""
        start = jax.device_get(start)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = start.data.qpos
        self.data.qvel[:] = start.data.qvel
        self.data.ctrl[:] = start.data.ctrl
        self.begin_episode(start)
        mujoco.mj_forward(self.model, self.data)
        return self.observation()

    def step(self, action: np.ndarray) -> PlainStep:
        """One control step: `action` in [-1, 1] held for the env's physics substeps."""
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self.data.ctrl[:] = self.control(action)
        for _ in range(self.env.n_substeps):
            mujoco.mj_step(self.model, self.data)
        return self.finish_step(action)

    def hold_command(self, command) -> None:
        """Hold a user's command for every episode (joystick envs override this)."""
        raise ValueError(f"{type(self.env).__name__} takes no command; leave --command out")

    # Subclasses with episode state override these.

    def begin_episode(self, start: State) -> None:
        """Take the task state (commands, targets, episode parameters) from `start`."""

    def control(self, action: np.ndarray) -> np.ndarray:
        return self.env.action_to_ctrl(action)

    def observation(self) -> np.ndarray:
        return np.asarray(self.env.observe(self.data), np.float32)

    def finish_step(self, action: np.ndarray) -> PlainStep:
        reward, terms = self.env.reward(self.data, self.data.ctrl)
        return PlainStep(self.observation(), float(reward), False, {k: float(v) for k, v in terms.items()})
