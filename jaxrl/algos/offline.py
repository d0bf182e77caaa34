"""What every offline learner (bc, diffusion) shares: its data settings, how the data is loaded, and how
its policy standardizes what it observes.

A learner's Config inherits `DataConfig`; its module exposes `load_data`,
`resolved_config` and `abstract_data` from here (see the offline contract in
jaxrl.algos). Its PolicyParams hold `obs_stats` and a `spec` naming `obs_keys`,
`obs_shapes` and the env's `state_layout`, which the two readers below use.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax

from jaxrl import normalize
from jaxrl.data import demos as demo_data
from jaxrl.data.validate import DatasetError
from jaxrl.export import state_vector

# The best checkpoint is the one that succeeds most; among equals, the one that fits held-out demos best.
BEST_BY = ("eval/success", "-val/loss")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data: str = ""  # demos "a.hdf5,lerobot:DIR" (HDF5; LeRobot); suffix :success, :corrections, :all filters
    data_filter: str = "success"  # filter of the files without a suffix
    obs_keys: tuple[str, ...] = ()  # observation entries the policy reads, in order; empty: the first file's
    val_fraction: float = 0.1  # share of episodes held out for the validation loss
    split_seed: int = 0  # which episodes are held out; fixed across training seeds so their runs compare


def validate_data(cfg: DataConfig, algo_name: str) -> None:
    """ValueError for data settings that cannot run."""
    if not cfg.data:
        raise ValueError(f"{algo_name} trains on demonstrations: pass data=FILE.hdf5 (several: "
                         f"data=a.hdf5,b.hdf5; a LeRobot dataset: data=lerobot:FOLDER); `jaxrl collect` "
                         f"writes such files")
    demo_data.parse_sources(cfg.data, cfg.data_filter)  # an unknown filter is a config error, not a crash
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")


@functools.lru_cache(maxsize=16)  # tracing an MJX reset takes seconds, and a restore asks several times
def env_obs_shapes(env) -> dict[str, tuple[int, ...]]:
    """Shape of each entry of `env`'s observation (one env, no batch axis); "state" for a flat one."""
    obs = jax.eval_shape(env.unwrapped.reset, jax.random.PRNGKey(0)).obs
    if isinstance(obs, dict):
        return {name: tuple(leaf.shape) for name, leaf in obs.items()}
    return {demo_data.FLAT_OBS_KEY: tuple(obs.shape)}


def obs_shapes(cfg: DataConfig, env) -> tuple[tuple[int, ...], ...]:
    """One step's shape of each observation entry the policy reads (cfg.obs_keys, resolved), from `env`."""
    shapes = env_obs_shapes(env)
    return tuple(shapes[key] for key in cfg.obs_keys)


def check_matches_env(demos: demo_data.DemoSet, env) -> None:
    """DatasetError when the data's observations or actions are not what `env` gives and takes."""
    shapes = env_obs_shapes(env)
    name = env.unwrapped.__class__.__name__
    for key, size in zip(demos.obs_keys, demos.obs_sizes, strict=True):
        if key not in shapes:
            raise DatasetError(f"the demonstrations' observation {key!r} is not one the env ({name}) gives; "
                               f"it gives {', '.join(shapes)}. Choose others with obs_keys=[...]")
        if math.prod(shapes[key]) != size:
            raise DatasetError(f"the demonstrations' observation {key!r} has {size} values per step but the "
                               f"env's ({name}) has {math.prod(shapes[key])}: were they collected from "
                               f"another env?")
    if demos.actions.shape[-1] != env.action_size:
        raise DatasetError(f"the demonstrations' actions have {demos.actions.shape[-1]} values per step but "
                           f"the env ({name}) takes {env.action_size}")


def load_data(cfg: DataConfig, env) -> demo_data.DemoSet:
    """The demonstrations of `cfg.data`, filtered, split and on the device; checked against `env`."""
    sources = demo_data.parse_sources(cfg.data, cfg.data_filter)
    demos = demo_data.load_demos(sources, cfg.obs_keys or None, cfg.val_fraction, cfg.split_seed)
    check_matches_env(demos, env)
    return demos


def resolved_config(cfg: DataConfig, demos: demo_data.DemoSet) -> DataConfig:
    """`cfg` naming the observation keys the data gave, so the saved run restores without the files."""
    return dataclasses.replace(cfg, obs_keys=tuple(demos.obs_keys))


def abstract_data(cfg: DataConfig, env) -> demo_data.DemoSet:
    return demo_data.abstract_demos(cfg.obs_keys, env_obs_shapes(env), env.action_size)


def standardized_obs(params, obs) -> jax.Array:
    """[..., D]: the policy's entries of an env observation, flattened and standardized (any batch axes)."""
    spec = params.spec
    return normalize.normalize(params.obs_stats, demo_data.flatten_obs(obs, spec.obs_keys, spec.obs_shapes))


def standardized_policy_vector(params, x: jax.Array) -> jax.Array:
    """[..., D]: the same from the env's flat policy vector x [..., n] (what an exported policy reads)."""
    spec = params.spec
    return normalize.normalize(params.obs_stats, state_vector.select(x, spec.state_layout, spec.obs_keys))
