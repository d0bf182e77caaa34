"""Is a physics setting faster at equal fidelity? An env under settings of `env.physics`
(envs_mjx.core.PhysicsOptions), each against the model file's own.

For each setting:
  speed    env steps/s of jit(vmap(step)) with random actions, `--steps` control steps per call, at each
           batch size; the settings' calls alternate in `--rounds` rounds in one process, so the
           machine's drift falls on all of them alike; the median, and its ratio to the file's
  drift    how far its trajectories move from the file's: the same reset states and the same random
           actions for `--drift-steps` control steps, |qpos difference| (max and 99th percentile over
           every env and step)
  expert   for an env with a scripted expert (`jaxrl collect`), the expert's success rate over one
           episode of each env of the first batch size

    python -m benchmarks.physics_options --env grasp-lift-cube --setting tolerance=1e-8,ls_iterations=8

A setting is `KEY=VALUE[,KEY=VALUE...]` of PhysicsOptions' fields (solver, iterations, ls_iterations,
tolerance). It writes `results/physics_options_<env>_<cpu|gpu>.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODEL_FILE = "the model file's"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="grasp-lift-cube")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="physics options to compare with the model file's (repeatable)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50, help="control steps per timed call")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed calls per setting; the median is reported")
    parser.add_argument("--drift-steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: results/physics_options_<env>_<cpu|gpu>.json)")
    return parser.parse_args(argv)


def physics_options(setting: str):
    """PhysicsOptions from 'KEY=VALUE,...' ('' for the model file's); a bad key exits naming the fields."""
    from envs_mjx.core import PhysicsOptions

    fields = {field.name: field for field in dataclasses.fields(PhysicsOptions)}
    values = {}
    for item in filter(None, setting.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--setting {setting}: PhysicsOptions has no field {key!r}; "
                             f"its fields: {', '.join(fields)}")
        kind = type(fields[key].default)
        values[key] = value if kind is str else kind(float(value))
    return PhysicsOptions(**values)


def random_rollout(env, batch: int, steps: int):
    """jit(f)(key) -> (final state, qpos [steps, batch, nq]): `steps` control steps of random actions."""
    import jax

    def run(key):
        reset_key, action_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, batch))

        def step(state, key):
            action = jax.random.uniform(key, (batch, env.action_size), minval=-1.0, maxval=1.0)
            state = jax.vmap(env.step)(state, action)
            return state, state.data.qpos

        return jax.lax.scan(step, state, jax.random.split(action_key, steps))

    return jax.jit(run)


def speeds(envs: dict, batch: int, steps: int, rounds: int) -> dict[str, dict]:
    """{setting: {env_steps_per_second, compile_seconds}} at `batch` envs, the settings' calls interleaved."""
    import jax

    calls, times = {}, {name: [] for name in envs}
    for name, env in envs.items():
        started = time.perf_counter()
        call = random_rollout(env, batch, steps).lower(jax.random.PRNGKey(0)).compile()
        calls[name] = call, time.perf_counter() - started
        jax.block_until_ready(call(jax.random.PRNGKey(0)))  # warm-up
    for round_index in range(rounds):
        for name, (call, _) in calls.items():
            started = time.perf_counter()
            jax.block_until_ready(call(jax.random.PRNGKey(1 + round_index)))
            times[name].append(time.perf_counter() - started)
    return {name: {"env_steps_per_second": batch * steps / statistics.median(times[name]),
                   "compile_seconds": calls[name][1]} for name in envs}


def drift(envs: dict, batch: int, steps: int) -> dict[str, dict]:
    """{setting: |qpos - the model file's qpos| max and 99th percentile}, same resets and actions."""
    import jax
    import numpy as np

    qpos = {name: np.asarray(random_rollout(env, batch, steps)(jax.random.PRNGKey(7))[1])
            for name, env in envs.items()}
    reference = qpos[MODEL_FILE]
    return {name: {"qpos_max": float(np.abs(q - reference).max()),
                   "qpos_p99": float(np.quantile(np.abs(q - reference), 0.99)),
                   "identical": bool(np.array_equal(q, reference))} for name, q in qpos.items()}


def expert_success(env_name: str, env, batch: int) -> float | None:
    """The scripted expert's success rate over one episode of each of `batch` envs (None: no expert)."""
    import jax
    import numpy as np

    import envs_mjx
    from envs_mjx.registry import NoExpertError

    try:
        expert = envs_mjx.make_expert(env_name, env)
    except NoExpertError:
        return None
    wrapped = envs_mjx.wrap_for_eval(env, env.config.episode_length)

    def run(key):
        state = wrapped.reset(jax.random.split(key, batch))

        def step(state, _):
            state = wrapped.step(state, jax.vmap(expert)(state.obs))
            return state, state.metrics["success"]

        return jax.lax.scan(step, state, None, length=env.config.episode_length)[1]

    success = np.asarray(jax.jit(run)(jax.random.PRNGKey(0)))
    return float(np.mean(success.sum(axis=0) > 0))


def main(argv=None) -> None:
    args = parse_args(argv)
    import jax

    import envs_mjx
    from benchmarks.machine import describe_machine
    from jaxrl import runtime

    runtime.configure_jax()
    settings = {MODEL_FILE: "", **{setting: setting for setting in args.setting}}
    envs = {name: envs_mjx.make(args.env, physics=physics_options(setting))
            for name, setting in settings.items()}
    rows = {name: {"setting": name, "speed": {}} for name in envs}
    for batch in args.batch_sizes:
        print(f"{batch} envs: compiling and timing {len(envs)} settings ...", flush=True)
        for name, speed in speeds(envs, batch, args.steps, args.rounds).items():
            rows[name]["speed"][str(batch)] = speed
    print(f"drift over {args.drift_steps} steps, and the expert where the env has one ...", flush=True)
    for name, moved in drift(envs, args.batch_sizes[0], args.drift_steps).items():
        rows[name]["drift"] = moved
    for name, env in envs.items():
        rows[name]["expert_success"] = expert_success(args.env, env, args.batch_sizes[0])
    for row in rows.values():
        for batch, speed in row["speed"].items():
            speed["over_model_file"] = (speed["env_steps_per_second"]
                                        / rows[MODEL_FILE]["speed"][batch]["env_steps_per_second"])
        speeds_text = ", ".join(f"{batch}: {s['env_steps_per_second']:,.0f}/s ({s['over_model_file']:.2f}x)"
                                for batch, s in row["speed"].items())
        print(f"{row['setting']:>28}  {speeds_text}; qpos drift max {row['drift']['qpos_max']:.1e}; "
              f"expert success {row['expert_success']}", flush=True)
    device = "cpu" if jax.default_backend() == "cpu" else "gpu"
    out = args.out or RESULTS / f"physics_options_{args.env.replace('-', '_')}_{device}.json"
    record = {"benchmark": "physics_options", "env": args.env, "steps": args.steps, "rounds": args.rounds,
              "drift_steps": args.drift_steps, "rows": list(rows.values()), "machine": describe_machine()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
