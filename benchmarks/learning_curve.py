"""A learner on an env's recipe: episode return and the env's task measure against env steps and wall-clock.

Runs the recipe (configs/<env>_<algo>.yaml, PPO's unless --algo says) exactly as `jaxrl train` does, with
the preset the machine calls for (the GPU recipe with an accelerator, the CPU
preset without), and records every logged point, from the deterministic
evaluations and from the training episodes. The task measure is, for
go1-joystick, the velocity-tracking error: the mean over an episode's steps of
|command_xy - body velocity_xy| (m/s); for the grasp envs, the success rate; the
classic envs have none (the return is their measure).

    python -m benchmarks.learning_curve [--env go1-joystick] [--preset auto|cpu|full] [--env-steps N]
    python -m benchmarks.learning_curve --env grasp-lift-cube
    python -m benchmarks.learning_curve --env cartpole-balance --algo dreamer
    python -m benchmarks.learning_curve --minutes 2.25 --run-dir /tmp/go1   # then sim_to_sim /tmp/go1
    python -m benchmarks.learning_curve --env pendulum-swingup train.num_seeds=4   # seeds in one program

With train.num_seeds > 1 each point's figures are the seeds' means, and an evaluation also holds each
seed's figures and the 95% t-interval of the mean return.

Writes benchmarks/results/<env>_learning_curve_<cpu|gpu>.json and .png (PPO's), or
<env>_<algo>_learning_curve_<cpu|gpu>.* for another learner.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="go1-joystick", help="go1-joystick[-rough] or grasp-*")
    parser.add_argument("--algo", default="ppo", help="an online learner: ppo, sac or dreamer")
    parser.add_argument("--recipe", type=Path, default=None,
                        help="a recipe file, instead of --env and --algo's own "
                             "(e.g. configs/cartpole_balance_pixels_dreamer.yaml)")
    parser.add_argument("--preset", choices=("auto", "cpu", "full"), default="auto")
    parser.add_argument("--env-steps", type=int, default=None,
                        help="train.num_timesteps (default: the recipe's)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop training at the first record after this much wall-clock (compile "
                             "included), checkpointed as Ctrl-C would; the curve up to there is kept")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep the run here (checkpoints, for sim_to_sim) instead of a scratch folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/<env>_learning_curve_<cpu|gpu>.json)")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    return parser.parse_args(argv)


def tracking_error(record: dict, prefix: str) -> float | None:
    """Per-step mean of the episode-summed lin_vel_error metric."""
    total, length = record.get(f"{prefix}/lin_vel_error"), record.get(f"{prefix}/episode_length")
    return total / length if total is not None and length else None


def success_rate(record: dict, prefix: str) -> float | None:
    """The episode mean of the `success` metric, which an env sets once in a successful episode."""
    return record.get(f"{prefix}/success")


# env name prefix -> (key in the curve, axis label, how to read it from a logged record)
TASK_MEASURES = {
    "go1": ("tracking_error", "lin. velocity tracking error (m/s)", tracking_error),
    "grasp": ("success", "success rate", success_rate),
}
NO_MEASURE = ("none", "", lambda record, prefix: None)  # the classic envs: the return says it all


def per_seed(record: dict) -> dict[int, dict]:
    """A population's record (train.num_seeds > 1) split by member: seed -> that member's record, its keys
    without their '/seed_N'; {} for a single run."""
    members: dict[int, dict] = {}
    for key, value in record.items():
        head, _, seed = key.rpartition("/seed_")
        if head and seed.isdigit():
            members.setdefault(int(seed), {})[head] = value
    return dict(sorted(members.items()))


def task_measure(env_name: str):
    return TASK_MEASURES.get(env_name.split("-")[0], NO_MEASURE)


def plot(curve: list[dict], measure: tuple, title: str, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("return", "episode return")] + ([measure[:2]] if measure is not NO_MEASURE else [])
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.5 * len(rows)), squeeze=False)
    x_axes = (("env_steps", "env steps"), ("seconds", "wall-clock seconds"))
    for column, (x_key, x_label) in enumerate(x_axes):
        for row, (y_key, y_label) in enumerate(rows):
            ax = axes[row, column]
            for prefix, style in (("train", "-"), ("eval", "o-")):
                y_name = f"{prefix}_{y_key}"
                points = [(p[x_key], p[y_name]) for p in curve if p.get(y_name) is not None]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, markersize=3, label="training episodes" if prefix == "train"
                            else "evaluation (deterministic)")
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    import numpy as np

    from benchmarks.machine import describe_machine
    from jaxrl import config, runtime
    from jaxrl.population import mean_interval
    from jaxrl.train import train

    runtime.configure_jax()
    preset = args.preset if args.preset != "auto" else ("full" if runtime.has_accelerator() else "cpu")
    overrides = ["train.tensorboard=false", *args.overrides]
    if args.env_steps is not None:
        overrides.append(f"train.num_timesteps={args.env_steps}")
    if args.recipe is not None:
        cfg = config.load(None, None, recipe=args.recipe, preset=preset, overrides=overrides)
        args.env, args.algo = cfg.env_name, cfg.algo_name
    else:
        cfg = config.load(args.env, args.algo, preset=preset, overrides=overrides)

    measure_key, _, read_measure = measure = task_measure(args.env)
    curve: list[dict] = []
    started = time.monotonic()

    def measures(record):
        point = {"train_return": record.get("train/episode_return"),
                 "eval_return": record.get("eval/episode_return"),
                 "eval_episode_length": record.get("eval/episode_length")}
        if measure is not NO_MEASURE:
            point |= {f"{prefix}_{measure_key}": read_measure(record, prefix) for prefix in ("train", "eval")}
        return point

    def on_record(record):
        point = {"env_steps": record["env_steps"], "seconds": time.monotonic() - started,
                 **measures(record), "sps": record.get("time/sps")}
        members = per_seed(record)
        if members and point["eval_return"] is not None:  # a population's mean, its seeds and interval
            point["seeds"] = {seed: measures(member) for seed, member in members.items()}
            point["eval_return_ci95"] = list(mean_interval(
                np.array([member["eval_return"] for member in point["seeds"].values()])))
        curve.append(point)
        if args.minutes is not None and point["seconds"] > 60 * args.minutes:
            raise KeyboardInterrupt  # train's hook for a stop: this record is saved, the run checkpointed

    with tempfile.TemporaryDirectory() as scratch:
        result = train(cfg, args.run_dir or Path(scratch) / "run", on_record=on_record)
    device = "gpu" if runtime.has_accelerator() else "cpu"
    learner = "" if args.algo == "ppo" else f"_{args.algo}"
    name = args.recipe.stem if args.recipe is not None else f"{args.env.replace('-', '_')}{learner}"
    out = args.out or RESULTS / f"{name}_learning_curve_{device}.json"
    evals = [p for p in curve if p["eval_return"] is not None]
    summary = {
        "benchmark": "learning_curve", "env": args.env, "algo": args.algo, "task_measure": measure_key,
        "preset": preset,
        "overrides": overrides,
        "machine": describe_machine(),
        "stopped_after_minutes": args.minutes if result.status == "interrupted" else None,
        "wall_clock_seconds": time.monotonic() - started, "compile_seconds": result.compile_seconds,
        "train_seconds": result.run_seconds, "env_steps": result.steps,
        "steps_per_second": result.steps / max(result.run_seconds, 1e-9),
        "first_eval": evals[0] if evals else None, "last_eval": evals[-1] if evals else None,
        "best_eval_return": max((p["eval_return"] for p in evals), default=None),
        "curve": curve,
        "config": config.as_dict(cfg.algo) | {"train": config.as_dict(cfg.train),
                                              "env": config.as_dict(cfg.env)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    plot(curve, measure, f"{args.algo} on {args.env} ({preset} preset, {device}): {result.steps:,} steps in "
                f"{summary['wall_clock_seconds'] / 60:.1f} min", out.with_suffix(".png"))
    print(json.dumps({k: summary[k] for k in ("wall_clock_seconds", "env_steps", "steps_per_second",
                                              "first_eval", "last_eval", "best_eval_return")}, indent=1))


if __name__ == "__main__":
    main()
