"""`playground:NAME`: the envs of MuJoCo Playground's JAX line (package `playground` 0.2, extra `peers`).

Settings are the top-level scalars of the env's ConfigDict (ctrl_dt, sim_dt,
episode_length, impl...). Two differ from Playground's defaults: `impl` is
"jax" (MJX on XLA, any device), since its "warp" needs warp-lang and a CUDA
GPU; and action_repeat is not offered, because the env itself ignores it
(Playground's own training wrapper applies it). Vision configs stay off.

Its locomotion and manipulation envs load robot meshes from MuJoCo Menagerie,
which Playground git-clones on first use. Here that clone is never started
inside a training command: without the folder, the env is refused with the
commands that fetch it.
"""

from __future__ import annotations

import contextlib
import functools
import io

from envs_mjx.core import EnvConfig
from envs_mjx.peers.adapter import PeerEnv
from envs_mjx.peers.settings import settings_class

NOT_OFFERED = ("action_repeat", "vision")
INSTALL = "pip install -e '.[peers]' (MuJoCo Playground's JAX line: playground 0.2)"


def _playground():
    """(registry, mjx_env) of mujoco_playground, imported quietly; without the package, how to install it."""
    from envs_mjx.registry import UnknownEnvError
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # MJX's "Failed to import warp" lines, once more
            from mujoco_playground._src import mjx_env, registry
    except ImportError as error:
        raise UnknownEnvError(f"playground:NAME envs need MuJoCo Playground ({error}): {INSTALL}") from None
    return registry, mjx_env


def names() -> list[str]:
    return list(_playground()[0].ALL_ENVS)


def config_class(name: str) -> type[EnvConfig]:
    defaults = {key: value for key, value in _playground()[0].get_default_config(name).items()
                if key not in NOT_OFFERED}
    defaults["impl"] = "jax"
    return settings_class(f"Playground_{name}_Config", defaults,
                          f"MuJoCo Playground's {name!r} env: the scalars of its ConfigDict.")


def _check_assets(name: str) -> None:
    from envs_mjx.registry import UnknownEnvError
    registry, mjx_env = _playground()
    if name in registry.dm_control_suite.ALL_ENVS or mjx_env.MENAGERIE_PATH.exists():
        return
    raise UnknownEnvError(
        f"playground:{name} needs MuJoCo Menagerie's robot models, which Playground clones with git on "
        f"first use into {mjx_env.MENAGERIE_PATH}; that folder is missing. Fetch it once:\n"
        f"  git clone https://github.com/google-deepmind/mujoco_menagerie {mjx_env.MENAGERIE_PATH} && "
        f"git -C {mjx_env.MENAGERIE_PATH} checkout {mjx_env.MENAGERIE_COMMIT_SHA}\n"
        f"Envs whose models ship in the package: playground's dm_control suite "
        f"(e.g. playground:CartpoleBalance)")


@functools.lru_cache(maxsize=8)  # the same env object for the same settings: compiled programs are reused
def make(name: str, config: EnvConfig) -> PeerEnv:
    from envs_mjx.registry import UnknownEnvError
    _check_assets(name)
    registry, mjx_env = _playground()
    try:
        env = registry.load(name, config_overrides=vars(config))
    except RuntimeError as error:  # MJX's words for impl="warp" without warp-lang
        raise UnknownEnvError(f"playground:{name}: {error} (env.impl=jax runs on any device)") from None
    return PeerEnv(f"playground:{name}", env, config, mjx_env.State, "data", env.mj_model)
