"""The owner's side of a private lookup: index, blind evaluation, confirmation, hit notices.

Message types (bodies are msgpack maps; PROTOCOL.md §2):
- `index.get {since}` → `index {version, documents}`: the newest full version
  and its deltas, or only the deltas after `since`.
- `lookup.evaluate {elements}` → `lookup.evaluated {elements, proof, index_version}`:
  VOPRF evaluation of blinded elements with one batched DLEQ proof; counted
  against the peer's token bucket (refused whole when over).
- `lookup.confirm {lookup_id, output, make, case_reference}` →
  `lookup.confirmed {records, make_agrees}`: which of our active records have
  this OPRF output; recorded as a hit; details only if the peer's policy
  allows `hit-details`.
- `hit.notice {delivery_id, lookup_id, output, make, case_reference}` → `ack {}`:
  the durable notice of a hit (sent through the outbox when confirming failed).
A lookup id is recorded (hits and audit entry) once, however many times its
confirmation or notice arrives.
Every foreign lookup is audited with the peer and the count, never the values:
an evaluation within the rate limit is recorded as it starts (while the
elements are evaluated), so an attempt with invalid elements is recorded too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import MalformedEnvelopeError, OprfError, PolicyRefusedError, RateLimitedError
from node.protocol import oprf
from node.protocol.envelope import Envelope, decode_body
from node.protocol.model import Peer, Service
from node.protocol.ratelimit import TokenBuckets
from node.records.reference import ReferenceTable
from node.store.audit import AuditStore
from node.store.lookups import LookupStore

MAX_ELEMENTS = 10_000
_INLINE_ELEMENTS = 64
#: What a confirmation discloses without the `hit-details` policy.
MINIMAL_FIELDS = ("status",)

_CONFIRM = {"lookup_id": bytes, "output": bytes, "make": str, "case_reference": str}


def _require(peer: Peer, service: Service) -> None:
    if not peer.allows(service):
        raise PolicyRefusedError(f"this node does not answer {service.value} for {peer.country}")


def _check_output(body: dict[str, Any]) -> None:
    if len(body["lookup_id"]) != 16 or len(body["output"]) != oprf.OUTPUT_SIZE:
        raise MalformedEnvelopeError("lookup_id must be 16 bytes and output 64 bytes")
    if len(body["make"]) > 200 or len(body["case_reference"]) > 200:
        raise MalformedEnvelopeError("make and case_reference are limited to 200 characters")


class LookupResponder:
    """Answers peers' lookups against this node's records."""

    def __init__(
        self,
        lookups: LookupStore,
        audit: AuditStore,
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

    def handlers(self) -> dict[str, Any]:
        """The message types this responder answers."""
        return {
            "index.get": self.index_get,
            "lookup.evaluate": self.evaluate,
            "lookup.confirm": self.confirm,
            "hit.notice": self.hit_notice,
        }

    async def index_get(self, envelope: Envelope, peer: Peer) -> tuple[str, dict[str, Any]]:
        """Our membership index since the version the peer holds."""
        _require(peer, Service.LOOKUPS)
        since = decode_body(envelope, {"since": (int, type(None))})["since"]
        documents = await self._lookups.get_documents(since)
        if documents:
            version = documents[-1][0]
        else:  # the peer is current, or we have published nothing yet
            last = await self._lookups.get_version()
            version = last[0] if last else 0
        return "index", {"version": version, "documents": [d for _v, _b, d in documents]}

    async def evaluate(self, envelope: Envelope, peer: Peer) -> tuple[str, dict[str, Any]]:
        """Blind VOPRF evaluation with one batched proof, rate-limited per peer."""
        _require(peer, Service.LOOKUPS)
        elements = decode_body(envelope, {"elements": list})["elements"]
        if not 1 <= len(elements) <= MAX_ELEMENTS or not all(
            isinstance(e, bytes) for e in elements
        ):
            raise MalformedEnvelopeError(f"elements: 1 to {MAX_ELEMENTS} byte strings")
        now = self._clock.now()
        wait = self._buckets.take(peer.country, len(elements), now.timestamp())
        if wait:
            raise RateLimitedError(
                f"{len(elements)} evaluations exceed {peer.country}'s rate limit; "
                f"retry in {wait:.0f} s"
                if wait != float("inf")
                else f"{len(elements)} evaluations exceed {peer.country}'s burst limit; send fewer"
            )
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
        return "lookup.evaluated", {
            "elements": evaluated,
            "proof": proof,
            "index_version": last[0] if last else 0,
        }

    async def confirm(self, envelope: Envelope, peer: Peer) -> tuple[str, dict[str, Any]]:
        """Say which of our records match an OPRF output; record the hit."""
        _require(peer, Service.LOOKUPS)
        body = decode_body(envelope, _CONFIRM)
        _check_output(body)
        records, make_agrees = await self._record_hit(peer, body, "lookup.confirm")
        detailed = peer.allows(Service.HIT_DETAILS)
        disclosed = [
            {k: v for k, v in r.items() if detailed or k in MINIMAL_FIELDS} for r in records
        ]
        return "lookup.confirmed", {
            "records": disclosed,
            "make_agrees": make_agrees,
            "details": detailed,
        }

    async def hit_notice(self, envelope: Envelope, peer: Peer) -> tuple[str, dict[str, Any]]:
        """Record a hit notified through the peer's outbox (idempotent by lookup id)."""
        _require(peer, Service.LOOKUPS)
        body = decode_body(envelope, _CONFIRM | {"delivery_id": bytes})
        _check_output(body)
        await self._record_hit(peer, body, "hit.notice")
        return "ack", {}

    async def _record_hit(
        self, peer: Peer, body: dict[str, Any], action: str
    ) -> tuple[list[dict[str, str]], bool | None]:
        records = await self._lookups.get_records_by_output(body["output"])
        given = body["make"].strip()
        make = self._ref.normalise_make(given).value if given else None
        now = self._clock.now()
        hits = [
            {
                "record_id": record.id,
                "serial_number": record.serial_number,
                "peer": peer.country,
                "at": now,
                "case_reference": body["case_reference"],
                "make_given": given,
                "make_agrees": make is None or make == record.make,
                "lookup_id": body["lookup_id"],
            }
            for record in records
        ]
        event = AuditEvent(
            f"peer:{peer.country}",
            action,
            f"peer/{peer.country}",
            {"records": [r.id for r in records], "case_reference": body["case_reference"]},
        )
        # Once per lookup: its confirmation and its hit notice, or a notice sent twice.
        await self._lookups.record_hits(peer.country, body["lookup_id"], hits, now, event)
        agrees = None if make is None else any(make == r.make for r in records)
        return [r.to_row() for r in records], agrees
