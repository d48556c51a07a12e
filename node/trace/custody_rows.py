"""A custody CSV row, validated and normalised: the row kind the CSV importer reads.

Pure and light (no I/O, no SQLAlchemy): the import's worker process loads it
by `CUSTODY_ROWS.address`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from typing import Any

from node.countries import check_alpha3
from node.errors import ValidationError
from node.records.import_parse import RowKind, row_type
from node.records.model import MAX_FIELD_CHARS, MAX_SERIAL_CHARS
from node.records.normalise import EARLIEST_EVENT, check_text, parse_choice, parse_date
from node.records.reference import ReferenceTable
from node.records.serials import canonicalise_serial
from node.trace.model import (
    CUSTODY_COLUMNS,
    MAX_LICENCE_CHARS,
    MAX_MAKE_CHARS,
    MAX_MODEL_CHARS,
    MAX_PARTY_CHARS,
    STORED_FIELDS,
    CustodyEvent,
    EventKind,
)

_EVENT_LIST = ", ".join(kind.value for kind in EventKind)


def parse_event(text: str) -> EventKind:
    """An event kind from user text (case-insensitive) or a ValidationError listing the kinds."""
    try:
        return EventKind(text.strip().lower())
    except ValueError:
        raise ValidationError(
            f"event: {text.strip()!r} is not one of {_EVENT_LIST}", "event"
        ) from None


def _event_date(text: str, today: date) -> date:
    day = parse_date(text, "event_date")
    if day is None:
        raise ValidationError("event_date: required (YYYY-MM-DD)", "event_date")
    if day > today:
        raise ValidationError(f"event_date: {day.isoformat()} is in the future", "event_date")
    if day < EARLIEST_EVENT:
        raise ValidationError(f"event_date: {day.isoformat()} is before 1800", "event_date")
    return day


def _to_country(text: str, event: EventKind) -> str | None:
    code = text.strip().upper()
    if code:
        return check_alpha3(code, "to_country")
    if event is EventKind.EXPORTED:
        raise ValidationError(
            "to_country: required for an exported firearm (the country it went to)", "to_country"
        )
    return None


def custody_row(
    values: Mapping[str, str], reference: ReferenceTable, today: date
) -> tuple[Any, ...]:
    """A custody CSV row as the store inserts it (`model.STORED_FIELDS`).

    The row's digest, its dedupe key, is the SHA-256 of the event as stored
    but for the serial and make as entered: the canonical serial and make key
    stand for them, so a re-import spelt differently stores nothing twice.

    Raises:
        ValidationError: naming the first bad field.
    """
    serial = check_text(values["serial_number"], "serial_number", MAX_SERIAL_CHARS)
    canonical = canonicalise_serial(serial)
    if not canonical:
        raise ValidationError(
            "serial_number: required, with at least one letter or digit", "serial_number"
        )
    make = check_text(values["make"], "make", MAX_MAKE_CHARS)
    make_key = reference.make_key(make)
    if not make_key:
        raise ValidationError("make: required, with at least one letter or digit", "make")
    model = check_text(values["model"], "model", MAX_MODEL_CHARS)
    event = parse_choice(values["event"], EventKind, "event")
    day = _event_date(values["event_date"], today)
    from_party = check_text(values["from_party"], "from_party", MAX_PARTY_CHARS)
    to_party = check_text(values["to_party"], "to_party", MAX_PARTY_CHARS)
    to_country = _to_country(values["to_country"], event)
    licence = check_text(values["licence_reference"], "licence_reference", MAX_LICENCE_CHARS)
    notes = check_text(values["notes"], "notes", MAX_FIELD_CHARS)
    key = (canonical, make_key, model, event.value, day.isoformat(), from_party, to_party)
    # Control characters are refused above, so the unit separator cannot occur in a field.
    text = "\x1f".join((*key, to_country or "", licence, notes))
    digest = hashlib.sha256(text.encode()).digest()
    return (
        serial,
        canonical,
        make,
        make_key,
        model,
        event.value,
        day,
        from_party,
        to_party,
        to_country,
        licence,
        notes,
        digest,
    )


CUSTODY_ROWS = RowKind(
    "node.trace.custody_rows:CUSTODY_ROWS",
    "custody events",
    CUSTODY_COLUMNS,
    frozenset(CUSTODY_COLUMNS),
    custody_row,
    row_type(CustodyEvent, STORED_FIELDS[:-1], bytes),
)
