"""The registry of legal custody: import by CSV, search by serial and make, chains for traces."""

from __future__ import annotations

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import ValidationError
from node.records.importer import ImportService
from node.records.model import MAX_SERIAL_CHARS
from node.records.normalise import check_text
from node.records.reference import ReferenceTable
from node.records.serials import canonicalise_serial
from node.trace.custody_rows import CUSTODY_ROWS
from node.trace.model import MAX_MAKE_CHARS, CustodyEvent, CustodyQuery
from node.trace.storage import CustodyStorage

#: The most events one search shows: a firearm's chain is a handful; more is a bad query.
MAX_SEARCH_EVENTS = 1000


class CustodyService:
    """This node's custody events: `imports` reads custody CSV files (`CUSTODY_ROWS`) through
    the records' import machinery; `search` serves officers, `chain` the trace hops."""

    def __init__(
        self, store: CustodyStorage, audit: AuditLog, reference: ReferenceTable, clock: Clock
    ) -> None:
        self._store = store
        self._audit = audit
        self._ref = reference
        self._clock = clock
        self.imports = ImportService(CUSTODY_ROWS, store, audit, reference, clock, "custody")

    def query(self, serial: str, make: str = "") -> CustodyQuery:
        """A search from what an officer types: the serial canonicalised, the make (if any)
        as its key (ValidationError if either is unusable)."""
        serial = check_text(serial, "serial", MAX_SERIAL_CHARS)
        canonical = canonicalise_serial(serial)
        if not canonical:
            raise ValidationError(
                f"serial: {serial!r} has no letters or digits to search for", "serial"
            )
        make = check_text(make, "make", MAX_MAKE_CHARS)
        if not make:
            return CustodyQuery(canonical)
        key = self.make_key(make)
        if not key:
            raise ValidationError(f"make: {make!r} has no letters or digits", "make")
        return CustodyQuery(canonical, key)

    def make_key(self, make: str) -> str:
        """The key events are found by for a make in any spelling (`ReferenceTable.make_key`)."""
        return self._ref.make_key(make)

    async def search(
        self, query: CustodyQuery, actor: str, limit: int = MAX_SEARCH_EVENTS
    ) -> list[CustodyEvent]:
        """The events matching `query`, by event date then id, at most `limit`; audited."""
        events = await self._store.get_events(query.serial_canonical, query.make_key, limit)
        details = {"serial": query.serial_canonical, "returned": len(events)}
        if query.make_key is not None:
            details["make_key"] = query.make_key
        await self._audit.add_entry(
            self._clock.now(), AuditEvent(actor, "custody.search", "custody", details)
        )
        return events

    async def chain(self, serial_canonical: str, make_key: str) -> list[CustodyEvent]:
        """One firearm's custody events, oldest first (by event date, then as imported):
        what a trace hop answers from. Not audited here: the trace that asks is."""
        return await self._store.get_events(serial_canonical, make_key)

    async def count(self) -> int:
        """How many custody events this node holds."""
        return await self._store.count()
