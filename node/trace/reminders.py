"""The originator's reminders to hops whose answer is overdue (PROTOCOL.md §3.8).

`TraceReminders.sweep` runs on the node's clock (`node.server.remind_overdue`,
every `SWEEP_S`): for each open trace we started, the hops we hold a receipt
from are held to their deadline (`deadlines.chain_deadlines`); each overdue
hop whose reminder is due (`deadlines.reminder_due`, from the last one's
stored time, so a restart changes nothing) is sent `trace.reminder`, in one
unit of work with the count of its reminders and the audit entry. It goes
through the outbox toward the hop as the originator's other messages to
hops do (`forward.Onward.toward_hop`: straight to it when it is our peer,
else to the latest hop before it that is, which relays it forward); the hop
takes it in `node.trace.replies`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import ValidationError
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import to_ms
from node.protocol.peers import PeersService
from node.trace.deadlines import HopDeadline, chain_deadlines, may_be_late, reminder_due
from node.trace.forward import Onward
from node.trace.messages import TraceReminder
from node.trace.model import HopReminders, StoredTrace, TraceDeadlines, TraceStatus
from node.trace.storage import TraceStorage, TraceWork

W = TypeVar("W", bound=TraceWork)

#: How often the originator looks for hops to remind: a reminder is at most this late.
SWEEP_S = 60.0
#: Who sends reminders, in the audit log.
ACTOR = "deadlines"


def _due(
    late: list[HopDeadline], reminders: list[HopReminders], period: timedelta, now: datetime
) -> list[HopDeadline]:
    """The late hops whose reminder is due now, given those sent before."""
    last = {r.position: r.last_at for r in reminders}
    return [h for h in late if reminder_due(h.due_at, last.get(h.position), period, now)]


class TraceReminders(Generic[W]):
    """Sends reminders to the overdue hops of the traces we started."""

    def __init__(
        self,
        me: str,
        signing_key: Ed25519PrivateKey,
        peers: PeersService,
        delivery: DeliveryService,
        store: TraceStorage,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        deadlines: TraceDeadlines,
    ) -> None:
        self._store = store
        self._clock = clock
        self._work = work
        self._deadlines = deadlines
        self._onward = Onward(me, signing_key, peers, delivery, clock, work, deadlines)

    async def sweep(self) -> int:
        """Send every reminder due now; how many were sent."""
        now = self._clock.now()
        sent = 0
        for trace in await self._store.list_traces(TraceStatus.OPEN):
            if trace.position == 0:
                sent += await self._remind(trace, now)
        return sent

    async def _remind(self, trace: StoredTrace, now: datetime) -> int:
        """Remind the overdue hops of one trace whose reminder is due."""
        period = self._deadlines.period(trace.priority)
        if not may_be_late(trace.created_at, period, now):
            return 0
        items = await self._store.get_items(trace.id)
        late = [h for h in chain_deadlines(items, period, now) if h.overdue]
        if not late or not _due(late, await self._store.get_reminders(trace.id), period, now):
            return 0  # read without a write transaction: the common case of a late trace
        sent = 0
        async with self._work() as work:
            # Read again where it is written: nothing is sent twice.
            for hop in _due(late, await work.get_reminders(trace.id), period, now):
                message = TraceReminder(
                    trace_id=trace.trace_id,
                    position=hop.position,
                    country=hop.country,
                    due_ms=to_ms(hop.due_at),
                    delivery_id=os.urandom(16),
                )
                try:
                    via = await self._onward.toward_hop(work, trace, hop.position, message)
                except ValidationError:
                    continue  # no hop up to it is our peer now: tried again next sweep
                await self._count(work, trace, hop, via, now)
                sent += 1
        return sent

    async def _count(
        self, work: W, trace: StoredTrace, hop: HopDeadline, via: str, now: datetime
    ) -> None:
        count = await work.add_reminder(trace.id, hop.position, hop.country, now)
        details = {
            "position": hop.position,
            "country": hop.country,
            "due": hop.due_at.isoformat(),
            "count": count,
            "via": None if via == hop.country else via,
        }
        await work.add_audit_entry(
            now, AuditEvent(ACTOR, "trace.remind", f"trace/{trace.trace_id.hex()}", details)
        )
