"""The clock's timers: a fake clock drives sleeps, waits and the delivery loop's retries
without real waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from node.app import Node
from node.clock import FakeClock, SystemClock
from node.protocol.delivery import Outcome, SendResult
from node.protocol.model import OutboxMessage, OutboxStatus


async def until(condition: Callable[[], bool], turns: int = 20_000) -> None:
    """Let the event loop (and the database's thread) run until `condition` holds.

    The fake clock never moves here: only real work (a database write in its
    thread) needs real time, so a busy machine just takes more turns.
    """
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


async def test_a_fake_sleep_ends_only_when_the_clock_passes_its_deadline() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("late", 30), ("soon", 10))]
    await until(lambda: clock.pending == 2)
    clock.advance(9.9)
    await asyncio.sleep(0)
    assert woke == [] and clock.pending == 2
    clock.advance(0.1)
    await until(lambda: woke == ["soon"])
    clock.advance(100)
    await asyncio.gather(*tasks)
    assert woke == ["soon", "late"] and clock.pending == 0


async def test_a_wait_ends_with_its_event_or_its_timeout() -> None:
    clock = FakeClock()
    event, other = asyncio.Event(), asyncio.Event()
    waiting = asyncio.ensure_future(clock.wait(60, event, other))
    await until(lambda: clock.pending == 1)
    other.set()
    assert await waiting is True
    timing_out = asyncio.ensure_future(clock.wait(60, event))
    await until(lambda: clock.pending == 1)
    clock.advance(60)
    assert await timing_out is False
    assert await clock.wait(0) is False  # no event, no time: at once


async def test_the_system_clock_waits_for_an_event() -> None:
    event = asyncio.Event()
    event.set()
    assert await SystemClock().wait(3600, event) is True
    assert await SystemClock().wait(0, asyncio.Event()) is False


class _FailsOnce:
    """A peer that does not answer the first attempt, then takes everything."""

    def __init__(self) -> None:
        self.attempts = 0

    async def deliver(self, message: OutboxMessage) -> SendResult:
        self.attempts += 1
        if self.attempts == 1:
            return SendResult(Outcome.RETRY, "connection refused")
        return SendResult(Outcome.DELIVERED)


async def test_the_delivery_loop_retries_when_the_fake_clock_says_so(
    sqlite_node: Node, clock: FakeClock
) -> None:
    """No real second passes: the backoff (10 s × 0.8–1.4) ends when the clock moves."""
    sender, stop = _FailsOnce(), asyncio.Event()
    await sqlite_node.delivery.enqueue("DEU", "hit.notice", b"\x80")
    loop = asyncio.ensure_future(sqlite_node.delivery.run(sender, stop, tick_s=1.0))
    try:
        await until(lambda: sender.attempts == 1 and clock.pending == 1)
        clock.advance(5)  # a tick: the message is not due yet
        await until(lambda: clock.pending == 1)
        assert sender.attempts == 1
        clock.advance(10)  # past any jittered first backoff
        await until(lambda: sender.attempts == 2)
    finally:
        stop.set()
        await loop  # the round in progress ends first: its outcome is stored
    delivered = await sqlite_node.delivery.messages(OutboxStatus.DELIVERED)
    assert len(delivered) == 1
