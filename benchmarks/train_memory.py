"""Peak memory of a SAC training run against the size of its TrainState.

`jaxrl train` donates the TrainState to each device call and checkpoints it
synchronously, so a run should hold about one TrainState: with a large replay
buffer, the extra memory of the run should be about the buffer, not twice it.
This runs the same short SAC run (pendulum-swingup, through jaxrl.train.train:
evaluations, checkpoints at the start and end, a resume-free run) twice in fresh
processes, with a small and a large replay capacity, and reports

    (peak(large) - peak(small)) / (TrainState(large) - TrainState(small))

the memory each extra byte of state costs at the peak; the target is < 1.3.
The small run is the peer that cancels what does not grow with the buffer (the
JAX runtime, compiled programs, the env). Peak is the process's maximum resident
set on the CPU (where the device memory is host memory), the device's
peak_bytes_in_use on an accelerator.

    python -m benchmarks.train_memory                      # 1 GiB buffer: ~1 min on 2 cores
    python -m benchmarks.train_memory --large-capacity 100_000_000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
OVERRIDES = ["algo.num_envs=16", "algo.min_replay_size=1024", "algo.batch_size=256",
             "train.iterations_per_call=64", "train.num_timesteps=4096", "train.eval_every=2048",
             "train.checkpoint_every=4096", "train.num_eval_envs=4", "train.tensorboard=false"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-capacity", type=int, default=32_768)
    parser.add_argument("--large-capacity", type=int, default=2**30 // 40, help="transitions (40 bytes each)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # capacity, in a child
    return parser.parse_args(argv)


def child(capacity: int) -> None:
    """Train one run and print its TrainState's bytes (and the device's peak on an accelerator)."""
    import jax

    from jaxrl import config, runtime
    from jaxrl.algos import sac
    from jaxrl.train import make_envs, train

    runtime.configure_jax()
    cfg = config.load("pendulum-swingup", "sac", preset="cpu",
                      overrides=[*OVERRIDES, f"algo.replay_capacity={capacity}"])
    train_env, _ = make_envs(cfg)
    abstract = jax.eval_shape(lambda key: sac.init(key, train_env, cfg.algo), jax.random.PRNGKey(0))
    state_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(abstract))
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir) / "run")
    stats = jax.devices()[0].memory_stats() if runtime.has_accelerator() else None
    print(json.dumps({"state_bytes": state_bytes, "steps": result.steps,
                      "device_peak_bytes": stats.get("peak_bytes_in_use") if stats else None}))


def measure(capacity: int) -> dict:
    """Run a child process; its report and peak resident set (bytes)."""
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.train_memory", "--child", str(capacity)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"the run with capacity {capacity:,} failed (status {status})")
    report = json.loads(output.strip().splitlines()[-1])
    return {"replay_capacity": capacity, **report, "peak_rss_bytes": usage.ru_maxrss * 1024}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        child(args.child)
        return
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    small, large = measure(args.small_capacity), measure(args.large_capacity)
    peak_key = "device_peak_bytes" if runtime.has_accelerator() else "peak_rss_bytes"
    ratio = (large[peak_key] - small[peak_key]) / (large["state_bytes"] - small["state_bytes"])
    record = {"benchmark": "train_memory", "machine": describe_machine(), "env": "pendulum-swingup",
              "algo": "sac", "overrides": OVERRIDES, "peak": peak_key, "runs": [small, large],
              "extra_peak_per_state_byte": ratio, "target": 1.3}
    device = "gpu" if runtime.has_accelerator() else "cpu"
    out = args.out or RESULTS / f"train_memory_{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps({"extra_peak_per_state_byte": ratio, "small": small, "large": large}, indent=1))


if __name__ == "__main__":
    main()
