"""PPO learns cartpole-balance for real, through the same path `jaxrl train` takes."""

import pytest

from jaxrl import config
from jaxrl.logger import read_metrics
from jaxrl.train import train

MAX_RETURN = 1000.0  # 1,000 steps of reward at most 1


@pytest.mark.slow
def test_ppo_solves_cartpole_balance_on_cpu(tmp_path):
    cfg = config.load("cartpole-balance", "ppo", preset="cpu", overrides=["train.tensorboard=false"])
    result = train(cfg, tmp_path)
    evals = [r["eval/episode_return"] for r in read_metrics(tmp_path / "metrics.jsonl")
             if "eval/episode_return" in r]
    assert evals[0] < 0.5 * MAX_RETURN, "the untrained policy should not already balance"
    assert max(evals) >= 0.9 * MAX_RETURN, f"eval returns {evals}"
    assert result.final_eval["eval/episode_return"] >= 0.9 * MAX_RETURN
