"""Pendulum swing-up: pump a torque-limited pendulum up and hold it there.

Reward 1 per physics step of 0.02 s while the pole is within 30 degrees of
upright, else 0 (`physics_steps`: envs_mjx.classic.ClassicConfig): a sparse
task, harder than cart-pole, for testing exploration.
"""

import dataclasses

import jax
import jax.numpy as jnp

from envs_mjx.classic import ClassicConfig, ClassicEnv
from envs_mjx.core import ASSETS, State, array_module
from envs_mjx.rewards import tolerance

_UPRIGHT_COS = float(jnp.cos(jnp.deg2rad(30.0)))


@dataclasses.dataclass(frozen=True)
class PendulumConfig(ClassicConfig):
    episode_length: int = 1000  # control steps: 20 s episodes at physics_steps 1 (of 0.02 s)


class PendulumSwingup(ClassicEnv):
    render_camera = "side"  # the MJCF camera videos use

    def __init__(self, config: PendulumConfig = PendulumConfig()):
        super().__init__(ASSETS / "classic" / "pendulum.xml", config, n_substeps=config.substeps())

    @property
    def state_layout(self) -> tuple[tuple[str, int], ...]:
        return (("cos", 1), ("sin", 1), ("angvel", 1))

    def reset(self, key: jax.Array) -> State:
        # The hinge angle is measured from upright; any start angle is allowed.
        angle = jax.random.uniform(key, (1,), minval=-jnp.pi, maxval=jnp.pi)
        data = self.init_data(angle, jnp.zeros(1))
        return State(data=data, obs=self.observation(data), reward=jnp.zeros(()), done=jnp.zeros(()),
                     metrics={"upright": jnp.zeros(())})

    def step(self, state: State, action: jax.Array) -> State:
        data = self.physics_step(state.data, self.action_to_ctrl(action))
        reward, terms = self.reward(data, action)
        return state.replace(data=data, obs=self.observation(data), reward=reward, done=jnp.zeros(()),
                             metrics=terms)

    # Observation and reward take MJX data or plain MuJoCo's MjData (see `array_module`).

    def observe(self, data) -> jax.Array:
        xp = array_module(data.qpos)
        angle = data.qpos[0]
        return xp.stack([xp.cos(angle), xp.sin(angle), data.qvel[0]])

    def reward(self, data, ctrl) -> tuple[jax.Array, dict]:
        """physics_steps while the pole is within 30 degrees of upright, else 0; the term "upright" 1 or 0."""
        upright = tolerance(array_module(data.qpos).cos(data.qpos[0]), lower=_UPRIGHT_COS, upper=1.0)
        return self.n_substeps * upright, {"upright": upright}
