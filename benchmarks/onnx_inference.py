"""ONNX inference of the Go1 recipe's policy: latency per action at batch 1, throughput at batch 1,024.

The policy (random weights, a normalizer that has seen data) is written by the
real export path, `jaxrl.export.onnx.export_onnx`, and run by `OnnxPolicy` as a
deployment would: one observation [45] in, 12 joint targets out. Peer in the
same run: the same function jitted by JAX (normalizer, MLP, tanh, control
affine), fed a NumPy array and read back as one.

Latency: each of `calls` single calls timed on its own after a warm-up;
median and p99. Throughput: actions per second over `batch_calls` calls of a
batch of 1,024. onnxruntime runs with 1 intra-op thread and with its default
(every core).

    python -m benchmarks.onnx_inference                  # full and CPU-preset networks, ~1 minute
    python -m benchmarks.onnx_inference --presets full --calls 2000
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import envs_mjx
from benchmarks.machine import describe_machine
from jaxrl import config, normalize
from jaxrl.algos import actor, ppo
from jaxrl.export.onnx import Provenance, export_onnx, in_control_units, policy_input
from jaxrl.export.onnx_policy import OnnxPolicy

ENV_NAME = "go1-joystick"
DEFAULT_OUT = Path(__file__).parent / "results" / "onnx_inference_cpu.json"
BATCH = 1024
THREADS = {"1 thread": 1, "default threads": 0}  # onnxruntime intra-op threads; 0: its default


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=("full", "cpu"), default=["full", "cpu"],
                        help="whose policy network sizes (configs/go1_joystick_ppo.yaml) to export")
    parser.add_argument("--calls", type=int, default=20_000, help="timed single-observation calls")
    parser.add_argument("--batch-calls", type=int, default=200, help=f"timed calls at batch {BATCH:,}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def random_policy(env, algo_cfg: ppo.Config, key) -> actor.PolicyParams:
    """Go1 policy parameters of `algo_cfg`'s sizes with random weights and a normalizer that has seen data."""
    spec = actor.policy_spec(algo_cfg.policy_hidden_layer_sizes, algo_cfg.activation, algo_cfg.policy_obs_key,
                             env.action_size)
    key_net, key_obs = jax.random.split(key)
    obs = random_observations(env, key_obs, 256)
    stats = normalize.from_batch(obs)
    network = spec.network().init(key_net, obs[spec.obs_key][0])
    return actor.PolicyParams(network=network, obs_stats=stats, spec=spec)


def random_observations(env, key, batch: int) -> dict:
    """Standard-normal dict observations of the env's shapes (the numbers do not change the work)."""
    shapes = env.observation_size
    keys = dict(zip(shapes, jax.random.split(key, len(shapes)), strict=True))
    return {name: jax.random.normal(keys[name], (batch, *shape)) for name, shape in shapes.items()}


def time_calls(call, x, calls: int) -> np.ndarray:
    """Seconds of each of `calls` calls of call(x), after a warm-up."""
    for _ in range(max(50, calls // 20)):
        call(x)
    seconds = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        call(x)
        seconds[i] = time.perf_counter() - started
    return seconds


def figures(act, one_obs: np.ndarray, batch_obs: np.ndarray, args) -> dict:
    """Latency at batch 1 (microseconds) and throughput at batch BATCH (actions/s) of act(obs)."""
    latency = time_calls(act, one_obs, args.calls) * 1e6
    batch_seconds = statistics.median(time_calls(act, batch_obs, args.batch_calls))
    return {"latency_us_median": float(np.median(latency)),
            "latency_us_p99": float(np.percentile(latency, 99)), "latency_us_min": float(latency.min()),
            "actions_per_second_at_batch": len(batch_obs) / batch_seconds}


def measure(preset: str, env, args, workdir: Path) -> dict:
    algo_cfg = config.load(ENV_NAME, "ppo", preset=preset).algo
    params = random_policy(env, algo_cfg, jax.random.PRNGKey(0))
    recorded = random_observations(env, jax.random.PRNGKey(1), 64)
    started = time.monotonic()
    result = export_onnx(ppo, params, env, recorded, workdir / f"go1_{preset}.onnx",
                         Provenance(ENV_NAME, "ppo", "random weights", 0))
    export_seconds = time.monotonic() - started
    batch_obs = np.asarray(policy_input(random_observations(env, jax.random.PRNGKey(2), BATCH)), np.float32)
    one_obs = batch_obs[0]

    jitted = jax.jit(in_control_units(ppo.export_policy(params), result.metadata))
    jax_act = lambda x: np.asarray(jitted(x[None] if x.ndim == 1 else x))  # noqa: E731
    jax_figures = figures(jax_act, one_obs, batch_obs, args)
    row = {"preset": preset, "policy_hidden_layer_sizes": list(algo_cfg.policy_hidden_layer_sizes),
           "activation": algo_cfg.activation,
           "parameters": sum(x.size for x in jax.tree.leaves(params.network)),
           "file_kib": result.size_bytes / 1024, "export_seconds": export_seconds,
           "verification_max_error": result.max_error, "jax_jit": jax_figures, "onnxruntime": {}}
    for label, threads in THREADS.items():
        policy = OnnxPolicy(result.path, threads=threads)
        onnx_figures = figures(policy, one_obs, batch_obs, args)
        onnx_figures["latency_speedup_vs_jax"] = jax_figures["latency_us_median"] / onnx_figures[
            "latency_us_median"]
        onnx_figures["throughput_ratio_vs_jax"] = (onnx_figures["actions_per_second_at_batch"]
                                                   / jax_figures["actions_per_second_at_batch"])
        row["onnxruntime"][label] = onnx_figures
    return row


def print_row(row: dict) -> None:
    print(f"{row['preset']} {row['policy_hidden_layer_sizes']} ({row['parameters']:,} parameters, "
          f"{row['file_kib']:.0f} KiB, verified to {row['verification_max_error']:.1g}):")
    runs = {"jax jit": row["jax_jit"], **{f"onnxruntime {k}": v for k, v in row["onnxruntime"].items()}}
    for name, f in runs.items():
        print(f"  {name:<30} batch 1: median {f['latency_us_median']:7.1f} us, "
              f"p99 {f['latency_us_p99']:7.1f} us   "
              f"batch {BATCH:,}: {f['actions_per_second_at_batch']:>12,.0f} actions/s")


def main(argv=None) -> None:
    args = parse_args(argv)
    env = envs_mjx.make(ENV_NAME)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        rows = [measure(preset, env, args, Path(workdir)) for preset in args.presets]
    for row in rows:
        print_row(row)
    machine = describe_machine()
    machine["versions"].update({package: importlib.metadata.version(package)
                                for package in ("onnxruntime", "onnx", "jax2onnx")})
    record = {"benchmark": "onnx_inference", "env": ENV_NAME, "machine": machine,
              "settings": {"calls": args.calls, "batch_calls": args.batch_calls, "batch": BATCH,
                           "onnxruntime_threads": THREADS},
              "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
