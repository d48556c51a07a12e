"""The federation round part of `stats.py --round-processes`: the round of
`stats_round.py`, with each node in a process of its own.

Each node runs as it is deployed, `iarms-node run` in a process of its own, on its
own clock, with its own delivery loop and round carrier; the machine's cores are
shared by all of them. The nodes are made with the multi-node harness
(`tests.harness.Federation`, `http=True`): each gets R synthetic records and every
other node as a peer allowing statistics, then is stopped and spawned as a process.
Once every process is idle (its start-up done: imports, lookup index, greetings),
an analyst starts the round on the requester's console (`POST
/statistics/rounds.json`, logged in beforehand), and the round runs on its own:
`round_s` is the time from that request to the requester keeping the round as
released (read from its database every 5 ms by this process). The CPU time of
each node is its process's (user + system, `/proc/PID/stat`) from just before the
request until every node keeps the round as released and every process is idle
again, so it holds everything the round made it do (each contributor's own
release of the result included) and the little an idle node does meanwhile
(timers). The aggregators contribute their own counts
too, so their CPU time holds both.
`round_national_vectors_s` is the time of computing every node's `routes` vector
alone (`Query.compute`, as a contributor does it), one after the other; the
protocol overhead is the round's time less that.

On a machine of fewer cores than nodes the processes take turns on them, so
the round's time holds the scheduler's turns as well as the round's work (and,
here, whatever else runs on the machine); `stats_round.py`'s one process has
no turns to wait for. The timeline this mode gives (each message's outbox
times) shows whether anything on the round's path waits for a timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar
from common import say
from procs import TICK_S, cpu_s
from stats_round import AGGREGATORS, COUNTRIES, EPSILON, PERIOD, national_s, round_federation

from node.config import load_config
from node.stats.round import RoundStatus
from node.store.database import Database
from node.store.rounds import RoundsStore
from tests.harness import ADMIN_PASSWORD, Member

#: How often this process reads whether the round is released (a read of one row).
POLL_S = 0.005


async def _all_idle(pids: list[int], window_s: float = 0.5, timeout_s: float = 600) -> None:
    """Return once the processes together used at most one clock tick each in two windows
    in a row (idle nodes wake now and then: a delivery look, a connection sweep)."""
    deadline = time.monotonic() + timeout_s
    quiet, last = 0, sum(cpu_s(p) for p in pids)
    while quiet < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the nodes stayed busy for {timeout_s:.0f} s")
        await asyncio.sleep(window_s)
        now = sum(cpu_s(p) for p in pids)
        quiet = quiet + 1 if now - last <= TICK_S * len(pids) * 1.01 else 0
        last = now


@asynccontextmanager
async def _console(member: Member) -> AsyncIterator[ClientSession]:
    """A session on `member`'s console, logged in as its admin (who may start rounds)."""
    base = f"http://{load_config(member.data_dir).console}"
    # The console's cookies are Secure: trust the loopback.
    jar = CookieJar(unsafe=True, treat_as_secure_origin=base)
    async with ClientSession(base, cookie_jar=jar) as session:
        form = await (await session.get("/login")).text()
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        login = {"name": "admin", "password": ADMIN_PASSWORD, "csrf_token": token, "next": "/"}
        answer = await session.post("/login", data=login, allow_redirects=False)
        if answer.status != 303:
            raise RuntimeError(f"login to {member.country}'s console: {await answer.text()}")
        yield session


async def _csrf(session: ClientSession) -> str:
    page = await (await session.get("/statistics/rounds")).text()
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


async def _start(session: ClientSession, csrf: str) -> bytes:
    """Start the round on the console; its id."""
    form = {
        "query": "routes",
        "epsilon": str(EPSILON),
        "aggregators": ",".join(AGGREGATORS),
        "min_contributors": "3",
        "deadline": "10m",
        "from": PERIOD[0],
        "to": PERIOD[1],
        "csrf_token": csrf,
    }
    answer = await session.post("/statistics/rounds.json", data=form)
    if answer.status != 201:
        raise RuntimeError(f"the round did not start: {await answer.text()}")
    started: dict[str, Any] = await answer.json()
    return bytes.fromhex(started["round_id"])


async def _released(rounds: RoundsStore, round_id: bytes, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stored = await rounds.get_round(round_id)
        if stored is not None and stored.status is not RoundStatus.COLLECTING:
            return
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"the round was not released within {timeout_s:.0f} s")


async def round_bench(workdir: Path, contributors: int, records: int) -> dict[str, float | int]:
    """The figures of one `routes` round of `contributors` + 2 nodes of `records` each."""
    countries = [*COUNTRIES[:contributors], *AGGREGATORS]
    say(f"round: {len(countries)} nodes, {records} records each")
    fed = await round_federation(workdir, countries, records)
    try:
        vectors_s = await national_s(fed, countries)
        say("round: each node as its own `iarms-node run` process")
        for country in countries:
            await fed.stop(country)
        await asyncio.gather(*(fed.spawn(c) for c in countries))
        pids = {c: fed[c].proc.pid for c in countries if fed[c].proc is not None}
        requester = fed[countries[0]]
        dbs = [Database(load_config(fed[c].data_dir).database_url) for c in countries]
        try:
            async with _console(requester) as console:
                csrf = await _csrf(console)
                await _all_idle(list(pids.values()))
                say("round: started on the requester's console")
                before = {c: cpu_s(p) for c, p in pids.items()}
                start = time.perf_counter()
                round_id = await _start(console, csrf)
                await _released(RoundsStore(dbs[0]), round_id)
                round_s = time.perf_counter() - start
                for db in dbs[1:]:  # every contributor releases the result on its own too
                    await _released(RoundsStore(db), round_id)
                await _all_idle(list(pids.values()))
                spent = {c: cpu_s(p) - before[c] for c, p in pids.items()}
                answer = await console.get(f"/statistics/rounds/{round_id.hex()}.json")
                view: dict[str, Any] = await answer.json()
        finally:
            for db in dbs:
                await db.close()
    finally:
        await fed.close()
    if view["status"] != RoundStatus.RELEASED.value or not view["verified"]:
        raise RuntimeError(f"the round was not released: {view.get('reason')}")
    if len(view["contributors"]) != len(countries):
        raise RuntimeError(f"only {view['contributors']} contributed")
    plain = [spent[c] for c in countries[: len(countries) - len(AGGREGATORS)]]
    aggregating = [spent[c] for c in AGGREGATORS]
    return {
        "round_processes": len(countries),
        "round_nodes": len(countries),
        "round_contributors": len(plain),
        "round_aggregators": len(aggregating),
        "round_records_per_node": records,
        "round_cells": len(view["cells"]),
        "round_s": round(round_s, 3),
        "round_national_vectors_s": round(vectors_s, 3),
        "round_overhead_s": round(round_s - vectors_s, 3),
        "round_cpu_per_contributor_ms": round(1000 * sum(plain) / len(plain), 1),
        "round_cpu_per_aggregator_ms": round(1000 * sum(aggregating) / len(aggregating), 1),
    }
