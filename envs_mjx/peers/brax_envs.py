"""`brax:NAME`: the envs of `brax.envs` (ant, hopper, humanoid...), on brax's own physics backends.

Settings are the env constructor's keyword arguments (`env.backend=mjx`,
`env.ctrl_cost_weight=0.1`...) plus our `episode_length` (brax's trainers
default to 1000 steps too).
"""

from __future__ import annotations

import functools
import inspect
import warnings

from envs_mjx.core import EnvConfig
from envs_mjx.peers.adapter import PeerEnv
from envs_mjx.peers.settings import settings_class


def _brax_envs():
    # Imported after envs_mjx, this package's parent, whose quiet import of MJX is then the one cached.
    from brax import envs

    return envs


def names() -> list[str]:
    return sorted(_brax_envs()._envs)


def _env_class(name: str) -> type:
    return _brax_envs()._envs[name]


def config_class(name: str) -> type[EnvConfig]:
    parameters = inspect.signature(_env_class(name).__init__).parameters.values()
    defaults = {p.name: p.default for p in parameters
                if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return settings_class(f"Brax_{name}_Config", defaults,
                          f"brax's {name!r} env: its constructor's keyword arguments, and episode_length.")


@functools.lru_cache(maxsize=8)  # the same env object for the same settings: compiled programs are reused
def make(name: str, config: EnvConfig) -> PeerEnv:
    from brax.envs.base import State as BraxState

    settings = {key: value for key, value in vars(config).items() if key != "episode_length"}
    with warnings.catch_warnings():
        # brax says, on every env it builds, that its own pipelines are unmaintained in favour of MJX.
        warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
        env = _env_class(name)(**settings)
    return PeerEnv(f"brax:{name}", env, config, BraxState, "pipeline_state", env.sys.mj_model)
