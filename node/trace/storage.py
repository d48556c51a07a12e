"""What the custody registry and the traces need from storage: `typing.Protocol`s that
`node.store` implements (`node.store.custody.CustodyStore`, `node.store.trace.TraceStore`,
and `node.store.work.StoreWork` for what trace handlers write in their unit of work)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from node.protocol.storage import UnitOfWork
from node.records.storage import BatchStorage
from node.trace.model import CustodyEvent, HopReminders, StoredTrace, TraceItem, TraceStatus


class CustodyStorage(BatchStorage, Protocol):
    """This node's custody events; the CSV import stores them with `add_many`
    (rows of `model.STORED_FIELDS`, the digest their dedupe key)."""

    async def get_events(
        self, serial_canonical: str, make_key: str | None, limit: int | None = None
    ) -> list[CustodyEvent]:
        """The events of a canonical serial (and make key, if given) by event date, then id;
        at most `limit` of them (None: all)."""
        ...

    async def count(self) -> int:
        """How many custody events this node holds."""
        ...


class TraceWork(UnitOfWork, Protocol):
    """What trace handlers write (and read back) in their unit of work."""

    async def get_trace(self, trace_id: bytes, position: int | None = None) -> StoredTrace | None:
        """The trace at `position` (None: our latest position on it), or None."""
        ...

    async def add_trace(self, trace: StoredTrace) -> int:
        """Store a new trace (its `id` ignored); its id."""
        ...

    async def set_trace(
        self,
        trace: int,
        status: TraceStatus,
        outcome: str | None = None,
        next_country: str | None = None,
        note: str = "",
    ) -> None:
        """Where the trace stands now."""
        ...

    async def add_item(self, trace: int, item: TraceItem, at: datetime) -> bool:
        """Keep a signed item of the trace; False if it was kept before (same hash)."""
        ...

    async def get_items(self, trace: int) -> list[TraceItem]:
        """The trace's items, in the order they were kept."""
        ...

    async def add_reminder(self, trace: int, position: int, country: str, at: datetime) -> int:
        """Count one more reminder of the trace's hop `position` (sent to it, on the
        originator's trace; received, on the hop's own), at `at`; how many now."""
        ...

    async def get_reminders(self, trace: int) -> list[HopReminders]:
        """The reminders of each hop of the trace, by position."""
        ...


class TraceStorage(Protocol):
    """The traces this node originated or is a hop of, read outside handlers."""

    async def get_trace(self, trace_id: bytes, position: int | None = None) -> StoredTrace | None:
        """As `TraceWork.get_trace`."""
        ...

    async def get_items(self, trace: int) -> list[TraceItem]:
        """As `TraceWork.get_items`."""
        ...

    async def list_traces(
        self, status: TraceStatus | None = None, incoming: bool | None = None
    ) -> list[StoredTrace]:
        """Traces, newest first (of `status`, if given; received as a hop, or started
        here, if `incoming` is given)."""
        ...

    async def get_reminders(self, trace: int) -> list[HopReminders]:
        """As `TraceWork.get_reminders`."""
        ...

    async def reminder_totals(self) -> dict[int, tuple[int, datetime]]:
        """For each trace with reminders, how many (all its hops') and the last one's time."""
        ...
