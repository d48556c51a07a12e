"""A records CSV row, validated and normalised: the row kind the CSV importer reads.

Pure and light (no I/O, no SQLAlchemy): the import's worker process loads it
by `RECORD_ROWS.address`, parses each row into what the store inserts
(`record_row`) and counts each batch for `record_counts` (`count_records`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from operator import add, itemgetter
from typing import Any

from node.records.import_parse import Counts, RowKind, row_type
from node.records.model import (
    CSV_COLUMNS,
    NEW_RECORD_FIELDS,
    REQUIRED_COLUMNS,
    NewRecord,
    model_key,
)
from node.records.normalise import input_fields, normalised_row
from node.records.reference import ReferenceTable

_MODEL, _SERIAL, _MAKE, _TYPE, _STATUS, _EVENT, _AGENCY, _CASE, _EXTERNAL = map(
    NEW_RECORD_FIELDS.index,
    (
        "model",
        "serial_canonical",
        "make",
        "firearm_type",
        "status",
        "event_date",
        "reporting_agency",
        "case_reference",
        "external_id",
    ),
)


def dedupe_key(row: tuple[Any, ...]) -> str:
    """The import identity of a record (a `new_record_row`): `ext:<external_id>`, else
    `row:<hash of key fields>`.

    The hash covers the canonical serial, make, type, status, event date,
    reporting agency and case reference.
    """
    if row[_EXTERNAL]:
        return f"ext:{row[_EXTERNAL]}"
    event = row[_EVENT]
    parts = (
        row[_SERIAL],
        row[_MAKE],
        row[_TYPE],
        row[_STATUS],
        event.isoformat() if event else "",
        row[_AGENCY],
        row[_CASE],
    )
    return "row:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def record_row(
    values: Mapping[str, str], reference: ReferenceTable, today: date
) -> tuple[Any, ...]:
    """A records CSV row as `new_record_row` makes it, followed by its model key and its
    dedupe key (what the store inserts)."""
    row = normalised_row(input_fields(values), reference, today)
    return (*row, model_key(row[_MODEL]), dedupe_key(row))


_UNDATED = "0000-00"  # no month a record can have (events are from 1800 on)


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def count_records(rows: Sequence[tuple[Any, ...]]) -> Counts:
    """What `record_row`s add to `record_counts` (`node.store.stats`) once stored: by make,
    calibre, country of manufacture ("" for none) and `TYPE/STATUS`, in the month of the
    event date ("": the month of recording, for a record without one); `recovered` (value
    "") in the month of recovery. In the order of the table's key, in which SQLite upserts
    a batch's counts in two thirds of the time.

    Column by column, so that the counting runs in C, keyed by value and month in one
    string (month last, 7 characters: `_UNDATED` for none).
    """

    def column(name: str) -> list[Any]:
        return list(map(itemgetter(NEW_RECORD_FIELDS.index(name)), rows))

    months: dict[date | None, str] = {None: _UNDATED}
    month = [months.get(d) or months.setdefault(d, _month(d)) for d in column("event_date")]
    types, status = column("firearm_type"), column("status")
    countries = [country or "" for country in column("country_of_manufacture")]
    by_dimension = {  # in the order of their names
        "calibre": Counter(map(add, column("calibre"), month)),
        "country": Counter(map(add, countries, month)),
        "make": Counter(map(add, column("make"), month)),
        "recovered": Counter(
            _month(day)
            for state, day in zip(status, column("recovered_on"), strict=True)
            if state == "recovered" and day is not None
        ),
        "type_status": Counter(map("{}/{}{}".format, types, status, month)),
    }
    return [
        (dimension, key[:-7], "" if key.endswith(_UNDATED) else key[-7:], n)
        for dimension, counts in by_dimension.items()
        for key, n in sorted(counts.items())
    ]


RECORD_ROWS = RowKind(
    "node.records.record_rows:RECORD_ROWS",
    "records",
    CSV_COLUMNS,
    REQUIRED_COLUMNS,
    record_row,
    row_type(NewRecord, NEW_RECORD_FIELDS, str, str),
    count_records,
)
