"""Every benchmark in one run (`jaxrl bench`): one results file per machine, and its plots.

Each step is a benchmark module run in a process of its own, with a time limit, writing its JSON
record; a step that fails or runs out of time is recorded as such and the others go on. The records
are gathered into results/<machine>.json beside the machine's description (device, versions, load
average, date), with three plots: env steps/s against batch size per env, training steps/s per
learner, and compile time cold against warm.

    jaxrl bench                      # every step at full size (CPU sizes without an accelerator)
    jaxrl bench --quick              # small sizes: under 10 minutes on a 2-core CPU
    jaxrl bench --only env_throughput compile_time
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    module: str  # benchmarks.<module>, run with `args` and --out
    args: tuple[str, ...]
    quick_args: tuple[str, ...] | None  # None: the step runs at full size only, not in --quick
    timeout_s: int
    quick_timeout_s: int


def env_names() -> list[str]:
    """Our registered envs (not the peers' brax: and playground: ones)."""
    import envs_mjx

    return [name for name in envs_mjx.list_envs() if ":" not in name]


def steps(accelerator: bool) -> list[Step]:
    batches = ("4096", "8192", "16384", "32768") if accelerator else ("64", "256", "1024", "4096")
    # Quick: one batch size (a check of the chain, not a curve), 20 control steps a call, two calls.
    quick = ("--variants", "training", "--batch-sizes", "128", "--steps", "20", "--repeats", "2")
    env_steps = [
        Step(f"env_throughput:{env}", "env_throughput", ("--env", env, "--variants", "training",
             "--batch-sizes", *batches), ("--env", env, *quick), 900, 150)
        for env in env_names()
    ]
    return env_steps + [
        Step("compile_time", "compile_time", (), ("--pairs", "cartpole-balance:ppo"), 2400, 150),
        Step(
            "ppo_throughput",
            "ppo_throughput",
            (),
            ("--num-envs", "256", "--iterations", "2", "--repeats", "2", "--brax-warmup-epochs", "1"),
            1800,
            120,
        ),
        Step(
            "sac_throughput",
            "sac_throughput",
            ("--regimes", "filling"),
            (
                "--regimes",
                "filling",
                "--num-envs",
                "16",
                "--iterations",
                "20",
                "--repeats",
                "2",
                "--min-replay-size",
                "1024",
                "--replay-capacity",
                "65536",
            ),
            1800,
            120,
        ),
        Step(
            "dreamer_throughput",
            "dreamer_throughput",
            (),
            ("--settings", "cpu_preset", "--iterations", "1", "--repeats", "2"),
            1800,
            120,
        ),
        # bc and diffusion: gradient steps/s and success from expert demos of grasp-lift-cube.
        # Quick: bc alone (diffusion's U-Net would add 70 s of compiling).
        Step(
            "demo_learning",
            "demo_learning",
            ("--methods", "expert", "bc", "bc_aug", "diffusion"),
            ("--methods", "bc", "--demos", "20", "--seeds", "0", "--episodes", "64", "--steps", "200"),
            7200,
            150,
        ),
        Step("train_memory", "train_memory", (), ("--small-capacity", "4096", "--large-capacity", "1048576"),
             900, 150),
        # Full size only: quick's ppo_throughput already compares with brax.
        Step("peer_envs", "peer_envs", (), None, 5400, 0),
    ]


def machine_slug(machine: dict) -> str:
    """A file name for the machine: backend, device or CPU model, cores (`cpu-amd-epyc-2core`)."""
    devices = machine["jax_devices"]
    if machine["jax_backend"] == "cpu":
        what = machine["cpu_model"] or machine["processor"] or "cpu"
    else:
        what = devices[0] if devices else machine["jax_backend"]
    words = re.sub(r"\(r\)|\(tm\)|processor|\d+-core|cpu", " ", what.lower())
    slug = "-".join(re.findall(r"[a-z0-9]+", words)[:4])
    return f"{machine['jax_backend']}-{slug}-{machine['cpu_count']}core"


def run_step(step: Step, quick: bool, folder: Path) -> dict:
    """The step's record, or {"error": ...} naming why there is none."""
    out = folder / f"{step.name.replace(':', '_')}.json"
    args, timeout = (step.quick_args, step.quick_timeout_s) if quick else (step.args, step.timeout_s)
    command = [sys.executable, "-m", f"benchmarks.{step.module}", *args, "--out", str(out)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after its {timeout} s", "command": command[1:]}
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        return {
            "error": f"exit code {done.returncode}: {done.stderr.strip()[-1500:]}",
            "command": command[1:],
        }
    return {**json.loads(out.read_text()), "step_seconds": seconds, "command": command[1:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxrl bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a check, not figures to quote")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="steps whose name starts with NAME (env_throughput, compile_time, ...)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: results/<machine>[_quick].json")
    args = parser.parse_args(argv)

    import jax

    from benchmarks.machine import describe_machine

    chosen = [
        step
        for step in steps(jax.default_backend() != "cpu")
        if (not args.only or any(step.name.startswith(name) for name in args.only))
        and not (args.quick and step.quick_args is None)
    ]
    if not chosen:
        parser.error(
            f"--only {' '.join(args.only)} names no step; the steps: "
            f"{', '.join(step.name for step in steps(False))}"
        )
    records = {}
    with tempfile.TemporaryDirectory() as folder:
        for number, step in enumerate(chosen, 1):
            print(f"[{number}/{len(chosen)}] {step.name} ...", end=" ", flush=True)
            records[step.name] = run_step(step, args.quick, Path(folder))
            record = records[step.name]
            print(
                f"failed: {record['error'][:300]}"
                if "error" in record
                else f"{record['step_seconds']:.0f} s",
                flush=True,
            )
    machine = describe_machine()
    out = args.out or RESULTS / f"{machine_slug(machine)}{'_quick' if args.quick else ''}.json"
    if args.only and out.exists():  # the steps run now replace theirs; the others' records stay
        records = {**json.loads(out.read_text())["steps"], **records}
    seconds = sum(record.get("step_seconds", 0.0) for record in records.values())  # the steps', in all
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "suite", "quick": args.quick, "machine": machine, "seconds": seconds,
              "steps": records}
    out.write_text(json.dumps(record, indent=1) + "\n")
    from benchmarks.suite_plots import plot_all

    for path in plot_all(records, out.with_suffix("")):
        print(f"wrote {path}")
    print(f"wrote {out}")
    return 1 if any("error" in record for record in records.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
