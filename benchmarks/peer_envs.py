"""Our PPO against brax's PPO on brax's own envs: their env, their trainer, our trainer.

`jaxrl train brax:NAME ppo` steps brax's env through `envs_mjx.peers`; brax's
`ppo.train` steps the same env (same backend, episode length 1000) with its
own wrappers. Both use the same batch shape, epochs, learning rate, entropy
cost, discount, GAE lambda, clipping, network sizes, observation
normalization and value-loss weight. Time-outs differ by design: ours
bootstraps the value of a truncated episode's final observation, brax masks
those steps out of its loss (its bootstrap_on_timeout needs a `time_out` info
key that its own envs do not set). Each evaluates the deterministic policy on the same
number of envs at 0, 1/4, 1/2, 3/4 and all of the env steps. Reported per env
and seed: the eval returns at equal env steps and the training env steps/s
(compilation and evaluation excluded; brax's figure is the median of its last
two epochs', as its first two include compiling), and as ratios ours / brax,
medians over seeds.

    python -m benchmarks.peer_envs                                   # inverted_pendulum, ant; seeds 0-2
    python -m benchmarks.peer_envs --envs ant --seeds 0 --env-steps 20480   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import warnings
from pathlib import Path

# isort: off
import envs_mjx  # noqa: F401  before brax: our quiet import of MJX must be the one cached
# isort: on

from brax import envs as brax_envs
from brax.training.agents.ppo import networks as brax_networks
from brax.training.agents.ppo import train as brax_ppo

from benchmarks.machine import describe_machine

RESULTS = Path(__file__).parent / "results"
EPISODE_LENGTH = 1000
# Enough for ours and brax's to balance the pendulum (both do by 102,400); ant is far from walking
# after 1M steps (brax's own ant recipe trains 50M), but past standing still.
ENV_STEPS = {"inverted_pendulum": 204_800, "ant": 1_024_000}
DEFAULT_ENV_STEPS = 204_800  # other envs
NUM_EVALS = 5  # brax's count, step 0 included; its training runs in NUM_EVALS - 1 timed epochs
NUM_EVAL_ENVS = 16
# Both libraries' default networks; swish activations in both.
POLICY_LAYERS = (32, 32, 32, 32)
VALUE_LAYERS = (256, 256, 256, 256, 256)
SHARED = dict(num_envs=128, unroll_length=20, num_minibatches=4, num_updates_per_batch=4,
              learning_rate=3e-4, entropy_cost=1e-2, discounting=0.97, gae_lambda=0.95,
              clipping_epsilon=0.2, reward_scaling=1.0, max_grad_norm=1.0, normalize_observations=True,
              vf_loss_coefficient=0.5)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["inverted_pendulum", "ant"], help="brax.envs names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int,
                        help="training env steps per run, for every env (a multiple of 4 x num_envs x "
                             f"unroll_length); default: {ENV_STEPS}")
    parser.add_argument("--backend", default="generalized", help="brax physics backend, the same for both")
    parser.add_argument("--out", type=Path, default=RESULTS / "peer_envs_cpu.json")
    return parser.parse_args(argv)


def run_ours(name: str, seed: int, env_steps: int, backend: str) -> dict:
    from jaxrl import config
    from jaxrl.train import train

    settings = [f"algo.{key}={value}" for key, value in SHARED.items()]
    settings += [f"algo.policy_hidden_layer_sizes={list(POLICY_LAYERS)}",
                 f"algo.value_hidden_layer_sizes={list(VALUE_LAYERS)}", "algo.activation=swish",
                 f"env.backend={backend}", f"env.episode_length={EPISODE_LENGTH}",
                 f"train.num_timesteps={env_steps}", f"train.eval_every={env_steps // (NUM_EVALS - 1)}",
                 "train.iterations_per_call=1",
                 f"train.num_eval_envs={NUM_EVAL_ENVS}", f"train.seed={seed}", "train.tensorboard=false",
                 "train.checkpoint_every=0"]
    cfg = config.load(f"brax:{name}", "ppo", overrides=settings)
    evals = []

    def on_record(record):
        if "eval/episode_return" in record:
            evals.append((record["env_steps"], record["eval/episode_return"]))

    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir), on_record=on_record)
    return {"evals": [{"env_steps": s, "return": r} for s, r in evals],
            "train_steps_per_second": result.steps / result.run_seconds,
            "compile_seconds": result.compile_seconds}


def run_brax(name: str, seed: int, env_steps: int, backend: str) -> dict:
    evals = []

    def progress(step, metrics):
        evals.append((int(step), float(metrics["eval/episode_reward"]), metrics.get("training/sps")))

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
        environment = brax_envs.get_environment(name, backend=backend)
    hparams = {key: value for key, value in SHARED.items() if key != "num_minibatches"}
    brax_ppo.train(
        environment=environment, num_timesteps=env_steps, episode_length=EPISODE_LENGTH,
        batch_size=SHARED["num_envs"] // SHARED["num_minibatches"], num_minibatches=SHARED["num_minibatches"],
        num_evals=NUM_EVALS, num_eval_envs=NUM_EVAL_ENVS, deterministic_eval=True,
        network_factory=functools.partial(brax_networks.make_ppo_networks,
                                          policy_hidden_layer_sizes=POLICY_LAYERS,
                                          value_hidden_layer_sizes=VALUE_LAYERS),
        progress_fn=progress, seed=seed, **hparams)
    epochs = [float(sps) for _, _, sps in evals[1:]]
    return {"evals": [{"env_steps": s, "return": r} for s, r, _ in evals],
            "train_steps_per_second": statistics.median(epochs[2:]), "epoch_steps_per_second": epochs}


def ratios(runs: list[dict]) -> dict:
    """Medians over seeds of ours / brax: the eval return at each shared eval step, and steps/s."""
    def by_step(run):
        return {e["env_steps"]: e["return"] for e in run["evals"]}

    steps = sorted(set.intersection(*(set(by_step(r["ours"])) & set(by_step(r["brax"])) for r in runs)))
    eval_returns = {}
    for step in steps:
        ours = statistics.median(by_step(r["ours"])[step] for r in runs)
        theirs = statistics.median(by_step(r["brax"])[step] for r in runs)
        eval_returns[str(step)] = {"ours_median": ours, "brax_median": theirs,
                                   "ratio_of_medians": ours / theirs if theirs else None}
    speed = [r["ours"]["train_steps_per_second"] / r["brax"]["train_steps_per_second"] for r in runs]
    return {"eval_return_at_env_steps": eval_returns,
            "train_steps_per_second_ratio_median": statistics.median(speed)}


def plot(record: dict, out: Path) -> None:
    """Eval return against env steps, a panel per env: every seed of both trainers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(record["envs"]), figsize=(5.5 * len(record["envs"]), 4), squeeze=False)
    for ax, (name, result) in zip(axes[0], record["envs"].items(), strict=True):
        for trainer, color in (("ours", "tab:blue"), ("brax", "tab:orange")):
            for i, run in enumerate(result["runs"]):
                evals = run[trainer]["evals"]
                ax.plot([e["env_steps"] for e in evals], [e["return"] for e in evals], "o-", color=color,
                        alpha=0.7, markersize=3, label=f"{trainer} PPO" if i == 0 else None)
        ax.set_title(f"brax {name}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return (deterministic policy)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main(argv=None) -> None:
    args = parse_args(argv)
    from jaxrl import runtime
    runtime.configure_jax()
    record = {"benchmark": "peer_envs", "settings": {
        "shared_hyperparameters": SHARED, "policy_layers": POLICY_LAYERS, "value_layers": VALUE_LAYERS,
        "episode_length": EPISODE_LENGTH, "num_eval_envs": NUM_EVAL_ENVS,
        "env_steps": {name: args.env_steps or ENV_STEPS.get(name, DEFAULT_ENV_STEPS) for name in args.envs},
        "backend": args.backend, "seeds": args.seeds}, "envs": {}}
    for name in args.envs:
        runs = []
        for seed in args.seeds:
            steps = args.env_steps or ENV_STEPS.get(name, DEFAULT_ENV_STEPS)
            run = {"seed": seed, "ours": run_ours(name, seed, steps, args.backend),
                   "brax": run_brax(name, seed, steps, args.backend)}
            runs.append(run)
            print(f"{name} seed {seed}: ours {[round(e['return'], 1) for e in run['ours']['evals']]} "
                  f"{run['ours']['train_steps_per_second']:,.0f} steps/s; brax "
                  f"{[round(e['return'], 1) for e in run['brax']['evals']]} "
                  f"{run['brax']['train_steps_per_second']:,.0f} steps/s", flush=True)
        record["envs"][name] = {"runs": runs, "ours_over_brax": ratios(runs)}
        print(json.dumps(record["envs"][name]["ours_over_brax"], indent=1), flush=True)
    record["machine"] = describe_machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(record, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
