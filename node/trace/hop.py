"""A hop's side of a trace (and the relay of reports), on the federation kernel.

`TraceHop.register` gives the dispatcher `trace.request` and `trace.report`,
both requiring the sender's `traces` policy and both taking effect once per
`delivery_id` in one unit of work (claim, stored trace and items, outgoing
messages):
- `trace.request`: the chain so far is checked (`chain.pending_receipt`; the
  signatures of countries that are not our peers are left to the
  originator), the trace stored, the pending receipt signed; then the hop
  answers from its custody registry when the serial and make have events
  there (`decide`), else the trace is queued for an officer (`answer`).
- `trace.report`: its items checked and kept by the originator (position 0),
  all or none; relayed unchanged toward it by a hop.
What a hop signs of a trace in one message goes to the originator in one
`trace.report`: the pending receipt alone when an officer is to answer; the
pending receipt, answer, final receipt and `forward` statement together when
the registry answers at once. Reports go straight to the originator when it
is our peer, else to the hop before us. A `forwarded` answer sends
`trace.request` to the next country itself; never to a country already on
the chain (then `end_of_chain` naming the loop, or, for the originator's own
country, saying that its registry holds the rest); when the next country is
not our peer, the answer says so and the trace waits here
(`node.trace.forward`: the originator forwards it if it can, else whichever
of us first adds the peering). A `needs_information` answer makes the trace
wait here for the originator's reply (`node.trace.replies`), then it is
queued again for an officer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import (
    MalformedEnvelopeError,
    NotFoundError,
    ProtocolError,
    ValidationError,
)
from node.protocol.delivery import DeliveryService
from node.protocol.dispatch import Dispatcher
from node.protocol.envelope import from_ms, to_ms
from node.protocol.keyring import KeyHistory
from node.protocol.messages import Ack
from node.protocol.model import Peer, Service
from node.protocol.peers import PeersService
from node.protocol.ratelimit import RateLimitConfig, TokenBuckets
from node.records.reference import ReferenceTable
from node.trace.chain import pending_receipt
from node.trace.custody import CustodyService
from node.trace.disclosure import disclosed
from node.trace.forward import Onward, own_item, unpeered_note
from node.trace.intake import MAX_ROUNDS, admit, item_of, read_item
from node.trace.messages import TraceReport, TraceRequest
from node.trace.model import (
    CustodyEvent,
    EventKind,
    ItemKind,
    StoredTrace,
    TraceDeadlines,
    TraceItem,
    TraceStatus,
)
from node.trace.receipts import (
    Outcome,
    ReceiptStatement,
    RequestStatement,
    answered,
    read,
    sign_answer,
    sign_receipt,
)
from node.trace.request import from_wire
from node.trace.storage import TraceWork

W = TypeVar("W", bound=TraceWork)


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer: its outcome, details and the country it forwards to."""

    outcome: Outcome
    details: dict[str, str]
    next_country: str | None = None


def decide(events: Sequence[CustodyEvent], me: str) -> Decision | None:
    """The automatic answer from a firearm's custody events (oldest first), or None (no
    events: an officer answers). The last event decides: exported or passed to a party
    abroad → forwarded there; else the last legal possessor here (or its destruction)."""
    if not events:
        return None
    last = events[-1]
    details = {
        "party": last.to_party,
        "date": last.event_date.isoformat(),
        "event": last.event.value,
        "licence_reference": last.licence_reference,
    }
    abroad = last.to_country and last.to_country != me
    if abroad and last.event in (EventKind.EXPORTED, EventKind.SOLD, EventKind.TRANSFERRED):
        return Decision(Outcome.FORWARDED, details, last.to_country)
    if last.event is EventKind.DESTROYED:
        details["note"] = "destroyed"
    return Decision(Outcome.END_OF_CHAIN, details)


@dataclass(frozen=True, slots=True)
class Held:
    """What a handler read and wrote of a trace in one message, handed on, not read again."""

    #: The trace's items, as stored.
    items: list[TraceItem]
    #: The originator if it is our active peer (reports go straight to it), else None.
    origin: Peer | None
    #: Our key history (`PeersService.key_history`).
    history: KeyHistory


#: New trace requests one peer may send: a burst, then one every 10 s (360 an hour).
TRACE_LIMIT = RateLimitConfig(capacity=200, rate=0.1)


class TraceHop(Generic[W]):
    """Receives traces, answers them (from custody or by an officer), forwards, relays."""

    def __init__(
        self,
        me: str,
        signing_key: Ed25519PrivateKey,
        peers: PeersService,
        delivery: DeliveryService,
        custody: CustodyService,
        reference: ReferenceTable,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        limit: RateLimitConfig = TRACE_LIMIT,
        deadlines: TraceDeadlines | None = None,
    ) -> None:
        self._me = me
        self._deadlines = deadlines or TraceDeadlines()
        self._key = signing_key
        self._admitted = TokenBuckets(limit)
        self._peers = peers
        self._delivery = delivery
        self._custody = custody
        self._ref = reference
        self._clock = clock
        self._work = work
        self._onward = Onward(me, signing_key, peers, delivery, clock, work, self._deadlines)

    def register(self, dispatcher: Dispatcher[W]) -> None:
        """Give `dispatcher` the trace messages and their handlers."""
        dispatcher.register_effect(TraceRequest, self.on_request, requires=Service.TRACES)
        dispatcher.register_effect(TraceReport, self.on_report, requires=Service.TRACES)

    async def keys(self) -> tuple[KeyHistory, set[str]]:
        """Every key we have seen (our peers', ours) with its validity, and their countries."""
        history = await self._peers.key_history()
        return history, history.countries()

    async def _peer(self, country: str) -> Peer | None:
        return await self._onward.peer(country)

    # -- receiving a trace ------------------------------------------------------------

    async def on_request(self, message: TraceRequest, peer: Peer, work: W) -> Ack:
        """Check the chain, store the trace, send the pending receipt, answer if we can."""
        if await work.get_trace(message.trace_id, message.position) is not None:
            return Ack()  # sent again under another delivery id: handled once
        now = self._clock.now()
        # Each new trace is stored and may be forwarded: a peer's flood is slowed (its
        # outbox retries later), never stored.
        self._admitted.charge(peer.country, 1, now.timestamp(), "new trace requests")
        try:
            _signed, request = read(message.request, RequestStatement)
        except MalformedEnvelopeError as e:
            raise MalformedEnvelopeError(f"$.request: {e}") from e
        chain = [_statement(r, ItemKind.RECEIPT) for r in message.receipts] + [
            _statement(a, ItemKind.ANSWER) for a in message.answers
        ]
        senders = {request.originator, *(c.country for c in chain if c.kind is ItemKind.RECEIPT)}
        resolve, known = await self.keys()
        pending = pending_receipt(
            message.request,
            message.receipts,
            message.answers,
            resolve,
            self._me,
            to_ms(now),
            unchecked=frozenset(senders - known),
        )
        if (pending.trace_id, pending.position) != (message.trace_id, message.position):
            raise MalformedEnvelopeError(
                f"$.position: the chain puts this hop at {pending.position}, "
                f"not {message.position} (or the trace id differs)"
            )
        receipts = [c for c in chain if c.kind is ItemKind.RECEIPT]
        before = receipts[-1].country if receipts else request.originator
        if peer.country not in (before, request.originator):
            raise ProtocolError(
                f"trace.request: hop {message.position} is sent by {before} or the "
                f"originator {request.originator}, not {peer.country}"
            )
        trace = StoredTrace(
            id=0,
            trace_id=message.trace_id,
            position=message.position,
            originator=request.originator,
            prev_country=peer.country,
            priority=request.fields.priority.value,
            status=TraceStatus.OPEN,
            request=message.request,
            created_at=now,
            deadline_at=from_ms(message.deadline_ms),
            outcome=None,
            next_country=None,
            note="",
            force_reason="",
        )
        trace = replace(trace, id=await work.add_trace(trace))
        for item in chain:
            await work.add_item(trace.id, item, now)
        receipt = own_item(self._peers, sign_receipt(self._key, pending))
        await work.add_item(trace.id, receipt, now)
        origin = await self._peer(request.originator)
        await work.add_audit_entry(
            now,
            AuditEvent(
                f"peer:{peer.country}",
                "trace.receive",
                f"trace/{message.trace_id.hex()}",
                {"position": message.position, "originator": request.originator},
            ),
        )
        decision = await self._automatic(request)
        if decision is None:
            await work.set_trace(trace.id, TraceStatus.QUEUED)
            toward = request.originator if origin else peer.country
            await self.report(work, trace, [receipt.item], toward)
            return Ack()
        # Answered at once: the receipt goes with the answer, in one report.
        held = Held([*chain, receipt], origin, resolve)
        await self._answer_in(work, trace, decision, "custody", held, [receipt.item])
        return Ack()

    async def _automatic(self, request: RequestStatement) -> Decision | None:
        fields = from_wire(request.fields, self._ref)
        serial = fields.firearm.serial_canonical
        make_key = self._custody.make_key(fields.firearm.make)
        if not serial or not make_key:
            return None
        return decide(await self._custody.chain(serial, make_key), self._me)

    # -- answering ----------------------------------------------------------------------

    async def answer(
        self,
        trace_id: bytes,
        outcome: Outcome,
        details: dict[str, str],
        next_country: str | None,
        actor: str,
    ) -> None:
        """An officer's answer to a trace queued at this hop.

        Raises:
            NotFoundError: no such trace at this hop.
            ValidationError: it is not waiting for an answer here, or the answer is
                inconsistent (a forward without a country, or a country without one).
        """
        if (outcome is Outcome.FORWARDED) != (next_country is not None):
            raise ValidationError("next_country: given exactly when the outcome is forwarded")
        async with self._work() as work:
            trace = await work.get_trace(trace_id)
            if trace is None or trace.position == 0:
                raise NotFoundError(f"trace {trace_id.hex()} is not at this hop")
            if trace.status is not TraceStatus.QUEUED:
                raise ValidationError(
                    f"trace {trace_id.hex()} is {trace.status.value} here, not waiting for "
                    "an answer"
                )
            if outcome is Outcome.NEEDS_INFORMATION:
                await self._may_ask(work, trace)
            await self._answer_in(work, trace, Decision(outcome, details, next_country), actor)

    async def _may_ask(self, work: W, trace: StoredTrace) -> None:
        """Refuse a question beyond the `MAX_ROUNDS` the originator keeps of a hop
        (`node.trace.intake`): it would refuse the report (`trace_full`)."""
        asked = [
            i
            for i in await work.get_items(trace.id)
            if i.kind is ItemKind.RECEIPT
            and i.position == trace.position
            and read(i.item, ReceiptStatement)[1].outcome is Outcome.NEEDS_INFORMATION
        ]
        if len(asked) >= MAX_ROUNDS:
            raise ValidationError(
                f"trace {trace.trace_id.hex()}: this hop asked {len(asked)} questions already, "
                "the most a trace keeps; answer with another outcome"
            )

    async def _answer_in(
        self,
        work: W,
        trace: StoredTrace,
        decision: Decision,
        by: str,
        held: Held | None = None,
        signed: Sequence[bytes] = (),
    ) -> None:
        """Sign the answer and the final receipt, forward if it says so, and report them
        in one `trace.report`: after `signed` (what the caller signed of the trace in this
        message), the answer, the final receipt and our `forward` statement. `held`: what
        the caller read and wrote of the trace in this message."""
        now = self._clock.now()
        if held is None:
            items, origin = await work.get_items(trace.id), await self._peer(trace.originator)
            history = None
        else:
            items, origin, history = held.items, held.origin, held.history
        toward = trace.originator if origin else trace.prev_country
        earlier = [i for i in items if i.position < trace.position]
        on_chain = {trace.originator, self._me, *(i.country for i in earlier)}
        outcome, details, next_country = decision.outcome, dict(decision.details), None
        note = ""
        status = TraceStatus.ANSWERED
        forward_to: Peer | None = None
        if outcome is Outcome.FORWARDED:
            target = decision.next_country
            assert target is not None
            if target == trace.originator:  # imported there: its own registry goes on
                outcome = Outcome.END_OF_CHAIN
                details["note"] = (
                    f"passed to {target}, the originator: its own custody registry holds the rest"
                )
            elif target in on_chain:
                outcome, details["loop"] = Outcome.END_OF_CHAIN, target
            else:
                next_country = target
                forward_to = await self._peer(target)
                if forward_to is None:
                    note = f"no peering with {target}"
                    details["note"] = unpeered_note(self._me, target)
                    status = TraceStatus.WAITING
        if outcome is Outcome.NEEDS_INFORMATION:
            status = TraceStatus.WAITING
            note = f"waiting for information from {trace.originator}"
        if outcome is Outcome.END_OF_CHAIN:
            details = disclosed(details, self._me, trace.originator, origin)
        mine = [i for i in items if i.position == trace.position and i.kind is ItemKind.RECEIPT]
        _signed, pending = read(mine[0].item, ReceiptStatement)  # the pending one came first
        answer = sign_answer(
            self._key, trace.trace_id, trace.position, self._me, outcome, details, next_country
        )
        final = answered(self._key, pending, to_ms(now), answer)
        reported = [*signed, answer, final]
        for data in (answer, final):
            item = own_item(self._peers, data)
            await work.add_item(trace.id, item, now)
            items = [*items, item]
        await work.set_trace(trace.id, status, outcome.value, next_country, note)
        await work.add_audit_entry(
            now,
            AuditEvent(
                by,
                "trace.answer",
                f"trace/{trace.trace_id.hex()}",
                {"position": trace.position, "outcome": outcome.value, "next": next_country},
            ),
        )
        if forward_to is not None:
            vouch = await self._onward.forward(
                work, trace, forward_to, trace.position + 1, items, history
            )
            reported.append(vouch)
        await self.report(work, trace, reported, toward)

    # -- reports ------------------------------------------------------------------------

    async def report(
        self, work: W, trace: StoredTrace, items: Sequence[bytes], to: str | None = None
    ) -> None:
        """Send signed items toward the originator, in one message (`Onward.report`)."""
        await self._onward.report(work, trace, items, to)

    async def on_report(self, message: TraceReport, peer: Peer, work: W) -> Ack:
        """Keep a report's items (we are the originator: each checked on arrival, within
        its bounds, `node.trace.intake`; all kept or, if one is refused, none) or relay the
        report unchanged."""
        trace = await work.get_trace(message.trace_id)
        if trace is None:
            raise ProtocolError(f"trace {message.trace_id.hex()} is not known here")
        items = [_reported(data, message.trace_id, n) for n, data in enumerate(message.items)]
        if trace.position != 0:
            await self.report(work, trace, message.items)
            return Ack()
        held = await work.get_items(trace.id)
        kept = {item.item_hash for item in held}
        new = []
        for item in items:
            if item.item_hash not in kept:  # relayed twice (or twice in one report): once
                kept.add(item.item_hash)
                new.append(item)
        if not new:
            return Ack()
        keys = await self._onward.chain_keys(trace, [*held, *new])
        now = self._clock.now()
        for item in new:
            admit(item, keys, held)
            await work.add_item(trace.id, item, now)
            held.append(item)
        await self._onward.after_report(work, trace, (held, keys))
        return Ack()


def _reported(data: bytes, trace_id: bytes, n: int) -> TraceItem:
    """Item `n` of a `trace.report` for `trace_id`, decoded strictly and NOT verified."""
    try:
        item, statement = read_item(data)
    except MalformedEnvelopeError as e:
        raise MalformedEnvelopeError(f"$.items[{n}]: {e}") from e
    if statement is not None and statement.trace_id != trace_id:
        raise MalformedEnvelopeError(f"$.items[{n}]: it is for another trace")
    return item


def _statement(data: bytes, kind: ItemKind) -> TraceItem:
    """A receipt or answer of the chain a `trace.request` carries, as stored."""
    item = item_of(data)
    if item.kind is not kind:
        where = "receipts" if kind is ItemKind.RECEIPT else "answers"
        raise MalformedEnvelopeError(f"$.{where}: holds a {item.kind.value}, not a {kind.value}")
    return item
