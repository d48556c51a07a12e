"""`iarms-node custody import` and `custody search`, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from node.trace.model import CUSTODY_COLUMNS
from tests.cli_helpers import run
from tests.test_custody import CHAIN, HEADER, row


def test_import_reports_rejected_rows_and_exits_3(data_dir: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "custody.csv"
    csv_file.write_text(HEADER + CHAIN + row(event="lent") + row(to_country="ZZZ"), "utf-8")
    args = ("custody", "import", str(csv_file), "--no-progress", "--data-dir", str(data_dir))
    result = run(*args)
    assert result.returncode == 3, result.stderr
    assert result.stdout == f"{csv_file}: 5 rows, 3 created, 0 already present, 2 rejected\n"
    assert result.stderr.splitlines() == [
        f"{csv_file}: line 5, column event: 'lent' is not one of manufactured, imported, "
        "exported, sold, transferred, destroyed",
        f"{csv_file}: line 6, column to_country: 'ZZZ' is not an ISO 3166-1 alpha-3 country "
        "code such as FRA or DEU",
    ]
    again = run(*args)
    assert again.returncode == 3
    assert "5 rows, 0 created, 3 already present, 2 rejected" in again.stdout

    clean = tmp_path / "clean.csv"
    clean.write_text(HEADER + row(serial_number="CLEAN-1"), "utf-8")
    result = run("custody", "import", str(clean), "--data-dir", str(data_dir))
    assert result.returncode == 0 and "1 created" in result.stdout


def test_search_prints_the_chain_in_order(data_dir: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "chain.csv"
    text = CHAIN.replace("GLK", "SRCH") + row(serial_number="srch100", make="Walther\x1b[31m")
    csv_file.write_text(HEADER + text.replace("\x1b[31m", ""), "utf-8")
    run("custody", "import", str(csv_file), "--data-dir", str(data_dir))

    result = run("custody", "search", "--serial", "srch 1OO", "--make", "GLOCK", "--json",
                 "--data-dir", str(data_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["event"], r["event_date"]) for r in rows] == [
        ("manufactured", "2019-01-10"),
        ("exported", "2019-03-02"),
        ("sold", "2019-03-02"),
    ]
    assert set(rows[0]) == {"id", *CUSTODY_COLUMNS}
    assert rows[1]["to_country"] == "ITA"

    result = run("custody", "search", "--serial", "SRCH-100", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith("2019-01-10  manufactured SRCH-100")
    assert "Glock GmbH -> Armi Srl  ITA  EXP-19-7" in lines[1]
    assert "Walther" in lines[3]
    assert result.stderr == "4 custody events for serial 5RCH100\n"


def test_search_output_is_escaped_and_bad_queries_refused(data_dir: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "hostile.csv"
    csv_file.write_text(HEADER + row(serial_number="ESC-1", to_party="Rossi\u202eevil"), "utf-8")
    assert run("custody", "import", str(csv_file), "--data-dir", str(data_dir)).returncode == 0
    result = run("custody", "search", "--serial", "ESC-1", "--data-dir", str(data_dir))
    assert "\u202e" not in result.stdout and "Rossi\\u202eevil" in result.stdout
    json_out = run("custody", "search", "--serial", "ESC-1", "--json", "--data-dir", str(data_dir))
    assert json.loads(json_out.stdout)["to_party"] == "Rossi\u202eevil"

    result = run("custody", "search", "--serial=-/-", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert result.stderr == "iarms-node: serial: '-/-' has no letters or digits to search for\n"
    assert run("custody", "search", "--data-dir", str(data_dir)).returncode == 2


def test_import_of_a_file_with_wrong_columns(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "records.csv"
    bad.write_text("serial_number,make,firearm_type,status\nA,Glock,pistol,lost\n", "utf-8")
    result = run("custody", "import", str(bad), "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"iarms-node: {bad}: unknown column(s) 'firearm_type', 'status'"
    )
    missing = run("custody", "import", str(tmp_path / "nope.csv"), "--data-dir", str(data_dir))
    assert missing.returncode == 1 and "no such file" in missing.stderr
