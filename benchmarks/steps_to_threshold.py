"""Env steps each learner needs to reach a return threshold on pendulum-swingup: SAC, PPO and Dreamer.

Sample efficiency, the reason to use an off-policy or a model-based learner:
each run trains with `jaxrl train`'s own loop, evaluating the deterministic
policy every `--eval-every` env steps of its learner, and records the first
evaluation at or above the threshold. A learner that never gets there within
its budget is recorded as not reaching it (its count is then a lower bound).
SAC and Dreamer train with their recipes' CPU presets
(configs/pendulum_swingup_{sac,dreamer}.yaml); PPO with the cartpole recipe's
CPU settings (no pendulum recipe of its own), at the same episode length.
SAC's and Dreamer's recipes control at 25 Hz (two physics steps an env step),
PPO at 50 Hz: each learner's record holds its seconds per env step, so counts
convert to simulated time.

The JSON is written after every run, and a learner left out of `--algos`
keeps its entry from the file already there.

    python -m benchmarks.steps_to_threshold                     # all three, seeds 0 1 2
    python -m benchmarks.steps_to_threshold --algos dreamer --seeds 0 1 2
    python -m benchmarks.steps_to_threshold --seeds 0 --budget ppo=2000000

`--init-from RUN_DIR` starts every Dreamer run from a world model trained
alone (`jaxrl train pendulum-swingup world_model data=...`), and `--prefill
FILE` starts its replay with recorded episodes; the runs are recorded as
"dreamer_from_world_model", "dreamer_prefilled" or both, with the env steps of
the episodes recorded: those count against any saving.
"""

from __future__ import annotations

import argparse
import json
import math
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


# Per learner: env steps it may take, and evaluated every so many.
BUDGETS = {"sac": 300_000, "ppo": 5_000_000, "dreamer": 102_400}
EVAL_EVERY = {"sac": 10_000, "ppo": 100_000, "dreamer": 4096}
OVERRIDES = {"sac": [], "ppo": PPO_OVERRIDES, "dreamer": []}


def per_learner(text: str) -> tuple[str, int]:
    """The (ALGO, N) of an ALGO=N argument."""
    algo, _, number = text.partition("=")
    if algo not in BUDGETS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected ALGO=N with ALGO one of {', '.join(BUDGETS)}, "
                                         f"got {text!r}")
    return algo, int(number)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=list(BUDGETS), default=list(BUDGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help="deterministic evaluation return (mean over the eval episodes) to reach")
    parser.add_argument("--budget", type=per_learner, nargs="*", default=[],
                        help=f"env steps a learner may take, ALGO=N (defaults: {BUDGETS})")
    parser.add_argument("--eval-every", type=per_learner, nargs="*", default=[],
                        help=f"env steps between evaluations, ALGO=N (defaults: {EVAL_EVERY})")
    parser.add_argument("--num-eval-envs", type=int, default=32)
    parser.add_argument("--init-from", type=Path, metavar="RUN_DIR",
                        help="Dreamer's runs start from this world_model run's best checkpoint")
    parser.add_argument("--prefill", type=Path, metavar="FILE",
                        help="Dreamer's runs start with these recorded episodes in their replay")
    parser.add_argument("--out", type=Path, default=RESULTS / "steps_to_threshold_pendulum_cpu.json")
    args = parser.parse_args(argv)
    args.budget, args.eval_every = BUDGETS | dict(args.budget), EVAL_EVERY | dict(args.eval_every)
    return args


def steps_to_threshold(algo: str, seed: int, args) -> dict:
    """One run: the first evaluation at or above the threshold, or none within the learner's budget."""
    from jaxrl import config
    from jaxrl.train import train

    budget = args.budget[algo]
    started = [f"train.{name}={value}" for name, value in started_with(algo, args).items()]
    cfg = config.load(ENV_NAME, algo, preset="cpu", overrides=OVERRIDES[algo] + started + [
        f"train.seed={seed}", f"train.num_timesteps={budget}", f"train.eval_every={args.eval_every[algo]}",
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


def started_with(algo: str, args) -> dict[str, Path]:
    """The train.init_from and train.prefill a run of `algo` starts with (Dreamer's alone)."""
    given = {"init_from": args.init_from, "prefill": args.prefill} if algo == "dreamer" else {}
    return {name: value for name, value in given.items() if value}


def recorded_env_steps(files: list[str]) -> int:
    """The env steps the episodes of HDF5 `files` hold."""
    import h5py

    steps = 0
    for path in files:
        with h5py.File(path, "r") as file:
            steps += int(file["data"].attrs["total"])
    return steps


def pretraining(run_dir: Path) -> dict:
    """What a world_model run learned from (its data files' env steps, its gradient steps) and its last
    validation figures."""
    from jaxrl import config
    from jaxrl.data.demos import parse_sources
    from jaxrl.logger import read_metrics

    cfg = config.load_saved(run_dir / "config.yaml")
    files = [path for path, _ in parse_sources(cfg.algo.data, cfg.algo.data_filter)]
    steps = recorded_env_steps(files)
    validated = [record for record in read_metrics(run_dir / "metrics.jsonl") if "val/loss" in record]
    return {"init_from": str(run_dir), "pretraining_data": files, "pretraining_env_steps": steps,
            "pretraining_grad_steps": cfg.train.num_timesteps,
            "pretraining_validation": {key: value for key, value in validated[-1].items()
                                       if key.startswith("val/") or key == "grad_steps"}}


def seconds_per_env_step(algo: str) -> float:
    """Simulated seconds of one env step of `algo`'s runs here (its recipe's control rate)."""
    import envs_mjx
    from jaxrl import config

    cfg = config.load(ENV_NAME, algo, preset="cpu", overrides=OVERRIDES[algo])
    return envs_mjx.make(ENV_NAME, cfg.env).dt


def compare(record: dict) -> None:
    """Each learner's seconds per env step, and PPO's and Dreamer's median simulated seconds to the
    threshold over SAC's: learners that control at other rates compare in simulated time."""
    for algo in BUDGETS.keys() & record.keys():  # a property of the recipe, for entries of earlier runs too
        record[algo]["seconds_per_env_step"] = seconds_per_env_step(algo)

    def simulated_seconds(algo):
        steps = record.get(algo, {}).get("median_env_steps")
        return steps * record[algo]["seconds_per_env_step"] if steps else None

    sac = simulated_seconds("sac")
    for algo in ("ppo", "dreamer"):
        theirs = simulated_seconds(algo)
        record[f"{algo}_over_sac_simulated_seconds"] = theirs / sac if sac and theirs else None


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    record.update({"benchmark": "steps_to_threshold", "env": ENV_NAME, "threshold": args.threshold})
    for algo in args.algos:
        runs = []
        name, started = algo, {}
        given = started_with(algo, args)
        if "init_from" in given:
            name, started = f"{name}_from_world_model", started | pretraining(given["init_from"])
        if "prefill" in given:
            name, started = f"{name}_prefilled", started | {
                "prefill": str(given["prefill"]), "prefill_env_steps": recorded_env_steps([given["prefill"]])}
        for seed in args.seeds:
            runs.append(steps_to_threshold(algo, seed, args))
            record[name] = summarize(runs) | started | {
                "runs": runs, "overrides": OVERRIDES[algo], "budget": args.budget[algo],
                "eval_every": args.eval_every[algo], "machine": describe_machine()}
            write(record, args.out)
        print(f"{name}: reached {args.threshold:.0f} in {record[name]['reached']} runs; env steps per seed "
              f"{record[name]['env_steps']}")
    compare(record)
    write(record, args.out)
    print(f"wrote {args.out}")


def write(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(record, indent=2) + "\n")
    staging.replace(path)  # atomic: a killed run leaves the last whole record


if __name__ == "__main__":
    main()
