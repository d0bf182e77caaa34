"""Compile time and run time of the suite's costliest programs, XLA's default settings against
jaxrl.runtime.QUICK_COMPILE_FLAGS (LLVM -O1, XLA:CPU's older fusion path), which the test suite uses.

Each program compiles in a fresh process without the persistent cache, once per setting and repeat
(settings alternate), so neither setting gets a warmer machine:

  go1-joystick / grasp-lift-cube   64 envs wrapped for training (episode limit, auto-reset): one step
  ppo-cartpole                     one PPO iteration of the cartpole-balance recipe's CPU preset

Run time is the median of timed calls after a warm-up call. Ratios are quick / default.

    python -m benchmarks.quick_compile_flags              # about 3 minutes on 2 cores
    python -m benchmarks.quick_compile_flags --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROGRAMS = ("go1-joystick", "grasp-lift-cube", "ppo-cartpole")
SETTINGS = ("default", "quick")
DEFAULT_OUT = Path(__file__).parent / "results" / "quick_compile_flags_cpu.json"
NUM_ENVS = 64


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--programs", nargs="+", choices=PROGRAMS, default=list(PROGRAMS))
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per program and setting")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per process")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", choices=PROGRAMS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build(program: str):
    """(fn, args) of `program`, jit-able: fn(*args) returns what the next call takes."""
    import jax
    import jax.numpy as jnp

    import envs_mjx
    from jaxrl import config
    from jaxrl.algos import ppo
    from jaxrl.train import make_envs

    if program == "ppo-cartpole":
        cfg = config.load("cartpole-balance", "ppo", preset="cpu")
        env, _ = make_envs(cfg)
        state = jax.jit(ppo.init, static_argnums=(1, 2))(jax.random.PRNGKey(0), env, cfg.algo)
        return (lambda state: ppo.train_step(state, env, cfg.algo)[0]), (state,)
    env = envs_mjx.wrap_for_training(envs_mjx.make(program), episode_length=200)
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    action = jnp.zeros((NUM_ENVS, env.action_size), jnp.float32)
    return (lambda state: env.step(state, action)), (state,)


def measure(program: str, calls: int) -> dict:
    """In this process: seconds to compile `program`, and the median seconds of one call."""
    import jax

    fn, args = build(program)
    lowered = jax.jit(fn).lower(*args)
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(*args))  # warm-up
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(out))
        seconds.append(time.perf_counter() - start)
    return {"compile_s": compile_s, "call_s": statistics.median(seconds)}


def run_child(program: str, setting: str, calls: int) -> dict:
    from jaxrl import runtime

    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if setting == "quick":
        env["XLA_FLAGS"] = runtime.with_xla_flags(env.get("XLA_FLAGS", ""), runtime.QUICK_COMPILE_FLAGS)
    done = subprocess.run([sys.executable, "-m", "benchmarks.quick_compile_flags", "--child", program,
                           "--calls", str(calls)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{program} ({setting}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.calls)))
        return
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    figures = {}
    for program in args.programs:
        runs = {setting: [] for setting in SETTINGS}
        for _ in range(args.repeats):
            for setting in SETTINGS:
                runs[setting].append(run_child(program, setting, args.calls))
        medians = {setting: {key: statistics.median(run[key] for run in runs[setting])
                             for key in ("compile_s", "call_s")} for setting in SETTINGS}
        ratios = {f"{key}_quick_over_default": medians["quick"][key] / medians["default"][key]
                  for key in ("compile_s", "call_s")}
        figures[program] = {**medians, **ratios, "each": runs}
        default, quick = medians["default"], medians["quick"]
        print(f"{program:16s} compile {default['compile_s']:6.1f} s -> {quick['compile_s']:6.1f} s "
              f"({ratios['compile_s_quick_over_default']:.2f}x)   call {default['call_s'] * 1e3:8.2f} ms -> "
              f"{quick['call_s'] * 1e3:8.2f} ms ({ratios['call_s_quick_over_default']:.2f}x)", flush=True)
    record = {"benchmark": "quick_compile_flags", "machine": describe_machine(),
              "settings": {"quick_compile_flags": runtime.QUICK_COMPILE_FLAGS, "num_envs": NUM_ENVS,
                           "repeats": args.repeats, "calls": args.calls},
              "programs": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
