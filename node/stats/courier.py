"""How a round's parties reach each other: the outbox to a peer, a direct call to ourselves.

The requester, an aggregator and a contributor of a round may be one node: what
it would send itself is handled at once, in the same unit of work, by the very
handler a peer's message goes to. Every other message goes through the kernel's
`DeliveryService` (durable outbox, exactly once). `register` gives the dispatcher
each handler, wrapped: the peer's `statistics` policy required (except for
`stats.ask`, whose handler records a refusal instead), the peer's token bucket
charged one message before anything is read or written (`STATS_LIMIT`; beyond it
the message is refused whole, `rate_limited`, and the peer's outbox sends it again
later, as a lookup's evaluations and a trace's requests are), answered `ack`,
and the round carrier woken once the message's effect has committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from node.clock import Clock
from node.protocol.delivery import DeliveryService
from node.protocol.dispatch import Dispatcher
from node.protocol.messages import Ack, Request
from node.protocol.model import Peer, Service
from node.protocol.ratelimit import RateLimitConfig, TokenBuckets
from node.stats.rounds_storage import StatsWork

W = TypeVar("W", bound=StatsWork)
#: A handler of a round's message: (message, sender's country, unit of work).
Handler = Callable[[Any, str, W], Awaitable[None]]
#: Round messages one peer may send this node: a burst, then one every 10 s (360 an hour).
#: A round has a peer send a node at most three (an ask or a share; an answer or a
#: holding; a close or a sum), so the burst is some 30 rounds at once, many more than
#: the privacy budget lets anyone contribute to.
STATS_LIMIT = RateLimitConfig(capacity=100, rate=0.1)


class Courier(Generic[W]):
    """Posts a round's messages, and holds their handlers."""

    def __init__(
        self,
        me: str,
        delivery: DeliveryService,
        wake: Callable[[], None],
        clock: Clock,
        limit: RateLimitConfig = STATS_LIMIT,
    ) -> None:
        self._me = me
        self._delivery = delivery
        self._wake = wake
        self._clock = clock
        self._admitted = TokenBuckets(limit)
        self._handlers: dict[type[Request[Any]], tuple[Handler[W], bool]] = {}

    def handle(self, cls: type[Request[Any]], handler: Handler[W], policy: bool = True) -> None:
        """Handle `cls` with `handler` (`policy`: the sender's `statistics` is required)."""
        self._handlers[cls] = (handler, policy)

    async def post(self, work: W, recipient: str, message: Request[Any]) -> None:
        """Send `message` to `recipient` in `work`: queued, or handled here if it is us."""
        if recipient != self._me:
            await self._delivery.send(recipient, message, work=work)
            return
        handler, _policy = self._handlers[type(message)]
        await handler(message, self._me, work)

    def register(self, dispatcher: Dispatcher[W]) -> None:
        """Give `dispatcher` every handler, answering `ack`, each message charged."""
        for cls, (handler, policy) in self._handlers.items():
            dispatcher.register_effect(
                cls,
                self._adapt(handler),
                requires=Service.STATISTICS if policy else None,
                admit=self._admit,
            )

    def _admit(self, message: Request[Any], peer: Peer) -> None:
        """Take one message from `peer`'s bucket, or refuse it whole (`RateLimitedError`)."""
        now = self._clock.now().timestamp()
        self._admitted.charge(peer.country, 1, now, f"round messages ({message.wire_type})")

    def _adapt(self, handler: Handler[W]) -> Callable[[Any, Peer, W], Awaitable[Ack]]:
        async def on_message(message: Any, peer: Peer, work: W) -> Ack:
            await handler(message, peer.country, work)
            work.after_commit(self._wake)
            return Ack()

        return on_message
