"""PPO learns cartpole-balance for real, through `jaxrl train` in a process of its own, and the policy keeps
its return in plain MuJoCo. One file: the training run is the costliest fixture of the suite, and with the
files spread over test workers, a fixture two files share is built by each worker that runs one of them."""

import pytest
from conftest import jaxrl_process

from jaxrl import cli
from jaxrl.logger import read_metrics

MAX_RETURN = 1000.0  # 1,000 steps of reward at most 1


@pytest.fixture(scope="module")
def solved_cartpole(tmp_path_factory):
    """The evaluations of `jaxrl train cartpole-balance ppo --preset cpu` and its run directory: a policy
    that balances. Cut to 2M env steps: the preset's 4M leave room for other seeds, and this one solves
    before 1.5M."""
    run_dir = tmp_path_factory.mktemp("solved-cartpole")
    jaxrl_process("train", "cartpole-balance", "ppo", "--preset", "cpu", f"train.run_dir={run_dir}",
                  "train.num_timesteps=2_000_000", "train.tensorboard=false")
    return run_dir, [r["eval/episode_return"] for r in read_metrics(run_dir / "metrics.jsonl")
                     if "eval/episode_return" in r]


@pytest.mark.slow
def test_ppo_solves_cartpole_balance_on_cpu(solved_cartpole):
    _, evals = solved_cartpole
    assert evals[0] < 0.5 * MAX_RETURN, "the untrained policy should not already balance"
    assert evals[-1] >= 0.9 * MAX_RETURN, f"eval returns {evals}"  # the final evaluation


@pytest.mark.slow
def test_sim_to_sim_keeps_the_return_of_a_trained_policy(solved_cartpole, capsys):
    """A policy trained in MJX keeps at least 90% of its return in plain MuJoCo, through ONNX."""
    run_dir, _ = solved_cartpole
    capsys.readouterr()
    assert cli.main(["play", "--compare", str(run_dir), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    kept = float(out.split("plain MuJoCo keeps ")[1].split("%")[0]) / 100
    assert kept >= 0.9, out
