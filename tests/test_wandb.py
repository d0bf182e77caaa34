"""train.wandb: a run logged to Weights & Biases offline, read back from the run files wandb writes."""

import json
import struct
import time
from pathlib import Path

import pytest
from conftest import with_train
from google.protobuf.message import DecodeError
from wandb.proto.wandb_internal_pb2 import Record

from jaxrl import config, wandb_sink
from jaxrl.logger import read_metrics
from jaxrl.train import train

BLOCK = 32768  # wandb's transaction log is a LevelDB-style log: 32 KiB blocks of framed chunks
FULL, LAST = 1, 4


def wandb_records(path: Path) -> list[Record]:
    """The protobuf records of a `.wandb` file: a 7-byte header, then chunks framed as
    (crc32: 4 bytes, length: 2, type: 1), a record split over chunks where a block ends."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, chunks, records = 7, [], []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        length, kind = struct.unpack("<HB", data[position + 4:position + 7])
        if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            position += left
            continue
        chunks.append(data[position + 7:position + 7 + length])
        position += 7 + length
        if kind in (FULL, LAST):
            record = Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


def written_records(path: Path, timeout: float = 60.0) -> list[Record]:
    """The records of a `.wandb` file once W&B's writer, a process of its own, has written its exit record:
    `run.finish()` can return before that on a loaded machine, when the file is still partial."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = wandb_records(path)
            if any(record.WhichOneof("record_type") == "exit" for record in records):
                return records
        except (DecodeError, struct.error):  # a record caught half-written
            pass
        assert time.monotonic() < deadline, f"{path} holds no exit record after {timeout:.0f} s"
        time.sleep(0.2)


def logged(run_dir: Path) -> tuple[list[dict], dict, set[str]]:
    """(history rows, config, run ids) of every offline W&B run in `run_dir`. A row maps each scalar to
    its value and each media (a video, an image) to its fields."""
    rows, settings, ids = [], {}, set()
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in written_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                row = {}
                for item in record.history.item:
                    name, *field = item.nested_key or [item.key]
                    value = json.loads(item.value_json)
                    row[name] = row.get(name, {}) | {field[0]: value} if field else value
                rows.append(row)
            elif kind in ("run", "config"):  # the config comes with the run, or after it in updates
                if kind == "run":
                    ids.add(record.run.run_id)
                updates = record.run.config.update if kind == "run" else record.config.update
                settings.update({item.key or item.nested_key[0]: json.loads(item.value_json)
                                 for item in updates})
    return rows, settings, ids


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No W&B credentials and no mode chosen: what a machine without a `wandb login` has."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_without_credentials_a_run_logs_its_records_config_video_and_curve_offline(tiny_config, tmp_path,
                                                                                 offline, capsys):
    assert wandb_sink.mode() == "offline"
    run_dir = tmp_path / "run"
    cfg = with_train(tiny_config, wandb=True, video_every=1024, video_steps=5)
    train(cfg, run_dir)
    assert "(offline): `wandb sync" in capsys.readouterr().out
    rows, settings, ids = logged(run_dir)
    assert settings["train"]["wandb"] is True and settings["algo"]["num_envs"] == 16
    records = read_metrics(run_dir / "metrics.jsonl")
    scalar_rows = [row for row in rows if "loss/total" in row or "eval/episode_return" in row]
    assert [row["env_steps"] for row in scalar_rows] == [r["env_steps"] for r in records]
    for row, record in zip(scalar_rows, records, strict=True):
        assert all(row[key] == pytest.approx(value) for key, value in record.items() if key != "call")
    media = {key: row[key]["_type"] for row in rows for key in row if isinstance(row[key], dict)}
    assert media == {"eval/video": "video-file", "learning_curve": "image-file"}

    # --resume goes on logging to the same W&B run.
    train(with_train(config.load_saved(run_dir / "config.yaml"), num_timesteps=2048), run_dir, resume=True)
    rows, _, resumed_ids = logged(run_dir)
    assert resumed_ids == ids and len(ids) == 1
    assert max(row.get("env_steps", 0) for row in rows) == 2048



def test_without_the_package_the_run_stops_before_compiling_and_names_the_install(tiny_config, tmp_path,
                                                                                 monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(
        name, *a))
    with pytest.raises(config.ConfigError, match=r"pip install -e '\.\[wandb\]'"):
        train(with_train(tiny_config, wandb=True), tmp_path / "run")
    assert not (tmp_path / "run").exists()
