"""The querier's side of a private lookup, against every peer at once.

For each active peer, concurrently: bring its membership index up to date
(`index.get`), blind the canonical serials (one batch), have the peer evaluate
them (`lookup.evaluate`), verify its batched proof against the OPRF key in its
descriptor, finalise, check the index locally, and only for a match ask the
peer to confirm (`lookup.confirm`); its signed confirmation is kept as the
hit's evidence (`node.protocol.evidence`). A peer that cannot be reached for a
confirmation, or refuses it for now (a retryable code), gets a durable
`hit.notice` through the outbox instead. A peer's cached index is its OPRF
key's: a peer re-added with a new key starts afresh. Each peer's result for
each serial is `hit`, `no_hit` (with the index version checked), `unreachable`
or `refused`; whatever goes wrong with one peer is that peer's result only.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import msgpack

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import IarmsError, OprfError, ValidationError
from node.protocol import oprf
from node.protocol.client import RETRYABLE, PeerClient, PeerRefusedError, SignedAnswer, pack
from node.protocol.delivery import DeliveryService
from node.protocol.evidence import EvidenceService, bundle
from node.protocol.membership import (
    FullIndex,
    IndexFormatError,
    MembershipIndex,
    item_of,
    parse_index,
    update_index,
)
from node.protocol.model import Peer, PeerStatus
from node.protocol.peers import PeersService
from node.protocol.transport import PeerUnreachableError
from node.records.serials import canonicalise_serial
from node.store.audit import AuditStore
from node.store.lookups import LookupStore

MAX_SERIALS = 10_000
#: The longest make and case reference the owner accepts (`lookup_owner`).
MAX_TEXT_CHARS = 200

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LookupResult:
    """One peer's answer about one serial."""

    peer: str
    serial: str
    result: str  # hit, no_hit, unreachable, refused
    index_version: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    make_agrees: bool | None = None
    reason: str = ""
    evidence_id: int | None = None  # the kept signed confirmation of a hit

    def to_json(self) -> dict[str, Any]:
        """The CLI's and console's JSON form."""
        out: dict[str, Any] = {"peer": self.peer, "serial": self.serial, "result": self.result}
        if self.result == "hit":
            out |= {
                "records": self.records,
                "make_agrees": self.make_agrees,
                "evidence": self.evidence_id,
            }
        elif self.result == "no_hit":
            out["index_version"] = self.index_version
        else:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Query:
    """A serial to check, with the make as the officer read it (may be empty)."""

    serial: str
    make: str = ""


class LookupService:
    """Checks serials against every peer's records without revealing them on a miss."""

    def __init__(
        self,
        peers: PeersService,
        client: PeerClient,
        store: LookupStore,
        delivery: DeliveryService,
        audit: AuditStore,
        evidence: EvidenceService,
        clock: Clock,
    ) -> None:
        self._peers = peers
        self._client = client
        self._store = store
        self._delivery = delivery
        self._audit = audit
        self._evidence = evidence
        self._clock = clock
        # By country, with the OPRF key the index was built under (a re-added peer's differs).
        self._indexes: dict[str, tuple[bytes | None, MembershipIndex]] = {}

    async def lookup(
        self, queries: list[Query], case_reference: str, actor: str
    ) -> list[LookupResult]:
        """Ask every active peer about every serial; one result per peer and serial.

        Raises:
            ValidationError: a serial, make or the case reference the owners would
                refuse (naming the field, and in a bulk lookup which serial), before
                anything is sent.
        """
        if not 1 <= len(queries) <= MAX_SERIALS:
            raise ValidationError(f"serials: between 1 and {MAX_SERIALS} per lookup", "serial")
        _check_text("case_reference", case_reference, "")
        canonical = [_checked(q, i, len(queries)) for i, q in enumerate(queries)]
        peers = [p for p in await self._peers.list_peers() if p.status is PeerStatus.ACTIVE]
        await self._audit.add_entry(
            self._clock.now(),
            AuditEvent(
                actor,
                "lookup.query",
                "peers",
                {
                    "serials": len(queries),
                    "peers": [p.country for p in peers],
                    "case_reference": case_reference,
                },
            ),
        )
        per_peer = await asyncio.gather(
            *(self._ask(p, queries, canonical, case_reference, actor) for p in peers)
        )
        return [r for results in per_peer for r in results]

    async def _ask(
        self,
        peer: Peer,
        queries: list[Query],
        canonical: list[str],
        case_reference: str,
        actor: str,
    ) -> list[LookupResult]:
        """One peer's results; whatever goes wrong with it is its result, never the others'."""
        try:
            outputs, version = await self._evaluate(peer, canonical)
            index = await self._index(peer, version)
        except Exception as e:
            result, reason = _failure(peer, e)
            return [LookupResult(peer.country, q.serial, result, reason=reason) for q in queries]
        results = []
        for query, output in zip(queries, outputs, strict=True):
            if item_of(output) not in index:
                results.append(
                    LookupResult(peer.country, query.serial, "no_hit", index_version=index.version)
                )
                continue
            try:
                hit = await self._confirm(peer, query, output, case_reference, actor, index)
            except Exception as e:
                result, reason = _failure(peer, e)
                hit = LookupResult(peer.country, query.serial, result, reason=reason)
            results.append(hit)
        return results

    async def _evaluate(self, peer: Peer, canonical: list[str]) -> tuple[list[bytes], int]:
        """The OPRF outputs of the serials, and the index version the peer says is current."""
        if peer.oprf_key is None:
            raise PeerRefusedError(peer.country, "no_oprf_key", "its descriptor has no OPRF key")
        inputs = [oprf.serial_input(c) for c in canonical]
        blinded = [oprf.blind(i, oprf.MODE_VOPRF) for i in inputs]
        answer = await self._client.request(
            peer, "lookup.evaluate", {"elements": [b for _s, b in blinded]}
        )
        evaluated = answer.get("elements")
        proof = answer.get("proof")
        version = answer.get("index_version")
        if not (
            isinstance(evaluated, list) and isinstance(proof, bytes) and isinstance(version, int)
        ):
            raise OprfError("lookup.evaluated: elements, proof and index_version are required")
        oprf.verify_proof(peer.oprf_key, [b for _s, b in blinded], evaluated, proof)
        outputs = [
            oprf.finalize(i, s, e) for i, (s, _b), e in zip(inputs, blinded, evaluated, strict=True)
        ]
        return outputs, version

    async def _confirm(
        self,
        peer: Peer,
        query: Query,
        output: bytes,
        case_reference: str,
        actor: str,
        index: MembershipIndex,
    ) -> LookupResult:
        body = {
            "lookup_id": os.urandom(16),
            "output": output,
            "make": query.make,
            "case_reference": case_reference,
        }
        try:
            signed = await self._client.request_signed(peer, "lookup.confirm", body)
        except PeerUnreachableError as e:
            reason = f"confirmation failed ({e})"
        except PeerRefusedError as e:
            if e.peer_code not in RETRYABLE:
                return LookupResult(peer.country, query.serial, "refused", reason=str(e))
            reason = f"the confirmation was refused for now ({e})"
        else:
            return await self._confirmed(peer, query, signed, case_reference, actor, index)
        # The owner records the hit when the notice reaches it (by lookup id, once).
        await self._delivery.enqueue(peer.country, "hit.notice", pack(body))
        return LookupResult(
            peer.country,
            query.serial,
            "unreachable",
            reason=f"the index matches; {reason}; a hit notice is queued",
        )

    async def _confirmed(
        self,
        peer: Peer,
        query: Query,
        signed: SignedAnswer,
        case_reference: str,
        actor: str,
        index: MembershipIndex,
    ) -> LookupResult:
        records = signed.body.get("records")
        if not isinstance(records, list) or not records:  # an index false positive (2^-32)
            return LookupResult(peer.country, query.serial, "no_hit", index_version=index.version)
        make_agrees = signed.body.get("make_agrees")
        evidence_id = await self._evidence.keep(
            self._clock.now(),
            peer.country,
            query.serial,
            case_reference,
            actor,
            bundle(signed.request, signed.answer, self._client.public_key, signed.signer_key),
        )
        return LookupResult(
            peer.country,
            query.serial,
            "hit",
            index_version=index.version,
            records=[r for r in records if isinstance(r, dict)],
            make_agrees=make_agrees if isinstance(make_agrees, bool) else None,
            evidence_id=evidence_id,
        )

    async def _index(self, peer: Peer, current: int) -> MembershipIndex:
        """The peer's index at version `current` (cached in memory and in the database).

        The cache keeps the peer's full version and its newest delta (deltas are
        cumulative), so a restart resumes without downloading the full version.
        """
        cached = self._indexes.get(peer.country)
        index = cached[1] if cached is not None and cached[0] == peer.oprf_key else None
        if index is not None and index.version == current:
            return index  # the usual case: no round trip, no database read
        stored = await self._store.get_peer_index(peer.country)
        kept: list[bytes] = list(msgpack.unpackb(stored[1])) if stored else []
        if index is None:
            for data in kept:
                index = update_index(index, parse_index(data))
        if index is not None and current < index.version:  # the peer started afresh
            index, kept = None, []
        answer = await self._client.request(
            peer, "index.get", {"since": index.version if index else None}
        )
        documents = answer.get("documents")
        if not isinstance(documents, list):
            raise IndexFormatError("index: documents are required")
        for data in documents:
            document = parse_index(data)
            if document.country != peer.country:
                raise IndexFormatError(f"index of {document.country} from {peer.country}")
            index = update_index(index, document)
            kept = [data] if isinstance(document, FullIndex) else [*kept[:1], data]
        if index is None:
            raise PeerRefusedError(peer.country, "no_index", "it has published no index yet")
        if documents:
            await self._store.set_peer_index(
                peer.country,
                index.version,
                msgpack.packb(kept, use_bin_type=True),
                self._clock.now(),
                oprf_key=peer.oprf_key,
            )
        self._indexes[peer.country] = (peer.oprf_key, index)
        return index


def _check_text(name: str, value: str, where: str) -> None:
    """A make or case reference the owner accepts (PROTOCOL.md §2), before it is sent."""
    if len(value) > MAX_TEXT_CHARS:
        raise ValidationError(f"{where}{name}: longer than {MAX_TEXT_CHARS} characters", name)
    _check_utf8(name, value, where)


def _check_utf8(name: str, value: str, where: str) -> None:
    """Text that can travel: invalid bytes in a CLI argument arrive as lone surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{where}{name}: {value!r} is not valid text (invalid bytes or characters)", name
        ) from None


def _checked(query: Query, i: int, count: int) -> str:
    """The canonical serial of the `i`-th of `count` queries, its make checked too."""
    where = f"serial {i + 1} of {count} ({query.serial!r}): " if count > 1 else ""
    _check_utf8("serial", query.serial, where)
    _check_text("make", query.make, where)
    canonical = canonicalise_serial(query.serial)
    if not canonical or len(canonical.encode()) > oprf.MAX_SERIAL_BYTES:
        raise ValidationError(f"{where}serial: {query.serial!r} is not a serial number", "serial")
    return canonical


def _failure(peer: Peer, error: Exception) -> tuple[str, str]:
    """A failed exchange with `peer` as its result (`unreachable` or `refused`) and reason."""
    if isinstance(error, PeerUnreachableError):
        return "unreachable", str(error)
    if isinstance(error, PeerRefusedError):
        return "refused", str(error)
    if isinstance(error, (OprfError, IndexFormatError)):
        return "refused", f"{peer.country} answered with invalid data: {error}"
    if isinstance(error, IarmsError):
        return "refused", f"{peer.country}: {error}"
    log.error("asking %s failed", peer.country, exc_info=error)
    return "unreachable", f"{peer.country}: this node failed to ask it ({type(error).__name__})"
