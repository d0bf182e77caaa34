"""`jaxrl`: train, evaluate and list from the command line.

Errors the user can fix (config, unknown names, unreadable checkpoints,
divergence) print one clear message and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130

EPILOG_TRAIN = """\
examples:
  jaxrl train cartpole-balance ppo
  jaxrl train cartpole-balance ppo learning_rate=3e-4 train.seed=1 run_dir=runs/mine
  jaxrl train --config configs/cartpole_balance_ppo.yaml num_envs=512
  jaxrl train --resume runs/cartpole-balance-ppo-20261121-101500

Overrides are section.field=value (sections: env, algo, train) or a bare
field=value when only one section has it. `jaxrl list` shows envs, algorithms
and recipes. Without an accelerator the recipe's CPU preset is applied.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxrl", description="JAX-accelerated, massively parallel robot learning on MJX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", help="train an agent", description="Train ALGO on ENV; writes a run directory "
        "(config.yaml, metrics.jsonl, TensorBoard events, checkpoints/, learning_curve.png).",
        epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("args", nargs="*", metavar="ENV ALGO [key=value ...]",
                       help="env and algorithm names, then config overrides")
    train.add_argument("--config", type=Path, metavar="FILE",
                       help="YAML recipe (default: configs/<env>_<algo>.yaml when it exists)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue RUN_DIR from its latest checkpoint (overrides may follow)")
    train.add_argument("--preset", choices=("auto", "cpu", "full"), default="auto",
                       help="recipe variant: auto picks cpu when JAX finds no accelerator (default)")

    evaluate = commands.add_parser(
        "eval", help="evaluate a trained run's deterministic policy",
        description="Run the deterministic policy of RUN_DIR's checkpoint for N episodes.")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                          help="which checkpoint (default: best by evaluation return)")
    evaluate.add_argument("--episodes", type=int, default=16, help="episodes, run in parallel (default 16)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the episodes' initial states")

    commands.add_parser("list", help="list environments, algorithms and recipes",
                        description="List registered environments, algorithms and recipe files.")
    return parser


def _split_train_args(args: argparse.Namespace):
    """(env, algo, overrides) from the positional words of `jaxrl train`."""
    from jaxrl.config import ConfigError

    names = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if args.resume is not None:
        if names:
            raise ConfigError(f"--resume takes overrides only, not names: {' '.join(names)}")
        return None, None, overrides
    if len(names) > 2 or (not names and args.config is None):
        raise ConfigError("usage: jaxrl train ENV ALGO [key=value ...]  (`jaxrl list` shows the names)")
    if len(names) == 1:
        raise ConfigError(f"name both the env and the algorithm: jaxrl train {names[0]} ALGO")
    env_name, algo_name = names if names else (None, None)
    return env_name, algo_name, overrides


def _train(args: argparse.Namespace, console) -> int:
    from jaxrl import config, runtime
    from jaxrl.train import default_run_dir, train

    env_name, algo_name, overrides = _split_train_args(args)
    if args.resume is not None:
        run_dir = args.resume
        if not (run_dir / "config.yaml").exists():
            raise config.ConfigError(f"{run_dir} is not a run directory (no config.yaml in it)")
        cfg = config.load_saved(run_dir / "config.yaml", overrides)
        return _report(train(cfg, run_dir, resume=True, console=console))

    preset = args.preset
    if preset == "auto":
        preset = "full" if runtime.has_accelerator() else "cpu"
    cfg = config.load(env_name, algo_name, args.config, overrides, preset)
    if args.preset == "auto" and preset == "cpu":
        console.print(f"No accelerator found (JAX backend: cpu): using the CPU preset "
                      f"(num_envs={getattr(cfg.algo, 'num_envs', '?')}, "
                      f"num_timesteps={cfg.train.num_timesteps:,}). Pass --preset full to override.")
    run_dir = Path(cfg.train.run_dir) if cfg.train.run_dir else default_run_dir(cfg)
    console.print(f"training {cfg.algo_name} on {cfg.env_name} -> {run_dir}")
    return _report(train(cfg, run_dir, console=console))


def _report(result) -> int:
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


def _eval(args: argparse.Namespace, console) -> int:
    import jax
    import numpy as np

    from jaxrl import algos, config
    from jaxrl.checkpoint import Checkpointer
    from jaxrl.train import make_envs, make_evaluator

    path = args.run_dir / "config.yaml"
    if not path.exists():
        raise config.ConfigError(f"{args.run_dir} is not a run directory (no config.yaml in it)")
    if args.episodes < 1:
        raise config.ConfigError("--episodes must be >= 1")
    cfg = config.load_saved(path)
    algo = algos.get(cfg.algo_name)
    train_env, eval_env = make_envs(cfg)
    abstract = jax.eval_shape(lambda key: algo.init(key, train_env, cfg.algo), jax.random.PRNGKey(0))
    checkpointer = Checkpointer(args.run_dir / "checkpoints")
    try:
        state, meta = checkpointer.restore(abstract, args.checkpoint)
    finally:
        checkpointer.close()
    evaluate = make_evaluator(eval_env, algo, args.episodes, cfg.env.episode_length)
    results = evaluate(algo.policy_params(state), jax.random.PRNGKey(args.seed))
    console.print(f"{cfg.env_name} / {cfg.algo_name}, {args.checkpoint} checkpoint at "
                  f"{meta['env_steps']:,} env steps, {args.episodes} episodes:")
    for key, value in results.items():
        console.print(f"  {key:<28} {float(np.asarray(value)):10.3f}")
    return 0


def _list(console) -> int:
    import envs_mjx
    from jaxrl import algos, config

    console.print("[bold]environments[/bold]")
    for name, summary in envs_mjx.list_envs().items():
        console.print(f"  {name:<22} {summary}")
    console.print("[bold]algorithms[/bold]")
    for name, summary in algos.list_algorithms().items():
        console.print(f"  {name:<22} {summary}")
    console.print(f"[bold]recipes[/bold] ({config.CONFIG_DIR})")
    for path in config.list_recipes():
        console.print(f"  {path.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # key=value overrides may also follow options (`train ENV ALGO --preset cpu num_envs=64`),
    # which argparse alone would reject.
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if len(overrides) < len(extra) or (overrides and args.command != "train"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.args += overrides
    # XLA's C++ logger reports benign CPU-feature mismatches each time it loads
    # a cached executable; keep its output to fatal errors unless asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    from jaxrl import runtime
    from jaxrl.checkpoint import CheckpointError
    from jaxrl.config import ConfigError
    from jaxrl.train import TrainingDiverged

    runtime.configure_jax()
    try:
        if args.command == "train":
            return _train(args, console)
        if args.command == "eval":
            return _eval(args, console)
        return _list(console)
    except (ConfigError, CheckpointError) as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        return EXIT_USAGE
    except TrainingDiverged as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        return EXIT_DIVERGED


if __name__ == "__main__":
    sys.exit(main())
