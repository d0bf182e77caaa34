"""A peer env's own defaults as an EnvConfig dataclass, so `env.KEY=VALUE` checks and sets them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

from envs_mjx.core import EnvConfig


def _setting_type(value):
    """The type `jaxrl.config` coerces a setting to, from its default; None for what a config cannot hold."""
    for simple in (bool, int, float, str):  # bool first: True is an int too
        if type(value) is simple:
            return simple
    if isinstance(value, tuple) and value and all(type(v) in (int, float) for v in value):
        return tuple[float, ...]
    return None


@functools.cache
def _cached(class_name: str, items: tuple, doc: str) -> type[EnvConfig]:
    fields = [(key, kind, dataclasses.field(default=value)) for key, value, kind in items]
    cls = dataclasses.make_dataclass(class_name, fields, bases=(EnvConfig,), frozen=True,
                                     namespace={"__doc__": doc})
    cls.__module__ = __name__
    return cls


def settings_class(class_name: str, defaults: Mapping, doc: str) -> type[EnvConfig]:
    """A frozen EnvConfig subclass with a field per default of a simple type (others stay the peer's).

    The same name and defaults give the same class, so configs compare and hash
    alike across calls (a resumed run's config is the class of a fresh one).
    """
    items = []
    for key, value in defaults.items():
        kind = _setting_type(value)
        if kind is not None:
            items.append((key, float(value) if kind is float else value, kind))
    return _cached(class_name, tuple(items), doc)
