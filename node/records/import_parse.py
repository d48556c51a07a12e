"""Reading and validating a records CSV in batches, in this process or in a worker.

Parsing and normalising a row costs about as much CPU as SQLite spends
storing it, so a large import parses in a worker process while the node's
process writes: the two cores work at once. Everything here is free of I/O
other than reading the file, and light to import (no SQLAlchemy, no aiohttp),
so that the worker starts quickly.

The worker is `python -m node.records.import_parse PATH TODAY BATCH_ROWS`,
started by the importer. It writes framed messages to standard output, each
a 4-byte big-endian length and a pickle of `(kind, payload)`:
`("batch", ParsedBatch)` any number of times, then `("done", None)`; or
`("format", message)` when the file cannot be read at all. A crash ends it
with a traceback on standard error. The pipe is the backpressure: the worker
waits while the writer stores the previous batch, so memory stays bounded.
Pickle is safe here because both ends are this program.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from node.errors import CsvFormatError, ValidationError
from node.records.csvio import CsvRow, RecordCsvReader
from node.records.model import ImportRowError, NewRecord, new_record_row
from node.records.normalise import normalise_record, record_input
from node.records.reference import ReferenceTable, load_reference


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """Valid records (with their dedupe keys) and rejected rows from one stretch of a file."""

    records: list[tuple[Any, ...]]  # `new_record_row` + dedupe key
    errors: list[ImportRowError]
    rows: int
    bytes_read: int


def dedupe_key(new: NewRecord) -> str:
    """The import identity of a record: `ext:<external_id>`, else `row:<hash of key fields>`.

    The hash covers the canonical serial, make, type, status, event date,
    reporting agency and case reference.
    """
    if new.external_id:
        return f"ext:{new.external_id}"
    parts = (
        new.serial_canonical,
        new.make,
        new.firearm_type,
        new.status.value,
        new.event_date.isoformat() if new.event_date else "",
        new.reporting_agency,
        new.case_reference,
    )
    return "row:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _check(row: CsvRow, reference: ReferenceTable, today: date) -> NewRecord | ImportRowError:
    if row.fault:
        return ImportRowError(row.line, "", row.fault)
    try:
        return normalise_record(record_input(row.values), reference, today)
    except ValidationError as e:
        column = e.field or ""
        return ImportRowError(row.line, column, str(e).removeprefix(f"{column}: "))


def parse_batches(
    reader: RecordCsvReader, reference: ReferenceTable, today: date, batch_rows: int
) -> Iterator[ParsedBatch]:
    """Validate every row of `reader`, yielding a batch per `batch_rows` rows read."""
    records: list[tuple[Any, ...]] = []
    errors: list[ImportRowError] = []
    rows = 0
    for row in reader:
        rows += 1
        checked = _check(row, reference, today)
        if isinstance(checked, ImportRowError):
            errors.append(checked)
        else:
            records.append((*new_record_row(checked), dedupe_key(checked)))
        if rows == batch_rows:
            yield ParsedBatch(records, errors, rows, reader.bytes_read)
            records, errors, rows = [], [], 0
    if rows:
        yield ParsedBatch(records, errors, rows, reader.bytes_read)


def _send(out: BinaryIO, kind: str, payload: object) -> None:
    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(4, "big") + data)
    out.flush()


def main(argv: list[str]) -> int:
    """The worker process (see the module docstring)."""
    path, today, batch_rows = argv
    out = sys.stdout.buffer
    try:
        reader = RecordCsvReader(Path(path))
    except CsvFormatError as e:
        _send(out, "format", str(e))
        return 0
    try:
        reference = load_reference()
        for batch in parse_batches(reader, reference, date.fromisoformat(today), int(batch_rows)):
            _send(out, "batch", batch)
        _send(out, "done", None)
    finally:
        reader.close()
    return 0


if __name__ == "__main__":
    # Run through the module's own name, so pickles name `node.records.import_parse`
    # classes (not `__main__` ones) and the parent can load them.
    from node.records import import_parse

    sys.exit(import_parse.main(sys.argv[1:]))
