#!/usr/bin/env python3
"""Benchmark: a node under connection abuse (issue 7) keeps answering, and gives memory back.

Starts a real node (`iarms-node init`, then `run`, in a temporary directory,
default limits unless `--deadlines-s`), then from worker processes opens
STALLED connections whose message declares 1,048,577 body bytes, sends
1,048,570 and stalls, then IDLE connections that send part of a request
head and nothing more (4/5 to the federation API, 1/5 to the console; with
`--reopen`, each opens again a second after the node closes it, until
ATTACK_S), spread over ADDRESSES source addresses 127.0.x.y. Until they
are all closed, this process asks for `/federation/v1/health` and the
console's `/login` every 0.2 s. The node's log goes to stderr. Prints one
JSON line:

- rss_baseline_mb, rss_peak_mb, rss_after_mb: the node's resident memory
  before, at its highest during, and after the attack (once the node holds
  no more of the attack's connections, or after the deadlines have passed);
- health_p50_ms, health_max_ms, health_over_1s and the same for console,
  and the failures of each (no answer within 5 s, or not 200);
- node_fds_peak, connections_opened (attack connections, reopened ones
  included), node_cpu_s (the node's CPU time during the attack), log_lines
  (what the node logged in the whole run), and load_avg_1m (the machine's
  load at the end: the latencies are only as good as the machine was quiet;
  `--node-nice -10` gives the node the priority it would have on a machine
  of its own).

    .venv/bin/python scripts/bench/abuse.py [--idle 3000] [--stalled 300] [--addresses 60]
                                            [--attack-s 45] [--reopen] [--deadlines-s S]
                                            [--node-nice N]

Targets: health and console answer within 1 s throughout, no failures;
rss_after_mb within 50 MB of rss_baseline_mb. Nothing here fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests/abuse.py

from tests.abuse import (
    HEALTH,
    MESSAGES,
    Conn,
    NodeProcess,
    closed_by_server,
    get,
    partial_head,
    sources,
    stalled_body,
)

WORKERS = 2
PROBE_EVERY_S = 0.2
PROBE_WITHIN_S = 5.0
REOPEN_AFTER_S = 1.0


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _hold(conn: Conn, until: float) -> bool:
    """Keep `conn` until the node closes it (True) or `until` (False, then we close it)."""
    if await closed_by_server(conn, until - time.monotonic()):
        return True
    conn[1].transport.abort()
    return False


async def _idle_slot(port: int, source: str, until: float, reopen: bool, opened: list[int]) -> None:
    """Hold a partial-head connection to `port` until `until`; reopen it if the node closes it."""
    while time.monotonic() < until:
        try:
            conn = await asyncio.wait_for(partial_head(port, source), PROBE_WITHIN_S)
        except (OSError, TimeoutError):
            conn = None
        if conn is not None:
            opened[0] += 1
            if not await _hold(conn, until):
                return
        if not reopen:
            return
        await asyncio.sleep(REOPEN_AFTER_S)


async def _stalled(port: int, source: str) -> Conn | None:
    with contextlib.suppress(OSError, TimeoutError):
        return await asyncio.wait_for(
            stalled_body(port, MESSAGES, 1_048_577, 1_048_570, source), 30
        )
    return None


def _attack(job: dict[str, Any], result: Any) -> None:
    """One worker process: its share of the stalled, then of the idle connections."""
    _raise_fd_limit()

    async def run() -> int:
        until = time.monotonic() + job["attack_s"]
        stalled = [await _stalled(job["federation"], src) for src in job["stalled"]]
        opened = [sum(conn is not None for conn in stalled)]
        tasks = [_hold(conn, until) for conn in stalled if conn is not None]
        tasks += [_idle_slot(p, src, until, job["reopen"], opened) for p, src in job["idle"]]
        await asyncio.gather(*tasks)
        return opened[0]

    result.put(asyncio.run(run()))


def _jobs(args: argparse.Namespace, fed: int, console: int) -> list[dict[str, Any]]:
    addresses = sources(args.addresses)
    idle = [
        (console if i % 5 == 4 else fed, addresses[i % len(addresses)]) for i in range(args.idle)
    ]
    stalled = [addresses[-1 - i % len(addresses)] for i in range(args.stalled)]
    return [
        {
            "federation": fed,
            "attack_s": args.attack_s,
            "reopen": args.reopen,
            "idle": idle[w::WORKERS],
            "stalled": stalled[w::WORKERS],
        }
        for w in range(WORKERS)
    ]


async def _probe(port: int, path: str, samples: list[float], failures: list[int]) -> None:
    start = time.perf_counter()
    try:
        status, _ = await get(port, path, within=PROBE_WITHIN_S)
    except (OSError, TimeoutError):
        status = 0
    if status == 200:
        samples.append((time.perf_counter() - start) * 1000)
    else:
        failures[0] += 1


def _summary(name: str, samples: list[float], failures: list[int]) -> dict[str, float]:
    return {
        f"{name}_p50_ms": round(statistics.median(samples), 1) if samples else -1.0,
        f"{name}_max_ms": round(max(samples), 1) if samples else -1.0,
        f"{name}_over_1s": sum(ms > 1000 for ms in samples),
        f"{name}_failures": failures[0],
    }


async def _measure(node: NodeProcess, workers: list[Any]) -> dict[str, Any]:
    fed, console = node.port("federation"), node.port("console")
    health: list[float] = []
    login: list[float] = []
    fails = ([0], [0])
    peak_rss, peak_fds = node.rss_mb(), node.open_files()
    while any(w.is_alive() for w in workers):
        await asyncio.gather(
            _probe(fed, HEALTH, health, fails[0]), _probe(console, "/login", login, fails[1])
        )
        peak_rss, peak_fds = max(peak_rss, node.rss_mb()), max(peak_fds, node.open_files())
        await asyncio.sleep(PROBE_EVERY_S)
    return {
        "rss_peak_mb": round(peak_rss, 1),
        "node_fds_peak": peak_fds,
        **_summary("health", health, fails[0]),
        **_summary("console", login, fails[1]),
    }


async def _settle(node: NodeProcess, baseline_fds: int, wait_s: float) -> None:
    """Wait until the node holds no more of the attack's connections (or `wait_s` passes)."""
    for _ in range(int(wait_s * 2)):
        if node.open_files() <= baseline_fds + 5:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # a sweep or two after the last close


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the attack against a fresh node and return the figures."""
    _raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="iarms-abuse-") as tmp:
        settings: dict[str, dict[str, Any]] = {}
        if args.deadlines_s:
            times = dict.fromkeys(
                ("head_timeout_s", "body_timeout_s", "idle_timeout_s"), args.deadlines_s
            )
            settings = {"federation": times, "console": times}
        node = NodeProcess.create(Path(tmp), settings)
        await node.start(nice=args.node_nice)
        try:
            fed, console = node.port("federation"), node.port("console")
            for _ in range(20):  # warm up: the pages, their templates, the allocator
                await get(fed, HEALTH)
                await get(console, "/login")
            baseline_rss, baseline_fds = node.rss_mb(), node.open_files()
            ctx = multiprocessing.get_context("spawn")
            results = ctx.Queue()
            workers = [
                ctx.Process(target=_attack, args=(job, results))
                for job in _jobs(args, fed, console)
            ]
            for worker in workers:
                worker.start()
            cpu_before = node.cpu_s()
            figures = await _measure(node, workers)
            attack_cpu_s = node.cpu_s() - cpu_before
            opened = sum(results.get() for _ in workers)
            await _settle(node, baseline_fds, args.deadlines_s or 60)
            after_rss = node.rss_mb()
        finally:
            log = await node.stop()
            print(log, file=sys.stderr, end="")  # the node's own account of the attack
    return {
        "idle": args.idle,
        "stalled": args.stalled,
        "addresses": args.addresses,
        "attack_s": args.attack_s,
        "reopen": args.reopen,
        "node_nice": args.node_nice,
        "connections_opened": opened,
        "rss_baseline_mb": round(baseline_rss, 1),
        **figures,
        "rss_after_mb": round(after_rss, 1),
        "node_cpu_s": round(attack_cpu_s, 2),
        "load_avg_1m": os.getloadavg()[0],
        "log_lines": len(log.splitlines()),
    }


def main() -> None:
    """Parse the arguments, run the benchmark, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--idle", type=int, default=3000)
    parser.add_argument("--stalled", type=int, default=300)
    parser.add_argument("--addresses", type=int, default=60)
    parser.add_argument("--attack-s", type=float, default=45.0)
    parser.add_argument(
        "--node-nice",
        type=int,
        default=0,
        help="the node's niceness, e.g. -10 (as root) when other work shares the machine",
    )
    parser.add_argument(
        "--reopen",
        action="store_true",
        help="reopen each idle connection a second after the node closes it",
    )
    parser.add_argument(
        "--deadlines-s",
        type=float,
        default=0.0,
        help="head, body and idle timeouts of both sockets (default: the node's)",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args))), flush=True)


if __name__ == "__main__":
    main()
