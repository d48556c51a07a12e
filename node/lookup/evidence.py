"""Evidence of a hit: the owner's signed answer, kept byte for byte by the querier.

A peer confirms a hit with a `lookup.confirmed` envelope, signed by it,
addressed to us, whose body names our `lookup.confirm` request (`ref`) and
lists the records it disclosed. The querier keeps both envelopes exactly as
they travelled, with the two Ed25519 public keys that verified them, as one
**evidence bundle**: the msgpack map

    {"format": "iarms-hit-evidence/1", "request": <our signed lookup.confirm>,
     "answer": <the owner's signed lookup.confirmed>,
     "requester_key": <32 bytes>, "owner_key": <32 bytes>}

Anyone holding the owner's public key (its SHA-256 fingerprint is what the
two countries' admins compared when they peered) can check a bundle offline
with `verify_bundle`: both signatures, that the answer came from the
request's recipient to its sender, that it answers that request (`ref`), and
the message types. The freshness window does not apply: evidence is old by
nature. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack

from node.errors import EvidenceError, MalformedEnvelopeError, ProtocolError
from node.lookup.messages import LookupConfirm, LookupConfirmed
from node.lookup.model import EvidenceEntry
from node.lookup.storage import EvidenceStorage
from node.protocol.envelope import (
    MAX_ENVELOPE_LIMIT,
    Envelope,
    PeerKey,
    from_ms,
    open_envelope,
    read_header,
)
from node.protocol.keys import fingerprint
from node.protocol.messages import M, decode

FORMAT = "iarms-hit-evidence/1"
#: Two envelopes of the largest size a node may accept, and the keys around them: every
#: bundle a node keeps can be shown, verified and exported.
MAX_BUNDLE_BYTES = 2 * MAX_ENVELOPE_LIMIT + 4096
_FIELDS = {
    "format": str,
    "request": bytes,
    "answer": bytes,
    "requester_key": bytes,
    "owner_key": bytes,
}


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    """What a verified bundle proves: who answered what, when, for which case."""

    owner: str
    owner_fingerprint: str
    requester: str
    requester_fingerprint: str
    asked_at: datetime
    answered_at: datetime
    case_reference: str
    make_given: str
    records: list[dict[str, Any]]
    make_agrees: bool | None
    details: bool

    def to_json(self) -> dict[str, Any]:
        """What the bundle proves, as the CLI and the console show it."""
        return {
            "owner": self.owner,
            "owner_fingerprint": self.owner_fingerprint,
            "requester": self.requester,
            "requester_fingerprint": self.requester_fingerprint,
            "asked_at": self.asked_at.isoformat(),
            "answered_at": self.answered_at.isoformat(),
            "case_reference": self.case_reference,
            "make_given": self.make_given,
            "make_agrees": self.make_agrees,
            "details": self.details,
            "records": self.records,
        }


def bundle(request: bytes, answer: bytes, requester_key: bytes, owner_key: bytes) -> bytes:
    """The evidence bundle of a confirmed hit (see the module docstring)."""
    return bytes(
        msgpack.packb(
            {
                "format": FORMAT,
                "request": request,
                "answer": answer,
                "requester_key": requester_key,
                "owner_key": owner_key,
            },
            use_bin_type=True,
        )
    )


def _open(data: bytes, key: bytes, what: str) -> Envelope:
    """Verify one envelope of the bundle under `key`, at its own timestamp."""
    try:
        header = read_header(data, MAX_ENVELOPE_LIMIT)
        trusted = PeerKey(key)
        return open_envelope(
            data,
            me=header.recipient,
            now_ms=header.timestamp_ms,
            keys=lambda sender, kid: trusted if sender == header.sender else None,
            max_bytes=MAX_ENVELOPE_LIMIT,
        )
    except (ProtocolError, ValueError) as e:
        raise EvidenceError(f"evidence: the {what} does not verify: {e}") from e


def _decode(cls: type[M], envelope: Envelope, what: str) -> M:
    try:
        return decode(cls, envelope.body)
    except MalformedEnvelopeError as e:
        raise EvidenceError(f"evidence: the {what} is not a {cls.wire_type}: {e}") from e


def verify_bundle(data: bytes) -> VerifiedEvidence:
    """Check an evidence bundle; what it proves, or EvidenceError naming the first fault."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise EvidenceError(f"evidence: larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData) as e:
        raise EvidenceError("evidence: not an evidence bundle (not msgpack)") from e
    if not isinstance(fields, dict) or set(fields) != set(_FIELDS):
        raise EvidenceError(f"evidence: expected exactly the fields {', '.join(_FIELDS)}")
    for name, kind in _FIELDS.items():
        if not isinstance(fields[name], kind):
            raise EvidenceError(f"evidence: {name} must be {kind.__name__}")
    if fields["format"] != FORMAT:
        raise EvidenceError(f"evidence: unknown format {fields['format'][:64]!r}")
    if len(fields["requester_key"]) != 32 or len(fields["owner_key"]) != 32:
        raise EvidenceError("evidence: the keys must be 32-byte Ed25519 public keys")
    request = _open(fields["request"], fields["requester_key"], "request")
    answer = _open(fields["answer"], fields["owner_key"], "answer")
    if (request.type, answer.type) != (LookupConfirm.wire_type, LookupConfirmed.wire_type):
        raise EvidenceError(
            f"evidence: expected a lookup.confirm and its lookup.confirmed, "
            f"got {request.type} and {answer.type}"
        )
    if (answer.sender, answer.recipient) != (request.recipient, request.sender):
        raise EvidenceError("evidence: the answer is not between the request's two countries")
    asked = _decode(LookupConfirm, request, "request")
    answered = _decode(LookupConfirmed, answer, "answer")
    if answered.ref != request.message_id:
        raise EvidenceError("evidence: the answer does not refer to this request")
    return VerifiedEvidence(
        owner=answer.sender,
        owner_fingerprint=fingerprint(fields["owner_key"]),
        requester=request.sender,
        requester_fingerprint=fingerprint(fields["requester_key"]),
        asked_at=from_ms(request.timestamp_ms),
        answered_at=from_ms(answer.timestamp_ms),
        case_reference=asked.case_reference,
        make_given=asked.make,
        records=answered.records,
        make_agrees=answered.make_agrees,
        details=answered.details,
    )


class EvidenceService:
    """Keeps the evidence of our lookups' hits and reads it back, verified."""

    def __init__(self, store: EvidenceStorage) -> None:
        self._store = store

    async def keep(
        self, at: datetime, peer: str, serial: str, case_reference: str, actor: str, data: bytes
    ) -> int:
        """Keep a bundle (built by `bundle`); its id."""
        return await self._store.add_evidence(at, peer, serial, case_reference, actor, data)

    async def list(self, limit: int = 50, offset: int = 0) -> tuple[list[EvidenceEntry], int]:
        """Kept evidence, newest first, and how much there is."""
        return await self._store.list_evidence(limit, offset)

    async def open(self, evidence_id: int) -> tuple[EvidenceEntry, VerifiedEvidence]:
        """One kept bundle and what it proves (EvidenceError if it no longer verifies)."""
        entry = await self._store.get_evidence(evidence_id)
        return entry, verify_bundle(entry.bundle)
