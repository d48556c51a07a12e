"""The `iarms-node` command line.

Exit status: 0 success; 1 an error (one line on stderr); 2 bad arguments;
3 an import that stored the good rows but rejected some.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.errors import IarmsError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED_ROWS = 3
DATA_DIR_ENV = "IARMS_DATA_DIR"
FILTERS = ("serial", "make", "model", "type", "calibre", "status", "country", "from", "to")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _data_dir_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get(DATA_DIR_ENV),
        help=f"the node's data directory (default: ${DATA_DIR_ENV})",
    )
    return parent


def _filter_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("filters")
    group.add_argument("--serial", default="", help="serial number; ABC* prefix, *123* contains")
    group.add_argument("--make", default="")
    group.add_argument("--model", default="", help="model name prefix")
    group.add_argument("--type", default="", help="firearm type, e.g. pistol")
    group.add_argument("--calibre", default="")
    group.add_argument("--status", default="")
    group.add_argument("--country", default="", help="country of manufacture")
    group.add_argument("--from", dest="from_", default="", metavar="DATE", help="event date from")
    group.add_argument("--to", default="", metavar="DATE", help="event date to (YYYY-MM-DD)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    data = _data_dir_parent()
    filters = _filter_parent()
    parser = argparse.ArgumentParser(prog="iarms-node", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", parents=[data], help="create a node")
    init.add_argument("--country", required=True, help="ISO 3166-1 alpha-3 code, e.g. FRA")
    init.add_argument("--db-url", help="database URL (default: SQLite in the data directory)")
    init.add_argument("--console-listen", metavar="HOST:PORT")
    init.add_argument("--federation-listen", metavar="HOST:PORT")
    init.add_argument("--public-url", help="the URL peers use to reach the federation API")
    init.add_argument(
        "--admin-password-file",
        type=Path,
        help="first admin's password (default: generated and printed once)",
    )
    init.add_argument(
        "--key-passphrase-file",
        type=Path,
        help="encrypt the signing and OPRF keys with the passphrase in this file",
    )

    run = sub.add_parser("run", parents=[data], help="serve the console and federation API")
    run.add_argument("--key-passphrase-file", type=Path)

    sub.add_parser(
        "identity", parents=[data], help="country and signing-key fingerprint"
    ).add_argument("--json", action="store_true")

    rotate = sub.add_parser(
        "rotate-key",
        parents=[data],
        help="replace the signing key; peers follow a statement signed by the old one",
    )
    rotate.add_argument(
        "--grace-days",
        type=float,
        default=7.0,
        help="how long peers still accept the old key (default 7)",
    )
    rotate.add_argument("--key-passphrase-file", type=Path)

    records = sub.add_parser("records", help="import, export and search records").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    imp = records.add_parser("import", parents=[data], help="import a CSV file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    exp = records.add_parser("export", parents=[data, filters], help="export to CSV")
    exp.add_argument("file", help="output file, or - for standard output")
    search = records.add_parser("search", parents=[data, filters], help="search records")
    search.add_argument("--limit", type=int, default=50)
    search.add_argument("--offset", type=int, default=0)
    search.add_argument("--json", action="store_true", help="one JSON object per line")

    users = sub.add_parser("users", help="console accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = users.add_parser("add", parents=[data], help="add an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="admin, officer, analyst or auditor")
    add.add_argument(
        "--external",
        action="store_true",
        help="a user outside the bureau: pending until an admin approves",
    )
    add.add_argument("--password-file", type=Path, help="default: generated and printed once")
    users.add_parser("approve", parents=[data], help="approve a pending account").add_argument(
        "name"
    )
    users.add_parser("disable", parents=[data], help="disable an account").add_argument("name")
    users.add_parser("enable", parents=[data], help="re-enable an account").add_argument("name")
    users.add_parser("list", parents=[data], help="list accounts").add_argument(
        "--json", action="store_true"
    )

    peers = sub.add_parser("peers", help="peer nodes and what this node answers them")
    peers_sub = peers.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_peer = peers_sub.add_parser("add", parents=[data], help="add a peer by URL and fingerprint")
    add_peer.add_argument("url", help="the peer's public federation URL")
    add_peer.add_argument("--country", required=True, help="the peer's ISO alpha-3 code")
    add_peer.add_argument(
        "--fingerprint",
        required=True,
        help="the peer's key fingerprint, as its admin gave it to you",
    )
    peers_sub.add_parser("list", parents=[data], help="list peers").add_argument(
        "--json", action="store_true"
    )
    show_peer = peers_sub.add_parser("show", parents=[data], help="one peer in detail")
    show_peer.add_argument("country")
    show_peer.add_argument("--json", action="store_true")
    peers_sub.add_parser("revoke", parents=[data], help="stop trusting a peer").add_argument(
        "country"
    )
    policy = peers_sub.add_parser("policy", parents=[data], help="what this node answers a peer")
    policy.add_argument("country")
    policy.add_argument(
        "--allow", required=True, help="comma-separated: lookups, hit-details, traces, statistics"
    )

    lookup = sub.add_parser(
        "lookup", parents=[data], help="check serials against every peer, privately"
    )
    what = lookup.add_mutually_exclusive_group(required=True)
    what.add_argument("--serial", help="one serial number")
    what.add_argument(
        "--bulk",
        type=Path,
        metavar="FILE.csv",
        help="a CSV with a serial_number column (and optionally make)",
    )
    lookup.add_argument("--make", default="", help="the make as read on the firearm")
    lookup.add_argument("--case-ref", default="", help="your case reference (told to the owner)")
    lookup.add_argument("--key-passphrase-file", type=Path)
    lookup.add_argument("--json", action="store_true", help="one JSON object per peer and serial")
    sub.add_parser(
        "hits", parents=[data], help="peers' lookups that matched our records"
    ).add_argument("--json", action="store_true")

    evidence = sub.add_parser(
        "evidence", help="peers' signed confirmations of our lookups' hits"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = evidence.add_parser("list", parents=[data], help="kept evidence, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show_evidence = evidence.add_parser("show", parents=[data], help="verify and show one")
    show_evidence.add_argument("id", type=int)
    show_evidence.add_argument("--json", action="store_true")
    export = evidence.add_parser("export", parents=[data], help="write one bundle to a file")
    export.add_argument("id", type=int)
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    check = evidence.add_parser("verify", help="verify a bundle file (no node needed)")
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    audit.add_parser("verify", parents=[data], help="check the hash chain")
    show = audit.add_parser("show", parents=[data], help="newest entries")
    show.add_argument("--limit", type=int, default=20)
    show.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from node.cli_commands import COMMANDS

    parser = build_parser()
    args = parser.parse_args(argv)
    key = args.command if args.command in COMMANDS else f"{args.command} {args.action}"
    if "data_dir" in vars(args) and args.data_dir is None:
        parser.error(f"--data-dir is required (or set {DATA_DIR_ENV})")
    handler = COMMANDS[key]
    try:
        return asyncio.run(handler(args))
    except IarmsError as e:
        print(f"iarms-node: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("iarms-node: interrupted", file=sys.stderr)
        return 130


def print_json(obj: Any) -> None:
    """One JSON object on one line."""
    print(json.dumps(obj, ensure_ascii=False, default=str))


if __name__ == "__main__":
    sys.exit(main())
