"""Moving a trace on: the chain a node holds, forwards, and where the originator's trace
stands after each report (PROTOCOL.md §3.7).

A node keeps every signed item it receives or signs (`TraceItem`); the chain
is read from them: each position's latest receipt (a final one before any
other), the answers, and the `needs_information` receipts a hop replaced by a
later one (`held_chain`). A forward carries the chain proper up to the hop
that forwards (`chain_upto`: latest receipts and the answers they name).

`Onward` does what moves a trace on outside a hop's own answer:
- the originator, after each report (`after_report`): a hop that answered
  `forwarded` to a country it is not a peer of left the trace waiting; the
  originator forwards it itself when it is that country's peer (and tells
  the hop, `trace.forwarded`, so that exactly one of them does), else the
  trace waits ("no peering with XXX"); a `needs_information` answer not yet
  replied to makes it wait for our reply;
- either side, when a peering is added (`peering_added`, called by the
  peer registry through the hook the composition root gives it): every trace
  waiting for a peering with that country goes on;
- messages from the originator to a hop (`toward_hop`): straight to it when
  it is our peer, else to the latest hop before it that is, which relays it
  forward along the chain (each hop between forwarded the trace itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import NotFoundError, ValidationError
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import to_ms
from node.protocol.messages import Ack, Request
from node.protocol.model import Peer, PeerStatus
from node.protocol.peers import PeersService
from node.trace.messages import TraceForwarded, TraceRequest
from node.trace.model import ItemKind, StoredTrace, TraceItem, TraceStatus
from node.trace.receipts import (
    AnswerStatement,
    Outcome,
    ReceiptStatement,
    ReplyStatement,
    RequestStatement,
    read,
)
from node.trace.request import Priority
from node.trace.storage import TraceStorage, TraceWork

W = TypeVar("W", bound=TraceWork)


def unpeered_note(country: str, target: str) -> str:
    """The `note` of a `forwarded` answer whose hop could not forward: no peering."""
    return f"{country} is not a peer of {target}"


def waiting_note(target: str) -> str:
    """The note of a trace waiting for a peering with `target`, on both sides."""
    return f"no peering with {target}"


@dataclass(frozen=True, slots=True)
class HeldReceipt:
    """A position's latest receipt as held: its bytes and what it says."""

    item: TraceItem
    receipt: ReceiptStatement


def _rank(held: HeldReceipt) -> tuple[bool, bool, int]:
    receipt = held.receipt
    return receipt.final, receipt.answered_ms is not None, receipt.signed_ms


def latest_receipts(items: Sequence[TraceItem]) -> dict[int, HeldReceipt]:
    """Each position's latest receipt: final before answered before pending, then the
    latest signed, then the latest kept."""
    latest: dict[int, HeldReceipt] = {}
    for item in items:
        if item.kind is not ItemKind.RECEIPT:
            continue
        held = HeldReceipt(item, read(item.item, ReceiptStatement)[1])
        kept = latest.get(item.position)
        if kept is None or _rank(held) >= _rank(kept):
            latest[item.position] = held
    return dict(sorted(latest.items()))


def chain_upto(
    items: Sequence[TraceItem], upto: int | None = None
) -> tuple[list[bytes], list[bytes]]:
    """The chain proper (up to position `upto`): the latest receipts in hop order and the
    answers they name."""
    latest = [h for p, h in latest_receipts(items).items() if upto is None or p <= upto]
    named = {h.receipt.answer_hash for h in latest}
    answers = [i.item for i in items if i.kind is ItemKind.ANSWER and i.item_hash in named]
    return [h.item.item for h in latest], answers


def held_chain(items: Sequence[TraceItem]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """All a node holds of a chain, for `chain.verify_chain`: the latest receipts, every
    answer, and the answered `needs_information` receipts replaced by a later one."""
    latest = latest_receipts(items)
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


def open_question(items: Sequence[TraceItem]) -> Question | str:
    """The question the trace waits on us to reply to, or why there is none."""
    latest = latest_receipts(items)
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
    """Forwards a trace where a hop could not, and carries the originator's messages to
    its hops (module docstring)."""

    def __init__(
        self,
        me: str,
        peers: PeersService,
        delivery: DeliveryService,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        deadlines: Mapping[Priority, timedelta],
        store: TraceStorage | None = None,
    ) -> None:
        self._me = me
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

    async def forward(self, work: W, trace: StoredTrace, to: str, position: int) -> None:
        """Send `to` the trace for hop `position`, with the chain held up to the hop before."""
        items = await work.get_items(trace.id)
        receipts, answers = chain_upto(items, position - 1)
        _s, request = read(trace.request, RequestStatement)
        deadline = self._clock.now() + self._deadlines[request.fields.priority]
        message = TraceRequest(
            trace_id=trace.trace_id,
            position=position,
            request=trace.request,
            receipts=receipts,
            answers=answers,
            deadline_ms=to_ms(deadline),
            delivery_id=os.urandom(16),
        )
        await self._delivery.send(to, message, work)

    async def toward_hop(
        self, work: W, trace: StoredTrace, position: int, message: Request[Ack]
    ) -> str:
        """Send the originator's `message` toward hop `position`; the country sent to.

        Raises:
            ValidationError: no hop up to `position` is our peer any more.
        """
        hops = {
            p: h.receipt.country for p, h in latest_receipts(await work.get_items(trace.id)).items()
        }
        for at in range(position, 0, -1):
            if at in hops and await self.peer(hops[at]):
                await self._delivery.send(hops[at], message, work)
                return hops[at]
        raise ValidationError(
            f"no hop up to hop {position} of trace {trace.trace_id.hex()} is a peer any more: "
            "nothing can reach it"
        )

    async def after_report(self, work: W, trace: StoredTrace) -> None:
        """Where our trace stands once a report is kept; forward it if a hop could not."""
        items = await work.get_items(trace.id)
        latest = latest_receipts(items)
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
            elif stuck:
                if await self.peer(target) is None:
                    status, note = TraceStatus.WAITING, waiting_note(target)
                else:
                    await self._forward_for(work, trace, position, target)
                    return
        assert outcome is None or isinstance(outcome, Outcome)
        await work.set_trace(
            trace.id, status, outcome.value if outcome else None, trace.next_country, note
        )

    async def _forward_for(self, work: W, trace: StoredTrace, position: int, to: str) -> None:
        """As the originator, forward the trace that hop `position` could not, and tell it."""
        await self.forward(work, trace, to, position + 1)
        await work.set_trace(trace.id, TraceStatus.OPEN, None, to, f"forwarded to {to} by us")
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
                {"position": position + 1, "to": to, "for": position},
            ),
        )

    async def peering_added(self, peer: Peer) -> None:
        """Move on every trace waiting for a peering with `peer`'s country (ours as the
        originator, or ours as the hop that could not forward)."""
        if self._store is None:
            return
        for waiting in await self._store.list_traces(TraceStatus.WAITING):
            async with self._work() as work:
                trace = await work.get_trace(waiting.trace_id, waiting.position)
                if trace is None or trace.status is not TraceStatus.WAITING:
                    continue
                if trace.position == 0 and trace.note == waiting_note(peer.country):
                    await self.after_report(work, trace)
                elif (
                    trace.position > 0
                    and trace.outcome == Outcome.FORWARDED.value
                    and trace.next_country == peer.country
                ):
                    await self._hop_forwards(work, trace, peer.country)

    async def _hop_forwards(self, work: W, trace: StoredTrace, to: str) -> None:
        """As the hop that answered `forwarded` to `to` and waited for a peering, forward."""
        await self.forward(work, trace, to, trace.position + 1)
        await work.set_trace(trace.id, TraceStatus.ANSWERED, trace.outcome, to, "")
        await work.add_audit_entry(
            self._clock.now(),
            AuditEvent(
                "node",
                "trace.forward",
                f"trace/{trace.trace_id.hex()}",
                {"position": trace.position + 1, "to": to, "waited": True},
            ),
        )
