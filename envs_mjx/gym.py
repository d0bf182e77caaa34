"""Our envs under Gymnasium's API, for Stable-Baselines3, SBX, CleanRL and any code written for it.

Two doors (the `gym` extra: pip install -e '.[gym]'):

- `gymnasium.make("jaxrl/Go1Joystick-v0")`, after `import envs_mjx.gym` (or in one
  call, `gymnasium.make("envs_mjx.gym:jaxrl/Go1Joystick-v0")`): one env on plain
  MuJoCo, the twin `jaxrl play` runs (`envs_mjx.plain`), so NumPy in and out and
  no compiling per step. Episodes start from the MJX env's reset, as in training.
  Gymnasium 1.0 dropped its entry-point plugins, so importing this module is what
  registers the ids.
- `make_vec("go1-joystick", num_envs=4096)`: a `gymnasium.vector.VectorEnv` over
  the MJX env itself, every env stepped by one jitted call, for code that wants
  thousands of envs. It resets finished envs in the same step (Gymnasium's
  `AutoresetMode.SAME_STEP`): `infos["final_obs"]` holds every env's observation
  before the reset, `infos["_final_obs"]` which envs it applies to.

Keyword arguments other than the API's own set the env's config fields
(`episode_length=500`, `physics_steps=2`), as `envs_mjx.make` takes them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs_mjx import registry
from envs_mjx._gl import can_open_windows
from envs_mjx.core import Env
from envs_mjx.rendering import DEFAULT_HEIGHT, DEFAULT_WIDTH, FrameRenderer
from envs_mjx.wrappers import wrap_for_training

NAMESPACE = "jaxrl"


def gym_id(env_name: str) -> str:
    """The Gymnasium id of a registered env: go1-joystick -> jaxrl/Go1Joystick-v0."""
    words = env_name.split("-")
    return f"{NAMESPACE}/{''.join(word[:1].upper() + word[1:] for word in words)}-v0"


def action_space(env: Env) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, (env.action_size,), np.float32)


def _box(leaf) -> spaces.Box:
    """The space of one observation array: images as bytes, everything else as unbounded floats."""
    if leaf.dtype == jnp.uint8:
        return spaces.Box(0, 255, leaf.shape, np.uint8)
    return spaces.Box(-np.inf, np.inf, leaf.shape, np.float32)


def observation_space(env: Env) -> spaces.Space:
    """What the MJX env observes: a Box, or a Dict of Boxes for dict observations."""
    obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
    if isinstance(obs, Mapping):
        return spaces.Dict({key: _box(leaf) for key, leaf in obs.items()})
    return _box(obs)


class PlainMuJoCoEnv(gymnasium.Env):
    """One env on plain MuJoCo: what `gymnasium.make("jaxrl/...")` builds.

    The observation is the vector a policy reads (`env.state_layout`); the
    info holds the step's metrics (reward terms, tracking errors). Episodes are
    truncated after the config's `episode_length` control steps.
    """

    metadata = {"render_modes": ["rgb_array", "human"]}

    def __init__(self, env_name: str, render_mode: str | None = None, width: int = DEFAULT_WIDTH,
                 height: int = DEFAULT_HEIGHT,
                 **config_fields):
        # This machine's modes: the interactive viewer needs a display (checkers try every listed mode).
        modes = [mode for mode in self.metadata["render_modes"] if mode != "human" or can_open_windows()]
        if render_mode == "human" and "human" not in modes:
            raise ValueError("render_mode='human' needs a display (and MUJOCO_GL unset or glfw); on a "
                             "machine without one use render_mode='rgb_array'")
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"render_mode must be one of {modes} or None, got {render_mode!r}")
        self.env_name = env_name
        self.mjx_env, self._reset, images = _plain_env_parts(env_name, tuple(sorted(config_fields.items())))
        if images:
            raise ValueError(f"{env_name} observes images ({', '.join(images)}), which only MJX renders; "
                             f"use envs_mjx.gym.make_vec({env_name!r}, num_envs=...) for them, or leave "
                             f"pixels out")
        self.twin = registry.make_plain(env_name, self.mjx_env)
        size = sum(length for _, length in self.mjx_env.state_layout)
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = action_space(self.mjx_env)
        self.metadata = dict(self.metadata, render_modes=modes, render_fps=1.0 / self.mjx_env.dt)
        self.render_mode, self._size = render_mode, (width, height)
        self._renderer = self._viewer = None
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        obs = self.twin.reset(self._reset(key))
        self._steps = 0
        if self.render_mode == "human":
            self.render()
        return obs, {}

    def step(self, action):
        obs, reward, terminated, metrics = self.twin.step(action)
        self._steps += 1
        truncated = not terminated and self._steps >= self.mjx_env.config.episode_length
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, metrics

    def render(self):
        if self.render_mode == "rgb_array":
            if self._renderer is None:
                self._renderer = FrameRenderer(self.twin.model, *self._size, self.mjx_env.render_camera)
            return self._renderer.render(self.twin.data)
        if self.render_mode == "human":
            self._show()
        return None

    def _show(self) -> None:
        """The interactive viewer, kept in real time."""
        if self._viewer is None:
            import mujoco.viewer

            self._viewer = mujoco.viewer.launch_passive(self.twin.model, self.twin.data)
            self._next_frame = 0.0
        self._viewer.sync()
        now = time.monotonic()
        self._next_frame = max(self._next_frame + self.mjx_env.dt, now)
        time.sleep(self._next_frame - now)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None


@functools.cache
def _plain_env_parts(env_name: str, config_fields: tuple) -> tuple[Env, Callable, list[str]]:
    """(MJX env, its compiled reset, its image observations' keys) per env and settings, shared by the
    plain envs made of them: code that makes many (a Stable-Baselines3 DummyVecEnv, the env checker)
    traces and compiles the reset once."""
    env = registry.make(env_name, **dict(config_fields))
    space = observation_space(env)
    parts = space.spaces.items() if isinstance(space, spaces.Dict) else ()
    return env, jax.jit(env.reset), [key for key, part in parts if len(part.shape) > 1]


class MjxVectorEnv(VectorEnv):
    """`num_envs` MJX envs stepped by one jitted call; NumPy in and out.

    Besides `final_obs`, the infos hold the env's metrics (reward terms) of
    every env and, for the envs whose episode ended, `episode` = {"r": return,
    "l": length} as Gymnasium's RecordEpisodeStatistics writes it.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, env_name: str, num_envs: int, **config_fields):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        env = registry.make(env_name, **config_fields)
        self.env_name, self.num_envs, self.mjx_env = env_name, num_envs, env
        self.single_observation_space = observation_space(env)
        self.single_action_space = action_space(env)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        batched = wrap_for_training(env, env.config.episode_length)
        self._reset_fn = jax.jit(batched.reset)
        self._step_fn = jax.jit(batched.step, donate_argnums=0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        self._state = self._reset_fn(jax.random.split(key, self.num_envs))
        return jax.device_get(self._state.obs), {}

    def step(self, actions):
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        self._state = self._step_fn(self._state, jnp.asarray(actions, jnp.float32))
        return _vector_step(jax.device_get(_step_outputs(self._state)))


def _step_outputs(state):
    """What a vector step hands back, gathered on the device so that one transfer brings it."""
    info = state.info
    return (state.obs, state.reward, state.done, info["truncation"], info["final_obs"], state.metrics,
            info["episode_metrics"]["return"], info["episode_metrics"]["length"])


def _vector_step(outputs):
    obs, reward, done, truncation, final_obs, metrics, episode_return, episode_length = outputs
    ended = done > 0
    truncated = truncation > 0
    infos = dict(metrics, final_obs=final_obs, _final_obs=ended,
                 episode={"r": np.where(ended, episode_return, 0.0), "l": np.where(ended, episode_length, 0)},
                 _episode=ended)
    return obs, reward, ended & ~truncated, truncated, infos


def make_vec(env_name: str, num_envs: int, **config_fields) -> MjxVectorEnv:
    """A Gymnasium VectorEnv of `num_envs` copies of env `env_name` on MJX (see the module's doc)."""
    return MjxVectorEnv(env_name, num_envs, **config_fields)


def register_all() -> None:
    """Registers a Gymnasium id (`gym_id`) for every env of `envs_mjx.list_envs()`."""
    for name in registry.list_envs():
        gymnasium.register(gym_id(name), entry_point=PlainMuJoCoEnv, kwargs={"env_name": name},
                           vector_entry_point=MjxVectorEnv)


register_all()
