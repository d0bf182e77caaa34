"""What depth images rendered in JAX (envs_mjx.pixels) cost per env step, against the physics step.

For each batch of cartpole-balance envs: one jitted physics step of the batch
(its wrapped training env: episode limit and auto-reset) and one jitted render
of the batch's side-camera depth images, each timed over `--calls` calls after
a warm-up; the median is reported, and the render's time as a ratio of the
step's from the same run.

    python -m benchmarks.pixel_render                        # about 1 minute on 2 cores
    python -m benchmarks.pixel_render --batch-sizes 16 256 --size 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import envs_mjx
from benchmarks.machine import describe_machine
from envs_mjx.pixels import depth_image

DEFAULT_OUT = Path(__file__).parent / "results" / "pixel_render_cpu.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--size", type=int, default=64, help="image width and height, pixels")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per figure (median)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def median_seconds(fn, arg, calls: int) -> float:
    jax.block_until_ready(fn(arg))  # compiles
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        jax.block_until_ready(fn(arg))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(batch: int, size: int, calls: int) -> dict:
    env = envs_mjx.wrap_for_training(envs_mjx.make("cartpole-balance"), episode_length=1000)
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), batch))
    action = jnp.zeros((batch, env.action_size))
    step = jax.jit(lambda s: env.step(s, action))
    model = env.unwrapped.mjx_model
    render = jax.jit(jax.vmap(lambda data: depth_image(model, data, 0, size, size)))
    step_seconds = median_seconds(step, state, calls)
    render_seconds = median_seconds(render, state.data, calls)
    return {"batch": batch, "image": [size, size], "step_seconds_median": step_seconds,
            "render_seconds_median": render_seconds,
            "render_microseconds_per_env": 1e6 * render_seconds / batch,
            "render_vs_step": render_seconds / step_seconds}


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = []
    for batch in args.batch_sizes:
        rows.append(measure(batch, args.size, args.calls))
        print(f"batch {batch:>5}: render {rows[-1]['render_microseconds_per_env']:8.1f} us/env  "
              f"{rows[-1]['render_vs_step']:6.2f}x the physics step", flush=True)
    record = {"benchmark": "pixel_render", "env": "cartpole-balance", "camera": "side", "results": rows,
              "machine": describe_machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
