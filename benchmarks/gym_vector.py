"""Env steps per second of the Gymnasium vector env (envs_mjx.gym.make_vec) against the MJX env itself.

Three ways to step the same batch of envs (the training wrappers: episode
limit and auto-reset), each timed over `steps` control steps after a warm-up,
the median of `repeats`:

  scan        the steps scanned inside one compiled call: the ceiling, what our learners run
  jit_step    one jitted step per Python call on device arrays, never brought to the host
  vector_env  envs_mjx.gym.MjxVectorEnv.step: NumPy actions in, NumPy observations, rewards,
              flags and infos out, one transfer each way a step

vector_env / jit_step is the price of the host round trip that Gymnasium's API
asks for; vector_env / scan what code written for Gymnasium gives up against
a learner compiled with its env.

    python -m benchmarks.gym_vector                       # go1-joystick, 256 and 1024 envs
    python -m benchmarks.gym_vector --batch-sizes 4096 16384   # on a GPU
    python -m benchmarks.gym_vector --env cartpole-balance
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
WAYS = ("scan", "jit_step", "vector_env")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="go1-joystick")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50, help="control steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median reported)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/gym_vector_<env>_<cpu|gpu>.json)")
    return parser.parse_args(argv)


def timed(run, repeats: int, steps: int, batch: int) -> float:
    """Median env steps/s of `run()` (which takes `steps` steps of `batch` envs), after a warm-up."""
    run()
    rates = []
    for _ in range(repeats):
        started = time.monotonic()
        run()
        rates.append(batch * steps / (time.monotonic() - started))
    return statistics.median(rates)


def measure(env_name: str, batch: int, steps: int, repeats: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import envs_mjx
    from envs_mjx.gym import make_vec

    vector = make_vec(env_name, num_envs=batch)
    vector.reset(seed=0)
    rng = np.random.default_rng(0)
    host_actions = rng.uniform(-1, 1, (steps, batch, vector.single_action_space.shape[0])).astype(np.float32)
    device_actions = jnp.asarray(host_actions)
    env = envs_mjx.make(env_name)
    batched = envs_mjx.wrap_for_training(env, env.config.episode_length)
    step = jax.jit(batched.step, donate_argnums=0)
    scan = jax.jit(lambda state, actions: jax.lax.scan(lambda s, a: (batched.step(s, a), None), state,
                                                       actions)[0], donate_argnums=0)
    state = {"jit": batched.reset(jax.random.split(jax.random.PRNGKey(0), batch))}
    state["scan"] = jax.tree.map(jnp.copy, state["jit"])

    def run_scan():
        state["scan"] = jax.block_until_ready(scan(state["scan"], device_actions))

    def run_jit_step():
        for actions in device_actions:
            state["jit"] = step(state["jit"], actions)
        jax.block_until_ready(state["jit"])

    def run_vector_env():
        for actions in host_actions:
            vector.step(actions)

    runs = {"scan": run_scan, "jit_step": run_jit_step, "vector_env": run_vector_env}
    return {way: timed(runs[way], repeats, steps, batch) for way in WAYS}


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    load_before = os.getloadavg()[0]
    device = "gpu" if runtime.has_accelerator() else "cpu"
    out = args.out or RESULTS / f"gym_vector_{args.env.replace('-', '_')}_{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'batch':>6} " + " ".join(f"{way:>12}" for way in WAYS) + "   (env steps/s)")
    for batch in args.batch_sizes:
        rates = measure(args.env, batch, args.steps, args.repeats)
        rows.append({"batch": batch, **rates, "vector_env/jit_step": rates["vector_env"] / rates["jit_step"],
                     "vector_env/scan": rates["vector_env"] / rates["scan"]})
        print(f"{batch:>6} " + " ".join(f"{rates[way]:>12,.0f}" for way in WAYS)
              + f"   vector_env/jit_step {rows[-1]['vector_env/jit_step']:.2f}", flush=True)
        record = {"benchmark": "gym_vector", "env": args.env, "machine": describe_machine(),
                  "steps_per_run": args.steps, "repeats": args.repeats, "load_average_before": load_before,
                  "load_average_after": os.getloadavg()[0], "results": rows}
        out.write_text(json.dumps(record, indent=1))  # after every batch size: a long run keeps what it has
    print(f"wrote {out}")

if __name__ == "__main__":
    main()
