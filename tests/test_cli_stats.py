"""`iarms-node stats queries` and `stats local`, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from node.records.model import CSV_COLUMNS
from tests.cli_helpers import run


def _import(data_dir: Path, tmp_path: Path) -> None:
    rows = [
        {
            "serial_number": "A1",
            "make": "Glock",
            "firearm_type": "pistol",
            "status": "stolen",
            "country_of_manufacture": "AUT",
            "event_date": "2025-01-04",
        },
        {
            "serial_number": "A2",
            "make": "Glock",
            "firearm_type": "pistol",
            "status": "stolen",
            "country_of_manufacture": "AUT",
            "event_date": "2025-02-04",
        },
        {
            "serial_number": "A3",
            "make": "Beretta",
            "firearm_type": "rifle",
            "status": "recovered",
            "country_of_manufacture": "ITA",
            "event_date": "2025-02-01",
            "recovered_on": "2025-02-20",
        },
    ]
    lines = [",".join(CSV_COLUMNS)] + [",".join(r.get(c, "") for c in CSV_COLUMNS) for r in rows]
    path = tmp_path / "records.csv"
    path.write_text("\n".join(lines) + "\n")
    result = run("records", "import", str(path), "--no-progress", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr


def test_queries_lists_every_query_with_its_cells() -> None:
    result = run("stats", "queries", "--json", "--from", "2025-01", "--to", "2025-03")
    assert result.returncode == 0, result.stderr
    queries = {q["name"]: q for q in map(json.loads, result.stdout.splitlines())}
    assert list(queries) == [
        "records_by_type_status",
        "routes",
        "recoveries_by_month",
        "hits_by_month",
        "trace_outcomes",
    ]
    assert queries["hits_by_month"]["cells"] == ["2025-01", "2025-02", "2025-03"]
    assert "pistol/stolen" in queries["records_by_type_status"]["cells"]
    assert "AUT>DST" in queries["routes"]["cells"]
    assert all(q["sensitivity"] == 1 and q["bound"] for q in queries.values())
    text = run("stats", "queries")
    assert "routes: records by country of manufacture" in text.stdout


def test_local_prints_exact_cells(data_dir: Path, tmp_path: Path) -> None:
    _import(data_dir, tmp_path)
    period = ("--from", "2025-01", "--to", "2025-03", "--data-dir", str(data_dir))
    result = run("stats", "local", "--query", "routes", "--json", *period)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["period"] == {"from": "2025-01", "to": "2025-03"}
    cells = {c["name"]: c["value"] for c in out["cells"]}
    assert cells["AUT>FRA"] == 2 and cells["ITA>FRA"] == 1 and sum(cells.values()) == 3
    months = run("stats", "local", "--query", "recoveries_by_month", "--json", *period)
    assert json.loads(months.stdout)["cells"] == [
        {"name": "2025-01", "value": 0},
        {"name": "2025-02", "value": 1},
        {"name": "2025-03", "value": 0},
    ]
    report = run("stats", "local", "--query", "records_by_make", *period)
    assert report.returncode == 0, report.stderr
    assert "records_by_make at FRA, 2025-01 to 2025-03 (exact)" in report.stdout
    assert any(line.split()[-1] == "2" for line in report.stdout.splitlines()[1:])
    # the national reports of traces and lookups are there too (none on this node yet)
    overdue = run("stats", "local", "--query", "traces_overdue", "--json", *period)
    assert json.loads(overdue.stdout)["cells"] == [
        {"name": "sent", "value": 0},
        {"name": "received", "value": 0},
    ]
    for name in ("trace_answer_times", "trace_routes", "hit_rate_by_peer"):
        empty = run("stats", "local", "--query", name, "--json", *period)
        assert (empty.returncode, json.loads(empty.stdout)["cells"]) == (0, []), name


def test_local_refuses_bad_input(data_dir: Path) -> None:
    dd = ("--data-dir", str(data_dir))
    unknown = run("stats", "local", "--query", "nope", *dd)
    assert unknown.returncode == 1
    assert "no query 'nope'; the queries and reports are records_by_type_status" in unknown.stderr
    month = run("stats", "local", "--query", "routes", "--from", "2025-1", *dd)
    assert month.returncode == 1
    assert "from: '2025-1' is not a month written YYYY-MM" in month.stderr
    order = run("stats", "local", "--query", "routes", "--from", "2025-05", "--to", "2025-01", *dd)
    assert order.returncode == 1 and "from: 2025-05 is after to (2025-01)" in order.stderr
    missing = run("stats", "local", "--data-dir", str(data_dir))
    assert missing.returncode == 2 and "--query" in missing.stderr
