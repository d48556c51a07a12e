"""Inbound peer messages: verify, find the peer, run the handler, answer signed.

Every answer is a signed envelope to the sender whose body names the request
(`ref`); every failure is a signed `error` envelope with a stable code. A
verified message from a peer clears its delivery backoff: it is back (a node
that starts says `hello` to its peers for that reason).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import Clock
from node.errors import (
    IarmsError,
    NotFoundError,
    UnknownMessageTypeError,
    UnknownSenderError,
    ValidationError,
)
from node.protocol.client import pack
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import Envelope, decode_body, read_header, seal, to_ms
from node.protocol.model import Peer
from node.protocol.peers import PeersService
from node.protocol.receive import Receiver
from node.protocol.transport import PeerUnreachableError

log = logging.getLogger(__name__)

#: A handler answers a verified envelope from a known peer with (answer type, answer body).
Handler = Callable[[Envelope, Peer], Awaitable[tuple[str, dict[str, Any]]]]


async def _hello(envelope: Envelope, _peer: Peer) -> tuple[str, dict[str, Any]]:
    """`hello {}` → `ack {}`: a node that starts greets its peers, which retry what waits for it."""
    decode_body(envelope, {})
    return "ack", {}


async def _ping(envelope: Envelope, _peer: Peer) -> tuple[str, dict[str, Any]]:
    """`ping {}` → `pong {}`: is the peer there, and does it trust our key? (PROTOCOL.md §1.8)."""
    decode_body(envelope, {})
    return "pong", {}


class Dispatcher:
    """Turns inbound envelope bytes into signed answer bytes (with an HTTP status hint)."""

    def __init__(
        self,
        receiver: Receiver,
        peers: PeersService,
        delivery: DeliveryService,
        signing_key: Ed25519PrivateKey,
        me: str,
        clock: Clock,
        handlers: Mapping[str, Handler],
    ) -> None:
        self._receiver = receiver
        self._peers = peers
        self._delivery = delivery
        self._key = signing_key
        self._me = me
        self._clock = clock
        self._handlers: Mapping[str, Handler] = {"hello": _hello, "ping": _ping, **handlers}

    @property
    def types(self) -> frozenset[str]:
        """The request types this node answers."""
        return frozenset(self._handlers)

    async def _accept(self, data: bytes) -> tuple[Envelope, Peer]:
        """Verify; a known peer under an unknown key may have rotated it: check once."""
        try:
            return await self._receiver.accept(data)
        except UnknownSenderError:
            sender = read_header(data).sender
            if not await self._follow(sender):
                raise
            return await self._receiver.accept(data)

    async def _follow(self, sender: str) -> bool:
        try:
            return await self._peers.follow_rotation(sender)
        except (NotFoundError, PeerUnreachableError, ValidationError):
            return False

    async def handle(self, data: bytes) -> tuple[int, bytes]:
        """Process one inbound message; (HTTP status, signed answer)."""
        try:
            envelope, peer = await self._accept(data)
            await self._peers.heard(peer)
            await self._delivery.peer_heard(peer.country)
            handler = self._handlers.get(envelope.type)
            if handler is None:
                raise UnknownMessageTypeError(f"message type {envelope.type[:64]!r} is unknown")
            answer_type, body = await handler(envelope, peer)
        except IarmsError as e:
            return e.status, self._receiver.answer_error(e, data)
        except Exception:
            log.exception("handling a peer message failed")
            error = IarmsError("internal error; the message was not processed")
            return 500, self._receiver.answer_error(error, data)
        answer = seal(
            self._key,
            self._me,
            envelope.sender,
            answer_type,
            pack({**body, "ref": envelope.message_id}),
            timestamp_ms=to_ms(self._clock.now()),
        )
        return 200, answer
