"""`jaxrl`: train, show a config, evaluate, export, collect demonstrations, inspect them and list, from the
command line.

Errors the user can fix (config, unknown names, unreadable checkpoints,
divergence) print one clear message and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130

EPILOG_TRAIN = """\
examples:
  jaxrl train cartpole-balance ppo
  jaxrl train cartpole-balance ppo learning_rate=3e-4 train.seed=1 run_dir=runs/mine
  jaxrl train --config configs/cartpole_balance_ppo.yaml num_envs=512
  jaxrl train --resume runs/cartpole-balance-ppo-20261121-101500
  jaxrl train brax:ant ppo env.backend=mjx              # any env of brax.envs
  jaxrl train playground:CartpoleBalance sac           # MuJoCo Playground (extra peers)

Overrides are section.field=value (sections: env, algo, train) or a bare
field=value when only one section has it. `jaxrl list` shows envs, algorithms
and recipes; `jaxrl config ENV ALGO` every setting. Without an accelerator the
recipe's CPU preset is applied. A resumed run keeps its saved config.yaml:
--resume takes overrides, not --config or --preset.
"""

EPILOG_CONFIG = """\
examples:
  jaxrl config cartpole-balance ppo
  jaxrl config go1-joystick ppo --preset full env.rewards.torques=-1e-4
  jaxrl config grasp-lift-cube bc data=demos.hdf5

Each line is a setting's key (as an override names it), its value, its type and
what it means. The values are those `jaxrl train` would run with the same
arguments: dataclass defaults, then the recipe, the preset and the overrides.
"""

EPILOG_COLLECT = """\
examples:
  jaxrl collect grasp-lift-cube --episodes 200 --out demos/lift.hdf5 --noise 0.1 --only-success
  jaxrl collect cartpole-balance --policy runs/cartpole-balance-ppo-20261121-101500 --episodes 50 \\
      --out demos/cartpole.hdf5
  jaxrl collect cartpole-balance --policy random --episodes 100 --out episodes/cartpole.hdf5 \
      env.physics_steps=4
  jaxrl data inspect demos/lift.hdf5

`random` acts uniformly in [-1, 1] (episodes for a world model to learn from:
`jaxrl train ENV world_model data=FILE`). env.KEY=VALUE sets the env's settings
(the expert's and the random policy's; a run's are its own), e.g. the control
rate a Dreamer recipe uses. Each demo also records `terminals`: 1 where the env
ended the episode, not a time limit.

--append adds to an existing file (same env) and numbers the new demos after
its last one; the seed is combined with the number of demos already there, so
appending draws new episodes. Ctrl-C stops with every finished demo on disk.
"""

EPILOG_DATA = """\
examples:
  jaxrl data inspect demos.hdf5
  jaxrl data inspect lerobot:datasets/pusht          # a LeRobot dataset (v2.1 or v3.0) folder
  jaxrl data convert demos.hdf5 --to lerobot datasets/lift      # LeRobot v3.0
  jaxrl data convert lerobot:datasets/lift --to robomimic lift.hdf5
  jaxrl train grasp-lift-cube bc data=lerobot:datasets/lift

Training reads a LeRobot dataset as it reads an HDF5 file (data=lerobot:FOLDER,
with the same :success, :all filters). Conversion keeps every array both formats
hold and the env's settings; what the way to HDF5 fills in is printed.
"""

CHECKPOINT_HELP = ("best (by evaluation; the default), latest (the newest, at the end of a run its last), or "
                   "the one taken at STEP: env steps, gradient steps for runs of bc and diffusion (as the "
                   "training log prints them, 10,000,000 or 10000000)")

EPILOG_EXPORT = """\
examples:
  jaxrl export runs/go1-joystick-ppo-20261121-101500 --out go1.onnx
  jaxrl export runs/go1-joystick-ppo-20261121-101500 --checkpoint 10,000,000 --out go1_10M.onnx

The file maps the raw observation `obs` [B, n] to the action `action` [B, a] in
the env's control units (or in [-1, 1] where the control is relative), with the
observation normalization inside; its metadata holds the observation layout,
action names, control dt, default joint pose and the env config. Before it is
written, its output is checked against the JAX policy on the run's recorded
observations.
"""

EPILOG_PLAY = """\
examples:
  jaxrl play go1.onnx --steps 500 --video go1.mp4
  jaxrl play go1.onnx --command 0.8,0,0 --viewer
  jaxrl play --compare runs/go1-joystick-ppo-20261121-101500 --episodes 16

Each episode starts from the env's own reset (--seed picks them) and ends at
its time limit or when the env terminates it; every episode's return is
printed, with the velocity-tracking errors for the Go1. --compare runs the
episodes without sensor noise, randomization or pushes, with each episode's
start command held, on both engines.
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
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue RUN_DIR from its latest checkpoint (overrides may follow)")
    train.add_argument("--distributed", action="store_true",
                       help="one process of a multi-host job: join the others (jax.distributed; SLURM, "
                            "Open MPI and TPU pods are found by themselves, else set "
                            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID) and train over "
                            "all their devices")
    _add_recipe_options(train)

    show = commands.add_parser(
        "config", help="show every setting a training run would use, with its type and meaning",
        description="Print each setting of the env, algo and train sections as `jaxrl train` would "
                    "resolve it, with its type and one-line doc.", epilog=EPILOG_CONFIG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("args", nargs="*", metavar="ENV ALGO [key=value ...]",
                      help="env and algorithm names, then config overrides")
    _add_recipe_options(show)

    evaluate = commands.add_parser(
        "eval", help="evaluate a trained run's deterministic policy",
        description="Run the deterministic policy of RUN_DIR's checkpoint for N episodes.")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--checkpoint", default="best", metavar="best|latest|STEP", help=CHECKPOINT_HELP)
    evaluate.add_argument("--episodes", type=int,
                          help="episodes, run in parallel (default: as many as the run evaluated with, "
                               "train.num_eval_envs)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the episodes' initial states")
    evaluate.add_argument("--member", type=int, metavar="K",
                          help="of a population (train.num_seeds, sweep.*): member K alone (default: every "
                               "member, and each sweep point's mean with its 95%% interval)")

    export = commands.add_parser(
        "export", help="write a trained policy as a self-contained ONNX file",
        description="Write the deterministic policy of RUN_DIR's checkpoint as an ONNX file, verified "
                    "against the JAX policy.", epilog=EPILOG_EXPORT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--checkpoint", default="best", metavar="best|latest|STEP", help=CHECKPOINT_HELP)
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the .onnx file to write")
    export.add_argument("--member", type=int, metavar="K",
                        help="of a population (train.num_seeds, sweep.*): member K (default: the member "
                             "whose best evaluation ranks first)")

    play = commands.add_parser(
        "play", help="run an exported policy in plain MuJoCo (onnxruntime, CPU); film it or compare",
        description="Run an exported policy (jaxrl export) with onnxruntime in plain MuJoCo on the CPU, "
                    "observations computed in NumPy; or, with --compare RUN_DIR, the same episodes in MJX "
                    "with the JAX policy and in plain MuJoCo with the ONNX one.", epilog=EPILOG_PLAY,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    play.add_argument("policy", type=Path, nargs="?", metavar="POLICY.onnx")
    play.add_argument("--env", help="the env to play in; it must be the one the policy was trained on")
    play.add_argument("--steps", type=int, default=1000, help="control steps to play (default 1000)")
    play.add_argument("--video", type=Path, metavar="FILE.mp4", help="write an MP4 (offscreen rendering)")
    play.add_argument("--width", type=int, default=640, help="video width in pixels (even; default 640)")
    play.add_argument("--height", type=int, default=480, help="video height in pixels (even; default 480)")
    play.add_argument("--viewer", action="store_true", help="MuJoCo's interactive viewer (needs a display)")
    play.add_argument("--command", dest="joystick_command", metavar="VX,VY,YAW",
                      help="hold this joystick command (Go1), e.g. 0.8,0,0")
    play.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts")
    play.add_argument("--compare", type=Path, metavar="RUN_DIR",
                      help="sim-to-sim: returns of the same episodes in MJX and in plain MuJoCo")
    play.add_argument("--checkpoint", default="best", metavar="best|latest|STEP",
                      help=f"with --compare, the checkpoint to compare: {CHECKPOINT_HELP}")
    play.add_argument("--episodes", type=int, default=16, help="with --compare: episodes (default 16)")

    collect = commands.add_parser(
        "collect", help="record demonstrations into an HDF5 file",
        description="Run a policy in ENV and write each episode as a demo (robomimic's HDF5 layout).",
        epilog=EPILOG_COLLECT, formatter_class=argparse.RawDescriptionHelpFormatter)
    collect.add_argument("env", metavar="ENV", help="environment name (`jaxrl list`)")
    collect.add_argument("--episodes", type=int, required=True, help="demos to write")
    collect.add_argument("--out", type=Path, required=True, metavar="FILE", help="HDF5 file to write")
    collect.add_argument("--policy", default="expert", metavar="expert|random|RUN_DIR",
                         help="the env's scripted expert (default), uniformly random actions, or a trained "
                              "run's best checkpoint (deterministic policy, the run's env settings)")
    collect.add_argument("--noise", type=float, default=0.0,
                         help="std of Gaussian noise added to the actions, which are then clipped to [-1, 1]")
    collect.add_argument("--only-success", action="store_true",
                         help="write only successful episodes, running more until there are enough")
    collect.add_argument("--append", action="store_true", help="add to FILE if it exists")
    collect.add_argument("--num-envs", type=int, metavar="M",
                         help="episodes run at once (default: up to 256 on a CPU, 4096 with an accelerator)")
    collect.add_argument("--seed", type=int, default=0, help="seed of the episodes and of the noise")
    collect.set_defaults(args=[])  # env.KEY=VALUE settings, gathered by main

    data = commands.add_parser("data", help="demonstration files: inspect, convert",
                               description="Work with demonstration files: HDF5 (robomimic's layout) and "
                                           "LeRobot datasets.",
                               epilog=EPILOG_DATA, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    inspect = data_commands.add_parser(
        "inspect", help="check a demonstration file and summarize it",
        description="Check FILE (structure, lengths, dtypes, NaN) and print its demos, samples, success "
                    "rate, episode lengths, per-key shapes and ranges, and env settings. FILE may be a "
                    "LeRobot dataset: lerobot:FOLDER, or the folder.")
    inspect.add_argument("file", metavar="FILE")
    convert = data_commands.add_parser(
        "convert", help="convert between HDF5 and a LeRobot dataset",
        description="Write SOURCE (an HDF5 file, or a LeRobot dataset folder) in the other format into the "
                    "new OUT: --to lerobot writes a LeRobot v3.0 folder, --to robomimic an HDF5 file.")
    convert.add_argument("source", metavar="SOURCE")
    convert.add_argument("--to", required=True, choices=("lerobot", "robomimic"), help="the format of OUT")
    convert.add_argument("out", type=Path, metavar="OUT")
    convert.add_argument("--fps", type=float,
                         help="frames per second, for an HDF5 file whose env_args give no control_dt")

    commands.add_parser("list", help="list environments, algorithms and recipes",
                        description="List registered environments, algorithms and recipe files.")
    bench = commands.add_parser("bench", add_help=False,
                                help="run the benchmarks into benchmarks/results/<machine>.json "
                                     "(--quick: small sizes; --help: the options)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """--config and --preset: how `train` and `config` pick the recipe and its variant."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="YAML recipe (default: configs/<env>_<algo>.yaml when it exists)")
    # No default: `train --resume` refuses a --preset given, even `auto`.
    parser.add_argument("--preset", choices=("auto", "cpu", "full"),
                        help="recipe variant: auto picks cpu when JAX finds no accelerator (default)")


def _preset(choice: str | None) -> str:
    """The recipe variant --preset names: "full" or "cpu" (auto, also when not given: cpu without an
    accelerator)."""
    from jaxrl import runtime

    if choice in (None, "auto"):
        return "full" if runtime.has_accelerator() else "cpu"
    return choice


def _split_run_args(args: argparse.Namespace):
    """(env, algo, overrides) from the positional words of `jaxrl train` or `jaxrl config`."""
    from jaxrl.config import ConfigError

    names = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if getattr(args, "resume", None) is not None:
        if names:
            raise ConfigError(f"--resume takes overrides only, not names: {' '.join(names)}")
        given = [flag for flag, value in (("--config", args.config), ("--preset", args.preset)) if value]
        if given:
            raise ConfigError(f"--resume continues the run with its saved config.yaml, so "
                              f"{' and '.join(given)} cannot apply; change settings with key=value overrides "
                              f"(e.g. train.num_timesteps=8000000), or start a new run")
        return None, None, overrides
    if len(names) > 2 or (not names and args.config is None):
        raise ConfigError(f"usage: jaxrl {args.command} ENV ALGO [key=value ...]  "
                          f"(`jaxrl list` shows the names)")
    if len(names) == 1:
        raise ConfigError(f"name both the env and the algorithm: jaxrl {args.command} {names[0]} ALGO")
    env_name, algo_name = names if names else (None, None)
    return env_name, algo_name, overrides


def _train(args: argparse.Namespace, console) -> int:
    from jaxrl import config, parallel
    from jaxrl.train import default_run_dir, train

    env_name, algo_name, overrides = _split_run_args(args)
    if args.distributed:  # before anything asks JAX for its devices
        parallel.initialize_distributed()
        if not parallel.is_main_process():  # process 0 speaks for the job
            from rich.console import Console

            console = Console(quiet=True)
    if args.resume is not None:
        run_dir = args.resume
        if not (run_dir / "config.yaml").exists():
            raise config.ConfigError(f"{run_dir} is not a run directory (no config.yaml in it)")
        cfg = config.load_saved(run_dir / "config.yaml", overrides)
        return _report(train(cfg, run_dir, resume=True, console=console))

    preset = _preset(args.preset)
    cfg = config.load(env_name, algo_name, args.config, overrides, preset)
    if args.preset in (None, "auto") and preset == "cpu":
        envs = f"num_envs={cfg.algo.num_envs}, " if hasattr(cfg.algo, "num_envs") else ""
        console.print(f"No accelerator found (JAX backend: cpu): using the CPU preset "
                      f"({envs}num_timesteps={cfg.train.num_timesteps:,}). Pass --preset full to override.")
    run_dir = Path(cfg.train.run_dir) if cfg.train.run_dir else default_run_dir(cfg)
    console.print(f"training {cfg.algo_name} on {cfg.env_name} -> {run_dir}")
    return _report(train(cfg, run_dir, console=console))


def _report(result) -> int:
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


def _config(args: argparse.Namespace, console) -> int:
    from jaxrl import config
    from jaxrl.config_docs import settings, value_text

    env_name, algo_name, overrides = _split_run_args(args)
    preset = _preset(args.preset)
    # The algorithm's own checks are reported after the settings, not raised: the settings are what a
    # user looks up, and bc and diffusion would otherwise show nothing until given their data=.
    cfg = config.load(env_name, algo_name, args.config, overrides, preset, check=False)
    recipe = config.recipe_for(cfg.env_name, cfg.algo_name, args.config)
    auto = " (auto)" if args.preset in (None, "auto") else ""
    console.print(f"{cfg.env_name} / {cfg.algo_name}: recipe {recipe or 'none (dataclass defaults)'}, "
                  f"preset {preset}{auto}, overrides {' '.join(overrides) or 'none'}", markup=False)
    rows = [(s.key, value_text(s.value), s.type, s.doc) for s in settings(cfg)]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for *columns, doc in rows:
        line = "  ".join(text.ljust(width) for text, width in zip(columns, widths, strict=True))
        console.print(f"  {line}  {doc}".rstrip(), markup=False)
    for name, values in cfg.sweep:
        console.print(f"  sweep.{name}  {list(values)}  varies algo.{name} across the population",
                      markup=False)
    if cfg.sweep or cfg.train.num_seeds > 1:
        from jaxrl.population import Population

        console.print(f"  a population of {Population.of(cfg).size} members, trained as one program")
    try:
        config.check_algo(cfg)
    except config.ConfigError as error:
        console.print(f"`jaxrl train` would refuse these settings: {error}", markup=False)
    return 0


def _eval(args: argparse.Namespace, console) -> int:
    from jaxrl import config
    from jaxrl.population import Population

    if args.episodes is not None and args.episodes < 1:
        raise config.ConfigError("--episodes must be >= 1")
    which = _checkpoint_choice(args.checkpoint)
    saved = args.run_dir / "config.yaml"
    population = Population.of(config.load_saved(saved)) if saved.exists() else None
    programs = {}  # the evaluation program, compiled once: a population's members share its shapes and env
    if population is None or population.is_single or args.member is not None:
        run, results = _evaluate_member(args, which, args.member, console, programs)
        who = f", member {run.member} ({run.label})" if run.member is not None else ""
        console.print(f"{run.cfg.env_name} / {run.cfg.algo_name}{who}, {_checkpoint_text(which, run)}, "
                      f"{_episodes(args, run)} episodes:")
        for key, value in results.items():
            console.print(f"  {key:<28} {value:10.3f}")
        return 0
    members = [_evaluate_member(args, which, m, console, programs) for m in range(population.size)]
    record = population.record_of([results for _, results in members])
    run = members[0][0]
    console.print(f"{run.cfg.env_name} / {run.cfg.algo_name}, {population.size} members, {which} checkpoint "
                  f"of each, {_episodes(args, run)} episodes each:")
    for key in members[0][1]:
        console.print(f"  {key}")
        for label, mean, interval in population.point_means(record, key):
            bounds = f"  95% interval [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            console.print(f"    {label or 'mean':<36} {mean:10.3f}{bounds}")
        for (run, results) in members:
            console.print(f"    {run.label:<36} {results[key]:10.3f}  ({run.steps_text})")
    return 0


def _evaluate_member(args: argparse.Namespace, which: str | int, member_index: int | None, console,
                     programs: dict):
    """(the restored run, its evaluation results) of RUN_DIR, or of its member `member_index`. The
    evaluation program is compiled into `programs` by the first member evaluated (saying where compiling
    it went) and run from there for the others."""
    import jax

    from jaxrl.evaluation import add_success_interval
    from jaxrl.runs import restore_run, run_evaluator

    run = restore_run(args.run_dir, which, member_index=member_index)
    if "evaluate" not in programs:
        programs["evaluate"], compiler = run_evaluator(run, _episodes(args, run))
        console.print(f"compiled {compiler.times[-1].describe()}")
    results = programs["evaluate"](run.params, jax.random.PRNGKey(args.seed))
    return run, add_success_interval({k: float(v) for k, v in results.items()}, _episodes(args, run))


def _episodes(args: argparse.Namespace, run) -> int:
    """`jaxrl eval`'s episodes: --episodes, else as many as the run evaluated with."""
    return run.cfg.train.num_eval_envs if args.episodes is None else args.episodes


def _checkpoint_choice(text: str) -> str | int:
    """--checkpoint's value as Checkpointer.restore takes it: "best", "latest" or the run's steps."""
    from jaxrl.config import ConfigError

    if text in ("best", "latest"):
        return text
    try:
        return int(text.replace(",", ""))  # as logs print it (10,000,000); int() takes 10_000_000
    except ValueError:
        raise ConfigError(f"--checkpoint takes best, latest or a number of steps (env steps; gradient steps "
                          f"for a run of bc or diffusion), not {text!r}") from None


def _checkpoint_text(which: str | int, run) -> str:
    """E.g. "best checkpoint at 1,024 env steps"; without a name for a checkpoint chosen by its steps."""
    name = f"{which} " if isinstance(which, str) else ""
    return f"{name}checkpoint at {run.steps_text}"


def _export(args: argparse.Namespace, console) -> int:
    from jaxrl.export.onnx import export_run
    from jaxrl.runs import restore_run

    which = _checkpoint_choice(args.checkpoint)
    run = restore_run(args.run_dir, which, member_index=args.member)
    if run.member is not None:
        chosen = "" if args.member is not None else ", the member whose best evaluation ranks first"
        console.print(f"member {run.member} ({run.label}){chosen}; --member K exports another")
    result = export_run(run, str(which) if run.member is None else f"{which} of member {run.label}", args.out)
    meta = result.metadata
    units = "control units" if meta.action_offset is not None else "[-1, 1] (relative control)"
    console.print(f"wrote {result.path} ({result.size_bytes / 1024:,.1f} KiB): {meta.env_name} / "
                  f"{meta.algo}, checkpoint {meta.checkpoint!r} ({run.steps_text}), jaxrl "
                  f"{meta.jaxrl_version}")
    console.print(f"  verified on {result.checked_on}: max |ONNX - JAX| = {result.max_error:.2g}")
    console.print(f"  obs [B, {meta.obs_size}]: {' '.join(f'{n}[{s}]' for n, s in meta.obs_layout)}")
    console.print(f"  action [B, {meta.action_size}] in {units}: {', '.join(meta.action_names)}")
    if meta.memory_size:
        console.print(f"  memory [B, {meta.memory_size}] in, next_memory out: zeros at an episode's start, "
                      f"then the last next_memory")
    console.print(f"  control dt {meta.control_dt} s; default pose of {len(meta.default_joint_pose)} joints")
    return 0


def _parse_command(text: str | None) -> tuple[float, ...] | None:
    from jaxrl.config import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--command takes numbers separated by commas (vx,vy,yaw), not {text!r}") from None


def _play(args: argparse.Namespace, console) -> int:
    from jaxrl import algos
    from jaxrl.config import ConfigError
    from jaxrl.export.onnx_policy import OnnxPolicy
    from jaxrl.export.play import Playback, episode_reports

    if args.compare is not None:
        return _compare(args, console)
    if args.policy is None:
        raise ConfigError("give a policy file (jaxrl play policy.onnx) or a run: --compare RUN_DIR")
    if args.steps < 1:
        raise ConfigError("--steps must be >= 1")
    if args.viewer and args.video is not None:
        raise ConfigError("choose one of --viewer and --video")
    if args.viewer and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError("--viewer needs a display (DISPLAY is not set); write a video instead: "
                          "--video out.mp4")
    try:
        command = _parse_command(args.joystick_command)
        playback = Playback(OnnxPolicy(args.policy), args.env, args.seed, command)
    except ValueError as error:  # a command the env cannot take
        raise ConfigError(str(error)) from None
    meta = playback.policy.metadata
    offline = meta.algo in algos.list_algorithms() and algos.is_offline(algos.get(meta.algo))
    unit = "gradient steps" if offline else "env steps"
    console.print(f"playing {args.policy} ({meta.env_name} / {meta.algo}, {meta.training_step:,} {unit}) "
                  f"in plain MuJoCo for {args.steps:,} control steps")
    reports = []

    def on_episode(report):
        reports.append(report)
        console.print(f"  episode {len(reports)}: {report.summary()}")

    steps = episode_reports(playback.run(args.steps), on_episode)
    if args.video is not None:
        _play_to_video(playback, steps, args, console)
    elif args.viewer:
        _play_in_viewer(playback, steps)
    else:
        for _ in steps:
            pass
    mean = sum(r.episode_return for r in reports) / len(reports)
    console.print(f"mean return {mean:.3f} over {len(reports)} episode(s)")
    return 0


def _play_to_video(playback, steps, args: argparse.Namespace, console) -> None:
    from jaxrl.video import FrameRenderer, write_mp4

    env, twin = playback.env, playback.twin
    with FrameRenderer(twin.model, args.width, args.height, env.render_camera) as renderer:
        count = write_mp4(args.video, (renderer.render(twin.data) for _ in steps), 1.0 / env.dt)
    console.print(f"wrote {args.video}: {count} frames at {1.0 / env.dt:g} fps")


def _play_in_viewer(playback, steps) -> None:
    import time

    import mujoco.viewer

    twin = playback.twin
    with mujoco.viewer.launch_passive(twin.model, twin.data) as viewer:
        next_frame = time.monotonic()
        for _ in steps:
            if not viewer.is_running():
                break
            viewer.sync()
            next_frame += twin.dt  # real time
            time.sleep(max(0.0, next_frame - time.monotonic()))


def _compare(args: argparse.Namespace, console) -> int:
    import tempfile

    from jaxrl.config import ConfigError
    from jaxrl.export.onnx import export_run
    from jaxrl.export.onnx_policy import OnnxPolicy
    from jaxrl.export.sim_to_sim import compare
    from jaxrl.runs import restore_run

    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    which = _checkpoint_choice(args.checkpoint)
    run = restore_run(args.compare, which)
    with tempfile.TemporaryDirectory() as scratch:
        path = args.policy or export_run(run, str(which), Path(scratch) / "policy.onnx").path
        policy = OnnxPolicy(path)
        policy.check_env(run.train_env.unwrapped, run.cfg.env_name)
        console.print(f"{run.cfg.env_name}: {args.episodes} episodes in MJX (JAX policy) and in plain MuJoCo "
                      f"(ONNX policy), {_checkpoint_text(which, run)}")
        result = compare(run.algo, run.params, run.cfg.env_name, run.cfg.env, policy,
                         args.episodes, args.seed)
    for i, (mjx, plain) in enumerate(zip(result.mjx_returns, result.plain_returns, strict=True)):
        console.print(f"  episode {i + 1}: return MJX {mjx:10.3f}   plain MuJoCo {plain:10.3f}")
    console.print(f"mean return MJX {result.mjx_returns.mean():.3f}, plain MuJoCo "
                  f"{result.plain_returns.mean():.3f}: plain MuJoCo keeps {100 * result.kept:.1f}%")
    return 0


def _collection_policy(args: argparse.Namespace):
    """(unwrapped env, policy with memory, its params, a description) for `jaxrl collect` (see collect)."""
    import envs_mjx
    from envs_mjx.registry import UnknownEnvError
    from jaxrl.config import ConfigError
    from jaxrl.data.collect import memoryless
    from jaxrl.evaluation import policy_with_memory
    from jaxrl.runs import restore_run

    if args.policy in ("expert", "random"):
        from envs_mjx.registry import NoExpertError, make_expert
        from jaxrl.data.collect import uniform_random

        try:
            env = envs_mjx.make(args.env, **_env_settings(args.args))
            if args.policy == "random":
                return env, uniform_random(env.action_size), None, "uniformly random actions"
            return env, memoryless(make_expert(args.env, env)), None, "scripted expert"
        except (UnknownEnvError, NoExpertError, TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
    if args.args:
        raise ConfigError(f"a run's policy acts in the run's env; leave out {' '.join(args.args)}")
    run = restore_run(Path(args.policy), "best", env_name=args.env)
    # With its memory (an observation history, action chunks), as evaluation ran it.
    return (run.train_env.unwrapped, policy_with_memory(run.algo), run.params,
            f"{run.cfg.algo_name} policy of {args.policy} at {run.steps_text}")


def _env_settings(overrides: list[str]) -> dict:
    """{"physics_steps": 4} from ["env.physics_steps=4"]; ConfigError for any other form."""
    from jaxrl.config import ConfigError, parse_value

    settings = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if not key.startswith("env.") or "." in key[4:]:
            raise ConfigError(f"{item}: collect takes the env's settings as env.KEY=VALUE")
        settings[key[4:]] = parse_value(value)
    return settings


@contextlib.contextmanager
def _collect_progress(console, demos_wanted: int):
    """A progress callback for `collect`: a rich bar on a terminal, else a line now and then."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from jaxrl.logger import PLAIN_LINE_SECONDS

    if not console.is_terminal:
        last_line = -PLAIN_LINE_SECONDS

        def print_line(stats):
            nonlocal last_line
            if time.monotonic() - last_line >= PLAIN_LINE_SECONDS or stats.demos_written == demos_wanted:
                last_line = time.monotonic()
                console.print(f"{stats.demos_written:>8,} / {demos_wanted:,} demos  "
                              f"{stats.steps_per_second:>9,.0f} steps/s  "
                              f"success {100 * stats.success_rate:.0f}%")

        yield print_line
        return
    with Progress(TextColumn("[bold]collecting"), BarColumn(),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f} demos"),
                  TextColumn("{task.fields[sps]} steps/s"), TextColumn("success {task.fields[rate]}"),
                  TextColumn("ETA"), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("collect", total=demos_wanted, sps="-", rate="-")
        yield lambda stats: bar.update(task, completed=stats.demos_written,
                                       sps=f"{stats.steps_per_second:,.0f}",
                                       rate=f"{100 * stats.success_rate:.0f}%")


def _collect(args: argparse.Namespace, console) -> int:
    import jax

    from jaxrl import config, runtime
    from jaxrl.data.collect import collect
    from jaxrl.data.writer import DemoWriter
    from jaxrl.signals import sigterm_as_interrupt

    if args.episodes < 1 or (args.num_envs is not None and args.num_envs < 1):
        raise config.ConfigError("--episodes and --num-envs must be >= 1")
    if args.noise < 0:
        raise config.ConfigError(f"--noise is a standard deviation, >= 0; got {args.noise}")
    env, policy, params, described = _collection_policy(args)
    num_envs = args.num_envs or min(args.episodes, 4096 if runtime.has_accelerator() else 256)
    with DemoWriter(args.out, args.env, config.as_dict(env.config), env.dt, append=args.append) as writer:
        key = jax.random.fold_in(jax.random.PRNGKey(args.seed), writer.num_demos)
        console.print(f"collecting {args.episodes:,} demos of {args.env} ({described}, noise {args.noise}) "
                      f"with {num_envs:,} envs at a time -> {args.out}")
        try:
            with sigterm_as_interrupt(), _collect_progress(console, args.episodes) as progress:
                stats = collect(env, policy, args.episodes, writer, num_envs=num_envs, key=key, params=params,
                                noise=args.noise, only_success=args.only_success,
                                sample=args.policy == "random", progress=progress)
        except KeyboardInterrupt:
            console.print(f"interrupted: {writer.num_added:,} demos written to {args.out} "
                          f"({writer.num_demos:,} in the file); the file is complete and readable")
            return EXIT_INTERRUPTED
        console.print(f"wrote {stats.demos_written:,} demos to {args.out} ({writer.num_demos:,} demos, "
                      f"{writer.total:,} samples in the file); success rate {100 * stats.success_rate:.1f}% "
                      f"of {stats.episodes_run:,} episodes; {stats.steps_per_second:,.0f} env steps/s after "
                      f"{stats.compile_seconds:.1f} s of compilation")
    return 0


def _data(args: argparse.Namespace, console) -> int:
    from jaxrl.data.convert import convert
    from jaxrl.data.inspect import inspect, print_report

    if args.data_command == "inspect":
        print_report(inspect(args.file), console)
        return 0
    done = convert(args.source, args.to, args.out, args.fps)
    console.print(f"wrote {done.out}: {done.num_demos:,} demos, {done.total_samples:,} samples ({args.to})")
    for note in done.notes:
        console.print(f"  {note}")
    return 0


def _list(console) -> int:
    import envs_mjx
    from envs_mjx import peers
    from jaxrl import algos, config

    console.print("[bold]environments[/bold]")
    for name, summary in {**envs_mjx.list_envs(), **peers.summaries()}.items():
        console.print(f"  {name:<22} {summary}")
    console.print("[bold]algorithms[/bold]")
    for name, summary in algos.list_algorithms().items():
        console.print(f"  {name:<22} {summary}")
    console.print(f"[bold]recipes[/bold] ({config.CONFIG_DIR})")
    for path in config.list_recipes():
        console.print(f"  {path.name}")
    return 0


def _bench(argv: list[str]) -> int:
    """`jaxrl bench`: benchmarks/suite.py of the source checkout this package runs from."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "suite.py").exists():
        print("error: jaxrl bench runs the benchmarks of a source checkout, and this jaxrl is installed "
              "without one: git clone the repository and pip install -e it", file=sys.stderr)
        return EXIT_USAGE
    sys.path.insert(0, str(root))
    from benchmarks import suite

    return suite.main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["bench"]:  # its options are the suite's own (benchmarks/suite.py)
        return _bench(argv[1:])
    # key=value overrides may also follow options (`train ENV ALGO --preset cpu num_envs=64`),
    # which argparse alone would reject.
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if len(overrides) < len(extra) or (overrides and args.command not in ("train", "config", "collect")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.args += overrides
    # XLA's C++ logger reports benign CPU-feature mismatches each time it loads
    # a cached executable; keep its output to fatal errors unless asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    from envs_mjx.registry import NoPlainTwinError
    from jaxrl import runtime
    from jaxrl.checkpoint import CheckpointError
    from jaxrl.config import ConfigError
    from jaxrl.data.collect import CollectError
    from jaxrl.data.validate import DatasetError
    from jaxrl.export import ExportError, PolicyFileError, PolicyMismatchError
    from jaxrl.replay import ReplayCapacityError
    from jaxrl.train import TrainingDiverged

    runtime.configure_jax()
    commands = {"train": _train, "config": _config, "eval": _eval, "export": _export, "play": _play,
                "collect": _collect, "data": _data}
    try:
        if args.command in commands:
            return commands[args.command](args, console)
        return _list(console)
    except (ConfigError, CheckpointError, DatasetError, CollectError, ExportError, PolicyFileError,
            PolicyMismatchError, ReplayCapacityError, NoPlainTwinError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)  # "[key=value ...]" is text
        return EXIT_USAGE
    except TrainingDiverged as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)  # "[key=value ...]" is text
        return EXIT_DIVERGED


if __name__ == "__main__":
    sys.exit(main())
