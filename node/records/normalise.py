"""Validating and normalising what an officer enters: pure functions, no I/O.

Used by the records service for single records and by the CSV importer,
which may run them in a worker process.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import fields
from datetime import date
from typing import Any, TypeVar

from node.countries import to_alpha3
from node.errors import ValidationError
from node.records.model import (
    MAX_FIELD_CHARS,
    MAX_SERIAL_CHARS,
    NEW_RECORD_FIELDS,
    NewRecord,
    RecordInput,
    Status,
)
from node.records.reference import ReferenceTable
from node.records.serials import canonicalise_serial

EARLIEST_EVENT = date(1800, 1, 1)
Choice = TypeVar("Choice", bound=enum.StrEnum)
_TEXT_FIELDS = (
    "model",
    "event_place",
    "reporting_agency",
    "case_reference",
    "contact",
    "markings",
    "notes",
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_STATUS_AT = NEW_RECORD_FIELDS.index("status")


def check_text(value: str, field: str, limit: int = MAX_FIELD_CHARS) -> str:
    """Strip `value`; refuse it if too long or holding control characters."""
    value = value.strip()
    if len(value) > limit:
        raise ValidationError(f"{field}: {len(value)} characters, at most {limit} allowed", field)
    if not value.isprintable() and any(
        unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value
    ):
        raise ValidationError(f"{field}: contains control characters", field)
    return value


def parse_choice(text: str, choices: type[Choice], field: str) -> Choice:
    """One of `choices` from user text (case-insensitive), or a ValidationError listing them."""
    try:
        return choices(text.strip().lower())
    except ValueError:
        listed = ", ".join(choice.value for choice in choices)
        raise ValidationError(f"{field}: {text.strip()!r} is not one of {listed}", field) from None


def parse_status(text: str) -> Status:
    """A status from user text (case-insensitive) or a ValidationError listing the choices."""
    return parse_choice(text, Status, "status")


def parse_date(text: str, field: str) -> date | None:
    """A YYYY-MM-DD date, None for empty text, or a ValidationError."""
    text = text.strip()
    if not text:
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{field}: {text!r} is not a date in the form YYYY-MM-DD", field
        ) from None


def parse_country(text: str, field: str) -> str | None:
    """An alpha-3 code from a country as officers write it (AUT, AT, Austria); None for
    empty text; a ValidationError otherwise."""
    if not text.strip():
        return None
    country = to_alpha3(text)
    if country is None:
        raise ValidationError(
            f"{field}: {text.strip()!r} is not a country (use an ISO 3166-1 code such as AUT "
            "or a name such as Austria)",
            field,
        )
    return country


#: `RecordInput`'s optional text fields, at their default.
_OPTIONAL_TEXT = {f.name: "" for f in fields(RecordInput) if f.default == ""}


def record_input(values: Mapping[str, str]) -> RecordInput:
    """A `RecordInput` from text keyed by CSV column names (a CSV row, a posted form).

    Absent optional columns take their defaults; dates are parsed (ValidationError).
    """
    return RecordInput(**input_fields(values))


def input_fields(values: Mapping[str, str]) -> dict[str, Any]:
    """`record_input`'s fields as a dict (what `normalised_row` reads): text keyed by CSV
    column names, absent optional columns as their defaults, dates parsed (ValidationError)."""
    entry: dict[str, Any] = {**_OPTIONAL_TEXT, **values}
    entry["event_date"] = parse_date(values.get("event_date", ""), "event_date")
    entry["recovered_on"] = parse_date(values.get("recovered_on", ""), "recovered_on")
    return entry


def normalise_record(entry: RecordInput, reference: ReferenceTable, today: date) -> NewRecord:
    """Validate an entry and normalise it against the reference table."""
    values = {f.name: getattr(entry, f.name) for f in fields(entry)}
    row = list(normalised_row(values, reference, today))
    row[_STATUS_AT] = Status(row[_STATUS_AT])
    return NewRecord(*row)


def normalised_row(
    entry: Mapping[str, Any], reference: ReferenceTable, today: date
) -> tuple[Any, ...]:
    """`normalise_record` of an entry given as its fields (`input_fields`), as the tuple
    `new_record_row` makes of its `NewRecord` (status as text): what an import stores, made
    without the two dataclasses (a sixth of a row's parsing time).

    Raises:
        ValidationError: naming the first bad field.
    """
    serial = check_text(entry["serial_number"], "serial_number", MAX_SERIAL_CHARS)
    canonical = canonicalise_serial(serial)
    if not canonical:
        raise ValidationError(
            "serial_number: required, with at least one letter or digit", "serial_number"
        )
    for name in ("make", "firearm_type"):
        if not entry[name].strip():
            raise ValidationError(f"{name}: required", name)
    make = reference.normalise_make(check_text(entry["make"], "make", 200))
    ftype = reference.normalise_type(check_text(entry["firearm_type"], "firearm_type", 100))
    calibre = reference.normalise_calibre(check_text(entry["calibre"], "calibre", 100))
    country = parse_country(entry["country_of_manufacture"], "country_of_manufacture")
    event_date, recovered_on = entry["event_date"], entry["recovered_on"]
    if event_date is not None and not (EARLIEST_EVENT <= event_date <= today):
        raise ValidationError(
            f"event_date: {event_date.isoformat()} is in the future or before 1800",
            "event_date",
        )
    status = parse_status(entry["status"])
    if recovered_on is not None and status is not Status.RECOVERED:
        raise ValidationError(
            "recovered_on: only a record with status recovered has a recovery date",
            "recovered_on",
        )
    if recovered_on and recovered_on > today:
        raise ValidationError("recovered_on: the date is in the future", "recovered_on")
    model, place, agency, case, contact, markings, notes = (
        check_text(entry[name], name) for name in _TEXT_FIELDS
    )
    external_id = check_text(entry["external_id"], "external_id", 200) or None
    return (  # in `NEW_RECORD_FIELDS` order
        serial,
        canonical,
        make.value,
        make.known,
        model,
        ftype.value,
        ftype.known,
        calibre.value,
        calibre.known,
        status.value,
        country,
        event_date,
        place,
        agency,
        case,
        contact,
        markings,
        notes,
        external_id,
        recovered_on,
    )
