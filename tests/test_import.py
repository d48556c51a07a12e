"""CSV import and export: bad rows reported, good rows kept, nothing duplicated."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import msgspec
import pytest

from node.app import Node
from node.errors import CsvFormatError
from node.records.csvio import RecordCsvWriter, neutralise, unneutralise
from node.records.import_parse import ParsedBatch, RowKind, parse_batches
from node.records.model import CSV_COLUMNS
from node.records.record_rows import RECORD_ROWS
from node.records.reference import load_reference
from node.records.service import FilterText
from node.trace.custody_rows import CUSTODY_ROWS

HEADER = "serial_number,make,firearm_type,status,calibre,event_date,external_id,notes\n"
ACTOR = "cli:test"


def write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


async def test_bad_rows_are_reported_and_good_rows_stored(node: Node, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + (
            "AB1,Glock,pistol,stolen,9mm,2024-01-02,E1,\n"
            "AB2,Glock,pistol,borrowed,9mm,2024-01-02,E2,\n"  # line 3: unknown status
            "AB3,Beretta,pistol,lost,9mm,2024-02-30,E3,\n"  # line 4: impossible date
            ",Beretta,pistol,lost,9mm,,E4,\n"  # line 5: no serial
            "AB5,Beretta,pistol,lost\n"  # line 6: too few fields
            "\n"  # blank: skipped
            'AB6,CZ,pistol,found,9mm,,E6,"two\nlines"\n'  # lines 8-9: fine
        ),
    )
    report = await node.imports.import_csv(path, ACTOR)
    assert (report.rows, report.created, report.rejected, report.duplicates) == (6, 2, 4, 0)
    reasons = {(e.line, e.column): e.reason for e in report.errors}
    assert reasons[(3, "status")].startswith("'borrowed' is not one of lost, stolen")
    assert reasons[(4, "event_date")] == "'2024-02-30' is not a date in the form YYYY-MM-DD"
    assert reasons[(5, "serial_number")].startswith("required")
    assert reasons[(6, "")] == "4 fields where the header has 8"
    page = await node.records.search(node.records.parse_filter(FilterText()), ACTOR)
    assert sorted(r.serial_number for r in page.records) == ["AB1", "AB6"]
    assert [r.notes for r in page.records if r.serial_number == "AB6"] == ["two\nlines"]


async def test_reimport_does_not_duplicate(node: Node, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "serial_number,make,firearm_type,status\n"
        "X1,Glock,pistol,stolen\nX2,Glock,pistol,stolen\nX1,Glock,pistol,stolen\n",
    )
    first = await node.imports.import_csv(path, ACTOR, batch_rows=2)
    assert (first.created, first.duplicates) == (2, 1)
    second = await node.imports.import_csv(path, ACTOR)
    assert (second.created, second.duplicates) == (0, 3)
    assert await node.records.count() == 2
    assert (await node.audit.verify()).ok


async def test_external_id_is_the_dedupe_key(sqlite_node: Node, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "serial_number,make,firearm_type,status,external_id\n"
        "S1,Glock,pistol,stolen,A\nS1,Glock,pistol,stolen,B\nS9,Glock,pistol,lost,A\n",
    )
    report = await sqlite_node.imports.import_csv(path, ACTOR)
    assert (report.created, report.duplicates) == (2, 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "header row"),
        (b"serial_number,make,firearm_type\nA,B,pistol\n", "missing required column(s): status"),
        (b"serial,make,firearm_type,status\n", "unknown column(s) 'serial'"),
        (b"serial_number,make,make,firearm_type,status\n", "column(s) named twice: make"),
        (
            "serial_number,make,firearm_type,status\nA,Walther,pistol,stolen,é\n".encode("latin-1"),
            "not UTF-8 text (byte 0xe9 on line 2)",
        ),
        (b"\x00\x01\x02binary", "NUL bytes"),
    ],
)
async def test_unreadable_files_are_refused_whole(
    sqlite_node: Node, tmp_path: Path, content: bytes, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(CsvFormatError) as info:
        await sqlite_node.imports.import_csv(path, ACTOR)
    assert message in str(info.value)
    assert await sqlite_node.records.count() == 0


async def test_bom_and_header_case_are_accepted(sqlite_node: Node, tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffSerial_Number, Make ,FIREARM_TYPE,status\nQ1,Glock,pistol,lost\n")
    report = await sqlite_node.imports.import_csv(path, ACTOR)
    assert report.created == 1


async def test_huge_field_and_bad_bytes_later_in_file(sqlite_node: Node, tmp_path: Path) -> None:
    # 3,000 good lines push the bad bytes past the encoding sniff at the start.
    body = (
        b"serial_number,make,firearm_type,status,notes\n"
        + b"OK1,Glock,pistol,lost,\n" * 3000
        + b"H1,Glock,pistol,lost,"
        + b"x" * 5000
        + b"\n"
        + b"H2,Gl\xffck,pistol,lost,\n"
    )
    report = await sqlite_node.imports.import_csv(write(tmp_path, body), ACTOR)
    assert report.created == 1  # OK1 repeated is one record (same dedupe key)
    assert report.duplicates == 2999
    reasons = {e.line: (e.column, e.reason) for e in report.errors}
    assert reasons[3002] == ("notes", "5000 characters, at most 2000 allowed")
    assert reasons[3003] == ("", "not valid UTF-8")


async def test_unclosed_quote_stops_with_a_clear_row_error(
    sqlite_node: Node, tmp_path: Path
) -> None:
    body = "serial_number,make,firearm_type,status,notes\n"
    body += 'U1,Glock,pistol,lost,ok\nU2,Glock,pistol,lost,"open\n'
    body += ("y" * 1000 + "\n") * 1100
    report = await sqlite_node.imports.import_csv(write(tmp_path, body), ACTOR)
    assert report.created == 1
    assert report.errors[-1].line == 3
    assert "malformed CSV" in report.errors[-1].reason


async def test_export_neutralises_formulas_and_round_trips(node: Node, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "serial_number,make,firearm_type,status,notes,external_id\n"
        'F1,Glock,pistol,lost,"=HYPERLINK(""http://x"")",e1\n'
        "F2,Glock,pistol,lost,+1 plain,e2\n",
    )
    await node.imports.import_csv(path, ACTOR)
    out = io.StringIO()
    writer = RecordCsvWriter(out)
    async for record in node.records.export(node.records.parse_filter(FilterText()), ACTOR):
        writer.write(record)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert rows[0]["notes"] == '\'=HYPERLINK("http://x")'
    assert rows[1]["notes"] == "'+1 plain"
    assert rows[0]["recovered_on"] == ""
    exported = write(tmp_path, out.getvalue(), "out.csv")
    again = await node.imports.import_csv(exported, ACTOR)
    assert (again.created, again.duplicates) == (0, 2)


@pytest.mark.parametrize("value", ["=1+1", "+x", "-2", "@SUM(A1)", "\tx", "plain", "'quoted"])
def test_neutralise_round_trip(value: str) -> None:
    assert unneutralise(neutralise(value)) == value
    assert not neutralise(value).startswith(("=", "+", "-", "@", "\t"))


async def test_worker_process_gives_the_same_result(sqlite_node: Node, tmp_path: Path) -> None:
    """Large files are parsed in a worker process; force it on a small one."""
    path = write(
        tmp_path,
        HEADER + "W1,Glock,pistol,stolen,9mm,2024-01-02,W1,\n"
        "W2,Glock,pistol,mislaid,9mm,,W2,\n"
        + "".join(f"W{i},CZ,pistol,lost,,,W{i},\n" for i in range(3, 50)),
    )
    seen: list[int] = []
    report = await sqlite_node.imports.import_csv(
        path, ACTOR, progress=seen.append, batch_rows=10, worker_min_bytes=0
    )
    assert (report.rows, report.created, report.rejected) == (49, 48, 1)
    assert report.errors[0].line == 3 and report.errors[0].column == "status"
    assert seen[-1] == path.stat().st_size and seen == sorted(seen) and len(seen) == 5
    again = await sqlite_node.imports.import_csv(path, ACTOR, worker_min_bytes=0)
    assert (again.created, again.duplicates) == (0, 48)


_RECORDS_CSV = (
    "serial_number,make,firearm_type,status,event_date,recovered_on,country_of_manufacture\n"
    "D1,Glock,pistol,recovered,2024-01-02,2024-03-04,AUT\n"
    "D2,CZ,rifle,lost,,,\n"
    "D3,Beretta,pistol,mislaid,2023-05-06,,\n"
)
_CUSTODY_CSV = (
    "serial_number,make,model,event,event_date,from_party,to_party,to_country,"
    "licence_reference,notes\n"
    "D1,Glock,17,exported,2024-01-02,Shop,Buyer,AUT,L-1,\n"
    "D2,CZ,75,sold,2024-02-03,Shop,Buyer,,,\n"
    "D3,Beretta,92,exported,2024-02-03,Shop,Buyer,,,\n"
)


@pytest.mark.parametrize(
    ("kind", "text"),
    [(RECORD_ROWS, _RECORDS_CSV), (CUSTODY_ROWS, _CUSTODY_CSV)],
    ids=["records", "custody"],
)
def test_the_worker_sends_batches_that_decode_to_the_rows_parsed_here(
    kind: RowKind, text: str, tmp_path: Path
) -> None:
    """What the worker writes (MessagePack) decodes, by the kind's typed decoder, to the
    rows, errors and counts the parser made: dates as dates, None as None, bytes as bytes."""
    reader = kind.reader(write(tmp_path, text))
    try:
        batches = list(parse_batches(reader, kind, load_reference(), date(2025, 1, 1), 2))
    finally:
        reader.close()
    assert [(len(b.records), len(b.errors)) for b in batches] == [(2, 0), (0, 1)]
    for batch in batches:
        sent = kind.decoder.decode(msgspec.msgpack.encode(batch))
        assert isinstance(sent, ParsedBatch)
        assert (sent.records, sent.errors, sent.rows, sent.bytes_read, sent.counts) == (
            batch.records,
            batch.errors,
            batch.rows,
            batch.bytes_read,
            batch.counts,
        )
        assert [list(map(type, r)) for r in sent.records] == [
            list(map(type, r)) for r in batch.records
        ]


async def test_worker_process_reports_an_unreadable_file(sqlite_node: Node, tmp_path: Path) -> None:
    path = write(tmp_path, b"serial,make\nx,y\n")
    with pytest.raises(CsvFormatError, match="unknown column"):
        await sqlite_node.imports.import_csv(path, ACTOR, worker_min_bytes=0)
