"""Tiny MJX environments that learn in minutes on a CPU."""

import dataclasses

import jax
import jax.numpy as jnp

from envs_mjx import pixels
from envs_mjx.core import MjxEnv, MjxEnvConfig

PIXELS_FAR = 10.0  # metres: a depth pixel this far or farther (or seeing nothing) is white (255)


@dataclasses.dataclass(frozen=True)
class ClassicConfig(MjxEnvConfig):
    """What the classic envs share: a control rate that is a setting, and pixels on request.

    A control step of `physics_steps` physics steps holds the action (an action repeat, as DMC's agents
    use) and earns `physics_steps` times the reward rate at its end, so an episode of the same seconds is
    worth the same whatever the rate. Learners that plan over a fixed number of steps (Dreamer's
    imagination) see further at a lower rate.

    `pixels=N` makes the observation {"state": the vector, "pixels": the env camera's N x N depth image}
    (uint8 [N, N, 1], 0 at the camera to 255 at PIXELS_FAR), rendered in JAX (envs_mjx.pixels) under the
    same jit and vmap as the physics. Each pixel averages 2 x 2 rays, so a pole thinner than a pixel
    still shows."""

    physics_steps: int = 1  # physics steps per control step, the action held
    pixels: int = 0  # side of the depth image in the observation; 0: the state vector alone

    def substeps(self) -> int:
        """physics_steps, checked: the env's MjxEnv n_substeps."""
        if self.physics_steps < 1:
            raise ValueError(f"physics_steps must be >= 1, got {self.physics_steps}")
        if self.pixels < 0:
            raise ValueError(f"pixels must be >= 0 (0: no image), got {self.pixels}")
        return self.physics_steps


class ClassicEnv(MjxEnv):
    """An MjxEnv whose observation is `observe(data)` (a vector, also what its plain-MuJoCo twin
    reads), with the depth image beside it where `config.pixels`."""

    def observation(self, data) -> jax.Array | dict[str, jax.Array]:
        state = self.observe(data)
        size = self.config.pixels
        if not size:
            return state
        camera = self.mj_model.camera(self.render_camera).id
        depth = pixels.depth_image(self.mjx_model, data, camera, 2 * size, 2 * size, far=PIXELS_FAR)
        depth = depth.reshape(size, 2, size, 2).mean(axis=(1, 3))
        image = jnp.round(255.0 * depth / PIXELS_FAR).astype(jnp.uint8)
        return {"state": state, "pixels": image[..., None]}
