"""Read demonstration files into one `Dataset` of concatenated samples.

Samples of every demo of every file lie end to end along the first axis;
`episode_starts` and `episode_lengths` say where each demo is. The whole
dataset goes onto the accelerator when it fits, so a learner samples
minibatches without host transfers.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import struct

from jaxrl.data.validate import (
    DatasetError,
    check_finite,
    check_structure,
    demo_arrays,
    file_obs_keys,
    open_file,
)

DEVICE_MEMORY_SHARE = 0.5  # at most this share of the accelerator's free memory; the rest is the learner's


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


def _sample_shapes(demo, keys) -> dict[str, tuple]:
    shapes = {f"obs/{key}": demo["obs"][key].shape[1:] for key in keys}
    shapes["actions"] = demo["actions"].shape[1:]
    return shapes


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
    """All demos of the files `paths` (one path or a list), checked, as one Dataset.

    obs_keys: observation names to keep (default: all of the first file's).
    only_success: keep only demos whose `success` attribute is true.
    on_device: put the arrays on the JAX device; None: when they fit (else they stay numpy).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("load needs at least one file")
    keys = None if obs_keys is None else list(obs_keys)
    parts: dict[str, list[np.ndarray]] = {}
    lengths, success = [], []
    reference = None  # (path, sample shapes) of the first file with demos: the others must agree
    for path in paths:
        with open_file(path) as file:
            names = check_structure(file, path)
            if not names:
                continue
            available = file_obs_keys(file, names[0])
            keys = available if keys is None else keys
            missing = [key for key in keys if key not in available]
            if missing:
                raise DatasetError(f"{path} has no observation {missing[0]!r}; its observation keys are: "
                                   f"{', '.join(available)}")
            shapes = _sample_shapes(file["data"][names[0]], keys)
            if reference is None:
                reference = (path, shapes)
            for key, shape in shapes.items():
                if shape != reference[1][key]:
                    raise DatasetError(f"{path}: {key} has samples of shape {shape} but {reference[0]}'s "
                                       f"have {reference[1][key]}")
            for name in names:
                demo = file["data"][name]
                succeeded = demo.attrs.get("success")
                if only_success and succeeded is None:
                    raise DatasetError(f"{path}: data/{name} has no 'success' attribute, which only_success "
                                       f"needs")
                if only_success and not succeeded:
                    continue
                for key, values in demo_arrays(demo, keys).items():
                    check_finite(values, f"data/{name}/{key}", path)
                    parts.setdefault(key, []).append(values)
                lengths.append(demo["actions"].shape[0])
                success.append(bool(succeeded))
    if not lengths:
        kind = "successful demos" if only_success else "demos"
        raise DatasetError(f"no {kind} in {', '.join(str(p) for p in paths)}")

    def joined(key, dtype=np.float32):
        return np.concatenate(parts[key]).astype(dtype, copy=False)

    lengths = np.asarray(lengths, np.int32)
    dataset = Dataset(
        obs={key: joined(f"obs/{key}") for key in keys},
        next_obs={key: joined(f"next_obs/{key}") for key in keys},
        actions=joined("actions"), rewards=joined("rewards"), dones=joined("dones"),
        episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32),
        episode_lengths=lengths, episode_success=np.asarray(success, bool))
    nbytes = sum(leaf.nbytes for leaf in jax.tree.leaves(dataset))
    if on_device or (on_device is None and fits_on_device(nbytes, _device_memory_stats())):
        return jax.device_put(dataset)
    return dataset
