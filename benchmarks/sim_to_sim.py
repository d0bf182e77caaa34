"""Sim-to-sim: a trained run's return in MJX (JAX policy) and in plain MuJoCo (its ONNX export).

The same episodes on both engines (`jaxrl.export.sim_to_sim`): starts from the
env's reset with the same keys, no sensor noise, nominal model, each
episode's start command held. The figure is the share of the MJX mean return
that plain MuJoCo keeps; the issue's bar for a trained Go1 policy is 90%.

    python -m benchmarks.sim_to_sim RUN_DIR [RUN_DIR ...] --episodes 32
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe_machine
from jaxrl import runtime
from jaxrl.export.onnx import export_run
from jaxrl.export.onnx_policy import OnnxPolicy
from jaxrl.export.sim_to_sim import compare
from jaxrl.runs import restore_run

DEFAULT_OUT = Path(__file__).parent / "results" / "sim_to_sim_cpu.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--checkpoint", default="best", help="best, latest or env steps")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def measure(run_dir: Path, checkpoint: str, episodes: int, seed: int) -> dict:
    run = restore_run(run_dir, checkpoint)
    with tempfile.TemporaryDirectory() as scratch:
        policy = OnnxPolicy(export_run(run, checkpoint, Path(scratch) / "policy.onnx").path)
        started = time.monotonic()
        result = compare(run.algo, run.params, run.cfg.env_name, run.cfg.env, policy,
                         episodes, seed)
    record = {
        "env": run.cfg.env_name,
        "algo": run.cfg.algo_name,
        "checkpoint": checkpoint,
        "training_env_steps": run.meta["env_steps"],
        "episodes": episodes,
        "episode_length": run.cfg.env.episode_length,
        "mjx_mean_return": float(result.mjx_returns.mean()),
        "plain_mujoco_mean_return": float(result.plain_returns.mean()),
        "plain_mujoco_keeps": result.kept,
        "mjx_returns": result.mjx_returns.round(4).tolist(),
        "plain_mujoco_returns": result.plain_returns.round(4).tolist(),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(f"{record['env']} ({record['training_env_steps']:,} env steps): "
          f"MJX {record['mjx_mean_return']:.3f}, plain MuJoCo {record['plain_mujoco_mean_return']:.3f} "
          f"-> keeps {100 * result.kept:.1f}%")
    return record


def main(argv=None) -> None:
    args = parse_args(argv)
    runtime.configure_jax()
    records = [measure(run, args.checkpoint, args.episodes, args.seed) for run in args.runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "sim_to_sim", "machine": describe_machine(),
                                    "results": records}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
