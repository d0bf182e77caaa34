"""Success rate of policies learned from expert demonstrations, against the expert, on grasp-lift-cube.

For each number of demos and seed it collects that many successful scripted-
expert demos (collection seed = seed, so the seeds differ in data as well as
in training), trains each method with its recipe (`jaxrl train grasp-lift-cube
METHOD data=...`, the CPU preset without an accelerator), then evaluates the
best checkpoint on `--episodes` fresh randomized episodes (rounded up to whole
rounds of the run's own evaluation batch, train.num_eval_envs). The expert is
evaluated on the same number of episodes. Records per run:

  success_rate, success_rate_95ci   of the best checkpoint over --episodes episodes (Wilson interval)
  train_seconds, grad_steps_per_second    training alone (evaluations and compilation apart)

Methods: bc (MSE), bc_aug (bc with Gaussian noise of std --obs-noise on standardized
observations; each level is its own row), diffusion.

    python -m benchmarks.demo_learning                                   # bc, bc_aug, expert; CPU
    python -m benchmarks.demo_learning --methods bc_aug --obs-noise 0.02 0.05   # a sweep
    python -m benchmarks.demo_learning --methods diffusion --steps 50000   # on a GPU
    python -m benchmarks.demo_learning --methods bc train.num_eval_envs=20   # config overrides

Each finished run is written at once to benchmarks/results/demo_learning_<cpu|gpu>.json
(a rerun replaces the rows it measures again), so an interrupted benchmark keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ENV = "grasp-lift-cube"
METHODS = {"bc": "bc", "bc_aug": "bc", "diffusion": "diffusion"}  # method -> learner


def unseen_episodes_key(seed: int):
    """The key of a result's evaluation episodes: apart from the keys its demos were collected with."""
    import jax

    return jax.random.PRNGKey(1000 + seed)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["expert", "bc", "bc_aug"],
                        choices=["expert", *METHODS])
    parser.add_argument("--demos", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=1000,
                        help="evaluation episodes per result (a learner's: rounded up to whole rounds of "
                             "its train.num_eval_envs)")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps (default: the recipe's)")
    parser.add_argument("--obs-noise", type=float, nargs="+", default=[0.1],
                        help="bc_aug's obs_noise levels, one run each")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/demo_learning_<cpu|gpu>.json)")
    parser.add_argument("overrides", nargs="*", help="config overrides of every learner's run, key=value")
    return parser.parse_args(argv)


def collect_demos(count: int, seed: int, folder: Path) -> Path:
    import jax

    import envs_mjx
    from jaxrl import config
    from jaxrl.data.collect import collect, memoryless
    from jaxrl.data.writer import DemoWriter

    path = folder / f"demos_{count}_{seed}.hdf5"
    env = envs_mjx.make(ENV)
    with DemoWriter(path, ENV, config.as_dict(env.config), env.dt) as writer:
        collect(env, memoryless(envs_mjx.make_expert(ENV, env)), count, writer, num_envs=min(count, 100),
                key=jax.random.PRNGKey(seed), only_success=True)
    return path


def success(rate: float, episodes: int) -> dict:
    """A success rate over `episodes` episodes, with its interval."""
    from jaxrl.evaluation import wilson_interval

    interval = wilson_interval(round(rate * episodes), episodes)
    return {"success_rate": rate, "success_rate_95ci": list(interval), "episodes": episodes}


def evaluate_run(run, episodes: int, seed: int) -> dict:
    """Success rate of `run`'s policy over at least `episodes` unseen episodes: whole rounds of the run's
    own evaluation (as many episodes as it evaluated with while training), whose program training
    compiled, so that the final evaluation compiles nothing new (a diffusion policy's sampler inside the
    grasp rollout is the longest compile of this benchmark)."""
    import jax

    from jaxrl.runs import run_evaluator

    batch = run.cfg.train.num_eval_envs
    evaluate, _ = run_evaluator(run, batch)
    keys = jax.random.split(unseen_episodes_key(seed), -(-episodes // batch))
    rate = sum(float(evaluate(run.params, key)["eval/success"]) for key in keys) / len(keys)
    return success(rate, len(keys) * batch)


def measure_expert(episodes: int, seed: int) -> dict:
    import jax

    import envs_mjx
    from jaxrl import config
    from jaxrl.evaluation import make_evaluator
    from jaxrl.train import make_envs

    cfg = config.load(ENV, "ppo")  # only its env settings: the env's defaults
    _, eval_env = make_envs(cfg)
    expert = envs_mjx.make_expert(ENV, eval_env.unwrapped)
    # What the evaluator needs of a learner, as a class: hashable, as its cache wants.
    def policy(params, obs):  # params: the keys of the expert's noise
        return jax.vmap(expert)(obs, params)

    as_algo = type("ScriptedExpert", (), {"policy": staticmethod(policy)})
    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    evaluator = make_evaluator(eval_env, as_algo, episodes, cfg.env.episode_length)
    rate = float(evaluator(keys, unseen_episodes_key(seed))["eval/success"])
    return {"method": "expert", "seed": seed, **success(rate, episodes)}


def measure_learner(method: str, data: Path, demos: int, seed: int, args, folder: Path,
                    extra: tuple[str, ...] = ()) -> dict:
    from rich.console import Console

    from jaxrl import config, runtime
    from jaxrl.runs import restore_run
    from jaxrl.train import train

    algo_name = METHODS[method]
    overrides = [f"data={data}", f"train.seed={seed}", "train.tensorboard=false", *args.overrides, *extra]
    if args.steps is not None:
        overrides.append(f"train.num_timesteps={args.steps}")
    preset = "full" if runtime.has_accelerator() else "cpu"
    cfg = config.load(ENV, algo_name, preset=preset, overrides=overrides)
    run_dir = folder / "_".join([method, *extra, str(demos), str(seed)])
    result = train(cfg, run_dir, console=Console(quiet=True))
    run = restore_run(run_dir, "best")
    row = evaluate_run(run, args.episodes, seed)
    return {"method": method, "demos": demos, "seed": seed, "overrides": [*args.overrides, *extra], **row,
            "best_checkpoint_grad_steps": run.meta["grad_steps"], "grad_steps": result.steps,
            "train_seconds": result.run_seconds, "compile_seconds": result.compile_seconds,
            "grad_steps_per_second": result.steps / max(result.run_seconds, 1e-9),
            "training_eval_success": result.final_eval.get("eval/success")}


def save(out: Path, record: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    device = "gpu" if runtime.has_accelerator() else "cpu"
    out = args.out or RESULTS / f"demo_learning_{device}.json"
    record = json.loads(out.read_text()) if out.exists() else {"benchmark": "demo_learning", "env": ENV,
                                                                "results": []}
    record["machine"] = describe_machine()

    def keep(row: dict) -> None:
        same = lambda r: all(r.get(k) == row.get(k)  # noqa: E731
                             for k in ("method", "demos", "seed", "overrides"))
        record["results"] = [r for r in record["results"] if not same(r)] + [row]
        save(out, record)
        low, high = row["success_rate_95ci"]
        name = " ".join([row["method"], *row.get("overrides", [])])
        print(f"{name:10} demos {row.get('demos', '-'):>4} seed {row['seed']}  success "
              f"{100 * row['success_rate']:5.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
              + (f"  {row['grad_steps_per_second']:,.0f} grad steps/s, {row['train_seconds']:.0f} s"
                 if "train_seconds" in row else ""), flush=True)

    if "expert" in args.methods:
        for seed in args.seeds:
            keep(measure_expert(args.episodes, seed))
    learners = [m for m in args.methods if m != "expert"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for demos in args.demos:
            for seed in args.seeds:
                if not learners:
                    break
                started = time.monotonic()
                data = collect_demos(demos, seed, folder)
                print(f"collected {demos} demos (seed {seed}) in {time.monotonic() - started:.0f} s",
                      flush=True)
                for method in learners:
                    for extra in ([(f"algo.obs_noise={noise}",) for noise in args.obs_noise]
                                  if method == "bc_aug" else [()]):
                        keep(measure_learner(method, data, demos, seed, args, folder, extra))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
