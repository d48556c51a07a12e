"""`stats`: the catalogue of federation queries, and this node's own figures."""

from __future__ import annotations

import argparse

from node.cli.common import echo, open_node, print_json

#: The country shown in `routes` cells when no node is named (`SRC>DST`).
PLACEHOLDER_COUNTRY = "DST"


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    stats = sub.add_parser("stats", help="statistics: queries and this node's figures")
    group = stats.add_subparsers(dest="stats_command", required=True, metavar="COMMAND")
    period = argparse.ArgumentParser(add_help=False)
    period.add_argument("--from", dest="start", metavar="YYYY-MM", help="first month")
    period.add_argument(
        "--to", dest="end", metavar="YYYY-MM", help="last month (default: this month)"
    )

    queries = group.add_parser(
        "queries",
        parents=[period],
        help="list the federation queries and their cells",
        description="The catalogue of federation queries. `routes` cells are shown as "
        f"SRC>{PLACEHOLDER_COUNTRY}: a contributor fills its own column, DST = its country. "
        "Month cells cover the period (default: the 12 months ending this month).",
    )
    queries.set_defaults(handler=cmd_queries)
    queries.add_argument("--json", action="store_true", help="one JSON object per query")

    local = group.add_parser(
        "local",
        parents=[data, period],
        help="this node's exact figures for a query or a national report",
        description="NAME is a catalogue query (see `stats queries`) or a national report: "
        "records_by_status, records_by_type, records_by_make, records_by_calibre, "
        "records_by_country, records_by_month, lookups_by_peer, answered_by_peer, "
        "hits_given_by_peer, hits_received_by_peer, traces_sent, traces_received. "
        "The period defaults to the 12 months ending this month.",
    )
    local.set_defaults(handler=cmd_local)
    local.add_argument("--query", required=True, metavar="NAME", help="the query or report")
    local.add_argument("--json", action="store_true", help="one JSON object")


async def cmd_queries(args: argparse.Namespace) -> int:
    from node.clock import SystemClock
    from node.stats.periods import Period
    from node.stats.queries import QUERIES

    period = Period.resolve(args.start, args.end, SystemClock().now().date())
    for q in QUERIES:
        info = q.to_json(period, PLACEHOLDER_COUNTRY)
        if args.json:
            print_json(info)
            continue
        cells = q.cells(period, PLACEHOLDER_COUNTRY)
        echo(f"{q.name}: {q.description}")
        echo(f"  bound: {q.bound} (L1 sensitivity {q.sensitivity})")
        echo(f"  {len(cells)} cells: {', '.join(cells)}")
    return 0


async def cmd_local(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        period = node.stats.period(args.start, args.end)
        cells = await node.stats.compute(args.query, period)
    if args.json:
        print_json(
            {
                "query": args.query,
                "country": node.config.country,
                "period": period.to_json(),
                "cells": [{"name": name, "value": value} for name, value in cells.items()],
            }
        )
        return 0
    echo(f"{args.query} at {node.config.country}, {period.start} to {period.end} (exact)")
    width = max((len(name) for name in cells), default=0)
    for name, value in cells.items():
        echo(f"  {name:<{width}}  {value}")
    return 0
