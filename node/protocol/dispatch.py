"""Inbound peer messages: verify, find the registered type, decode, handle once, answer signed.

The registry maps each wire type to its request class (`node.protocol.messages`)
and its handler; services register theirs (`LookupResponder.register`). For
one inbound envelope::

    Receiver.accept        verified envelope and its peer (replay cache included)
    registration           `unknown_type` if none; `refused` if the peer's policy lacks
                           the service the registration requires
    decode                 the body into the request class (`malformed`, naming the field)
    admit                  checks before any effect (a peer's rate limit)
    read-only request      handler(message, peer) → answer
    request with effect    in ONE unit of work: claim (sender, key) in the inbox,
                           handler(message, peer, work) stores its effect and queues
                           what it sends, the answer is kept with the claim (unless
                           repeats are refused: then it is never sent again); commit.
                           A repeat (the key claimed before) gets the kept answer again,
                           or is refused if its class says so (`lookup.confirm`).
    seal                   the answer with `ref` = this request's message id

The key of a request with an effect is its class's `once_by`: a body field
(`delivery_id` of an outbox message, `lookup_id` of a lookup) or the
envelope's message id. A repeat's answer is sealed anew, naming the repeat's
own message id: an answer is bound to the request it answers, so an old
answer replayed to a new request is refused (docs/adr/0007). Every failure is
a signed `error` envelope with a stable code. A verified message from a peer
clears its delivery backoff: it is back (a node that starts says `hello` to
its peers for that reason).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import Clock
from node.errors import (
    IarmsError,
    NotFoundError,
    PolicyRefusedError,
    ProtocolError,
    UnknownMessageTypeError,
    UnknownSenderError,
    ValidationError,
)
from node.protocol.delivery import DeliveryService
from node.protocol.envelope import Envelope, read_header, seal, to_ms
from node.protocol.messages import (
    BY_MESSAGE_ID,
    Ack,
    Answer,
    Hello,
    Ping,
    Pong,
    Request,
    check_strings,
    decode,
    encode,
    fields,
    with_ref,
)
from node.protocol.model import Peer, PriorClaim, Service
from node.protocol.peers import PeersService
from node.protocol.receive import Receiver
from node.protocol.storage import UnitOfWork
from node.protocol.transport import PeerUnreachableError

log = logging.getLogger(__name__)

W = TypeVar("W", bound=UnitOfWork)
R = TypeVar("R", bound=Request[Any])

#: A read-only request's handler: (message, peer) → answer.
ReadHandler = Callable[[R, Peer], Awaitable[Answer]]
#: The handler of a request with an effect: (message, peer, unit of work) → answer.
EffectHandler = Callable[[R, Peer, W], Awaitable[Answer]]
#: A check before any effect, raising to refuse (a peer's rate limit).
Admit = Callable[[R, Peer], None]


@dataclass(frozen=True, slots=True)
class Registration(Generic[W]):
    """A request class, its handler (read-only or with an effect) and its requirements."""

    request: type[Request[Any]]
    read: ReadHandler[Any] | None = None
    effect: EffectHandler[Any, W] | None = None
    requires: Service | None = None
    admit: Admit[Any] | None = None


async def _hello(_message: Hello, _peer: Peer) -> Ack:
    """`hello` → `ack`: a node that starts greets its peers, which retry what waits for it."""
    return Ack()


async def _ping(_message: Ping, _peer: Peer) -> Pong:
    """`ping` → `pong`: answered whatever the policy (PROTOCOL.md §1.8)."""
    return Pong()


class Dispatcher(Generic[W]):
    """Turns inbound envelope bytes into signed answer bytes (with an HTTP status hint)."""

    def __init__(
        self,
        receiver: Receiver,
        peers: PeersService,
        delivery: DeliveryService,
        signing_key: Ed25519PrivateKey,
        me: str,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
    ) -> None:
        self._receiver = receiver
        self._peers = peers
        self._delivery = delivery
        self._key = signing_key
        self._me = me
        self._clock = clock
        self._work = work
        self._registry: dict[str, Registration[W]] = {}
        self.register(Hello, _hello)
        self.register(Ping, _ping)

    def register(
        self,
        request: type[R],
        handler: ReadHandler[R],
        *,
        requires: Service | None = None,
        admit: Admit[R] | None = None,
    ) -> None:
        """Answer a read-only `request` class with `handler` (no claim, no unit of work)."""
        if request.once_by is not None:
            raise TypeError(f"{request.wire_type} has an effect: register_effect it")
        self._add(Registration(request, read=handler, requires=requires, admit=admit))

    def register_effect(
        self,
        request: type[R],
        handler: EffectHandler[R, W],
        *,
        requires: Service | None = None,
        admit: Admit[R] | None = None,
    ) -> None:
        """Answer `request` (whose class names its `once_by` key) with `handler`, exactly once."""
        if request.once_by is None:
            raise TypeError(f"{request.wire_type} is read-only: register it")
        self._add(Registration(request, effect=handler, requires=requires, admit=admit))

    def _add(self, registration: Registration[W]) -> None:
        name = registration.request.wire_type
        if name in self._registry:
            raise ValueError(f"{name} is registered already")
        check_strings(registration.request)
        check_strings(registration.request.answer)
        self._registry[name] = registration

    @property
    def types(self) -> frozenset[str]:
        """The request types this node answers."""
        return frozenset(self._registry)

    @property
    def requests(self) -> list[type[Request[Any]]]:
        """The request classes this node answers, in the order they were registered."""
        return [r.request for r in self._registry.values()]

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
            answer = await self._answer(envelope, peer)
        except IarmsError as e:
            return e.status, self._receiver.answer_error(e, data)
        except Exception:
            log.exception("handling a peer message failed")
            error = IarmsError("internal error; the message was not processed")
            return 500, self._receiver.answer_error(error, data)
        sealed = seal(
            self._key,
            self._me,
            envelope.sender,
            answer.wire_type,
            encode(with_ref(answer, envelope.message_id)),
            timestamp_ms=to_ms(self._clock.now()),
        )
        return 200, sealed

    async def _answer(self, envelope: Envelope, peer: Peer) -> Answer:
        registration = self._registry.get(envelope.type)
        if registration is None:
            raise UnknownMessageTypeError(f"message type {envelope.type[:64]!r} is unknown")
        if registration.requires is not None and not peer.allows(registration.requires):
            raise PolicyRefusedError(
                f"this node does not answer {registration.requires.value} for {peer.country}"
            )
        cls = registration.request
        message = decode(cls, envelope.body)
        if registration.admit is not None:
            registration.admit(message, peer)
        if registration.read is not None:
            answer = await registration.read(message, peer)
        else:
            answer = await self._once(registration, envelope, message, peer)
        if not isinstance(answer, cls.answer):
            raise TypeError(f"the {cls.wire_type} handler answered {type(answer).__name__}")
        return answer

    async def _once(
        self, registration: Registration[W], envelope: Envelope, message: Any, peer: Peer
    ) -> Answer:
        """Claim, handle and keep the answer in one unit of work; a repeat's kept answer."""
        assert registration.effect is not None
        cls = registration.request
        once_by = cls.once_by
        assert once_by is not None  # `register_effect` checked it
        key = envelope.message_id if once_by == BY_MESSAGE_ID else getattr(message, once_by)
        sender = envelope.sender
        async with self._work() as work:
            prior = await work.claim(sender, key, cls.wire_type, self._clock.now())
            if prior is None:
                answer = await registration.effect(message, peer, work)
                if cls.refuse_repeat is None:  # else it is never sent again: not kept
                    await work.set_answer(sender, key, answer.wire_type, encode(answer))
                return answer
        return _repeated(cls, key, prior)


def _repeated(cls: type[Request[Any]], key: bytes, prior: PriorClaim) -> Answer:
    """The answer to a request whose key was claimed before (docs/adr/0007)."""
    if cls.refuse_repeat is not None:
        raise cls.refuse_repeat(
            f"{cls.once_by} {key.hex()} was used before: a {cls.wire_type} with it is handled once"
        )
    if prior.answer is not None and prior.answer_type == cls.answer.wire_type:
        try:
            return decode(cls.answer, prior.answer)
        except ProtocolError as e:  # our own bytes: a fault of this node, not the peer's
            raise RuntimeError(f"the kept answer to {cls.wire_type} does not decode") from e
    if fields(cls.answer) == ("ref",):  # claimed by another type sharing the key
        return cls.answer()
    raise ProtocolError(f"{cls.once_by} {key.hex()} was used before, by a {prior.type}")
