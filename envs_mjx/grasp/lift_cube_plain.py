"""Lift (and place) the cube on plain MuJoCo (see `envs_mjx.plain`).

Each episode's cube (size, mass, friction) is written into the twin's model,
so the same episode plays out on both engines.
"""

from __future__ import annotations

import jax
import numpy as np

from envs_mjx.core import State
from envs_mjx.grasp.lift_cube import LiftCube
from envs_mjx.plain import PlainEnv, PlainStep


class LiftCubePlain(PlainEnv):
    env: LiftCube

    def begin_episode(self, start: State) -> None:
        self.env.write_cube(self.model, start)
        info = jax.device_get(start.info)
        self.info = {"cube": info["cube"], "target": info["target"], "hold": 0, "succeeded": False}

    def control(self, action: np.ndarray) -> np.ndarray:
        return self.env.control(self.data.qpos, action)

    def observation(self) -> np.ndarray:
        return self.env.observe(self.data, self.info)["state"].astype(np.float32)

    def finish_step(self, action: np.ndarray) -> PlainStep:
        out = self.env.outcome(self.data, self.info)
        self.info.update(hold=out["hold"], succeeded=out["succeeded"])
        metrics = {f"reward/{name}": float(value) for name, value in out["reward_terms"].items()}
        metrics.update(success=float(out["success"]), cube_height=float(out["cube_height"]))
        obs = out["obs"]["state"].astype(np.float32)
        return PlainStep(obs, float(out["reward"]), bool(out["terminated"]), metrics)
