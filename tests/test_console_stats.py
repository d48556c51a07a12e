"""The console's statistics page: figures, `.json` twin, charts, CSV exports, roles, escaping."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.accounts.model import Role
from node.app import Node
from node.stats.local import NationalStats
from node.stats.periods import Period
from tests.console_helpers import ADMIN_PASSWORD, OFFICER_PASSWORD, Console, console_for
from tests.stats_data import EXPECTED, HOSTILE_MAKE, seed_records

PERIOD = "from=2024-12&to=2026-01"


@pytest.fixture
async def console(sqlite_node: Node, tmp_path: Path) -> AsyncIterator[Console]:
    """The SQLite node with the known dataset, its console logged in as the admin."""
    await seed_records(sqlite_node, tmp_path)
    async with console_for(sqlite_node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        yield c


async def test_the_json_twin_holds_every_figure(console: Console) -> None:
    data = await console.json(f"/statistics.json?{PERIOD}")
    assert data["period"] == {"from": "2024-12", "to": "2026-01"}
    records = data["records"]
    assert records["total"] == len(EXPECTED)
    assert {"status": "stolen", "count": 3} in records["by_status"]
    assert records["by_month"][0] == {"month": "2024-12", "recorded": 1, "recovered": 0}
    assert len(records["by_month"]) == 14
    assert {r["country"]: r["count"] for r in records["by_country_of_manufacture"]} == {
        "AUT": 4,
        "ITA": 3,
        "USA": 2,
        "": 1,
    }
    assert set(data["traces"]) == {"sent", "received", "answer_times", "overdue", "routes"}


async def test_the_page_shows_each_chart_beside_its_table(console: Console) -> None:
    response = await console.get(f"/statistics?{PERIOD}")
    assert response.status == 200
    html = await response.text()
    charts = re.findall(r'<img class="chart" src="([^"]+)"', html)
    assert len(charts) == 11
    query = r"\?from=2024-12&amp;to=2026-01&amp;snapshot=[A-Za-z0-9_-]{16}"
    for name in ("records_by_month", "top_makes", "trace_routes"):
        assert re.search(f'src="/statistics/charts/{name}.svg{query}"', html)
        assert f'id="figure-{name}"' in html
    assert 'id="table-records_by_status"' in html
    assert '<strong id="total">10</strong>' in html
    assert re.search(f'href="/statistics/export/top_makes.csv{query}"', html)


async def test_a_chart_is_svg_with_no_script_and_labelled_axes(console: Console) -> None:
    response = await console.get(f"/statistics/charts/records_by_month.svg?{PERIOD}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("image/svg+xml")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    svg = await response.text()
    assert svg.startswith("<svg") and "<script" not in svg.lower()
    assert "Records by month" in svg and ">Month<" in svg and ">Records<" in svg
    assert "2025-03" in svg
    assert not re.search(r'(?:href|src)="https?:', svg)  # nothing from outside the node


async def test_make_names_are_escaped_everywhere(console: Console) -> None:
    html = await (await console.get(f"/statistics?{PERIOD}")).text()
    assert HOSTILE_MAKE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    svg = await (await console.get(f"/statistics/charts/top_makes.svg?{PERIOD}")).text()
    assert HOSTILE_MAKE not in svg and "<script" not in svg.lower()
    assert "&lt;script&gt;" in svg


async def test_csv_export_holds_every_row(console: Console) -> None:
    response = await console.get(f"/statistics/export/top_makes.csv?{PERIOD}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="top_makes.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["make", "records"]
    counts = {make: int(n) for make, n in rows[1:]}
    assert counts[HOSTILE_MAKE] == 1 and sum(counts.values()) == len(EXPECTED)
    months = await console.get(f"/statistics/export/records_by_month.csv?{PERIOD}")
    lines = (await months.text()).splitlines()
    assert lines[0] == "month,recorded,recovered" and "2025-03,3,1" in lines


async def test_formulas_are_neutralised_in_exports(sqlite_node: Node, tmp_path: Path) -> None:
    from node.records.model import RecordInput

    await sqlite_node.records.create(RecordInput("F-1", "=HYPERLINK(1)", "pistol", "lost"), "t")
    async with console_for(sqlite_node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        text = await (await c.get("/statistics/export/top_makes.csv")).text()
    assert "'=HYPERLINK(1),1" in text.splitlines()


async def test_bad_periods_and_unknown_figures(console: Console) -> None:
    error = await console.json("/statistics.json?from=2025-13", status=400)
    assert error["error"] == {
        "code": "invalid",
        "message": "from: '2025-13' is not a month written YYYY-MM, such as 2025-03",
        "field": "from",
    }
    response = await console.get("/statistics?from=2025-06&to=2025-01")
    assert response.status == 400
    assert "2025-06 is after to (2025-01)" in await response.text()
    assert (await console.get("/statistics/charts/nope.svg")).status == 404
    assert (await console.get("/statistics/export/nope.csv")).status == 404


@pytest.mark.parametrize("role", [Role.ANALYST, Role.AUDITOR])
async def test_analysts_and_auditors_may_see_it(console: Console, role: Role) -> None:
    await console.add_user("reader", role)
    await console.login_as("reader", OFFICER_PASSWORD)
    assert 'href="/statistics"' in await (await console.get("/")).text()
    assert (await console.json("/statistics.json"))["records"]["total"] >= 0
    assert (await console.get("/statistics/charts/top_makes.svg")).status == 200


async def test_officers_and_strangers_may_not(console: Console, sqlite_node: Node) -> None:
    await console.add_user("officer", Role.OFFICER)
    await console.login_as("officer", OFFICER_PASSWORD)
    assert 'href="/statistics"' not in await (await console.get("/")).text()
    assert (await console.json("/statistics.json", status=403))["error"]["code"] == "forbidden"
    for path in ("/statistics/charts/top_makes.svg", "/statistics/export/top_makes.csv"):
        assert (await console.get(path)).status == 403, path
    async with console_for(sqlite_node) as anonymous:
        assert (await anonymous.get("/statistics")).status == 302
        assert (await anonymous.get("/statistics.json")).status == 401
        assert (await anonymous.get("/statistics/export/top_makes.csv")).status in (302, 401)


def test_charts_clamp_negative_counts_and_count_in_whole_numbers() -> None:
    from admin_ui.charts import bar_chart, clamp, integer_ticks

    assert clamp([-3, 0, 2, None, -0.5]) == [0, 0, 2, None, 0]
    assert integer_ticks(3) == [0, 1, 2, 3]
    assert integer_ticks(17) == [0, 5, 10, 15, 20]
    assert integer_ticks(123_456)[1] == 20_000
    svg = bar_chart("Noisy totals", "Cell", "Records", ["a", "b"], {"total": [-4, 7]}).decode()
    assert "<script" not in svg and ">-4<" not in svg  # drawn as zero: no negative axis


async def _figures_read(node: Node, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the reads of every figure (`LocalStats.national`) from now on."""
    reads: list[str] = []
    national = node.stats.national

    async def counted(period: Period) -> NationalStats:
        reads.append(str(period.start))
        return await national(period)

    monkeypatch.setattr(node.stats, "national", counted)
    return reads


async def test_a_page_s_charts_and_exports_are_drawn_from_the_figures_it_read(
    console: Console, sqlite_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page reads every figure once; its eleven charts and its exports (their links
    name its snapshot) read nothing again and show the very figures of its tables. A
    chart without the snapshot, or with another reader's, reads them again."""
    reads = await _figures_read(sqlite_node, monkeypatch)
    html = await (await console.get(f"/statistics?{PERIOD}")).text()
    links = [
        link.replace("&amp;", "&")
        for link in re.findall(r'(?:src|href)="(/statistics/(?:charts|export)/[^"]+)"', html)
    ]
    assert len(links) == 22 and reads == ["2024-12"]
    for link in links:
        assert (await console.get(link)).status == 200, link
    assert reads == ["2024-12"]
    top_makes = next(link for link in links if "/export/top_makes.csv" in link)
    rows = list(csv.reader(io.StringIO(await (await console.get(top_makes)).text())))
    assert [HOSTILE_MAKE, "1"] in rows
    await console.get(f"/statistics/charts/top_makes.svg?{PERIOD}")
    assert reads == ["2024-12", "2024-12"]
    other_period = top_makes.replace("from=2024-12", "from=2025-01")
    assert (await console.get(other_period)).status == 200  # not the snapshot's period
    assert reads == ["2024-12", "2024-12", "2025-01"]
    await console.add_user("auditor", Role.AUDITOR)
    await console.login_as("auditor", OFFICER_PASSWORD)
    assert (await console.get(links[0])).status == 200  # the admin's snapshot: not ours
    assert len(reads) == 4


async def test_reading_the_page_and_exporting_a_figure_are_audited(
    console: Console, sqlite_node: Node
) -> None:
    """As reads of records are: who read which period, who exported which figure."""
    html = await (await console.get(f"/statistics?{PERIOD}")).text()
    export = re.search(r'href="(/statistics/export/top_makes.csv[^"]+)"', html)
    assert export is not None
    await console.get(export.group(1).replace("&amp;", "&"))
    await console.get("/statistics/charts/records_by_month.svg?from=2025-01&to=2025-02")
    entries = await sqlite_node.audit.recent(limit=10)
    stats = [(e.actor, e.action, e.target, e.details) for e in entries if "stats" in e.action]
    period = {"from": "2024-12", "to": "2026-01"}
    assert stats == [
        ("admin", "stats.view", "statistics", {"period": {"from": "2025-01", "to": "2025-02"}}),
        ("admin", "stats.export", "statistics", {"period": period, "figure": "top_makes"}),
        ("admin", "stats.view", "statistics", {"period": period}),
    ]
    assert (await sqlite_node.audit.verify()).ok
