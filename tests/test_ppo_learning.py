"""PPO learns cartpole-balance for real, through the same path `jaxrl train` takes, and the policy keeps
its return in plain MuJoCo. One file: the training run is the costliest fixture of the suite, and with the
files spread over test workers, a fixture two files share is built by each worker that runs one of them."""

import pytest

from jaxrl import cli, config
from jaxrl.logger import read_metrics

MAX_RETURN = 1000.0  # 1,000 steps of reward at most 1


@pytest.fixture(scope="module")
def solved_cartpole(tmp_path_factory):
    """(run_dir, TrainResult) of `jaxrl train cartpole-balance ppo`'s CPU preset: a policy that balances."""
    from jaxrl.train import train

    run_dir = tmp_path_factory.mktemp("solved-cartpole")
    cfg = config.load("cartpole-balance", "ppo", preset="cpu", overrides=["train.tensorboard=false"])
    return run_dir, train(cfg, run_dir)


@pytest.mark.slow
def test_ppo_solves_cartpole_balance_on_cpu(solved_cartpole):
    run_dir, result = solved_cartpole
    evals = [r["eval/episode_return"] for r in read_metrics(run_dir / "metrics.jsonl")
             if "eval/episode_return" in r]
    assert evals[0] < 0.5 * MAX_RETURN, "the untrained policy should not already balance"
    assert max(evals) >= 0.9 * MAX_RETURN, f"eval returns {evals}"
    assert result.final_eval["eval/episode_return"] >= 0.9 * MAX_RETURN


@pytest.mark.slow
def test_sim_to_sim_keeps_the_return_of_a_trained_policy(solved_cartpole, capsys):
    """A policy trained in MJX keeps at least 90% of its return in plain MuJoCo, through ONNX."""
    run_dir, _ = solved_cartpole
    capsys.readouterr()
    assert cli.main(["play", "--compare", str(run_dir), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    kept = float(out.split("plain MuJoCo keeps ")[1].split("%")[0]) / 100
    assert kept >= 0.9, out
