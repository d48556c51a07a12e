"""`stats`: the catalogue of federation queries, and this node's own figures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from node.cli.common import EXIT_USAGE, actor, count, echo, keys, open_node, print_json
from node.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from node.app import Federation, Node
    from node.stats.round import StoredRound
    from node.stats.view import RoundView

T = TypeVar("T")

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
    _add_rounds(group, data, period)

    budget = group.add_parser(
        "budget", parents=[data], help="this node's privacy budget and its ledger"
    )
    budget.set_defaults(handler=cmd_budget)
    budget.add_argument("--json", action="store_true", help="one JSON object")


def _add_rounds(
    group: argparse._SubParsersAction,
    data: argparse.ArgumentParser,
    period: argparse.ArgumentParser,
) -> None:
    rounds = group.add_parser("round", help="federation rounds: start, list, show")
    action = rounds.add_subparsers(dest="round_command", required=True, metavar="ACTION")
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--key-passphrase-file", type=Path)
    start = action.add_parser(
        "start",
        parents=[data, period, key],
        help="start a round: every peer allowing statistics is asked",
        description="The running node carries the round: it asks the peers, contributes, "
        "and releases the result once every aggregator's signed sum is in.",
    )
    start.set_defaults(handler=cmd_round_start)
    start.add_argument("--query", required=True, metavar="NAME")
    start.add_argument("--epsilon", required=True, type=float, metavar="E")
    start.add_argument("--aggregators", required=True, metavar="DEU,FRA")
    start.add_argument("--min-contributors", type=count(2), default=3, metavar="K")
    start.add_argument("--deadline", default="10m", help="10s to 30d, as 90s, 10m, 2h, 1d")
    start.add_argument("--json", action="store_true", help="one JSON object")
    listing = action.add_parser("list", parents=[data, key], help="rounds, newest first")
    listing.set_defaults(handler=cmd_round_list)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = action.add_parser("show", parents=[data, key], help="a round and its result")
    show.set_defaults(handler=cmd_round_show)
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="one JSON object")


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


def _federation(node: Node, args: argparse.Namespace) -> Federation:
    from node.app import federation

    return federation(node, keys(node.config, args.key_passphrase_file))


async def _usage(call: Awaitable[T]) -> T | None:
    """`call`'s result, or None when the user's input is at fault (the one line printed)."""
    try:
        return await call
    except (NotFoundError, ValidationError) as e:
        echo(f"iarms-node: {e}", sys.stderr)
        return None


async def _start(args: argparse.Namespace) -> StoredRound:
    from node.stats.round import parse_deadline
    from node.stats.service import RoundRequest

    request = RoundRequest(
        args.query,
        args.epsilon,
        args.aggregators,
        args.min_contributors,
        parse_deadline(args.deadline),
        args.start,
        args.end,
    )
    async with open_node(args) as node:
        return await _federation(node, args).rounds.start(request, actor())


async def cmd_round_start(args: argparse.Namespace) -> int:
    from node.stats.view import summary

    started = await _usage(_start(args))
    if started is None:
        return EXIT_USAGE
    if args.json:
        print_json(summary(started))
        return 0
    spec = started.spec
    echo(f"round {spec.round_id.hex()} started: {spec.query}, ε {spec.epsilon:g}")
    echo(f"  asked: {', '.join(started.asked) or 'no peer'}")
    echo(
        f"  aggregators: {', '.join(spec.aggregators)}; "
        f"deadline {spec.deadline_at:%Y-%m-%d %H:%M} UTC"
    )
    echo("  the running node carries it: iarms-node stats round show ID")
    return 0


async def cmd_round_list(args: argparse.Namespace) -> int:
    from node.stats.view import summary

    async with open_node(args) as node:
        rounds = await _federation(node, args).rounds.listing()
    for stored in rounds:
        if args.json:
            print_json(summary(stored))
            continue
        spec = stored.spec
        echo(
            f"{spec.round_id.hex()}  {stored.created_at:%Y-%m-%d %H:%M}  {spec.requester}  "
            f"{spec.query}  ε {spec.epsilon:g}  {stored.status.value}"
            + (f"  ({stored.reason})" if stored.reason else "")
        )
    return 0


async def _show(args: argparse.Namespace) -> RoundView:
    from node.stats.service import read_round_id

    round_id = read_round_id(args.id)
    async with open_node(args) as node:
        return await _federation(node, args).rounds.show(round_id)


async def cmd_round_show(args: argparse.Namespace) -> int:
    view = await _usage(_show(args))
    if view is None:
        return EXIT_USAGE
    data = view.to_json()
    if args.json:
        print_json(data)
        return 0
    echo(
        f"round {data['round_id']}: {data['status']}"
        + (f" ({data['reason']})" if data["reason"] else "")
    )
    period = data["period"]
    echo(
        f"  {data['query']} {period['from']} to {period['to']}, ε {data['epsilon']:g}, "
        f"k {data['min_contributors']}"
    )
    echo(f"  contributors: {', '.join(data['contributors']) or 'none yet'}")
    for refusal in data["refused"]:
        echo(f"  refused: {refusal['country']} ({refusal['reason']}: {refusal['detail']})")
    noise = data["noise"]
    echo(
        "  noise: none (this round's query or ε is not one this node can use)"
        if noise is None
        else f"  noise: {noise['distribution']}, scale {noise['scale']:g} per aggregator; "
        f"95 % interval ±{noise['interval_half_width']}"
    )
    for check in data["signatures"]:
        state = "verified" if check["verified"] else f"NOT verified ({check['problem']})"
        echo(f"  sum of {check['aggregator']}: {state}")
    width = max((len(c["name"]) for c in data["cells"]), default=0)
    for cell in data["cells"]:
        low, high = cell["interval"]
        echo(f"  {cell['name']:<{width}}  {cell['value']:>8}  [{low}, {high}]")
    return 0


async def cmd_budget(args: argparse.Namespace) -> int:
    from node.app import stats_budget

    async with open_node(args) as node:
        data = (await stats_budget(node)).to_json()
    if args.json:
        print_json(data)
        return 0
    echo(
        f"{data['month']}: spent ε {data['spent']:g} of {data['monthly_epsilon']:g} "
        f"(at most {data['max_epsilon']:g} per round); {data['remaining']:g} left"
    )
    for e in data["entries"]:
        what = "spent" if e["spent"] else f"refused ({e['reason']})"
        echo(
            f"  {e['at'][:16]}  {e['round_id']}  {e['requester']}  {e['query']}  "
            f"ε {e['epsilon']:g}  {what}"
        )
    return 0
