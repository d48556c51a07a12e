"""The owner's side of a private lookup: index, blind evaluation, confirmation, hit notices.

The messages are typed in `node.lookup.messages`; `LookupResponder.register`
gives the dispatcher a handler for each, all requiring the peer's `lookups`
policy:
- `index.get` → `index`: the newest full version and its deltas, or only the
  deltas after `since`.
- `lookup.evaluate` → `lookup.evaluated`: VOPRF evaluation of blinded elements
  with one batched DLEQ proof; counted against the peer's token bucket
  (refused whole when over), and `allowance` says how many more it may ask for now.
- `lookup.confirm` → `lookup.confirmed`: which of our active records have this
  OPRF output; recorded as a hit. Each confirmation costs the peer one
  evaluation from its bucket, and a lookup id is confirmed once (the
  dispatcher refuses a repeat with `already_confirmed`). Without the
  `hit-details` policy the peer learns that records exist and their status,
  and nothing about the make (`make_agrees` is nil), so it cannot test makes
  against a record.
- `hit.notice` → `ack`: the durable notice of a hit (sent through the outbox
  when confirming failed); also charged one evaluation, and acknowledged
  however often it arrives.
The dispatcher claims each confirmation and notice by its lookup id in the
unit of work in which its hits and audit entry are written, so a lookup id is
recorded once, however many times its confirmation or notice arrives.
Every foreign lookup is audited with the peer and the count, never the values:
an evaluation within the rate limit is recorded as it starts (while the
elements are evaluated), so an attempt with invalid elements is recorded too.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import OprfError
from node.lookup import oprf
from node.lookup.messages import (
    MAX_RECORDS,
    Confirmation,
    HitNotice,
    Index,
    IndexGet,
    LookupConfirm,
    LookupConfirmed,
    LookupEvaluate,
    LookupEvaluated,
)
from node.lookup.storage import LookupStorage, LookupWork
from node.protocol.client import pack
from node.protocol.dispatch import Dispatcher
from node.protocol.messages import Ack
from node.protocol.model import Peer, Service
from node.protocol.ratelimit import TokenBuckets
from node.records.reference import ReferenceTable

W = TypeVar("W", bound=LookupWork)
_INLINE_ELEMENTS = 64
#: What a confirmation discloses without the `hit-details` policy.
MINIMAL_FIELDS = ("status",)
#: A confirmation names at most this many records (newest first) ...
MAX_CONFIRMED_RECORDS = MAX_RECORDS
#: ... and at most this many bytes of them, so that its answer stays under 1 MiB.
MAX_CONFIRMED_BYTES = 900_000


def _disclosed(rows: list[dict[str, str]], detailed: bool) -> list[dict[str, str]]:
    """What the peer may see of the matching records, newest first, within the answer's bounds."""
    out: list[dict[str, str]] = []
    size = 0
    for row in rows[:MAX_CONFIRMED_RECORDS]:
        shown = {k: v for k, v in row.items() if detailed or k in MINIMAL_FIELDS}
        size += len(pack(shown))
        if out and size > MAX_CONFIRMED_BYTES:
            break
        out.append(shown)
    return out


class LookupResponder:
    """Answers peers' lookups against this node's records."""

    def __init__(
        self,
        lookups: LookupStorage,
        audit: AuditLog,
        reference: ReferenceTable,
        oprf_key: bytes,
        buckets: TokenBuckets,
        clock: Clock,
    ) -> None:
        self._lookups = lookups
        self._audit = audit
        self._ref = reference
        self._key = oprf_key
        self._buckets = buckets
        self._clock = clock

    def register(self, dispatcher: Dispatcher[W]) -> None:
        """Give `dispatcher` the lookup messages and their handlers."""
        lookups = Service.LOOKUPS
        dispatcher.register(IndexGet, self.index_get, requires=lookups)
        dispatcher.register(
            LookupEvaluate, self.evaluate, requires=lookups, admit=self._admit_evaluation
        )
        dispatcher.register_effect(
            LookupConfirm, self.confirm, requires=lookups, admit=self._admit_confirmation
        )
        dispatcher.register_effect(
            HitNotice, self.hit_notice, requires=lookups, admit=self._admit_notice
        )

    async def index_get(self, message: IndexGet, _peer: Peer) -> Index:
        """Our membership index since the version the peer holds."""
        documents = await self._lookups.get_documents(message.since)
        if documents:
            version = documents[-1][0]
        else:  # the peer is current, or we have published nothing yet
            last = await self._lookups.get_version()
            version = last[0] if last else 0
        return Index(version=version, documents=[d for _v, _b, d in documents])

    def _admit_evaluation(self, message: LookupEvaluate, peer: Peer) -> None:
        self._charge(peer, len(message.elements), "evaluations")

    def _admit_confirmation(self, _message: LookupConfirm, peer: Peer) -> None:
        self._charge(peer, 1, "confirmations (each counts as an evaluation)")

    def _admit_notice(self, _message: HitNotice, peer: Peer) -> None:
        self._charge(peer, 1, "hit notices (each counts as an evaluation)")

    def _charge(self, peer: Peer, count: int, what: str) -> None:
        """Take `count` evaluations from the peer's bucket, or refuse the message whole."""
        self._buckets.charge(peer.country, count, self._clock.now().timestamp(), what)

    async def evaluate(self, message: LookupEvaluate, peer: Peer) -> LookupEvaluated:
        """Blind VOPRF evaluation with one batched proof (charged by `_admit_evaluation`)."""
        elements = message.elements
        now = self._clock.now()
        # Audit the attempt and read the index version while the elements are evaluated.
        noted = asyncio.gather(
            self._audit.add_entry(
                now,
                AuditEvent(
                    f"peer:{peer.country}",
                    "lookup.evaluate",
                    f"peer/{peer.country}",
                    {"count": len(elements)},
                ),
            ),
            self._lookups.get_version(),
        )
        await asyncio.sleep(0)  # let both reach the database thread first
        try:
            if len(elements) > _INLINE_ELEMENTS:  # keep answering others meanwhile
                evaluated, proof = await asyncio.to_thread(
                    oprf.evaluate, self._key, elements, oprf.MODE_VOPRF
                )
            else:
                evaluated, proof = oprf.evaluate(self._key, elements, oprf.MODE_VOPRF)
        except OprfError:  # answered with its own code, `oprf`
            await noted
            raise
        _entry, last = await noted
        assert proof is not None  # VOPRF mode always proves
        return LookupEvaluated(
            elements=evaluated,
            proof=proof,
            index_version=last[0] if last else 0,
            allowance=self._buckets.available(peer.country, now.timestamp()),
        )

    async def confirm(
        self, message: LookupConfirm, peer: Peer, work: LookupWork
    ) -> LookupConfirmed:
        """Say which of our records match an OPRF output; record the hit."""
        records, make_agrees = await self._record_hit(peer, message, "lookup.confirm", work)
        detailed = peer.allows(Service.HIT_DETAILS)
        return LookupConfirmed(
            records=_disclosed(records, detailed),
            # Without details, whether the make agrees would let the peer test makes.
            make_agrees=make_agrees if detailed else None,
            details=detailed,
        )

    async def hit_notice(self, message: HitNotice, peer: Peer, work: LookupWork) -> Ack:
        """Record a hit notified through the peer's outbox."""
        await self._record_hit(peer, message, "hit.notice", work)
        return Ack()

    async def _record_hit(
        self, peer: Peer, message: Confirmation, action: str, work: LookupWork
    ) -> tuple[list[dict[str, str]], bool | None]:
        """The matching records (newest first, bounded) and whether the make agrees; the
        hits and the audit entry are written in `work` (where the lookup id is claimed)."""
        found = await self._lookups.get_records_by_output(message.output)
        records = sorted(found, key=lambda r: r.id, reverse=True)[:MAX_CONFIRMED_RECORDS]
        given = message.make.strip()
        make = self._ref.normalise_make(given).value if given else None
        now = self._clock.now()
        hits = [
            {
                "record_id": record.id,
                "serial_number": record.serial_number,
                "peer": peer.country,
                "at": now,
                "case_reference": message.case_reference,
                "make_given": given,
                "make_agrees": make is None or make == record.make,
                "lookup_id": message.lookup_id,
            }
            for record in records
        ]
        event = AuditEvent(
            f"peer:{peer.country}",
            action,
            f"peer/{peer.country}",
            {"records": [r.id for r in records], "case_reference": message.case_reference},
        )
        await work.add_hits(hits)
        await work.add_audit_entry(now, event)
        agrees = None if make is None else any(make == r.make for r in records)
        return [r.to_row() for r in records], agrees
