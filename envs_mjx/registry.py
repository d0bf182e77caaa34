"""Environments by name: `make("cartpole-balance", episode_length=500)`.

Names with a prefix (`brax:ant`, `playground:CartpoleBalance`) are peers'
envs, resolved by `envs_mjx.peers`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import NamedTuple

from envs_mjx import peers
from envs_mjx.core import Env, EnvConfig


class EnvSpec(NamedTuple):
    module: str  # imported only when the env is made, so listing stays cheap
    env_class: str
    config_class: str
    summary: str
    expert: str | None = None  # module with make_expert(env) -> policy(obs, key), for `jaxrl collect`
    plain: str = "envs_mjx.plain:PlainEnv"  # its twin on plain MuJoCo (module:class), for `jaxrl play`


_ENVS: dict[str, EnvSpec] = {
    "cartpole-balance": EnvSpec("envs_mjx.classic.cartpole", "CartpoleBalance", "CartpoleConfig",
                                "keep a pole upright on a cart (max return 1000)"),
    "pendulum-swingup": EnvSpec("envs_mjx.classic.pendulum", "PendulumSwingup", "PendulumConfig",
                                "swing a torque-limited pendulum up and hold it (sparse)"),
    "go1-joystick": EnvSpec("envs_mjx.go1.joystick", "Go1Joystick", "Go1JoystickConfig",
                            "Unitree Go1 walks, turns and strafes on command, flat floor",
                            plain="envs_mjx.go1.joystick_plain:Go1JoystickPlain"),
    "go1-joystick-rough": EnvSpec("envs_mjx.go1.joystick", "Go1Joystick", "Go1JoystickRoughConfig",
                                  "Unitree Go1 joystick on procedural rough ground",
                                  plain="envs_mjx.go1.joystick_plain:Go1JoystickPlain"),
    "grasp-lift-cube": EnvSpec("envs_mjx.grasp.lift_cube", "LiftCube", "LiftCubeConfig",
                               "gantry gripper with tactile pads lifts a cube 10 cm (scripted expert)",
                               expert="envs_mjx.grasp.expert",
                               plain="envs_mjx.grasp.lift_cube_plain:LiftCubePlain"),
    "grasp-place-cube": EnvSpec("envs_mjx.grasp.lift_cube", "LiftCube", "PlaceCubeConfig",
                                "gantry gripper carries a cube to a target in the air (scripted expert)",
                                expert="envs_mjx.grasp.expert",
                                plain="envs_mjx.grasp.lift_cube_plain:LiftCubePlain"),
}


class UnknownEnvError(ValueError):
    """A name that no env answers to here (a peer's env also when its package or assets are missing)."""


class NoExpertError(ValueError):
    pass


class NoPlainTwinError(ValueError):
    pass


def list_envs() -> dict[str, str]:
    """Registered names with a one-line summary each."""
    return {name: spec.summary for name, spec in _ENVS.items()}


def _spec(name: str) -> EnvSpec:
    if name not in _ENVS:
        close = difflib.get_close_matches(name, _ENVS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownEnvError(f"unknown env {name!r}{hint} Registered envs: {', '.join(_ENVS)}")
    return _ENVS[name]


def config_class(name: str) -> type[EnvConfig]:
    if peers.is_peer(name):
        return peers.config_class(name)
    spec = _spec(name)
    return getattr(importlib.import_module(spec.module), spec.config_class)


def make(name: str, config: EnvConfig | None = None, **overrides) -> Env:
    """Build env `name` from `config` (default: its Config's defaults) with `overrides`."""
    config = config if config is not None else config_class(name)()
    fields = {f.name for f in dataclasses.fields(config)}
    for key in overrides:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{type(config).__name__} has no field {key!r}{hint}")
    config = dataclasses.replace(config, **overrides)
    if peers.is_peer(name):
        return peers.make(name, config)
    spec = _spec(name)
    return getattr(importlib.import_module(spec.module), spec.env_class)(config)


def make_expert(name: str, env: Env):
    """The scripted expert of env `name`, driving `env`: policy(obs, key) -> action for one env."""
    spec = None if peers.is_peer(name) else _spec(name)
    if spec is None or spec.expert is None:
        with_expert = [n for n, s in _ENVS.items() if s.expert is not None]
        raise NoExpertError(f"env {name!r} has no scripted expert; envs with one: {', '.join(with_expert)}. "
                            f"Collect from a trained policy instead: --policy RUN_DIR")
    return importlib.import_module(spec.expert).make_expert(env)


def plain_class(name: str) -> type:
    """The class of env `name`'s twin on plain MuJoCo (`envs_mjx.plain`)."""
    if peers.is_peer(name):
        raise NoPlainTwinError(
            f"{name} is a peer's env: it has no twin on plain MuJoCo, so `jaxrl play` and the sim-to-sim "
            f"check cannot run it. Its exported policy (`jaxrl export`) runs in ONNX Runtime as any other; "
            f"play it in {name.split(':')[0]}'s own tools, or evaluate it with `jaxrl eval`")
    module, cls = _spec(name).plain.split(":")
    return getattr(importlib.import_module(module), cls)


def make_plain(name: str, env: Env):
    """Env `name`'s twin on plain MuJoCo (`envs_mjx.plain`) for the MJX env `env`."""
    return plain_class(name)(env)
