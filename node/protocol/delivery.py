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
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from node.clock import Clock
from node.protocol.backoff import BackoffConfig, next_interval
from node.protocol.model import OutboxMessage, OutboxStatus
from node.protocol.storage import OutboxStorage

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
    ) -> None:
        self._store = store
        self._clock = clock
        self._config = config or BackoffConfig()
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._fine: set[str] = set()  # peers known to have no backoff in force

    async def enqueue(self, recipient: str, type_: str, body: bytes) -> OutboxMessage:
        """Write a message to the outbox (delivered by `run`, or by `deliver_due`)."""
        message = await self._store.add_message(
            recipient, os.urandom(16), type_, body, self._clock.now()
        )
        self._wake.set()
        return message

    async def deliver_due(self, sender: MessageSender, max_rounds: int = 100) -> int:
        """Send every message that is due, oldest first per peer; return how many arrived."""
        delivered = 0
        for _ in range(max_rounds):
            due = await self._store.get_due(self._clock.now())
            if not due:
                break
            outcomes = await asyncio.gather(*(self._attempt(sender, m) for m in due))
            delivered += outcomes.count(Outcome.DELIVERED)
            if all(o is Outcome.RETRY for o in outcomes):
                break
        return delivered

    async def _attempt(self, sender: MessageSender, message: OutboxMessage) -> Outcome:
        try:
            result = await sender.deliver(message)
        except Exception as e:  # a bug in a sender must not stop delivery to other peers
            log.exception("delivery of %s to %s failed", message.type, message.recipient)
            result = SendResult(Outcome.RETRY, f"internal error: {e}", answered=True)
        now = self._clock.now()
        if result.outcome is Outcome.DELIVERED:
            await self._store.set_outcome(message, OutboxStatus.DELIVERED, now, None)
            return result.outcome
        if result.outcome is Outcome.DEAD:
            await self._store.set_outcome(message, OutboxStatus.DEAD, now, result.error)
            return result.outcome
        if result.answered and message.failed_answers + 1 >= self._config.max_failed_answers:
            error = f"{result.error} (failed {message.failed_answers + 1} times; given up)"
            await self._store.set_outcome(
                message, OutboxStatus.DEAD, now, error, failed_answer=True
            )
            return Outcome.DEAD
        self._fine.discard(message.recipient)
        state = await self._store.get_state(message.recipient)
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
        """Deliver until `stop` is set, waking on new messages or every `tick_s` of the clock."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.deliver_due(sender)
            except Exception:
                log.exception("delivery round failed; retrying")
            await self._clock.wait(tick_s, self._wake, stop)

    async def messages(self, status: OutboxStatus | None = None) -> list[OutboxMessage]:
        """Outbox messages, newest first (dead letters for the admin)."""
        return await self._store.get_messages(status)
