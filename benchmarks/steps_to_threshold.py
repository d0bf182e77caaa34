"""Env steps each learner needs to reach a return threshold: SAC against PPO on pendulum-swingup.

Sample efficiency, the reason to use an off-policy learner: each run trains with
`jaxrl train`'s own loop, evaluating the deterministic policy every
`--eval-every` env steps, and records the first evaluation at or above the
threshold. A learner that never gets there within `--budget` env steps is
recorded as not reaching it (its count is then a lower bound). SAC trains with
its recipe's CPU preset (configs/pendulum_swingup_sac.yaml); PPO with the
cartpole recipe's CPU settings (no pendulum recipe of its own), at the same
episode length.

    python -m benchmarks.steps_to_threshold                    # seeds 0 1 2
    python -m benchmarks.steps_to_threshold --seeds 0 --ppo-budget 2000000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
from pathlib import Path

ENV_NAME = "pendulum-swingup"
THRESHOLD = 400.0  # of at most 1,000 (1 per step upright): the pendulum swings up and stays up
RESULTS = Path(__file__).parent / "results"
# PPO's settings: the cartpole recipe's CPU preset, a sound general-purpose PPO on a small env.
PPO_OVERRIDES = ["algo.num_envs=256", "algo.unroll_length=10", "algo.num_minibatches=8",
                 "algo.num_updates_per_batch=8", "algo.learning_rate=5e-4", "algo.entropy_cost=1e-2",
                 "algo.discounting=0.99", "algo.reward_scaling=10",
                 "algo.policy_hidden_layer_sizes=[32,32,32,32]", "algo.value_hidden_layer_sizes=[64,64]",
                 "train.iterations_per_call=5"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help="deterministic evaluation return (mean over the eval episodes) to reach")
    parser.add_argument("--sac-budget", type=int, default=300_000, help="env steps SAC may take")
    parser.add_argument("--ppo-budget", type=int, default=5_000_000, help="env steps PPO may take")
    parser.add_argument("--sac-eval-every", type=int, default=10_000)
    parser.add_argument("--ppo-eval-every", type=int, default=100_000)
    parser.add_argument("--num-eval-envs", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS / "steps_to_threshold_pendulum_cpu.json")
    return parser.parse_args(argv)


def steps_to_threshold(algo: str, seed: int, budget: int, eval_every: int, args, overrides=()) -> dict:
    """One run: the first evaluation at or above the threshold, or none within `budget`."""
    from jaxrl import config
    from jaxrl.train import train

    cfg = config.load(ENV_NAME, algo, preset="cpu", overrides=list(overrides) + [
        f"train.seed={seed}", f"train.num_timesteps={budget}", f"train.eval_every={eval_every}",
        f"train.num_eval_envs={args.num_eval_envs}", f"train.checkpoint_every={budget}",
        "train.tensorboard=false"])
    curve, reached = [], {}

    def on_record(record):
        if "eval/episode_return" in record:
            curve.append((record["env_steps"], record["eval/episode_return"]))
            if record["eval/episode_return"] >= args.threshold and not reached:
                reached.update(env_steps=record["env_steps"], seconds=record.get("time/elapsed", 0.0))
                raise KeyboardInterrupt  # reached: stop the run here, as Ctrl-C would

    with tempfile.TemporaryDirectory(prefix=f"steps-to-threshold-{algo}-") as run_dir:
        train(cfg, Path(run_dir), on_record=on_record)
    return {"seed": seed, "reached": bool(reached), "env_steps": reached.get("env_steps"),
            "wall_s": reached.get("seconds"), "budget": budget, "curve": curve}


def summarize(runs: list[dict]) -> dict:
    """A run that never reached the threshold counts as taking longer than any that did: the
    median is still defined while most runs reach it."""
    steps = sorted(r["env_steps"] if r["reached"] else math.inf for r in runs)
    median = statistics.median(steps)
    return {"reached": f"{sum(r['reached'] for r in runs)}/{len(runs)}",
            "median_env_steps": None if math.isinf(median) else median,
            "env_steps": [r["env_steps"] for r in runs]}


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    sac_runs = [steps_to_threshold("sac", seed, args.sac_budget, args.sac_eval_every, args)
                for seed in args.seeds]
    ppo_runs = [steps_to_threshold("ppo", seed, args.ppo_budget, args.ppo_eval_every, args, PPO_OVERRIDES)
                for seed in args.seeds]
    sac, ppo = summarize(sac_runs), summarize(ppo_runs)
    ratio = None
    if sac["median_env_steps"] and ppo["median_env_steps"]:
        ratio = ppo["median_env_steps"] / sac["median_env_steps"]
    record = {"benchmark": "steps_to_threshold", "env": ENV_NAME, "threshold": args.threshold,
              "machine": describe_machine(), "sac": sac | {"runs": sac_runs},
              "ppo": ppo | {"runs": ppo_runs, "overrides": PPO_OVERRIDES},
              "ppo_over_sac_env_steps": ratio}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for name, summary in (("sac", sac), ("ppo", ppo)):
        print(f"{name}: reached {args.threshold:.0f} in {summary['reached']} runs; env steps per seed "
              f"{summary['env_steps']}")
    if ratio:
        print(f"PPO needs {ratio:.1f}x the env steps SAC needs (medians over seeds)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
