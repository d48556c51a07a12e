"""Reading and validating a CSV file in batches, in this process or in a worker.

What a file holds is its `RowKind`: its columns, the parser that turns one
row into the tuple its store inserts (records:
`node.records.record_rows.RECORD_ROWS`; custody events:
`node.trace.custody_rows.CUSTODY_ROWS`), that tuple's type, and what a batch of
them adds to the store's aggregates. The
batching, the worker and the per-row error report are the same for every kind.

Parsing and normalising a row costs about as much CPU as SQLite spends
storing it, so a large import parses in a worker process while the node's
process writes: the two cores work at once. Everything here is free of I/O
other than reading the file, and light to import (no SQLAlchemy, no aiohttp),
so that the worker starts quickly.

The worker is `python -m node.records.import_parse KIND PATH TODAY BATCH_ROWS`,
started by the importer; KIND is the row kind's `address`. It writes framed
messages to standard output, each a 4-byte big-endian length and a MessagePack
`WorkerMessage`: a `ParsedBatch` any number of times, then `Parsed`; or
`Unreadable` when the file cannot be read at all. A crash ends it with a
traceback on standard error. The parent decodes each message with the row
kind's typed decoder (`RowKind.decoder`): its rows come out as the parser made
them (dates as dates), and a row of another shape is refused. MessagePack
costs a tenth of what pickling the rows did (dates pickle one by one). The
pipe is the backpressure: the worker waits while the writer stores the
previous batch, so memory stays bounded.
"""

from __future__ import annotations

import enum
import importlib
import sys
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from node.errors import CsvFormatError, ValidationError
from node.records.csvio import CsvReader, CsvRow
from node.records.model import ImportRowError
from node.records.reference import ReferenceTable, load_reference

#: Turns one row's values (by column) into the tuple its store inserts, the row's dedupe
#: key last; a bad row raises ValidationError naming its field.
RowParser = Callable[[Mapping[str, str], ReferenceTable, date], tuple[Any, ...]]
#: What a batch's rows add to their store's aggregates once stored, all of them new:
#: (dimension, value, month, n), month "" for the month the batch is stored in.
Counts = list[tuple[str, str, str, int]]


class ParsedBatch(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """Valid rows (as their store inserts them) and rejected rows from one stretch of a file."""

    records: list[tuple[Any, ...]]
    errors: list[ImportRowError]
    rows: int
    bytes_read: int
    #: What `records` add to the store's aggregates if all are new (`RowKind.count`).
    counts: Counts


class Parsed(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The worker's last message: every row was sent."""


class Unreadable(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The worker's only message when the file cannot be read at all (CsvFormatError)."""

    message: str


WorkerMessage = ParsedBatch | Parsed | Unreadable


def row_type(record: type, names: Sequence[str], *tail: type) -> Any:
    """The type of the tuples a `RowParser` makes: the types of fields `names` of the
    dataclass `record` (an enum as its text), then the types `tail` (of what the parser
    adds, the dedupe key last)."""
    hints = typing.get_type_hints(record)
    types = [
        str if isinstance(t, type) and issubclass(t, enum.Enum) else t
        for t in (hints[name] for name in names)
    ]
    return tuple.__class_getitem__((*types, *tail))


@dataclass(frozen=True)
class RowKind:
    """One kind of CSV import: its columns, how a row becomes what its store inserts, and
    the type of that (`row_type`), by which the parent decodes the worker's batches."""

    #: Where the worker process finds this kind: `module:NAME`.
    address: str
    #: What the rows are, for messages ("records", "custody events").
    noun: str
    columns: tuple[str, ...]
    required: frozenset[str]
    parse: RowParser
    row: Any
    #: Counts a batch's valid rows for the store's aggregates (`Counts`), if it keeps any.
    count: Callable[[list[tuple[Any, ...]]], Counts] | None = None

    def reader(self, path: Path) -> CsvReader:
        """A reader of `path` that checks its header against this kind's columns."""
        return CsvReader(path, self.columns, self.required)

    @cached_property
    def decoder(self) -> msgspec.msgpack.Decoder[Any]:
        """Decodes a `WorkerMessage` whose batch holds rows of this kind (`row`)."""

        batch = msgspec.defstruct(
            "ParsedBatch",
            [("records", list.__class_getitem__(self.row))],
            bases=(ParsedBatch,),
            frozen=True,
            array_like=True,
            tag=True,
        )
        return msgspec.msgpack.Decoder(batch | Parsed | Unreadable)


def _check(
    row: CsvRow, kind: RowKind, reference: ReferenceTable, today: date
) -> tuple[Any, ...] | ImportRowError:
    if row.fault:
        return ImportRowError(row.line, "", row.fault)
    try:
        return kind.parse(row.values, reference, today)
    except ValidationError as e:
        column = e.field or ""
        return ImportRowError(row.line, column, str(e).removeprefix(f"{column}: "))


def parse_batches(
    reader: CsvReader, kind: RowKind, reference: ReferenceTable, today: date, batch_rows: int
) -> Iterator[ParsedBatch]:
    """Validate every row of `reader` as `kind`, yielding a batch per `batch_rows` rows read."""
    records: list[tuple[Any, ...]] = []
    errors: list[ImportRowError] = []
    rows = 0
    for row in reader:
        rows += 1
        checked = _check(row, kind, reference, today)
        if isinstance(checked, ImportRowError):
            errors.append(checked)
        else:
            records.append(checked)
        if rows == batch_rows:
            yield _batch(kind, records, errors, rows, reader.bytes_read)
            records, errors, rows = [], [], 0
    if rows:
        yield _batch(kind, records, errors, rows, reader.bytes_read)


def _batch(
    kind: RowKind,
    records: list[tuple[Any, ...]],
    errors: list[ImportRowError],
    rows: int,
    bytes_read: int,
) -> ParsedBatch:
    counts = kind.count(records) if kind.count and records else []
    return ParsedBatch(records, errors, rows, bytes_read, counts)


def find_kind(address: str) -> RowKind:
    """The row kind at `module:NAME` (the worker is told which by its parent)."""
    module, _, name = address.partition(":")
    kind = getattr(importlib.import_module(module), name, None)
    if not isinstance(kind, RowKind):
        raise TypeError(f"{address} is not a row kind")
    return kind


def _send(out: BinaryIO, message: WorkerMessage) -> None:
    data = msgspec.msgpack.encode(message)
    out.write(len(data).to_bytes(4, "big") + data)
    out.flush()


def main(argv: list[str]) -> int:
    """The worker process (see the module docstring)."""
    address, path, today, batch_rows = argv
    kind = find_kind(address)
    out = sys.stdout.buffer
    try:
        reader = kind.reader(Path(path))
    except CsvFormatError as e:
        _send(out, Unreadable(str(e)))
        return 0
    try:
        reference = load_reference()
        day = date.fromisoformat(today)
        for batch in parse_batches(reader, kind, reference, day, int(batch_rows)):
            _send(out, batch)
        _send(out, Parsed())
    finally:
        reader.close()
    return 0


if __name__ == "__main__":
    # Through the module's own name, so that the row kind's module imports this module's
    # `RowKind` (not a `__main__` copy of it).
    from node.records import import_parse

    sys.exit(import_parse.main(sys.argv[1:]))
