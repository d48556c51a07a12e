"""Smoke runs of the benchmark scripts with tiny numbers: they run and report every figure.

Times are never asserted: a benchmark's figures are for reading, not for failing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOKUP_KEYS = {
    "records",
    "indexed_records",
    "import_s",
    "index_build_s",
    "index_records_per_s",
    "index_bytes_per_record",
    "first_lookup_s",
    "miss_p50_ms",
    "miss_p95_ms",
    "hit_p50_ms",
    "hit_p95_ms",
    "bulk_serials",
    "bulk_hits",
    "bulk_s",
    "bulk_serials_per_s",
    "bulk_crypto_serials_per_s",
    "bulk_vs_crypto",
    "peak_rss_mb",
}


def test_lookup_benchmark_reports_every_figure() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench" / "lookup.py"),
            *("--records", "300", "--lookups", "5", "--bulk", "50"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    figures = json.loads(lines[0])
    assert set(figures) >= LOOKUP_KEYS, LOOKUP_KEYS - set(figures)
    assert all(isinstance(v, int | float) and v > 0 for v in figures.values()), figures
    assert figures["records"] == 300 and figures["bulk_serials"] == 50


ABUSE_KEYS = {
    "connections_opened",
    "rss_baseline_mb",
    "rss_peak_mb",
    "rss_after_mb",
    "node_fds_peak",
    "health_p50_ms",
    "health_max_ms",
    "health_failures",
    "console_p50_ms",
    "console_max_ms",
    "console_failures",
    "log_lines",
}


def test_abuse_benchmark_reports_every_figure() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench" / "abuse.py"),
            *("--idle", "40", "--stalled", "4", "--addresses", "4"),
            *("--attack-s", "3", "--deadlines-s", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    figures = json.loads(lines[0])
    assert set(figures) >= ABUSE_KEYS, ABUSE_KEYS - set(figures)
    assert figures["connections_opened"] == 44
    assert figures["rss_after_mb"] > 0 and figures["health_p50_ms"] > 0
    assert "did not finish a request head within 1 s" in run.stderr  # the node's own log
