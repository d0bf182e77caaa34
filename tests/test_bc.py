"""Behavioural cloning: learns the grasp from a few expert demos, and refuses data it cannot use."""

import json
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import cli, config
from jaxrl.algos import bc
from jaxrl.data import demos as demo_data
from jaxrl.evaluation import add_success_interval
from jaxrl.train import best_score, train

NUM_DEMOS = 20


@pytest.fixture(scope="module")
def grasp_demos(tmp_path_factory):
    """20 successful expert demos of grasp-lift-cube with a little action noise.

    Collected with the settings of test_grasp's CLI test, so the compiled round is shared through
    the persistent compilation cache.
    """
    path = tmp_path_factory.mktemp("demos") / "grasp.hdf5"
    assert cli.main(["collect", "grasp-lift-cube", "--episodes", str(NUM_DEMOS), "--num-envs", "6",
                     "--out", str(path), "--noise", "0.05", "--only-success"]) == 0
    return path


def grasp_bc_config(data, *overrides) -> config.RunConfig:
    return config.load("grasp-lift-cube", "bc", preset="cpu", overrides=[
        f"data={data}", "env.episode_length=150", "train.num_timesteps=1000", "train.iterations_per_call=250",
        "train.eval_every=500", "train.checkpoint_every=1000", "train.num_eval_envs=64",
        "train.tensorboard=false", *overrides])


@pytest.mark.slow
def test_bc_learns_to_lift_the_cube_from_20_demos(grasp_demos, tmp_path, capsys):
    result = train(grasp_bc_config(grasp_demos), tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/success" in r]
    assert evals[0]["grad_steps"] == 0 and evals[0]["eval/success"] <= 0.1  # untrained: it does not lift
    assert result.final_eval["eval/success"] >= 0.8, evals
    assert evals[-1]["eval/success_ci_low"] < evals[-1]["eval/success"] <= evals[-1]["eval/success_ci_high"]
    assert evals[-1]["val/loss"] < evals[0]["val/loss"]

    # The checkpoint carries the normalization: `jaxrl eval` restores it and acts without the demo file.
    capsys.readouterr()  # the training's output
    shutil.move(grasp_demos, tmp_path / "elsewhere.hdf5")
    try:
        assert cli.main(["eval", str(tmp_path / "run"), "--episodes", "64", "--seed", "7"]) == 0
    finally:
        shutil.move(tmp_path / "elsewhere.hdf5", grasp_demos)
    out = capsys.readouterr().out
    assert "gradient steps, 64 episodes" in out  # a bc checkpoint counts gradient steps
    success = float(out.split("eval/success ")[1].split()[0])
    assert success >= 0.8, out

def synthetic_demos(num_episodes=12, length=20, seed=0) -> demo_data.DemoSet:
    """Episodes of a smooth nonlinear map obs [3] -> action [2] in [-1, 1]."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(num_episodes * length, 3)).astype(np.float32)
    actions = np.tanh(np.stack([obs[:, 0] * obs[:, 1], np.sin(2 * obs[:, 2])], axis=-1)).astype(np.float32)
    return demo_data.make_demo_set(obs, actions, np.full(num_episodes, length), val_fraction=0.25)


class FlatState(NamedTuple):
    obs: jax.Array


class FlatEnv:
    """The spaces of an env with a flat observation [3] and 2 actions: all an offline learner reads."""

    action_size = 2

    @property
    def unwrapped(self):
        return self

    def reset(self, key):
        return FlatState(jnp.zeros(3))


@pytest.mark.parametrize("loss, obs_noise", [("mse", 0.0), ("nll", 0.0), ("mse", 0.1)])
def test_each_loss_and_augmentation_fits_held_out_episodes(loss, obs_noise):
    cfg = bc.Config(data="unused.hdf5", loss=loss, obs_noise=obs_noise, obs_keys=("state",), batch_size=64,
                    hidden_layer_sizes=(64, 64))
    demos = synthetic_demos()
    state = bc.init(jax.random.PRNGKey(0), FlatEnv(), cfg, demos)
    validation = jax.jit(lambda s: bc.validation_metrics(s, cfg, demos))
    steps = jax.jit(lambda s: jax.lax.scan(lambda s, _: bc.train_step(s, FlatEnv(), cfg, demos), s, None,
                                           length=300))
    before = validation(state)
    state, metrics = steps(state)
    after = validation(state)
    assert float(after["val/action_mse"]) < 0.5 * float(before["val/action_mse"])
    assert np.isfinite(np.asarray(metrics["loss/bc"])).all()
    action = bc.policy(bc.policy_params(state), demos.obs[:5])
    assert action.shape == (5, 2) and bool(jnp.all(jnp.abs(action) <= 1.0))
    if loss == "nll":  # a key samples around the mean
        sampled = bc.policy(bc.policy_params(state), demos.obs[:5], jax.random.PRNGKey(1))
        assert not np.allclose(sampled, action)


def test_best_ranks_by_success_then_lower_validation_loss():
    keys = bc.BEST_BY
    a = best_score({"eval/success": 0.9, "val/loss": 0.5}, keys)
    b = best_score({"eval/success": 0.9, "val/loss": 0.3}, keys)
    c = best_score({"eval/success": 0.95, "val/loss": 0.9}, keys)
    assert a < b < c
    assert best_score({"val/loss": 0.3}, keys) == (-0.3,)  # an env without a success metric


def test_success_interval_is_wilsons():
    results = add_success_interval({"eval/success": 0.9}, 100)
    # Wilson score interval of 90/100 at 95%: [0.8256, 0.9448].
    assert results["eval/success_ci_low"] == pytest.approx(0.8256, abs=1e-4)
    assert results["eval/success_ci_high"] == pytest.approx(0.9448, abs=1e-4)
    assert add_success_interval({"eval/episode_return": 1.0}, 100) == {"eval/episode_return": 1.0}


def test_cli_names_the_missing_or_unusable_data(grasp_demos, tmp_path, capsys):
    assert cli.main(["train", "grasp-lift-cube", "bc", f"run_dir={tmp_path / 'a'}"]) == cli.EXIT_USAGE
    assert "pass data=FILE.hdf5" in capsys.readouterr().out
    assert cli.main(["train", "grasp-lift-cube", "bc", f"data={grasp_demos}:sucess",
                     f"run_dir={tmp_path / 'b'}"]) == cli.EXIT_USAGE
    assert "did you mean 'success'" in capsys.readouterr().out
    # Demos of one env cannot train a policy of another; nothing is written.
    assert cli.main(["train", "cartpole-balance", "bc", f"data={grasp_demos}",
                     f"run_dir={tmp_path / 'c'}"]) == cli.EXIT_USAGE
    assert "cube_pos" in capsys.readouterr().out and not (tmp_path / "c").exists()

