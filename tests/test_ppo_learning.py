"""PPO learns cartpole-balance for real, through the same path `jaxrl train` takes."""

import pytest

from jaxrl.logger import read_metrics

MAX_RETURN = 1000.0  # 1,000 steps of reward at most 1


@pytest.mark.slow
def test_ppo_solves_cartpole_balance_on_cpu(solved_cartpole):
    run_dir, result = solved_cartpole
    evals = [r["eval/episode_return"] for r in read_metrics(run_dir / "metrics.jsonl")
             if "eval/episode_return" in r]
    assert evals[0] < 0.5 * MAX_RETURN, "the untrained policy should not already balance"
    assert max(evals) >= 0.9 * MAX_RETURN, f"eval returns {evals}"
    assert result.final_eval["eval/episode_return"] >= 0.9 * MAX_RETURN
