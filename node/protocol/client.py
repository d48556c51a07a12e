"""Asking a peer: seal a request, post it, verify the signed answer.

`ask(peer, request)` sends a typed request (`node.protocol.messages`) and
returns its typed answer: `await client.ask(peer, Ping())` is a `Pong`. An
answer that verifies but does not fit its class is `PeerAnswerError`.
(`request` sends a plain map: for tests and tools that must send what a
hostile or older peer would.) Every answer names the request it answers
(`ref`, the request's message id), so an old answer replayed by someone on
the path is refused. An `error` answer becomes `PeerRefusedError` carrying
the peer's stable error code. The client is also the outbox's
`MessageSender`: each attempt is a new envelope (a message id belongs to one
transmission), the outbox message's own id travels in the body as
`delivery_id`, by which the receiver stays idempotent, and the peer's signed
answer to the attempt that arrives is the message's receipt.
An answer that verifies (a signed error too) is contact with the peer, and
what waits for it in the outbox is retried at once (`retry_now`); a request
that gets none is a failure to reach it: both are noted in the registry,
which shows the peer as reachable or not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import Clock
from node.errors import (
    IarmsError,
    MalformedEnvelopeError,
    NotFoundError,
    PeerAnswerError,
    PeerRefusedError,
    ProtocolError,
    UnknownSenderError,
)
from node.protocol.delivery import Outcome, SendResult
from node.protocol.envelope import (
    DEFAULT_MAX_BYTES,
    ERROR,
    Envelope,
    PeerKey,
    decode_error,
    open_envelope,
    read_header,
    seal,
    to_ms,
)
from node.protocol.messages import A, AnyAnswer, Hello, Request, answer_class, decode, encode
from node.protocol.model import OutboxMessage, Peer, PeerStatus
from node.protocol.receive import PeerRegistry, select_key
from node.protocol.transport import MESSAGES_PATH, PeerTransport, PeerUnreachableError

#: The largest `index` answer read (a full index of 2 million records is about 8.4 MB);
#: every other answer is held to the node's envelope limit (`federation.max_envelope_bytes`).
INDEX_MAX_BYTES = 16 << 20
#: Peer error codes after which a delivery is worth retrying; any other is final.
RETRYABLE = frozenset({"rate_limited", "clock_skew", "internal", "unreachable"})

log = logging.getLogger(__name__)


class _UnknownKeyError(Exception):
    """An answer signed with a key the registry does not hold (maybe rotated)."""


class Peers(PeerRegistry, Protocol):
    """The peer registry, able to follow a peer's key rotation and to note contact."""

    async def follow_rotation(self, country: str) -> bool:
        """Switch to a peer's new key if its descriptor announces one validly."""
        ...

    async def heard(self, peer: Peer) -> None:
        """Note a verified message from `peer` (clears a failure to reach it)."""
        ...

    async def unreachable(self, peer: Peer, reason: str) -> None:
        """Note that a request to `peer` got no answer that verifies."""
        ...


async def _noting(note: Awaitable[None]) -> None:
    """Note contact or failure; a store fault must not replace the answer or the peer's error."""
    try:
        await note
    except Exception:
        log.exception("cannot note the contact with a peer")


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Signed(Generic[T]):
    """A verified answer: its body, and both envelopes exactly as they travelled."""

    body: T
    request: bytes  # our signed request
    answer: bytes  # the peer's signed answer
    signer_key: bytes  # the peer's Ed25519 public key that verified it


#: An answer read as a plain map (`PeerClient.request_signed`).
SignedAnswer = Signed[dict[str, Any]]
#: Reads a verified answer envelope for the request whose message id is given.
Reader = Callable[[Envelope, bytes], T]


def _not_for(country: str) -> PeerUnreachableError:
    return PeerUnreachableError(f"{country}: its answer is not for this request")


def _typed_reader(cls: type[A], country: str) -> Reader[A]:
    """Reads an answer of class `cls`; one that does not fit is `PeerAnswerError`, unless
    it is not even for our request (then it is no answer at all)."""

    def read(envelope: Envelope, ref: bytes) -> A:
        try:
            if envelope.type != cls.wire_type:
                raise MalformedEnvelopeError(f"expected {cls.wire_type}, got {envelope.type}")
            answer = decode(cls, envelope.body)
        except MalformedEnvelopeError as e:
            try:
                ours = decode(AnyAnswer, envelope.body).ref == ref
            except MalformedEnvelopeError:
                ours = False
            if not ours:
                raise _not_for(country) from e
            raise PeerAnswerError(str(e)) from e
        if answer.ref != ref:
            raise _not_for(country)
        return answer

    return read


def _map_reader(country: str, max_bytes: int) -> Reader[dict[str, Any]]:
    """Reads an answer as a plain map, checking only its `ref`."""

    def read(envelope: Envelope, ref: bytes) -> dict[str, Any]:
        try:
            result = msgpack.unpackb(envelope.body, raw=False, max_bin_len=max_bytes)
        except (ValueError, msgpack.ExtraData) as e:
            raise PeerUnreachableError(f"{country}: its answer is malformed") from e
        if not isinstance(result, dict) or result.get("ref") != ref:
            raise _not_for(country)
        return result

    return read


def pack(body: dict[str, Any]) -> bytes:
    """A message body as msgpack."""
    return msgpack.packb(body, use_bin_type=True)


class PeerClient:
    """Sends requests to peers and checks their answers."""

    def __init__(
        self,
        transport: PeerTransport,
        signing_key: Ed25519PrivateKey,
        me: str,
        clock: Clock,
        peers: Peers,
        retry_now: Callable[[str], Awaitable[None]] | None = None,
        max_answer_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._peers = peers
        self._max_answer = max_answer_bytes
        self._retry_now = retry_now
        self._transport = transport
        self._key = signing_key
        self._me = me
        self._clock = clock
        self.public_key = signing_key.public_key().public_bytes_raw()

    async def ask(self, peer: Peer, request: Request[A], max_bytes: int | None = None) -> A:
        """Send a typed request; its typed answer once verified (see `ask_signed`)."""
        return (await self.ask_signed(peer, request, max_bytes)).body

    async def ask_signed(
        self, peer: Peer, request: Request[A], max_bytes: int | None = None
    ) -> Signed[A]:
        """Send a typed request; its verified answer, with both envelopes as they travelled.

        Raises:
            PeerUnreachableError, PeerRefusedError: as `request_signed`.
            PeerAnswerError: the answer verifies and names our request, but is not the
                request's answer class (a field missing, mistyped, too long ...).
        """
        read = _typed_reader(answer_class(request), peer.country)
        return await self._send(peer, request.wire_type, encode(request), read, max_bytes)

    async def request(
        self, peer: Peer, type_: str, body: dict[str, Any], max_bytes: int | None = None
    ) -> dict[str, Any]:
        """Send a plain map as a request; the answer's body (a map) once verified."""
        return (await self.request_signed(peer, type_, body, max_bytes)).body

    async def request_signed(
        self, peer: Peer, type_: str, body: dict[str, Any], max_bytes: int | None = None
    ) -> SignedAnswer:
        """Send a plain map as a request; its verified answer, read as a map."""
        read = _map_reader(peer.country, max_bytes or self._max_answer)
        return await self._send(peer, type_, pack(body), read, max_bytes)

    async def _send(
        self, peer: Peer, type_: str, body: bytes, read: Reader[T], max_bytes: int | None
    ) -> Signed[T]:
        """Send one request; its verified answer, with both envelopes as they travelled.

        An answer under a key we do not know may follow a key rotation: the
        peer's descriptor is checked once and the request sent again. An
        answer larger than `max_bytes` (by default the node's envelope limit)
        is not read: the peer is unreachable for this request.

        Raises:
            PeerUnreachableError: no answer, or an answer that does not verify (also
                under a new key whose rotation statement does not verify).
            PeerRefusedError: a signed error answer.
        """
        limit = max_bytes or self._max_answer
        try:
            answer = await self._request_following_rotation(peer, type_, body, read, limit)
        except PeerUnreachableError as e:
            await _noting(self._peers.unreachable(peer, str(e)))
            raise
        except (PeerRefusedError, PeerAnswerError):
            await self._heard(peer)  # a signed refusal is an answer
            raise
        await self._heard(peer)
        return answer

    async def _heard(self, peer: Peer) -> None:
        await _noting(self._peers.heard(peer))
        if self._retry_now is not None:  # it is back: what waits for it goes now
            await _noting(self._retry_now(peer.country))

    async def _request_following_rotation(
        self, peer: Peer, type_: str, body: bytes, read: Reader[T], max_bytes: int
    ) -> Signed[T]:
        try:
            return await self._request(peer, type_, body, read, max_bytes)
        except _UnknownKeyError:
            peer = await self._rotated(peer)
        try:
            return await self._request(peer, type_, body, read, max_bytes)
        except _UnknownKeyError as e:
            raise PeerUnreachableError(f"{peer.country}: {e}") from None

    async def _rotated(self, peer: Peer) -> Peer:
        """`peer` under the new key its descriptor announces validly (or announced meanwhile).

        Raises:
            PeerUnreachableError: no such key, or it cannot be followed (a statement or
                descriptor that does not verify, for one): this peer's failure only.
        """
        distrust = f"{peer.country}: its answer is signed with a key this node does not trust"
        try:
            fresh = await self._peers.get(peer.country)  # `peer` may predate a rotation
            followed = fresh.signing_key != peer.signing_key or await self._peers.follow_rotation(
                peer.country
            )
            if followed:
                return await self._peers.get(peer.country)
        except IarmsError as e:
            raise PeerUnreachableError(f"{distrust}: {e}") from e
        raise PeerUnreachableError(distrust)

    async def _request(
        self, peer: Peer, type_: str, body: bytes, read: Reader[T], max_bytes: int
    ) -> Signed[T]:
        data = seal(
            self._key, self._me, peer.country, type_, body, timestamp_ms=to_ms(self._clock.now())
        )
        answer = await self._transport.post(peer.url + MESSAGES_PATH, data, max_bytes)
        now = self._clock.now()
        used: list[PeerKey] = []

        def keys(sender: str, kid: bytes) -> PeerKey | None:
            key = select_key(peer, kid, now) if sender == peer.country else None
            if key is not None:
                used.append(key)
            return key

        try:
            envelope = open_envelope(
                answer, me=self._me, now_ms=to_ms(now), max_bytes=max_bytes, keys=keys
            )
            if envelope.type == ERROR:
                error = decode_error(envelope)
                raise PeerRefusedError(peer.country, error.code, error.message)
        except UnknownSenderError as e:
            raise _UnknownKeyError(str(e)) from e
        except ProtocolError as e:
            raise PeerUnreachableError(f"{peer.country}: its answer does not verify: {e}") from e
        result = read(envelope, read_header(data).message_id)
        return Signed(result, data, answer, used[0].public_key)

    async def greet(self, peers: list[Peer]) -> int:
        """Say `hello` to every active peer at once (after a start); how many answered.

        Each answer is contact: the peer shows as reachable here and retries
        what its outbox holds for us at once (a failure is noted as usual).
        """
        active = [p for p in peers if p.status is PeerStatus.ACTIVE]
        answers = await asyncio.gather(
            *(self.ask(p, Hello()) for p in active), return_exceptions=True
        )
        return sum(not isinstance(a, BaseException) for a in answers)

    async def deliver(self, message: OutboxMessage) -> SendResult:
        """One delivery attempt of an outbox message (see the module docstring)."""
        try:
            peer = await self._peers.get(message.recipient)
        except NotFoundError:
            return SendResult(Outcome.DEAD, f"{message.recipient} is not a peer")
        if peer.status is not PeerStatus.ACTIVE:
            return SendResult(Outcome.DEAD, f"{peer.country} is revoked")
        body = msgpack.unpackb(message.body, raw=False)
        try:
            signed = await self.request_signed(
                peer, message.type, {**body, "delivery_id": message.message_id}
            )
        except PeerUnreachableError as e:
            return SendResult(Outcome.RETRY, str(e))
        except PeerRefusedError as e:
            outcome = Outcome.RETRY if e.peer_code in RETRYABLE else Outcome.DEAD
            return SendResult(outcome, str(e), answered=e.peer_code == "internal")
        attempt = read_header(signed.request).message_id
        return SendResult(Outcome.DELIVERED, receipt=signed.answer, attempt_id=attempt)
