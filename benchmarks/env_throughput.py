"""Env steps per second of an MJX env under jit(vmap(step)) with random actions, by batch size.

Each figure times `steps` control steps of `batch` envs scanned inside one
compiled call (random actions in [-1, 1] drawn inside the call), after one
warm-up call; the median of `repeats` calls is reported and compilation is
timed apart. Four variants share the model and the physics settings:

  env        the env's own step, vmapped: physics + observation + reward + termination
  training   the same wrapped as PPO trains it (episode limit, auto-reset)
  physics    only the physics: `n_substeps` mjx.step calls per control step on the
             nominal model, with the same position targets: the floor any env on
             this model and these settings pays
  physics+sensors  the same with MJX computing the MJCF's sensors on every substep,
             which the env skips (it computes its readings from the state)

The ratios env/physics and training/physics say how lean the env's own work is.

    python -m benchmarks.env_throughput                        # go1-joystick; CPU: 128..1024 envs
    python -m benchmarks.env_throughput --batch-sizes 4096 8192 # on a GPU
    python -m benchmarks.env_throughput --impl warp             # MuJoCo Warp backend (the warp extra)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("env", "training", "physics", "physics+sensors")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="go1-joystick")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="default: 128 256 512 1024 on a CPU, up to 8192 with an accelerator")
    parser.add_argument("--steps", type=int, default=100, help="control steps per timed call")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per figure; the median is reported")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--impl", choices=("jax", "warp"), default="jax",
                        help="MJX backend (warp: MuJoCo Warp, the warp extra)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/env_throughput_<env>_<cpu|gpu>.json)")
    return parser.parse_args(argv)


def rollout_fn(variant: str, env_name: str, batch: int, steps: int, impl: str):
    """(init(key) -> carry, run(carry) -> carry): `steps` control steps of `batch` envs."""
    import jax
    import jax.numpy as jnp

    import envs_mjx
    from envs_mjx._mjx import mjx
    from envs_mjx.wrappers import VmapWrapper

    backend = {"impl": impl, "warp_contact_slots": 8 * batch} if impl != "jax" else {}
    env = envs_mjx.make(env_name, **backend)
    nu = env.action_size

    def actions(key, size=nu):
        return jax.random.uniform(key, (batch, size), minval=-1.0, maxval=1.0)

    if variant in ("env", "training"):
        batched = (envs_mjx.wrap_for_training(env, env.config.episode_length) if variant == "training"
                   else VmapWrapper(env))

        def init(key):
            return batched.reset(jax.random.split(key, batch)), key

        def step(carry, _):
            state, key = carry
            key, key_action = jax.random.split(key)
            return (batched.step(state, actions(key_action)), key), None
    else:
        model = env.mjx_model
        if variant == "physics+sensors":
            model = mjx.put_model(env.mj_model, impl=env.impl)  # the MJCF as written, sensors on
        home = env.mj_model.key("home")
        qpos, qvel = jnp.asarray(home.qpos, jnp.float32), jnp.zeros(env.mj_model.nv)
        if hasattr(env.config, "action_scale"):  # joint targets around the home pose, as the Go1 sets them
            def random_ctrl(key):
                return jnp.asarray(home.ctrl, jnp.float32) + env.config.action_scale * actions(key)
        else:  # any target within each actuator's range
            def random_ctrl(key):
                return env.action_to_ctrl(actions(key, env.mj_model.nu))

        def init(key):
            return jax.vmap(lambda _: env.init_data(qpos, qvel, model))(jnp.arange(batch)), key

        def step(carry, _):
            data, key = carry
            key, key_action = jax.random.split(key)
            ctrl = random_ctrl(key_action)
            return (jax.vmap(lambda d, c: env.physics_step(d, c, model))(data, ctrl), key), None

    def run(carry):
        return jax.lax.scan(step, carry, None, length=steps)[0]

    return init, run


def measure(variant: str, env_name: str, batch: int, steps: int, repeats: int, impl: str) -> dict:
    import jax

    init, run = rollout_fn(variant, env_name, batch, steps, impl)
    carry = jax.jit(init)(jax.random.PRNGKey(0))
    started = time.monotonic()
    compiled = jax.jit(run).lower(carry).compile()
    compile_seconds = time.monotonic() - started
    carry = jax.block_until_ready(compiled(carry))  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.monotonic()
        carry = jax.block_until_ready(compiled(carry))
        rates.append(batch * steps / (time.monotonic() - started))
    return {"steps_per_second": statistics.median(rates), "per_call": rates,
            "compile_seconds": compile_seconds}


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    accelerator = runtime.has_accelerator()
    batch_sizes = args.batch_sizes or ([128, 256, 512, 1024, 2048, 4096, 8192] if accelerator
                                       else [128, 256, 512, 1024])
    load_before = os.getloadavg()[0]
    rows = []
    print(f"{'batch':>6} " + " ".join(f"{v:>16}" for v in args.variants) + "   (env steps/s)")
    for batch in batch_sizes:
        row = {"batch": batch}
        for variant in args.variants:
            row[variant] = measure(variant, args.env, batch, args.steps, args.repeats, args.impl)
        for variant in ("env", "training"):
            if variant in row and "physics" in row:
                physics = row["physics"]["steps_per_second"]
                row[f"{variant}/physics"] = row[variant]["steps_per_second"] / physics
        rows.append(row)
        print(f"{batch:>6} " + " ".join(f"{row[v]['steps_per_second']:>16,.0f}" for v in args.variants))
    device = "gpu" if accelerator else "cpu"
    suffix = "" if args.impl == "jax" else f"_{args.impl}"
    out = args.out or RESULTS / f"env_throughput_{args.env.replace('-', '_')}{suffix}_{device}.json"
    record = {
        "benchmark": "env_throughput", "env": args.env, "impl": args.impl, "machine": describe_machine(),
        "steps_per_call": args.steps, "repeats": args.repeats, "variants": args.variants,
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    for row in rows:
        ratios = ", ".join(f"{k} {row[k]:.2f}" for k in ("env/physics", "training/physics") if k in row)
        print(f"batch {row['batch']}: {ratios}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
