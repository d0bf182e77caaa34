"""The environment contract: a `State` pytree and the `Env` interface.

The shape follows brax's `envs.base` (reset/step/observation_size/action_size
and a State with obs, reward, done, metrics, info) so that brax's trainers and
ours can drive the same environments. The physics state is called `data`
because it is an `mjx.Data`.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from envs_mjx._mjx import mjx

ASSETS = Path(__file__).parent / "assets"
PHYSICS_IMPLS = ("jax", "warp")  # MJX backends an MjxEnv can run on

# MJX's forward and step, jitted once for the process: a program that calls them again (an episode's
# auto-reset inside the step, evaluation after training, every env of one model) reuses their traced
# form for the same shapes instead of tracing MJX's Python anew. XLA inlines them where they are called.
_forward = jax.jit(mjx.forward)
_step = jax.jit(mjx.step)

Observation = jax.Array | Mapping[str, jax.Array]
ObservationSize = int | Mapping[str, tuple]


def array_module(x):
    """numpy for NumPy arrays, jax.numpy otherwise (traced or device arrays).

    Observation and reward code that picks its functions with this runs
    unchanged on MJX data under jit and on plain MuJoCo's MjData in NumPy,
    so playback outside JAX computes exactly what training saw.
    """
    return np if isinstance(x, np.ndarray | np.generic) else jnp


@struct.dataclass
class State:
    """One environment's state; every field gains a leading batch axis under vmap.

    data:    the physics state (mjx.Data).
    obs:     an array, or a dict such as {"state": ..., "privileged_state": ...}.
    reward:  scalar float32, the reward of the step that produced this state.
    done:    scalar float32, 1.0 when the episode ended here (terminated or truncated).
    metrics: dict of scalar floats, logged by the learners (reward terms...).
    info:    dict of arrays the env and its wrappers carry between steps.
    """

    data: Any
    obs: Observation
    reward: jax.Array
    done: jax.Array
    metrics: dict = struct.field(default_factory=dict)
    info: dict = struct.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Settings every environment has; each env subclasses this with its own."""

    episode_length: int = 1000  # control steps before the episode is truncated


# MuJoCo's constraint solvers that MJX steps.
SOLVERS = {"newton": mujoco.mjtSolver.mjSOL_NEWTON, "cg": mujoco.mjtSolver.mjSOL_CG}


@dataclasses.dataclass(frozen=True)
class PhysicsOptions:
    """The constraint solver's settings, over those of the MJCF's <option>: trading fidelity for speed is a
    setting of the run (`env.physics.solver=cg`), and MJX and plain MuJoCo playback both step with it
    (an exported policy's metadata keeps the env config). Each default keeps the model file's value."""

    solver: str = "mjcf"  # "newton", "cg", or "mjcf": the model file's
    iterations: int = 0  # solver iterations per physics step; 0: the model file's
    ls_iterations: int = 0  # line-search iterations per solver iteration; 0: the model file's
    # The solver stops early once an iteration improves its cost by less than this (scaled); 0: the model
    # file's. MuJoCo's default 1e-8 is below float32's resolution, so MJX always runs every iteration.
    tolerance: float = 0.0

    def apply(self, model: mujoco.MjModel) -> mujoco.MjModel:
        """`model` with these options written into its `opt` (a copy where any is set)."""
        if self.solver not in ("mjcf", *SOLVERS):
            raise ValueError(f"physics.solver must be 'mjcf' (the model file's) or one of {tuple(SOLVERS)}, "
                             f"got {self.solver!r}")
        for name in ("iterations", "ls_iterations", "tolerance"):
            if getattr(self, name) < 0:
                raise ValueError(f"physics.{name} must be > 0, or 0 for the model file's; "
                                 f"got {getattr(self, name)}")
        if self == PhysicsOptions():
            return model
        model = copy.copy(model)
        if self.solver != "mjcf":
            model.opt.solver = SOLVERS[self.solver]
        model.opt.iterations = self.iterations or model.opt.iterations
        model.opt.ls_iterations = self.ls_iterations or model.opt.ls_iterations
        model.opt.tolerance = self.tolerance or model.opt.tolerance
        return model


@dataclasses.dataclass(frozen=True)
class MjxEnvConfig(EnvConfig):
    """Settings of every MjxEnv."""

    physics: PhysicsOptions = PhysicsOptions()


class Env(abc.ABC):
    """A pure, jit- and vmap-able environment with static shapes."""

    @abc.abstractmethod
    def reset(self, key: jax.Array) -> State:
        """A fresh episode's first state, drawn with `key`."""

    @abc.abstractmethod
    def step(self, state: State, action: jax.Array) -> State:
        """Advance one control step; `action` lies in [-1, 1]^action_size."""

    @property
    @abc.abstractmethod
    def action_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def dt(self) -> float:
        """Seconds of simulated time per control step."""

    @property
    def observation_size(self) -> ObservationSize:
        """Length of a flat observation, or {key: shape} for dict observations."""
        obs = jax.eval_shape(self.reset, jax.random.PRNGKey(0)).obs
        if isinstance(obs, Mapping):
            return {k: tuple(v.shape) for k, v in obs.items()}
        return obs.shape[-1]

    @property
    def state_layout(self) -> tuple[tuple[str, int], ...]:
        """(name, size) of each slice of the flat vector a policy reads, in order.

        That vector is obs["state"] for dict observations and the observation
        itself otherwise. Exported policies carry it, so a deployment can build
        the same vector from its own sensors.
        """
        size = self.observation_size
        return (("obs", size["state"][-1] if isinstance(size, Mapping) else size),)

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(f"action_{i}" for i in range(self.action_size))

    @property
    def control_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(offset, scale) with control = offset + scale * action, or None.

        None means the control also depends on the state (e.g. relative
        motion targets), so an exported policy outputs the action in [-1, 1].
        """
        return None

    @property
    def unwrapped(self) -> Env:
        return self


class MjxEnv(Env):
    """An Env whose physics is an MJCF model stepped by MJX.

    Subclasses choose `n_substeps` physics steps per control step and map
    actions in [-1, 1] to controls; this class owns the model and the stepping.
    """

    def __init__(self, model: Path | mujoco.MjModel, config: MjxEnvConfig, n_substeps: int = 1,
                 mjx_sensors: bool = True, impl: str = "jax", warp_contact_slots: int = 0):
        """`model`: an MJCF path, or an MjModel the subclass has already edited (e.g. terrain);
        `config.physics` is written over its solver options.

        `mjx_sensors=False` makes MJX skip the MJCF's sensors on every physics step, for
        envs that read what they need from the state directly; `mj_model` (plain
        MuJoCo, used for playback) keeps them, and `mjx_source` is the MjModel MJX steps.

        `impl` is MJX's backend: "jax" (XLA; any device) or "warp" (MuJoCo Warp, the
        `warp` extra). Warp keeps one pool of `warp_contact_slots` contacts for a
        whole batch of envs, so it must hold batch size x contacts per env.
        """
        if impl not in PHYSICS_IMPLS:
            raise ValueError(f"impl must be one of {PHYSICS_IMPLS}, got {impl!r}")
        self.config = config
        if not isinstance(model, mujoco.MjModel):
            model = mujoco.MjModel.from_xml_path(str(model))
        self.mj_model = config.physics.apply(model)
        mjx_source = self.mj_model
        if not mjx_sensors:
            mjx_source = copy.copy(self.mj_model)
            mjx_source.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_SENSOR
        self.impl, self.mjx_source, self._warp_contact_slots = impl, mjx_source, warp_contact_slots
        try:
            self.mjx_model = mjx.put_model(mjx_source, impl=impl)
        except RuntimeError as error:  # MJX's words when warp-lang is missing
            raise ValueError(f"impl='warp' needs MuJoCo Warp: pip install -e '.[warp]' ({error})") from None
        if impl == "warp":
            # Few solver iterations are a choice made for speed (see the MJCF); keep Warp
            # from printing an iteration-limit warning on every step.
            opt = self.mjx_model.opt
            self.mjx_model = self.mjx_model.replace(opt=opt.replace(_impl=opt._impl.replace(warn_overflow=0)))
        self.n_substeps = n_substeps
        # Controls are scaled from [-1, 1] to each actuator's ctrlrange.
        low, high = self.mj_model.actuator_ctrlrange.T
        self._ctrl_mid = ((high + low) / 2).astype(np.float32)
        self._ctrl_half = ((high - low) / 2).astype(np.float32)

    @property
    def action_size(self) -> int:
        return self.mj_model.nu

    @property
    def dt(self) -> float:
        return float(self.mj_model.opt.timestep) * self.n_substeps

    # Rendering (jaxrl.video). Defined here, not on Env, so wrappers forward them to the MjxEnv.
    render_camera: str | None = None  # the MJCF camera videos use; None: the free camera on the whole model

    def episode_mj_model(self, state: State) -> mujoco.MjModel:
        """The MjModel that renders the episode of `state` (one env's state, unbatched).

        Envs that randomize something visible per episode (the grasp cube's
        size) return a copy with it written in; others, the nominal `mj_model`.
        """
        return self.mj_model

    @property
    def action_names(self) -> tuple[str, ...]:
        if self.mj_model.nu != self.action_size:
            return super().action_names
        return tuple(self.mj_model.actuator(i).name for i in range(self.mj_model.nu))

    @property
    def control_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self._ctrl_mid, self._ctrl_half

    def action_to_ctrl(self, action: jax.Array) -> jax.Array:
        return self._ctrl_mid + self._ctrl_half * array_module(action).clip(action, -1.0, 1.0)

    def init_data(self, qpos: jax.Array, qvel: jax.Array, model: Any = None) -> Any:
        """Physics state at (qpos, qvel) with derived quantities computed.

        `model` defaults to the nominal model; randomized envs pass their episode's.
        """
        model = self.mjx_model if model is None else model
        if self.impl == "warp":  # Warp builds its data from the MjModel, with the batch's contact pool
            data = mjx.make_data(self.mjx_source, impl="warp", naconmax=self._warp_contact_slots)
        else:
            data = mjx.make_data(model)
        return _forward(model, data.replace(qpos=qpos, qvel=qvel))

    def physics_step(self, data: Any, ctrl: jax.Array, model: Any = None) -> Any:
        """`n_substeps` MJX steps holding `ctrl` fixed (`model` as in `init_data`)."""
        model = self.mjx_model if model is None else model
        data = data.replace(ctrl=ctrl)
        return jax.lax.fori_loop(0, self.n_substeps, lambda _, d: _step(model, d), data)
