"""Peers' environments under jaxrl's learners: `brax:ant`, `playground:CartpoleBalance`.

A name with a prefix resolves here instead of in `envs_mjx.registry`'s own
table: `brax:NAME` is any env of `brax.envs`, `playground:NAME` any env of
MuJoCo Playground's JAX line (package `playground` 0.2, extra `peers`). Each
becomes a `PeerEnv` (envs_mjx.peers.adapter), so our wrappers add truncation,
final observations and episode metrics to it as they do to our own envs, and
training, evaluation, checkpoints, resume, seeds and devices work unchanged.

Their settings become an EnvConfig dataclass made from the env's own
defaults (brax: the constructor's keyword arguments; Playground: its
ConfigDict), so `env.KEY=VALUE` sets them with the same checks as ours.
"""

from __future__ import annotations

import difflib
import importlib

from envs_mjx.core import EnvConfig
from envs_mjx.peers.adapter import PeerEnv

# prefix -> (module with names(), config_class(name) and make(name, config); what the prefix holds)
_PEERS = {
    "brax": ("envs_mjx.peers.brax_envs", "any env of brax.envs, brax's own physics (env.backend)"),
    "playground": ("envs_mjx.peers.playground_envs",
                   "MuJoCo Playground 0.2 (extra peers); its dm_control suite ships its models"),
}


def is_peer(name: str) -> bool:
    return ":" in name


def summaries() -> dict[str, str]:
    """`PREFIX:NAME` with what each prefix holds, for `jaxrl envs`."""
    return {f"{prefix}:NAME": summary for prefix, (_, summary) in _PEERS.items()}


def _peer(name: str):
    """(the peer's module, the env's name inside it) for `PREFIX:NAME`."""
    from envs_mjx.registry import UnknownEnvError
    prefix, _, short = name.partition(":")
    if prefix not in _PEERS:
        close = difflib.get_close_matches(prefix, _PEERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownEnvError(f"unknown env prefix {prefix!r} in {name!r}{hint} Prefixes: "
                           f"{', '.join(f'{p}:NAME' for p in _PEERS)}")
    module = importlib.import_module(_PEERS[prefix][0])
    names = module.names()
    if short not in names:
        close = difflib.get_close_matches(short, names, n=1)
        hint = f"; did you mean '{prefix}:{close[0]}'?" if close else ""
        raise UnknownEnvError(f"{prefix} has no env {short!r}{hint} Its envs: {', '.join(names)}")
    return module, short


def config_class(name: str) -> type[EnvConfig]:
    module, short = _peer(name)
    return module.config_class(short)


def make(name: str, config: EnvConfig) -> PeerEnv:
    module, short = _peer(name)
    return module.make(short, config)
