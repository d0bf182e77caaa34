"""The flat vector an exported policy reads, and the observation entries inside it.

An exported policy's input is one float vector per env: obs["state"] of a dict
observation, the observation itself otherwise, in the slices `env.state_layout`
names. A policy that reads named entries of a dict observation (an offline
learner reads the `obs_keys` its demo files hold, e.g. in alphabetical order)
takes them out of that vector with `select`, in its own order. The entries'
values are the same either way: the env builds "state" by concatenating each
entry flattened (row-major), as `jaxrl.data.demos.flatten_obs` flattens them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxrl.export import ExportError

WHOLE_VECTOR_KEY = "state"  # the key that names the whole vector (a flat observation is stored under it)

Layout = tuple[tuple[str, int], ...]


def policy_input(obs):
    """The flat vector a policy reads (env.state_layout): obs["state"] of dict observations."""
    return obs[WHOLE_VECTOR_KEY] if isinstance(obs, Mapping) else obs


def layout_of(env) -> Layout:
    """`env.state_layout` as (name, size) pairs; ("obs", size) for an env that names no slices."""
    env = env.unwrapped
    layout = getattr(env, "state_layout", None)
    if layout is None:  # a stand-in env with only `reset` (tests): its flat observation or obs["state"]
        obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
        flat = obs[WHOLE_VECTOR_KEY] if isinstance(obs, Mapping) else obs
        layout = (("obs", math.prod(flat.shape)),)
    return tuple((str(name), int(size)) for name, size in layout)


def check_readable(keys: Sequence[str], layout: Layout) -> None:
    """ExportError unless every one of `keys` is a slice of the vector (or the whole vector)."""
    names = {name for name, _ in layout} | {WHOLE_VECTOR_KEY}
    missing = [key for key in keys if key not in names]
    if missing:
        slices = " ".join(f"{name}[{size}]" for name, size in layout)
        raise ExportError(f"the policy reads {', '.join(map(repr, missing))}, which the env's policy vector "
                          f"does not hold (it holds {slices}); a deployment could not feed it. Train on "
                          f"entries of that vector (obs_keys=[...]) to export")


def select(x: jax.Array, layout: Layout, keys: Sequence[str]) -> jax.Array:
    """[..., sum of the keys' sizes]: the entries `keys` of x [..., n], flattened, concatenated in order.

    Static slices only, so it traces with a symbolic batch size (jax2onnx).
    """
    check_readable(keys, layout)
    starts, start = {}, 0
    for name, size in layout:
        starts[name] = (start, start + size)
        start += size
    if x.shape[-1] != start:
        raise ValueError(f"the policy vector has {x.shape[-1]} values, its layout {start}")
    parts = [x if key == WHOLE_VECTOR_KEY else x[..., starts[key][0]:starts[key][1]] for key in keys]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
