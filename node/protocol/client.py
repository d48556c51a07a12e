"""Asking a peer: seal a request, post it, verify the signed answer.

Every answer names the request it answers (`ref`, the request's message id),
so an old answer replayed by someone on the path is refused. An `error`
answer becomes `PeerRefusedError` carrying the peer's stable error code. The
client is also the outbox's `MessageSender`: each attempt is a new envelope
(a message id belongs to one transmission), and the outbox message's own id
travels in the body as `delivery_id`, by which the receiver stays idempotent.
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
from typing import Any, Protocol

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import Clock
from node.errors import IarmsError, NotFoundError, ProtocolError, UnknownSenderError
from node.protocol.delivery import Outcome, SendResult
from node.protocol.envelope import (
    DEFAULT_MAX_BYTES,
    ERROR,
    PeerKey,
    decode_error,
    open_envelope,
    read_header,
    seal,
    to_ms,
)
from node.protocol.model import OutboxMessage, Peer, PeerStatus
from node.protocol.receive import PeerRegistry, select_key
from node.protocol.transport import PeerTransport, PeerUnreachableError

MESSAGES_PATH = "/federation/v1/messages"
#: The largest `index` answer read (a full index of 2 million records is about 8.4 MB);
#: every other answer is held to the node's envelope limit (`federation.max_envelope_bytes`).
INDEX_MAX_BYTES = 16 << 20
#: Peer error codes after which a delivery is worth retrying; any other is final.
RETRYABLE = frozenset({"rate_limited", "clock_skew", "internal", "unreachable"})

log = logging.getLogger(__name__)


class PeerRefusedError(IarmsError):
    """The peer answered with a signed error (its code is kept in `peer_code`)."""

    status = 502
    code = "peer_refused"

    def __init__(self, country: str, peer_code: str, message: str) -> None:
        super().__init__(f"{country} refused: {message} ({peer_code})")
        self.peer_code = peer_code


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


@dataclass(frozen=True, slots=True)
class SignedAnswer:
    """A verified answer: its body, and both envelopes exactly as they travelled."""

    body: dict[str, Any]
    request: bytes  # our signed request
    answer: bytes  # the peer's signed answer
    signer_key: bytes  # the peer's Ed25519 public key that verified it


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

    async def request(
        self, peer: Peer, type_: str, body: dict[str, Any], max_bytes: int | None = None
    ) -> dict[str, Any]:
        """Send one request; the answer's body (a map) once verified (see `request_signed`)."""
        return (await self.request_signed(peer, type_, body, max_bytes)).body

    async def request_signed(
        self, peer: Peer, type_: str, body: dict[str, Any], max_bytes: int | None = None
    ) -> SignedAnswer:
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
            answer = await self._request_following_rotation(peer, type_, body, limit)
        except PeerUnreachableError as e:
            await _noting(self._peers.unreachable(peer, str(e)))
            raise
        except PeerRefusedError:
            await self._heard(peer)  # a signed refusal is an answer
            raise
        await self._heard(peer)
        return answer

    async def _heard(self, peer: Peer) -> None:
        await _noting(self._peers.heard(peer))
        if self._retry_now is not None:  # it is back: what waits for it goes now
            await _noting(self._retry_now(peer.country))

    async def _request_following_rotation(
        self, peer: Peer, type_: str, body: dict[str, Any], max_bytes: int
    ) -> SignedAnswer:
        try:
            return await self._request(peer, type_, body, max_bytes)
        except _UnknownKeyError:
            peer = await self._rotated(peer)
        try:
            return await self._request(peer, type_, body, max_bytes)
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
        self, peer: Peer, type_: str, body: dict[str, Any], max_bytes: int
    ) -> SignedAnswer:
        data = seal(
            self._key,
            self._me,
            peer.country,
            type_,
            pack(body),
            timestamp_ms=to_ms(self._clock.now()),
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
            result = msgpack.unpackb(envelope.body, raw=False, max_bin_len=max_bytes)
        except UnknownSenderError as e:
            raise _UnknownKeyError(str(e)) from e
        except ProtocolError as e:
            raise PeerUnreachableError(f"{peer.country}: its answer does not verify: {e}") from e
        except (ValueError, msgpack.ExtraData) as e:
            raise PeerUnreachableError(f"{peer.country}: its answer is malformed") from e
        if not isinstance(result, dict) or result.get("ref") != read_header(data).message_id:
            raise PeerUnreachableError(f"{peer.country}: its answer is not for this request")
        return SignedAnswer(result, data, answer, used[0].public_key)

    async def greet(self, peers: list[Peer]) -> int:
        """Say `hello` to every active peer at once (after a start); how many answered.

        Each answer is contact: the peer shows as reachable here and retries
        what its outbox holds for us at once (a failure is noted as usual).
        """
        active = [p for p in peers if p.status is PeerStatus.ACTIVE]
        answers = await asyncio.gather(
            *(self.request(p, "hello", {}) for p in active), return_exceptions=True
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
            await self.request(peer, message.type, {**body, "delivery_id": message.message_id})
        except PeerUnreachableError as e:
            return SendResult(Outcome.RETRY, str(e))
        except PeerRefusedError as e:
            outcome = Outcome.RETRY if e.peer_code in RETRYABLE else Outcome.DEAD
            return SendResult(outcome, str(e), answered=e.peer_code == "internal")
        return SendResult(Outcome.DELIVERED)
