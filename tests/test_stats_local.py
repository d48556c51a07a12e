"""National statistics and the catalogue's query vectors, on SQLite and PostgreSQL: exact
counts of a small known dataset (tests/stats_data.py), kept exact through every change."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from node.app import Node
from node.clock import FakeClock
from node.errors import ValidationError
from node.records.service import FilterText
from node.stats.local import answer_times, routes
from node.stats.model import TraceHop
from node.stats.periods import Month, Period
from node.stats.queries import QUERIES, query
from tests.stats_data import EXPECTED, seed_records

ALL = Period(Month(2024, 1), Month(2026, 12))


@pytest.fixture
async def seeded(node: Node, tmp_path: Path) -> Node:
    await seed_records(node, tmp_path)
    return node


async def _stored(node: Node) -> list[tuple[str, str, str, str, str, str]]:
    """The stored records as (type, status, month, make, country, calibre), from the
    records themselves (the reference table's names for makes and calibres)."""
    out = []
    async for r in node.records.export(node.records.parse_filter(FilterText()), "test"):
        month = str(Month.of(r.event_date or r.created_at))
        country = r.country_of_manufacture or ""
        out.append((r.firearm_type, r.status.value, month, r.make, country, r.calibre))
    return out


async def test_aggregates_equal_the_records_after_every_kind_of_change(seeded: Node) -> None:
    stored = await _stored(seeded)
    assert sorted((t, s, m, c) for t, s, m, _mk, c, _cal in stored) == sorted(
        (t, s, m, c) for t, s, m, _mk, c, _cal in EXPECTED
    )
    stats = seeded.stats
    for index, name in ((0, "type"), (1, "status"), (3, "make"), (4, "country"), (5, "calibre")):
        expected = Counter(row[index] for row in stored)
        assert await stats.compute(f"records_by_{name}", ALL) == dict(expected), name
    months = await stats.compute("records_by_month", Period(Month(2024, 12), Month(2026, 1)))
    assert months["2024-12"] == 1
    assert months["2025-01"] == 1  # S-7 deleted, S-8 moved to 2025-03
    assert months["2025-02"] == 3
    assert months["2025-03"] == 3
    assert months["2026-01"] == 2
    assert sum(months.values()) == len(EXPECTED)


async def _record_counts(node: Node) -> Counter[tuple[str, str, str]]:
    async with node.db.read() as conn:
        rows = await conn.execute(text("SELECT dimension, value, month, n FROM record_counts"))
        return Counter({(d, v, m): n for d, v, m, n in rows if n})


async def _recount(node: Node) -> Counter[tuple[str, str, str]]:
    """`record_counts` as it should be, counted here from the records themselves."""
    counts: Counter[tuple[str, str, str]] = Counter()
    async for r in node.records.export(node.records.parse_filter(FilterText()), "test"):
        month = str(Month.of(r.event_date or r.created_at))
        counts[("make", r.make, month)] += 1
        counts[("calibre", r.calibre, month)] += 1
        counts[("country", r.country_of_manufacture or "", month)] += 1
        counts[("type_status", f"{r.firearm_type}/{r.status.value}", month)] += 1
        if r.recovered_on is not None:
            counts[("recovered", "", str(Month.of(r.recovered_on)))] += 1
    return counts


async def test_imported_batches_count_their_new_rows(node: Node, tmp_path: Path) -> None:
    """A batch whose rows are all new is counted from its rows as parsed, one holding rows
    stored before from the rows it added to the table: either way, as a recount would."""
    header = "serial_number,make,firearm_type,status,calibre,country_of_manufacture,"
    header += "event_date,recovered_on,external_id\n"
    rows = [
        "I-1,Glock,pistol,stolen,9mm,AUT,2025-02-11,,i1",
        "I-2,glock,Pistol,recovered,9 mm,Austria,2024-12-01,2025-03-15,i2",
        "I-3,Colt,revolver,lost,.38 Special,,,,i3",  # no event date: the month it is recorded
        "I-4,Unheard Of,rifle,seized,,USA,2025-02-28,,i4",
        "I-5,Beretta,pistol,recovered,9mm,ITA,,2025-01-02,i5",
        "I-6,Colt,revolver,lost,.38 Special,,2026-01-01,,i6",  # the month I-3 is recorded in
    ]
    first = tmp_path / "first.csv"
    first.write_text(header + "\n".join([rows[0], rows[2], rows[5], rows[1]]) + "\n")
    report = await node.imports.import_csv(first, "test", batch_rows=3)
    assert (report.created, report.duplicates) == (4, 0)
    counts = await _record_counts(node)
    assert counts == await _recount(node)
    assert counts[("make", "Colt", "2026-01")] == 2
    both = tmp_path / "both.csv"  # two batches: (I-1, I-4): one new; (I-2, I-5): one new
    both.write_text(header + "\n".join([rows[0], rows[3], rows[1], rows[4]]) + "\n")
    report = await node.imports.import_csv(both, "test", batch_rows=2)
    assert (report.created, report.duplicates) == (2, 2)
    counts = await _record_counts(node)
    assert counts == await _recount(node)
    assert counts[("recovered", "", "2025-01")] == counts[("recovered", "", "2025-03")] == 1
    assert counts[("country", "", "2026-01")] == 2  # I-3 (no event date) and I-6


async def test_a_period_counts_only_its_months(seeded: Node) -> None:
    feb = Period(Month(2025, 2), Month(2025, 2))
    assert await seeded.stats.compute("records_by_status", feb) == {
        "stolen": 1,
        "lost": 1,
        "seized": 1,
    }


async def test_catalogue_vectors_are_exact(seeded: Node) -> None:
    stats = seeded.stats
    vector = await stats.compute("records_by_type_status", ALL)
    assert len(vector) == 8 * 7 and vector["pistol/stolen"] == 3
    assert vector["pistol/recovered"] == 1 and vector["rifle/smuggled"] == 1
    assert vector["machine gun/lost"] == 0
    assert sum(vector.values()) == len(EXPECTED)
    routes_ = await stats.compute("routes", ALL)
    assert routes_["AUT>FRA"] == 4 and routes_["ITA>FRA"] == 3 and routes_["USA>FRA"] == 2
    assert all(cell.endswith(">FRA") for cell in routes_)
    assert sum(routes_.values()) == len(EXPECTED) - 1  # the rifle has no country
    recoveries = await stats.compute("recoveries_by_month", Period(Month(2025, 1), Month(2025, 6)))
    assert list(recoveries) == ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
    assert recoveries == {m: int(m == "2025-03") for m in recoveries}


async def test_hits_count_a_record_once_in_its_first_month(seeded: Node, clock: FakeClock) -> None:
    rows = [
        (1, "DEU", datetime(2025, 1, 5, tzinfo=UTC)),
        (1, "ITA", datetime(2025, 2, 5, tzinfo=UTC)),
        (2, "DEU", datetime(2025, 2, 6, tzinfo=UTC)),
        (3, "DEU", datetime(2024, 12, 31, tzinfo=UTC)),
    ]
    await _add_hits(seeded, rows)
    period = Period(Month(2025, 1), Month(2025, 3))
    assert await seeded.stats.compute("hits_by_month", period) == {
        "2025-01": 1,
        "2025-02": 1,
        "2025-03": 0,
    }
    # Record 1 hit in January and February: counted once, in January; record 3 before it.
    feb = Period(Month(2025, 2), Month(2025, 2))
    assert await seeded.stats.compute("hits_by_month", feb) == {"2025-02": 2}
    given = await seeded.stats.compute("hits_given_by_peer", period)
    assert given == {"DEU": 2, "ITA": 1}


async def _add_hits(node: Node, rows: list[tuple[int, str, datetime]]) -> None:
    from node.store.database import Transaction
    from node.store.lookups import add_hits_in

    hits = [
        {
            "record_id": rid,
            "serial_number": "X",
            "peer": peer,
            "at": at,
            "case_reference": "c",
            "make_given": "",
            "make_agrees": True,
            "lookup_id": bytes([i]) * 16,
        }
        for i, (rid, peer, at) in enumerate(rows)
    ]
    async with node.db.transaction() as tx:
        assert isinstance(tx, Transaction)
        await add_hits_in(tx, hits)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2025-13", None, "from: '2025-13' is not a month written YYYY-MM"),
        ("2025/01", None, "is not a month"),
        (None, "25-01", "to: '25-01' is not a month"),
        ("2025-06", "2025-01", "from: 2025-06 is after to (2025-01)"),
        ("1900-01", "2025-01", "longer than 600 months"),
    ],
)
def test_bad_periods_are_refused(start: str | None, end: str | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Period.resolve(start, end, date(2026, 1, 1))


def test_the_default_period_is_the_last_twelve_months() -> None:
    period = Period.resolve(None, None, date(2026, 3, 9))
    assert (str(period.start), str(period.end)) == ("2025-04", "2026-03")
    assert str(Period.resolve(None, "2025-02", date(2026, 3, 9)).start) == "2024-03"


async def test_an_unknown_query_names_the_known_ones(sqlite_node: Node) -> None:
    with pytest.raises(
        ValidationError,
        match="no query 'nope'; the queries and reports are "
        "records_by_type_status, routes, recoveries_by_month",
    ):
        await sqlite_node.stats.compute("nope", ALL)
    with pytest.raises(ValidationError, match="trace_outcomes"):
        query("nope")


def test_every_query_documents_its_bound_and_cells() -> None:
    period = Period(Month(2025, 1), Month(2025, 3))
    for q in QUERIES:
        assert q.sensitivity == 1 and q.bound and q.description
        cells = q.cells(period, "FRA")
        assert len(cells) == len(set(cells)) > 0
    assert query("routes").cells(period, "FRA")[:2] == ("ABW>FRA", "AFG>FRA")
    assert query("hits_by_month").cells(period, "FRA") == ("2025-01", "2025-02", "2025-03")


def test_answer_times_and_routes() -> None:
    times = answer_times([("ITA", 3600.0), ("ITA", 7200.0), ("ITA", 36000.0), ("DEU", 1800.0)])
    assert [(t.peer, t.answers, t.median_hours) for t in times] == [
        ("DEU", 1, 0.5),
        ("ITA", 3, 2.0),
    ]
    assert times[1].p90_hours == pytest.approx(8.4)
    hops = [TraceHop(1, 1, "ITA"), TraceHop(1, 2, "AUT"), TraceHop(2, 1, "ITA")]
    # Trace 1: ITA then AUT, found here; trace 2: ITA, found here.
    assert routes(hops, "FRA") == [("AUT", "FRA", 1), ("ITA", "AUT", 1), ("ITA", "FRA", 1)]


async def test_national_figures_for_the_page(seeded: Node, clock: FakeClock) -> None:
    national = await seeded.stats.national(seeded.stats.period("2024-12", "2026-01"))
    data = national.to_json()
    assert data["records"]["total"] == len(EXPECTED)
    assert data["records"]["by_month"][0] == {"month": "2024-12", "recorded": 1, "recovered": 0}
    march = next(m for m in data["records"]["by_month"] if m["month"] == "2025-03")
    assert march == {"month": "2025-03", "recorded": 3, "recovered": 1}
    assert data["records"]["top_makes"][0]["count"] == 4  # Glock
    assert data["traces"]["overdue"] == {"sent": 0, "received": 0}
    assert data["lookups"]["per_peer"] == []


async def test_lookups_made_and_answered_per_peer(node: Node) -> None:
    from node.auditing import AuditEvent

    log = node.audit_log
    at = datetime(2025, 2, 3, tzinfo=UTC)
    await log.add_entry(
        at,
        AuditEvent(
            "officer",
            "lookup.query",
            "peers",
            {"serials": 3, "peers": ["DEU", "ITA"], "case_reference": "c"},
        ),
    )
    await log.add_entry(at, AuditEvent("peer:DEU", "lookup.evaluate", "peer/DEU", {"count": 5}))
    period = Period(Month(2025, 1), Month(2025, 3))
    assert await node.stats.compute("lookups_by_peer", period) == {"DEU": 3, "ITA": 3}
    assert await node.stats.compute("answered_by_peer", period) == {"DEU": 5}
    national = await node.stats.national(period)
    assert national.peer_months[0].to_json() == {
        "peer": "DEU",
        "month": "2025-02",
        "made": 3,
        "answered": 5,
        "hits_given": 0,
        "hits_received": 0,
        "hit_rate": 0.0,
    }
    # lookups made at DEU and ITA, no hit: a rate of 0 at each (none where none were made)
    assert await node.stats.compute("hit_rate_by_peer", period) == {"DEU": 0.0, "ITA": 0.0}


async def test_upgrading_to_0018_counts_the_records_already_there(seeded: Node) -> None:
    from typing import Any

    from alembic import command

    from node.store.database import alembic_config

    before = {name: await seeded.stats.compute(name, ALL) for name in seeded.stats.names()}

    def downgrade(sync_conn: Any) -> None:
        config = alembic_config(seeded.db.url)
        config.attributes["connection"] = sync_conn
        command.downgrade(config, "0016")

    async with seeded.db.write() as conn:
        await conn.run_sync(downgrade)
    await seeded.db.migrate()
    after = {name: await seeded.stats.compute(name, ALL) for name in seeded.stats.names()}
    assert after == before
    assert after["records_by_type_status"]["pistol/recovered"] == 1
