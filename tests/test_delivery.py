"""Delivery: durable outbox, oldest first per peer, jittered backoff, dead letters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from node.app import Node
from node.clock import FakeClock
from node.config import load_config
from node.protocol.delivery import DRAIN_BATCH, Outcome, SendResult
from node.protocol.model import OutboxMessage, OutboxStatus
from tests.test_clock import until


@dataclass
class FakePeers:
    """A sender whose peers can be down; records what arrived, in order."""

    down: set[str] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)
    arrived: list[tuple[str, bytes]] = field(default_factory=list)
    attempts: int = 0

    async def deliver(self, message: OutboxMessage) -> SendResult:
        self.attempts += 1
        if message.recipient in self.down:
            return SendResult(Outcome.RETRY, "connection refused")
        if message.recipient in self.refuse:
            return SendResult(Outcome.DEAD, "HTTP 400 malformed")
        self.arrived.append((message.recipient, message.body))
        return SendResult(Outcome.DELIVERED)


async def test_in_order_per_peer(node: Node) -> None:
    peers = FakePeers()
    for i in range(3):
        await node.delivery.enqueue("DEU", "hit.notice", b"d%d" % i)
        await node.delivery.enqueue("ITA", "hit.notice", b"i%d" % i)
    assert await node.delivery.deliver_due(peers) == 6
    assert [b for c, b in peers.arrived if c == "DEU"] == [b"d0", b"d1", b"d2"]
    assert [b for c, b in peers.arrived if c == "ITA"] == [b"i0", b"i1", b"i2"]
    assert await node.delivery.deliver_due(peers) == 0
    assert {m.status for m in await node.delivery.messages()} == {OutboxStatus.DELIVERED}


async def test_a_peer_down_for_an_hour_gets_its_messages_after(
    node: Node, clock: FakeClock
) -> None:
    peers = FakePeers(down={"DEU"})
    await node.delivery.enqueue("DEU", "hit.notice", b"first")
    await node.delivery.enqueue("DEU", "hit.notice", b"second")
    await node.delivery.enqueue("ITA", "hit.notice", b"other")
    waits = []
    for _ in range(8):  # an hour of retries, backing off
        await node.delivery.deliver_due(peers)
        state = await node.delivery._store.get_state("DEU")
        assert state is not None
        waits.append(state.interval_s)
        clock.advance(state.interval_s)
    assert peers.arrived == [("ITA", b"other")]  # a peer down does not hold up another
    assert waits == sorted(waits) and waits[0] < 15 and waits[-1] > 600
    # the node restarts during the outage: nothing is lost
    again = await Node.open(load_config(node.config.data_dir), clock, migrate=False)
    try:
        peers.down.clear()
        clock.advance(3600)
        assert await again.delivery.deliver_due(peers) == 2
        assert peers.arrived[1:] == [("DEU", b"first"), ("DEU", b"second")]
        assert await again.delivery._store.get_state("DEU") is None
    finally:
        await again.close()


async def test_hearing_from_a_peer_clears_its_backoff(sqlite_node: Node) -> None:
    peers = FakePeers(down={"DEU"})
    await sqlite_node.delivery.enqueue("DEU", "hit.notice", b"x")
    await sqlite_node.delivery.deliver_due(peers)
    assert await sqlite_node.delivery.deliver_due(peers) == 0  # backing off: not even tried
    tried = peers.attempts
    peers.down.clear()
    await sqlite_node.delivery.peer_heard("DEU")
    assert await sqlite_node.delivery.deliver_due(peers) == 1
    assert peers.attempts == tried + 1


async def test_refused_messages_are_dead_letters(sqlite_node: Node) -> None:
    peers = FakePeers(refuse={"DEU"})
    await sqlite_node.delivery.enqueue("DEU", "hit.notice", b"bad")
    await sqlite_node.delivery.enqueue("DEU", "hit.notice", b"next")
    await sqlite_node.delivery.deliver_due(peers)
    dead = await sqlite_node.delivery.messages(OutboxStatus.DEAD)
    assert [(m.body, m.last_error) for m in dead] == [
        (b"next", "HTTP 400 malformed"),
        (b"bad", "HTTP 400 malformed"),
    ]


async def test_the_loop_drains_past_a_turn_without_waiting_for_a_tick(
    sqlite_node: Node, clock: FakeClock
) -> None:
    """More than a drain's turn is due: the loop goes on at once (the clock stands still)."""
    peers, stop = FakePeers(), asyncio.Event()
    count = DRAIN_BATCH * 2 + 5
    for i in range(count):
        await sqlite_node.delivery.enqueue("DEU", "hit.notice", b"d%d" % i)
    await sqlite_node.delivery.enqueue("ITA", "hit.notice", b"i0")
    loop = asyncio.ensure_future(sqlite_node.delivery.run(peers, stop, tick_s=1.0))
    try:
        await until(lambda: len(peers.arrived) == count + 1)
        await sqlite_node.delivery.enqueue("ITA", "hit.notice", b"i1")  # sent once queued
        await until(lambda: len(peers.arrived) == count + 2)
    finally:
        stop.set()
        await loop
    assert [b for c, b in peers.arrived if c == "DEU"] == [b"d%d" % i for i in range(count)]
    assert [b for c, b in peers.arrived if c == "ITA"] == [b"i0", b"i1"]
    assert await sqlite_node.delivery.messages(OutboxStatus.PENDING) == []


@dataclass
class SlowPeer(FakePeers):
    """DEU answers only when `answer` is set; the others at once."""

    answer: asyncio.Event = field(default_factory=asyncio.Event)

    async def deliver(self, message: OutboxMessage) -> SendResult:
        if message.recipient == "DEU":
            await self.answer.wait()
        return await super().deliver(message)


async def test_a_slow_peer_holds_up_no_other(sqlite_node: Node) -> None:
    peers, stop = SlowPeer(), asyncio.Event()
    await sqlite_node.delivery.enqueue("DEU", "hit.notice", b"d0")
    loop = asyncio.ensure_future(sqlite_node.delivery.run(peers, stop, tick_s=1.0))
    try:
        for i in range(3):  # queued while DEU's first message is in flight
            await sqlite_node.delivery.enqueue("ITA", "hit.notice", b"i%d" % i)
        await until(lambda: len(peers.arrived) == 3)
        assert [c for c, _b in peers.arrived] == ["ITA"] * 3
        peers.answer.set()
        await until(lambda: len(peers.arrived) == 4)
    finally:
        stop.set()
        await loop
    assert peers.arrived[-1] == ("DEU", b"d0")
