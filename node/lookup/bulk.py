"""Reading a bulk lookup file: the serials (and makes) in a UTF-8 CSV with a header row.

Pure: bytes in, `Query`s out, or a `ValidationError` whose message starts with
the file's name (and, for a bad row, its line). The console's upload form and
`iarms-node lookup --bulk` both read files through `parse_bulk`, so a file is
accepted or refused the same way, with the same words, by both.
"""

from __future__ import annotations

import csv
import io

from node.errors import TooManySerialsError, ValidationError
from node.lookup.oprf import MAX_SERIAL_BYTES
from node.lookup.querier import MAX_SERIALS, Query
from node.lookup.text import check_chars
from node.records.serials import canonicalise_serial

#: The form field every error names (the console shows the message next to it).
FIELD = "file"


def _header(row: list[str] | None, name: str) -> tuple[int, int | None]:
    names = [column.strip().lower() for column in row or []]
    if "serial_number" not in names:
        raise ValidationError(
            f"{name}: the first line must be a header with a serial_number column "
            "(and, if you have them, a make column)",
            FIELD,
        )
    return names.index("serial_number"), names.index("make") if "make" in names else None


def _check_row(serial: str, make: str, line: int, name: str) -> None:
    for column, value in (("serial_number", serial), ("make", make)):
        try:
            check_chars(column, value, f"{name}: line {line}: ")
        except ValidationError as e:
            raise ValidationError(str(e), FIELD) from None
    canonical = canonicalise_serial(serial)
    if not canonical or len(canonical.encode()) > MAX_SERIAL_BYTES:
        raise ValidationError(
            f"{name}: line {line}: {serial[:80]!r} is not a serial number "
            f"(it needs letters or digits, at most {MAX_SERIAL_BYTES} bytes)",
            FIELD,
        )


def parse_bulk(data: bytes, name: str = FIELD) -> list[Query]:
    """The serials (and makes) of a bulk lookup file, in file order; blank serials skipped.

    Args:
        data: the file's bytes: UTF-8 (a BOM is fine), a header row naming a
            `serial_number` column and optionally a `make` column, any case.
        name: how messages name the file: the form field, or the path given.

    Raises:
        TooManySerialsError: more than `MAX_SERIALS` serials (it counts them all).
        ValidationError: not UTF-8, no header, a bad row (with its line), no serials.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValidationError(
            f"{name}: it is not UTF-8 text (byte {e.start}); save it as CSV UTF-8", FIELD
        ) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    queries: list[Query] = []
    count = 0
    try:
        serial_at, make_at = _header(next(reader, None), name)
        for row in reader:
            serial = row[serial_at].strip() if serial_at < len(row) else ""
            if not serial:
                continue
            count += 1
            if count > MAX_SERIALS:
                continue  # only counted, for the message
            make = row[make_at].strip() if make_at is not None and make_at < len(row) else ""
            _check_row(serial, make, reader.line_num, name)
            queries.append(Query(serial, make))
    except csv.Error as e:
        raise ValidationError(
            f"{name}: line {reader.line_num} is not valid CSV ({e})", FIELD
        ) from e
    if count > MAX_SERIALS:
        raise TooManySerialsError(
            f"{name}: more than {MAX_SERIALS} serials; split it into smaller files", count
        )
    if not queries:
        raise ValidationError(f"{name}: it has no serial numbers under its header", FIELD)
    return queries
