"""Dreamer's replayed steps per second, at DreamerV3's own `dmc_proprio` size and at our CPU preset's.

A replayed step is one step of one chunk in an update's batch (batch_size x batch_length of them per
update), DreamerV3's unit for its train ratio. Each setting runs `dreamer.train_step` (collect, insert,
every update of the iteration: one compiled call) on pendulum-swingup, timed over whole iterations after
the replay holds enough steps for learning and after a warm-up call; the median of --repeats timed
chunks is reported. DreamerV3's own code measured on this 2-core CPU (its HEAD, jax 0.4.33,
`--configs dmc_proprio --task dmc_pendulum_swingup`, size1m, train_ratio 1024) replays about 620 steps/s
(issue 18); the record holds ours beside that figure as a ratio.

    python -m benchmarks.dreamer_throughput        # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DREAMERV3_REPLAYED_PER_S = 620.0  # its own code on this CPU, at its dmc_proprio size (issue 18)
# (name, overrides): DreamerV3's dmc_proprio size and train ratio (the Config's defaults; 16 envs of 4 steps
# give 64 env steps and 32 updates of 16 x 64 an iteration), and the cartpole recipe's CPU preset.
SETTINGS = {
    "dreamerv3_dmc_proprio": [],
    "cpu_preset": ["algo.num_envs=8", "algo.unroll_length=8", "algo.train_ratio=64", "algo.batch_length=16",
                   "algo.deter=128", "algo.stoch=8", "algo.classes=8"],
    # benchmarks/gpu.sh --dry-run's: the least that runs every part of an update
    "tiny": ["algo.num_envs=2", "algo.unroll_length=4", "algo.train_ratio=16", "algo.batch_size=2",
             "algo.batch_length=8", "algo.imag_horizon=3", "algo.deter=16", "algo.hidden=16", "algo.stoch=4",
             "algo.classes=4"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["dreamerv3_dmc_proprio", "cpu_preset"],
                        choices=list(SETTINGS))
    parser.add_argument("--iterations", type=int, default=2, help="iterations per timed chunk")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks; the median is reported")
    parser.add_argument("--out", type=Path, default=RESULTS / "dreamer_throughput_cpu.json")
    return parser.parse_args(argv)


def measure(name: str, args) -> dict:
    import jax

    from jaxrl import config
    from jaxrl.algos import dreamer
    from jaxrl.train import make_envs

    cfg = config.load("pendulum-swingup", "dreamer", preset="full", overrides=SETTINGS[name])
    # Learning from the first iteration on: the replay is filled with random steps untimed first.
    algo_cfg = dataclasses.replace(cfg.algo, min_replay_size=cfg.algo.num_envs * cfg.algo.batch_length)
    train_env, _ = make_envs(cfg)
    state = dreamer.init(jax.random.PRNGKey(0), train_env, algo_cfg)
    step = jax.jit(lambda s: dreamer.train_step(s, train_env, algo_cfg), donate_argnums=0)
    started = time.monotonic()
    while int(state.replay.size) < algo_cfg.min_replay_size:
        state, metrics = step(state)
    state, metrics = step(state)  # warm-up: learning now
    jax.block_until_ready(metrics)
    compile_and_fill = time.monotonic() - started
    chunks = []
    for _ in range(args.repeats):
        started = time.monotonic()
        for _ in range(args.iterations):
            state, metrics = step(state)
        jax.block_until_ready(metrics)
        chunks.append((time.monotonic() - started) / args.iterations)
    seconds = statistics.median(chunks)
    updates = dreamer.updates_per_iteration(algo_cfg)
    replayed = updates * algo_cfg.batch_size * algo_cfg.batch_length
    return {"overrides": SETTINGS[name], "updates_per_iteration": updates,
            "env_steps_per_iteration": dreamer.steps_per_iteration(algo_cfg),
            "replayed_steps_per_iteration": replayed, "iteration_seconds": chunks,
            "replayed_steps_per_s": replayed / seconds, "updates_per_s": updates / seconds,
            "env_steps_per_s": dreamer.steps_per_iteration(algo_cfg) / seconds,
            "ms_per_update": 1000 * seconds / updates, "compile_and_fill_s": compile_and_fill,
            "sizes": {k: getattr(algo_cfg, k) for k in ("deter", "hidden", "stoch", "classes", "layers",
                                                        "batch_size", "batch_length", "imag_horizon",
                                                        "train_ratio")}}


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    results = {name: measure(name, args) for name in args.settings}
    record = {"benchmark": "dreamer_throughput", "env": "pendulum-swingup", "machine": describe_machine(),
              "load_average": os.getloadavg(), "dreamerv3_replayed_steps_per_s": DREAMERV3_REPLAYED_PER_S,
              "settings": results}
    if "dreamerv3_dmc_proprio" in results:
        record["ours_over_dreamerv3"] = (results["dreamerv3_dmc_proprio"]["replayed_steps_per_s"]
                                         / DREAMERV3_REPLAYED_PER_S)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for name, result in results.items():
        print(f"{name}: {result['replayed_steps_per_s']:,.0f} replayed steps/s, "
              f"{result['ms_per_update']:.0f} ms per update, {result['env_steps_per_s']:.1f} env steps/s")
    if "ours_over_dreamerv3" in record:
        print(f"ours / DreamerV3's own code at its size: {record['ours_over_dreamerv3']:.2f}x")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
