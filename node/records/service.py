"""The records service: validates and normalises input, then stores and audits it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields
from datetime import date

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.countries import to_alpha3
from node.errors import ValidationError
from node.records.model import (
    FirearmRecord,
    NewRecord,
    Page,
    RecordFilter,
    RecordInput,
    SerialMatch,
)
from node.records.normalise import check_text, normalise_record, parse_date, parse_status
from node.records.reference import ReferenceTable
from node.records.serials import canonicalise_serial
from node.records.storage import RecordStorage

MAX_PAGE = 500


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
        self,
        store: RecordStorage,
        audit: AuditLog,
        reference: ReferenceTable,
        clock: Clock,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._ref = reference
        self._clock = clock
        self._changed = changed  # told after every stored change (the lookup index follows)

    def normalise(self, entry: RecordInput) -> NewRecord:
        """Validate an entry and normalise it against the reference table."""
        return normalise_record(entry, self._ref, self._clock.now().date())

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
        record = await self._store.add_record(
            new, self._clock.now(), lambda r: _event(actor, "record.create", r), key
        )
        self._changed()
        return record

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
        record = await self._store.set_record(
            record_id, version, new, self._clock.now(), lambda r: _event(actor, "record.update", r)
        )
        self._changed()
        return record

    async def recover(
        self, record_id: int, version: int, on: date | None, actor: str
    ) -> FirearmRecord:
        """Mark a record recovered (the firearm is back; the case is closed)."""
        today = self._clock.now().date()
        on = on or today
        if on > today:
            raise ValidationError("recovered_on: the date is in the future", "recovered_on")
        record = await self._store.set_recovered(
            record_id, version, on, self._clock.now(), lambda r: _event(actor, "record.recover", r)
        )
        self._changed()
        return record

    async def delete(self, record_id: int, version: int, reason: str, actor: str) -> FirearmRecord:
        """Delete a record; the reason and the record's last state go to the audit log."""
        reason = check_text(reason, "reason", 500)
        if not reason:
            raise ValidationError("reason: say why the record is deleted", "reason")

        def event(record: FirearmRecord) -> AuditEvent:
            details = {"reason": reason, "record": record.to_row()}
            return AuditEvent(actor, "record.delete", f"record/{record.id}", details)

        record = await self._store.delete_record(record_id, version, self._clock.now(), event)
        self._changed()
        return record

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
