"""Tiny MJX environments that learn in minutes on a CPU."""

import dataclasses

from envs_mjx.core import EnvConfig


@dataclasses.dataclass(frozen=True)
class ClassicConfig(EnvConfig):
    """What the classic envs share: a control rate that is a setting. A control step of `physics_steps`
    physics steps holds the action (an action repeat, as DMC's agents use) and earns `physics_steps`
    times the reward rate at its end, so an episode of the same seconds is worth the same whatever the
    rate. Learners that plan over a fixed number of steps (Dreamer's imagination) see further at a
    lower rate."""

    physics_steps: int = 1  # physics steps per control step, the action held

    def substeps(self) -> int:
        """physics_steps, checked: the env's MjxEnv n_substeps."""
        if self.physics_steps < 1:
            raise ValueError(f"physics_steps must be >= 1, got {self.physics_steps}")
        return self.physics_steps
