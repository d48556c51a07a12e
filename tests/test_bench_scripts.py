"""Smoke runs of the benchmark scripts with tiny numbers: they run and report every figure.

Times are never asserted: a benchmark's figures are for reading, not for failing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS_KEYS = {
    "records",
    "created",
    "rejected",
    "generate_s",
    "import_s",
    "import_records_per_s",
    "db_bytes_per_record",
    "peak_rss_mb",
    "worker_peak_rss_mb",
    "exact_serial_p50_ms",
    "exact_serial_p95_ms",
    "filter_page_p50_ms",
    "filter_page_p95_ms",
    "bare_insert_s",
    "bare_insert_records_per_s",
    "import_vs_bare",
}
CUSTODY_KEYS = {
    "events",
    "created",
    "rejected",
    "generate_s",
    "import_s",
    "import_events_per_s",
    "db_bytes_per_event",
    "peak_rss_mb",
    "worker_peak_rss_mb",
    "chain_lookups",
    "chain_events_per_lookup",
    "chain_p50_ms",
    "chain_p95_ms",
    "bare_insert_s",
    "bare_insert_events_per_s",
    "import_vs_bare",
}
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
    "index_crypto_floor_s",
    "index_vs_floor",
    "lookup_crypto_oprf_ms",
    "lookup_crypto_envelopes_ms",
    "lookup_crypto_ms",
    "miss_vs_crypto",
    "owner_cpu_requests",
    "owner_cpu_per_eval_ms",
    "owner_crypto_per_eval_ms",
    "owner_cpu_vs_crypto",
}
TRACE_KEYS = {
    "traces",
    "five_hop_p50_ms",
    "five_hop_p95_ms",
    "five_hop_cpu_ms",
    "events",
    "generate_s",
    "import_s",
    "hops",
    "hops_per_s",
    "hop_cpu_ms",
    "hops_per_cpu_s",
    "peak_rss_mb",
}
CLI_COMMANDS = ("help", "records_search", "peers_list", "lookup")
CLI_KEYS = {"records", "runs", "python_pass_s", "python_pass_cpu_s"} | {
    f"{command}{suffix}"
    for command in CLI_COMMANDS
    for suffix in ("_s", "_cpu_s", "_minus_floor_s", "_over_floor")
}

STATS_KEYS = {
    "records",
    "created",
    "import_s",
    "import_records_per_s",
    "page_pages",
    "page_p50_ms",
    "page_p95_ms",
    "page_default_period_p50_ms",
    "page_default_period_p95_ms",
    "chart_p50_ms",
    "chart_p95_ms",
    "national_service_p50_ms",
    "round_processes",
    "round_nodes",
    "round_contributors",
    "round_aggregators",
    "round_records_per_node",
    "round_cells",
    "round_s",
    "round_national_vectors_s",
    "round_overhead_s",
    "round_cpu_per_contributor_ms",
    "round_cpu_per_aggregator_ms",
}


def run_bench(script: str, *args: str) -> dict[str, float | int]:
    """Run `scripts/bench/<script>` and return the figures of its one JSON line."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    figures: dict[str, float | int] = json.loads(lines[0])
    return figures


def test_records_benchmark_reports_every_figure_and_its_floor() -> None:
    figures = run_bench("records.py", "--records", "2000", "--searches", "20")
    assert set(figures) >= RECORDS_KEYS, RECORDS_KEYS - set(figures)
    positive = RECORDS_KEYS - {"rejected", "worker_peak_rss_mb"}  # small files parse in-process
    assert all(figures[k] > 0 for k in positive), figures
    assert figures["records"] == figures["created"] == 2000 and figures["rejected"] == 0
    rate = figures["import_records_per_s"] / figures["bare_insert_records_per_s"]
    assert abs(figures["import_vs_bare"] - rate) < 0.01, figures


def test_stats_benchmark_reports_every_figure() -> None:
    figures = run_bench(
        "stats.py",
        *("--records", "500", "--pages", "3", "--round-contributors", "2", "--round-records", "20"),
    )
    assert set(figures) == STATS_KEYS, set(figures) ^ STATS_KEYS
    assert all(figures[k] > 0 for k in STATS_KEYS), figures
    assert figures["records"] == figures["created"] == 500 and figures["page_pages"] == 3
    assert (figures["round_nodes"], figures["round_contributors"]) == (4, 2)
    assert figures["round_processes"] == 1
    overhead = figures["round_s"] - figures["round_national_vectors_s"]
    assert abs(figures["round_overhead_s"] - overhead) < 0.002, figures


@pytest.mark.slow
def test_stats_benchmark_runs_the_round_s_nodes_as_processes() -> None:
    figures = run_bench(
        "stats.py",
        *("--records", "100", "--pages", "1", "--round-contributors", "2", "--round-records", "20"),
        "--round-processes",
    )
    assert set(figures) == STATS_KEYS, set(figures) ^ STATS_KEYS
    assert all(figures[k] > 0 for k in STATS_KEYS), figures
    assert (figures["round_processes"], figures["round_nodes"]) == (4, 4)
    assert figures["round_cells"] == 4 * 249  # every node's column of `routes`


def test_custody_benchmark_reports_every_figure_and_its_floor() -> None:
    figures = run_bench("custody.py", "--events", "2000", "--lookups", "20")
    assert set(figures) == CUSTODY_KEYS, set(figures) ^ CUSTODY_KEYS
    positive = CUSTODY_KEYS - {"rejected", "worker_peak_rss_mb"}  # small files parse in-process
    assert all(figures[k] > 0 for k in positive), figures
    assert figures["events"] == figures["created"] == 2000 and figures["rejected"] == 0
    assert figures["chain_lookups"] == 20 and figures["chain_events_per_lookup"] >= 1
    rate = figures["import_events_per_s"] / figures["bare_insert_events_per_s"]
    assert abs(figures["import_vs_bare"] - rate) < 0.01, figures


def test_lookup_benchmark_reports_every_figure_and_its_floor() -> None:
    figures = run_bench(
        "lookup.py",
        *("--records", "300", "--lookups", "5", "--bulk", "50", "--owner-requests", "40"),
    )
    assert set(figures) >= LOOKUP_KEYS, LOOKUP_KEYS - set(figures)
    assert all(isinstance(v, int | float) and v > 0 for v in figures.values()), figures
    assert figures["records"] == 300 and figures["bulk_serials"] == 50
    assert figures["owner_cpu_requests"] == 40
    ratios = {
        "index_vs_floor": ("index_build_s", "index_crypto_floor_s"),
        "miss_vs_crypto": ("miss_p50_ms", "lookup_crypto_ms"),
        "owner_cpu_vs_crypto": ("owner_cpu_per_eval_ms", "owner_crypto_per_eval_ms"),
    }
    for ratio, (figure, floor) in ratios.items():
        assert math.isclose(figures[ratio], figures[figure] / figures[floor], rel_tol=0.1), ratio


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


def test_cli_benchmark_reports_every_command_against_python_start() -> None:
    figures = run_bench("cli.py", "--records", "50", "--runs", "1")
    assert set(figures) == CLI_KEYS, set(figures) ^ CLI_KEYS
    assert figures["records"] == 50 and figures["runs"] == 1
    for command in CLI_COMMANDS:
        wall, floor = figures[f"{command}_s"], figures["python_pass_s"]
        assert wall > 0 and figures[f"{command}_cpu_s"] > 0
        assert abs(figures[f"{command}_minus_floor_s"] - (wall - floor)) < 0.001
        assert abs(figures[f"{command}_over_floor"] - wall / floor) < 0.01 * wall / floor


def test_trace_benchmark_reports_every_figure() -> None:
    figures = run_bench("trace.py", "--traces", "3", "--events", "2000", "--hops", "5")
    assert set(figures) == TRACE_KEYS, set(figures) ^ TRACE_KEYS
    assert figures["traces"] == 3 and figures["events"] == 2000 and figures["hops"] == 5
    timed = TRACE_KEYS - {"traces", "events", "hops", "generate_s", "import_s"}
    assert all(figures[k] > 0 for k in timed), figures
    assert figures["five_hop_p50_ms"] <= figures["five_hop_p95_ms"]
