"""Config layering and the CLI's handling of bad input: clear message, non-zero exit, no traceback."""

import subprocess
import sys

import pytest

from jaxrl import cli, config


def test_layers_recipe_then_cpu_preset_then_overrides():
    full = config.load("cartpole-balance", "ppo", preset="full")
    cpu = config.load("cartpole-balance", "ppo", preset="cpu")
    assert full.algo.num_envs == 1024 and cpu.algo.num_envs == 256
    assert full.algo.reward_scaling == cpu.algo.reward_scaling == 10.0  # recipe beats defaults
    over = config.load("cartpole-balance", "ppo", preset="cpu",
                       overrides=["num_envs=64", "train.seed=5", "learning_rate=3e-4",
                                  "policy_hidden_layer_sizes=[8, 8]"])
    assert (over.algo.num_envs, over.train.seed, over.algo.learning_rate) == (64, 5, 3e-4)
    assert over.algo.policy_hidden_layer_sizes == (8, 8)


def test_saved_config_round_trips(tmp_path):
    cfg = config.load("cartpole-balance", "ppo", preset="cpu", overrides=["train.seed=9"])
    config.save(cfg, tmp_path / "config.yaml")
    assert config.load_saved(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("overrides, message", [
    (["learning_rat=1e-3"], "did you mean 'algo.learning_rate'"),
    (["algo.num_env=4"], "did you mean 'num_envs'"),
    (["train.seed=abc"], "train.seed: expected int"),
    (["algo.num_envs=2.5"], "algo.num_envs: expected int"),
    (["algo.normalize_observations=3"], "expected bool"),
    (["seed"], "not of the form key=value"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load("cartpole-balance", "ppo", overrides=overrides)


def test_unknown_key_in_recipe_file_suggests_closest(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("env_name: cartpole-balance\nalgo_name: ppo\nalgo:\n  entropy_cots: 0.1\n")
    with pytest.raises(config.ConfigError, match="did you mean 'entropy_cost'"):
        config.load(None, None, recipe)


@pytest.mark.parametrize("argv, message", [
    (["train", "cartpole-balanse", "ppo"], "did you mean 'cartpole-balance'"),
    (["train", "cartpole-balance", "ppq"], "did you mean 'ppo'"),
    (["train", "cartpole-balance", "ppo", "learnin_rate=1"], "did you mean 'algo.learning_rate'"),
    (["train", "cartpole-balance", "ppo", "num_envs=many"], "algo.num_envs: expected int"),
    (["train", "cartpole-balance"], "name both the env and the algorithm"),
    (["eval", "/nonexistent/run"], "is not a run directory"),
])
def test_cli_reports_user_errors_without_traceback(argv, message, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert message in out and "Traceback" not in out


def test_installed_entry_point_exits_nonzero_with_one_clear_line():
    result = subprocess.run([sys.executable, "-m", "jaxrl.cli", "train", "cartpole-balance", "sacc"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == cli.EXIT_USAGE
    assert "unknown algorithm 'sacc'; did you mean 'sac'?" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "Failed to import" not in result.stdout + result.stderr


def test_list_and_help_describe_the_tool(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cartpole-balance" in out and "ppo" in out and "cartpole_balance_ppo.yaml" in out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    assert "--resume" in capsys.readouterr().out
