"""Reminders to hops whose answer is overdue (PROTOCOL.md §3.7), both sides.

The originator's side is `TraceReminders.sweep`, run on the node's clock
(`node.server.remind_overdue`, every `SWEEP_S`): for each open trace it
started, the hops it has a receipt from are held to their deadline
(`deadlines.hop_deadlines`); each overdue hop whose reminder is due
(`deadlines.reminder_due`, from the last one's stored time, so a restart
changes nothing) is sent `trace.reminder`, in one unit of work with the
count of its reminders and the audit entry. It goes through the outbox:
straight to the hop when it is our peer, else to the first hop, and each
hop passes it on toward the hop it forwarded the trace to (`on_reminder`),
the way reports travel back.

The hop's side, `on_reminder`: a reminder for its own position is counted
(`trace list --incoming` shows how many, and the last one's time) and
audited; one for a later hop is passed on; anything else is refused with
`protocol`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import msgspec

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import ProtocolError
from node.protocol.delivery import DeliveryService
from node.protocol.dispatch import Dispatcher
from node.protocol.envelope import from_ms, to_ms
from node.protocol.messages import Ack
from node.protocol.model import Peer, Service
from node.protocol.peers import PeersService
from node.trace.deadlines import HopDeadline, hop_deadlines, may_be_late, reminder_due
from node.trace.hop import active_peer
from node.trace.messages import TraceReminder
from node.trace.model import HopReminders, StoredTrace, TraceDeadlines, TraceStatus
from node.trace.service import latest_receipts
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
    """Sends reminders to overdue hops of our traces; receives and relays them as a hop."""

    def __init__(
        self,
        me: str,
        peers: PeersService,
        delivery: DeliveryService,
        store: TraceStorage,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        deadlines: TraceDeadlines,
    ) -> None:
        self._me = me
        self._peers = peers
        self._delivery = delivery
        self._store = store
        self._clock = clock
        self._work = work
        self._deadlines = deadlines

    def register(self, dispatcher: Dispatcher[W]) -> None:
        """Give `dispatcher` `trace.reminder` and its handler."""
        dispatcher.register_effect(TraceReminder, self.on_reminder, requires=Service.TRACES)

    # -- the originator -----------------------------------------------------------------

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
        receipts = latest_receipts(await self._store.get_items(trace.id))
        late = [h for h in hop_deadlines(receipts, period, now) if h.overdue]
        if not late or not _due(late, await self._store.get_reminders(trace.id), period, now):
            return 0  # read without a write transaction: the common case of a late trace
        sent = 0
        async with self._work() as work:
            # Read again where it is written: nothing is sent twice.
            for hop in _due(late, await work.get_reminders(trace.id), period, now):
                to = await self._route(hop.country, receipts[0].country)
                if to is None:
                    continue  # neither the hop nor the first hop is our peer now
                await self._send(work, trace, hop, to, now)
                sent += 1
        return sent

    async def _route(self, country: str, then: str | None) -> str | None:
        """`country` if it is our active peer, else `then` if that is, else None."""
        for candidate in (country, then):
            if candidate and await active_peer(self._peers, candidate):
                return candidate
        return None

    async def _send(
        self, work: W, trace: StoredTrace, hop: HopDeadline, to: str, now: datetime
    ) -> None:
        count = await work.add_reminder(trace.id, hop.position, hop.country, now)
        await work.add_audit_entry(
            now,
            AuditEvent(
                ACTOR,
                "trace.remind",
                f"trace/{trace.trace_id.hex()}",
                {
                    "position": hop.position,
                    "country": hop.country,
                    "due": hop.due_at.isoformat(),
                    "count": count,
                    "via": None if to == hop.country else to,
                },
            ),
        )
        message = TraceReminder(
            trace_id=trace.trace_id,
            position=hop.position,
            country=hop.country,
            due_ms=to_ms(hop.due_at),
            delivery_id=os.urandom(16),
        )
        await self._delivery.send(to, message, work)

    # -- a hop --------------------------------------------------------------------------

    async def on_reminder(self, message: TraceReminder, peer: Peer, work: W) -> Ack:
        """Count a reminder for this hop, or pass one for a later hop on.

        Raises:
            ProtocolError: the trace is not known here, or the reminder is not for this
                hop or one after it, or it comes from neither the hop before nor the
                originator.
        """
        trace = await work.get_trace(message.trace_id)
        what = f"trace.reminder: hop {message.position} ({message.country})"
        if trace is None:
            raise ProtocolError(f"trace {message.trace_id.hex()} is not known here")
        ours = message.position == trace.position and message.country == self._me
        if trace.position == 0 or not (ours or message.position > trace.position):
            raise ProtocolError(
                f"{what} of trace {message.trace_id.hex()} is not at this hop "
                f"({self._me} is hop {trace.position})"
            )
        if peer.country not in (trace.prev_country, trace.originator):
            raise ProtocolError(
                f"{what} comes from the hop before ({trace.prev_country}) or the "
                f"originator ({trace.originator}), not {peer.country}"
            )
        if not ours:
            to = await self._route(message.country, trace.next_country)
            if to is None:
                raise ProtocolError(f"{what}: the trace was not forwarded from here")
            onward = msgspec.structs.replace(message, delivery_id=os.urandom(16))
            await self._delivery.send(to, onward, work)
            return Ack()
        now = self._clock.now()
        count = await work.add_reminder(trace.id, trace.position, self._me, now)
        await work.add_audit_entry(
            now,
            AuditEvent(
                f"peer:{peer.country}",
                "trace.reminder",
                f"trace/{trace.trace_id.hex()}",
                {
                    "position": trace.position,
                    "originator": trace.originator,
                    "due": from_ms(message.due_ms).isoformat(),
                    "count": count,
                },
            ),
        )
        return Ack()
