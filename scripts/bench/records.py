#!/usr/bin/env python3
"""Benchmark: import N generated records into a fresh SQLite node, then search.

Prints one JSON line: import records/s, database bytes per record, peak RSS
(of the node's process, and of the import's parse worker),
and p50/p95 latency of an exact-serial search and of a make+type+status
filter page, called in-process through the records service (each search is
audited, as in production).

The import is judged against its floor, measured in the same run: a bare
`executemany` of the same rows (the row tuples the store inserts, their model
and dedupe keys included, with its constants, converted as the store converts them; the same
statement, batch size and pragmas) into a fresh database with the node's
schema, through plain `sqlite3`, one transaction per batch, with no
validation, no parsing and no audit entry timed. `import_vs_bare` is the
import's rate over the bare rate.

    .venv/bin/python scripts/bench/records.py [--records 1000000] [--searches 2000]

Targets: import >= 0.6 x the bare insert rate (`import_vs_bare`), exact serial
p50 <= 1 ms, filter page p50 <= 20 ms, peak RSS <= 400 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from common import percentiles, positive
from floors import against_bare, bare_insert

from node.app import Node
from node.clock import SystemClock
from node.config import load_config
from node.initialise import init_node
from node.records.model import NEW_RECORD_FIELDS
from node.records.record_rows import RECORD_ROWS
from node.records.service import FilterText
from node.records.synthetic import generate_rows, write_csv
from node.store.tables import RecordRow, table

PASSWORD = "benchmark password"
#: The columns the store's bulk insert fills, in its order, then its constants.
BULK_COLUMNS = (
    *NEW_RECORD_FIELDS,
    "model_key",
    "dedupe_key",
    "version",
    "created_at",
    "updated_at",
)


async def _timed(calls: list[Callable[[], Awaitable[object]]]) -> tuple[float, float]:
    samples = []
    for call in calls:
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


async def bench(n: int, searches: int, workdir: Path) -> dict[str, float | int]:
    csv_path = workdir / "records.csv"
    start = time.perf_counter()
    write_csv(csv_path, n, seed=7, progress=False)
    generate_s = time.perf_counter() - start

    data = workdir / "node"
    await init_node(data, "FRA", admin_password=PASSWORD)
    node = await Node.open(load_config(data))
    try:
        start = time.perf_counter()
        report = await node.imports.import_csv(csv_path, "bench")
        import_s = time.perf_counter() - start

        rng = random.Random(1)
        sample = [row["serial_number"] for row in generate_rows(min(n, 50_000), seed=7)]
        serial_filters = [
            node.records.parse_filter(FilterText(serial=rng.choice(sample)))
            for _ in range(searches)
        ]
        combos = [(m.name, t) for m in node.reference.makes[:40] for t in m.types]
        statuses = ["stolen", "lost", "trafficked", "seized"]
        page_filters = [
            node.records.parse_filter(
                FilterText(make=make, firearm_type=ftype, status=rng.choice(statuses))
            )
            for make, ftype in (rng.choice(combos) for _ in range(max(searches // 4, 50)))
        ]
        serial_p50, serial_p95 = await _timed(
            [lambda f=f: node.records.search(f, "bench", limit=50) for f in serial_filters]
        )
        page_p50, page_p95 = await _timed(
            [lambda f=f: node.records.search(f, "bench", limit=50) for f in page_filters]
        )
    finally:
        await node.close()  # the last connection to close checkpoints the WAL into node.db
    db_bytes = sum(p.stat().st_size for p in data.glob("node.db*"))
    figures: dict[str, float | int] = {
        "records": n,
        "created": report.created,
        "rejected": report.rejected,
        "generate_s": round(generate_s, 3),
        "import_s": round(import_s, 3),
        "import_records_per_s": round(report.rows / import_s),
        "db_bytes_per_record": round(db_bytes / max(report.created, 1)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "exact_serial_p50_ms": round(serial_p50, 3),
        "exact_serial_p95_ms": round(serial_p95, 3),
        "filter_page_p50_ms": round(page_p50, 3),
        "filter_page_p95_ms": round(page_p95, 3),
    }
    # The floor runs last, so that its in-process parsing does not count in peak_rss_mb.
    bare = workdir / "bare"
    await init_node(bare, "FRA", admin_password=PASSWORD)
    now = SystemClock().now()

    def complete(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*row, 1, now, now)

    stored, bare_s = bare_insert(
        csv_path,
        bare / "node.db",
        RECORD_ROWS,
        table(RecordRow),
        BULK_COLUMNS,
        "dedupe_key",
        complete,
        now.date(),
    )
    figures.update(against_bare("records", report.created, import_s, stored, bare_s))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=positive, default=1_000_000)
    parser.add_argument("--searches", type=positive, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iarms-bench-") as tmp:
        print(json.dumps(asyncio.run(bench(args.records, args.searches, Path(tmp)))))


if __name__ == "__main__":
    main()
