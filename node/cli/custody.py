"""`custody import` and `custody search`: the registry of legal custody."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.cli.common import actor, echo, open_node, print_json, run_import


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    custody = sub.add_parser(
        "custody", help="import and search the registry of legal custody"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = custody.add_parser("import", parents=[data], help="import custody events from CSV")
    imp.set_defaults(handler=cmd_import)
    imp.add_argument("file", type=Path)
    imp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    search = custody.add_parser("search", parents=[data], help="a firearm's custody events")
    search.set_defaults(handler=cmd_search)
    search.add_argument("--serial", required=True, help="serial number (any spelling)")
    search.add_argument("--make", default="", help="make (any spelling); default: every make")
    search.add_argument("--json", action="store_true", help="one JSON object per line")


async def cmd_import(args: argparse.Namespace) -> int:
    return await run_import(args, lambda node: node.custody.imports)


async def cmd_search(args: argparse.Namespace) -> int:
    from node.trace.custody import MAX_SEARCH_EVENTS

    async with open_node(args) as node:
        query = node.custody.query(args.serial, args.make)
        events = await node.custody.search(query, actor())
    for event in events:
        row = event.to_row()
        if args.json:
            print_json(row)
        else:
            echo(
                f"{row['event_date']}  {row['event']:<12} {row['serial_number']:<16} "
                f"{row['make']:<20} {row['model']:<12} {row['from_party'] or '-'} -> "
                f"{row['to_party'] or '-'}  {row['to_country'] or '   '}  "
                f"{row['licence_reference']}"
            )
    if not args.json:
        more = (
            f" (the first {MAX_SEARCH_EVENTS}; give --make)"
            if len(events) == MAX_SEARCH_EVENTS
            else ""
        )
        echo(f"{len(events)} custody events for serial {query.serial_canonical}{more}", sys.stderr)
    return 0
