"""The federation round part of `stats.py`: a `routes` round across C contributor nodes
and 2 aggregator nodes over loopback HTTP, against the same national vectors alone.

The nodes are the multi-node harness's (`tests.harness.Federation`, `http=True`),
each serving its federation API on a loopback port, all in this process and its
one event loop; each holds R synthetic records. The requester (the first
contributor) starts the round; a driver then carries it as the running nodes
would, one step at a time so that each step's CPU time can be told to the node
that spent it: every node's `RoundsService.tick` (contribute: the vector, its
shares, the HPKE seals, the signed envelopes; aggregate: agree, sum, noise,
sign; release: verify and add the sums), then every node's deliveries, until
the requester has released the round. A message's delivery is the sender's
(signing, the HTTP request) less the receiver's handling, which is the
receiver's (verify, decode, store: `Dispatcher.handle`, timed on its own).
The aggregators contribute their own counts too, so their CPU time holds both.
`round_national_vectors_s` is the time of computing every node's `routes`
vector alone (`Query.compute`, as a contributor does it); the protocol overhead
is the round's time less that.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from common import say

from node.protocol.model import Service
from node.records.synthetic import write_csv
from node.stats.periods import Period
from node.stats.queries import query
from node.stats.round import RoundStatus
from node.stats.service import RoundRequest
from node.store.stats import StatsStore
from tests.harness import Federation, Member

#: Contributors first (the first requests), then the two aggregators.
COUNTRIES = (
    "FRA", "ESP", "NLD", "BEL", "AUT", "POL", "CZE", "PRT", "SWE", "FIN", "DNK", "IRL",
    "GRC", "HUN", "ROU", "BGR", "HRV", "SVN", "SVK", "LTU", "LVA", "EST", "LUX", "MLT",
)  # fmt: skip
AGGREGATORS = ("DEU", "ITA")
#: The synthetic records' event dates span these months (`node.records.synthetic`).
PERIOD = ("2005-01", "2025-12")
EPSILON = 0.5
T = TypeVar("T")


class CpuMeter:
    """CPU seconds per node, from `time.process_time` around each of its steps."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.nested = 0.0  # the handlers' time inside the delivery being timed

    async def timed(self, country: str, call: Awaitable[T], *, handler: bool = False) -> T:
        start, nested = time.process_time(), self.nested
        try:
            return await call
        finally:
            spent = time.process_time() - start
            inner = self.nested - nested  # a handler run inside this call: not ours
            self.spent[country] = self.spent.get(country, 0.0) + spent - inner
            if handler:
                self.nested = nested + spent
            else:
                self.nested = nested

    def watch(self, member: Member) -> None:
        """Time `member`'s handling of each message a peer sends it."""
        handle = member.f.dispatcher.handle

        async def handled(data: bytes) -> tuple[int, bytes]:
            return await self.timed(member.country, handle(data), handler=True)

        member.f.dispatcher.handle = handled  # type: ignore[method-assign]


async def _carry(fed: Federation, meter: CpuMeter, done: Callable[[], Awaitable[bool]]) -> None:
    """Tick and deliver every node, as `iarms-node run` would, until `done()`."""
    for _ in range(200):
        moved = 0
        for m in fed.members.values():
            moved += await meter.timed(m.country, m.f.rounds.tick())
        for m in fed.members.values():
            moved += await meter.timed(m.country, m.n.delivery.deliver_due(m.f.client))
        if await done():
            return
        if not moved:
            raise RuntimeError("the round stopped moving before its release")
    raise RuntimeError("the round was not released after 200 passes")


async def round_federation(workdir: Path, countries: list[str], records: int) -> Federation:
    """The harness's nodes of `countries` on loopback HTTP, `records` synthetic records
    each, every one a peer of every other allowing statistics."""
    fed = Federation(workdir / "round", http=True)
    for i, country in enumerate(countries):
        await fed.add(country)
        path = workdir / f"{country}.csv"
        write_csv(path, records, seed=100 + i, progress=False)
        report = await fed[country].n.imports.import_csv(path, "bench")
        if report.rejected:
            raise RuntimeError(f"{country} rejected records: {report.errors[:3]}")
    await fed.peer_all(Service.STATISTICS)
    return fed


async def national_s(fed: Federation, countries: list[str]) -> float:
    """The time of computing every node's `routes` vector alone, one after the other."""
    q = query("routes")
    period = Period.resolve(*PERIOD, fed.clock.now().date())
    start = time.perf_counter()
    for country in countries:
        await q.compute(StatsStore(fed[country].n.db), period, country)
    return time.perf_counter() - start


async def round_bench(workdir: Path, contributors: int, records: int) -> dict[str, float | int]:
    """The figures of one `routes` round of `contributors` + 2 nodes of `records` each."""
    countries = [*COUNTRIES[:contributors], *AGGREGATORS]
    say(f"round: {len(countries)} nodes on loopback HTTP, {records} records each")
    fed = await round_federation(workdir, countries, records)
    try:
        meter = CpuMeter()
        for member in fed.members.values():  # no carrier loop runs here: the driver does
            meter.watch(member)
        vectors_s = await national_s(fed, countries)

        requester = fed[countries[0]]
        request = RoundRequest(
            "routes", EPSILON, ",".join(AGGREGATORS), 3, start=PERIOD[0], end=PERIOD[1]
        )
        start = time.perf_counter()
        started = await meter.timed(requester.country, requester.f.rounds.start(request, "bench"))
        round_id = started.spec.round_id

        async def released() -> bool:
            stored = await requester.f.rounds._store.get_round(round_id)
            return stored is not None and stored.status is not RoundStatus.COLLECTING

        await _carry(fed, meter, released)
        round_s = time.perf_counter() - start
        view = await requester.f.rounds.show(round_id)
        if view.status is not RoundStatus.RELEASED or not view.verified:
            raise RuntimeError(f"the round was not released: {view.round.reason}")
        if len(view.contributors) != len(countries):
            raise RuntimeError(f"only {view.contributors} contributed")
    finally:
        await fed.close()
    plain = [meter.spent[c] for c in countries[: len(countries) - len(AGGREGATORS)]]
    aggregating = [meter.spent[c] for c in AGGREGATORS]
    return {
        "round_processes": 1,
        "round_nodes": len(countries),
        "round_contributors": len(plain),
        "round_aggregators": len(aggregating),
        "round_records_per_node": records,
        "round_cells": len(view.to_json()["cells"]),
        "round_s": round(round_s, 3),
        "round_national_vectors_s": round(vectors_s, 3),
        "round_overhead_s": round(round_s - vectors_s, 3),
        "round_cpu_per_contributor_ms": round(1000 * sum(plain) / len(plain), 1),
        "round_cpu_per_aggregator_ms": round(1000 * sum(aggregating) / len(aggregating), 1),
    }
