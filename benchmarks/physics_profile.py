"""Where an MJX physics step spends its time: each stage of `mjx.step` timed apart, for an env's model.

`mjx.step` (JAX backend, Euler integrator) runs these stages in order: kinematics, com_pos, camlight,
tendon, crb, tendon_armature, factor_m, collision, make_constraint, transmission (together
fwd_position), sensor_pos, fwd_velocity, sensor_vel, fwd_actuation, fwd_acceleration, solve,
sensor_acc, euler. Each stage is compiled alone, vmapped over the batch, and timed on the data the
stages before it produced, from states the env reached under random actions (the feet touch the
ground, the gripper the table); the whole `mjx.step` is timed the same way. A timed call applies its
stage `--loop` times to that data; the median of `--repeats` calls is reported per physics step of
the batch. Each figure includes the floor of a stage that returns its input (the batch's data passed
through the loop), which is reported too.

The stages are MJX's own functions (its private `mujoco.mjx._src` modules, as `mjx.step` calls them);
the stages' sum over the whole step (each above the floor) says what XLA's fusion across stages saves.

    python -m benchmarks.physics_profile --env go1-joystick --batch 256
    python -m benchmarks.physics_profile --env go1-joystick --option ls_iterations=3 --option cone=elliptic

`--option KEY=VALUE` changes the model's MjOption before MJX takes it (iterations, ls_iterations, cone,
jacobian, ...): what a setting saves, on the same data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="go1-joystick")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--loop", type=int, default=10, help="stage applications per timed call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls; the median is reported")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an MjOption field to change (repeatable); enums by name: cone=elliptic")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/physics_profile_<env>_<cpu|gpu>.json)")
    return parser.parse_args(argv)


def stages() -> list[tuple[str, object]]:
    """(name, fn(model, data) -> data) in the order mjx.step runs them with the Euler integrator."""
    from mujoco.mjx._src import collision_driver, constraint, forward, sensor, smooth, solver

    return [
        ("kinematics", smooth.kinematics), ("com_pos", smooth.com_pos), ("camlight", smooth.camlight),
        ("tendon", smooth.tendon), ("crb", smooth.crb), ("tendon_armature", smooth.tendon_armature),
        ("factor_m", smooth.factor_m), ("collision", collision_driver.collision),
        ("make_constraint", constraint.make_constraint), ("transmission", smooth.transmission),
        ("sensor_pos", sensor.sensor_pos), ("fwd_velocity", forward.fwd_velocity),
        ("sensor_vel", sensor.sensor_vel), ("fwd_actuation", forward.fwd_actuation),
        ("fwd_acceleration", forward.fwd_acceleration), ("solve", solver.solve),
        ("sensor_acc", sensor.sensor_acc), ("euler", forward.euler),
    ]


def with_options(mj_model, options: list[str]):
    """A copy of `mj_model` with MjOption fields set from KEY=VALUE strings."""
    import copy

    import mujoco

    enums = {"cone": (mujoco.mjtCone, "mjCONE_"), "jacobian": (mujoco.mjtJacobian, "mjJAC_"),
             "solver": (mujoco.mjtSolver, "mjSOL_"), "integrator": (mujoco.mjtIntegrator, "mjINT_")}
    model = copy.copy(mj_model)
    for option in options:
        key, _, value = option.partition("=")
        if not hasattr(model.opt, key):
            raise SystemExit(f"--option {option}: MjOption has no field {key!r}")
        if key in enums:
            enum, prefix = enums[key]
            setattr(model.opt, key, getattr(enum, prefix + value.upper()))
        else:
            setattr(model.opt, key, type(getattr(model.opt, key))(float(value)))
    return model


def reached_data(env, mjx_model, batch: int, control_steps: int = 25):
    """Batched MJX data of `mjx_model` at the states `batch` envs reach in `control_steps` random-action
    steps from reset (contacts made); made anew for `mjx_model`, whose options may size it otherwise."""
    import jax
    from mujoco import mjx

    def run(key):
        reset_key, action_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, batch))

        def step(state, key):
            action = jax.random.uniform(key, (batch, env.action_size), minval=-1.0, maxval=1.0)
            return jax.vmap(env.step)(state, action), None

        state, _ = jax.lax.scan(step, state, jax.random.split(action_key, control_steps))
        return state.data.qpos, state.data.qvel, state.data.ctrl

    def remake(qpos, qvel, ctrl):
        return mjx.forward(mjx_model, mjx.make_data(mjx_model).replace(qpos=qpos, qvel=qvel, ctrl=ctrl))

    return jax.jit(jax.vmap(remake))(*jax.jit(run)(jax.random.PRNGKey(0)))


def time_stage(fn, mjx_model, data, loop: int, repeats: int) -> dict:
    """Median seconds of one application of `fn` to the whole batch, and its compile seconds.

    Every application starts from `data` (a solver converges at once on its own output), made to depend
    on the loop counter by adding 0 * counter to its floats, which keeps XLA from hoisting the stage out
    of the loop."""
    import jax
    import jax.numpy as jnp

    batched = jax.vmap(lambda d: fn(mjx_model, d))

    def application(i, _):
        zero = jnp.asarray(i, jnp.float32) * 0.0
        return batched(jax.tree.map(lambda x: x + zero.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact)
                                    else x, data))

    looped = jax.jit(lambda d: jax.lax.fori_loop(0, loop, application, d))
    started = time.perf_counter()
    compiled = looped.lower(data).compile()
    compile_seconds = time.perf_counter() - started
    jax.block_until_ready(compiled(data))
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(compiled(data))
        seconds.append((time.perf_counter() - started) / loop)
    return {"seconds": statistics.median(seconds), "compile_seconds": compile_seconds}


def profile(env_name: str, batch: int, options: list[str], loop: int, repeats: int) -> dict:
    import jax

    import envs_mjx
    from envs_mjx._mjx import mjx  # quiet: without warp-lang, mujoco's own import prints about it

    env = envs_mjx.make(env_name)
    mjx_model = mjx.put_model(with_options(env.mjx_source, options))
    start = data = reached_data(env, mjx_model, batch)
    rows = []
    for name, fn in stages():
        rows.append({"stage": name, **time_stage(fn, mjx_model, data, loop, repeats)})
        data = jax.jit(jax.vmap(lambda d, fn=fn: fn(mjx_model, d)))(data)  # the next stage's input
        print(f"  {name:17s} {rows[-1]['seconds'] * 1e6:9.0f} us", flush=True)
    whole = time_stage(mjx.step, mjx_model, start, loop, repeats)
    floor = time_stage(lambda m, d: d, mjx_model, start, loop, repeats)["seconds"]
    print(f"  (floor: a stage that returns its input {floor * 1e6:.0f} us, included in each figure)")
    total = sum(row["seconds"] - floor for row in rows)
    for row in rows:
        row["share_of_stages"] = (row["seconds"] - floor) / total  # above the floor
    return {"stages": rows, "step_seconds": whole["seconds"], "floor_seconds": floor,
            "step_compile_seconds": whole["compile_seconds"],
            "stages_over_step": total / (whole["seconds"] - floor),
            "physics_steps_per_second": batch / whole["seconds"]}


def main(argv=None) -> None:
    args = parse_args(argv)
    import jax

    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    print(f"{args.env}, {args.batch} envs, options {args.option or 'as the MJCF sets them'}:", flush=True)
    result = profile(args.env, args.batch, args.option, args.loop, args.repeats)
    print(f"  whole mjx.step   {result['step_seconds'] * 1e6:9.0f} us "
          f"({result['physics_steps_per_second']:,.0f} physics steps/s; "
          f"stages' sum above the floor {result['stages_over_step']:.2f}x of it)")
    device = "cpu" if jax.default_backend() == "cpu" else "gpu"
    options = "".join(f"_{option.replace('=', '_')}" for option in args.option)
    out = args.out or RESULTS / f"physics_profile_{args.env.replace('-', '_')}{options}_{device}.json"
    record = {"benchmark": "physics_profile", "env": args.env, "batch": args.batch, "options": args.option,
              "loop": args.loop, "repeats": args.repeats, **result, "machine": describe_machine()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
