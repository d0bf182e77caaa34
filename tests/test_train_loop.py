"""The shared outer loop: determinism, resume, compilation, divergence, run artifacts."""

import math

import jax
import pytest
from conftest import with_algo, with_train

from jaxrl import cli
from jaxrl.checkpoint import Checkpointer
from jaxrl.logger import read_metrics
from jaxrl.train import TrainingDiverged, train


def reproducible(records):
    """Records without wall-clock figures."""
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


@pytest.fixture(scope="session")
def unbroken_run(tiny_config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("unbroken")
    result = train(tiny_config, run_dir)
    return run_dir, result


def test_run_directory_holds_every_artifact(unbroken_run):
    run_dir, result = unbroken_run
    assert result.status == "finished"
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "learning_curve.png", "checkpoints"} <= names
    assert (run_dir / "checkpoints" / "best").is_dir() and (run_dir / "checkpoints" / "latest").is_dir()
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[0]["env_steps"] == 0 and "eval/episode_return" in records[0]
    assert records[-1]["env_steps"] == result.steps >= 1024
    assert all(math.isfinite(v) for r in records for v in r.values())


def test_tensorboard_events_are_written(tiny_config, tmp_path):
    train(with_train(tiny_config, tensorboard=True, num_timesteps=256), tmp_path)
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_same_seed_same_numbers_other_seed_other_numbers(tiny_config, unbroken_run, tmp_path):
    first = reproducible(read_metrics(unbroken_run[0] / "metrics.jsonl"))
    train(tiny_config, tmp_path / "again")
    assert reproducible(read_metrics(tmp_path / "again" / "metrics.jsonl")) == first
    train(with_train(tiny_config, seed=1), tmp_path / "other")
    other = reproducible(read_metrics(tmp_path / "other" / "metrics.jsonl"))
    assert other != first
    assert other[1]["loss/total"] != first[1]["loss/total"]


def test_interrupted_then_resumed_run_matches_unbroken_run(tiny_config, unbroken_run, tmp_path):
    def stop_after_two_calls(record):
        if record["call"] == 2:
            raise KeyboardInterrupt

    interrupted = train(tiny_config, tmp_path, on_record=stop_after_two_calls)
    assert interrupted.status == "interrupted"
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 2
    resumed = train(tiny_config, tmp_path, resume=True)
    assert resumed.status == "finished"
    want = reproducible(read_metrics(unbroken_run[0] / "metrics.jsonl"))
    assert reproducible(read_metrics(tmp_path / "metrics.jsonl")) == want


def test_a_fresh_run_never_overwrites_an_existing_one(tiny_config, unbroken_run, capsys):
    run_dir = unbroken_run[0]
    before = (run_dir / "metrics.jsonl").read_text()
    assert cli.main(["train", "cartpole-balance", "ppo", f"run_dir={run_dir}"]) == cli.EXIT_USAGE
    assert "already holds a run" in capsys.readouterr().out
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_resuming_a_finished_run_says_how_to_train_longer(unbroken_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "finished"
    shutil.copytree(unbroken_run[0], run_dir)
    assert cli.main(["train", "--resume", str(run_dir)]) == cli.EXIT_USAGE
    assert "already trained to 1,024 env steps" in capsys.readouterr().out
    assert cli.main(["train", "--resume", str(run_dir), "train.num_timesteps=1536"]) == 0
    assert read_metrics(run_dir / "metrics.jsonl")[-1]["env_steps"] == 1536


def test_nothing_compiles_after_the_first_call(tiny_config, tmp_path):
    events = []
    first_call_done = []

    def listener(event, duration, **kwargs):
        if first_call_done and ("compile" in event or "trace" in event):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        train(with_train(tiny_config, num_timesteps=2048, checkpoint_every=256, eval_every=256), tmp_path,
              on_record=lambda record: record["call"] >= 1 and first_call_done.append(record["call"]))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert len(first_call_done) == 8
    assert events == []


def test_divergence_stops_with_a_named_culprit_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    diverging = with_algo(tiny_config, reward_scaling=float("inf"))
    with pytest.raises(TrainingDiverged, match="not finite") as error:
        train(diverging, tmp_path)
    assert "metric " in str(error.value) or "parameter " in str(error.value)
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 0


def test_cli_eval_restores_the_best_checkpoint(unbroken_run, capsys):
    assert cli.main(["eval", str(unbroken_run[0]), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "eval/episode_return" in out and "best checkpoint" in out


def test_unreadable_checkpoint_is_a_clear_error(unbroken_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "damaged"
    shutil.copytree(unbroken_run[0], run_dir)
    for array_dir in (run_dir / "checkpoints" / "best").rglob("*"):
        if array_dir.is_file() and array_dir.suffix not in (".json",) and "state" in str(array_dir):
            array_dir.write_bytes(b"garbage")
    assert cli.main(["eval", str(run_dir)]) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "could not be read" in out and "Traceback" not in out
