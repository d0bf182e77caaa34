"""DemoWriter: appends demos one at a time to an HDF5 file that stays readable throughout.

After every demo the file's `total` is correct and the file is flushed, and a
demo is written whole or not at all (Ctrl-C and SIGTERM wait until it is
done), so an interrupted collection leaves a valid file of the demos so far.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path

import h5py
import numpy as np

from jaxrl.data.validate import (
    DatasetError,
    check_finite,
    check_structure,
    demo_index,
    open_file,
    read_env_args,
)

COMPRESSION = "gzip"  # readable by every HDF5 tool (lzf is h5py's own)
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_held():
    """Delay Ctrl-C and SIGTERM until the block is done, then deliver them to their usual handlers."""
    previous = {sig: signal.getsignal(sig) for sig in HELD_SIGNALS}
    held = [sig for sig, handler in previous.items() if handler is not None]  # None: set outside Python
    if threading.current_thread() is not threading.main_thread():
        held = []  # only the main thread may install handlers
    received: list[int] = []
    for sig in held:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig in held:
            signal.signal(sig, previous[sig])
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


class DemoWriter:
    """Writes demos into `path` (a new file, or with `append` after the demos it holds).

    `env_config` is the env's config as a plain dict; it and `control_dt` go
    into the file's env_args, with the observation keys of the first demo.
    `env_name` None: demos of no registered env (e.g. converted from a LeRobot dataset).
    """

    def __init__(self, path, env_name: str | None, env_config: dict, control_dt: float, *,
                 append: bool = False):
        self.path = Path(path)
        self.env_name = env_name
        self.num_added = 0  # demos written by this writer
        self._shapes: dict[str, tuple] | None = None  # trailing shapes every demo must share
        if append and self.path.exists():
            self._open_existing()
        else:
            if self.path.exists():
                raise DatasetError(f"{self.path} already exists; append to it or choose another file")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(self.path, "w-")  # never truncate a file created meanwhile
            self._data = self._file.create_group("data")
            self._env_args = {"env_name": env_name, "env_config": env_config, "control_dt": control_dt,
                              "obs_keys": []}
            self._data.attrs["total"] = 0
            self._write_env_args()
            self._next_index, self.num_demos, self.total = 0, 0, 0
            self._file.flush()

    def _open_existing(self) -> None:
        with open_file(self.path) as file:  # checked read-only first: never append to a broken file
            names = check_structure(file, self.path)
            env_args = read_env_args(file, self.path) or {}
            if names:
                first = file["data"][names[0]]
                self._shapes = {"actions": first["actions"].shape[1:]}
                self._shapes.update({f"obs/{k}": first["obs"][k].shape[1:] for k in first["obs"]})
        if env_args.get("env_name") != self.env_name:
            raise DatasetError(f"{self.path} holds demos of env {env_args.get('env_name')!r}, not "
                               f"{self.env_name!r}; write these demos to another file")
        self._file = h5py.File(self.path, "a")
        self._data = self._file["data"]
        self._env_args = env_args
        self._next_index = demo_index(names[-1]) + 1 if names else 0
        self.num_demos, self.total = len(names), int(self._data.attrs["total"])

    def _write_env_args(self) -> None:
        self._data.attrs["env_args"] = json.dumps(self._env_args, default=str)

    def _check(self, arrays: dict[str, np.ndarray]) -> None:
        """The demo fits the file: the same observation keys, shapes and action size as its demos."""
        shapes = {key: values.shape[1:] for key, values in arrays.items()
                  if key == "actions" or key.startswith("obs/")}
        if self._shapes is None:
            self._shapes = shapes
        if set(shapes) != set(self._shapes):
            keys = sorted(k[4:] for k in shapes if k.startswith("obs/"))
            expected = sorted(k[4:] for k in self._shapes if k.startswith("obs/"))
            raise DatasetError(f"{self.path}: the demo has observation keys {keys} but the file's demos have "
                               f"{expected}")
        for key, shape in shapes.items():
            if self._shapes[key] != shape:
                raise DatasetError(f"{self.path}: the demo's {key} has samples of shape {shape} but the "
                                   f"file's demos have {self._shapes[key]}")

    def add(self, obs: dict[str, np.ndarray], next_obs: dict[str, np.ndarray], actions, rewards, dones,
            success: bool, terminals=None, extra: dict[str, np.ndarray] | None = None) -> str:
        """Write one demo of T steps ([T, ...] arrays); its name, e.g. "demo_7". `terminals` [T]: 1 where
        the env ended the episode (not a time limit or success), written when given. `extra`: further
        per-step arrays [T, ...] (e.g. intervention), written under their names with their dtypes."""
        arrays = {f"obs/{k}": np.asarray(v, np.float32) for k, v in obs.items()}
        arrays.update({f"next_obs/{k}": np.asarray(next_obs[k], np.float32) for k in obs})
        arrays.update(actions=np.asarray(actions, np.float32), rewards=np.asarray(rewards, np.float32),
                      dones=np.asarray(dones).astype(np.uint8))
        if terminals is not None:
            arrays["terminals"] = np.asarray(terminals).astype(np.uint8)
        for key, values in (extra or {}).items():
            if key in arrays or key.startswith(("obs/", "next_obs/")):
                raise DatasetError(f"{self.path}: the extra array {key!r} would overwrite the demo's own")
            arrays[key] = np.asarray(values)
        steps = len(arrays["actions"])
        if steps == 0:
            raise DatasetError(f"{self.path}: a demo needs at least one step")
        for key, values in arrays.items():
            if len(values) != steps:
                raise DatasetError(f"{self.path}: the demo's {key} has {len(values)} rows but actions has "
                                   f"{steps}")
            check_finite(values, f"the demo's {key}", self.path)
        self._check(arrays)
        name = f"demo_{self._next_index}"

        with _signals_held():
            group = self._data.create_group(name)
            try:
                for key, values in arrays.items():
                    group.create_dataset(key, data=values, chunks=True, compression=COMPRESSION,
                                         shuffle=True)
                group.attrs["num_samples"] = steps
                group.attrs["success"] = bool(success)
            except BaseException:
                del self._data[name]  # e.g. a full disk: leave no half-written demo behind
                raise
            self.total += steps
            self._data.attrs["total"] = self.total
            if not self._env_args.get("obs_keys"):
                self._env_args["obs_keys"] = list(obs)
                self._write_env_args()
            self._file.flush()
        self._next_index += 1
        self.num_demos += 1
        self.num_added += 1
        return name

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> DemoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
