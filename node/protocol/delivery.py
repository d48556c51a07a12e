"""Delivery of messages that must arrive: durable outbox, per-peer order, backoff.

A message is written to the outbox before anything is sent, so an outage or
a restart delays it and never loses it. Each peer has one queue: its oldest
pending message is sent first and only one is in flight. A peer that fails
is retried after a jittered, capped backoff (`node.protocol.backoff`), kept
in the database; hearing a verified message from it clears the backoff.
Outcomes: delivered; dead (the peer refused it for good: shown to the admin);
retry (429, 5xx, network). A message that the peer keeps answering with a
failure (`internal`), or that this node fails to send, is a poisoned one: after
`max_failed_answers` such attempts it is dead-lettered too, so the messages
behind it in the peer's queue go on. No answer at all (the peer is down) never
counts: an outage delays messages and never loses them.

A delivered message keeps the peer's signed answer as its receipt
(`node.protocol.receipts`). A handler that sends a message as part of its
effect queues it in its unit of work (`enqueue(..., work=work)`): it is
written in the same transaction as the effect, and delivery is woken once
that transaction commits.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from node.clock import Clock
from node.errors import NotFoundError, ReceiptError
from node.protocol.backoff import BackoffConfig, next_interval
from node.protocol.messages import Request, encode, fields
from node.protocol.model import OutboxMessage, OutboxStatus
from node.protocol.receipts import DeliveryReceipt, verify_receipt
from node.protocol.receive import PeerRegistry
from node.protocol.storage import OutboxStorage, OutboxWriter, UnitOfWork

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What one delivery attempt achieved."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class SendResult:
    """An attempt's outcome and, when it failed, why."""

    outcome: Outcome
    error: str | None = None
    answered: bool = False  # a RETRY whose failure the peer itself answered (`internal`)
    receipt: bytes | None = None  # DELIVERED: the peer's signed answer, as received ...
    attempt_id: bytes | None = None  # ... to the envelope with this message id


#: Messages one peer's drain sends in a turn before the loop looks at the outbox again ...
DRAIN_BATCH = 100
#: ... reading its next messages this many at a time.
DRAIN_READ = 16


@dataclass(frozen=True, slots=True)
class _Drained:
    """What a drain of one peer's queue did: messages delivered, and moved on (also dead)."""

    delivered: int
    moved: int


class MessageSender(Protocol):
    """Seals and sends one outbox message to its recipient."""

    async def deliver(self, message: OutboxMessage) -> SendResult:
        """Try once; never raise for peer or network faults (return RETRY or DEAD)."""
        ...


class DeliveryService:
    """Queues must-arrive messages and delivers them."""

    def __init__(
        self,
        store: OutboxStorage,
        clock: Clock,
        config: BackoffConfig | None = None,
        rng: random.Random | None = None,
        *,
        peers: PeerRegistry | None = None,
        me: str = "",
    ) -> None:
        self._store = store
        self._peers = peers  # whose keys check receipts
        self._me = me
        self._clock = clock
        self._config = config or BackoffConfig()
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._fine: set[str] = set()  # peers known to have no backoff in force

    async def enqueue(
        self,
        recipient: str,
        type_: str,
        body: bytes,
        *,
        message_id: bytes | None = None,
        work: UnitOfWork | None = None,
    ) -> OutboxMessage:
        """Write a message to the outbox (delivered by `run`, or by `deliver_due`).

        With `work`, it is written in that unit of work and delivery wakes when
        it commits; its `message_id` (random if not given) travels as `delivery_id`.
        """
        store: OutboxWriter = work if work is not None else self._store
        message_id = message_id or os.urandom(16)
        message = await store.add_message(recipient, message_id, type_, body, self._clock.now())
        if work is None:
            self._wake.set()
        else:
            work.after_commit(self._wake.set)
        return message

    async def send(
        self, recipient: str, request: Request[Any], work: UnitOfWork | None = None
    ) -> OutboxMessage:
        """Queue a typed must-arrive request; its `delivery_id` is the outbox message's id.

        Raises:
            TypeError: the request's class has no `delivery_id` (it cannot go through the outbox).
        """
        if "delivery_id" not in fields(type(request)):
            raise TypeError(f"{request.wire_type} has no delivery_id: it cannot be queued")
        delivery_id = request.delivery_id  # type: ignore[attr-defined]
        body = encode(request)
        return await self.enqueue(
            recipient, request.wire_type, body, message_id=delivery_id, work=work
        )

    async def deliver_due(self, sender: MessageSender, max_rounds: int = 100) -> int:
        """Send every message that is due, oldest first per peer; return how many arrived.

        Each peer's queue drains on its own (`_drain`), all at once: a slow or failing
        peer holds up no other. Rounds go on while some queue moved (up to `max_rounds`).
        """
        delivered = 0
        for _ in range(max_rounds):
            due = await self._store.get_due(self._clock.now())
            if not due:
                break
            drains = await asyncio.gather(*(self._drain(sender, m) for m in due))
            delivered += sum(d.delivered for d in drains)
            if not any(d.moved for d in drains):
                break
        return delivered

    async def _drain(
        self, sender: MessageSender, first: OutboxMessage, stop: asyncio.Event | None = None
    ) -> _Drained:
        """Send `first`, then the peer's next due messages one at a time, oldest first, until
        its queue is empty, an attempt fails (its backoff starts), `stop` is set, or
        `DRAIN_BATCH` messages were sent (then the caller starts another turn). The next
        ones are read `DRAIN_READ` at a time."""
        delivered = moved = 0
        queue = [first]
        while queue:
            message = queue.pop(0)
            outcome = await self._attempt(sender, message)
            if outcome is Outcome.RETRY:
                break
            moved += 1
            delivered += outcome is Outcome.DELIVERED
            if moved >= DRAIN_BATCH or (stop is not None and stop.is_set()):
                break
            if not queue:
                queue = await self._store.get_due(self._clock.now(), DRAIN_READ, message.recipient)
        return _Drained(delivered, moved)

    async def _attempt(self, sender: MessageSender, message: OutboxMessage) -> Outcome:
        try:
            result = await sender.deliver(message)
        except Exception as e:  # a bug in a sender must not stop delivery to other peers
            log.exception("delivery of %s to %s failed", message.type, message.recipient)
            result = SendResult(Outcome.RETRY, f"internal error: {e}", answered=True)
        now = self._clock.now()
        recipient = message.recipient
        # A peer known to have no backoff needs none cleared: the outcome is one statement.
        clear = recipient not in self._fine
        if result.outcome is Outcome.DELIVERED:
            receipt = None
            if result.receipt is not None and result.attempt_id is not None:
                receipt = (result.attempt_id, result.receipt)
            await self._store.set_outcome(
                message, OutboxStatus.DELIVERED, now, None, receipt=receipt, clear_backoff=clear
            )
            self._fine.add(recipient)
            return result.outcome
        if result.outcome is Outcome.DEAD:
            await self._store.set_outcome(
                message, OutboxStatus.DEAD, now, result.error, clear_backoff=clear
            )
            self._fine.add(recipient)
            return result.outcome
        if result.answered and message.failed_answers + 1 >= self._config.max_failed_answers:
            error = f"{result.error} (failed {message.failed_answers + 1} times; given up)"
            await self._store.set_outcome(
                message, OutboxStatus.DEAD, now, error, failed_answer=True, clear_backoff=clear
            )
            self._fine.add(recipient)
            return Outcome.DEAD
        self._fine.discard(recipient)
        state = await self._store.get_state(recipient)
        interval = next_interval(state.interval_s if state else None, self._config, self._rng)
        retry = (interval, now + timedelta(seconds=interval))
        await self._store.set_outcome(
            message, OutboxStatus.PENDING, now, result.error, retry, result.answered
        )
        return Outcome.RETRY

    async def peer_heard(self, country: str) -> None:
        """A verified message came from `country`: retry its deliveries now."""
        if country in self._fine:  # no failure since we last looked: no database read
            return
        if await self._store.get_state(country) is None:
            self._fine.add(country)
        else:
            await self._store.delete_state(country)
            self._wake.set()

    async def run(self, sender: MessageSender, stop: asyncio.Event, tick_s: float = 1.0) -> None:
        """Deliver until `stop` is set.

        Each peer with a message due gets a drain of its own (`_drain`) as soon as
        one is queued (`enqueue` wakes this loop) or its backoff ends (checked every
        `tick_s` of the clock); a drain that ends wakes the loop, which starts the
        peer's next turn if more is due. When `stop` is set, the drains finish the
        attempt in progress (its outcome is stored) and this returns.
        """
        drains: dict[str, asyncio.Task[_Drained]] = {}

        def ended(recipient: str) -> Callable[[asyncio.Task[_Drained]], None]:
            def done(task: asyncio.Task[_Drained]) -> None:
                drains.pop(recipient, None)
                if task.cancelled():
                    return
                if (error := task.exception()) is not None:  # the store failed: next tick
                    log.error("delivery to %s failed; retrying", recipient, exc_info=error)
                    return
                self._wake.set()

            return done

        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    for message in await self._store.get_due(self._clock.now()):
                        if message.recipient not in drains:
                            task = asyncio.create_task(self._drain(sender, message, stop))
                            drains[message.recipient] = task
                            task.add_done_callback(ended(message.recipient))
                except Exception:
                    log.exception("delivery round failed; retrying")
                await self._clock.wait(tick_s, self._wake, stop)
        finally:
            await asyncio.gather(*drains.values(), return_exceptions=True)

    async def messages(self, status: OutboxStatus | None = None) -> list[OutboxMessage]:
        """Outbox messages, newest first (dead letters for the admin)."""
        return await self._store.get_messages(status)

    async def receipts(
        self, recipient: str | None = None, limit: int = 20
    ) -> list[tuple[OutboxMessage, DeliveryReceipt | ReceiptError]]:
        """The newest delivered messages (to `recipient`, if given), each with its receipt
        checked against the recipient's keys (or why it does not verify)."""
        delivered = await self._store.get_messages(OutboxStatus.DELIVERED)
        out: list[tuple[OutboxMessage, DeliveryReceipt | ReceiptError]] = []
        for message in delivered:
            if recipient is None or message.recipient == recipient:
                out.append((message, await self._check(message)))
        return out[:limit]

    async def _check(self, message: OutboxMessage) -> DeliveryReceipt | ReceiptError:
        if self._peers is None:
            return ReceiptError("this node's peers are not known here: receipts cannot be checked")
        try:
            peer = await self._peers.get(message.recipient)
            keys = [k for k in (peer.signing_key, peer.previous_key) if k is not None]
            return verify_receipt(message, self._me, keys)
        except NotFoundError:
            return ReceiptError(f"{message.recipient} is no longer a peer: no key to check with")
        except ReceiptError as e:
            return e
