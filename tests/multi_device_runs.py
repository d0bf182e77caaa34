"""The runs tests/test_parallel.py compares, made in processes of their own: a process's device count is
fixed when JAX starts (XLA_FLAGS=--xla_force_host_platform_device_count=N), and the suite's own
processes have one device.

  python multi_device_runs.py devices OUT     on 4 devices: runs on 1 and on 4 of them (cartpole on 4
                                              only: the suite's tiny_config, which the suite runs on 1),
                                              resumes across the counts, a refused split, a population
                                              on 1 device and split over 2 x 2; OUT/records.json
                                              holds their records
  python multi_device_runs.py distributed RUN_DIR
                                              one process of a jax.distributed job (the JAX_* variables
                                              say which): `jaxrl train --distributed` into RUN_DIR
"""

import json
import sys
from pathlib import Path

import toy_envs
from tiny_runs import TINY_CARTPOLE_PPO, TINY_DREAMER

COMMON = ["train.iterations_per_call=2", "train.num_timesteps=1024", "train.eval_every=512",
          "train.checkpoint_every=512", "train.num_eval_envs=8", "train.tensorboard=false",
          "algo.num_envs=16"]
SMALL_ACTOR = ["algo.policy_hidden_layer_sizes=[16,16]"]
# (env, algo, overrides) of each run compared. A toy env compiles in seconds; cartpole puts MJX's physics
# (its solver's while_loop over a batch split between devices) under the partitioner.
RUNS = {
    "ppo-toy": ("step-counter", "ppo", SMALL_ACTOR + ["algo.unroll_length=8", "algo.num_minibatches=2",
                                                      "algo.value_hidden_layer_sizes=[16,16]"]),
    "sac-toy": ("step-counter", "sac", SMALL_ACTOR + ["algo.unroll_length=2", "algo.replay_capacity=1024",
                                                      "algo.min_replay_size=64", "algo.batch_size=32",
                                                      "algo.grad_updates_per_step=2",
                                                      "algo.q_hidden_layer_sizes=[16,16]",
                                                      "train.eval_every=256"]),
    # The latent states of the policy's memory split with the envs; chunks drawn from replay columns.
    "dreamer-toy": ("step-counter", "dreamer", TINY_DREAMER + [
        "algo.num_envs=16", "algo.min_replay_size=128", "algo.replay_capacity=512",
        "train.num_timesteps=512", "train.eval_every=256", "train.checkpoint_every=256"]),
}
ON_FOUR_ONLY = {"ppo-cartpole": ("cartpole-balance", "ppo", TINY_CARTPOLE_PPO)}
HALF = ["train.num_timesteps=512"]  # where a resumed run's first part stops
POPULATION = ["train.num_seeds=2", "sweep.learning_rate=[3e-4,1e-3]"]  # of ppo-toy: 4 members


def overrides(name: str) -> list[str]:
    return COMMON + RUNS[name][2]


def config_of(name: str, extra=()):
    from jaxrl import config

    if name in ON_FOUR_ONLY:
        env, algo, settings = ON_FOUR_ONLY[name]
        return config.load(env, algo, overrides=settings, preset="cpu")
    env, algo, _ = RUNS[name]
    return config.load(env, algo, overrides=overrides(name) + list(extra), preset="cpu")


def records(run_dir: Path) -> list[dict]:
    from jaxrl.logger import read_metrics

    return [{k: v for k, v in r.items() if not k.startswith("time/")}
            for r in read_metrics(run_dir / "metrics.jsonl")]


def on_devices(out: Path) -> None:
    import jax

    from jaxrl import config, runtime
    from jaxrl.train import train

    runtime.configure_jax()
    one, four = jax.devices()[:1], jax.devices()
    results = {}
    for name in RUNS:
        for label, devices in (("1", one), ("4", four)):
            train(config_of(name), out / f"{name}-{label}", devices=devices)
            results[f"{name}/{label}"] = records(out / f"{name}-{label}")
    for name in ON_FOUR_ONLY:
        train(config_of(name), out / f"{name}-4", devices=four)
        results[f"{name}/4"] = records(out / f"{name}-4")
    for first, then in (("4", one), ("1", four)):  # the first half on one count, the rest on the other
        run_dir = out / f"resumed-from-{first}"
        train(config_of("ppo-toy", HALF), run_dir, devices=four if first == "4" else one)
        train(config_of("ppo-toy"), run_dir, resume=True, devices=then)
        results[f"resumed-from-{first}"] = records(run_dir)
    for label, devices, split in (("1", one, 1), ("2x2", four, 2)):  # 2 devices of members x 2 of envs
        run_dir = out / f"population-{label}"
        cfg = config_of("ppo-toy", POPULATION + [f"train.population_devices={split}"])
        train(cfg, run_dir, devices=devices)
        results[f"population/{label}"] = records(run_dir)
    try:
        train(config_of("ppo-toy", ["algo.num_envs=6"]), out / "refused", devices=four)
    except config.ConfigError as error:
        results["refused"] = str(error)
    (out / "records.json").write_text(json.dumps(results))


def distributed(run_dir: Path) -> None:
    from jaxrl import cli

    env, algo, _ = RUNS["ppo-toy"]
    code = cli.main(["train", env, algo, "--distributed", "--preset", "cpu", f"train.run_dir={run_dir}",
                     *overrides("ppo-toy")])
    sys.exit(code)


if __name__ == "__main__":
    # Only here: test_parallel imports `records` from this module, and its process keeps its own registry.
    toy_envs.register_in_process("step-counter", "StepCounter")
    mode, path = sys.argv[1], Path(sys.argv[2])
    {"devices": on_devices, "distributed": distributed}[mode](path)
