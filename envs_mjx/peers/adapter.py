"""`PeerEnv`: a brax or Playground env driven through our Env contract (envs_mjx.core).

Their State types hold the same fields as ours (obs, reward, done, metrics,
info) plus the physics state, which brax calls `pipeline_state` and
Playground `data`; ours calls it `data`. Each step rebuilds their State from
ours, lets their env step it, and reads ours back, so their code runs exactly
as their own trainers run it. Their envs neither truncate episodes nor reset
themselves: our wrappers do both, as for our own envs.

Our `State.data` holds their physics state inside a `PeerPhysics`, which
answers what our code asks of an mjx.Data: `where` (the auto-reset's merge)
and `qpos` (the poses videos render; brax's own backends call it `q`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
from flax import struct

from envs_mjx.core import Env, EnvConfig, State


@struct.dataclass
class PeerPhysics:
    inner: Any  # brax's pipeline state or Playground's mjx.Data

    def where(self, condition: jax.Array, other: PeerPhysics) -> PeerPhysics:
        """`other` where `condition` holds, else self (one env's state, under vmap)."""
        return jax.tree.map(lambda new, old: jnp.where(condition, new, old), other, self)

    @property
    def qpos(self) -> jax.Array:
        return self.inner.qpos if hasattr(self.inner, "qpos") else self.inner.q


class PeerEnv(Env):
    def __init__(self, name: str, peer_env, config: EnvConfig, state_class: type, physics_field: str,
                 mj_model: mujoco.MjModel):
        """`peer_env` steps `state_class` states whose physics state is the field `physics_field`."""
        self.name, self.peer_env, self.config = name, peer_env, config
        self._state_class, self._physics_field = state_class, physics_field
        self.mj_model = mj_model  # for videos (jaxrl.video); there is no plain-MuJoCo twin

    render_camera = None

    def episode_mj_model(self, state: State) -> mujoco.MjModel:
        return self.mj_model

    def _ours(self, theirs) -> State:
        return State(data=PeerPhysics(getattr(theirs, self._physics_field)), obs=theirs.obs,
                     reward=theirs.reward, done=theirs.done, metrics=dict(theirs.metrics),
                     info=dict(theirs.info))

    def reset(self, key: jax.Array) -> State:
        return self._ours(self.peer_env.reset(key))

    def step(self, state: State, action: jax.Array) -> State:
        # Fresh dicts: their envs may update metrics and info in place.
        theirs = self._state_class(**{self._physics_field: state.data.inner}, obs=state.obs,
                                   reward=state.reward, done=state.done, metrics=dict(state.metrics),
                                   info=dict(state.info))
        return self._ours(self.peer_env.step(theirs, action))

    @property
    def action_size(self) -> int:
        return int(self.peer_env.action_size)

    @property
    def dt(self) -> float:
        return float(self.peer_env.dt)

    def __repr__(self) -> str:
        return f"PeerEnv({self.name})"
