"""Checks of a demonstration file; every failure names the file, the demo and the key.

`check_structure` reads only metadata (names, shapes, dtypes, attributes), so
it is cheap; `check_finite` is applied to arrays as the reader and `inspect`
load them, so a file is read once. `validate` does both for a whole file.

Two levels: `full` (the default; `validate`, `inspect`, `reader.load`) demands
the whole robomimic layout this package writes; without it only what an
offline learner reads is checked (obs/ with the chosen names, and actions), so
files of other robomimic-style tools that leave out next_obs/, rewards, dones
or the sample-count attributes still train.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

DEMO_KEYS = ("obs", "next_obs", "actions", "rewards", "dones")
TRAINING_KEYS = ("obs", "actions")  # all an offline learner reads; robomimic-style tools may write no more
OBS_GROUPS = ("obs", "next_obs")
DEMO_NAME = re.compile(r"demo_(\d+)")


class DatasetError(ValueError):
    """A demonstration file that cannot be used as it is; the message says where it is wrong."""


def open_file(path) -> h5py.File:
    """`path` opened for reading, or DatasetError when it is missing or not HDF5."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as error:  # h5py's words for a truncated file or a different format
        raise DatasetError(f"{path}: not a readable HDF5 file ({error})") from None


def demo_index(name: str) -> int:
    return int(DEMO_NAME.fullmatch(name).group(1))


def demo_names(file: h5py.File, label) -> list[str]:
    """The demos under data/, in numeric order (demo_2 before demo_10)."""
    if "data" not in file or not isinstance(file["data"], h5py.Group):
        raise DatasetError(f"{label}: no 'data' group; a robomimic file holds data/demo_0, data/demo_1, ...")
    for name in file["data"]:
        if DEMO_NAME.fullmatch(name) is None or not isinstance(file["data"][name], h5py.Group):
            raise DatasetError(f"{label}: data/{name} is not a demo (expected groups named data/demo_<N>)")
    return sorted(file["data"], key=demo_index)


def read_env_args(file: h5py.File, label) -> dict | None:
    """data.attrs["env_args"] parsed, or None when the file has none."""
    text = file["data"].attrs.get("env_args")
    if text is None:
        return None
    try:
        env_args = json.loads(text)
    except (TypeError, ValueError):
        env_args = None
    if not isinstance(env_args, dict):
        raise DatasetError(f"{label}: data attribute env_args is not a JSON object: {text!r:.80}")
    return env_args


def file_obs_keys(file, first_demo: str) -> list[str]:
    """A file's observation names: env_args' order when it lists them, else sorted."""
    names = sorted(file["data"][first_demo]["obs"])
    listed = (read_env_args(file, file.filename) or {}).get("obs_keys") or []
    return list(listed) if sorted(listed) == names else names


def _is_float(dataset: h5py.Dataset) -> bool:
    return np.issubdtype(dataset.dtype, np.floating)


def dataset_at(demo: h5py.Group, key: str, label) -> h5py.Dataset:
    """demo[key], or DatasetError naming it when it is a group rather than an array."""
    if not isinstance(demo[key], h5py.Dataset):
        raise DatasetError(f"{label}: {demo.name[1:]}/{key} is a group; expected an array")
    return demo[key]


def _check_keys_present(demo: h5py.Group, label, full: bool) -> None:
    where = demo.name[1:]  # "data/demo_3"
    required = DEMO_KEYS if full else TRAINING_KEYS
    for key in required:
        if key not in demo:
            needs = ("a robomimic demo needs obs/, next_obs/, actions, rewards and dones" if full
                     else "training needs obs/ and actions")
            raise DatasetError(f"{label}: {where} has no '{key}'; {needs}")


def _check_actions(demo: h5py.Group, label, full: bool) -> int:
    """Rows of the demo's actions: its number of samples (checked against num_samples when it has one)."""
    where = demo.name[1:]
    actions = dataset_at(demo, "actions", label)
    if actions.ndim != 2 or not _is_float(actions):
        raise DatasetError(f"{label}: {where}/actions must be a float array [T, action_size], got "
                           f"{actions.dtype} of shape {actions.shape}")
    rows = actions.shape[0]
    if rows == 0:
        raise DatasetError(f"{label}: {where} has no samples (actions has 0 rows)")
    if "num_samples" not in demo.attrs:
        if full:  # other tools' files may leave it out; the actions' rows say the same
            raise DatasetError(f"{label}: {where} has no 'num_samples' attribute")
    elif int(demo.attrs["num_samples"]) != rows:
        raise DatasetError(f"{label}: {where} says num_samples={int(demo.attrs['num_samples'])} but "
                           f"actions has {rows} rows")
    return rows


def _check_rewards_and_dones(demo: h5py.Group, label, rows: int) -> None:
    where = demo.name[1:]
    for key in ("rewards", "dones"):
        array = dataset_at(demo, key, label)
        if array.shape != (rows,):
            raise DatasetError(f"{label}: {where}/{key} has shape {array.shape}, expected ({rows},) like "
                               f"actions' rows")
    if not _is_float(demo["rewards"]):
        raise DatasetError(f"{label}: {where}/rewards has dtype {demo['rewards'].dtype}; expected floats")
    if not np.issubdtype(demo["dones"].dtype, np.number) and demo["dones"].dtype != bool:
        raise DatasetError(f"{label}: {where}/dones has dtype {demo['dones'].dtype}; expected numbers")


def _checked_obs_keys(demo: h5py.Group, label, obs_keys, full: bool) -> list[str]:
    """The observation names to check in `demo`: all of them (full), else `obs_keys` (None: all).

    Each of `obs_keys` must be there in either case: they are the ones to be read.
    """
    where = demo.name[1:]
    groups = OBS_GROUPS if full else ("obs",)
    for group in groups:
        if not isinstance(demo[group], h5py.Group):
            raise DatasetError(f"{label}: {where}/{group} must be a group of arrays, one per observation")
        if len(demo[group]) == 0:
            raise DatasetError(f"{label}: {where}/{group} holds no observations")
    if full and set(demo["obs"]) != set(demo["next_obs"]):
        raise DatasetError(f"{label}: {where}/obs has keys {sorted(demo['obs'])} but next_obs has "
                           f"{sorted(demo['next_obs'])}")
    for key in obs_keys or ():
        if key not in demo["obs"]:
            raise DatasetError(f"{label}: {where} has no observation {key!r}; its observation keys are: "
                               f"{', '.join(sorted(demo['obs']))}")
    return list(demo["obs"]) if full or obs_keys is None else list(obs_keys)


def _check_observation(array: h5py.Dataset, path: str, label, rows: int, full: bool) -> None:
    # The training read also takes integers and booleans (robomimic keeps images as uint8) and casts them.
    castable = np.issubdtype(array.dtype, np.number) or array.dtype == bool
    if not (_is_float(array) or (castable and not full)):
        kinds = "floats" if full else "numbers"
        raise DatasetError(f"{label}: {path} has dtype {array.dtype}; observations must be {kinds}")
    if array.ndim == 0 or array.shape[0] != rows:
        got = array.shape[0] if array.ndim else 0
        raise DatasetError(f"{label}: {path} has {got} rows but actions has {rows}")


def _check_same_shapes(where: str, label, shapes: dict, reference: dict) -> None:
    """Every demo's samples are shaped like the first demo's; `reference` remembers that one."""
    if not reference:
        reference.update(first=where, shapes=shapes)
    elif set(shapes) != set(reference["shapes"]):
        keys = sorted(k[4:] for k in shapes if k.startswith("obs/"))
        expected = sorted(k[4:] for k in reference["shapes"] if k.startswith("obs/"))
        raise DatasetError(f"{label}: {where}/obs has keys {keys} but {reference['first']}/obs has "
                           f"{expected}")
    else:
        for key, shape in shapes.items():
            if shape != reference["shapes"][key]:
                raise DatasetError(f"{label}: {where}/{key} has samples of shape {shape} but "
                                   f"{reference['first']}/{key} has {reference['shapes'][key]}")


def _check_demo(demo: h5py.Group, label, reference: dict, obs_keys, full: bool) -> int:
    """Number of samples in `demo`; `reference` holds the first demo's trailing shapes to compare with."""
    where = demo.name[1:]  # "data/demo_3"
    _check_keys_present(demo, label, full)
    rows = _check_actions(demo, label, full)
    if full:
        _check_rewards_and_dones(demo, label, rows)
    keys = _checked_obs_keys(demo, label, obs_keys, full)
    groups = OBS_GROUPS if full else ("obs",)
    shapes = {"actions": demo["actions"].shape[1:]}
    for group in groups:
        for name in keys:
            array = dataset_at(demo[group], name, label)
            _check_observation(array, f"{where}/{group}/{name}", label, rows, full)
            shapes[f"{group}/{name}"] = array.shape[1:]
    _check_same_shapes(where, label, shapes, reference)
    return rows


def _check_total(file: h5py.File, label, samples: int, full: bool) -> None:
    attrs = file["data"].attrs
    if "total" not in attrs:
        if full:  # optional for training: files of other tools may leave it out
            raise DatasetError(f"{label}: data has no 'total' attribute (the number of samples in all demos)")
    elif int(attrs["total"]) != samples:
        raise DatasetError(f"{label}: data says total={int(attrs['total'])} but its demos hold {samples} "
                           f"samples")


def check_structure(file: h5py.File, label, obs_keys=None, full: bool = True) -> list[str]:
    """Names, shapes, dtypes and attributes of every demo (no array values read); the demo names.

    full: the whole robomimic layout (what `jaxrl data inspect` and `validate` demand). Without it only
    what training reads is checked: obs/ (the names `obs_keys`, default all) and actions, plus the
    num_samples and total attributes where the file has them.
    """
    names = demo_names(file, label)
    read_env_args(file, label)
    reference: dict = {}
    samples = sum(_check_demo(file["data"][name], label, reference, obs_keys, full) for name in names)
    _check_total(file, label, samples, full)
    return names


def check_finite(values: np.ndarray, where: str, label) -> None:
    """DatasetError naming the first row of `values` that holds a NaN or an infinity."""
    if not np.issubdtype(values.dtype, np.floating):
        return
    finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        what = "NaN" if np.isnan(values[row]).any() else "inf"
        raise DatasetError(f"{label}: {where} has {what} at row {row}")


def demo_arrays(demo: h5py.Group, keys=None, full: bool = True) -> dict[str, np.ndarray]:
    """The arrays of a checked demo, keyed by their path within the demo ("obs/state", "actions"...).

    `keys`: the observation names to read (default: all). full: every array of the layout; else only
    what training reads (obs/ and actions), as `check_structure(full=False)` checked.
    """
    keys = list(demo["obs"]) if keys is None else keys
    groups, step_keys = (OBS_GROUPS, ("actions", "rewards", "dones")) if full else (("obs",), ("actions",))
    arrays = {f"{group}/{name}": demo[group][name][()] for group in groups for name in keys}
    arrays.update({key: demo[key][()] for key in step_keys})
    return arrays


def validate(path) -> None:
    """DatasetError when the file at `path` is not a readable, consistent, finite demonstration file."""
    with open_file(path) as file:
        for name in check_structure(file, path):
            for key, values in demo_arrays(file["data"][name]).items():
                check_finite(values, f"data/{name}/{key}", path)
