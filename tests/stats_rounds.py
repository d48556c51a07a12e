"""Helpers of the statistics rounds' tests: a federation whose nodes hold known records,
and a driver that carries rounds (every node's `tick`, then delivery) without moving
the clock, so that each test moves it past a deadline only when it means to."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from node.protocol.envelope import to_ms
from node.protocol.model import OutboxStatus, Service
from node.records.model import RecordInput
from node.stats.noise import NoiseSource
from node.stats.periods import Period
from node.stats.queries import query
from node.stats.service import RoundRequest
from node.store.stats import StatsStore
from tests.harness import Federation

COUNTRIES = ("FRA", "DEU", "ITA", "ESP", "NLD")
#: The period of every round of these tests, and the month the records are in.
PERIOD = ("2025-05", "2025-07")
_KINDS = (
    ("pistol", "stolen", "AUT"),
    ("rifle", "seized", "USA"),
    ("pistol", "lost", "BEL"),
    ("shotgun", "trafficked", "ITA"),
)


def zero_noise(_scale: float, cells: int) -> list[int]:
    """A noise source that adds nothing: the released total is the true one."""
    return [0] * cells


async def seed(fed: Federation, country: str, n: int) -> None:
    """`n` records at `country`, of the kinds above in turn, in June 2025."""
    for i in range(n):
        ftype, status, made = _KINDS[i % len(_KINDS)]
        await fed[country].n.records.create(
            RecordInput(
                f"{country}-{i}",
                "Glock",
                ftype,  # type: ignore[arg-type]
                status,  # type: ignore[arg-type]
                country_of_manufacture=made,
                event_date=date(2025, 6, 1 + i % 28),
            ),
            "analyst.test",
        )


async def round_federation(
    base: Path,
    countries: Sequence[str] = COUNTRIES,
    *,
    http: bool = False,
    noise: NoiseSource | None = zero_noise,
) -> Federation:
    """Nodes that are all peers allowing lookups and statistics; node i holds i + 1 records."""
    fed = Federation(base, http=http, stats_noise=noise)
    for country in countries:
        await fed.add(country)
    await fed.peer_all(Service.LOOKUPS, Service.STATISTICS)
    for i, country in enumerate(countries):
        await seed(fed, country, i + 1)
    return fed


async def deliver(fed: Federation) -> int:
    """Deliver what every running node has due, until nothing more arrives (no clock move)."""
    total = 0
    while True:
        arrived = 0
        for member in fed.members.values():
            if member.node is not None:
                arrived += await member.n.delivery.deliver_due(member.f.client)
        total += arrived
        if not arrived:
            return total


async def carry(fed: Federation, steps: int = 40) -> None:
    """Tick every running node and deliver, until a pass does nothing."""
    for _ in range(steps):
        moved = 0
        for member in fed.members.values():
            if member.node is not None:
                moved += await member.f.rounds.tick()
        moved += await deliver(fed)
        if not moved:
            return
    raise AssertionError(f"the rounds still move after {steps} passes")


async def true_totals(fed: Federation, name: str, countries: Sequence[str]) -> dict[str, int]:
    """The exact sum of the vectors of `countries` (each column of its own for `routes`)."""
    q = query(name)
    period = Period.resolve(*PERIOD, date(2026, 1, 1))
    totals: dict[str, int] = {}
    for country in countries:
        vector = await q.compute(StatsStore(fed[country].n.db), period, country)
        for cell, value in vector.items():
            totals[cell] = totals.get(cell, 0) + value
    return totals


async def pending(fed: Federation, country: str, type_: str) -> int:
    """How many `type_` messages wait in `country`'s outbox."""
    messages = await fed[country].n.delivery.messages(OutboxStatus.PENDING)
    return sum(m.type == type_ for m in messages)


async def send_ask(fed: Federation, sender: str, recipient: str, **changes: object) -> bytes:
    """`sender` sends `recipient` a `stats.ask` of its own making (aggregated by DEU and
    ITA, ε 0.5, k 2, over `PERIOD`, with `changes`), not through `start` and its checks;
    the round's id."""
    round_id = os.urandom(16)
    body = {
        "round_id": round_id,
        "query": "records_by_type_status",
        "period_from": PERIOD[0],
        "period_to": PERIOD[1],
        "epsilon": 0.5,
        "aggregators": ["DEU", "ITA"],
        "min_contributors": 2,
        "deadline_ms": to_ms(fed.clock.now() + timedelta(minutes=10)),
        "delivery_id": os.urandom(16),
    }
    peer = await fed[sender].n.peers.get(recipient)
    await fed[sender].f.client.request(peer, "stats.ask", body | changes)
    return round_id


async def shares_sent(fed: Federation) -> bytes:
    """FRA starts a round of `records_by_type_status` (ε 0.5, k 3, aggregated by DEU and
    ITA) and every node contributes; the body of ESP's delivered share for DEU."""
    await fed["FRA"].f.rounds.start(
        RoundRequest("records_by_type_status", 0.5, "DEU,ITA", 3, timedelta(minutes=10), *PERIOD),
        "analyst",
    )
    for _ in range(3):
        for member in fed.members.values():
            await member.f.rounds.tick()
        await deliver(fed)
    sent = [
        m
        for m in await fed["ESP"].n.delivery.messages(OutboxStatus.DELIVERED)
        if m.type == "stats.share" and m.recipient == "DEU"
    ]
    assert len(sent) == 1
    return sent[0].body
