#!/usr/bin/env python3
"""Benchmark: import N generated custody events into a fresh SQLite node, then follow chains.

Prints one JSON line: the import's events/s, database bytes per event, peak
RSS (of the node's process, and of the import's parse worker), and p50/p95
latency of `CustodyService.chain` (one firearm's events, by canonical serial
and make key: what a trace hop answers from) at that size, called in-process.

The import is judged against its floor, measured in the same run: a bare
`executemany` of the same rows (`floors.bare_insert`: the rows the store
inserts, converted as the store converts them; the same statement, batch
size and pragmas) into a fresh database with the node's schema, with no
validation, no parsing and no audit entry timed. `import_vs_bare` is the
import's rate over the bare rate.

    .venv/bin/python scripts/bench/custody.py [--events 1000000] [--lookups 2000]

Targets: import >= 0.6 x the bare insert rate (as the records import), chain p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from common import percentiles, positive
from floors import against_bare, bare_insert

from node.app import Node
from node.clock import SystemClock
from node.config import load_config
from node.initialise import init_node
from node.records.serials import canonicalise_serial
from node.store.tables import CustodyEventRow, table
from node.trace.custody_rows import CUSTODY_ROWS
from node.trace.model import STORED_FIELDS
from node.trace.synthetic import generate_rows, write_csv

PASSWORD = "benchmark password"
COUNTRY = "DEU"
SEED = 7


async def _chain_ms(node: Node, firearms: list[tuple[str, str]]) -> tuple[float, float, int]:
    """p50 and p95 ms of `chain` over `firearms` (canonical serial, make key); events found."""
    samples, found = [], 0
    for serial, make_key in firearms:
        start = time.perf_counter()
        found += len(await node.custody.chain(serial, make_key))
        samples.append((time.perf_counter() - start) * 1000)
    p50, p95 = percentiles(samples)
    return p50, p95, found


async def bench(n: int, lookups: int, workdir: Path) -> dict[str, float | int]:
    csv_path = workdir / "custody.csv"
    start = time.perf_counter()
    write_csv(csv_path, n, COUNTRY, seed=SEED, progress=False)
    generate_s = time.perf_counter() - start

    data = workdir / "node"
    await init_node(data, COUNTRY, admin_password=PASSWORD)
    node = await Node.open(load_config(data))
    try:
        start = time.perf_counter()
        report = await node.custody.imports.import_csv(csv_path, "bench")
        import_s = time.perf_counter() - start
        rng = random.Random(1)
        sample = [
            (canonicalise_serial(e["serial_number"]), node.reference.make_key(e["make"]))
            for e in generate_rows(min(n, 50_000), COUNTRY, seed=SEED)
        ]
        chain_p50, chain_p95, found = await _chain_ms(
            node, [rng.choice(sample) for _ in range(lookups)]
        )
    finally:
        await node.close()  # the last connection to close checkpoints the WAL into node.db
    db_bytes = sum(p.stat().st_size for p in data.glob("node.db*"))
    figures: dict[str, float | int] = {
        "events": n,
        "created": report.created,
        "rejected": report.rejected,
        "generate_s": round(generate_s, 3),
        "import_s": round(import_s, 3),
        "import_events_per_s": round(report.rows / import_s),
        "db_bytes_per_event": round(db_bytes / max(report.created, 1)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "chain_lookups": lookups,
        "chain_events_per_lookup": round(found / lookups, 2),
        "chain_p50_ms": round(chain_p50, 3),
        "chain_p95_ms": round(chain_p95, 3),
    }
    # The floor runs last, so that its in-process parsing does not count in peak_rss_mb.
    bare = workdir / "bare"
    await init_node(bare, COUNTRY, admin_password=PASSWORD)
    now = SystemClock().now()

    def complete(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*row, now)

    columns = (*STORED_FIELDS, "imported_at")
    stored, bare_s = bare_insert(
        csv_path,
        bare / "node.db",
        CUSTODY_ROWS,
        table(CustodyEventRow),
        columns,
        "row_digest",
        complete,
        now.date(),
    )
    figures.update(against_bare("events", report.created, import_s, stored, bare_s))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--lookups", type=positive, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iarms-bench-") as tmp:
        print(json.dumps(asyncio.run(bench(args.events, args.lookups, Path(tmp)))))


if __name__ == "__main__":
    main()
