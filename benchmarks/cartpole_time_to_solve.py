"""Wall-clock time for PPO to solve cartpole-balance with the CPU preset, compile included.

"Solved" is a deterministic evaluation return of at least 90% of the maximum
(900 of 1000). The clock starts before the environments are built and covers
everything `jaxrl train` does: building, compiling (with an empty compilation
cache, as on a fresh machine), training, evaluating, logging and checkpointing.

    python -m benchmarks.cartpole_time_to_solve [--seeds 0 1 2] [--warm-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SOLVED_RETURN = 900.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one full run per seed")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep jaxrl's persistent compilation cache (default: an empty one per run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cartpole_time_to_solve_cpu.json")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.warm_cache:
        # Read by jaxrl.runtime at import: set before jaxrl is imported.
        os.environ["JAXRL_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxrl-cold-cache-")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.machine import describe_machine
    from jaxrl import config, runtime
    from jaxrl.train import train

    runtime.configure_jax()
    runs = []
    for seed in args.seeds:
        cfg = config.load("cartpole-balance", "ppo", preset="cpu",
                          overrides=[f"train.seed={seed}", "train.tensorboard=false"])
        curve = []
        started = time.monotonic()

        def on_record(record, curve=curve, started=started):
            if "eval/episode_return" in record:
                curve.append((time.monotonic() - started, record["env_steps"], record["eval/episode_return"]))

        with tempfile.TemporaryDirectory() as run_dir:
            result = train(cfg, Path(run_dir), on_record=on_record)
        solved = next(((t, s) for t, s, r in curve if r >= SOLVED_RETURN), None)
        runs.append({
            "seed": seed,
            "solved": solved is not None,
            "seconds_to_solve": solved[0] if solved else None,
            "env_steps_to_solve": solved[1] if solved else None,
            "compile_seconds": result.compile_seconds,
            "total_seconds": time.monotonic() - started,
            "final_eval_return": result.final_eval["eval/episode_return"],
            "eval_curve": [{"seconds": t, "env_steps": s, "return": r} for t, s, r in curve],
        })
        print(f"seed {seed}: solved at {runs[-1]['seconds_to_solve']} s "
              f"({runs[-1]['env_steps_to_solve']} steps), compile {result.compile_seconds:.1f} s", flush=True)

    record = {"benchmark": "cartpole_time_to_solve", "machine": describe_machine(),
              "settings": {"recipe": "configs/cartpole_balance_ppo.yaml", "preset": "cpu",
                           "solved_return": SOLVED_RETURN,
                           "compile_cache": "warm" if args.warm_cache else "cold"},
              "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        curve = run["eval_curve"]
        ax.plot([p["seconds"] for p in curve], [p["return"] for p in curve], "o-", markersize=3,
                label=f"seed {run['seed']}")
    ax.axhline(SOLVED_RETURN, color="gray", linestyle="--", label="solved (900)")
    ax.axvline(180, color="red", linestyle=":", label="3-minute target")
    ax.set_xlabel("wall-clock seconds (compile included)")
    ax.set_ylabel("eval episode return")
    ax.set_title("PPO on cartpole-balance, CPU preset")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
