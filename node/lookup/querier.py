"""The querier's side of a private lookup, against every peer at once.

For each active peer, concurrently: blind the canonical serials, have the peer
evaluate them (`lookup.evaluate`) in batches no larger than the allowance its
last answer stated (so a request that times out never costs it more than one
batch of its budget), verify each batched proof against the OPRF key in its
descriptor and finalise (the cryptography of large batches runs in a thread,
off the event loop), bring its membership index up to date (`index.get`),
check the index locally, and only for a match ask the peer to confirm
(`lookup.confirm`); its signed confirmation is kept as the hit's evidence
(`node.lookup.evidence`). A peer that cannot be reached for a
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgpack
import msgspec

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import (
    IarmsError,
    IndexFormatError,
    OprfError,
    PeerAnswerError,
    PeerRefusedError,
    ValidationError,
)
from node.lookup import oprf
from node.lookup.evidence import EvidenceService, bundle
from node.lookup.membership import FullIndex, MembershipIndex, item_of, parse_index, update_index
from node.lookup.messages import MAX_RECORDS as MAX_RECORDS  # the querier's bound too
from node.lookup.messages import (
    HitNotice,
    IndexGet,
    LookupConfirm,
    LookupConfirmed,
    LookupEvaluate,
    LookupEvaluated,
)
from node.lookup.storage import LookupStorage
from node.lookup.text import check_case_reference, check_chars, check_text
from node.protocol.client import INDEX_MAX_BYTES, RETRYABLE, PeerClient, Signed
from node.protocol.delivery import DeliveryService
from node.protocol.model import Peer, PeerStatus
from node.protocol.peers import PeersService
from node.protocol.transport import PeerUnreachableError
from node.records.serials import canonicalise_serial

MAX_SERIALS = 10_000
#: Blinded elements per `lookup.evaluate`: the first request's size, and the most
#: any later one asks for (fewer when the peer's stated allowance is lower).
BATCH = 1_000
#: Evaluations of a peer's stated allowance left unasked, for the confirmations of
#: hits (each costs one): the hits beyond them wait for the peer as hit notices.
CONFIRM_RESERVE = 16
#: Batches up to this size are blinded and finalised on the event loop; larger in a thread.
INLINE_ELEMENTS = 64
#: The keys a confirmed record may have (`FirearmRecord.to_row`; only `status` without details).
RECORD_KEYS = frozenset(
    {
        "id",
        "serial_number",
        "make",
        "model",
        "firearm_type",
        "calibre",
        "status",
        "country_of_manufacture",
        "event_date",
        "event_place",
        "reporting_agency",
        "case_reference",
        "contact",
        "markings",
        "notes",
        "external_id",
        "recovered_on",
    }
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


async def _off_loop(count: int, work: Callable[..., _T], *args: Any) -> _T:
    """Run the cryptography of `count` elements; in a thread when there are many of them."""
    if count > INLINE_ELEMENTS:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _blind_all(inputs: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [oprf.blind(i, oprf.MODE_VOPRF) for i in inputs]


def _finish(
    key: bytes,
    inputs: list[bytes],
    blinded: list[tuple[bytes, bytes]],
    evaluated: list[bytes],
    proof: bytes,
) -> list[bytes]:
    """Verify one batch's proof and finalise its outputs (OprfError if anything is off)."""
    oprf.verify_proof(key, [b for _s, b in blinded], evaluated, proof)
    return [
        oprf.finalize(i, s, e) for i, (s, _b), e in zip(inputs, blinded, evaluated, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class _Evaluation:
    """What a peer evaluated of our serials: the outputs of the first `len(outputs)`,
    the index version it named, and why it stopped short (result, reason), if it did."""

    outputs: list[bytes]
    index_version: int
    stopped: tuple[str, str] | None = None


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
        store: LookupStorage,
        delivery: DeliveryService,
        audit: AuditLog,
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
            ValidationError: a serial or make the owners would refuse, or a case
                reference our rule refuses (`node.lookup.text`), naming the field
                (and in a bulk lookup which serial), before anything is sent.
        """
        if not 1 <= len(queries) <= MAX_SERIALS:
            raise ValidationError(f"serials: between 1 and {MAX_SERIALS} per lookup", "serial")
        case_reference = check_case_reference(case_reference)
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
            evaluation = await self._evaluate(peer, canonical)
            index = await self._index(peer, evaluation.index_version)
        except Exception as e:
            result, reason = _failure(peer, e)
            return [LookupResult(peer.country, q.serial, result, reason=reason) for q in queries]
        checked = len(evaluation.outputs)
        results = []
        for query, output in zip(queries[:checked], evaluation.outputs, strict=True):
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
        if evaluation.stopped is not None:
            result, reason = evaluation.stopped
            results += [
                LookupResult(peer.country, q.serial, result, reason=reason)
                for q in queries[checked:]
            ]
        return results

    async def _evaluate(self, peer: Peer, canonical: list[str]) -> _Evaluation:
        """Have the peer evaluate the serials, batch by batch, within its stated allowance.

        A failure after some batches keeps what they evaluated (the peer has
        counted them against our budget): the rest of the serials get the
        failure as their result.
        """
        if peer.oprf_key is None:
            raise PeerRefusedError(peer.country, "no_oprf_key", "its descriptor has no OPRF key")
        inputs = [oprf.serial_input(c) for c in canonical]
        blinded = await _off_loop(len(inputs), _blind_all, inputs)
        finishing: list[asyncio.Future[list[bytes]]] = []
        version, allowance, start, stopped = 0, BATCH + CONFIRM_RESERVE, 0, None
        while start < len(inputs):
            size = min(BATCH, allowance - CONFIRM_RESERVE, len(inputs) - start)
            if size < 1:
                stopped = (
                    "refused",
                    f"{peer.country}'s rate limit allows no more evaluations now; "
                    "not checked: look these serials up again later",
                )
                break
            batch = slice(start, start + size)
            try:
                answer = await self._client.ask(
                    peer, LookupEvaluate(elements=[b for _s, b in blinded[batch]])
                )
            except Exception as e:
                if not finishing:
                    raise
                stopped = _failure(peer, e)
                break
            evaluated, proof, version, allowance = _evaluated(answer, size)
            finishing.append(
                asyncio.ensure_future(
                    _off_loop(
                        size,
                        _finish,
                        peer.oprf_key,
                        inputs[batch],
                        blinded[batch],
                        evaluated,
                        proof,
                    )
                )
            )
            start += size
        outputs = [o for part in await asyncio.gather(*finishing) for o in part]
        return _Evaluation(outputs, version, stopped)

    async def _confirm(
        self,
        peer: Peer,
        query: Query,
        output: bytes,
        case_reference: str,
        actor: str,
        index: MembershipIndex,
    ) -> LookupResult:
        confirm = LookupConfirm(
            lookup_id=os.urandom(16), output=output, make=query.make, case_reference=case_reference
        )
        try:
            signed = await self._client.ask_signed(peer, confirm)
        except PeerUnreachableError as e:
            reason = f"confirmation failed ({e})"
        except PeerRefusedError as e:
            if e.peer_code not in RETRYABLE:
                return LookupResult(peer.country, query.serial, "refused", reason=str(e))
            reason = f"the confirmation was refused for now ({e})"
        else:
            return await self._confirmed(peer, query, signed, case_reference, actor, index)
        # The owner records the hit when the notice reaches it (by lookup id, once).
        notice = HitNotice(**msgspec.structs.asdict(confirm), delivery_id=os.urandom(16))
        await self._delivery.send(peer.country, notice)
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
        signed: Signed[LookupConfirmed],
        case_reference: str,
        actor: str,
        index: MembershipIndex,
    ) -> LookupResult:
        records = _records(signed.body.records)
        if not records:  # an index false positive (2^-32)
            return LookupResult(peer.country, query.serial, "no_hit", index_version=index.version)
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
            records=records,
            make_agrees=signed.body.make_agrees,
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
        since = index.version if index else None
        documents = (await self._client.ask(peer, IndexGet(since=since), INDEX_MAX_BYTES)).documents
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


def _checked(query: Query, i: int, count: int) -> str:
    """The canonical serial of the `i`-th of `count` queries, its make checked too."""
    where = f"serial {i + 1} of {count} ({query.serial!r}): " if count > 1 else ""
    check_chars("serial", query.serial, where)
    check_text("make", query.make, where)
    canonical = canonicalise_serial(query.serial)
    if not canonical or len(canonical.encode()) > oprf.MAX_SERIAL_BYTES:
        raise ValidationError(f"{where}serial: {query.serial!r} is not a serial number", "serial")
    return canonical


def _evaluated(answer: LookupEvaluated, size: int) -> tuple[list[bytes], bytes, int, int]:
    """A `lookup.evaluated` answer's elements (one per element asked), proof, index
    version and allowance."""
    if len(answer.elements) != size:
        raise OprfError(
            f"lookup.evaluated: {size} elements were asked, {len(answer.elements)} came"
        )
    return answer.elements, answer.proof, answer.index_version, answer.allowance


def _records(records: list[dict[str, str]]) -> list[dict[str, str]]:
    """The records of a `lookup.confirmed` answer (decoded: at most `MAX_RECORDS` maps of
    strings), checked for their keys (PROTOCOL.md §2.3); `PeerAnswerError` otherwise."""
    if not all(set(record) <= RECORD_KEYS for record in records):
        raise PeerAnswerError("each record must map known fields to strings")
    return records


def _failure(peer: Peer, error: Exception) -> tuple[str, str]:
    """A failed exchange with `peer` as its result (`unreachable` or `refused`) and reason."""
    if isinstance(error, PeerUnreachableError):
        return "unreachable", str(error)
    if isinstance(error, PeerRefusedError):
        return "refused", str(error)
    if isinstance(error, (OprfError, IndexFormatError, PeerAnswerError)):
        return "refused", f"{peer.country} answered with invalid data: {error}"
    if isinstance(error, IarmsError):
        return "refused", f"{peer.country}: {error}"
    log.error("asking %s failed", peer.country, exc_info=error)
    return "unreachable", f"{peer.country}: this node failed to ask it ({type(error).__name__})"
