"""Where an MJX env step spends its time on this machine, by MuJoCo stage, under each JAX and XLA flag set.

`jit(vmap(env.step))` at one batch size is traced with jax.profiler. Each XLA
operation's own time (its span less the operations nested in it: a while loop's
span holds its body's) is charged to the MuJoCo stage in its JAX name stack
(`forward/solve`, `forward/fwd_position`, ...; "?" where XLA dropped the name),
summed over the compute threads, per env step of the batch. Beside the stages:
the step's wall-clock rate outside the profiler (the median of 5 timed blocks).
Run in each interpreter given, with and without the two XLA:CPU flags of the
known pitfall (or each alone), to see which stage a JAX version slows down and
which flag brings it back. The interpreters and flag sets take turns for
`--rounds` rounds, and the record gives each one's medians over the rounds: a
shared machine's slow minutes then fall on all of them alike.

    python -m benchmarks.step_profile --pythons python3 /tmp/venv-jax010/bin/python
    python -m benchmarks.step_profile --pythons /tmp/venv-jax010/bin/python --flags none \
        xla_cpu_use_fusion_emitters=false xla_cpu_enable_concurrency_optimized_scheduler=false both
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.jax_versions import FLAGS

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
SKIPPED = ("ThunkExecutor", "end: ")  # the executor's own spans, and the ends of asynchronous operations


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pythons", nargs="+", default=["python3"],
                        help="interpreters, each with jaxrl's needs and its own jax; the first: the baseline")
    parser.add_argument("--env", default="go1-joystick")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20,
                        help="profiled steps of the batch; also per timed block")
    parser.add_argument("--flags", nargs="+", choices=list(flag_sets()), default=["none", "both"],
                        help="XLA:CPU flag sets: none, one of the two flags, or both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "step_profile_cpu.json")
    parser.add_argument("--here", action="store_true", help="measure in this process only, into --out")
    return parser.parse_args(argv)


def flag_sets() -> dict[str, str]:
    """Label -> XLA_FLAGS: none, each of the two flags alone, and both."""
    each = FLAGS.split()
    return {"none": "", **{flag.lstrip("-"): flag for flag in each}, "both": FLAGS}


def stage_of(op_name: str) -> str:
    """The MuJoCo stage in a JAX name stack: '.../step/forward/solve/while/body/...' -> 'forward/solve'."""
    if "/step/" not in op_name:
        return "(outside the step)"
    parts = op_name.split("/step/")[-1].split("/")
    named = [p for p in parts if not p.startswith(("vmap", "jit", "while", "body", "closed_call", "cond",
                                                   "branch"))]
    return "/".join(named[:2])


def op_stages(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> its stage, from each instruction's metadata."""
    stages = {}
    for line in hlo_text.splitlines():
        found = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{[^}]*op_name="([^"]+)"', line)
        if found:
            stages[found.group(1)] = stage_of(found.group(2))
    return stages


def self_times(events) -> collections.Counter:
    """name -> summed own time (ns) of one thread's events: each span less the spans nested in it."""
    own = collections.Counter()
    stack = []  # (end, name) of the spans that hold the current one
    for event in sorted(events, key=lambda e: (e.start_ns, -e.duration_ns)):
        end = event.start_ns + event.duration_ns
        while stack and stack[-1][0] <= event.start_ns:
            stack.pop()
        if stack:
            own[stack[-1][1]] -= event.duration_ns
        own[event.name] += event.duration_ns
        stack.append((end, event.name))
    return own


def measure_here(env_name: str, batch: int, steps: int) -> dict:
    import jax

    import envs_mjx

    env = envs_mjx.make(env_name)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), batch))
    actions = jax.random.uniform(jax.random.PRNGKey(1), (batch, env.action_size), minval=-1.0, maxval=1.0)
    step = jax.jit(jax.vmap(env.step))
    stages = op_stages(step.lower(state, actions).compile().as_text())
    for _ in range(steps):  # compiled, and past the reset's first steps
        state = step(state, actions)
    jax.block_until_ready(state)
    blocks = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(steps):
            state = step(state, actions)
        jax.block_until_ready(state)
        blocks.append((time.perf_counter() - started) / steps)
    seconds_per_step = statistics.median(blocks)
    with tempfile.TemporaryDirectory() as trace:
        jax.profiler.start_trace(trace)
        for _ in range(steps):
            state = step(state, actions)
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        data = jax.profiler.ProfileData.from_file(glob.glob(f"{trace}/**/*.xplane.pb", recursive=True)[0])
        own = collections.Counter()
        for plane in data.planes:
            for line in plane.lines:
                if line.name.startswith("tf_XLAEigen"):  # XLA:CPU's compute threads
                    own.update(self_times([e for e in line.events if not e.name.startswith(SKIPPED)]))
    per_stage = collections.Counter()
    for name, ns in own.items():
        per_stage[stages.get(name, "?")] += ns / steps / batch / 1e3
    return {"jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "env_steps_per_s": batch / seconds_per_step,
            "us_per_env_step_by_stage": dict(sorted(per_stage.items(), key=lambda kv: -kv[1]))}


def measure(python: str, flags: str, args, folder: Path) -> dict:
    out = folder / "record.json"
    command = [python, "-m", "benchmarks.step_profile", "--here", "--env", args.env,
               "--batch", str(args.batch), "--steps", str(args.steps), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, XLA_FLAGS=flags, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode != 0:
        return {"xla_flags": flags, "error": done.stderr[-2000:]}
    return json.loads(out.read_text())


def medians(runs: list[dict]) -> dict:
    """One interpreter and flag set over the rounds: its median rate and median time in each stage."""
    stages = {stage for run in runs for stage in run["us_per_env_step_by_stage"]}
    by_stage = {stage: statistics.median(run["us_per_env_step_by_stage"].get(stage, 0.0) for run in runs)
                for stage in stages}
    return {"jax": runs[0]["jax"], "xla_flags": runs[0]["xla_flags"],
            "env_steps_per_s": statistics.median(run["env_steps_per_s"] for run in runs),
            "us_per_env_step_by_stage": dict(sorted(by_stage.items(), key=lambda kv: -kv[1])),
            "rounds": runs}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.here:
        args.out.write_text(json.dumps(measure_here(args.env, args.batch, args.steps)))
        return
    from benchmarks.machine import describe_machine

    pairs = [(python, label) for python in args.pythons for label in args.flags]
    runs = {pair: [] for pair in pairs}
    failed = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for python, label in pairs:
                if (python, label) in failed:
                    continue
                run = measure(python, flag_sets()[label], args, Path(folder))
                if "error" in run:
                    failed[python, label] = run
                else:
                    runs[python, label].append(run)
                rate = run.get("env_steps_per_s")
                print(f"round {round_ + 1}, {python} {label}: "
                      + (f"{rate:,.0f} env steps/s" if rate else run["error"][-300:]), file=sys.stderr)
    rows = [{"python_executable": python, "flags": label,
             **(failed[python, label] if (python, label) in failed else medians(runs[python, label]))}
            for python, label in pairs]
    baseline = rows[0]["env_steps_per_s"]
    for row in rows:
        if "env_steps_per_s" in row:
            row["over_first"] = row["env_steps_per_s"] / baseline
    record = {"benchmark": "step_profile", "env": args.env, "batch": args.batch, "steps": args.steps,
              "rounds": args.rounds, "rows": rows, "load_average_after": os.getloadavg(),
              "machine": describe_machine()}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
