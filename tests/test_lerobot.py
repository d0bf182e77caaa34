"""LeRobot datasets (jaxrl.data.lerobot): read for training, converted to and from HDF5, inspected.

LeRobot's own package cannot be installed beside our pins (lerobot 0.4.4 needs torch, wandb<0.25 and
av<16), so the datasets read here are written in the tests to the published format (v2.1 and v3.0) with
pyarrow, independently of our writer.
"""

import json
import subprocess
import sys

import h5py
import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_bc import FlatEnv
from test_demos import THREE, write_demos

from jaxrl import cli
from jaxrl.algos import bc, offline
from jaxrl.data.demos import load_demos, parse_sources
from jaxrl.data.reader import read_file, recorded_env_args
from jaxrl.data.validate import DatasetError, validate

FPS = 10
FRAME_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}


def toy_episode(steps: int, seed: int, success: bool) -> dict:
    """What FlatEnv observes ([3]) and takes ([2], in [-1, 1]) for `steps` steps."""
    rng = np.random.default_rng(seed)
    return {"state": rng.normal(size=(steps, 3)).astype(np.float32),
            "action": rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
            "reward": rng.normal(size=steps).astype(np.float32), "success": success}


EPISODES = [toy_episode(6, 0, True), toy_episode(4, 1, False), toy_episode(5, 2, True)]


def frame_columns(episodes, indices, first_frame: int, vector) -> dict:
    """The parquet columns of `episodes` (episode_index `indices`); vector(n): the arrow type of an [n]."""
    lengths = [len(episode["action"]) for episode in episodes]
    frame = np.concatenate([np.arange(length) for length in lengths])

    def joined(key):
        return np.concatenate([episode[key] for episode in episodes])

    return {"observation.state": pa.array(joined("state").tolist(), vector(3)),
            "action": pa.array(joined("action").tolist(), vector(2)),
            "next.reward": pa.array(joined("reward")),
            "timestamp": pa.array((frame / FPS).astype(np.float32)), "frame_index": pa.array(frame),
            "episode_index": pa.array(np.repeat(indices, lengths)),
            "index": pa.array(first_frame + np.arange(len(frame))),
            "task_index": pa.array(np.zeros(len(frame), np.int64))}


def features(**more) -> dict:
    return {"observation.state": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
            "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
            "next.reward": {"dtype": "float32", "shape": [1], "names": None}, **more,
            **{name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in FRAME_FEATURES.items()}}


def write_json(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=4))


def write_parquet(path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def v21_dataset(folder):
    """EPISODES as LeRobot v2.1 lays them out: a parquet file per episode, variable-length list columns
    (as older `datasets` wrote them), next.done and next.success, and a camera (video) feature."""
    camera = {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]}
    flag = {"dtype": "bool", "shape": [1], "names": None}
    lengths = [len(episode["action"]) for episode in EPISODES]
    write_json(folder / "meta/info.json", {
        "codebase_version": "v2.1", "robot_type": "toy", "total_episodes": 3, "total_frames": sum(lengths),
        "total_tasks": 1, "total_videos": 3, "total_chunks": 1, "chunks_size": 1000, "fps": FPS,
        "splits": {"train": "0:3"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": features(**{"observation.images.top": camera, "next.done": flag, "next.success": flag})})
    (folder / "meta/episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": i, "tasks": ["reach"], "length": length}) + "\n"
        for i, length in enumerate(lengths)))
    (folder / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "reach"}) + "\n")
    for i, episode in enumerate(EPISODES):
        columns = frame_columns([episode], [i], sum(lengths[:i]), lambda n: pa.list_(pa.float32()))
        last = np.arange(lengths[i]) == lengths[i] - 1
        columns.update({"next.done": pa.array(last), "next.success": pa.array(last & episode["success"])})
        write_parquet(folder / f"data/chunk-000/episode_{i:06d}.parquet", columns)
    return folder


def v30_dataset(folder, episodes=EPISODES):
    """`episodes` as LeRobot v3.0 lays them out: all but the last in one data file, the last in a second;
    fixed-size list columns; the episode index in meta/episodes/; no next.success."""
    lengths = [len(episode["action"]) for episode in episodes]
    split = len(episodes) - 1
    write_json(folder / "meta/info.json", {
        "codebase_version": "v3.0", "robot_type": "toy", "total_episodes": len(episodes),
        "total_frames": sum(lengths), "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500, "fps": FPS, "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
        "features": features()})
    for file_index, indices in enumerate([list(range(split)), [split]]):
        write_parquet(folder / f"data/chunk-000/file-{file_index:03d}.parquet",
                      frame_columns([episodes[i] for i in indices], indices, sum(lengths[:indices[0]]),
                                    lambda n: pa.list_(pa.float32(), n)))
    ends = np.cumsum(lengths)
    write_parquet(folder / "meta/episodes/chunk-000/file-000.parquet", {
        "episode_index": list(range(len(episodes))), "tasks": [["reach"]] * len(episodes), "length": lengths,
        "data/chunk_index": [0] * len(episodes),
        "data/file_index": [int(i == split) for i in range(len(episodes))],
        "dataset_from_index": (ends - lengths).tolist(), "dataset_to_index": ends.tolist()})
    write_parquet(folder / "meta/tasks.parquet", {"task_index": [0], "task": ["reach"]})
    return folder


@pytest.mark.parametrize("write", [v21_dataset, v30_dataset])
def test_reads_each_format_version_as_the_episodes_written(write, tmp_path):
    folder = write(tmp_path / "dataset")
    assert parse_sources(f"lerobot:{folder.name},lerobot:{folder.name}:all", "success") == [
        (f"lerobot:{folder.name}", "success"), (f"lerobot:{folder.name}", "all")]  # a name is not a filter
    demos = read_file(f"lerobot:{folder}", full=False, step_keys=["rewards"]).demos
    assert [demo.name for demo in demos] == ["episode_0", "episode_1", "episode_2"]
    for demo, episode in zip(demos, EPISODES, strict=True):
        np.testing.assert_array_equal(demo.arrays["obs/state"], episode["state"])
        np.testing.assert_array_equal(demo.arrays["actions"], episode["action"])
        np.testing.assert_array_equal(demo.arrays["rewards"], episode["reward"])  # shape (1,): one per step
    if write is v21_dataset:  # next.success -> success; filters work as on HDF5 files
        assert [demo.attrs["success"] for demo in demos] == [True, False, True]
        kept = load_demos([(f"lerobot:{folder}", "success")], val_fraction=0.0)
        assert kept.num_episodes == 2 and kept.obs_keys == ("state",)
    else:
        with pytest.raises(DatasetError, match="no 'success' attribute.*the filter 'all' keeps every demo"):
            load_demos([(f"lerobot:{folder}", "success")])


def test_camera_features_are_listed_and_refused_with_what_to_do(tmp_path, capsys):
    folder = v21_dataset(tmp_path / "dataset")
    assert cli.main(["data", "inspect", f"lerobot:{folder}"]) == 0
    out = capsys.readouterr().out
    assert "LeRobot v2.1, 10 fps" in out and "3 demos, 15 samples, success 66.7%" in out
    assert "observation.images.top" in out and "video (48, 64, 3): not read" in out
    with pytest.raises(DatasetError, match="'observation.images.top' is a camera stream .video.*leave it"):
        load_demos([(f"lerobot:{folder}", "all")], obs_keys=("images.top",))


def test_a_foreign_dataset_converts_to_a_valid_hdf5_file_saying_what_was_filled_in(tmp_path, capsys):
    folder = v21_dataset(tmp_path / "dataset")
    out = tmp_path / "back.hdf5"
    assert cli.main(["data", "convert", str(folder), "--to", "robomimic", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 demos, 15 samples" in printed and "filled in: next_obs" in printed
    assert "not converted: observation.images.top" in printed
    validate(out)
    with h5py.File(out) as file:
        np.testing.assert_array_equal(file["data/demo_0/next_obs/state"][:-1], EPISODES[0]["state"][1:])
        assert json.loads(file["data"].attrs["env_args"])["control_dt"] == 1 / FPS


def test_hdf5_to_lerobot_and_back_is_lossless(tmp_path, capsys):
    demos = [dict(demo, terminals=np.eye(len(demo["actions"]))[-1] * (i == 0),
                  extra={"intervention": np.arange(len(demo["actions"])) % 2 == 0})
             for i, demo in enumerate(THREE)]
    source, folder, back = tmp_path / "demos.hdf5", tmp_path / "lerobot", tmp_path / "back.hdf5"
    write_demos(source, demos)
    assert cli.main(["data", "convert", str(source), "--to", "lerobot", str(folder)]) == 0
    assert cli.main(["data", "inspect", str(folder)]) == 0
    assert "LeRobot v3.0, 100 fps" in capsys.readouterr().out
    info = json.loads((folder / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 16
    assert {"observation.a", "observation.b", "next.observation.b", "action", "next.reward", "next.done",
            "next.success", "terminals", "intervention"} <= set(info["features"])
    assert cli.main(["data", "convert", f"lerobot:{folder}", "--to", "robomimic", str(back)]) == 0
    assert recorded_env_args(folder) == recorded_env_args(source)  # bc and world_model check the env by it

    def contents(path):
        items = {}
        with h5py.File(path) as file:
            file.visititems(lambda name, item: items.__setitem__(name, (
                item[()], item.dtype) if isinstance(item, h5py.Dataset) else dict(item.attrs)))
            items["data attributes"] = dict(file["data"].attrs)
        return items

    written, read_back = contents(source), contents(back)
    assert written.keys() == read_back.keys()
    for name, value in written.items():
        if isinstance(value, tuple):
            np.testing.assert_array_equal(read_back[name][0], value[0], err_msg=name)
            assert read_back[name][1] == value[1], name
        else:
            assert str(read_back[name]) == str(value), name  # attributes: num_samples, success, env_args


def test_bc_learns_from_a_lerobot_dataset_and_its_sizes_must_match_the_env(tmp_path):
    folder = v30_dataset(tmp_path / "dataset")
    cfg = bc.Config(data=f"lerobot:{folder}", data_filter="all", val_fraction=0.0, batch_size=8,
                    hidden_layer_sizes=(8,))
    demos = offline.load_data(cfg, FlatEnv())
    np.testing.assert_array_equal(demos.obs, np.concatenate([episode["state"] for episode in EPISODES]))
    cfg = offline.resolved_config(cfg, demos)
    state = bc.init(jax.random.PRNGKey(0), FlatEnv(), cfg, demos)
    state, metrics = jax.jit(lambda s: bc.train_step(s, FlatEnv(), cfg, demos))(state)
    assert np.isfinite(float(metrics["loss/bc"]))

    class ThreeActions(FlatEnv):
        action_size = 3

    with pytest.raises(DatasetError, match="actions have 2 values per step but the env .ThreeActions. takes"):
        offline.load_data(cfg, ThreeActions())


def damaged(folder, change):
    info = json.loads((folder / "meta/info.json").read_text())
    change(info)
    write_json(folder / "meta/info.json", info)
    return folder


def corrupted(folder):
    (folder / "data/chunk-000/file-001.parquet").write_bytes(b"not parquet")
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda path: path / "missing", "no such folder"),
    (lambda path: path, "has no meta/info.json, so it is not a LeRobot dataset; give the dataset's root"),
    (lambda path: damaged(v30_dataset(path / "d"), lambda info: info.update(codebase_version="v1.6")),
     "codebase_version 'v1.6' is not one this reader knows"),
    (lambda path: damaged(v30_dataset(path / "d"), lambda info: info["features"].pop("action")),
     "no 'action' feature"),
    (lambda path: corrupted(v30_dataset(path / "d")), "file-001.parquet: not a readable parquet file"),
])
def test_bad_datasets_name_the_problem(make, message, tmp_path):
    with pytest.raises(DatasetError, match=message):
        read_file(f"lerobot:{make(tmp_path)}", full=False)  # what training reads


def test_the_cli_says_what_is_wrong_in_one_line_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "jaxrl.cli", "train", "cartpole-balance", "bc",
                             f"data=lerobot:{tmp_path}", f"run_dir={tmp_path / 'run'}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == cli.EXIT_USAGE
    assert "has no meta/info.json, so it is not a LeRobot dataset" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
