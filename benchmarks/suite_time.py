"""The test suite's wall-clock from an empty or a warm XLA cache, as the README's test command runs it.

    python -m benchmarks.suite_time --setting "what changed"             # cold: an empty cache of its own
    python -m benchmarks.suite_time --cache-dir DIR --setting "warm"     # warm: a cold run's cache again

Appends the run to results/suite_time_cpu.json: wall-clock, tests, failures, the load average before,
and each test file's seconds (setup, call and teardown, summed over its tests). tests/conftest.py hands
the files to pytest-xdist's workers longest first by the latest cold run's seconds, so that the last
file a worker starts is a short one.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "suite_time_cpu.json"


def file_seconds(junit_xml: Path) -> tuple[dict[str, float], int, int]:
    """(seconds per test file, tests, failed or errored) from pytest's JUnit report."""
    seconds: dict[str, float] = collections.defaultdict(float)
    tests = failed = 0
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        module = case.get("classname", "").split(".")
        name = "/".join(module[:2]) + ".py" if len(module) >= 2 else case.get("file", "?")
        seconds[name] += float(case.get("time", 0.0))
        tests += 1
        failed += any(child.tag in ("failure", "error") for child in case)
    return {k: round(v, 1) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}, tests, failed


def run_suite(cache_dir: Path, pytest_args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *pytest_args,
        ]
        done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, JAXRL_CACHE_DIR=str(cache_dir)))
        wall = time.perf_counter() - start
        if not report.exists():
            raise SystemExit(f"pytest exited {done.returncode} without a report: see its output above")
        per_file, tests, failed = file_seconds(report)
    return {
        "tests": tests,
        "failed": failed,
        "wall_seconds": round(wall, 1),
        "load_average_1_min_before": round(load_before, 2),
        "per_file_seconds": per_file,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", required=True, help="what this run measures (commit, change)")
    parser.add_argument("--cache-dir", type=Path, help="a cold run's JAXRL_CACHE_DIR, for a warm run")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after --")
    args = parser.parse_args(argv)
    cold = args.cache_dir is None
    cache_dir = Path(tempfile.mkdtemp(prefix="jaxrl-suite-")) if cold else args.cache_dir
    print(f"suite from {'an empty' if cold else 'a warm'} XLA cache: JAXRL_CACHE_DIR={cache_dir}", flush=True)
    run = {
        "setting": args.setting,
        "cache": "empty" if cold else f"warm ({cache_dir})",
        **run_suite(cache_dir, args.pytest_args),
    }
    record = json.loads(RESULTS.read_text())
    record["runs"].append(run)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{run['tests']} tests, {run['failed']} failed, {run['wall_seconds']} s -> {RESULTS}")
    return 1 if run["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
