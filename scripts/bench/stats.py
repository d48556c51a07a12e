#!/usr/bin/env python3
"""Benchmark: the national statistics page at N records (SQLite).

Prints one JSON line. N generated records are imported into a fresh node (the
import keeps the statistics' aggregates, `record_counts`, in each batch's
transaction; `records.py` judges the import against a bare insert); then,
through the console on a loopback test server, logged in as the admin, the
statistics page (`GET /statistics`) is loaded `--pages` times for the
records' whole span (2005-01 to 2025-12: a 252-month trend) and for the
default period (the 12 months ending this month), with p50 and p95 of
each; also one chart (`records_by_month.svg`, the largest) and the service
call alone (`LocalStats.national`).

In the same run, a federation round (`stats_round.py`): the `routes` query across
C contributor nodes and 2 aggregator nodes of R records each over loopback HTTP,
from start to released result (`round_s`), the CPU time per contributor and per
aggregator, the time of computing the same national vectors alone, and the
protocol overhead, the round's time less that. The nodes share this process,
carried one step at a time, so the round's time is all their work done in
turn; with `--round-processes` each node is instead an `iarms-node run` process
of its own, as deployed, the round started on the requester's console
(`stats_round_procs.py`; on fewer cores than nodes its time holds the
scheduler's turns too).

    .venv/bin/python scripts/bench/stats.py [--records 1000000] [--pages 50]
        [--round-contributors 20] [--round-records 1000] [--round-processes]

Targets: the national statistics page p50 <= 200 ms at 1,000,000 records; the
round's protocol overhead <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for the one harness: tests/

from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer
from common import percentiles, positive, say
from stats_round import COUNTRIES, round_bench
from stats_round_procs import round_bench as procs_round_bench

from admin_ui.app import build_console_app
from node.app import Node
from node.config import load_config
from node.initialise import init_node
from node.records.synthetic import write_csv

PASSWORD = "benchmark password"
#: The synthetic records' event dates span these months (`node.records.synthetic`).
SPAN = "from=2005-01&to=2025-12"


async def _timed(call: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


async def _login(client: TestClient[Any, Any]) -> None:
    form = await client.get("/login")
    html = await form.text()
    token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/login",
        data={"name": "admin", "password": PASSWORD, "csrf_token": token, "next": "/"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()


async def _page(client: TestClient[Any, Any], path: str) -> Callable[[], Awaitable[object]]:
    async def load() -> object:
        response = await client.get(path)
        assert response.status == 200, path
        return await response.read()

    return load


async def bench(n: int, pages: int, workdir: Path) -> dict[str, float | int]:
    csv_path = workdir / "records.csv"
    say(f"generating {n:,} records")
    write_csv(csv_path, n, seed=7, progress=False)
    data = workdir / "node"
    await init_node(data, "FRA", admin_password=PASSWORD)
    node = await Node.open(load_config(data))
    try:
        say("importing")
        start = time.perf_counter()
        report = await node.imports.import_csv(csv_path, "bench")
        import_s = time.perf_counter() - start
        server = TestServer(build_console_app(node))
        await server.start_server()  # the console's cookies are Secure: trust the loopback
        jar = CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
        client: TestClient[Any, Any] = TestClient(server, cookie_jar=jar)
        await client.start_server()
        try:
            await _login(client)
            say(f"loading the page {pages} times per period")
            span_page = await _page(client, f"/statistics?{SPAN}")
            await span_page()  # the first load warms the caches, as any page's would
            span_p50, span_p95 = await _timed(span_page, pages)
            default_p50, default_p95 = await _timed(await _page(client, "/statistics"), pages)
            chart = await _page(client, f"/statistics/charts/records_by_month.svg?{SPAN}")
            chart_p50, chart_p95 = await _timed(chart, max(pages // 5, 3))
            period = node.stats.period("2005-01", "2025-12")
            service_p50, _ = await _timed(lambda: node.stats.national(period), pages)
        finally:
            await client.close()
    finally:
        await node.close()
    return {
        "records": n,
        "created": report.created,
        "import_s": round(import_s, 3),
        "import_records_per_s": round(report.rows / import_s),
        "page_pages": pages,
        "page_p50_ms": round(span_p50, 3),
        "page_p95_ms": round(span_p95, 3),
        "page_default_period_p50_ms": round(default_p50, 3),
        "page_default_period_p95_ms": round(default_p95, 3),
        "chart_p50_ms": round(chart_p50, 3),
        "chart_p95_ms": round(chart_p95, 3),
        "national_service_p50_ms": round(service_p50, 3),
    }


def _contributors(text: str) -> int:
    value = positive(text)
    if value > len(COUNTRIES):
        raise argparse.ArgumentTypeError(f"at most {len(COUNTRIES)} contributor nodes")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=positive, default=1_000_000)
    parser.add_argument("--pages", type=positive, default=50)
    parser.add_argument(
        "--round-contributors", type=_contributors, default=20, help=f"1 to {len(COUNTRIES)}"
    )
    parser.add_argument("--round-records", type=positive, default=1000)
    parser.add_argument(
        "--round-processes", action="store_true", help="each round node in its own process"
    )
    args = parser.parse_args()
    rounds = procs_round_bench if args.round_processes else round_bench
    with tempfile.TemporaryDirectory(prefix="iarms-bench-") as tmp:
        figures = asyncio.run(bench(args.records, args.pages, Path(tmp)))
        figures |= asyncio.run(rounds(Path(tmp), args.round_contributors, args.round_records))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
