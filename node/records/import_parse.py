"""Reading and validating a records CSV in batches, in this process or in a worker.

Parsing and normalising a row costs about as much CPU as SQLite spends
storing it, so a large import parses in a worker process while the node's
process writes: the two cores work at once. Everything here is free of I/O
other than reading the file, and light to import (no SQLAlchemy, no aiohttp),
so that the worker starts quickly.

The worker is `python -m node.records.import_parse PATH TODAY BATCH_ROWS`,
started by the importer. It writes framed messages to standard output, each
a 4-byte big-endian length and the MessagePack of `[kind, payload]`:
`["batch", [records, errors, rows, bytes_read]]` any number of times, then
`["done", nil]`; or `["format", message]` when the file cannot be read at
all. A crash ends it with a traceback on standard error. The pipe is the
backpressure: the worker waits while the writer stores the previous batch,
so memory stays bounded. `read_frame` decodes a frame back into typed
values (a record row's dates are dates again) with msgspec, a twentieth of
pickle's cost.
"""

from __future__ import annotations

import hashlib
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import GenericAlias
from typing import Any, BinaryIO

import msgspec

from node.errors import CsvFormatError, ImportWorkerError, ValidationError
from node.records.csvio import CsvRow, RecordCsvReader
from node.records.model import ImportRowError, NewRecord, Status, new_record_row
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


#: The type of a batch's record row: `new_record_row`'s (status as text), then the dedupe key.
_ROW = GenericAlias(
    tuple, (*(str if t is Status else t for t in typing.get_type_hints(NewRecord).values()), str)
)
_frame = msgspec.msgpack.Decoder(tuple[str, msgspec.Raw])
#: A batch frame's payload: `[records, errors, rows, bytes_read]`.
_batch = msgspec.msgpack.Decoder(
    GenericAlias(tuple, (GenericAlias(list, _ROW), list[ImportRowError], int, int))
)
_encoder = msgspec.msgpack.Encoder()


def read_frame(data: bytes) -> tuple[str, ParsedBatch | str | None]:
    """A worker's frame (without its length) as `(kind, payload)`: a batch, a message, or None.

    Raises:
        ImportWorkerError: not a frame of this module's worker.
    """
    try:
        kind, payload = _frame.decode(data)
        if kind == "batch":
            return kind, ParsedBatch(*_batch.decode(payload))
        return kind, msgspec.msgpack.decode(payload, type=str | None)
    except msgspec.DecodeError as e:
        raise ImportWorkerError(f"the import worker sent an unreadable frame: {e}") from e


def _send(out: BinaryIO, kind: str, payload: object) -> None:
    data = _encoder.encode((kind, payload))
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
            _send(out, "batch", (batch.records, batch.errors, batch.rows, batch.bytes_read))
        _send(out, "done", None)
    finally:
        reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
