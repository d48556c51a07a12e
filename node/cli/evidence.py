"""`evidence list`, `show`, `export` and `verify`: peers' signed confirmations of our
lookups' hits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.common import MAX_ID, count, echo, open_node, print_json, write_new
from node.errors import ValidationError


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    evidence = sub.add_parser(
        "evidence", help="peers' signed confirmations of our lookups' hits"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = evidence.add_parser("list", parents=[data], help="kept evidence, newest first")
    listing.set_defaults(handler=cmd_evidence_list)
    listing.add_argument("--limit", type=count(1), default=50)
    listing.add_argument("--json", action="store_true")
    show = evidence.add_parser("show", parents=[data], help="verify and show one")
    show.set_defaults(handler=cmd_evidence_show)
    show.add_argument("id", type=count(1, MAX_ID))
    show.add_argument("--json", action="store_true")
    export = evidence.add_parser("export", parents=[data], help="write one bundle to a file")
    export.set_defaults(handler=cmd_evidence_export)
    export.add_argument("id", type=count(1, MAX_ID))
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    check = evidence.add_parser("verify", help="verify a bundle file (no node needed)")
    check.set_defaults(handler=cmd_evidence_verify)
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true")


def _print_proved(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    for name, value in info.items():
        if name != "records":
            echo(f"{name}: {'-' if value in (None, '') else value}")
    for record in info["records"]:
        echo("record: " + ", ".join(f"{k}={v}" for k, v in record.items() if v))
    echo(
        f"verified: signed by {info['owner']} with the key of fingerprint "
        f"{info['owner_fingerprint']}; compare it with the fingerprint its admin gave yours"
    )


async def cmd_evidence_list(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        entries, total = await node.evidence.list(limit=args.limit)
    for e in entries:
        if args.json:
            print_json(e.to_json())
        else:
            case = e.case_reference or "-"
            echo(f"{e.id:>6} {e.at:%Y-%m-%d %H:%M} {e.peer} {e.serial:<20} case {case}")
    if not args.json and total > len(entries):
        echo(f"({total - len(entries)} older not shown; use --limit)")
    return 0


async def cmd_evidence_show(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        entry, proved = await node.evidence.open(args.id)
    _print_proved({"id": entry.id, "serial": entry.serial} | proved.to_json(), args.json)
    return 0


async def cmd_evidence_export(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        entry, _ = await node.evidence.open(args.id)  # export only what verifies
    write_new(args.out, entry.bundle)
    echo(f"wrote evidence {entry.id} ({len(entry.bundle)} bytes) to {args.out}")
    return 0


async def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from node.lookup.evidence import verify_bundle

    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise ValidationError(f"cannot read {args.file}: {e.strerror}") from e
    _print_proved(verify_bundle(data).to_json(), args.json)
    return 0
