"""MJX environments for jaxrl: batched, pure, jit- and vmap-able."""

from envs_mjx import _gl  # noqa: F401  first: picks MuJoCo's offscreen GL backend (see _gl.py)
from envs_mjx.core import Env, EnvConfig, MjxEnv, State
from envs_mjx.registry import config_class, list_envs, make, make_expert, make_plain, plain_class
from envs_mjx.wrappers import wrap_for_eval, wrap_for_training

__all__ = ["Env", "EnvConfig", "MjxEnv", "State", "config_class", "list_envs", "make", "make_expert",
           "make_plain", "plain_class", "wrap_for_eval", "wrap_for_training"]
