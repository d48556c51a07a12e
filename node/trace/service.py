"""The originator's side of a trace: start it, follow it, verify its chain.

`TraceService.start` checks the request's completeness (refused unless
forced with a reason, which is stored), signs the request and sends
`trace.request` to the first hop through the outbox, in one unit of work
with the stored trace and its audit entry. The hops' receipts and answers
arrive as `trace.report` (`node.trace.hop`), are checked and kept
(`node.trace.intake`); `show` and `verify` read the chain from them with
every key we have seen (our peers' and ours, with their validity) and the
keys the chain vouches for (`forward` statements, docs/adr/0008); `export`
writes it with those keys and statements.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import BadSignatureError, IncompleteTraceError, NotFoundError, ValidationError
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import to_ms
from node.protocol.keyring import KeyHistory
from node.protocol.model import PeerStatus
from node.protocol.peers import PeersService
from node.records.reference import ReferenceTable
from node.trace.chain import ChainReport, verify_chain, vouched_keys
from node.trace.export import export_chain
from node.trace.hop import HOP_DEADLINES
from node.trace.intake import checked, item_of
from node.trace.messages import TraceRequest
from node.trace.model import ItemKind, StoredTrace, TraceItem, TraceStatus
from node.trace.receipts import (
    ReceiptStatement,
    read,
    sign_forward,
    sign_request,
    signed_part,
)
from node.trace.request import Finding, TraceRequestFields, completeness, first_hop, to_wire
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
    """A trace as `show` gives it: where it stands and its chain, checked."""

    trace: StoredTrace
    report: ChainReport

    @property
    def status(self) -> TraceStatus:
        """`answered` once the chain is complete; `waiting` when its last hop could not
        forward it (no peering); else as stored."""
        if self.report.complete:
            return TraceStatus.ANSWERED
        last = self.report.hops[-1] if self.report.hops else None
        if last is not None and last.details and "note" in last.details and last.next_country:
            return TraceStatus.WAITING
        return self.trace.status

    def to_json(self) -> dict[str, Any]:
        """As `trace show --json` prints it."""
        return {
            "trace_id": self.trace.trace_id.hex(),
            "status": self.status.value,
            "priority": self.trace.priority,
            "created_at": self.trace.created_at.isoformat(),
            "force_reason": self.trace.force_reason or None,
            "hops": [hop.to_json() for hop in self.report.hops],
            "valid": self.report.valid,
        }


def latest_chain(
    items: list[TraceItem], keys: KeyHistory | None = None
) -> tuple[list[bytes], list[bytes]]:
    """The chain's receipts (one per position, in hop order) and answers.

    Per position: a final receipt over an answered one (`needs_information`) over a
    pending one, the latest signed within each; with `keys`, one that verifies under
    them before any that does not (an unchecked forgery never displaces a good one).
    """
    best: dict[int, tuple[tuple[bool, int, int], TraceItem]] = {}
    for item in items:
        if item.kind is not ItemKind.RECEIPT:
            continue
        receipt = read(item.item, ReceiptStatement)[1]
        stage = 2 if receipt.final else 0 if receipt.outcome is None else 1
        good = keys is None or _verifies(item, keys, items)
        rank = (good, stage, item.signed_ms)
        kept = best.get(item.position)
        if kept is None or rank > kept[0]:
            best[item.position] = (rank, item)
    answers = [i.item for i in items if i.kind is ItemKind.ANSWER]
    return [best[p][1].item for p in sorted(best)], answers


def _verifies(item: TraceItem, keys: KeyHistory, items: list[TraceItem]) -> bool:
    try:
        return checked(item, keys, items) is True
    except BadSignatureError:
        return False


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
    ) -> None:
        self._me = me
        self._key = signing_key
        self._store = store
        self._peers = peers
        self._delivery = delivery
        self._ref = reference
        self._clock = clock
        self._work = work

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
            deadline_ms=to_ms(now + HOP_DEADLINES[fields.priority]),
            delivery_id=os.urandom(16),
        )
        vouch = sign_forward(self._key, trace_id, 1, self._me, hop, peer.signing_key, to_ms(now))
        async with self._work() as work:
            trace_pk = await work.add_trace(trace)
            await work.add_item(trace_pk, item_of(vouch), now)
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

    async def _chain(
        self, trace: StoredTrace
    ) -> tuple[KeyHistory, list[bytes], list[bytes], list[bytes], list[bytes]]:
        """Our keys, and the chain as reported: receipts, answers, forwards, rotations."""
        items = await self._store.get_items(trace.id)
        history = await self._peers.key_history()
        forwards = [i.item for i in items if i.kind is ItemKind.FORWARD]
        rotations = [i.item for i in items if i.kind is ItemKind.ROTATION]
        keys, _vouched = vouched_keys(
            history, trace.originator, trace.trace_id, forwards, rotations
        )
        receipts, answers = latest_chain(items, keys)
        return history, receipts, answers, forwards, rotations

    async def _check(self, trace: StoredTrace) -> ChainReport:
        history, receipts, answers, forwards, rotations = await self._chain(trace)
        return verify_chain(trace.request, receipts, answers, history, forwards, rotations)

    async def list_traces(
        self, incoming: bool, status: TraceStatus | None = None
    ) -> list[StoredTrace]:
        """Traces we started (or, if `incoming`, received as a hop), newest first."""
        traces = await self._store.list_traces(status)
        return [t for t in traces if (t.position > 0) == incoming]

    async def export(self, trace_id: bytes) -> bytes:
        """The chain of a trace we started as a file anyone can check (`node.trace.export`):
        the keys we trust of each country on it (ours, our peers') as first keys and the
        rotations from them, the forwards that vouch for the other hops' keys, and the
        rotations of those."""
        trace = await self._trace(trace_id)
        history, receipts, answers, forwards, rotations = await self._chain(trace)
        used: dict[str, set[bytes]] = {trace.originator: {signed_part(trace.request).key_id}}
        for data in (*receipts, *answers, *forwards):
            used.setdefault(item_of(data).country, set()).add(signed_part(data).key_id)
        keys: dict[str, tuple[bytes, list[bytes]]] = {}
        for country, kids in used.items():
            chain = history.rotation_chain(country, kids)
            if chain is not None:
                keys[country] = chain
        return export_chain(trace.request, receipts, answers, keys, forwards, rotations)

    async def show(self, trace_id: bytes) -> TraceView:
        """Where a trace we started stands, hop by hop."""
        trace = await self._trace(trace_id)
        return TraceView(trace, await self._check(trace))
