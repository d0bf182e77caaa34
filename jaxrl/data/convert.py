"""`jaxrl data convert`: robomimic-layout HDF5 <-> LeRobot dataset, lossless for the fields both hold.

HDF5 -> LeRobot (v3.0, `lerobot_writer`): every array of every demo (obs/, next_obs/, actions, rewards,
dones, and further per-step arrays such as terminals or intervention), each demo's success, and the
file's env_args (kept in info.json, so the way back restores them). Demo attributes other than success
and num_samples (e.g. source) are not carried.

LeRobot -> HDF5 (`writer.DemoWriter`): the numeric features, named back. A dataset that was not written
from an HDF5 file may lack what the robomimic layout needs; it is filled in and the notes say so:
next_obs as the next frame's observation (an episode's last frame repeats its own), rewards as zeros,
dones as 1 at each episode's last frame, success as false. Camera and text features are not converted.
DemoWriter stores observations, actions and rewards as float32.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from jaxrl.data import lerobot
from jaxrl.data.lerobot_writer import write_dataset
from jaxrl.data.reader import DemoArrays, lerobot_folder, read_file
from jaxrl.data.validate import DEMO_KEYS, DatasetError, check_structure, open_file, read_env_args
from jaxrl.data.writer import DemoWriter

FORMATS = ("lerobot", "robomimic")


@dataclasses.dataclass
class Converted:
    out: Path
    num_demos: int
    total_samples: int
    notes: list[str]  # what was filled in or left out, a line each


def to_lerobot(path, out, fps: float | None = None) -> Converted:
    """The HDF5 file `path` as a LeRobot v3.0 dataset in the new folder `out`. fps: frames per second,
    needed only where the file's env_args give no control_dt."""
    path = Path(path)
    with open_file(path) as file:
        names = check_structure(file, path)
        env_args = read_env_args(file, path)
        first = file["data"][names[0]] if names else {}
        extra = sorted(key for key in first if key not in DEMO_KEYS)  # terminals, intervention ...
        groups = [key for key in extra if not isinstance(first[key], h5py.Dataset)]
    control_dt = (env_args or {}).get("control_dt")
    if fps is None and not control_dt:
        raise DatasetError(f"{path}: its env_args give no control_dt, so the frame rate is unknown: pass "
                           f"--fps N")
    demos = read_file(path, step_keys=[key for key in extra if key not in groups]).demos
    task = (env_args or {}).get("env_name") or "demonstrations"
    total = write_dataset(out, demos, fps or 1.0 / control_dt, env_args, task)
    notes = [f"not converted: {key}/ (a group; LeRobot features are arrays)" for key in groups]
    return Converted(Path(out), len(demos), total, notes)


def _episode_arguments(demo: DemoArrays, keys: list[str], notes: set[str]) -> dict:
    """DemoWriter.add's arguments for the episode, filling in what the robomimic layout needs (see above)."""
    arrays, steps = demo.arrays, demo.num_samples
    obs = {key: arrays[f"obs/{key}"] for key in keys}
    next_obs = {key: arrays.get(f"next_obs/{key}") for key in keys}
    for key, values in next_obs.items():
        if values is None:
            notes.add("filled in: next_obs, the next frame's observation (the last frame's: its own)")
            next_obs[key] = np.concatenate([obs[key][1:], obs[key][-1:]])
    rewards, dones = arrays.get("rewards"), arrays.get("dones")
    if rewards is None:
        notes.add("filled in: rewards, zeros")
        rewards = np.zeros(steps, np.float32)
    if dones is None:
        notes.add("filled in: dones, 1 at each episode's last frame")
        dones = np.zeros(steps, np.uint8)
        dones[-1] = 1
    if "success" not in demo.attrs:
        notes.add("filled in: success, false")
    extra = {key: values for key, values in arrays.items()
             if key not in ("actions", "rewards", "dones") and not key.startswith(("obs/", "next_obs/"))}
    return dict(obs=obs, next_obs=next_obs, actions=arrays["actions"], rewards=rewards, dones=dones,
                success=bool(demo.attrs.get("success", False)), extra=extra)


def to_robomimic(folder, out) -> Converted:
    """The LeRobot dataset in `folder` as the new HDF5 file `out` (robomimic's layout, DemoWriter's)."""
    info = lerobot.read_info(folder)
    keys = info.observation_keys()
    step_keys = [*(f"next_obs/{key}" for key in keys), "rewards", "dones", *info.extra_keys()]
    demos = lerobot.read_dataset(folder, keys, full=False, step_keys=step_keys).demos
    env_args = info.env_args or {}
    notes: set[str] = set()
    with DemoWriter(out, env_args.get("env_name"), env_args.get("env_config") or {},
                    env_args.get("control_dt") or 1.0 / info.fps) as writer:
        for demo in demos:
            writer.add(**_episode_arguments(demo, keys, notes))
        unread = lerobot.unread_features(info)
        notes.update(f"not converted: {name} ({what})" for name, what in unread.items())
        return Converted(Path(out), writer.num_demos, writer.total, sorted(notes))


def convert(source, to: str, out, fps: float | None = None) -> Converted:
    """`source` (an HDF5 file, or a LeRobot dataset: lerobot:FOLDER or a folder) in the format `to`."""
    folder = lerobot_folder(source)
    if to == "lerobot":
        if folder is not None:
            raise DatasetError(f"{source} is a LeRobot dataset already; --to robomimic converts it to HDF5")
        return to_lerobot(source, out, fps)
    if to == "robomimic":
        if folder is None:
            raise DatasetError(f"{source} is not a LeRobot dataset folder; --to lerobot converts an HDF5 "
                               f"file")
        if fps is not None:
            raise DatasetError("--fps is for --to lerobot: a LeRobot dataset states its own fps")
        return to_robomimic(folder, out)
    raise DatasetError(f"unknown format {to!r}; the formats are {', '.join(FORMATS)}")
