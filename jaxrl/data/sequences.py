"""Recorded episodes as the step sequences a world model learns from, kept on the device.

A world model reads what Dreamer's replay holds (jaxrl.algos.dreamer): per
step, the observation arrived at, the action that led there, the reward
received on arriving, whether the episode terminated there, and whether the
step came from its episode's first. An HDF5 demo of T steps gives T such steps:
its next_obs, actions and rewards row by row, is_first at its first row, and
is_terminal from its `terminals` (1 where the env ended the episode, not a
time limit, as `jaxrl collect` writes them; D4RL's name). A file without
`terminals` has no terminations: robomimic's `dones` also mark time limits and
successes, which do not end the dynamics.

The episodes are split into training and validation (whole episodes, as
jaxrl.data.demos does) and each side laid end to end as one stream: a chunk
of consecutive steps may cross from one episode into the next, and its
is_first flags say where the next one starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

import envs_mjx
from envs_mjx.registry import UnknownEnvError
from jaxrl import config
from jaxrl.algos.actor import select
from jaxrl.data.demos import parse_sources, split_episodes
from jaxrl.data.reader import DemoArrays, demo_succeeded, read_files, recorded_env_args
from jaxrl.data.validate import DatasetError

TERMINALS_KEY = "terminals"  # per step, [T]: 1 where the env ended the episode (not a time limit)
STEP_FIELDS = ("obs", "action", "reward", "is_first", "is_terminal")


@struct.dataclass
class SequenceSet:
    """Training and validation steps, each a dict of STEP_FIELDS arrays with a leading step axis."""

    train: dict  # obs [Nt, *obs_shape] (as recorded: float32, or uint8 images), action [Nt, A], ... [Nt]
    val: dict  # the same for the held-out episodes (Nv may be 0)
    num_episodes: int = struct.field(pytree_node=False)
    num_train_episodes: int = struct.field(pytree_node=False)


def _episode_steps(path, demo: DemoArrays, obs_key: str, obs_dtype) -> dict[str, np.ndarray]:
    """The demo's steps as a world model reads them; DatasetError when it lacks what that needs."""
    for key in (f"next_obs/{obs_key}", "rewards"):
        if key not in demo.arrays:
            raise DatasetError(f"{path}: data/{demo.name} has no '{key}'; a world model learns from "
                               f"next_obs/ and rewards as well as actions (`jaxrl collect` writes them all)")
    steps = len(demo.arrays["actions"])
    is_first = np.zeros(steps, np.float32)
    is_first[0] = 1.0
    terminals = demo.arrays.get(TERMINALS_KEY, np.zeros(steps))
    return {"obs": demo.arrays[f"next_obs/{obs_key}"].astype(obs_dtype),
            "action": demo.arrays["actions"].astype(np.float32),
            "reward": demo.arrays["rewards"].reshape(steps).astype(np.float32),
            "is_first": is_first, "is_terminal": (terminals.reshape(steps) != 0).astype(np.float32)}


def _stream(episodes: list[dict[str, np.ndarray]], like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The episodes end to end; with none, empty arrays shaped like `like`'s steps."""
    if not episodes:
        return {name: np.zeros((0, *values.shape[1:]), values.dtype) for name, values in like.items()}
    return {name: np.concatenate([episode[name] for episode in episodes]) for name in STEP_FIELDS}


def load_sequences(data: str, data_filter: str, obs_key: str, val_fraction: float, split_seed: int,
                   obs_dtype=np.float32) -> SequenceSet:
    """The episodes of `data` ("a.hdf5,b.hdf5:success", see demos.parse_sources), split by episode with
    `split_seed`, on the device; observations as `obs_dtype` (the env's: uint8 for images, which files
    may hold as floats)."""
    sources = parse_sources(data, data_filter)
    filters = [name for _, name in sources]
    if "corrections" in filters:
        raise ValueError("a world model learns from whole episodes: the 'corrections' filter is for "
                         "policies learning from demonstrations (use 'all' or 'success')")
    files = read_files([path for path, _ in sources], [obs_key], full=False,
                       step_keys=(f"next_obs/{obs_key}", "rewards", TERMINALS_KEY),
                       select=[demo_succeeded if name == "success" else None for name in filters])
    episodes = [_episode_steps(file.path, demo, obs_key, obs_dtype) for file in files for demo in file.demos]
    if not episodes:
        raise DatasetError(f"no episodes to learn from after filtering: {data}")
    held_out = split_episodes(len(episodes), val_fraction, split_seed)
    train = _stream([e for e, out in zip(episodes, held_out, strict=True) if not out], episodes[0])
    val = _stream([e for e, out in zip(episodes, held_out, strict=True) if out], episodes[0])
    return SequenceSet(train=jax.device_put(train), val=jax.device_put(val), num_episodes=len(episodes),
                       num_train_episodes=int((~held_out).sum()))


def check_recorded_env(data: str, env) -> None:
    """DatasetError when a file of `data` was recorded in another registered env than `env`, or with env
    settings (its env_args' env_config) other than env's in more than the episode length: its steps would
    be another env's dynamics."""
    settings = config.as_dict(env.unwrapped.config)
    for path, _ in parse_sources(data, "all"):
        env_args = recorded_env_args(path) or {}
        name, recorded = env_args.get("env_name"), env_args.get("env_config") or {}
        try:
            another_env = envs_mjx.config_class(name) is not type(env.unwrapped.config)
        except (UnknownEnvError, TypeError):  # no name, or an env registered elsewhere: the settings tell
            another_env = False
        if another_env:
            raise DatasetError(f"{path} was recorded in {name}, another env than this run's: record this "
                               f"env's episodes (`jaxrl collect ENV ...`)")
        differing = [key for key, value in recorded.items()
                     if key != "episode_length" and key in settings and settings[key] != value]
        if differing:
            theirs = " ".join(f"env.{key}={recorded[key]}" for key in differing)
            ours = ", ".join(f"env.{key}={settings[key]}" for key in differing)
            raise DatasetError(f"{path} was recorded with {theirs}, but this run's env has {ours}: train "
                               f"with {theirs}")


def env_obs(env, obs_key: str) -> jax.ShapeDtypeStruct:
    """One observation of `env` under `obs_key` (shape and dtype); DatasetError when it has none."""
    obs = jax.eval_shape(env.unwrapped.reset, jax.random.PRNGKey(0)).obs
    if isinstance(obs, dict) and obs_key not in obs:
        raise DatasetError(f"the env has no observation {obs_key!r}; it has {', '.join(obs)}: set "
                           f"obs_key to one of them")
    return select(obs, obs_key)


def load_for_env(data: str, data_filter: str, obs_key: str, val_fraction: float, split_seed: int,
                 env) -> SequenceSet:
    """load_sequences of episodes recorded in `env` (unwrapped or not), observations as the env's dtype;
    DatasetError when they were recorded with other env settings or other observation or action shapes."""
    expected = env_obs(env, obs_key)
    check_recorded_env(data, env)
    loaded = load_sequences(data, data_filter, obs_key, val_fraction, split_seed, expected.dtype)
    name = env.unwrapped.__class__.__name__
    obs_shape, action_size = loaded.train["obs"].shape[1:], loaded.train["action"].shape[-1]
    if obs_shape != expected.shape or action_size != env.action_size:
        raise DatasetError(f"the episodes' {obs_key!r} observations are {obs_shape} and their actions "
                           f"{action_size} values, but the env ({name}) gives {expected.shape} and takes "
                           f"{env.action_size}: were they recorded in another env or with other settings?")
    return loaded


def abstract_sequences(obs_shape: Sequence[int], obs_dtype, action_size: int) -> SequenceSet:
    """A SequenceSet of jax.ShapeDtypeStruct leaves (one training step, no validation): what restoring a
    run needs without its data files. Nothing that depends on the data's size may be derived from it."""
    def steps(count: int) -> dict:
        spec = jax.ShapeDtypeStruct
        return {"obs": spec((count, *obs_shape), obs_dtype),
                "action": spec((count, action_size), jnp.float32),
                **{name: spec((count,), jnp.float32) for name in ("reward", "is_first", "is_terminal")}}

    return SequenceSet(train=steps(1), val=steps(0), num_episodes=1, num_train_episodes=1)


def num_steps(steps: dict) -> int:
    return int(steps["action"].shape[0])


def sample_chunks(steps: dict, key: jax.Array, batch_size: int, length: int) -> dict:
    """`batch_size` runs of `length` consecutive steps (leaves [batch_size, length, ...]), each starting
    at a step drawn uniformly from those with `length` steps after them in the stream."""
    starts = jax.random.randint(key, (batch_size,), 0, num_steps(steps) - length + 1)
    rows = starts[:, None] + jnp.arange(length, dtype=jnp.int32)
    return jax.tree.map(lambda values: values[rows], steps)


def split_chunks(steps: dict, length: int) -> dict:
    """The stream cut into its whole runs of `length` steps, in order (leaves [count, length, ...]); the
    steps after the last whole run are left out."""
    count = num_steps(steps) // length
    return jax.tree.map(lambda values: values[:count * length].reshape(count, length, *values.shape[1:]),
                        steps)
