"""Custody events: the typed values that flow between CLI, console, service and store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta


class EventKind(enum.StrEnum):
    """What happened to a firearm in legal hands."""

    MANUFACTURED = "manufactured"
    IMPORTED = "imported"
    EXPORTED = "exported"
    SOLD = "sold"
    TRANSFERRED = "transferred"
    DESTROYED = "destroyed"


#: The custody CSV's columns, exactly these (in any order); the JSON output uses the same keys.
CUSTODY_COLUMNS: tuple[str, ...] = (
    "serial_number",
    "make",
    "model",
    "event",
    "event_date",
    "from_party",
    "to_party",
    "to_country",
    "licence_reference",
    "notes",
)
MAX_MAKE_CHARS = 200
MAX_MODEL_CHARS = 200
MAX_PARTY_CHARS = 400
MAX_LICENCE_CHARS = 200


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """One stored event of a firearm's legal custody.

    `serial_number` and `make` are as imported; `serial_canonical`
    (`node.records.serials`) and `make_key` (`ReferenceTable.make_key`) are
    what events are found by.
    """

    id: int
    serial_number: str
    serial_canonical: str
    make: str
    make_key: str
    model: str
    event: EventKind
    event_date: date
    from_party: str
    to_party: str
    to_country: str | None
    licence_reference: str
    notes: str
    imported_at: datetime

    def to_row(self) -> dict[str, str]:
        """The event as CSV/JSON values keyed by `CUSTODY_COLUMNS` (plus `id`)."""
        return {
            "id": str(self.id),
            "serial_number": self.serial_number,
            "make": self.make,
            "model": self.model,
            "event": self.event.value,
            "event_date": self.event_date.isoformat(),
            "from_party": self.from_party,
            "to_party": self.to_party,
            "to_country": self.to_country or "",
            "licence_reference": self.licence_reference,
            "notes": self.notes,
        }


#: What the store inserts for each valid row, in order (`custody_rows.custody_row`): the
#: event's fields as `CustodyEvent` has them (the event kind as text) but for those the
#: store sets, then the row's digest (its dedupe key).
STORED_FIELDS: tuple[str, ...] = (
    *(f.name for f in fields(CustodyEvent) if f.name not in ("id", "imported_at")),
    "row_digest",
)


@dataclass(frozen=True, slots=True)
class CustodyQuery:
    """A search of the registry: a canonical serial and, if given, a make key."""

    serial_canonical: str
    make_key: str | None = None


class TraceStatus(enum.StrEnum):
    """Where a trace stands on this node.

    The originator's: `open` (hops at work), `waiting` (a hop could not forward it: no
    peering), `answered` (the chain is complete), `closed`. A hop's: `queued` (for an
    officer), `waiting`, `answered` (its final answer sent)."""

    OPEN = "open"
    QUEUED = "queued"
    WAITING = "waiting"
    ANSWERED = "answered"
    CLOSED = "closed"


class ItemKind(enum.StrEnum):
    """A trace's signed items other than its request: the hops' receipts and answers,
    the originator's replies to their questions, `forward` statements vouching for the
    next hop's key, and rotation statements of hops' keys."""

    RECEIPT = "receipt"
    ANSWER = "answer"
    REPLY = "reply"
    FORWARD = "forward"
    ROTATION = "rotation"


@dataclass(frozen=True, slots=True)
class StoredTrace:
    """A trace as this node keeps it: originated here (`position` 0) or received as hop
    `position` from `prev_country`; `request` is the originator's signed request."""

    id: int
    trace_id: bytes
    position: int
    originator: str
    prev_country: str | None
    priority: str
    status: TraceStatus
    request: bytes
    created_at: datetime
    deadline_at: datetime | None
    outcome: str | None
    next_country: str | None
    note: str
    force_reason: str

    def overdue(self, now: datetime) -> bool:
        """Whether a hop's trace is queued here for its answer past the deadline it came
        with (`TraceService.listing` also gives a hop replied to one period after the
        reply)."""
        return (
            self.status is TraceStatus.QUEUED
            and self.deadline_at is not None
            and self.deadline_at < now
        )


@dataclass(frozen=True, slots=True)
class TraceItem:
    """A signed item of a trace, with what it says of itself (a reply's `country` is the
    originator's, its `position` the hop it answers; a rotation's position is 0)."""

    position: int
    kind: ItemKind
    country: str
    item: bytes
    item_hash: bytes
    signed_ms: int


@dataclass(frozen=True, slots=True)
class TraceDeadlines:
    """How long a hop has to answer a trace, by priority (`[trace]` in the config; the
    defaults are eTrace's: 24 h for urgent traces, 7–10 days for routine ones)."""

    urgent: timedelta = timedelta(hours=24)
    routine: timedelta = timedelta(days=10)

    def period(self, priority: str) -> timedelta:
        """The deadline of a priority (`node.trace.request.Priority`'s values).

        Raises:
            ValueError: not a priority.
        """
        if priority == "urgent":
            return self.urgent
        if priority == "routine":
            return self.routine
        raise ValueError(f"not a trace priority: {priority!r}")


@dataclass(frozen=True, slots=True)
class HopReminders:
    """The reminders of one hop of a trace: those the originator sent it (kept on the
    originator's trace), or those the hop received (kept on its own)."""

    position: int
    country: str
    count: int
    last_at: datetime
