"""LeRobot datasets read into the demos `jaxrl.data.reader` gives, so training, conversion and `jaxrl data
inspect` share everything downstream of reading (filters, normalization, splits, windows).

A LeRobot dataset is a folder (Hugging Face's LeRobot, codebase versions v2.1 and v3.0; v2.0 reads as
v2.1, from which it differs only in statistics files, which are not read here):

    meta/info.json      codebase_version, fps, features {name: {dtype, shape, names}}, data_path (a
                        template), total_episodes, total_frames; ours adds jaxrl_env_args (ENV_ARGS_KEY)
    v2.1  meta/episodes.jsonl                       a line per episode: episode_index, tasks, length
          data/chunk-000/episode_000000.parquet     the frames of one episode
    v3.0  meta/episodes/chunk-000/file-000.parquet  a row per episode: episode_index, length, tasks, the
                                                    data file (data/chunk_index, data/file_index) and its
                                                    global frame range (dataset_from_index, _to_index)
          data/chunk-000/file-000.parquet           the frames of many episodes
    a frame (a parquet row): a column per feature, and timestamp, frame_index, episode_index, index
    (over the whole dataset) and task_index. A feature of shape (1,) is a plain column, a longer one a
    list column (nested lists for more axes).

Both versions are read the same way: every data file the data_path template matches, grouped by
episode_index and ordered by frame_index, checked against the episode index's lengths.

Names, a demo's key <-> a feature (`feature_name`): obs/<k> <-> observation.<k>, next_obs/<k> <->
next.observation.<k> (ours: LeRobot keeps no next observation), actions <-> action, rewards <->
next.reward, dones <-> next.done; an episode succeeded when any of its next.success frames is true
(our writer marks its last frame). Other numeric features keep their names (per-step arrays such as
terminals or intervention). A feature of shape (1,) is a [T] array, except an observation's ([T, 1]).

Camera features (dtype "image": PNG in the parquet, or "video": MP4 files) are listed but not read: the
learners here read vector observations (bc, diffusion) or our pixel envs' own images (world_model, which
our writer stores as plain uint8 arrays), so naming one as an observation is refused, saying so.

Tested on datasets written to the published format with pyarrow, not by LeRobot's own writer: its package
(lerobot 0.4.4) needs torch, wandb<0.25 and av<16, which conflict with this project's pins.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxrl.data.reader import DemoArrays, DemoSelector, FileDemos
from jaxrl.data.validate import DatasetError, check_finite

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ModuleNotFoundError:  # the `lerobot` extra
    pa = pq = None

VERSIONS = ("v2.0", "v2.1", "v3.0")
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")  # LeRobot's own
CAMERA_DTYPES = ("image", "video")
ENV_ARGS_KEY = "jaxrl_env_args"  # info.json: the env_args of the HDF5 file it was converted from
SUCCESS = "next.success"
# A demo's key -> its feature; obs/<k> and next_obs/<k> by prefix (see `feature_name`).
NAMED = {"actions": "action", "rewards": "next.reward", "dones": "next.done"}
PREFIXES = {"obs/": "observation.", "next_obs/": "next.observation."}


def require_pyarrow() -> None:
    if pq is None:
        raise DatasetError("LeRobot datasets are parquet files, read with pyarrow: pip install "
                           "'jaxrl[lerobot]' (or pip install pyarrow)")


def feature_name(key: str) -> str:
    """A demo's key ("obs/state", "actions", "terminals") -> its LeRobot feature name."""
    for prefix, feature_prefix in PREFIXES.items():
        if key.startswith(prefix):
            return feature_prefix + key[len(prefix):]
    return NAMED.get(key, key)


def demo_key(feature: str) -> str:
    """The inverse of `feature_name`."""
    for prefix, feature_prefix in PREFIXES.items():
        if feature.startswith(feature_prefix):
            return prefix + feature[len(feature_prefix):]
    return {name: key for key, name in NAMED.items()}.get(feature, feature)


def is_numeric(spec: dict) -> bool:
    """Whether a feature is numbers (or bools) a learner can read, not camera frames or text."""
    try:
        return np.dtype(spec["dtype"]).kind in "biuf"
    except TypeError:  # "image", "video", "string"
        return False


def sample_shape(key: str, spec: dict) -> tuple[int, ...]:
    """One frame's shape of the demo array `key` of feature `spec`: () for a per-step scalar."""
    shape = tuple(int(size) for size in spec["shape"])
    scalar = shape == (1,) and key != "actions" and not key.startswith(tuple(PREFIXES))
    return () if scalar else shape


@dataclasses.dataclass
class Info:
    """meta/info.json, checked."""

    folder: Path
    version: str
    fps: float
    features: dict[str, dict]  # name -> {dtype, shape, names, ...}
    data_path: str  # template, e.g. "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    env_args: dict | None  # ours (ENV_ARGS_KEY), when the dataset was written from an HDF5 file

    def observation_keys(self) -> list[str]:
        """The observation names a learner reads by default: the numeric observation.* features, in the
        env_args' order when it lists them, else in info.json's."""
        keys = [demo_key(name)[4:] for name, spec in self.features.items()
                if demo_key(name).startswith("obs/") and is_numeric(spec)]
        listed = (self.env_args or {}).get("obs_keys") or []
        return list(listed) if sorted(listed) == sorted(keys) else keys

    def extra_keys(self) -> list[str]:
        """Numeric per-step features beyond observations, actions, rewards, dones and success."""
        known = (*NAMED.values(), SUCCESS, *FRAME_COLUMNS)
        return [name for name, spec in self.features.items()
                if name not in known and not name.startswith(tuple(PREFIXES.values()))
                and is_numeric(spec)]


def _load_json(text: str, path: Path):
    try:
        return json.loads(text)
    except ValueError as error:
        raise DatasetError(f"{path} is not readable JSON ({error})") from None


def read_info(folder) -> Info:
    """The dataset's meta/info.json, checked; DatasetError naming what is wrong and the fix."""
    require_pyarrow()
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (a LeRobot dataset is a folder holding meta/info.json)")
    if not (folder / "meta/info.json").is_file():
        raise DatasetError(f"{folder} has no meta/info.json, so it is not a LeRobot dataset; give the "
                           f"dataset's root folder (the one holding meta/ and data/)")
    info = _load_json((folder / "meta/info.json").read_text(), folder / "meta/info.json")
    version = info.get("codebase_version") if isinstance(info, dict) else None
    if version not in VERSIONS:
        raise DatasetError(f"{folder}: codebase_version {version!r} is not one this reader knows "
                           f"({', '.join(VERSIONS)}); convert the dataset with LeRobot's own converter first")
    features = info.get("features")
    if not isinstance(features, dict) or "action" not in features:
        raise DatasetError(f"{folder}: meta/info.json has no 'action' feature; learning from demonstrations "
                           f"needs the actions taken")
    for name, spec in features.items():
        if not isinstance(spec, dict) or "dtype" not in spec or "shape" not in spec:
            raise DatasetError(f"{folder}: feature {name!r} of meta/info.json needs a dtype and a shape")
    for name in ("fps", "data_path"):
        if name not in info:
            raise DatasetError(f"{folder}: meta/info.json has no {name!r}")
    return Info(folder, version, float(info["fps"]), features, info["data_path"], info.get(ENV_ARGS_KEY))


def unread_features(info: Info) -> dict[str, str]:
    """Features that are not numbers (camera streams, text) -> "dtype (shape)": what is not read."""
    return {name: f"{spec['dtype']} {tuple(spec['shape'])}" for name, spec in info.features.items()
            if not is_numeric(spec)}


def read_env_args(folder) -> dict | None:
    """The env_args (env_name, env_config, control_dt, obs_keys) our writer kept; None when there are none."""
    return read_info(folder).env_args


def _read_table(path: Path, columns: list[str]):
    """The `columns` of the parquet file `path`; DatasetError for a missing column or an unreadable file."""
    try:
        names = pq.read_schema(path).names
        missing = [name for name in columns if name not in names]
        if missing:
            raise DatasetError(f"{path}: no column {missing[0]!r}, which a LeRobot dataset's file holds here")
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(f"{path}: not a readable parquet file ({error})") from None


def episode_lengths(info: Info) -> dict[int, int]:
    """episode_index -> length, from the episode index (v2.x: meta/episodes.jsonl; v3.0: meta/episodes/)."""
    folder = info.folder
    if info.version == "v3.0":
        files = sorted(folder.glob("meta/episodes/*/*.parquet"))
        if not files:
            raise DatasetError(f"{folder}: no meta/episodes/chunk-*/file-*.parquet, the episode index of a "
                               f"v3.0 dataset")
        tables = [_read_table(path, ["episode_index", "length"]) for path in files]
        rows = [row for table in tables for row in table.to_pylist()]
    else:
        path = folder / "meta/episodes.jsonl"
        if not path.is_file():
            raise DatasetError(f"{folder}: no meta/episodes.jsonl, the episode index of a {info.version} "
                               f"dataset")
        rows = [_load_json(line, path) for line in path.read_text().splitlines() if line.strip()]
    try:
        return {int(row["episode_index"]): int(row["length"]) for row in rows}
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{folder}: an entry of the episode index lacks episode_index or length") from None


def _column(table, name: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """[rows, *shape] from a plain or (nested) list column."""
    column = table.column(name).combine_chunks()
    while pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or \
            pa.types.is_fixed_size_list(column.type):
        column = column.flatten()
    values = column.to_numpy(zero_copy_only=False)
    if values.size != table.num_rows * math.prod(shape):
        raise DatasetError(f"{path}: column {name!r} holds {values.size} values in {table.num_rows} frames, "
                           f"but meta/info.json gives the feature shape {shape}")
    return values.reshape(table.num_rows, *shape)


def read_frames(info: Info, features: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({feature: [N, *shape]}, episode_index [N]) of every data file, ordered by episode and frame."""
    pattern = re.sub(r"\{[^}]*\}", "*", info.data_path)
    files = sorted(info.folder.glob(pattern))
    if not files:
        raise DatasetError(f"{info.folder}: no data files match {info.data_path!r} (meta/info.json's "
                           f"data_path)")
    columns = ["episode_index", "frame_index", *features]
    parts: dict[str, list] = {name: [] for name in columns}
    for path in files:
        table = _read_table(path, columns)
        for name in columns:
            shape = (1,) if name in FRAME_COLUMNS else tuple(info.features[name]["shape"])
            parts[name].append(_column(table, name, shape, path))
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.lexsort((arrays.pop("frame_index")[:, 0], arrays["episode_index"][:, 0]))
    episodes = arrays.pop("episode_index")[order, 0]
    return {name: values[order] for name, values in arrays.items()}, episodes


def episode_bounds(info: Info, episodes: np.ndarray) -> list[tuple[int, int, int]]:
    """(episode_index, first row, end row) of each episode in `episodes` (sorted); DatasetError when the
    frames do not agree with the episode index."""
    indices, starts, counts = np.unique(episodes, return_index=True, return_counts=True)
    lengths = episode_lengths(info)
    found = dict(zip(indices.tolist(), counts.tolist(), strict=True))
    for index in sorted(set(lengths) | set(found)):
        if lengths.get(index) != found.get(index):
            raise DatasetError(f"{info.folder}: episode {index} has {found.get(index, 0)} frames in data/ "
                               f"but the episode index (meta/) says {lengths.get(index, 0)}")
    return [(int(i), int(s), int(s + c)) for i, s, c in zip(indices, starts, counts, strict=True)]


def _checked_obs_keys(info: Info, obs_keys) -> list[str]:
    keys = info.observation_keys() if obs_keys is None else list(obs_keys)
    if not keys:
        raise DatasetError(f"{info.folder}: no numeric observation.* feature to learn from (camera features "
                           f"are not read; see `jaxrl data inspect`)")
    for key in keys:
        name = feature_name(f"obs/{key}")
        spec = info.features.get(name)
        if spec is None:
            raise DatasetError(f"{info.folder}: no feature {name!r}; its observations are "
                               f"{', '.join(info.observation_keys()) or 'none'} (obs_keys=[...] chooses)")
        if spec["dtype"] in CAMERA_DTYPES:
            raise DatasetError(f"{info.folder}: feature {name!r} is a camera stream ({spec['dtype']}), "
                               f"which bc and diffusion cannot learn from and this reader does not decode: "
                               f"leave it out of obs_keys (e.g. obs_keys=[state])")
    return keys


def read_dataset(folder, obs_keys=None, *, full: bool = True, step_keys: Sequence[str] = (),
                 select: DemoSelector | None = None) -> FileDemos:
    """The episodes of the LeRobot dataset in `folder` as reader.read_file gives an HDF5 file's demos.

    obs_keys: observation names (None: `Info.observation_keys`). full: also next_obs/ (ours), rewards and
    dones, which must be there; else only obs/ and actions. step_keys: demo keys to read where the dataset
    has them ("rewards", "terminals", "next_obs/state"). Episodes are named episode_<episode_index>; their
    attributes are num_samples and, where next.success is a feature, success.
    """
    info = read_info(folder)
    keys = _checked_obs_keys(info, obs_keys)
    wanted = ["actions", *(f"obs/{key}" for key in keys)]
    if full:
        wanted += [*(f"next_obs/{key}" for key in keys), "rewards", "dones"]
        missing = [feature_name(key) for key in wanted if feature_name(key) not in info.features]
        if missing:
            raise DatasetError(f"{info.folder}: no feature {missing[0]!r}; reading the whole layout needs it "
                               f"(training reads only observations and actions)")
    wanted += [key for key in step_keys if key not in wanted and feature_name(key) in info.features]
    spec = info.features["action"]
    if len(spec["shape"]) != 1 or not np.issubdtype(np.dtype(spec["dtype"]), np.floating):
        raise DatasetError(f"{info.folder}: feature 'action' is {spec['dtype']} of shape {spec['shape']}; "
                           f"expected a float vector")
    features = [feature_name(key) for key in wanted] + ([SUCCESS] if SUCCESS in info.features else [])
    frames, episodes = read_frames(info, features)
    shapes = {key: sample_shape(key, info.features[feature_name(key)]) for key in wanted}
    demos = []
    for index, start, end in episode_bounds(info, episodes):
        name, attrs = f"episode_{index}", {"num_samples": end - start}
        if SUCCESS in frames:
            attrs["success"] = bool(frames[SUCCESS][start:end].any())
        if select is not None and not select(info.folder, name, attrs):
            continue
        arrays = {key: frames[feature_name(key)][start:end].reshape(end - start, *shapes[key])
                  for key in wanted}
        for key, values in arrays.items():
            check_finite(values, f"{name}/{feature_name(key)}", info.folder)
        demos.append(DemoArrays(name, arrays, attrs))
    read = ("actions", *(f"obs/{key}" for key in keys))  # what every file of a training set must agree on
    sample_shapes = {key: shapes[key] for key in read} if len(episodes) else {}
    return FileDemos(info.folder, keys, sample_shapes, demos)


def summarize(folder) -> tuple[Info, list[int], list[bool], dict]:
    """What `jaxrl data inspect` reports of a LeRobot dataset (jaxrl.data.inspect puts it in words):
    (info, episode lengths, successes (empty without next.success), {feature: {shape, dtype, min, max}})."""
    info = read_info(folder)
    numeric = [name for name, spec in info.features.items() if name not in FRAME_COLUMNS and is_numeric(spec)]
    frames, episodes = read_frames(info, numeric)
    bounds = episode_bounds(info, episodes)
    keys = {}
    for name in numeric:
        values = frames[name]
        check_finite(values, name, info.folder)
        keys[name] = {"shape": sample_shape(demo_key(name), info.features[name]), "dtype": str(values.dtype),
                      "min": float(values.min()) if values.size else math.nan,
                      "max": float(values.max()) if values.size else math.nan}
    lengths = [end - start for _, start, end in bounds]
    successes = ([bool(frames[SUCCESS][start:end].any()) for _, start, end in bounds]
                  if SUCCESS in frames else [])
    return info, lengths, successes, keys
