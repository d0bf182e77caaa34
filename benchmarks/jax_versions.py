"""The same MJX env step under each JAX version the project supports, and under XLA:CPU flags.

Runs benchmarks.env_throughput (the env's own step, vmapped) in each Python environment given, one
with its own JAX, with and without the XLA:CPU flags that decide how deep kinematic chains compile
(`--xla_cpu_use_fusion_emitters=false --xla_cpu_enable_concurrency_optimized_scheduler=false`), and
records env steps/s of each against the first environment's (the constraints file's JAX), measured
in the same run.

    python -m benchmarks.jax_versions --pythons python3 /tmp/venv-jax010/bin/python \
        /tmp/venv-jax011/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from jaxrl.runtime import QUICK_COMPILE_FLAGS

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
# The two XLA:CPU flags of the known pitfall, as jaxrl.runtime's quick-compile settings hold them.
FLAGS = " ".join(f"--{name}={value}" for name, value in QUICK_COMPILE_FLAGS.items()
                 if name.startswith("xla_cpu_"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--pythons",
        nargs="+",
        default=["python3"],
        help="interpreters, each with jaxrl's needs and its own jax; the first is the baseline",
    )
    parser.add_argument("--env", default="go1-joystick")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "jax_versions_cpu.json")
    return parser.parse_args(argv)


def measure(python: str, flags: str, args, folder: Path) -> dict:
    out = folder / "record.json"
    command = [
        python,
        "-m",
        "benchmarks.env_throughput",
        "--env",
        args.env,
        "--variants",
        "env",
        "--batch-sizes",
        *map(str, args.batch_sizes),
        "--repeats",
        str(args.repeats),
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-1500:]}
    version = subprocess.run(
        [python, "-c", "import jax, sys; print(jax.__version__, sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.split()
    record = json.loads(out.read_text())
    return {
        "jax": version[0],
        "python": version[1],
        "xla_flags": flags,
        "steps_per_second": {str(row["batch"]): row["env"]["steps_per_second"] for row in record["results"]},
        "compile_seconds": {str(row["batch"]): row["env"]["compile_seconds"] for row in record["results"]},
        "load_average_after": record["load_average_after"],
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.machine import describe_machine

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for python in args.pythons:
            for flags in ("", FLAGS):
                row = measure(python, flags, args, Path(folder))
                rows.append({"python_executable": python, **row})
                rates = row.get("steps_per_second", row.get("error", ""))
                print(f"{python} {row.get('jax', '?')} flags={'yes' if flags else 'no'}: {rates}", flush=True)
    baseline = rows[0].get("steps_per_second", {})
    for row in rows:
        if "steps_per_second" in row and baseline:
            row["over_first"] = {b: row["steps_per_second"][b] / baseline[b] for b in baseline}
    record = {
        "benchmark": "jax_versions",
        "env": args.env,
        "variant": "env (vmapped env step)",
        "machine": describe_machine(),
        "rows": rows,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
