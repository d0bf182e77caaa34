"""Read demonstration files: `load` here and `demos.load_demos` both read through `read_files`.

`read_files` checks each file (fully, or only what training reads), reads the
chosen observation names of the demos a selector keeps, checks the values are
finite and that all files agree on sample shapes. `load` concatenates the
result into one `Dataset`: samples of every demo of every file lie end to end
along the first axis; `episode_starts` and `episode_lengths` say where each
demo is. The whole dataset goes onto the accelerator when it fits, so a
learner samples minibatches without host transfers.

A source is an HDF5 file, or a LeRobot dataset: `lerobot:FOLDER`, or a folder
(`lerobot_folder`), which `jaxrl.data.lerobot` reads into the same demos.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import numpy as np
from flax import struct

from jaxrl.data.validate import (
    DatasetError,
    check_finite,
    check_structure,
    dataset_at,
    demo_arrays,
    file_obs_keys,
    open_file,
    read_env_args,
)

LEROBOT_PREFIX = "lerobot:"
DEVICE_MEMORY_SHARE = 0.5  # at most this share of the accelerator's free memory; the rest is the learner's

# select(path, demo name, demo attributes) -> whether to read that demo; it may raise DatasetError.
DemoSelector = Callable[[Path, str, Mapping], bool]


@dataclasses.dataclass
class DemoArrays:
    """One demo as read: arrays keyed by their path in the demo ("obs/state", "actions", ...)."""

    name: str  # "demo_3"
    arrays: dict[str, np.ndarray]
    attrs: dict  # the demo's attributes (num_samples, success, source ...)

    @property
    def num_samples(self) -> int:
        return int(self.arrays["actions"].shape[0])


@dataclasses.dataclass
class FileDemos:
    """The demos read from one file, in the file's order."""

    path: Path
    obs_keys: list[str]  # the observation names read, in order ([] for a file without demos)
    sample_shapes: dict[str, tuple]  # "actions", "obs/<name>": the shape of one sample ({} without demos)
    demos: list[DemoArrays]


@struct.dataclass
class Dataset:
    """Demos concatenated: N samples in E episodes (arrays are jax arrays on the device, or numpy)."""

    obs: dict  # name -> [N, ...] float32
    next_obs: dict  # name -> [N, ...] float32, the observation after each action
    actions: jax.Array | np.ndarray  # [N, A] float32 in [-1, 1]
    rewards: jax.Array | np.ndarray  # [N] float32
    dones: jax.Array | np.ndarray  # [N] float32, 1 at the last step of an episode the env ended
    episode_starts: jax.Array | np.ndarray  # [E] int32, index of each episode's first sample
    episode_lengths: jax.Array | np.ndarray  # [E] int32
    episode_success: jax.Array | np.ndarray  # [E] bool (False where the file does not say)

    @property
    def num_samples(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])


def demo_succeeded(path, name: str, attrs: Mapping) -> bool:
    """The demo's `success` attribute; DatasetError when it has none (keeping successes needs it)."""
    if "success" not in attrs:
        raise DatasetError(f"{path}: data/{name} has no 'success' attribute, which keeping only successful "
                           f"demos needs (the filter 'all' keeps every demo)")
    return bool(attrs["success"])


def lerobot_folder(source) -> Path | None:
    """The folder of a LeRobot dataset named `lerobot:FOLDER`, or as a folder; None for a file (HDF5)."""
    text = str(source)
    if text.startswith(LEROBOT_PREFIX):
        return Path(text[len(LEROBOT_PREFIX):])
    return Path(text) if Path(text).is_dir() else None


def recorded_env_args(source) -> dict | None:
    """The env_args (env_name, env_config, control_dt, obs_keys) an HDF5 file or a LeRobot dataset keeps."""
    folder = lerobot_folder(source)
    if folder is not None:
        from jaxrl.data import lerobot  # imports this module

        return lerobot.read_env_args(folder)
    with open_file(source) as file:
        return read_env_args(file, source)


def read_file(path, obs_keys=None, *, full: bool = True, step_keys: Sequence[str] = (),
              select: DemoSelector | None = None) -> FileDemos:
    """The demos of one file, checked, with the observation names `obs_keys` (None: all, in env_args order).

    full: check and read the whole layout (next_obs, rewards, dones too); else only obs/ and actions.
    step_keys: further per-step arrays to read from the demos that have them (e.g. "intervention").
    select: which demos to read (default all); the others are checked but not read.
    A LeRobot dataset (see `lerobot_folder`) gives its episodes the same way (jaxrl.data.lerobot).
    """
    folder = lerobot_folder(path)
    if folder is not None:
        from jaxrl.data import lerobot  # imports this module

        return lerobot.read_dataset(folder, obs_keys, full=full, step_keys=step_keys, select=select)
    path = Path(path)
    with open_file(path) as file:
        names = check_structure(file, path, obs_keys, full)
        if not names:
            return FileDemos(path, list(obs_keys or []), {}, [])
        keys = list(obs_keys) if obs_keys is not None else file_obs_keys(file, names[0])
        first = file["data"][names[0]]
        shapes = {"actions": first["actions"].shape[1:]}
        shapes.update({f"obs/{key}": first["obs"][key].shape[1:] for key in keys})
        demos = []
        for name in names:
            group = file["data"][name]
            attrs = dict(group.attrs)
            if select is not None and not select(path, name, attrs):
                continue
            arrays = demo_arrays(group, keys, full)
            arrays.update({key: dataset_at(group, key, path)[()] for key in step_keys if key in group})
            for key, values in arrays.items():
                check_finite(values, f"data/{name}/{key}", path)
            demos.append(DemoArrays(name, arrays, attrs))
    return FileDemos(path, keys, shapes, demos)


def _check_same_shapes(reference: FileDemos, other: FileDemos) -> None:
    for key, shape in other.sample_shapes.items():
        if shape != reference.sample_shapes[key]:
            raise DatasetError(f"{other.path}: {key} has samples of shape {shape} but {reference.path}'s "
                               f"have {reference.sample_shapes[key]}")


def read_files(paths, obs_keys=None, *, full: bool = True, step_keys: Sequence[str] = (),
               select: Sequence[DemoSelector | None] | None = None) -> list[FileDemos]:
    """`read_file` of each of `paths` (select: one selector per path); the files must agree on shapes.

    obs_keys None: all names of the first file with demos; the other files must have them too.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("reading demos needs at least one file")
    select = [None] * len(paths) if select is None else list(select)
    keys = None if obs_keys is None else list(obs_keys)
    files, reference = [], None  # reference: the first file with demos; the others must agree with it
    for path, selector in zip(paths, select, strict=True):
        part = read_file(path, keys, full=full, step_keys=step_keys, select=selector)
        if part.sample_shapes:
            keys = part.obs_keys
            reference = reference or part
            _check_same_shapes(reference, part)
        files.append(part)
    return files


def _device_memory_stats() -> dict | None:
    try:
        return jax.devices()[0].memory_stats()
    except (NotImplementedError, RuntimeError):  # backends without memory statistics
        return None


def fits_on_device(nbytes: int, stats: dict | None) -> bool:
    """Whether `nbytes` fit in the memory that `stats` (a device's memory_stats()) reports; True without."""
    if not stats or "bytes_limit" not in stats:
        return True  # the CPU backend reports none: its "device" memory is the host's
    free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    return nbytes <= DEVICE_MEMORY_SHARE * free


def load(paths, obs_keys=None, only_success: bool = False, on_device: bool | None = None) -> Dataset:
    """All demos of the files `paths` (one path or a list), fully checked, as one Dataset.

    obs_keys: observation names to keep (default: all of the first file's).
    only_success: keep only demos whose `success` attribute is true.
    on_device: put the arrays on the JAX device; None: when they fit (else they stay numpy).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    selector = demo_succeeded if only_success else None
    files = read_files(paths, obs_keys, select=[selector] * len(paths))
    demos = [demo for file in files for demo in file.demos]
    if not demos:
        kind = "successful demos" if only_success else "demos"
        raise DatasetError(f"no {kind} in {', '.join(str(p) for p in paths)}")
    keys = next(file.obs_keys for file in files if file.sample_shapes)

    def joined(key, dtype=np.float32):
        return np.concatenate([demo.arrays[key] for demo in demos]).astype(dtype, copy=False)

    lengths = np.asarray([demo.num_samples for demo in demos], np.int32)
    dataset = Dataset(
        obs={key: joined(f"obs/{key}") for key in keys},
        next_obs={key: joined(f"next_obs/{key}") for key in keys},
        actions=joined("actions"), rewards=joined("rewards"), dones=joined("dones"),
        episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32),
        episode_lengths=lengths,
        episode_success=np.asarray([bool(demo.attrs.get("success", False)) for demo in demos], bool))
    nbytes = sum(leaf.nbytes for leaf in jax.tree.leaves(dataset))
    if on_device or (on_device is None and fits_on_device(nbytes, _device_memory_stats())):
        return jax.device_put(dataset)
    return dataset
