"""Config layering and the CLI's handling of bad input: clear message, non-zero exit, no traceback."""

import re
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
    (["config"], "usage: jaxrl config ENV ALGO [key=value ...]"),  # brackets are text, not rich markup
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


def _config_rows(argv, capsys) -> tuple[dict[str, list[str]], str]:
    """{key: [value, type(, doc)]} of `jaxrl config` argv's settings (columns are two or more spaces
    apart), and all it printed."""
    assert cli.main(["config", *argv]) == 0
    out = capsys.readouterr().out
    rows = [re.split(r" {2,}", line.strip()) for line in out.splitlines()[1:] if line.startswith("  ")]
    return {key: rest for key, *rest in rows}, out


def _leaf_count(tree: dict) -> int:
    """Settings in a section's tree: a group of settings (env.physics) counts its members."""
    return sum(_leaf_count(value) if isinstance(value, dict) else 1 for value in tree.values())


def test_config_shows_each_setting_as_train_resolves_it(capsys):
    rows, out = _config_rows(["cartpole-balance", "ppo", "--preset", "cpu", "entropy_cost=0.02"], capsys)
    assert rows["algo.learning_rate"] == ["0.0005", "float", "Adam step size"]  # the recipe over the default
    assert rows["train.num_timesteps"][:2] == ["4000000", "int"]  # the recipe's cpu preset
    assert rows["algo.entropy_cost"] == ["0.02", "float", "weight of the entropy bonus"]  # the override
    assert rows["algo.policy_hidden_layer_sizes"] == ["[32, 32, 32, 32]", "tuple[int, ...]"]  # no doc
    assert rows["train.run_dir"][:2] == ["''", "str"]
    resolved = config.load("cartpole-balance", "ppo", preset="cpu", overrides=["entropy_cost=0.02"])
    assert len(rows) == sum(_leaf_count(config.as_dict(getattr(resolved, s))) for s in config.SECTIONS)
    assert "preset cpu" in out and "cartpole_balance_ppo.yaml" in out


def test_config_flattens_groups_of_settings(capsys):
    rows, _ = _config_rows(["go1-joystick", "ppo", "--preset", "full", "rewards.torques=-1e-4"], capsys)
    assert rows["env.rewards.torques"] == ["-0.0001", "float"]  # no comment in the source: no doc
    assert rows["env.commands.vx"] == ["[-1.0, 1.5]", "tuple[float, float]", "forward speed range, m/s"]
    assert "env.rewards" not in rows and "env.commands" not in rows


def test_config_of_a_learner_from_demos_shows_the_missing_data(capsys):
    rows, out = _config_rows(["grasp-lift-cube", "bc"], capsys)
    assert rows["algo.data"][:2] == ["''", "str"]
    assert "would refuse" in out and "pass data=FILE.hdf5" in out
    rows, out = _config_rows(["grasp-lift-cube", "bc", "data=demos.hdf5"], capsys)
    assert rows["algo.data"][:2] == ["demos.hdf5", "str"] and "would refuse" not in out


def test_field_docs_are_the_trailing_comments_inherited_too():
    from envs_mjx.go1.joystick import Go1JoystickConfig, Go1JoystickRoughConfig
    from jaxrl.config_docs import field_docs

    docs = field_docs(Go1JoystickRoughConfig)
    assert docs["terrain"] == field_docs(Go1JoystickConfig)["terrain"] == \
        '"flat" or "rough" (procedural heightfield, see `rough`)'  # redefined without a comment
    assert docs["episode_length"] == "control steps of 0.02 s: 20 s episodes"  # the subclass's own
    assert "rewards" not in docs  # a field without a comment


def test_unknown_key_points_to_jaxrl_config():
    with pytest.raises(config.ConfigError, match="`jaxrl config cartpole-balance ppo` shows every key"):
        config.load("cartpole-balance", "ppo", overrides=["no_such_setting=1"])


@pytest.mark.parametrize("flags, named", [
    (["--preset", "cpu"], "--preset"), (["--preset", "auto"], "--preset"),
    (["--config", "configs/cartpole_balance_ppo.yaml"], "--config"),
])
def test_resume_refuses_config_and_preset(flags, named, tmp_path, capsys):
    argv = ["train", "--resume", str(tmp_path), *flags, "train.num_timesteps=2048"]
    assert cli.main(argv) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert f"saved config.yaml, so {named} cannot apply" in out and "key=value overrides" in out
    assert cli.main(["train", "--resume", str(tmp_path), "train.num_timesteps=2048"]) == cli.EXIT_USAGE
    assert "is not a run directory" in capsys.readouterr().out  # overrides alone are fine


@pytest.mark.parametrize("command", [["eval", "RUN"], ["export", "RUN", "--out", "p.onnx"],
                                     ["play", "--compare", "RUN"]])
def test_checkpoint_is_best_latest_or_steps_everywhere(command, tmp_path, capsys):
    argv = [str(tmp_path) if word == "RUN" else word for word in command]
    for choice in ("best", "latest", "10,000", "512"):  # parsed, then the run directory is checked
        assert cli.main([*argv, "--checkpoint", choice]) == cli.EXIT_USAGE
        assert "is not a run directory" in capsys.readouterr().out
    assert cli.main([*argv, "--checkpoint", "final"]) == cli.EXIT_USAGE
    assert "--checkpoint takes best, latest or a number of steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main([command[0], "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "best|latest|STEP" in helped and "gradient steps for runs of bc and diffusion" in helped


@pytest.mark.parametrize("recipe", config.list_recipes(), ids=lambda path: path.stem)
@pytest.mark.parametrize("preset", ["full", "cpu"])
def test_every_recipe_loads_and_passes_its_learners_checks_in_both_presets(recipe, preset):
    from_demos = recipe.stem.endswith(("_bc", "_diffusion", "_world_model"))  # data named on the command line
    cfg = config.load(None, None, recipe, preset=preset, overrides=["data=demos.hdf5"] if from_demos else [])
    # Named configs/<env>_<algo>.yaml (what `jaxrl train ENV ALGO` reads) or <env>_<variant>_<algo>.yaml
    # (`--config`, e.g. cartpole_balance_pixels_dreamer).
    env_part, algo_part = cfg.env_name.replace("-", "_"), f"_{cfg.algo_name}"
    assert recipe.stem.startswith(env_part) and recipe.stem.endswith(algo_part), recipe.name
    assert config.default_recipe(cfg.env_name, cfg.algo_name).exists()
