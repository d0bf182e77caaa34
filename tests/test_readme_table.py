"""The README's "Measured" table is written from benchmarks/results/ (benchmarks/readme_table.py)."""

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import readme_table  # noqa: E402


def test_the_readme_table_is_what_the_records_say(capsys):
    assert readme_table.main(["--check"]) == 0, capsys.readouterr().out


def test_each_row_names_its_record_and_the_machine_it_was_measured_on():
    table = readme_table.render().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| what ")]
    assert len(rows) == len(readme_table.ROWS)
    for line, row in zip(rows, readme_table.ROWS, strict=True):
        *_, measured_on, record = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert record == f"`{row.source}`"
        assert re.fullmatch(r".+, \d{4}-\d{2}-\d{2}", measured_on), line  # the machine, the day


def test_a_new_figure_in_a_record_changes_the_table_and_fails_the_check(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    shutil.copytree(readme_table.RESULTS, results)
    record = json.loads((results / "train_memory_cpu.json").read_text())
    record["extra_peak_per_state_byte"] = 1.23456
    (results / "train_memory_cpu.json").write_text(json.dumps(record))
    monkeypatch.setattr(readme_table, "RESULTS", results)
    assert "| 1.23 (" in readme_table.render()
    assert readme_table.main(["--check"]) == 1
    assert "python -m benchmarks.readme_table" in capsys.readouterr().out

    readme = tmp_path / "README.md"
    readme.write_text(readme_table.README.read_text())
    monkeypatch.setattr(readme_table, "README", readme)
    assert readme_table.main([]) == 0 and readme_table.main(["--check"]) == 0
    assert "| 1.23 (" in readme.read_text()
