"""The records service: validates and normalises input, then stores and audits it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import date

from node.auditing import AuditEvent
from node.clock import Clock
from node.countries import to_alpha3
from node.errors import ValidationError
from node.records.model import (
    MAX_FIELD_CHARS,
    MAX_SERIAL_CHARS,
    FirearmRecord,
    NewRecord,
    Page,
    RecordFilter,
    RecordInput,
    SerialMatch,
    Status,
)
from node.records.reference import ReferenceTable
from node.records.serials import canonicalise_serial
from node.store.audit import AuditStore
from node.store.records import RecordsStore

MAX_PAGE = 500
EARLIEST_EVENT = date(1800, 1, 1)
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
_STATUS_LIST = ", ".join(s.value for s in Status)


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


def parse_status(text: str) -> Status:
    """A status from user text (case-insensitive) or a ValidationError listing the choices."""
    try:
        return Status(text.strip().lower())
    except ValueError:
        raise ValidationError(
            f"status: {text.strip()!r} is not one of {_STATUS_LIST}", "status"
        ) from None


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


def parse_serial_query(text: str) -> tuple[str, SerialMatch]:
    """A serial filter: `ABC123` exact, `ABC*` prefix, `*123*` (or `*123`) contains."""
    match = SerialMatch.EXACT
    if text.startswith("*"):  # an index cannot serve "ends with"; contains is a superset
        match = SerialMatch.CONTAINS
    elif text.endswith("*"):
        match = SerialMatch.PREFIX
    canonical = canonicalise_serial(text.strip("*"))
    if not canonical:
        raise ValidationError(f"serial: {text!r} has no letters or digits to search for", "serial")
    return canonical, match


@dataclass(frozen=True, slots=True)
class FilterText:
    """A search as a user types it (CLI options, console query string)."""

    serial: str = ""
    make: str = ""
    model: str = ""
    firearm_type: str = ""
    calibre: str = ""
    status: str = ""
    country: str = ""
    date_from: str = ""
    date_to: str = ""


class RecordsService:
    """Create, change, find and export this node's firearm records."""

    def __init__(
        self, store: RecordsStore, audit: AuditStore, reference: ReferenceTable, clock: Clock
    ) -> None:
        self._store = store
        self._audit = audit
        self._ref = reference
        self._clock = clock

    def normalise(self, entry: RecordInput) -> NewRecord:
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
        make = self._ref.normalise_make(check_text(entry.make, "make", 200))
        ftype = self._ref.normalise_type(check_text(entry.firearm_type, "firearm_type", 100))
        calibre = self._ref.normalise_calibre(check_text(entry.calibre, "calibre", 100))
        country = None
        if entry.country_of_manufacture.strip():
            country = to_alpha3(entry.country_of_manufacture)
            if country is None:
                raise ValidationError(
                    f"country_of_manufacture: {entry.country_of_manufacture.strip()!r} is not a "
                    "country (use an ISO 3166-1 code such as AUT or a name such as Austria)",
                    "country_of_manufacture",
                )
        if entry.event_date is not None and not (
            EARLIEST_EVENT <= entry.event_date <= self._clock.now().date()
        ):
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
        if entry.recovered_on and entry.recovered_on > self._clock.now().date():
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

    def parse_filter(self, text: FilterText) -> RecordFilter:
        """Turn user search text into a normalised filter (ValidationError on bad values)."""
        serial, match = (
            parse_serial_query(text.serial) if text.serial.strip() else (None, SerialMatch.EXACT)
        )
        country = None
        if text.country.strip():
            country = to_alpha3(text.country)
            if country is None:
                raise ValidationError(
                    f"country: {text.country.strip()!r} is not a country", "country"
                )
        date_from = parse_date(text.date_from, "from")
        date_to = parse_date(text.date_to, "to")
        if date_from and date_to and date_from > date_to:
            raise ValidationError("from: the start date is after the end date", "from")
        return RecordFilter(
            serial=serial,
            serial_match=match,
            make=self._ref.normalise_make(text.make).value if text.make.strip() else None,
            model=text.model.strip() or None,
            firearm_type=self._ref.normalise_type(text.firearm_type).value
            if text.firearm_type.strip()
            else None,
            calibre=self._ref.normalise_calibre(text.calibre).value
            if text.calibre.strip()
            else None,
            status=parse_status(text.status) if text.status.strip() else None,
            country=country,
            date_from=date_from,
            date_to=date_to,
        )

    async def create(self, entry: RecordInput, actor: str) -> FirearmRecord:
        """Store a new record; ConflictError if its external id is taken."""
        new = self.normalise(entry)
        key = f"ext:{new.external_id}" if new.external_id else None
        return await self._store.add_record(
            new, self._clock.now(), lambda r: _event(actor, "record.create", r), key
        )

    async def get(self, record_id: int, actor: str) -> FirearmRecord:
        """One record (the view is audited)."""
        record = await self._store.get_record(record_id)
        await self._audit.add_entry(
            self._clock.now(), AuditEvent(actor, "record.view", f"record/{record_id}")
        )
        return record

    async def update(
        self, record_id: int, version: int, entry: RecordInput, actor: str
    ) -> FirearmRecord:
        """Replace a record's fields; ConflictError if someone changed it since `version`."""
        new = self.normalise(entry)
        return await self._store.set_record(
            record_id, version, new, self._clock.now(), lambda r: _event(actor, "record.update", r)
        )

    async def recover(
        self, record_id: int, version: int, on: date | None, actor: str
    ) -> FirearmRecord:
        """Mark a record recovered (the firearm is back; the case is closed)."""
        today = self._clock.now().date()
        on = on or today
        if on > today:
            raise ValidationError("recovered_on: the date is in the future", "recovered_on")
        return await self._store.set_recovered(
            record_id, version, on, self._clock.now(), lambda r: _event(actor, "record.recover", r)
        )

    async def delete(self, record_id: int, version: int, reason: str, actor: str) -> FirearmRecord:
        """Delete a record; the reason and the record's last state go to the audit log."""
        reason = check_text(reason, "reason", 500)
        if not reason:
            raise ValidationError("reason: say why the record is deleted", "reason")

        def event(record: FirearmRecord) -> AuditEvent:
            details = {"reason": reason, "record": record.to_row()}
            return AuditEvent(actor, "record.delete", f"record/{record.id}", details)

        return await self._store.delete_record(record_id, version, self._clock.now(), event)

    async def search(self, f: RecordFilter, actor: str, offset: int = 0, limit: int = 50) -> Page:
        """One page of matching records, newest first; the search is audited."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit: must be between 1 and {MAX_PAGE}", "limit")
        if offset < 0:
            raise ValidationError("offset: must not be negative", "offset")
        page = await self._store.search(f, offset, limit)
        await self._audit.add_entry(
            self._clock.now(),
            AuditEvent(
                actor,
                "record.search",
                "records",
                {"filter": _filter_details(f), "offset": offset, "returned": len(page.records)},
            ),
        )
        return page

    async def export(self, f: RecordFilter, actor: str) -> AsyncIterator[FirearmRecord]:
        """Every matching record in id order, audited once up front."""
        await self._audit.add_entry(
            self._clock.now(),
            AuditEvent(actor, "record.export", "records", {"filter": _filter_details(f)}),
        )
        async for record in self._store.iter_records(f):
            yield record

    async def count(self) -> int:
        """How many records this node holds."""
        return await self._store.count()


def _event(actor: str, action: str, record: FirearmRecord) -> AuditEvent:
    details = {
        "serial": record.serial_number,
        "make": record.make,
        "status": record.status.value,
        "version": record.version,
    }
    return AuditEvent(actor, action, f"record/{record.id}", details)


def _filter_details(f: RecordFilter) -> dict[str, str]:
    out = {}
    for field in fields(f):
        name, value = field.name, getattr(f, field.name)
        if value is not None and name != "serial_match":
            out[name] = str(value)
    if f.serial:
        out["serial_match"] = f.serial_match.value
    return out
