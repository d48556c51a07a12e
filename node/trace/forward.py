"""Moving a trace on: the chain a node holds, forwards, and where the originator's trace
stands after each report (PROTOCOL.md §3.7).

A node keeps every signed item it receives or signs (`TraceItem`); the chain
is read from them: each position's latest receipt (one that verifies under
the keys given before any that does not, then a final one before any other),
the answers, and the `needs_information` receipts a hop replaced by a later
one (`held_chain`). A forward carries the chain proper up to the hop that
forwards (`chain_upto`: latest receipts and the answers they name).

Every `trace.request` leaves through `Onward.forward`, which signs the
`forward` statement vouching for the next hop's key (docs/adr/0008): kept,
and reported to the originator when we are a hop (with the answer it
follows, in one `trace.report`), whoever forwards (a hop answering
`forwarded`, the originator forwarding what a hop could not, either after a
peering is added).

`Onward` does what moves a trace on outside a hop's own answer:
- the originator, after each report (`after_report`): a hop that answered
  `forwarded` to a country it is not a peer of left the trace waiting; the
  originator forwards it itself when it is that country's peer (and tells
  the hop, `trace.forwarded`, so that exactly one of them does), else the
  trace waits ("no peering with XXX"); a `needs_information` answer not yet
  replied to makes it wait for our reply;
- either side, when a peering is added (`peering_added`, called by the
  peer registry through the hook the composition root gives it) or when the
  node starts (`resume_waiting`: a peer added by a process that could not
  sign): every trace waiting for a peering with an active peer goes on;
- reports toward the originator (`report`: what a hop signed in one message,
  in one `trace.report`): straight to it when it is our peer, else to the hop
  that sent us the trace;
- messages from the originator to a hop (`toward_hop`): straight to it when
  it is our peer, else to the latest hop before it that is, which relays it
  forward along the chain (each hop between forwarded the trace itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import BadSignatureError, NotFoundError, ValidationError
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import to_ms
from node.protocol.keyring import KeyHistory
from node.protocol.messages import Ack, Request
from node.protocol.model import Peer, PeerStatus
from node.protocol.peers import PeersService
from node.trace.chain import vouched_keys
from node.trace.intake import checked, item_of
from node.trace.messages import TraceForwarded, TraceReport, TraceRequest
from node.trace.model import ItemKind, StoredTrace, TraceDeadlines, TraceItem, TraceStatus
from node.trace.receipts import (
    AnswerStatement,
    Outcome,
    ReceiptStatement,
    ReplyStatement,
    RequestStatement,
    read,
    sign_forward,
    signed_part,
)
from node.trace.storage import TraceStorage, TraceWork

W = TypeVar("W", bound=TraceWork)


def own_item(peers: PeersService, data: bytes) -> TraceItem:
    """A statement this node has just signed, as stored; its signature remembered as valid
    (`PeersService.made`), so that reading it back (the chain it forwards, the forwards
    that vouch) checks nothing."""
    signed = signed_part(data)
    peers.made(signed.signature, signed.statement)
    return item_of(data)


def unpeered_note(country: str, target: str) -> str:
    """The `note` of a `forwarded` answer whose hop could not forward: no peering."""
    return f"{country} is not a peer of {target}"


def waiting_note(target: str) -> str:
    """The note of a trace waiting for a peering with `target`, on both sides."""
    return f"no peering with {target}"


def waited_for(trace: StoredTrace) -> str | None:
    """The country a trace waits for a peering with, or None: at the originator, the one
    its note names; at a hop that answered `forwarded`, the next country."""
    if trace.status is not TraceStatus.WAITING:
        return None
    if trace.position == 0:
        prefix = waiting_note("")
        return trace.note.removeprefix(prefix) if trace.note.startswith(prefix) else None
    return trace.next_country if trace.outcome == Outcome.FORWARDED.value else None


@dataclass(frozen=True, slots=True)
class HeldReceipt:
    """A position's latest receipt as held: its bytes and what it says."""

    item: TraceItem
    receipt: ReceiptStatement


def _verifies(item: TraceItem, keys: KeyHistory, items: Sequence[TraceItem]) -> bool:
    try:
        return checked(item, keys, items) is True
    except BadSignatureError:
        return False


def _forwarded(items: Sequence[TraceItem], keys: KeyHistory, position: int, by: str) -> bool:
    """Whether we hold `by`'s verified forward of the trace from hop `position`."""
    return any(
        i.kind is ItemKind.FORWARD
        and i.position == position + 1
        and i.country == by
        and _verifies(i, keys, items)
        for i in items
    )


def latest_receipts(
    items: Sequence[TraceItem], keys: KeyHistory | None = None
) -> dict[int, HeldReceipt]:
    """Each position's latest receipt: with `keys`, one that verifies under them before
    any that does not (an unchecked forgery never displaces a good one); then final
    before answered (`needs_information`) before pending, then the latest signed, then
    the latest kept (a hop's next question, signed within the same millisecond)."""
    latest: dict[int, tuple[tuple[bool, bool, bool, int], HeldReceipt]] = {}
    for item in items:
        if item.kind is not ItemKind.RECEIPT:
            continue
        receipt = read(item.item, ReceiptStatement)[1]
        good = keys is None or _verifies(item, keys, items)
        rank = (good, receipt.final, receipt.answered_ms is not None, receipt.signed_ms)
        kept = latest.get(item.position)
        if kept is None or rank >= kept[0]:
            latest[item.position] = (rank, HeldReceipt(item, receipt))
    return {position: latest[position][1] for position in sorted(latest)}


def chain_upto(
    items: Sequence[TraceItem], upto: int | None = None, keys: KeyHistory | None = None
) -> tuple[list[bytes], list[bytes]]:
    """The chain proper (up to position `upto`): the latest receipts in hop order and the
    answers they name."""
    latest = [h for p, h in latest_receipts(items, keys).items() if upto is None or p <= upto]
    named = {h.receipt.answer_hash for h in latest}
    answers = [i.item for i in items if i.kind is ItemKind.ANSWER and i.item_hash in named]
    return [h.item.item for h in latest], answers


def held_chain(
    items: Sequence[TraceItem], keys: KeyHistory | None = None
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """All a node holds of a chain, for `chain.verify_chain`: the latest receipts, every
    answer, and the answered `needs_information` receipts replaced by a later one."""
    latest = latest_receipts(items, keys)
    kept = {h.item.item_hash for h in latest.values()}
    replaced = [
        i.item
        for i in items
        if i.kind is ItemKind.RECEIPT
        and i.item_hash not in kept
        and read(i.item, ReceiptStatement)[1].outcome is Outcome.NEEDS_INFORMATION
    ]
    answers = [i.item for i in items if i.kind is ItemKind.ANSWER]
    return [h.item.item for h in latest.values()], answers, replaced


def vouching(items: Sequence[TraceItem]) -> tuple[list[bytes], list[bytes]]:
    """The `forward` and rotation statements held, for `chain.vouched_keys`."""
    forwards = [i.item for i in items if i.kind is ItemKind.FORWARD]
    rotations = [i.item for i in items if i.kind is ItemKind.ROTATION]
    return forwards, rotations


def answer_of(items: Sequence[TraceItem], receipt: ReceiptStatement) -> AnswerStatement | None:
    """The answer `receipt` names, if held."""
    for item in items:
        if item.kind is ItemKind.ANSWER and item.item_hash == receipt.answer_hash:
            return read(item.item, AnswerStatement)[1]
    return None


def replies_to(items: Sequence[TraceItem], answer_hash: bytes | None) -> list[ReplyStatement]:
    """The replies held to the question whose answer has `answer_hash`."""
    replies = [read(i.item, ReplyStatement)[1] for i in items if i.kind is ItemKind.REPLY]
    return [r for r in replies if r.answer_hash == answer_hash]


@dataclass(frozen=True, slots=True)
class Question:
    """A hop's question that waits for the originator's reply."""

    position: int
    country: str
    answer_hash: bytes
    text: str


def open_question(items: Sequence[TraceItem], keys: KeyHistory | None = None) -> Question | str:
    """The question the trace waits on us to reply to, or why there is none (with `keys`,
    read from the receipts that verify first: no forgery asks)."""
    latest = latest_receipts(items, keys)
    if not latest:
        return "no hop has answered it yet"
    position, held = next(reversed(latest.items()))
    receipt = held.receipt
    if receipt.outcome is not Outcome.NEEDS_INFORMATION:
        said = receipt.outcome.value if receipt.outcome else "not answered yet"
        return f"its last hop, {receipt.country} (hop {position}), has {said}"
    assert receipt.answer_hash is not None
    if replies_to(items, receipt.answer_hash):
        return f"the question of {receipt.country} (hop {position}) was replied to already"
    answer = answer_of(items, receipt)
    text = answer.details.get("question", "") if answer else ""
    return Question(position, receipt.country, receipt.answer_hash, text)


class Onward(Generic[W]):
    """Forwards a trace (signing the `forward` that vouches for the next hop's key), where a
    hop could not too, and carries messages along the chain (module docstring)."""

    def __init__(
        self,
        me: str,
        signing_key: Ed25519PrivateKey,
        peers: PeersService,
        delivery: DeliveryService,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        deadlines: TraceDeadlines,
        store: TraceStorage | None = None,
    ) -> None:
        self._me = me
        self._key = signing_key
        self._peers = peers
        self._delivery = delivery
        self._clock = clock
        self._work = work
        self._deadlines = deadlines
        self._store = store

    async def peer(self, country: str) -> Peer | None:
        """`country` if it is our active peer, else None."""
        try:
            peer = await self._peers.get(country)
        except NotFoundError:
            return None
        return peer if peer.status is PeerStatus.ACTIVE else None

    async def chain_keys(
        self, trace: StoredTrace, items: Sequence[TraceItem], history: KeyHistory | None = None
    ) -> KeyHistory:
        """Every key we have seen (our peers', ours: `history` if given) and those the
        chain's forwards vouch for (`chain.vouched_keys`)."""
        if history is None:
            history = await self._peers.key_history()
        forwards, rotations = vouching(items)
        keys, _vouched = vouched_keys(
            history, trace.originator, trace.trace_id, forwards, rotations
        )
        return keys

    async def toward_originator(self, trace: StoredTrace) -> str:
        """Where reports go: the originator when it is our peer, else the hop that sent
        us the trace."""
        to = trace.originator if await self.peer(trace.originator) else trace.prev_country
        assert to is not None
        return to

    async def report(
        self, work: W, trace: StoredTrace, items: Sequence[bytes], to: str | None = None
    ) -> None:
        """Send signed items toward the originator, in one `trace.report` (`to`, if the
        caller looked it up already: `toward_originator`)."""
        if to is None:
            to = await self.toward_originator(trace)
        body = TraceReport(trace_id=trace.trace_id, items=list(items), delivery_id=os.urandom(16))
        await self._delivery.send(to, body, work)

    async def forward(
        self,
        work: W,
        trace: StoredTrace,
        to: Peer,
        position: int,
        items: Sequence[TraceItem] | None = None,
        history: KeyHistory | None = None,
    ) -> bytes:
        """Send our peer `to` the trace for hop `position`, with the chain held up to the
        hop before, and vouch for its key: the signed `forward` statement names the key we
        trust for it; kept, and returned (a hop reports it to the originator with what
        else it signed in this message). `items`: the trace's items if the caller holds
        them all already; `history`: our key history, if it read it in this message."""
        now = self._clock.now()
        if items is None:
            items = await work.get_items(trace.id)
        keys = await self.chain_keys(trace, items, history)
        receipts, answers = chain_upto(items, position - 1, keys)
        vouch = sign_forward(
            self._key, trace.trace_id, position, self._me, to.country, to.signing_key, to_ms(now)
        )
        await work.add_item(trace.id, own_item(self._peers, vouch), now)
        _s, request = read(trace.request, RequestStatement)
        # The sender sets the next hop's deadline (PROTOCOL.md §3.8).
        deadline = now + self._deadlines.period(request.fields.priority)
        message = TraceRequest(
            trace_id=trace.trace_id,
            position=position,
            request=trace.request,
            receipts=receipts,
            answers=answers,
            deadline_ms=to_ms(deadline),
            delivery_id=os.urandom(16),
        )
        await self._delivery.send(to.country, message, work)
        return vouch

    async def toward_hop(
        self, work: W, trace: StoredTrace, position: int, message: Request[Ack]
    ) -> str:
        """Send the originator's `message` toward hop `position`; the country sent to.

        Raises:
            ValidationError: no hop up to `position` is our peer any more.
        """
        items = await work.get_items(trace.id)
        latest = latest_receipts(items, await self.chain_keys(trace, items))
        hops = {p: h.receipt.country for p, h in latest.items()}
        for at in range(position, 0, -1):
            if at in hops and await self.peer(hops[at]):
                await self._delivery.send(hops[at], message, work)
                return hops[at]
        raise ValidationError(
            f"no hop up to hop {position} of trace {trace.trace_id.hex()} is a peer any more: "
            "nothing can reach it"
        )

    async def after_report(
        self, work: W, trace: StoredTrace, known: tuple[list[TraceItem], KeyHistory] | None = None
    ) -> None:
        """Where our trace stands once a report is kept; forward it if a hop could not.
        Only receipts that verify count when one does (an unchecked forgery moves nothing).
        `known`: the trace's items and their `chain_keys`, if the caller has them."""
        if known is None:
            items = await work.get_items(trace.id)
            keys = await self.chain_keys(trace, items)
        else:
            items, keys = known
        latest = latest_receipts(items, keys)
        if not latest:
            return
        position, held = next(reversed(latest.items()))
        receipt = held.receipt
        status, note, outcome = TraceStatus.OPEN, "", None
        if receipt.final and receipt.outcome is not Outcome.FORWARDED:
            status, outcome = TraceStatus.ANSWERED, receipt.outcome
        elif receipt.outcome is Outcome.NEEDS_INFORMATION:
            if not replies_to(items, receipt.answer_hash):
                status = TraceStatus.WAITING
                note = f"{receipt.country} (hop {position}) needs information: trace reply"
        elif receipt.final and receipt.next_country is not None:
            answer = answer_of(items, receipt)
            target = receipt.next_country
            stuck = answer is not None and answer.details.get("note") == unpeered_note(
                receipt.country, target
            )
            if stuck and trace.next_country == target:
                note = f"forwarded to {target} by us"
            elif stuck and _forwarded(items, keys, position, receipt.country):
                note = f"forwarded to {target} by {receipt.country} once peered"
            elif stuck:
                to = await self.peer(target)
                if to is None:
                    status, note = TraceStatus.WAITING, waiting_note(target)
                else:
                    await self._forward_for(work, trace, position, to)
                    return
        assert outcome is None or isinstance(outcome, Outcome)
        await work.set_trace(
            trace.id, status, outcome.value if outcome else None, trace.next_country, note
        )

    async def _forward_for(self, work: W, trace: StoredTrace, position: int, to: Peer) -> None:
        """As the originator, forward the trace that hop `position` could not, and tell it."""
        await self.forward(work, trace, to, position + 1)
        country = to.country
        await work.set_trace(
            trace.id, TraceStatus.OPEN, None, country, f"forwarded to {country} by us"
        )
        notice = TraceForwarded(
            trace_id=trace.trace_id, position=position, delivery_id=os.urandom(16)
        )
        await self.toward_hop(work, trace, position, notice)
        await work.add_audit_entry(
            self._clock.now(),
            AuditEvent(
                "node",
                "trace.forward",
                f"trace/{trace.trace_id.hex()}",
                {"position": position + 1, "to": country, "for": position},
            ),
        )

    async def peering_added(self, peer: Peer) -> None:
        """Move on every trace waiting for a peering with `peer`'s country (ours as the
        originator, or ours as the hop that could not forward)."""
        await self._resume(peer.country)

    async def resume_waiting(self) -> None:
        """Move on every trace waiting for a peering with a country that is our active peer
        by now (at start: a peer may have been added by a process without our key)."""
        await self._resume(None)

    async def _resume(self, country: str | None) -> None:
        """Move on the traces waiting for a peering with `country` (None: any), if it is
        our active peer."""
        if self._store is None:
            return
        for waiting in await self._store.list_traces(TraceStatus.WAITING):
            async with self._work() as work:
                trace = await work.get_trace(waiting.trace_id, waiting.position)
                if trace is None or trace.status is not TraceStatus.WAITING:
                    continue
                target = waited_for(trace)
                if target is None or country not in (None, target):
                    continue
                to = await self.peer(target)
                if to is None:
                    continue
                if trace.position == 0:
                    await self.after_report(work, trace)
                else:
                    await self._hop_forwards(work, trace, to)

    async def _hop_forwards(self, work: W, trace: StoredTrace, to: Peer) -> None:
        """As the hop that answered `forwarded` to `to` and waited for a peering, forward
        (and report our `forward` statement)."""
        await self.report(work, trace, [await self.forward(work, trace, to, trace.position + 1)])
        await work.set_trace(trace.id, TraceStatus.ANSWERED, trace.outcome, to.country, "")
        await work.add_audit_entry(
            self._clock.now(),
            AuditEvent(
                "node",
                "trace.forward",
                f"trace/{trace.trace_id.hex()}",
                {"position": trace.position + 1, "to": to.country, "waited": True},
            ),
        )
