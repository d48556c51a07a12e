"""Time, injectable: domain code asks a `Clock`, never the system directly.

A clock tells the time and keeps timers: `sleep` and `wait` (an event or a
timeout, whichever comes first). Every background loop waits through its
node's clock, so that in tests a `FakeClock` drives retries, republishing and
deadlines by `advance`, with no real waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    """Source of the current time (always timezone-aware UTC) and of timers."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of this clock's time."""
        ...

    async def wait(self, seconds: float, *events: asyncio.Event) -> bool:
        """Wait until one of `events` is set (True) or `seconds` have passed (False)."""
        ...


async def _first(timer: asyncio.Future[None], events: tuple[asyncio.Event, ...]) -> bool:
    """Whether one of `events` was set before `timer` finished; the rest are cancelled."""
    if any(e.is_set() for e in events):
        timer.cancel()
        return True
    waiting: set[asyncio.Future[Any]] = {asyncio.ensure_future(e.wait()) for e in events}
    waiting.add(timer)
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()
    return any(e.is_set() for e in events)


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, seconds: float, *events: asyncio.Event) -> bool:
        """Wait for one of `events` at most `seconds` of real time."""
        return await _first(asyncio.ensure_future(self.sleep(seconds)), events)


class FakeClock:
    """A clock that only moves when told to; for tests and simulations.

    Its timers fire when `advance` moves the time past their deadline (in
    deadline order); a sleeping task then runs at its next turn of the event
    loop. `sleep(0)` and negative sleeps only yield.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._timers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`, firing the timers now due."""
        self._now += timedelta(seconds=seconds)
        while self._timers and self._timers[0][0] <= self._now:
            _at, _n, timer = heapq.heappop(self._timers)
            if not timer.done():
                timer.set_result(None)

    @property
    def pending(self) -> int:
        """How many timers wait for a later time (for tests that check a loop waits)."""
        return sum(not timer.done() for _at, _n, timer in self._timers)

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            timer.set_result(None)
        else:
            deadline = self._now + timedelta(seconds=seconds)
            heapq.heappush(self._timers, (deadline, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced by `seconds` (at once if not positive)."""
        await self._timer(seconds)

    async def wait(self, seconds: float, *events: asyncio.Event) -> bool:
        """Wait until one of `events` is set or the clock has been advanced by `seconds`."""
        return await _first(self._timer(seconds), events)
