"""Demos written as a LeRobot v3.0 dataset, the format `jaxrl.data.lerobot` reads (its docstring has the
layout and the names).

`write_dataset` takes demos as `reader.read_file` gives them (arrays keyed obs/<k>, next_obs/<k>, actions,
rewards, dones and any other per-step arrays; a success attribute) and writes their frames, each array as
the feature `lerobot.feature_name` names, into data files of about DATA_FILE_MB each (an episode is never
split), then the episode index, meta/tasks.parquet (one task), meta/stats.json (of the vector features)
and meta/info.json, which keeps the file's env_args under ENV_ARGS_KEY. Arrays keep their dtypes, except
dones, which LeRobot's next.done holds as bools; success becomes next.success, true on a successful
episode's last frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxrl.data.lerobot import ENV_ARGS_KEY, SUCCESS, feature_name, pa, pq, require_pyarrow
from jaxrl.data.reader import DemoArrays
from jaxrl.data.validate import DatasetError

VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk-NNN folder (LeRobot's default)
DATA_FILE_MB = 100  # a data file takes episodes until it holds this much (LeRobot's default)
VIDEO_FILE_MB = 500  # LeRobot's default; info.json states it though no videos are written
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
FRAME_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}


def _arrow(values: np.ndarray):
    """[N, *shape] as a column: plain for [N] and [N, 1] (LeRobot's shape (1,)), else fixed-size lists
    (nested for more axes)."""
    array = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:] if values.shape[1:] != (1,) else ()):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def _frames(demo: DemoArrays) -> dict[str, np.ndarray]:
    """The demo's arrays keyed by feature name, as LeRobot holds them."""
    frames = {feature_name(key): values.astype(bool) if key == "dones" else values
              for key, values in demo.arrays.items()}
    if "success" in demo.attrs:
        success = np.zeros(demo.num_samples, bool)
        success[-1] = bool(demo.attrs["success"])
        frames[SUCCESS] = success
    return frames


def _features(frames: dict[str, np.ndarray], fps: float) -> dict[str, dict]:
    features = {name: {"dtype": str(values.dtype), "shape": list(values.shape[1:]) or [1], "names": None,
                       "fps": fps} for name, values in frames.items()}
    features.update({name: {"dtype": dtype, "shape": [1], "names": None, "fps": fps}
                     for name, dtype in FRAME_FEATURES.items()})
    return features


def _file_groups(demos: Sequence[DemoArrays]) -> list[list[int]]:
    """Consecutive demos per data file: a file takes demos until it holds DATA_FILE_MB."""
    groups, size = [[]], 0
    for i, demo in enumerate(demos):
        if groups[-1] and size >= DATA_FILE_MB * 2**20:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += sum(values.nbytes for values in demo.arrays.values())
    return groups


def _location(number: int) -> dict[str, int]:
    return {"chunk_index": number // CHUNKS_SIZE, "file_index": number % CHUNKS_SIZE}


def _write_table(folder: Path, relative: str, columns: dict, metadata: dict | None = None) -> None:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    if metadata is not None:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def _tasks_metadata() -> dict:
    """pandas' schema metadata naming `task` the index, as LeRobot reads meta/tasks.parquet (a DataFrame
    indexed by the task's text)."""
    columns = [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                "numpy_type": "int64", "metadata": None},
               {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                "metadata": None}]
    index = {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
    return {b"pandas": json.dumps({"index_columns": ["task"], "column_indexes": [index], "columns": columns,
                                   "creator": {"library": "pyarrow", "version": pa.__version__}}).encode()}


def _stats(demos: Sequence[DemoArrays]) -> dict[str, dict]:
    """min, max, mean, std and count over all frames of each vector (or scalar) feature, one at a time."""
    frames = [_frames(demo) for demo in demos]  # views of the demos' arrays but for dones and success
    stats = {}
    for name, first in frames[0].items():
        if first.ndim > 2:
            continue  # images stored as arrays: LeRobot's per-channel statistics are not computed here
        values = np.concatenate([part[name] for part in frames]).reshape(-1, first[0].size).astype(np.float64)
        stats[name] = {"min": values.min(0).tolist(), "max": values.max(0).tolist(),
                       "mean": values.mean(0).tolist(), "std": values.std(0).tolist(), "count": [len(values)]}
    return stats


def write_dataset(folder, demos: Sequence[DemoArrays], fps: float, env_args: dict | None = None,
                  task: str = "demonstrations") -> int:
    """Write `demos` (all with the same keys and shapes, as read_file gives them) as a LeRobot v3.0 dataset
    in `folder` (new, or empty); the number of frames written."""
    require_pyarrow()
    folder = Path(folder)
    fps = int(round(fps)) if abs(fps - round(fps)) < 1e-9 * fps else fps  # LeRobot's fps is a whole number
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DatasetError(f"{folder} already exists and is not an empty folder; choose a new one")
    if not demos:
        raise DatasetError(f"no demos to write to {folder}")
    episodes = {"episode_index": [], "tasks": [], "length": [], "data/chunk_index": [], "data/file_index": [],
                "dataset_from_index": [], "dataset_to_index": [], "meta/episodes/chunk_index": [],
                "meta/episodes/file_index": []}
    total = 0
    for number, group in enumerate(_file_groups(demos)):
        parts = [_frames(demos[i]) for i in group]
        columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        lengths = [demos[i].num_samples for i in group]
        frame_index = np.concatenate([np.arange(length) for length in lengths])
        columns.update(timestamp=(frame_index / fps).astype(np.float32), frame_index=frame_index,
                       episode_index=np.repeat(group, lengths), index=total + np.arange(sum(lengths)),
                       task_index=np.zeros(sum(lengths), np.int64))
        _write_table(folder, DATA_PATH.format(**_location(number)),
                     {name: _arrow(values) for name, values in columns.items()})
        for i, length in zip(group, lengths, strict=True):
            row = {"episode_index": i, "tasks": [task], "length": length, "dataset_from_index": total,
                   "dataset_to_index": total + length, "meta/episodes/chunk_index": 0,
                   "meta/episodes/file_index": 0}
            row.update({f"data/{key}": value for key, value in _location(number).items()})
            for key, value in row.items():
                episodes[key].append(value)
            total += length
    _write_table(folder, EPISODES_PATH.format(**_location(0)), episodes)
    _write_table(folder, "meta/tasks.parquet", {"task_index": [0], "task": [task]}, _tasks_metadata())
    (folder / "meta/stats.json").write_text(json.dumps(_stats(demos), indent=4))
    info = {"codebase_version": VERSION, "robot_type": None, "total_episodes": len(demos),
            "total_frames": total, "total_tasks": 1, "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps,
            "splits": {"train": f"0:{len(demos)}"}, "data_path": DATA_PATH, "video_path": None,
            "features": _features(_frames(demos[0]), fps)}
    if env_args is not None:
        info[ENV_ARGS_KEY] = env_args
    (folder / "meta/info.json").write_text(json.dumps(info, indent=4, default=str))
    return total
