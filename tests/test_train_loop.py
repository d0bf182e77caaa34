"""The shared outer loop: determinism, resume, compilation, divergence, run artifacts."""

import contextlib
import math
import os
import signal
from pathlib import Path

import jax
import pytest
from conftest import reproducible, with_algo, with_train

from jaxrl import cli, device_call
from jaxrl.algos import ppo
from jaxrl.checkpoint import Checkpointer
from jaxrl.evaluation import make_evaluator
from jaxrl.logger import read_metrics
from jaxrl.runs import restore_run, run_evaluator
from jaxrl.train import TrainingDiverged, train


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


@contextlib.contextmanager
def duration_events_to(listener):
    """jax.monitoring's duration events (compile, trace, ...) go to `listener(event, seconds, **kwargs)`."""
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_nothing_compiles_after_the_first_call(tiny_config, tmp_path):
    events = []
    first_call_done = []

    def listener(event, duration, **kwargs):
        if first_call_done and ("compile" in event or "trace" in event):
            events.append(event)

    with duration_events_to(listener):
        train(with_train(tiny_config, num_timesteps=2048, checkpoint_every=256, eval_every=256), tmp_path,
              on_record=lambda record: record["call"] >= 1 and first_call_done.append(record["call"]))
    assert len(first_call_done) == 8
    assert events == []


def test_a_resumed_run_compiles_none_of_the_programs_it_ran_before(tiny_config, tmp_path):
    """Resumed from its checkpoint, a run (training call, evaluation, videos) lowers the programs it
    lowered before and finds them in the persistent cache; so does an evaluation of its restored
    checkpoint with as many episodes (`jaxrl eval`, benchmarks.demo_learning). Compilations under a second
    are not counted: the cache keeps only those over half a second (runtime.configure_jax)."""
    cfg = with_train(tiny_config, video_every=512, video_steps=4)
    assert train(with_train(cfg, num_timesteps=512), tmp_path).status == "finished"
    compiled = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and duration > 1.0:
            compiled.append(duration)

    with duration_events_to(listener):
        resumed = train(cfg, tmp_path, resume=True)
        run = restore_run(tmp_path, "best")
        evaluate, compiler = run_evaluator(run, cfg.train.num_eval_envs)
        assert set(evaluate(run.params, jax.random.PRNGKey(0))) >= {"eval/episode_return"}
    assert resumed.status == "finished"
    assert compiled == [] and compiler.times[-1].compile_seconds < 1.0
    # What `jaxrl train` prints: each program's trace, lowering and compile, summing to the total.
    assert [program.name for program in resumed.programs] == ["train call", "evaluate", "videos"]
    assert all(program.compile_seconds < 1.0 for program in resumed.programs)
    assert resumed.compile_seconds == pytest.approx(sum(program.seconds for program in resumed.programs))


def test_divergence_stops_with_a_named_culprit_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    diverging = with_algo(tiny_config, reward_scaling=float("inf"))
    with pytest.raises(TrainingDiverged, match="not finite") as error:
        train(diverging, tmp_path)
    assert "metric " in str(error.value) or "parameter " in str(error.value)
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 0


def printed_results(out: str) -> dict:
    """{key: value} of the table `jaxrl eval` prints."""
    pairs = (line.split() for line in out.splitlines() if line.startswith("  eval/"))
    return {key: float(value) for key, value in pairs}


def test_cli_eval_evaluates_the_checkpoint_it_names(unbroken_run, tmp_path, capsys):
    """The run's best checkpoint is replaced by an untrained state: `eval --checkpoint best` prints that
    policy's figures, `--checkpoint latest` the trained one's."""
    import shutil

    from jaxrl import config
    from jaxrl.train import make_envs

    run_dir = tmp_path / "run"
    shutil.copytree(unbroken_run[0], run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "best")
    cfg = config.load_saved(run_dir / "config.yaml")
    train_env, eval_env = make_envs(cfg)
    untrained = jax.jit(lambda key: ppo.init(key, train_env, cfg.algo))(jax.random.PRNGKey(5))
    checkpointer = Checkpointer(run_dir / "checkpoints")
    checkpointer.save_best(0, untrained, {"call": 0, "env_steps": 0, "best_score": None})
    checkpointer.close()

    printed = {}
    for which in ("best", "latest"):
        assert cli.main(["eval", str(run_dir), "--checkpoint", which, "--episodes", "4", "--seed", "3"]) == 0
        printed[which] = printed_results(capsys.readouterr().out)
    evaluate = make_evaluator(eval_env, ppo, 4, cfg.env.episode_length)

    def figures(params):
        return {k: float(v) for k, v in evaluate(params, jax.random.PRNGKey(3)).items()}

    assert printed["best"] == pytest.approx(figures(ppo.policy_params(untrained)), abs=1e-3)
    assert printed["latest"] == pytest.approx(figures(restore_run(run_dir, "latest").params), abs=1e-3)
    assert printed["best"]["eval/episode_return"] != pytest.approx(printed["latest"]["eval/episode_return"])


def damage(checkpoint: Path) -> None:
    """Overwrite every array file of a checkpoint's state, as a disk fault would."""
    for path in (checkpoint / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"garbage")


def test_a_damaged_checkpoint_is_one_line_naming_it(unbroken_run, tmp_path):
    """Through the installed entry point: nothing of Orbax's or asyncio's logging reaches the terminal."""
    import shutil
    import subprocess
    import sys

    run_dir = tmp_path / "damaged"
    shutil.copytree(unbroken_run[0], run_dir)
    (best,) = (run_dir / "checkpoints" / "best").iterdir()
    damage(best)
    result = subprocess.run([sys.executable, "-m", "jaxrl.cli", "eval", str(run_dir)], capture_output=True,
                            text=True, timeout=300)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == cli.EXIT_USAGE
    assert len(lines) == 1 and "could not be read" in lines[0] and str(best) in lines[0], lines


def test_resume_skips_a_damaged_newest_checkpoint_and_gives_the_unbroken_runs_numbers(
        tiny_config, unbroken_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(unbroken_run[0], run_dir)
    latest = run_dir / "checkpoints" / "latest"
    newest = max(int(p.name) for p in latest.iterdir() if p.name.isdigit())
    damage(latest / str(newest))
    capsys.readouterr()
    result = train(with_train(tiny_config, num_timesteps=1536), run_dir, resume=True)
    out = capsys.readouterr().out
    assert result.status == "finished"
    assert "could not be read" in out and "resuming from the checkpoint before" in out
    assert (run_dir / "checkpoints" / "damaged" / f"latest-{newest}").is_dir()
    longer = tmp_path / "longer"
    train(with_train(tiny_config, num_timesteps=1536), longer)
    want = reproducible(read_metrics(longer / "metrics.jsonl"))
    assert reproducible(read_metrics(run_dir / "metrics.jsonl")) == want


def interrupting(function, signum=signal.SIGINT, times=1):
    """`function`, which first sends this process `signum` (`times` times), as a user or scheduler would
    while it runs."""
    def wrapped(*args, **kwargs):
        for _ in range(times):
            os.kill(os.getpid(), signum)
        return function(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("place, signum", [
    ("evaluation", signal.SIGINT), ("checkpoint", signal.SIGINT), ("checkpoint", signal.SIGTERM),
    ("video", signal.SIGINT)])
def test_a_signal_anywhere_in_a_call_resumes_to_the_unbroken_runs_records(
        place, signum, tiny_config, unbroken_run, tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM while a call's evaluation, checkpoint or video is being made: the run stops once
    the call is recorded, and resumed it gives the unbroken run's records."""
    import jaxrl.train

    calls = []
    # (where, which of its calls is the one at the run's second device call: evaluation runs at 0 too)
    targets = {"evaluation": (jaxrl.train, "add_success_interval", 2),
               "checkpoint": (Checkpointer, "save", 1), "video": (jaxrl.train.TrainingVideos, "record", 1)}
    owner, name, nth = targets[place]
    original = getattr(owner, name)

    def at_the_second_device_call(*args, **kwargs):
        calls.append(1)
        return (interrupting(original, signum) if len(calls) == nth else original)(*args, **kwargs)

    monkeypatch.setattr(owner, name, at_the_second_device_call)
    cfg = tiny_config if place != "video" else with_train(tiny_config, video_every=512, video_steps=4)
    interrupted = train(cfg, tmp_path)
    monkeypatch.undo()
    assert interrupted.status == "interrupted" and interrupted.steps < 1024
    assert train(cfg, tmp_path, resume=True).status == "finished"
    want = reproducible(read_metrics(unbroken_run[0] / "metrics.jsonl"))
    assert reproducible(read_metrics(tmp_path / "metrics.jsonl")) == want


def test_a_second_signal_stops_at_once_and_the_run_resumes_from_its_last_checkpoint(
        tiny_config, unbroken_run, tmp_path, monkeypatch):
    saves = []
    original = Checkpointer.save

    def save(self, step, *args):
        saves.append(step)
        return (interrupting(original, times=2) if step == 4 else original)(self, step, *args)

    monkeypatch.setattr(Checkpointer, "save", save)
    assert train(tiny_config, tmp_path).status == "interrupted"
    monkeypatch.undo()
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 2
    assert train(tiny_config, tmp_path, resume=True).status == "finished"
    want = reproducible(read_metrics(unbroken_run[0] / "metrics.jsonl"))
    assert reproducible(read_metrics(tmp_path / "metrics.jsonl")) == want


@pytest.mark.parametrize("override, named", [
    ("train.iterations_per_call=4", "train.iterations_per_call (2 -> 4)"),
    ("algo.unroll_length=16", "algo.unroll_length (8 -> 16)"),
    ("algo.num_envs=32", "algo.num_envs (16 -> 32)")])
def test_resume_refuses_a_change_of_step_accounting_naming_it(override, named, unbroken_run, tmp_path,
                                                                capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(unbroken_run[0], run_dir)
    before = (run_dir / "metrics.jsonl").read_text()
    words = ["train", "--resume", str(run_dir), "train.num_timesteps=2048", override]
    assert cli.main(words) == cli.EXIT_USAGE
    out = " ".join(capsys.readouterr().out.split())
    assert named in out and "step accounting" in out
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_an_env_setting_the_env_refuses_is_a_config_error(capsys):
    assert cli.main(["train", "cartpole-balance", "ppo", "env.episode_length=0"]) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "episode_length" in out and ">= 1" in out and "Traceback" not in out


def test_the_device_call_takes_the_state_in_place(tiny_config):
    from jaxrl.train import make_envs

    train_env, _ = make_envs(tiny_config)
    state = jax.jit(lambda key: ppo.init(key, train_env, tiny_config.algo))(jax.random.PRNGKey(0))
    run_call = device_call.make_device_call(ppo, train_env, tiny_config.algo, 2)
    new_state, rows, report = run_call(state, None)
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state))  # donated: one state on the device
    assert bool(report.finite) and int(report.iterations) == 2
    assert int(new_state.iteration) == 2 and rows["loss/total"].shape == (2,)


def test_a_nan_in_one_envs_metrics_does_not_stop_the_run(tiny_config, tmp_path, monkeypatch):
    """An env whose metric is NaN once in half its episodes: the run goes on, every record finite."""
    from toy_envs import register

    from jaxrl import config

    name = register(monkeypatch)
    cfg = config.load(name, "ppo", overrides=[
        "env.nan_share=0.5", "env.horizon=7", "algo.num_envs=16", "algo.unroll_length=8",
        "algo.num_minibatches=2", "train.iterations_per_call=2", "train.num_timesteps=512",
        "train.eval_every=256", "train.num_eval_envs=8", "train.tensorboard=false"])
    assert train(cfg, tmp_path).status == "finished"
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert all(math.isfinite(v) for r in records for v in r.values())
    assert any("train/m" in r for r in records)
