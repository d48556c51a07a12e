"""What the originator sends a hop: its reply to the hop's question, the notice that
it forwarded the trace the hop could not (PROTOCOL.md §3.7), and the reminder that its
answer is overdue (§3.8).

`TraceNotices.register` gives the dispatcher `trace.reply`,
`trace.forwarded` and `trace.reminder`, all requiring the sender's `traces` policy and taking
effect once per `delivery_id`. Both travel forward along the chain: a hop
before the one they are for relays them unchanged to the country it
forwarded the trace to; the hop they are for takes them. A hop accepts them
only from the originator or from the country that sent it the trace.

- `trace.reply` carries the originator's signed reply statement
  (`receipts.ReplyStatement`): a relaying hop cannot alter it; the hop it is
  for checks the originator's signature when it holds the originator's key
  (it is its peer; else the originator's signature is as unchecked as the
  request's), that it answers the question the hop asked last (the hash of
  its `needs_information` answer), and queues the trace again for an officer.
- `trace.forwarded` tells a hop waiting for a peering that the originator
  forwarded the trace itself: the hop stops waiting, so that the trace is
  forwarded once.
- `trace.reminder` (sent by `node.trace.reminders`) is counted by the hop it
  names, with the time of the last one, and audited; it changes nothing else.

`check_reply_text` is the one rule for what an officer replies (console, CLI,
`TraceService.reply`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import MalformedEnvelopeError, ProtocolError, ValidationError
from node.lookup.text import check_chars
from node.protocol.delivery import DeliveryService
from node.protocol.dispatch import Dispatcher
from node.protocol.envelope import from_ms
from node.protocol.messages import Ack
from node.protocol.model import Peer, Service
from node.protocol.peers import PeersService
from node.trace.forward import Onward, latest_receipts
from node.trace.messages import TraceForwarded, TraceReminder, TraceReply
from node.trace.model import ItemKind, StoredTrace, TraceDeadlines, TraceItem, TraceStatus
from node.trace.receipts import MAX_REPLY_CHARS, Outcome, ReplyStatement, digest, read, verify
from node.trace.storage import TraceWork

W = TypeVar("W", bound=TraceWork)


def check_reply_text(text: str) -> str:
    """A reply to a hop's question, trimmed: 1 to `MAX_REPLY_CHARS` characters, no
    control characters (one line or several are typed without them: the hop's officer
    reads it as one paragraph).

    Raises:
        ValidationError: for the field `text`, saying what is wrong.
    """
    trimmed = text.strip()
    if not trimmed:
        raise ValidationError("text: give the reply to the hop's question", "text")
    if len(trimmed) > MAX_REPLY_CHARS:
        raise ValidationError(
            f"text: at most {MAX_REPLY_CHARS} characters (this one has {len(trimmed)})", "text"
        )
    check_chars("text", trimmed)
    return trimmed


def reply_item(data: bytes) -> TraceItem:
    """A signed reply as stored (MalformedEnvelopeError if it is not one)."""
    reply = read(data, ReplyStatement)[1]
    return TraceItem(
        reply.position, ItemKind.REPLY, reply.originator, data, digest(data), reply.replied_ms
    )


class TraceNotices(Generic[W]):
    """Relays and takes the originator's messages to a hop."""

    def __init__(
        self,
        me: str,
        peers: PeersService,
        delivery: DeliveryService,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        signing_key: Ed25519PrivateKey,
        deadlines: TraceDeadlines | None = None,
    ) -> None:
        self._me = me
        self._peers = peers
        self._delivery = delivery
        self._clock = clock
        self._onward = Onward(
            me, signing_key, peers, delivery, clock, work, deadlines or TraceDeadlines()
        )

    def register(self, dispatcher: Dispatcher[W]) -> None:
        """Give `dispatcher` the originator's messages to hops and their handlers."""
        dispatcher.register_effect(TraceReply, self.on_reply, requires=Service.TRACES)
        dispatcher.register_effect(TraceForwarded, self.on_forwarded, requires=Service.TRACES)
        dispatcher.register_effect(TraceReminder, self.on_reminder, requires=Service.TRACES)

    async def _here(
        self, work: W, message: TraceReply | TraceForwarded | TraceReminder, peer: Peer
    ) -> StoredTrace | None:
        """Our trace if `message` is for us; None once relayed to the next hop.

        Raises:
            ProtocolError: we are not a hop of the trace before or at its position, or the
                sender is neither the originator nor the country that sent us the trace.
        """
        trace = await work.get_trace(message.trace_id)
        if trace is None or trace.position == 0 or trace.position > message.position:
            raise ProtocolError(
                f"{message.wire_type}: trace {message.trace_id.hex()} has no hop "
                f"{message.position} here, nor one before it"
            )
        if peer.country not in (trace.originator, trace.prev_country):
            raise ProtocolError(
                f"{message.wire_type}: comes from the originator {trace.originator} or from "
                f"{trace.prev_country}, not {peer.country}"
            )
        if trace.position == message.position:
            return trace
        nxt = trace.next_country
        if (
            nxt is None
            or trace.outcome != Outcome.FORWARDED.value
            or not await self._onward.peer(nxt)
        ):
            raise ProtocolError(
                f"{message.wire_type}: this hop did not forward trace "
                f"{message.trace_id.hex()} to a peer, so it cannot relay it"
            )
        relayed = msgspec.structs.replace(message, delivery_id=os.urandom(16))
        await self._delivery.send(nxt, relayed, work)
        return None

    async def on_reply(self, message: TraceReply, peer: Peer, work: W) -> Ack:
        """Relay the originator's reply forward, or take it: the trace is queued again."""
        try:
            signed, reply = read(message.reply, ReplyStatement)
        except MalformedEnvelopeError as e:
            raise MalformedEnvelopeError(f"$.reply: {e}") from e
        if (reply.trace_id, reply.position) != (message.trace_id, message.position):
            raise MalformedEnvelopeError("$.reply: it is for another trace or hop")
        trace = await self._here(work, message, peer)
        if trace is None:
            return Ack()
        if reply.originator != trace.originator:
            raise MalformedEnvelopeError(
                f"$.reply: signed for {reply.originator}, not the originator"
            )
        keys = await self._peers.key_history()
        if keys.knows(trace.originator):
            verify(signed, trace.originator, reply.replied_ms, keys)
        item = reply_item(message.reply)
        items = await work.get_items(trace.id)
        if any(i.item_hash == item.item_hash for i in items):
            return Ack()  # relayed to us twice
        mine = latest_receipts(items).get(trace.position)
        asked = mine.receipt.answer_hash if mine else None
        if (
            trace.status is not TraceStatus.WAITING
            or asked != reply.answer_hash
            or (trace.outcome != Outcome.NEEDS_INFORMATION.value)
        ):
            raise ProtocolError(
                f"trace.reply: trace {trace.trace_id.hex()} is not waiting here for a reply "
                "to that question"
            )
        now = self._clock.now()
        await work.add_item(trace.id, item, now)
        await work.set_trace(
            trace.id,
            TraceStatus.QUEUED,
            trace.outcome,
            None,
            f"{trace.originator} replied: answer again",
        )
        await work.add_audit_entry(
            now,
            AuditEvent(
                f"peer:{peer.country}",
                "trace.reply.receive",
                f"trace/{trace.trace_id.hex()}",
                {"position": trace.position, "originator": trace.originator},
            ),
        )
        return Ack()

    async def on_forwarded(self, message: TraceForwarded, peer: Peer, work: W) -> Ack:
        """Relay the notice forward, or take it: we stop waiting to forward the trace."""
        trace = await self._here(work, message, peer)
        if trace is None or trace.status is not TraceStatus.WAITING:
            return Ack()  # relayed; or we forwarded it ourselves meanwhile
        if trace.outcome != Outcome.FORWARDED.value:
            raise ProtocolError(
                f"trace.forwarded: trace {trace.trace_id.hex()} waits here for a reply, "
                "not for a peering"
            )
        now = self._clock.now()
        note = f"forwarded to {trace.next_country} by the originator {trace.originator}"
        await work.set_trace(
            trace.id, TraceStatus.ANSWERED, trace.outcome, trace.next_country, note
        )
        await work.add_audit_entry(
            now,
            AuditEvent(
                f"peer:{peer.country}",
                "trace.forwarded",
                f"trace/{trace.trace_id.hex()}",
                {"position": trace.position, "to": trace.next_country},
            ),
        )
        return Ack()

    async def on_reminder(self, message: TraceReminder, peer: Peer, work: W) -> Ack:
        """Relay the reminder forward, or take it: counted, with its time, and audited.

        Raises:
            ProtocolError: as `_here`, or it names another country for our position.
        """
        trace = await self._here(work, message, peer)
        if trace is None:
            return Ack()
        if message.country != self._me:
            raise ProtocolError(
                f"trace.reminder: hop {message.position} of trace {trace.trace_id.hex()} is "
                f"{self._me} here, not {message.country}"
            )
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
