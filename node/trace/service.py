"""The originator's side of a trace: start it, follow it, verify its chain.

`TraceService.start` checks the request's completeness (refused unless
forced with a reason, which is stored), signs the request and sends
`trace.request` to the first hop through the outbox, in one unit of work
with the stored trace and its audit entry. The hops' receipts and answers
arrive as `trace.report` (`node.trace.hop`), are checked and kept
(`node.trace.intake`); `show` and `verify` read the chain from them with
every key we have seen (our peers' and ours, with their validity) and the
keys the chain vouches for (`forward` statements, docs/adr/0008); `export`
writes it with those keys and statements. When a hop asks a question
(`needs_information`), `reply` signs our answer and sends it toward that hop
(`node.trace.replies`). `show` also shows a trace this node is a hop of, as
far as it holds its chain. `show` and `listing` also say which hops are late
with their answer, and how late (`node.trace.deadlines`), and the reminders
sent or received (`node.trace.reminders`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import IncompleteTraceError, NotFoundError, ValidationError
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import from_ms, to_ms
from node.protocol.keyring import KeyHistory
from node.protocol.model import PeerStatus
from node.protocol.peers import PeersService
from node.records.reference import ReferenceTable
from node.trace.chain import ChainReport, ProblemKind, verify_chain
from node.trace.deadlines import (
    HopDeadline,
    answer_due,
    chain_deadlines,
    may_be_late,
    seconds_late,
)
from node.trace.export import export_chain
from node.trace.forward import (
    Onward,
    Question,
    chain_upto,
    held_chain,
    open_question,
    own_item,
    vouching,
)
from node.trace.intake import item_of
from node.trace.messages import TraceReply, TraceRequest
from node.trace.model import (
    HopReminders,
    ItemKind,
    StoredTrace,
    TraceDeadlines,
    TraceItem,
    TraceStatus,
)
from node.trace.receipts import (
    Outcome,
    ReplyStatement,
    RequestStatement,
    read,
    sign_forward,
    sign_reply,
    sign_request,
    signed_part,
)
from node.trace.replies import check_reply_text, reply_item
from node.trace.request import (
    Finding,
    RequestFields,
    TraceRequestFields,
    completeness,
    first_hop,
    to_wire,
)
from node.trace.storage import TraceStorage, TraceWork

W = TypeVar("W", bound=TraceWork)


@dataclass(frozen=True, slots=True)
class Started:
    """A trace sent: its id, the first hop and the completeness check's findings."""

    trace_id: bytes
    first_hop: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class TraceView:
    """A trace as `show` gives it: where it stands, its chain as checked, the replies to
    its hops' questions and, at the originator, the question waiting for our reply."""

    trace: StoredTrace
    report: ChainReport
    replies: tuple[ReplyStatement, ...] = ()
    question: Question | None = None
    #: At the originator, each hop's deadline; at a hop, ours alone.
    deadlines: tuple[HopDeadline, ...] = ()
    #: The reminders sent to each hop (at the originator), or received (at a hop).
    reminders: tuple[HopReminders, ...] = ()

    @property
    def overdue_seconds(self) -> float:
        """How late the latest of its hops is with its answer (0: none is)."""
        return max((d.overdue_seconds for d in self.deadlines), default=0.0)

    def _hop_json(self, hop: dict[str, Any]) -> dict[str, Any]:
        due = {d.position: d for d in self.deadlines}.get(hop["position"])
        sent = {r.position: r for r in self.reminders}.get(hop["position"])
        return (
            hop
            | (due.to_json() if due else {"due_at": None, "overdue": False, "overdue_seconds": 0})
            | {
                "reminders": sent.count if sent else 0,
                "reminded_at": sent.last_at.isoformat() if sent else None,
            }
        )

    @property
    def status(self) -> TraceStatus:
        """At the originator, `answered` once the chain is complete; else as stored
        (`waiting`: for a peering, or for our reply)."""
        if self.trace.position == 0 and self.report.complete:
            return TraceStatus.ANSWERED
        return self.trace.status

    @property
    def fields(self) -> RequestFields:
        """The request's fields as the originator signed them."""
        return request_fields(self.trace)

    def to_json(self) -> dict[str, Any]:
        """As `trace show --json` prints it."""
        question = self.question
        return {
            "trace_id": self.trace.trace_id.hex(),
            "position": self.trace.position,
            "originator": self.trace.originator,
            "status": self.status.value,
            "note": self.trace.note or None,
            "priority": self.trace.priority,
            "created_at": self.trace.created_at.isoformat(),
            "force_reason": self.trace.force_reason or None,
            "overdue": self.overdue_seconds > 0,
            "overdue_seconds": round(self.overdue_seconds),
            "hops": [self._hop_json(hop.to_json()) for hop in self.report.hops],
            "question": None
            if question is None
            else {
                "position": question.position,
                "country": question.country,
                "text": question.text,
            },
            "replies": [
                {
                    "position": r.position,
                    "text": r.text,
                    "replied_at": from_ms(r.replied_ms).isoformat(),
                }
                for r in self.replies
            ],
            "valid": self.report.valid,
        }


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """A trace as `trace list` gives it: where it stands, how late its answer is (one of
    its hops', for a trace we started; ours, for one we received) and the reminders sent
    (to its hops) or received (by us)."""

    trace: StoredTrace
    overdue_seconds: float
    #: The countries of the hops that are late (a trace we started), in hop order.
    overdue_hops: tuple[str, ...]
    reminders: int
    reminded_at: datetime | None

    @property
    def overdue(self) -> bool:
        """Whether an answer is late."""
        return self.overdue_seconds > 0

    def to_json(self) -> dict[str, Any]:
        """As `trace list --json` prints it."""
        t = self.trace
        return {
            "trace_id": t.trace_id.hex(),
            "position": t.position,
            "originator": t.originator,
            "from": t.prev_country,
            "priority": t.priority,
            "status": t.status.value,
            "note": t.note or None,
            "created_at": t.created_at.isoformat(),
            "deadline_at": t.deadline_at.isoformat() if t.deadline_at else None,
            "overdue": self.overdue,
            "overdue_seconds": round(self.overdue_seconds),
            "overdue_hops": list(self.overdue_hops),
            "reminders": self.reminders,
            "reminded_at": self.reminded_at.isoformat() if self.reminded_at else None,
            "outcome": t.outcome,
            "next_country": t.next_country,
        }


def request_fields(trace: StoredTrace) -> RequestFields:
    """A stored trace's request fields as the originator signed them (the request was
    checked when the trace was stored: by us when we started it, by the chain's check when a
    hop received it)."""
    return read(trace.request, RequestStatement)[1].fields


class TraceService(Generic[W]):
    """Traces this node originates."""

    def __init__(
        self,
        me: str,
        signing_key: Ed25519PrivateKey,
        store: TraceStorage,
        peers: PeersService,
        delivery: DeliveryService,
        reference: ReferenceTable,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        deadlines: TraceDeadlines | None = None,
    ) -> None:
        self._me = me
        self._deadlines = deadlines or TraceDeadlines()
        self._key = signing_key
        self._store = store
        self._peers = peers
        self._delivery = delivery
        self._ref = reference
        self._clock = clock
        self._work = work
        self._onward = Onward(me, signing_key, peers, delivery, clock, work, self._deadlines, store)

    async def start(
        self,
        fields: TraceRequestFields,
        actor: str,
        to: str | None = None,
        force_reason: str = "",
    ) -> Started:
        """Sign and send a trace request to its first hop.

        Raises:
            IncompleteTraceError: the completeness check found something missing and the
                request is not forced (`force_reason`); its message names each finding.
            ValidationError: no first hop, or the first hop is not our peer.
        """
        findings = completeness(fields, self._ref)
        force_reason = force_reason.strip()
        if findings and not force_reason:
            raise IncompleteTraceError(
                "the request is incomplete: "
                + "; ".join(f"{f.field}: {f.reason}" for f in findings)
                + " (send it anyway with a reason: --force REASON)"
            )
        hop = first_hop(fields, self._ref, to).country
        try:
            peer = await self._peers.get(hop)
        except NotFoundError as e:
            raise ValidationError(f"to: {hop} is not a peer of this node", "to") from e
        if peer.status is not PeerStatus.ACTIVE:
            raise ValidationError(f"to: {hop} is revoked", "to")
        now = self._clock.now()
        trace_id = os.urandom(16)
        request = sign_request(self._key, trace_id, self._me, to_ms(now), to_wire(fields))
        trace = StoredTrace(
            id=0,
            trace_id=trace_id,
            position=0,
            originator=self._me,
            prev_country=None,
            priority=fields.priority.value,
            status=TraceStatus.OPEN,
            request=request,
            created_at=now,
            deadline_at=None,
            outcome=None,
            next_country=hop,
            note="",
            force_reason=force_reason if findings else "",
        )
        message = TraceRequest(
            trace_id=trace_id,
            position=1,
            request=request,
            receipts=[],
            answers=[],
            # We set the first hop's deadline (PROTOCOL.md §3.8).
            deadline_ms=to_ms(now + self._deadlines.period(fields.priority)),
            delivery_id=os.urandom(16),
        )
        vouch = sign_forward(self._key, trace_id, 1, self._me, hop, peer.signing_key, to_ms(now))
        async with self._work() as work:
            trace_pk = await work.add_trace(trace)
            await work.add_item(trace_pk, own_item(self._peers, vouch), now)
            details: dict[str, Any] = {"to": hop, "case_reference": fields.case_reference}
            if trace.force_reason:
                details["forced"] = trace.force_reason
            await work.add_audit_entry(
                now, AuditEvent(actor, "trace.new", f"trace/{trace_id.hex()}", details)
            )
            await self._delivery.send(hop, message, work)
        return Started(trace_id, hop, findings)

    async def _trace(self, trace_id: bytes) -> StoredTrace:
        trace = await self._store.get_trace(trace_id, 0)
        if trace is None:
            raise NotFoundError(f"trace {trace_id.hex()} was not started here")
        return trace

    async def verify(self, trace_id: bytes) -> ChainReport:
        """The chain as reported to us, checked with our peers' keys (and ours)."""
        trace = await self._trace(trace_id)
        return await self._check(trace)

    async def _chain(self, trace: StoredTrace) -> tuple[KeyHistory, list[TraceItem], KeyHistory]:
        """Our keys, the items we hold of the trace, and our keys with those its forwards
        vouch for."""
        items = await self._store.get_items(trace.id)
        history = await self._peers.key_history()
        return history, items, await self._onward.chain_keys(trace, items, history)

    async def _check(self, trace: StoredTrace) -> ChainReport:
        """The chain we hold, checked; at a hop, without the problems of signatures by
        countries whose keys we neither trust nor were vouched for (the originator
        checks those)."""
        history, items, keys = await self._chain(trace)
        forwards, rotations = vouching(items)
        receipts, answers, replaced = held_chain(items, keys)
        report = verify_chain(
            trace.request, receipts, answers, history, forwards, rotations, superseded=replaced
        )
        if trace.position == 0:
            return report
        problems = tuple(
            p
            for p in report.problems
            if not (
                p.kind is ProblemKind.WRONG_SIGNER
                and p.country is not None
                and not keys.knows(p.country)
            )
        )
        return replace(report, problems=problems)

    async def list_traces(
        self, incoming: bool, status: TraceStatus | None = None
    ) -> list[StoredTrace]:
        """Traces we started (or, if `incoming`, received as a hop), newest first."""
        return await self._store.list_traces(status, incoming)

    async def listing(
        self, incoming: bool, status: TraceStatus | None = None, overdue_only: bool = False
    ) -> list[TraceEntry]:
        """Traces we started (or, if `incoming`, received as a hop) with how late they are:
        the overdue ones first, the latest first, then the others newest first."""
        now = self._clock.now()
        totals = await self._store.reminder_totals()
        entries = [
            await self._entry(t, now, totals.get(t.id))
            for t in await self.list_traces(incoming, status)
        ]
        if overdue_only:
            entries = [e for e in entries if e.overdue]
        return sorted(entries, key=lambda e: -e.overdue_seconds)  # stable: newest first

    async def _entry(
        self, trace: StoredTrace, now: datetime, reminded: tuple[int, datetime] | None
    ) -> TraceEntry:
        count, last = reminded or (0, None)
        if trace.position > 0:
            ours = await self._hop_deadline(trace, now)
            return TraceEntry(trace, ours.overdue_seconds if ours else 0.0, (), count, last)
        late: list[HopDeadline] = []
        period = self._deadlines.period(trace.priority)
        if trace.status is TraceStatus.OPEN and may_be_late(trace.created_at, period, now):
            items = await self._store.get_items(trace.id)
            late = [d for d in chain_deadlines(items, period, now) if d.overdue]
        seconds = max((d.overdue_seconds for d in late), default=0.0)
        return TraceEntry(trace, seconds, tuple(d.country for d in late), count, last)

    async def _hop_deadline(self, trace: StoredTrace, now: datetime) -> HopDeadline | None:
        """At a hop: our deadline (one period after the originator's reply to our question,
        if that is later) and how late we are with our answer."""
        if trace.deadline_at is None:
            return None
        due = trace.deadline_at
        queued = trace.status is TraceStatus.QUEUED
        if queued and trace.outcome == Outcome.NEEDS_INFORMATION.value:  # replied to
            items = await self._store.get_items(trace.id)
            replied = max((i.signed_ms for i in items if i.kind is ItemKind.REPLY), default=None)
            period = self._deadlines.period(trace.priority)
            due = answer_due(due, None if replied is None else from_ms(replied), period)
        late = seconds_late(due, now) if queued else 0.0
        return HopDeadline(trace.position, self._me, due, late)

    async def export(self, trace_id: bytes) -> bytes:
        """The chain of a trace we started as a file anyone can check (`node.trace.export`):
        the keys we trust of each country on it (ours, our peers') as first keys and the
        rotations from them, the forwards that vouch for the other hops' keys, and the
        rotations of those."""
        trace = await self._trace(trace_id)
        history, items, keys = await self._chain(trace)
        forwards, rotations = vouching(items)
        receipts, answers = chain_upto(items, None, keys)
        used: dict[str, set[bytes]] = {trace.originator: {signed_part(trace.request).key_id}}
        for data in (*receipts, *answers, *forwards):
            used.setdefault(item_of(data).country, set()).add(signed_part(data).key_id)
        chains: dict[str, tuple[bytes, list[bytes]]] = {}
        for country, kids in used.items():
            chain = history.rotation_chain(country, kids)
            if chain is not None:
                chains[country] = chain
        return export_chain(trace.request, receipts, answers, chains, forwards, rotations)

    async def show(self, trace_id: bytes) -> TraceView:
        """Where a trace we started, or are a hop of, stands, hop by hop.

        Raises:
            NotFoundError: this node neither started it nor is a hop of it.
        """
        trace = await self._store.get_trace(trace_id, 0) or await self._store.get_trace(trace_id)
        if trace is None:
            raise NotFoundError(f"trace {trace_id.hex()} is not known here")
        _history, items, keys = await self._chain(trace)
        replies = tuple(read(i.item, ReplyStatement)[1] for i in items if i.kind is ItemKind.REPLY)
        question = open_question(items, keys) if trace.position == 0 else None
        now = self._clock.now()
        if trace.position == 0:
            deadlines = chain_deadlines(items, self._deadlines.period(trace.priority), now)
        else:
            ours = await self._hop_deadline(trace, now)
            deadlines = [ours] if ours else []
        return TraceView(
            trace,
            await self._check(trace),
            replies,
            question if isinstance(question, Question) else None,
            tuple(deadlines),
            tuple(await self._store.get_reminders(trace.id)),
        )

    async def reply(self, trace_id: bytes, text: str, actor: str) -> str:
        """Reply to the question a hop of our trace asked (`needs_information`): signed,
        sent toward that hop, which queues the trace again for its officer. Returns the
        country of the hop.

        Raises:
            NotFoundError: we did not start that trace.
            ValidationError: the text is empty, too long or holds a control character; or
                the trace is not waiting for our reply (the message says why).
        """
        text = check_reply_text(text)
        await self._trace(trace_id)
        async with self._work() as work:
            trace = await work.get_trace(trace_id, 0)
            assert trace is not None
            items = await work.get_items(trace.id)
            question = open_question(items, await self._onward.chain_keys(trace, items))
            if not isinstance(question, Question):
                raise ValidationError(
                    f"trace {trace_id.hex()} is not waiting for information: {question}", "id"
                )
            now = self._clock.now()
            statement = ReplyStatement(
                trace_id, question.position, self._me, question.answer_hash, to_ms(now), text
            )
            data = sign_reply(self._key, statement)
            await work.add_item(trace.id, reply_item(data), now)
            message = TraceReply(
                trace_id=trace_id,
                position=question.position,
                reply=data,
                delivery_id=os.urandom(16),
            )
            via = await self._onward.toward_hop(work, trace, question.position, message)
            await work.set_trace(trace.id, TraceStatus.OPEN, None, trace.next_country, "")
            details = {"position": question.position, "to": question.country, "via": via}
            await work.add_audit_entry(
                now, AuditEvent(actor, "trace.reply", f"trace/{trace_id.hex()}", details)
            )
        return question.country
