"""The owner's side of a private lookup: index, blind evaluation, confirmation, hit notices.

Message types (bodies are msgpack maps; PROTOCOL.md §2):
- `index.get {since}` → `index {version, documents}`: the newest full version
  and its deltas, or only the deltas after `since`.
- `lookup.evaluate {elements}` → `lookup.evaluated {elements, proof,
  index_version, allowance}`: VOPRF evaluation of blinded elements with one
  batched DLEQ proof; counted against the peer's token bucket (refused whole
  when over), and `allowance` says how many more it may ask for now.
- `lookup.confirm {lookup_id, output, make, case_reference}` →
  `lookup.confirmed {records, make_agrees, details}`: which of our active
  records have this OPRF output; recorded as a hit. Each confirmation costs
  the peer one evaluation from its bucket, and a lookup id is confirmed once
  (a second `lookup.confirm` is refused with `already_confirmed`). Without
  the `hit-details` policy the peer learns that records exist and their
  status, and nothing about the make (`make_agrees` is nil), so it cannot
  test makes against a record.
- `hit.notice {delivery_id, lookup_id, output, make, case_reference}` → `ack {}`:
  the durable notice of a hit (sent through the outbox when confirming failed);
  also charged one evaluation, and acknowledged however often it arrives.
A lookup id is recorded (hits and audit entry) once, however many times its
confirmation or notice arrives.
Every foreign lookup is audited with the peer and the count, never the values:
an evaluation within the rate limit is recorded as it starts (while the
elements are evaluated), so an attempt with invalid elements is recorded too.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import (
    LookupIdUsedError,
    MalformedEnvelopeError,
    OprfError,
    PolicyRefusedError,
    RateLimitedError,
)
from node.lookup import oprf
from node.lookup.storage import LookupStorage
from node.protocol.client import pack
from node.protocol.envelope import Envelope, decode_body
from node.protocol.model import Peer, Service
from node.protocol.ratelimit import TokenBuckets
from node.records.reference import ReferenceTable

MAX_ELEMENTS = 10_000
_INLINE_ELEMENTS = 64
#: What a confirmation discloses without the `hit-details` policy.
MINIMAL_FIELDS = ("status",)
#: A confirmation names at most this many records (newest first) ...
MAX_CONFIRMED_RECORDS = 100
#: ... and at most this many bytes of them, so that its answer stays under 1 MiB.
MAX_CONFIRMED_BYTES = 900_000

_CONFIRM = {"lookup_id": bytes, "output": bytes, "make": str, "case_reference": str}


def _require(peer: Peer, service: Service) -> None:
    if not peer.allows(service):
        raise PolicyRefusedError(f"this node does not answer {service.value} for {peer.country}")


def _check_output(body: dict[str, Any]) -> None:
    if len(body["lookup_id"]) != 16 or len(body["output"]) != oprf.OUTPUT_SIZE:
        raise MalformedEnvelopeError("lookup_id must be 16 bytes and output 64 bytes")
    if len(body["make"]) > 200 or len(body["case_reference"]) > 200:
        raise MalformedEnvelopeError("make and case_reference are limited to 200 characters")


def rate_limited(country: str, count: int, wait: float, what: str = "evaluations") -> str:
    """Why `count` `what` are refused: when they would fit, rounded up, or never."""
    if wait == float("inf"):
        return f"{count} {what} exceed {country}'s burst limit; send fewer at once"
    return f"{count} {what} exceed {country}'s rate limit; retry in {math.ceil(wait)} s"


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
        self._charge(peer, len(elements), "evaluations")
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
            "allowance": self._buckets.available(peer.country, now.timestamp()),
        }

    def _charge(self, peer: Peer, count: int, what: str) -> None:
        """Take `count` evaluations from the peer's bucket, or refuse the message whole."""
        wait = self._buckets.take(peer.country, count, self._clock.now().timestamp())
        if wait:
            raise RateLimitedError(rate_limited(peer.country, count, wait, what))

    async def confirm(self, envelope: Envelope, peer: Peer) -> tuple[str, dict[str, Any]]:
        """Say which of our records match an OPRF output; record the hit."""
        _require(peer, Service.LOOKUPS)
        body = decode_body(envelope, _CONFIRM)
        _check_output(body)
        self._charge(peer, 1, "confirmations (each counts as an evaluation)")
        records, make_agrees, first = await self._record_hit(peer, body, "lookup.confirm")
        if not first:
            raise LookupIdUsedError(
                f"lookup id {body['lookup_id'].hex()} was confirmed before; "
                "a lookup id is confirmed once"
            )
        detailed = peer.allows(Service.HIT_DETAILS)
        return "lookup.confirmed", {
            "records": _disclosed(records, detailed),
            # Without details, whether the make agrees would let the peer test makes.
            "make_agrees": make_agrees if detailed else None,
            "details": detailed,
        }

    async def hit_notice(self, envelope: Envelope, peer: Peer) -> tuple[str, dict[str, Any]]:
        """Record a hit notified through the peer's outbox (idempotent by lookup id)."""
        _require(peer, Service.LOOKUPS)
        body = decode_body(envelope, _CONFIRM | {"delivery_id": bytes})
        _check_output(body)
        self._charge(peer, 1, "hit notices (each counts as an evaluation)")
        await self._record_hit(peer, body, "hit.notice")
        return "ack", {}

    async def _record_hit(
        self, peer: Peer, body: dict[str, Any], action: str
    ) -> tuple[list[dict[str, str]], bool | None, bool]:
        """The matching records (newest first, bounded), whether the make agrees, and
        whether this lookup id was recorded now (False: it had been before)."""
        found = await self._lookups.get_records_by_output(body["output"])
        records = sorted(found, key=lambda r: r.id, reverse=True)[:MAX_CONFIRMED_RECORDS]
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
        first = await self._lookups.record_hits(peer.country, body["lookup_id"], hits, now, event)
        agrees = None if make is None else any(make == r.make for r in records)
        return [r.to_row() for r in records], agrees, first
