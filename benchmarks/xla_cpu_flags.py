"""Training throughput of `jaxrl train` with and without the XLA:CPU flags of benchmarks/jax_versions.py.

The flags (`--xla_cpu_use_fusion_emitters=false --xla_cpu_enable_concurrency_optimized_scheduler=false`)
speed up the MJX env step; this asks whether they also hold for whole training runs, whose gradient
steps are MLP maths rather than kinematic chains. For each env x learner, `jaxrl train` runs its CPU
preset for a fixed number of env steps in fresh processes, alternating without and with the flags,
`--repeats` times each; a run's figure is the median `time/sps` of its device calls after the first.

    python -m benchmarks.xla_cpu_flags                                     # ~15 min on 2 CPU cores
    python -m benchmarks.xla_cpu_flags --pythons /tmp/venv-jax010/bin/python --pairs go1-joystick:ppo

Writes results/xla_cpu_flags_cpu.json: each run, and per pair and interpreter the median ratio with the
flags over without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.jax_versions import FLAGS

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
# env:algo -> env steps per run: a few device calls past the first at the CPU preset.
PAIRS = {"cartpole-balance:ppo": 1_024_000, "go1-joystick:ppo": 153_600, "pendulum-swingup:sac": 16_000}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--pythons", nargs="+", default=["python3"],
                        help="interpreters, each with its own jax")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "xla_cpu_flags_cpu.json")
    return parser.parse_args(argv)


def train_steps_per_second(python: str, pair: str, flags: str, run_dir: Path) -> dict:
    """One `jaxrl train` run: its median time/sps after the first call, or the error it ended with."""
    from jaxrl.logger import read_metrics

    env, algo = pair.split(":")
    command = [python, "-m", "jaxrl.cli", "train", env, algo, "--preset", "cpu", f"train.run_dir={run_dir}",
               f"train.num_timesteps={PAIRS[pair]}", "train.tensorboard=false"]
    environment = {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT), "JAXRL_PROGRAM_CACHE": "0"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-1500:]}
    records = read_metrics(run_dir / "metrics.jsonl")
    rates = [r["time/sps"] for r in records if "time/sps" in r][1:]
    evals = [r["eval/episode_return"] for r in records if "eval/episode_return" in r]
    return {"steps_per_second": statistics.median(rates), "calls_timed": len(rates),
            "final_eval_return": evals[-1] if evals else None, "load_average_after": os.getloadavg()[0]}


def compare(python: str, jax_version: str, pair: str, repeats: int, folder: Path, runs: list) -> float | None:
    """Median steps/s with the flags over without, from runs alternating between the two (appended to
    `runs`); None if either setting has no run that finished."""
    figures: dict[str, list[float]] = {"": [], FLAGS: []}
    for repeat in range(repeats):
        for flags in figures:  # alternating, so a change of load hits both
            run_dir = folder / f"run-{len(runs)}"
            run = {"python": python, "jax": jax_version, "pair": pair, "xla_flags": flags, "repeat": repeat,
                   **train_steps_per_second(python, pair, flags, run_dir)}
            runs.append(run)
            print(json.dumps(run)[:300], flush=True)
            if "error" not in run:
                figures[flags].append(run["steps_per_second"])
    if not (figures[""] and figures[FLAGS]):
        return None
    return statistics.median(figures[FLAGS]) / statistics.median(figures[""])


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine

    runs, ratios = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for python in args.pythons:
            jax_version = subprocess.run([python, "-c", "import jax; print(jax.__version__)"],
                                         capture_output=True, text=True).stdout.strip()
            for pair in args.pairs:
                ratios[f"jax {jax_version} {pair}"] = ratio = compare(python, jax_version, pair, args.repeats,
                                                                      Path(folder), runs)
                print(f"jax {jax_version} {pair}: with the flags {ratio}x", flush=True)
    record = {"benchmark": "xla_cpu_flags", "flags": FLAGS, "env_steps": {p: PAIRS[p] for p in args.pairs},
              "with_flags_over_without": ratios, "runs": runs, "machine": describe_machine()}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
