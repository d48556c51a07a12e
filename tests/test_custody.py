"""The registry of legal custody: CSV import (both backends), dedupe, bad input, search, chain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.app import Node
from node.auditing import AuditEvent
from node.errors import CsvFormatError, StorageFullError, ValidationError
from node.records.import_parse import Counts
from node.records.reference import load_reference
from node.store.custody import CustodyStore
from node.trace.custody import CustodyService
from node.trace.custody_rows import custody_row
from node.trace.model import CUSTODY_COLUMNS, STORED_FIELDS, EventKind
from tests.test_import import write as write_file

ACTOR = "cli:test"
HEADER = ",".join(CUSTODY_COLUMNS) + "\n"
#: A Glock's chain across three countries, not in date order in the file.
CHAIN = (
    "GLK-100,Glock,17,exported,2019-03-02,Glock GmbH,Armi Srl,ITA,EXP-19-7,\n"
    "GLK-100,Glock,17,manufactured,2019-01-10,,Glock GmbH,,,first proof 2019\n"
    "GLK 100,GLOCK,17,sold,2019-03-02,Glock GmbH,Waffen Huber,,L-88,same day as the export\n"
)


def write(tmp_path: Path, text: str | bytes) -> Path:
    return write_file(tmp_path, text, "custody.csv")


def row(**fields: str) -> str:
    """One CSV line: a valid `sold` event, with `fields` replacing its values."""
    values = {
        "serial_number": "R1",
        "make": "Beretta",
        "model": "92FS",
        "event": "sold",
        "event_date": "2020-05-05",
        "from_party": "Armeria Roma",
        "to_party": "M. Rossi",
        "to_country": "",
        "licence_reference": "PA-1",
        "notes": "",
    } | fields
    return ",".join(values[c] for c in CUSTODY_COLUMNS) + "\n"


async def test_import_stores_events_and_search_orders_them(node: Node, tmp_path: Path) -> None:
    report = await node.custody.imports.import_csv(write(tmp_path, HEADER + CHAIN), ACTOR)
    assert (report.rows, report.created, report.duplicates, report.rejected) == (3, 3, 0, 0)
    events = await node.custody.search(node.custody.query("glk100"), ACTOR)
    assert [e.event for e in events] == [EventKind.MANUFACTURED, EventKind.EXPORTED, EventKind.SOLD]
    assert [e.serial_number for e in events] == ["GLK-100", "GLK-100", "GLK 100"]
    first, export, sale = events
    assert first.event_date == date(2019, 1, 10) and first.to_party == "Glock GmbH"
    assert first.notes == "first proof 2019" and first.to_country is None
    assert export.to_country == "ITA" and export.licence_reference == "EXP-19-7"
    assert export.id < sale.id  # the same day: in the order imported
    assert sale.make == "GLOCK" and sale.make_key == first.make_key == "glock"
    assert first.imported_at == node.clock.now()
    assert await node.custody.count() == 3
    assert (await node.audit.verify()).ok


async def test_chain_is_one_firearm_in_order(node: Node, tmp_path: Path) -> None:
    other_make = row(serial_number="GLK100", make="Walther", event="manufactured")
    await node.custody.imports.import_csv(write(tmp_path, HEADER + CHAIN + other_make), ACTOR)
    query = node.custody.query("G L K 1 0 0", "glock ges.m.b.h.")
    assert query.make_key == node.custody.make_key("Glock")
    chain = await node.custody.chain(query.serial_canonical, "glock")
    assert [(e.event.value, e.event_date.isoformat()) for e in chain] == [
        ("manufactured", "2019-01-10"),
        ("exported", "2019-03-02"),
        ("sold", "2019-03-02"),
    ]
    assert await node.custody.chain(query.serial_canonical, "nosuchmake") == []
    every_make = await node.custody.search(node.custody.query("GLK100"), ACTOR)
    assert {e.make for e in every_make} == {"Glock", "GLOCK", "Walther"}


async def test_search_normalises_the_make_and_is_audited(node: Node, tmp_path: Path) -> None:
    lines = row(serial_number="SW1", make="S&W") + row(serial_number="SW1", make="Colt")
    await node.custody.imports.import_csv(write(tmp_path, HEADER + lines), ACTOR)
    found = await node.custody.search(node.custody.query("sw-1", "Smith and Wesson"), ACTOR)
    assert [e.make for e in found] == ["S&W"]
    entry = (await node.audit.recent(action="custody.search", limit=1))[0]
    assert entry.details == {"serial": "5W1", "make_key": "smithwesson", "returned": 1}


@pytest.mark.parametrize(
    ("serial", "make", "message"),
    [
        ("--", "", "serial: '--' has no letters or digits to search for"),
        ("A1", "&&", "make: '&&' has no letters or digits"),
        ("A\x1b1", "", "serial: contains control characters"),
        ("A" * 65, "", "serial: 65 characters, at most 64 allowed"),
    ],
)
def test_bad_queries_are_refused(sqlite_node: Node, serial: str, make: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        sqlite_node.custody.query(serial, make)
    assert str(info.value) == message


async def test_reimport_stores_nothing_twice_however_spelt(node: Node, tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + CHAIN)
    first = await node.custody.imports.import_csv(path, ACTOR, batch_rows=2)
    assert first.created == 3
    respelt = row(serial_number="r-1", make="beretta") + row() + row(make="Pietro Beretta")
    path = write(tmp_path, HEADER + CHAIN.replace("GLK-100", "glk100") + respelt)
    again = await node.custody.imports.import_csv(path, ACTOR)
    assert (again.created, again.duplicates) == (1, 5)
    assert await node.custody.count() == 4
    imports = await node.audit.recent(action="custody.import")
    assert [e.details for e in imports] == [
        {"rows": 6, "created": 1, "duplicates": 5, "rejected": 0},
        {"rows": 3, "created": 3, "duplicates": 0, "rejected": 0},
    ]
    batches = await node.audit.recent(action="custody.import_batch")
    assert [e.details["created"] for e in batches] == [1, 1, 2]
    assert (await node.audit.verify()).ok


#: Each bad row, the column named and the exact reason.
BAD_ROWS = [
    (row(event="lent"), "event", "'lent' is not one of manufactured, imported, exported, sold, "
     "transferred, destroyed"),
    (row(event=""), "event", "'' is not one of manufactured, imported, exported, sold, "
     "transferred, destroyed"),
    (row(event_date="2020-02-30"), "event_date", "'2020-02-30' is not a date in the form "
     "YYYY-MM-DD"),
    (row(event_date="5/5/2020"), "event_date", "'5/5/2020' is not a date in the form YYYY-MM-DD"),
    (row(event_date=""), "event_date", "required (YYYY-MM-DD)"),
    (row(event_date="2026-01-02"), "event_date", "2026-01-02 is in the future"),
    (row(event_date="1799-12-31"), "event_date", "1799-12-31 is before 1800"),
    (row(to_country="XYZ"), "to_country", "'XYZ' is not an ISO 3166-1 alpha-3 country code "
     "such as FRA or DEU"),
    (row(to_country="DE"), "to_country", "'DE' is not an ISO 3166-1 alpha-3 country code such "
     "as FRA or DEU (did you mean DEU, Germany?)"),
    (row(event="exported"), "to_country", "required for an exported firearm (the country it "
     "went to)"),
    (row(serial_number="--"), "serial_number", "required, with at least one letter or digit"),
    (row(serial_number="S" * 65), "serial_number", "65 characters, at most 64 allowed"),
    (row(make=""), "make", "required, with at least one letter or digit"),
    (row(make="M" * 201), "make", "201 characters, at most 200 allowed"),
    (row(from_party="P" * 401), "from_party", "401 characters, at most 400 allowed"),
    (row(licence_reference="L" * 201), "licence_reference", "201 characters, at most 200 allowed"),
    (row(notes="N" * 2001), "notes", "2001 characters, at most 2000 allowed"),
    (row(to_party="Rossi\x07"), "to_party", "contains control characters"),
    (row(model="92\x1bFS"), "model", "contains control characters"),
    ("R1,Beretta,92FS,sold\n", "", "4 fields where the header has 10"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "column", "reason"), BAD_ROWS)
async def test_each_bad_row_is_reported_and_not_stored(
    sqlite_node: Node, tmp_path: Path, line: str, column: str, reason: str
) -> None:
    good = row(serial_number="GOOD1")
    path = write(tmp_path, HEADER + good + line + good.replace("GOOD1", "GOOD2"))
    report = await sqlite_node.custody.imports.import_csv(path, ACTOR)
    assert (report.rows, report.created, report.rejected) == (3, 2, 1)
    assert [(e.line, e.column, e.reason) for e in report.errors] == [(3, column, reason)]
    assert await sqlite_node.custody.count() == 2


async def test_bytes_that_are_not_utf8_later_in_the_file_reject_that_row(
    sqlite_node: Node, tmp_path: Path
) -> None:
    # 2,000 good lines push the bad bytes past the encoding check at the start.
    good = "".join(row(serial_number=f"U{i}") for i in range(2000)).encode()
    body = HEADER.encode() + good + row(to_party="M\xfcller").encode("latin-1")
    report = await sqlite_node.custody.imports.import_csv(write(tmp_path, body), ACTOR)
    assert (report.created, report.rejected) == (2000, 1)
    assert [(e.line, e.column, e.reason) for e in report.errors] == [(2002, "", "not valid UTF-8")]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (HEADER.replace(",notes", ""), "missing required column(s): notes"),
        (HEADER.replace("\n", ",calibre\n"), "unknown column(s) 'calibre'; the columns are: "
         "serial_number, make, model, event, event_date, from_party, to_party, to_country, "
         "licence_reference, notes"),
        (HEADER.replace("to_country", "destination"), "unknown column(s) 'destination'"),
        (HEADER.replace("model", "make"), "column(s) named twice: make"),
        ("", "the file is empty"),
    ],
)  # fmt: skip
async def test_a_file_with_the_wrong_columns_is_refused_whole(
    sqlite_node: Node, tmp_path: Path, header: str, message: str
) -> None:
    path = write(tmp_path, header + (row() if header else ""))
    with pytest.raises(CsvFormatError) as info:
        await sqlite_node.custody.imports.import_csv(path, ACTOR)
    assert f"{path}: {message}" in str(info.value)
    assert await sqlite_node.custody.count() == 0


async def test_a_file_that_is_not_utf8_is_refused_whole(sqlite_node: Node, tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + row(to_party="Müller")).encode("cp1252"))
    with pytest.raises(CsvFormatError) as info:
        await sqlite_node.custody.imports.import_csv(path, ACTOR)
    assert str(info.value) == (
        f"{path}: not UTF-8 text (byte 0xfc on line 2); save the file as CSV UTF-8 and "
        "import it again"
    )
    assert await sqlite_node.custody.count() == 0


async def test_the_header_is_read_in_any_order_and_case(sqlite_node: Node, tmp_path: Path) -> None:
    columns = list(reversed(CUSTODY_COLUMNS))
    values = dict(zip(CUSTODY_COLUMNS, row().rstrip("\n").split(","), strict=True))
    text = "\ufeff" + ",".join(c.upper() for c in columns) + "\n"
    text += ",".join(values[c] for c in columns) + "\n"
    report = await sqlite_node.custody.imports.import_csv(write(tmp_path, text), ACTOR)
    assert report.created == 1


async def test_the_worker_process_gives_the_same_result(sqlite_node: Node, tmp_path: Path) -> None:
    body = (
        HEADER + CHAIN + row(event="lent") + "".join(row(serial_number=f"W{i}") for i in range(40))
    )
    path = write(tmp_path, body)
    seen: list[int] = []
    report = await sqlite_node.custody.imports.import_csv(
        path, ACTOR, progress=seen.append, batch_rows=10, worker_min_bytes=0
    )
    assert (report.rows, report.created, report.rejected) == (44, 43, 1)
    assert (report.errors[0].line, report.errors[0].column) == (5, "event")
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size and len(seen) == 5
    again = await sqlite_node.custody.imports.import_csv(path, ACTOR, worker_min_bytes=0)
    assert (again.created, again.duplicates) == (0, 43)


class _FailingStore:
    """The node's custody store, whose second batch meets a full disk."""

    def __init__(self, node: Node) -> None:
        self._store = CustodyStore(node.db)
        self.batches = 0

    async def add_many(
        self,
        batch: Sequence[tuple[Any, ...]],
        at: datetime,
        audit: Callable[[int], AuditEvent],
        counts: Counts,
    ) -> int:
        self.batches += 1
        if self.batches == 2:
            raise StorageFullError("/data", "No space left on device")
        return await self._store.add_many(batch, at, audit, counts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_failure_mid_import_keeps_the_stored_batches(
    sqlite_node: Node, tmp_path: Path
) -> None:
    failing = _FailingStore(sqlite_node)
    node = sqlite_node
    service = CustodyService(failing, node.audit_log, node.reference, node.clock)
    path = write(tmp_path, HEADER + "".join(row(serial_number=f"C{i}") for i in range(5)))
    with pytest.raises(StorageFullError) as info:
        await service.imports.import_csv(path, ACTOR, batch_rows=2)
    assert "the first 2 rows of custody.csv were imported (2 new custody events)" in str(info.value)
    assert await sqlite_node.custody.count() == 2
    again = await sqlite_node.custody.imports.import_csv(path, ACTOR, batch_rows=2)
    assert (again.created, again.duplicates) == (3, 2)
    assert (await sqlite_node.audit.verify()).ok


#: Values that are often valid, each column mixed with any text at all.
LIKELY = {
    "serial_number": st.from_regex(r"[A-Za-z0-9 -]{1,20}", fullmatch=True),
    "make": st.sampled_from(["Glock", "S&W", "Unknown Arms Ltd"]),
    "event": st.sampled_from([kind.value for kind in EventKind]),
    "event_date": st.dates(date(1790, 1, 1), date(2026, 2, 1)).map(date.isoformat),
    "to_country": st.sampled_from(["", "DEU", "ita"]),
}


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {c: st.one_of(LIKELY.get(c, st.text(max_size=80)), st.text()) for c in CUSTODY_COLUMNS}
    )
)
def test_any_row_is_stored_or_refused_naming_its_column(values: dict[str, str]) -> None:
    try:
        stored = custody_row(values, load_reference(), date(2026, 1, 1))
    except ValidationError as e:
        refused = e
    else:
        refused = None
    if refused is not None:
        assert refused.field in CUSTODY_COLUMNS
        assert str(refused).startswith(f"{refused.field}: ")
        return
    assert len(stored) == len(STORED_FIELDS)
    assert stored[STORED_FIELDS.index("serial_canonical")]
    assert EventKind(stored[STORED_FIELDS.index("event")])
    assert len(stored[-1]) == 32  # the row's digest
