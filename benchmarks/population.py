"""A population in one program against separate runs: env steps per second of N seeds trained together.

For each workload and each population size N, the train loop's own programs
(jaxrl.train.initializer, jaxrl.device_call.make_device_call) are built for
`train.num_seeds=N` and timed call by call; N = 1 is a separate run, the loop
without a members axis. N separate runs one after another train at that one
run's rate, so `speedup_vs_separate_runs` (the population's env steps per
second over one run's) is what one program saves, and `time_vs_one_run` (a
call of N members against a call of one) is the figure PureJaxRL quotes
(256 CartPole seeds in 2.8x the time of one, on a GPU). Compilation and
evaluation are excluded; compile seconds are recorded beside.

Workloads: cartpole PPO at a small num_envs (one run leaves the CPU idle
between small kernels) and grasp PPO at its CPU preset (256 envs per member).

    python -m benchmarks.population                          # both workloads, N = 1 4 16 64
    python -m benchmarks.population --workloads grasp --out benchmarks/results/population_grasp_cpu.json
    python -m benchmarks.population --workloads cartpole --members 1 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax

from benchmarks.machine import describe_machine
from jaxrl import algos, config
from jaxrl.device_call import make_device_call
from jaxrl.population import Population
from jaxrl.train import initializer, make_envs

DEFAULT_OUT = Path(__file__).parent / "results" / "population_cpu.json"
# (env, overrides on its recipe's CPU preset, iterations per timed call)
WORKLOADS = {
    "cartpole": ("cartpole-balance", [
        "algo.num_envs=16", "algo.unroll_length=16", "algo.num_minibatches=4", "algo.num_updates_per_batch=2",
        "algo.policy_hidden_layer_sizes=[32,32]", "algo.value_hidden_layer_sizes=[64,64]"], 10),
    "grasp": ("grasp-lift-cube", [], 1),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Env steps per second of PPO populations of N seeds in one program against a "
                    "separate run (N = 1); writes a JSON record and a PNG, prints a table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64],
                        help="population sizes (train.num_seeds); 1 is a separate run")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per size; the median is reported")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON record (the PNG beside it)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.members) < 1:
        parser.error("--repeats and every --members value must be >= 1")
    if 1 not in args.members:
        parser.error("--members must include 1: the separate run every ratio is taken against")
    return args


def measure(env_name: str, overrides: list[str], members: int, iterations: int, repeats: int) -> dict:
    """Compile seconds, seconds per call (median) and env steps per second of a population of `members`."""
    cfg = config.load(env_name, "ppo", overrides=[*overrides, f"train.num_seeds={members}"], preset="cpu")
    algo, (train_env, _) = algos.get("ppo"), make_envs(cfg)
    population = Population.of(cfg)
    grouped = None if population.is_single else population
    started = time.perf_counter()
    init = initializer(algo, train_env, cfg.algo, None, grouped)
    state = init(jax.random.PRNGKey(0) if grouped is None else population.keys(0), None)
    call = make_device_call(algo, train_env, cfg.algo, iterations, None, grouped is not None)
    call = call.lower(state, None).compile()
    state, *_ = jax.block_until_ready(call(state, None))  # the first call also pages everything in
    compile_seconds = time.perf_counter() - started
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        state, _, report = jax.block_until_ready(call(state, None))
        seconds.append(time.perf_counter() - started)
    assert bool(jax.numpy.all(report.finite)), "a member diverged: the timing would not be of training"
    steps = members * algo.steps_per_iteration(cfg.algo) * iterations
    per_call = statistics.median(seconds)
    return {"members": members, "num_envs_per_member": cfg.algo.num_envs, "iterations_per_call": iterations,
            "env_steps_per_call": steps, "seconds_per_call_median": per_call, "seconds_per_call": seconds,
            "env_steps_per_second": steps / per_call, "init_and_compile_seconds": compile_seconds}


def plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in results.items():
        ax.plot([r["members"] for r in rows], [r["speedup_vs_separate_runs"] for r in rows], "o-", label=name)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("seeds in one program (N)")
    ax.set_ylabel("env steps/s over a separate run's")
    ax.set_title(f"PPO population vs N separate runs ({jax.default_backend().upper()})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)  # no persistent compilation cache: compile seconds are XLA's own
    results = {}
    for name in args.workloads:
        env_name, overrides, iterations = WORKLOADS[name]
        rows = []
        for members in sorted(args.members):
            rows.append(measure(env_name, overrides, members, iterations, args.repeats))
            print(f"{name:<9} N={members:<4} {rows[-1]['env_steps_per_second']:>12,.0f} env steps/s  "
                  f"{rows[-1]['seconds_per_call_median']:8.3f} s/call  compile "
                  f"{rows[-1]['init_and_compile_seconds']:6.1f} s", flush=True)
        one = rows[0]
        for row in rows:
            row["speedup_vs_separate_runs"] = row["env_steps_per_second"] / one["env_steps_per_second"]
            row["time_vs_one_run"] = row["seconds_per_call_median"] / one["seconds_per_call_median"]
        results[name] = rows
    workloads = {n: {"env": WORKLOADS[n][0], "overrides": WORKLOADS[n][1], "preset": "cpu"} for n in results}
    record = {"benchmark": "population", "workloads": workloads, "results": results,
              "machine": describe_machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"\n{'workload':<9} {'N':>4} {'speedup vs N separate runs':>28} {'time vs one run':>16}")
    for name, rows in results.items():
        for row in rows:
            print(f"{name:<9} {row['members']:>4} {row['speedup_vs_separate_runs']:>27.2f}x "
                  f"{row['time_vs_one_run']:>15.2f}x")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
