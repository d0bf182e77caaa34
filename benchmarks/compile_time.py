"""Seconds from `jaxrl train` to the first trained iteration, cold and warm, split by program.

For each env x learner, three fresh processes train its recipe (the CPU preset without an
accelerator) for one device call:

  cold     an empty persistent compilation cache (JAXRL_CACHE_DIR): what a fresh machine sees
  warm     the same command again: the cache holds every program
  resume   `--resume` of the warm run, one call further: must find its programs in the cache too

Each records the process's wall-clock (imports, env building and data loading included) and
what `jaxrl train` reports per program (init, train call, evaluate, validate, videos): trace,
lowering, and XLA compile or cache load. Targets (issue 20, this 2-core CPU): cartpole-balance
PPO cold compile under 10 s, warm under 2 s; go1-joystick PPO cold under 30 s.

    python -m benchmarks.compile_time                      # the default pairs
    python -m benchmarks.compile_time --pairs cartpole-balance:ppo go1-joystick:ppo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PAIRS = (
    "cartpole-balance:ppo",
    "cartpole-balance:sac",
    "cartpole-balance:dreamer",
    "pendulum-swingup:sac",
    "go1-joystick:ppo",
    "grasp-lift-cube:ppo",
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), help="ENV:ALGO pairs")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default: results/compile_time_<cpu|gpu>.json)"
    )
    parser.add_argument("--one", nargs=3, metavar=("ENV", "ALGO", "RUN_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def train_one_call(env_name: str, algo_name: str, run_dir: Path, resume: bool) -> dict:
    """In this process: one device call of the recipe (one more on `resume`); what compiling took."""
    from rich.console import Console

    from jaxrl import algos, config, runtime
    from jaxrl.schedule import Schedule
    from jaxrl.train import train

    runtime.configure_jax()
    if resume:
        cfg = config.load_saved(run_dir / "config.yaml")
    else:
        cfg = config.load(env_name, algo_name, None, [], "full" if runtime.has_accelerator() else "cpu")
    steps = Schedule.of(algos.get(algo_name), cfg).steps_per_call
    calls = 2 if resume else 1
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_timesteps=calls * steps))
    result = train(cfg, run_dir, resume=resume, console=Console(quiet=True))
    return {
        "compile_seconds": result.compile_seconds,
        "steps": result.steps,
        "programs": [dataclasses.asdict(p) for p in result.programs],
    }


def measure(pair: str, cache_dir: Path, run_dir: Path, resume: bool) -> dict:
    """One fresh `train_one_call` process: its record plus the process's wall-clock."""
    env_name, algo_name = pair.split(":")
    command = [sys.executable, "-m", "benchmarks.compile_time", "--one", env_name, algo_name, str(run_dir)]
    started = time.perf_counter()
    done = subprocess.run(
        command + (["--resume"] if resume else []),
        capture_output=True,
        text=True,
        env=dict(os.environ, JAXRL_CACHE_DIR=str(cache_dir)),
        cwd=Path(__file__).parent.parent,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{pair}: {done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_wall_seconds": wall}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.one:
        env_name, algo_name, run_dir = args.one
        print(json.dumps(train_one_call(env_name, algo_name, Path(run_dir), args.resume)))
        return

    import jax

    from benchmarks.machine import describe_machine

    kind = "cpu" if jax.default_backend() == "cpu" else "gpu"
    out = args.out or RESULTS / f"compile_time_{kind}.json"
    rows = {}
    for pair in args.pairs:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as runs:
            cache, runs = Path(cache), Path(runs)
            cold = measure(pair, cache, runs / "cold", resume=False)
            warm = measure(pair, cache, runs / "warm", resume=False)
            resumed = measure(pair, cache, runs / "warm", resume=True)
        rows[pair] = {"cold": cold, "warm": warm, "resume": resumed}
        print(
            f"{pair:28s} compile cold {cold['compile_seconds']:5.1f} s, warm "
            f"{warm['compile_seconds']:5.1f} s, resume {resumed['compile_seconds']:5.1f} s; process cold "
            f"{cold['process_wall_seconds']:5.1f} s, warm {warm['process_wall_seconds']:5.1f} s",
            flush=True,
        )
    record = {"benchmark": "compile_time", "machine": describe_machine(), "pairs": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out}")


def plot(rows: dict, path: Path) -> None:
    """Stacked bars per pair and case: trace, lowering, XLA compile (or cache load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = ("cold", "warm", "resume")
    stages = (("trace_seconds", "trace"), ("lower_seconds", "lowering"), ("compile_seconds", "XLA / cache"))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    width = 0.8 / len(cases)
    for c, case in enumerate(cases):
        bottoms = [0.0] * len(rows)
        for s, (key, label) in enumerate(stages):
            heights = [sum(p[key] for p in row[case]["programs"]) for row in rows.values()]
            xs = [i + (c - 1) * width for i in range(len(rows))]
            ax.bar(
                xs,
                heights,
                width,
                bottom=bottoms,
                color=f"C{s}",
                alpha=1.0 - 0.3 * c,
                label=f"{label} ({case})",
            )
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(rows)), [pair.replace(":", "\n") for pair in rows], fontsize=8)
    ax.set_ylabel("seconds (bars: cold, warm, resume)")
    ax.set_title("jaxrl train: compile time to the first call, by stage")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
