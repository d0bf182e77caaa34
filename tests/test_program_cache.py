"""jaxrl.program_cache: a warm start loads its programs instead of tracing them, and trains alike."""

import pickle
import sys

import pytest
import toy_envs
from conftest import reproducible, with_train
from tiny_runs import TINY_CARTPOLE_PPO

from jaxrl import cli, config, program_cache, runtime
from jaxrl.logger import read_metrics
from jaxrl.train import program_cache as run_program_cache
from jaxrl.train import train


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "PROGRAM_CACHE", True)  # the suite turns it off (conftest)
    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path / "cache")
    # A pytest-xdist worker's __main__ has no file, as an interactive session's, where the cache is off.
    monkeypatch.setattr(sys.modules["__main__"], "__file__", __file__, raising=False)
    return tmp_path / "cache" / "programs"


def test_an_interactive_session_traces_as_before(tiny_config, cache_on, monkeypatch):
    monkeypatch.delattr(sys.modules["__main__"], "__file__")
    assert run_program_cache(tiny_config) is None


def test_a_second_start_loads_every_program_and_trains_to_the_same_numbers(tmp_path, cache_on, monkeypatch):
    # The step counter of tests/toy_envs.py: its programs trace and compile in a few seconds.
    cfg = config.load(toy_envs.register(monkeypatch), "ppo", overrides=TINY_CARTPOLE_PPO, preset="cpu")
    first = train(cfg, tmp_path / "first")
    assert not any(program.from_program_cache for program in first.programs)
    assert len(list(cache_on.glob("*.program"))) == 3  # init, train call, evaluate
    second = train(cfg, tmp_path / "second")
    assert [(p.name, p.from_program_cache, p.trace_seconds) for p in second.programs] == [
        ("init", True, 0.0),
        ("train call", True, 0.0),
        ("evaluate", True, 0.0),
    ]
    assert reproducible(read_metrics(second.run_dir / "metrics.jsonl")) == reproducible(
        read_metrics(first.run_dir / "metrics.jsonl")
    )
    # Resumed to train longer, it loads them too (how long a run trains is not part of the key).
    resumed = train(with_train(cfg, num_timesteps=2048), tmp_path / "second", resume=True)
    assert [(p.name, p.from_program_cache) for p in resumed.programs] == [
        ("train call", True),
        ("evaluate", True),
    ]


def test_jaxrl_eval_loads_the_evaluation_program_its_run_kept(tmp_path, cache_on, monkeypatch, capsys):
    cfg = config.load(toy_envs.register(monkeypatch), "ppo", overrides=TINY_CARTPOLE_PPO, preset="cpu")
    run = train(cfg, tmp_path / "run")
    loads = []
    load = program_cache.ProgramCache.load
    monkeypatch.setattr(program_cache.ProgramCache, "load",
                        lambda cache, key: loads.append(load(cache, key)) or loads[-1])
    assert cli.main(["eval", str(run.run_dir)]) == 0  # as many episodes as the run evaluated with
    assert len(loads) == 1 and loads[0] is not None
    assert len(list(cache_on.glob("*.program"))) == 3  # nothing new kept
    printed = capsys.readouterr().out
    assert f"{cfg.train.num_eval_envs} episodes:" in printed and "compiled evaluate " in printed
    assert "(program cache " in printed, printed  # not traced


def test_the_key_changes_with_the_settings_the_source_and_the_shapes(tiny_config, cache_on, monkeypatch):
    import jax.numpy as jnp

    args = (jnp.zeros((2, 3)),)
    key = run_program_cache(tiny_config).key("train call", args)
    other_settings = run_program_cache(with_train(tiny_config, iterations_per_call=3))
    assert other_settings.key("train call", args) != key
    assert run_program_cache(with_train(tiny_config, num_timesteps=99_999)).key("train call", args) == key
    assert run_program_cache(tiny_config).key("train call", (jnp.zeros((2, 4)),)) != key
    monkeypatch.setattr(program_cache, "code_digest", lambda: "edited")
    assert run_program_cache(tiny_config).key("train call", args) != key


def test_a_damaged_file_is_a_miss_and_is_removed(tmp_path):
    cache = program_cache.ProgramCache(tmp_path, "settings")
    (tmp_path / "k.program").write_bytes(pickle.dumps(b"not a program")[:-3])
    assert cache.load("k") is None
    assert not (tmp_path / "k.program").exists()
