"""CSV files: reading with per-row validation, writing records without formula injection.

Import format: UTF-8 (a byte-order mark is allowed), a header row naming the
columns in any order, one record (or custody event) per row. The columns are
those of the kind of file read (`node.records.import_parse.RowKind`): for
records `CSV_COLUMNS`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from node.errors import CsvFormatError
from node.records.model import CSV_COLUMNS, FirearmRecord

#: A field longer than this is almost surely an unclosed quote swallowing the file.
MAX_CSV_FIELD = 1 << 20
csv.field_size_limit(MAX_CSV_FIELD)

#: Spreadsheets run a cell starting with one of these as a formula (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SNIFF_BYTES = 1 << 16
_SURROGATE = re.compile("[\udc80-\udcff]")


def neutralise(value: str) -> str:
    """Prefix a value that a spreadsheet would run as a formula with an apostrophe."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def unneutralise(value: str) -> str:
    """Undo `neutralise`, so that an exported file imports to the same values."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: its first physical line, its values by column, and any decoding fault."""

    line: int
    values: dict[str, str]
    fault: str | None = None


class CsvReader:
    """Streams the rows of a CSV file; header problems raise CsvFormatError at open.

    Args:
        path: the file.
        columns: the column names a header may hold (in any order).
        required: those it must hold.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], required: frozenset[str]) -> None:
        self.path = path
        self._known, self._required = columns, required
        try:
            self.size = path.stat().st_size
            self._file: IO[bytes] = path.open("rb")
        except OSError as e:
            raise CsvFormatError(f"{path}: cannot read the file ({e.strerror})") from e
        if self.size == 0:
            self._file.close()
            raise CsvFormatError(f"{path}: the file is empty (a header row is required)")
        self._check_encoding()
        # Bytes that are not UTF-8 further on become lone surrogates, so that the
        # one row holding them is refused and the rest of the file still imports.
        self._text = io.TextIOWrapper(
            self._file, encoding="utf-8", errors="surrogateescape", newline=""
        )
        self._reader = csv.reader(self._text)
        self.columns = self._read_header()

    def _check_encoding(self) -> None:
        head = self._file.read(_SNIFF_BYTES)
        self._file.seek(0)
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError as e:
            line = head[: e.start].count(b"\n") + 1
            raise CsvFormatError(
                f"{self.path}: not UTF-8 text (byte 0x{head[e.start]:02x} on line {line}); "
                "save the file as CSV UTF-8 and import it again"
            ) from e
        if b"\x00" in head:
            raise CsvFormatError(f"{self.path}: holds NUL bytes; it is not a text CSV file")

    @property
    def bytes_read(self) -> int:
        """How far into the file reading has got (for progress bars)."""
        return self._file.tell() if not self._file.closed else self.size

    def _read_header(self) -> tuple[str, ...]:
        try:
            header = next(self._reader)
        except (StopIteration, csv.Error) as e:
            raise CsvFormatError(f"{self.path}: no readable header row") from e
        names = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
        if not any(names):
            raise CsvFormatError(
                f"{self.path}: the first line must be a header row of column names"
            )
        unknown = [n for n in names if n not in self._known]
        if unknown:
            raise CsvFormatError(
                f"{self.path}: unknown column(s) {', '.join(repr(u) for u in unknown)}; "
                f"the columns are: {', '.join(self._known)}"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CsvFormatError(f"{self.path}: column(s) named twice: {', '.join(repeated)}")
        missing = sorted(self._required - set(names))
        if missing:
            raise CsvFormatError(f"{self.path}: missing required column(s): {', '.join(missing)}")
        return tuple(names)

    def __iter__(self) -> Iterator[CsvRow]:
        """Each data row; blank lines are skipped. A malformed tail ends with a faulty row."""
        width = len(self.columns)
        columns = self.columns
        while True:
            start = self._reader.line_num + 1
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield CsvRow(start, {}, f"malformed CSV ({e}); the rest of the file was not read")
                return
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            joined = "".join(fields)
            if not joined.isascii() and _SURROGATE.search(joined):
                yield CsvRow(start, {}, "not valid UTF-8")
            elif len(fields) != width:
                yield CsvRow(start, {}, f"{len(fields)} fields where the header has {width}")
            elif "'" in joined:
                yield CsvRow(start, dict(zip(columns, map(unneutralise, fields), strict=True)))
            else:
                yield CsvRow(start, dict(zip(columns, fields, strict=True)))

    def close(self) -> None:
        """Close the file."""
        self._text.close()


class RecordCsvWriter:
    """Writes records as CSV, header first, with formulas neutralised."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(CSV_COLUMNS)
        self.count = 0

    def write(self, record: FirearmRecord) -> None:
        """Write one record."""
        row = record.to_row()
        self._writer.writerow([neutralise(row[name]) for name in CSV_COLUMNS])
        self.count += 1
