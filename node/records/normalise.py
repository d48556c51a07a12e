"""Validating and normalising what an officer enters: pure functions, no I/O.

Used by the records service for single records and by the CSV importer,
which may run them in a worker process.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from typing import Any, TypeVar

from node.countries import to_alpha3
from node.errors import ValidationError
from node.records.model import (
    MAX_FIELD_CHARS,
    MAX_SERIAL_CHARS,
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


def record_input(values: Mapping[str, str]) -> RecordInput:
    """A `RecordInput` from text keyed by CSV column names (a CSV row, a posted form).

    Absent optional columns take their defaults; dates are parsed (ValidationError).
    """
    fields: dict[str, Any] = dict(values)
    fields["event_date"] = parse_date(fields.get("event_date", ""), "event_date")
    fields["recovered_on"] = parse_date(fields.get("recovered_on", ""), "recovered_on")
    return RecordInput(**fields)


def normalise_record(entry: RecordInput, reference: ReferenceTable, today: date) -> NewRecord:
    """Validate an entry and normalise it against the reference table."""
    serial = check_text(entry.serial_number, "serial_number", MAX_SERIAL_CHARS)
    canonical = canonicalise_serial(serial)
    if not canonical:
        raise ValidationError(
            "serial_number: required, with at least one letter or digit", "serial_number"
        )
    for name in ("make", "firearm_type"):
        if not getattr(entry, name).strip():
            raise ValidationError(f"{name}: required", name)
    make = reference.normalise_make(check_text(entry.make, "make", 200))
    ftype = reference.normalise_type(check_text(entry.firearm_type, "firearm_type", 100))
    calibre = reference.normalise_calibre(check_text(entry.calibre, "calibre", 100))
    country = parse_country(entry.country_of_manufacture, "country_of_manufacture")
    if entry.event_date is not None and not (EARLIEST_EVENT <= entry.event_date <= today):
        raise ValidationError(
            f"event_date: {entry.event_date.isoformat()} is in the future or before 1800",
            "event_date",
        )
    status = parse_status(entry.status)
    if entry.recovered_on is not None and status is not Status.RECOVERED:
        raise ValidationError(
            "recovered_on: only a record with status recovered has a recovery date",
            "recovered_on",
        )
    if entry.recovered_on and entry.recovered_on > today:
        raise ValidationError("recovered_on: the date is in the future", "recovered_on")
    texts = {name: check_text(getattr(entry, name), name) for name in _TEXT_FIELDS}
    external_id = check_text(entry.external_id, "external_id", 200) or None
    return NewRecord(
        serial_number=serial,
        serial_canonical=canonical,
        make=make.value,
        make_known=make.known,
        firearm_type=ftype.value,
        firearm_type_known=ftype.known,
        calibre=calibre.value,
        calibre_known=calibre.known,
        status=status,
        country_of_manufacture=country,
        event_date=entry.event_date,
        external_id=external_id,
        recovered_on=entry.recovered_on,
        **texts,
    )
