"""`lookup` (ask every peer about serials, privately) and `hits` (peers' lookups that
matched our records)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from node.cli.common import actor, config, count, echo, keys, open_node, print_json
from node.errors import TooManySerialsError, ValidationError

if TYPE_CHECKING:
    from node.lookup.querier import Query


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    lookup = sub.add_parser(
        "lookup", parents=[data], help="check serials against every peer, privately"
    )
    lookup.set_defaults(handler=cmd_lookup, check=_check_lookup)
    what = lookup.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--serial", help="one serial number (one that starts with '-': --serial=-12345)"
    )
    what.add_argument(
        "--bulk",
        type=Path,
        metavar="FILE.csv",
        help="a CSV with a serial_number column (and optionally make)",
    )
    lookup.add_argument("--make", help="the make as read on the firearm (with --serial)")
    lookup.add_argument(
        "--case-ref",
        required=True,
        help="your case reference, at most 100 characters (the owner of a hit is told it)",
    )
    lookup.add_argument("--key-passphrase-file", type=Path)
    lookup.add_argument("--json", action="store_true", help="one JSON object per peer and serial")

    hits = sub.add_parser("hits", parents=[data], help="peers' lookups that matched our records")
    hits.set_defaults(handler=cmd_hits)
    hits.add_argument(
        "--limit", type=count(1), default=1000, help="show at most N, newest first (default 1000)"
    )
    hits.add_argument("--offset", type=count(0), default=0, help="skip the N newest")
    hits.add_argument("--json", action="store_true", help="one JSON object per line")


def _check_lookup(args: argparse.Namespace) -> str | None:
    if args.bulk is not None and args.make is not None:
        return "--make applies to --serial; give a make column in the CSV for --bulk"
    return None


def _bulk_queries(path: Path) -> list[Query]:
    from node.lookup.bulk import parse_bulk
    from node.lookup.querier import MAX_SERIALS

    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValidationError(f"cannot read {path}: {e.strerror}") from e
    try:
        return parse_bulk(data, str(path))
    except TooManySerialsError as e:
        raise ValidationError(
            f"{path} has {e.count:,} serials; one lookup checks at most {MAX_SERIALS:,}: "
            "split the file"
        ) from e


async def cmd_lookup(args: argparse.Namespace) -> int:
    from node.app import federation
    from node.lookup.querier import Query
    from node.lookup.text import check_case_reference

    case = check_case_reference(args.case_ref, "--case-ref")
    queries = _bulk_queries(args.bulk) if args.bulk else [Query(args.serial, args.make or "")]
    node_keys = keys(config(args), args.key_passphrase_file)
    async with open_node(args) as node:
        results = await federation(node, node_keys).lookups.lookup(queries, case, actor())
    if not results:
        echo("this node has no active peers: add one with 'iarms-node peers add'", sys.stderr)
    for r in results:
        if args.json:
            print_json(r.to_json())
            continue
        if r.result == "hit":
            agrees = {True: "make agrees", False: "MAKE DIFFERS", None: "no make given"}
            details = "; ".join(
                ", ".join(f"{k}={v}" for k, v in rec.items() if v) for rec in r.records
            )
            echo(f"{r.peer}  {r.serial:<20} HIT ({agrees[r.make_agrees]})  {details}")
        elif r.result == "no_hit":
            echo(f"{r.peer}  {r.serial:<20} no hit (index version {r.index_version})")
        else:
            echo(f"{r.peer}  {r.serial:<20} {r.result}: {r.reason}")
    return 0


async def cmd_hits(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        found = await node.lookup_index.hits(limit=args.limit + 1, offset=args.offset)
    hits, more = found[: args.limit], len(found) > args.limit
    for h in hits:
        info = {
            "record_id": h.record_id,
            "serial_number": h.serial_number,
            "peer": h.peer,
            "at": h.at.isoformat(),
            "case_reference": h.case_reference,
            "make_agrees": h.make_agrees,
        }
        if args.json:
            print_json(info)
        else:
            echo(
                f"{h.at:%Y-%m-%d %H:%M}  {h.peer}  record {h.record_id:<8} "
                f"{h.serial_number:<20} case {h.case_reference or '-'}"
            )
    if more:  # on stderr, so that --json output stays pure JSON lines
        echo(
            f"(more not shown; use --offset {args.offset + args.limit} for the next ones, "
            "or a larger --limit)",
            sys.stderr,
        )
    return 0
