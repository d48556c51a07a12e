"""The synthetic record generator and `scripts/generate_records.py`."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from node.records.model import CSV_COLUMNS, Status
from node.records.reference import load_reference
from node.records.serials import canonicalise_serial
from node.records.synthetic import CATEGORY_SHARES, FIRST_DATE, LAST_DATE, generate_rows, write_csv

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_records.py"
REF = load_reference()
ROWS = list(generate_rows(3000, seed=11))


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A make's serial pattern as a regex over the serial without separators, upper-cased."""
    parts = []
    for char in pattern:
        if char == "A":
            parts.append("[A-Z]")
        elif char == "#":
            parts.append("[0-9]")
        elif char.isalnum():
            parts.append(re.escape(char))
    return re.compile("".join(parts))


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    assert list(generate_rows(3000, seed=11)) == ROWS
    assert list(generate_rows(100, seed=11)) == ROWS[:100]
    other = list(generate_rows(100, seed=12))
    assert [r["serial_number"] for r in other] != [r["serial_number"] for r in ROWS[:100]]


def test_columns_and_external_ids() -> None:
    assert all(tuple(row) == CSV_COLUMNS for row in ROWS)
    assert [row["external_id"] for row in ROWS[:3]] == ["SYN-11-0", "SYN-11-1", "SYN-11-2"]
    assert len({row["external_id"] for row in ROWS}) == len(ROWS)
    assert list(generate_rows(0)) == []
    with pytest.raises(ValueError, match="negative"):
        generate_rows(-1)


def test_statuses_dates_and_required_fields() -> None:
    statuses = Counter(row["status"] for row in ROWS)
    assert set(statuses) == {s.value for s in Status}
    assert statuses["stolen"] > statuses["recovered"]
    for row in ROWS:
        assert FIRST_DATE.isoformat() <= row["event_date"] <= LAST_DATE.isoformat()
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["event_date"])
        assert re.fullmatch(rf"CR-{row['event_date'][:4]}-\d{{6}}", row["case_reference"])
        assert row["serial_number"] and row["make"] and row["event_place"]
        assert row["reporting_agency"] and row["contact"]
    assert any(row["markings"].startswith("import mark ") for row in ROWS)
    assert any(row["notes"] for row in ROWS)
    assert sum(1 for row in ROWS if row["markings"]) < len(ROWS) / 3


def test_makes_calibres_and_types_are_known_and_plausible() -> None:
    for row in ROWS:
        make = REF.make(row["make"])
        assert make is not None
        assert REF.normalise_make(row["make"]).known
        assert REF.normalise_type(row["firearm_type"]).value == row["firearm_type"]
        assert REF.normalise_calibre(row["calibre"]).value == row["calibre"]
        assert row["firearm_type"] in make.types, row
        assert row["country_of_manufacture"] == make.country
        category = {c.name: c.category for c in REF.calibres}[row["calibre"]]
        assert category in CATEGORY_SHARES[row["firearm_type"]], row
    counts = Counter(row["make"] for row in ROWS)
    assert counts["Glock"] > 100 and counts["Glock"] > counts["Fanzoj"]


def test_serials_follow_the_make_pattern_as_officers_type_them() -> None:
    for row in ROWS:
        make = REF.make(row["make"])
        assert make is not None
        typed = row["serial_number"]
        bare = re.sub(r"[^0-9A-Za-z]", "", typed).upper()
        assert _pattern_regex(make.serial_pattern).fullmatch(bare), (typed, make.serial_pattern)
        assert canonicalise_serial(typed) == canonicalise_serial(bare)
    typed_forms = [row["serial_number"] for row in ROWS]
    assert any(" " in s for s in typed_forms)
    assert any(re.search(r"[a-z]", s) for s in typed_forms)
    assert sum(1 for s in typed_forms if s == s.upper() and " " not in s) > len(ROWS) / 2


def test_write_csv(tmp_path: Path) -> None:
    out = tmp_path / "records.csv"
    write_csv(out, 250, seed=11, progress=False)
    with out.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows == ROWS[:250]
    write_csv(out, 0, seed=11, progress=False)
    assert out.read_text(encoding="utf-8").strip() == ",".join(CSV_COLUMNS)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_records", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", ""])
def test_script_refuses_a_bad_n(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.csv"
    with pytest.raises(SystemExit) as exit_info:
        _script().main([bad, "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"must be a positive integer, got {bad!r}" in err
    assert not out.exists()


def test_script_refuses_an_unwritable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _script().main(["5", "--out", str(tmp_path / "missing" / "x.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "No such file" in err


def test_script_runs_from_the_project_root(tmp_path: Path) -> None:
    out = tmp_path / "records.csv"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "40", "--out", str(out), "--seed", "11"],
        cwd=SCRIPT.parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "40/40" in done.stderr  # the progress bar
    with out.open(encoding="utf-8", newline="") as file:
        assert list(csv.DictReader(file)) == ROWS[:40]
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "0", "--out", str(out)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "positive integer" in bad.stderr


def test_rows_stream_lazily() -> None:
    first = list(itertools.islice(generate_rows(10**9, seed=11), 5))
    assert first == ROWS[:5]
