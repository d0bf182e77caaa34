"""benchmarks/suite_time.py's per-file seconds, and the order conftest hands the files out in."""

import sys
from pathlib import Path
from types import SimpleNamespace

import conftest

sys.path.insert(0, str(Path(__file__).parent.parent))

from benchmarks import suite_time  # noqa: E402

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
  <testcase classname="tests.test_envs" name="test_a" time="2.5" />
  <testcase classname="tests.test_envs" name="test_b" time="1.25"><failure message="no" /></testcase>
  <testcase classname="tests.test_gym.TestVector" name="test_c" time="4.0" />
  <testcase classname="tests.test_bc" name="test_d" time="0.5"><error message="setup" /></testcase>
</testsuite></testsuites>
"""


def test_each_files_seconds_are_the_sum_of_its_tests_longest_first(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT)
    per_file, tests, failed = suite_time.file_seconds(report)
    assert per_file == {"tests/test_gym.py": 4.0, "tests/test_envs.py": 3.8, "tests/test_bc.py": 0.5}
    assert list(per_file) == ["tests/test_gym.py", "tests/test_envs.py", "tests/test_bc.py"]
    assert (tests, failed) == (4, 2)


def test_files_go_out_longest_first_a_new_file_among_the_longest_and_each_files_tests_in_order(monkeypatch):
    monkeypatch.setattr(conftest, "recorded_file_seconds",
                        lambda: {"tests/test_a.py": 1.0, "tests/test_b.py": 50.0, "tests/test_c.py": 9.0})
    names = ["tests/test_a.py::one", "tests/test_a.py::two", "tests/test_b.py::one", "tests/test_new.py::one",
             "tests/test_c.py::one", "tests/test_c.py::two"]
    items = [SimpleNamespace(nodeid=name) for name in names]
    conftest.pytest_collection_modifyitems(items)
    assert [item.nodeid for item in items] == [
        "tests/test_b.py::one", "tests/test_new.py::one", "tests/test_c.py::one", "tests/test_c.py::two",
        "tests/test_a.py::one", "tests/test_a.py::two"]


def test_the_latest_cold_run_with_file_seconds_is_the_one_read():
    seconds = conftest.recorded_file_seconds()
    assert seconds and all(name.startswith("tests/test_") and name.endswith(".py") for name in seconds)
