"""The unit of work: one database transaction in which an inbound message takes effect.

`unit_of_work(db)` is the factory the dispatcher is given; each unit it opens
is one `Database.transaction` (on SQLite one driver round trip per
statement: the confirmation of a hit stays the fast path it was) exposing
the store operations that a handler may combine: the inbox claim and the
answer kept with it, the outbox, the audit log, lookups' hits, traces and
statistics rounds (`node.store.rounds`: mixed in). Each
operation is the store's own statement, run on this transaction
(`*_in` functions), never a copy of it. Callbacks registered with
`after_commit` run once it has committed (waking delivery for what was queued).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

from node.auditing import AuditEvent
from node.protocol.model import OutboxMessage, PriorClaim
from node.store.audit import append_in
from node.store.database import Database, Transaction
from node.store.lookups import add_hits_in
from node.store.outbox import add_message_in, claim_in, set_answer_in
from node.store.rounds import RoundReads, RoundWrites
from node.store.trace import (
    add_item_in,
    add_reminder_in,
    add_trace_in,
    get_items_in,
    get_reminders_in,
    get_trace_in,
    set_trace_in,
)
from node.trace.model import HopReminders, StoredTrace, TraceItem, TraceStatus


class StoreWork(RoundReads, RoundWrites):
    """The kernel's `UnitOfWork`, lookups' `LookupWork`, traces' `TraceWork` and the
    statistics rounds' `StatsWork`, on one open transaction."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._run = tx.run
        self._dialect = tx.dialect
        self.committed: list[Callable[[], None]] = []

    async def claim(self, sender: str, key: bytes, type_: str, at: datetime) -> PriorClaim | None:
        """Claim (sender, key) for a message of `type_`: None if it is new, else the prior claim."""
        return await claim_in(self._tx, sender, key, type_, at)

    async def set_answer(self, sender: str, key: bytes, answer_type: str, answer: bytes) -> None:
        """Keep the answer (its body without `ref`) with the claim of (sender, key)."""
        await set_answer_in(self._tx, sender, key, answer_type, answer)

    async def add_message(
        self, recipient: str, message_id: bytes, type_: str, body: bytes, at: datetime
    ) -> OutboxMessage:
        """Queue a message for `recipient`."""
        return await add_message_in(self._tx, recipient, message_id, type_, body, at)

    async def add_audit_entry(self, at: datetime, event: AuditEvent) -> None:
        """Append an audit entry in this transaction."""
        await append_in(self._tx, at, event)

    async def add_hits(self, hits: list[dict[str, Any]]) -> None:
        """Record a peer's lookup that matched our records."""
        await add_hits_in(self._tx, hits)

    async def get_trace(self, trace_id: bytes, position: int | None = None) -> StoredTrace | None:
        """The trace at `position` (None: our latest position on it), or None."""
        return await get_trace_in(self._tx, trace_id, position)

    async def add_trace(self, trace: StoredTrace) -> int:
        """Store a new trace; its id."""
        return await add_trace_in(self._tx, trace)

    async def set_trace(
        self,
        trace: int,
        status: TraceStatus,
        outcome: str | None = None,
        next_country: str | None = None,
        note: str = "",
    ) -> None:
        """Where the trace stands now."""
        await set_trace_in(self._tx, trace, status, outcome, next_country, note)

    async def add_item(self, trace: int, item: TraceItem, at: datetime) -> bool:
        """Keep a signed item of the trace; False if it was kept before."""
        return await add_item_in(self._tx, trace, item, at)

    async def get_items(self, trace: int) -> list[TraceItem]:
        """The trace's items, in the order they were kept."""
        return await get_items_in(self._tx, trace)

    async def add_reminder(self, trace: int, position: int, country: str, at: datetime) -> int:
        """Count one more reminder of the trace's hop `position`; how many now."""
        return await add_reminder_in(self._tx, trace, position, country, at)

    async def get_reminders(self, trace: int) -> list[HopReminders]:
        """The reminders of each hop of the trace, by position."""
        return await get_reminders_in(self._tx, trace)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (never if it rolls back)."""
        self.committed.append(callback)


def unit_of_work(db: Database) -> Callable[[], AbstractAsyncContextManager[StoreWork]]:
    """A factory of units of work on `db`: each commits on clean exit, else rolls back."""

    @asynccontextmanager
    async def begin() -> AsyncIterator[StoreWork]:
        async with db.transaction() as tx:
            work = StoreWork(tx)
            yield work
        for callback in work.committed:
            callback()

    return begin
