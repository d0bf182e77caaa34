"""Demonstrations for offline learners (behavioural cloning, diffusion policy): read once, kept on the device.

`load_demos` reads several files, each with its filter ("all", "success",
"corrections"), keeps the chosen observation names flattened into one vector
per step, splits the episodes into training and validation, computes the
normalization statistics of the training samples and puts it all on the
device as a `DemoSet`. A learner then draws sample indices from `train_index`
and cuts observation histories and action chunks around them with `windows`,
a gather that runs inside its jitted train step.

Samples of all kept episodes lie end to end along the first axis. Episodes
stay whole even where only some of their steps are kept (corrections): the
steps before a corrected one are its observation history. Only `train_index`
and `val_index` leave the other steps out.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs_mjx.core import array_module
from jaxrl import normalize
from jaxrl.data.collect import FLAT_OBS_KEY  # the name under which a flat (array) observation is written
from jaxrl.data.reader import LEROBOT_PREFIX, DemoArrays, demo_succeeded, read_files
from jaxrl.data.validate import DatasetError

FILTERS = ("all", "success", "corrections")  # per-file filter names
INTERVENTION_KEYS = ("intervention", "interventions")  # per-step flags of a correction dataset, [T]
CORRECTION_SOURCES = ("human", "intervention", "correction")  # `source` attributes of a corrected demo
# How far past [-1, 1] an action may lie and still count as in range: a tool that clips its actions and
# rescales or stores them through float32 can land an ulp or two outside (float32's spacing at 1 is 1.2e-7).
ACTION_RANGE_TOLERANCE = 1e-5

__all__ = ["FILTERS", "FLAT_OBS_KEY", "DemoSet", "abstract_demos", "flatten_obs", "load_demos",
           "make_demo_set", "parse_sources", "windows"]


# --- naming the files -----------------------------------------------------------------------------

def _checked_filter(name: str, where: str) -> str:
    if name not in FILTERS:
        close = difflib.get_close_matches(name, FILTERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}: unknown filter {name!r}; the filters are {', '.join(FILTERS)}{hint}")
    return name


def parse_sources(text: str, default_filter: str) -> list[tuple[str, str]]:
    """'a.hdf5,b.hdf5:corrections' -> [("a.hdf5", default_filter), ("b.hdf5", "corrections")].

    A suffix ':all', ':success' or ':corrections' picks a file's filter. Only a suffix of letters counts
    as one, so a colon inside a path (C:\\data\\a.hdf5) is left alone. A LeRobot dataset is named
    'lerobot:FOLDER' (its filter after it: 'lerobot:FOLDER:all'). Empty items between commas are skipped.
    """
    _checked_filter(default_filter, "the default data filter")
    sources = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        prefix = LEROBOT_PREFIX if item.startswith(LEROBOT_PREFIX) else ""
        path, _, suffix = item[len(prefix):].rpartition(":")
        if path and suffix.isalpha():
            sources.append((prefix + path, _checked_filter(suffix, item)))
        else:
            sources.append((item, default_filter))
    if not sources:
        raise ValueError("no demonstration files: pass data=FILE.hdf5 (several: data=a.hdf5,b.hdf5:success)")
    return sources


# --- the data on the device ------------------------------------------------------------------------

@struct.dataclass
class DemoSet:
    """Everything on the device; what offline learners sample from. N samples, D observation values."""

    obs: jax.Array  # [N, D] float32, raw: the chosen keys, each flattened, concatenated in obs_keys order
    actions: jax.Array  # [N, A] float32
    episode_start: jax.Array  # [N] int32: index of the first sample of this sample's episode
    episode_end: jax.Array  # [N] int32: index of the last sample of this sample's episode (inclusive)
    train_index: jax.Array  # [Nt] int32: samples a training batch draws targets from (kept steps only)
    val_index: jax.Array  # [Nv] int32: the same for validation episodes (empty only if val_fraction == 0)
    obs_stats: normalize.RunningStats  # over the train_index samples' obs (raw, [D])
    action_stats: normalize.RunningStats  # over the train_index samples' actions ([A])
    obs_keys: tuple[str, ...] = struct.field(pytree_node=False)
    obs_sizes: tuple[int, ...] = struct.field(pytree_node=False)  # flattened size per key
    num_episodes: int = struct.field(pytree_node=False)  # after filtering
    num_train_episodes: int = struct.field(pytree_node=False)
    # One sample's shape per key (e.g. (3, 4) for a tactile pad): what `flatten_obs` needs to flatten an
    # env's observation with any batch axes. Empty: every key is a vector of its obs_sizes entry.
    obs_shapes: tuple[tuple[int, ...], ...] = struct.field(pytree_node=False, default=())

    @property
    def sample_shapes(self) -> tuple[tuple[int, ...], ...]:
        """One sample's shape per key, in obs_keys order (the third argument of `flatten_obs`)."""
        return self.obs_shapes or tuple((size,) for size in self.obs_sizes)

    @property
    def num_samples(self) -> int:
        return int(self.actions.shape[0])


def _episode_bounds(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the index of its episode's first and last sample."""
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return np.repeat(starts, lengths).astype(np.int32), np.repeat(ends - 1, lengths).astype(np.int32)


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> np.ndarray:
    """[E] bool, True for the episodes held out for validation: round(val_fraction * E) of them, at least
    one (when val_fraction > 0) and never all; which ones is a permutation drawn from `seed`."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    held_out = np.zeros(num_episodes, bool)
    if val_fraction == 0.0:
        return held_out
    if num_episodes < 2:
        raise DatasetError(f"val_fraction={val_fraction} holds out whole episodes, but the data has "
                           f"{num_episodes} episode after filtering: pass val_fraction=0 or more demos")
    count = min(max(round(val_fraction * num_episodes), 1), num_episodes - 1)
    held_out[np.random.default_rng(seed).permutation(num_episodes)[:count]] = True
    return held_out


def _stats(samples: np.ndarray) -> normalize.RunningStats:
    """normalize's statistics of [n, d] samples, computed on the host with float64 sums (accurate
    for millions of samples) and without an XLA compilation per dataset shape."""
    mean = samples.mean(axis=0, dtype=np.float64)
    m2 = np.square(samples - mean.astype(samples.dtype)).sum(axis=0, dtype=np.float64)
    return normalize.RunningStats(count=jnp.asarray(len(samples), jnp.float32),
                                  mean=jnp.asarray(mean, jnp.float32), m2=jnp.asarray(m2, jnp.float32))


def make_demo_set(obs, actions, episode_lengths, kept=None, *, obs_keys: Sequence[str] = (FLAT_OBS_KEY,),
                  obs_shapes: Sequence[tuple[int, ...]] | None = None, val_fraction: float = 0.1,
                  seed: int = 0) -> DemoSet:
    """A DemoSet of episodes already concatenated (what `load_demos` builds; handy for synthetic data).

    obs [N, D], actions [N, A], episode_lengths [E] summing to N, kept [N] bool: the steps targets are
    drawn from (default all; every episode needs one). obs_shapes: one sample's shape per key (default:
    one vector of all D values, for a single key).
    """
    obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
    lengths = np.asarray(episode_lengths, np.int64)
    kept = np.ones(len(actions), bool) if kept is None else np.asarray(kept, bool)
    if obs.ndim != 2 or actions.ndim != 2 or not len(obs) == len(actions) == len(kept) == lengths.sum():
        raise ValueError(f"obs {obs.shape} and actions {actions.shape} must be [N, D] and [N, A], kept "
                         f"{kept.shape} [N], with N the sum of episode_lengths ({lengths.sum()})")
    obs_shapes = [(obs.shape[1],)] if obs_shapes is None else [tuple(shape) for shape in obs_shapes]
    sizes = tuple(math.prod(shape) for shape in obs_shapes)
    if len(obs_shapes) != len(obs_keys) or sum(sizes) != obs.shape[1]:
        raise ValueError(f"obs_shapes {obs_shapes} must give one shape per key of {tuple(obs_keys)} and "
                         f"{obs.shape[1]} values in all")
    episode = np.repeat(np.arange(len(lengths)), lengths)
    if (np.bincount(episode[kept], minlength=len(lengths)) == 0).any():
        raise ValueError("every episode needs a kept step (leave out those without)")
    held_out = split_episodes(len(lengths), val_fraction, seed)
    starts, ends = _episode_bounds(lengths)
    train_index = np.flatnonzero(kept & ~held_out[episode]).astype(np.int32)  # never empty
    val_index = np.flatnonzero(kept & held_out[episode]).astype(np.int32)
    on_device = jax.device_put({"obs": obs, "actions": actions, "episode_start": starts, "episode_end": ends,
                                "train_index": train_index, "val_index": val_index})
    return DemoSet(
        **on_device, obs_stats=_stats(obs[train_index]), action_stats=_stats(actions[train_index]),
        obs_keys=tuple(obs_keys), obs_sizes=sizes, num_episodes=len(lengths),
        num_train_episodes=int((~held_out).sum()), obs_shapes=tuple(obs_shapes))


def abstract_demos(obs_keys: Sequence[str], obs_shapes: Mapping[str, tuple[int, ...]],
                   action_size: int) -> DemoSet:
    """A DemoSet of jax.ShapeDtypeStruct leaves for `jax.eval_shape` (restoring without the data files).

    obs_shapes: one sample's shape per name (at least the obs_keys), e.g. an env's observation shapes.
    The numbers of samples (N = 1, one training sample, no validation) are placeholders: what depends on
    the data's size must not be derived from an abstract DemoSet.
    """
    if not obs_keys:
        raise ValueError("abstract_demos needs the observation keys the data was loaded with")
    shapes = tuple(tuple(obs_shapes[key]) for key in obs_keys)
    sizes = tuple(math.prod(shape) for shape in shapes)

    def spec(*shape, dtype=jnp.float32):
        return jax.ShapeDtypeStruct(shape, dtype)

    def stats(size):
        return normalize.RunningStats(count=spec(), mean=spec(size), m2=spec(size))

    return DemoSet(obs=spec(1, sum(sizes)), actions=spec(1, action_size),
                   episode_start=spec(1, dtype=jnp.int32), episode_end=spec(1, dtype=jnp.int32),
                   train_index=spec(1, dtype=jnp.int32),
                   val_index=spec(0, dtype=jnp.int32), obs_stats=stats(sum(sizes)),
                   action_stats=stats(action_size), obs_keys=tuple(obs_keys), obs_sizes=sizes,
                   num_episodes=1, num_train_episodes=1, obs_shapes=shapes)


# --- reading and filtering ---------------------------------------------------------------------------

def _intervention_steps(path, demo: DemoArrays) -> np.ndarray | None:
    """[T] bool from the demo's per-step intervention flags, or None when it has none."""
    key = next((key for key in INTERVENTION_KEYS if key in demo.arrays), None)
    if key is None:
        return None
    flags, rows, where = demo.arrays[key], demo.num_samples, f"{path}: data/{demo.name}/{key}"
    if flags.ndim == 2 and flags.shape[1] == 1:  # [T, 1]: some tools keep a trailing axis
        flags = flags[:, 0]
    if flags.shape != (rows,):
        raise DatasetError(f"{where} has shape {demo.arrays[key].shape} but actions has {rows} rows; "
                           f"expected ({rows},), one flag per step")
    if not (np.issubdtype(flags.dtype, np.number) or flags.dtype == bool):
        raise DatasetError(f"{where} has dtype {flags.dtype}; expected bools or numbers")
    return flags != 0


def _source_attribute(demo: DemoArrays) -> str | None:
    source = demo.attrs.get("source")
    if isinstance(source, bytes | np.bytes_):
        source = source.decode()
    return None if source is None else str(source).strip().lower()


def corrected_steps(path, demo: DemoArrays) -> np.ndarray:
    """[T] bool: the steps of a correction dataset's demo to learn from.

    Per-step flags (`intervention`, nonzero where a human took over) win; else a `source` attribute keeps
    all steps of a human's or correction demo and none of a policy's.
    """
    flags = _intervention_steps(path, demo)
    if flags is not None:
        return flags
    source = _source_attribute(demo)
    if source is None:
        raise DatasetError(f"{path}: data/{demo.name} has neither per-step 'intervention' flags nor a "
                           f"'source' attribute; a correction dataset marks the corrected steps with "
                           f"data/demo_N/intervention ([T], nonzero where corrected) or whole demos with "
                           f"source={'|'.join(CORRECTION_SOURCES)} (others, e.g. 'policy', are left out)")
    return np.full(demo.num_samples, source in CORRECTION_SOURCES)


def _kept_steps(path, demo: DemoArrays, filter_name: str) -> np.ndarray:
    if filter_name == "corrections":
        return corrected_steps(path, demo)
    return np.ones(demo.num_samples, bool)  # "success" dropped the failures unread


def _flat_obs(demo: DemoArrays, obs_keys: Sequence[str]) -> np.ndarray:
    """[T, D] float32: the demo's observations flattened (one step's shape is everything after T)."""
    obs = {key: demo.arrays[f"obs/{key}"] for key in obs_keys}
    return np.asarray(flatten_obs(obs, obs_keys, [obs[key].shape[1:] for key in obs_keys]), np.float32)


def _check_action_range(path, demo: DemoArrays) -> None:
    """DatasetError when the demo's actions leave [-1, 1]: the learners clip their actions to it (bc's
    output, diffusion's DDIM), so demos in other units would be learnt wrongly, not refused later."""
    actions = demo.arrays["actions"]
    low, high = float(actions.min()), float(actions.max())  # a kept demo has at least one step
    if low < -1.0 - ACTION_RANGE_TOLERANCE or high > 1.0 + ACTION_RANGE_TOLERANCE:
        raise DatasetError(f"{path}: data/{demo.name}/actions range over [{low:.6g}, {high:.6g}] but actions "
                           f"must lie in [-1, 1], the env's action space; rescale the actions into [-1, 1] "
                           f"(e.g. divide by the actuators' limits) before training")


def _describe(sources) -> str:
    return ", ".join(f"{path}:{filter_name}" for path, filter_name in sources)


def load_demos(sources: list[tuple[str, str]], obs_keys: tuple[str, ...] | None = None,
               val_fraction: float = 0.1, seed: int = 0) -> DemoSet:
    """Read, check, filter, combine, split and put on the device.

    sources: (path, filter) pairs (see `parse_sources`). obs_keys None: all keys of the first file in its
    env_args order (see validate.file_obs_keys). Only obs/ and actions are needed (files of other
    robomimic-style tools may lack next_obs/, rewards, dones and the count attributes); every file must
    agree on the shapes of the chosen keys and of actions (the error names both files), and every action
    used must lie in [-1, 1] (the error names the demo and its range). Episodes are kept
    whole under "corrections" too (history windows need the preceding steps): only train_index and
    val_index leave out the steps not corrected; an episode without any corrected step is dropped. With
    val_fraction > 0 at least one episode goes to validation and at least one stays for training.
    """
    if not sources:
        raise ValueError("no demonstration files: pass data=FILE.hdf5")
    for path, filter_name in sources:
        _checked_filter(filter_name, str(path))
    filters = [filter_name for _, filter_name in sources]
    files = read_files([Path(path) for path, _ in sources], obs_keys, full=False,
                       step_keys=INTERVENTION_KEYS if "corrections" in filters else (),
                       select=[demo_succeeded if name == "success" else None for name in filters])
    obs, actions, kept = [], [], []
    for file, filter_name in zip(files, filters, strict=True):
        for demo in file.demos:
            steps = _kept_steps(file.path, demo, filter_name)
            if steps.any():
                _check_action_range(file.path, demo)
                obs.append(_flat_obs(demo, file.obs_keys))
                actions.append(demo.arrays["actions"])
                kept.append(steps)
    if not kept:
        raise DatasetError(f"no demos to learn from after filtering: {_describe(sources)}")
    reference = next(file for file in files if file.sample_shapes)
    return make_demo_set(
        np.concatenate(obs), np.concatenate(actions), [len(steps) for steps in kept], np.concatenate(kept),
        obs_keys=reference.obs_keys, val_fraction=val_fraction, seed=seed,
        obs_shapes=[reference.sample_shapes[f"obs/{key}"] for key in reference.obs_keys])


# --- observations and windows ------------------------------------------------------------------------

def _sample_ndims(obs_keys: Sequence[str], obs_ndims) -> dict[str, tuple[int, tuple | None]]:
    """key -> (axes of one sample, its shape or None) from the forms `flatten_obs` accepts."""
    if obs_ndims is None:
        return {key: (1, None) for key in obs_keys}
    if not isinstance(obs_ndims, Mapping):
        obs_ndims = dict(zip(obs_keys, obs_ndims, strict=True))
    described = {}
    for key in obs_keys:
        entry = obs_ndims[key]
        described[key] = (entry, None) if isinstance(entry, int) else (len(entry), tuple(entry))
    return described


def flatten_obs(obs, obs_keys: Sequence[str], obs_ndims=None) -> jax.Array:
    """Concatenate obs[k] for k in obs_keys, each with one sample's axes flattened, along the last axis.

    obs: a dict observation with any leading batch axes (e.g. obs["tactile_left"] [B, 3, 4] -> 12
    values), or a flat array, which is the single key's value (obs_keys == ("state",), what `jaxrl
    collect` writes a flat observation as): it passes through with its sample axes flattened.
    obs_ndims: one sample's shape per key, as a tuple aligned with obs_keys (DemoSet.sample_shapes) or a
    dict; an int entry gives only the number of axes. Shapes are checked. None: every key's sample is a
    vector (its last axis).
    NumPy inputs give a NumPy array (the host-side reader uses this), anything else a jax array.
    """
    obs_keys = tuple(obs_keys)
    if not isinstance(obs, Mapping):
        if len(obs_keys) != 1:
            raise ValueError(f"a flat observation is the value of a single key (e.g. ({FLAT_OBS_KEY!r},)); "
                             f"obs_keys names {len(obs_keys)}: {obs_keys}")
        obs = {obs_keys[0]: obs}
    missing = [key for key in obs_keys if key not in obs]
    if missing:
        raise ValueError(f"the observation has no {missing[0]!r}; it has {', '.join(obs)}")
    parts = []
    for key, (ndim, shape) in _sample_ndims(obs_keys, obs_ndims).items():
        value = obs[key]
        if value.ndim < ndim or (shape is not None and tuple(value.shape[value.ndim - ndim:]) != shape):
            raise ValueError(f"observation {key!r} has shape {tuple(value.shape)}, expected samples of shape "
                             f"{shape if shape is not None else f'{ndim} axes'} after the batch axes")
        batch = tuple(value.shape[:value.ndim - ndim])
        parts.append(value.reshape(batch + (-1,) if ndim else batch + (1,)))
    batches = {part.shape[:-1] for part in parts}
    if len(batches) > 1:
        raise ValueError(f"observations {obs_keys} have different batch axes {sorted(batches)}: pass each "
                         f"key's sample shape (DemoSet.sample_shapes) as obs_ndims")
    return array_module(parts[0]).concatenate(parts, axis=-1)


def windows(demos: DemoSet, index: jax.Array, obs_history: int, action_horizon: int):
    """-> (obs [B, obs_history, D], actions [B, action_horizon, A], action_valid [B, action_horizon] bool).

    For target sample t of episode [s, e]: obs rows t-H+1..t, clamped to >= s (the episode's first obs
    repeats before its start); action rows t..t+K-1, clamped to <= e (its last action repeats past the
    end) and not valid there. One gather, jit-able (obs_history and action_horizon static).
    """
    if obs_history < 1 or action_horizon < 1:
        raise ValueError(f"obs_history and action_horizon must be >= 1, got {obs_history}, {action_horizon}")
    index = jnp.asarray(index, jnp.int32)
    start, end = demos.episode_start[index][:, None], demos.episode_end[index][:, None]
    obs_rows = jnp.maximum(index[:, None] + jnp.arange(1 - obs_history, 1, dtype=jnp.int32), start)
    action_rows = index[:, None] + jnp.arange(action_horizon, dtype=jnp.int32)
    action_valid = action_rows <= end
    return demos.obs[obs_rows], demos.actions[jnp.minimum(action_rows, end)], action_valid
