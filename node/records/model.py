"""Firearm records: the typed values that flow between CLI, console, service and store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from operator import attrgetter
from typing import Any


class FirearmType(enum.StrEnum):
    """Firearm types as the model system lists them."""

    PISTOL = "pistol"
    REVOLVER = "revolver"
    RIFLE = "rifle"
    CARBINE = "carbine"
    SHOTGUN = "shotgun"
    SUBMACHINE_GUN = "submachine gun"
    MACHINE_GUN = "machine gun"
    OTHER = "other"


class Status(enum.StrEnum):
    """Why the firearm is on record; `recovered` closes the case."""

    LOST = "lost"
    STOLEN = "stolen"
    TRAFFICKED = "trafficked"
    SMUGGLED = "smuggled"
    SEIZED = "seized"
    FOUND = "found"
    RECOVERED = "recovered"


#: CSV columns, in export order; the JSON output of the CLI uses the same keys.
CSV_COLUMNS: tuple[str, ...] = (
    "serial_number",
    "make",
    "model",
    "firearm_type",
    "calibre",
    "status",
    "country_of_manufacture",
    "event_date",
    "event_place",
    "reporting_agency",
    "case_reference",
    "contact",
    "markings",
    "notes",
    "external_id",
    "recovered_on",
)
REQUIRED_COLUMNS: frozenset[str] = frozenset({"serial_number", "make", "firearm_type", "status"})

#: Longest text accepted in any field; longer input is refused, never truncated.
MAX_FIELD_CHARS = 2000
MAX_SERIAL_CHARS = 64


@dataclass(frozen=True, slots=True)
class RecordInput:
    """What an officer enters (CLI, console form or CSV row), before normalisation.

    Text fields are as typed; `RecordsService` validates and normalises them.
    """

    serial_number: str
    make: str
    firearm_type: str
    status: str
    model: str = ""
    calibre: str = ""
    country_of_manufacture: str = ""
    event_date: date | None = None
    event_place: str = ""
    reporting_agency: str = ""
    case_reference: str = ""
    contact: str = ""
    markings: str = ""
    notes: str = ""
    external_id: str = ""
    recovered_on: date | None = None


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A validated, normalised record ready to be stored (no id yet)."""

    serial_number: str
    serial_canonical: str
    make: str
    make_known: bool
    model: str
    firearm_type: str
    firearm_type_known: bool
    calibre: str
    calibre_known: bool
    status: Status
    country_of_manufacture: str | None
    event_date: date | None
    event_place: str
    reporting_agency: str
    case_reference: str
    contact: str
    markings: str
    notes: str
    external_id: str | None
    recovered_on: date | None = None


#: The fields of `NewRecord`, in order: the layout of `new_record_row`.
NEW_RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(NewRecord))
_STATUS_INDEX = NEW_RECORD_FIELDS.index("status")
_new_record_values = attrgetter(*NEW_RECORD_FIELDS)


def model_key(model: str) -> str:
    """The case- and space-insensitive form of a model name, by which records are filtered."""
    return " ".join(model.upper().split())


def new_record_row(new: NewRecord) -> tuple[Any, ...]:
    """A `NewRecord` as a plain tuple (status as text): cheap to send and to bulk-insert."""
    values = list(_new_record_values(new))
    values[_STATUS_INDEX] = new.status.value
    return tuple(values)


@dataclass(frozen=True, slots=True)
class FirearmRecord:
    """A stored record of this node."""

    id: int
    version: int
    created_at: datetime
    updated_at: datetime
    serial_number: str
    serial_canonical: str
    make: str
    make_known: bool
    model: str
    firearm_type: str
    firearm_type_known: bool
    calibre: str
    calibre_known: bool
    status: Status
    country_of_manufacture: str | None
    event_date: date | None
    event_place: str
    reporting_agency: str
    case_reference: str
    contact: str
    markings: str
    notes: str
    external_id: str | None
    recovered_on: date | None = None

    def to_row(self) -> dict[str, str]:
        """The record as CSV/JSON values keyed by `CSV_COLUMNS` (plus `id`)."""
        return {
            "id": str(self.id),
            "serial_number": self.serial_number,
            "make": self.make,
            "model": self.model,
            "firearm_type": self.firearm_type,
            "calibre": self.calibre,
            "status": self.status.value,
            "country_of_manufacture": self.country_of_manufacture or "",
            "event_date": self.event_date.isoformat() if self.event_date else "",
            "event_place": self.event_place,
            "reporting_agency": self.reporting_agency,
            "case_reference": self.case_reference,
            "contact": self.contact,
            "markings": self.markings,
            "notes": self.notes,
            "external_id": self.external_id or "",
            "recovered_on": self.recovered_on.isoformat() if self.recovered_on else "",
        }


class SerialMatch(enum.StrEnum):
    """How a serial filter is compared with the canonical serial."""

    EXACT = "exact"
    PREFIX = "prefix"
    CONTAINS = "contains"


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """A local search; every field that is set narrows the result.

    `make`, `calibre` and `firearm_type` are already normalised and `serial`
    already canonical: `RecordsService.parse_filter` builds this from user text.
    """

    serial: str | None = None
    serial_match: SerialMatch = SerialMatch.EXACT
    make: str | None = None
    model: str | None = None
    firearm_type: str | None = None
    calibre: str | None = None
    status: Status | None = None
    country: str | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of search results; `has_more` says whether another page follows."""

    records: list[FirearmRecord]
    offset: int
    limit: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class ImportRowError:
    """Why one CSV row was not stored."""

    line: int
    column: str
    reason: str


@dataclass(slots=True)
class ImportReport:
    """The outcome of a CSV import."""

    rows: int = 0
    created: int = 0
    duplicates: int = 0
    errors: list[ImportRowError] = field(default_factory=list)
    #: Bad rows beyond this many are counted in `rejected` but not listed.
    max_listed_errors: int = 1000
    rejected: int = 0

    def reject(self, error: ImportRowError) -> None:
        """Count a rejected row, listing it while the list is short enough."""
        self.rejected += 1
        if len(self.errors) < self.max_listed_errors:
            self.errors.append(error)
