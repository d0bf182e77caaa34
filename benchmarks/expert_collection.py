"""Scripted-expert success rate and demonstration-collection speed, per grasp env and action noise.

For each env and noise level it collects `--episodes` randomized episodes of
the env's scripted expert exactly as `jaxrl collect` does (parallel rounds,
HDF5 written demo by demo, every episode kept) and records:

  success_rate          share of episodes that succeeded, with its 95% Wilson interval
  sim_steps_per_second  env steps simulated per second (a round stops when its last episode ends)
  demo_steps_per_second samples written to the file per second of the whole
                        collection (simulation + host transfer + HDF5), the
                        figure a user waits on; demos end at success
  compile_seconds       the round's compilation, apart

    python -m benchmarks.expert_collection                       # 1,000 episodes, noise 0 and 0.1
    python -m benchmarks.expert_collection --episodes 4096 --num-envs 4096   # on a GPU

Writes benchmarks/results/expert_collection_<cpu|gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["grasp-lift-cube", "grasp-place-cube"])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--num-envs", type=int, default=500, help="episodes run side by side per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/expert_collection_<cpu|gpu>.json)")
    return parser.parse_args(argv)


def measure(env_name: str, noise: float, episodes: int, num_envs: int, seed: int) -> dict:
    import jax

    import envs_mjx
    from jaxrl import config
    from jaxrl.data.collect import collect, memoryless
    from jaxrl.data.writer import DemoWriter
    from jaxrl.evaluation import wilson_interval

    env = envs_mjx.make(env_name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "demos.hdf5"
        with DemoWriter(path, env_name, config.as_dict(env.config), env.dt) as writer:
            started = time.monotonic()
            stats = collect(env, memoryless(envs_mjx.make_expert(env_name, env)), episodes, writer,
                            num_envs=num_envs, key=jax.random.PRNGKey(seed), noise=noise)
            wall = time.monotonic() - started
            samples = writer.total
        file_megabytes = path.stat().st_size / 1e6
    low, high = wilson_interval(stats.successes, stats.episodes_run)
    return {
        "env": env_name, "noise": noise, "episodes": stats.episodes_run, "successes": stats.successes,
        "success_rate": stats.success_rate, "success_rate_95ci": [low, high],
        "demo_samples": samples, "mean_demo_length": samples / stats.demos_written,
        "sim_steps_per_second": stats.steps_per_second,
        "demo_steps_per_second": samples / (wall - stats.compile_seconds),
        "compile_seconds": stats.compile_seconds, "wall_clock_seconds": wall,
        "file_megabytes": file_megabytes,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    load_before = os.getloadavg()[0]
    rows = []
    for env_name in args.envs:
        for noise in args.noise:
            row = measure(env_name, noise, args.episodes, args.num_envs, args.seed)
            rows.append(row)
            low, high = row["success_rate_95ci"]
            print(f"{env_name:18} noise {noise:<4} success {100 * row['success_rate']:5.1f}% "
                  f"[{100 * low:.1f}, {100 * high:.1f}] of {row['episodes']}  "
                  f"sim {row['sim_steps_per_second']:8,.0f} steps/s  "
                  f"demos {row['demo_steps_per_second']:8,.0f} steps/s  "
                  f"mean length {row['mean_demo_length']:.0f}")
    device = "gpu" if runtime.has_accelerator() else "cpu"
    out = args.out or RESULTS / f"expert_collection_{device}.json"
    record = {"benchmark": "expert_collection", "machine": describe_machine(), "num_envs": args.num_envs,
              "seed": args.seed, "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
              "results": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
