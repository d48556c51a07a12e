"""`audit verify` and `audit show`: the audit log."""

from __future__ import annotations

import argparse
import sys

from node.cli.common import EXIT_ERROR, count, echo, open_node, print_json


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    audit.add_parser("verify", parents=[data], help="check the hash chain").set_defaults(
        handler=cmd_audit_verify
    )
    show = audit.add_parser("show", parents=[data], help="newest entries")
    show.set_defaults(handler=cmd_audit_show)
    show.add_argument("--limit", type=count(1), default=20)
    show.add_argument("--json", action="store_true")


async def cmd_audit_verify(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        report = await node.audit.verify()
    if not report.ok:
        echo(f"audit log BROKEN at entry {report.broken_seq}: {report.message}", sys.stderr)
        return EXIT_ERROR
    echo(f"audit log intact: {report.message}")
    return 0


async def cmd_audit_show(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        entries = await node.audit.recent(limit=args.limit)
    for e in entries:
        if args.json:
            print_json(
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "details": e.details,
                }
            )
        else:
            echo(f"{e.seq:>8} {e.at:%Y-%m-%d %H:%M:%S} {e.actor:<20} {e.action:<20} {e.target}")
    return 0
