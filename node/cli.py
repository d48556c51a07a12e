"""The `iarms-node` command line.

Exit status: 0 success; 1 an error (one line on stderr); 2 bad arguments;
3 an import that stored the good rows but rejected some; 130 interrupted;
141 standard output closed early (`iarms-node hits | head -1`), the status a
shell shows for a program ended by SIGPIPE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import io
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from node.errors import IarmsError, StorageFullError
from node.protocol.rotation import MAX_GRACE_S
from node.terminal import json_line, shown

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED_ROWS = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `set -o pipefail` scripts expect of `| head`
DATA_DIR_ENV = "IARMS_DATA_DIR"
#: The largest --limit or --offset: past any table's size, within every database's integers.
MAX_COUNT = 1_000_000_000
#: The largest row id: the databases' 64-bit signed integer.
MAX_ID = 2**63 - 1
#: The longest --grace-days: what peers accept of a rotation statement.
MAX_GRACE_DAYS = MAX_GRACE_S // 86400
FILTERS = ("serial", "make", "model", "type", "calibre", "status", "country", "from", "to")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _count(least: int, most: int = MAX_COUNT) -> Callable[[str], int]:
    """An argparse type: a whole number from `least` to `most`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not least <= value <= most:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {least} to {most:,}, got {text!r}"
            )
        return value

    return parse


def _grace_days(text: str) -> float:
    """An argparse type: a number of days above 0 and at most `MAX_GRACE_DAYS`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_GRACE_DAYS:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected a number of days above 0 and at most {MAX_GRACE_DAYS}, got {text!r}"
        )
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error messages quote arguments with control characters escaped."""

    def error(self, message: str) -> NoReturn:
        super().error(shown(message))


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
    parser: argparse.ArgumentParser = _Parser(prog="iarms-node", description=__doc__.split("\n")[0])
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
        type=_grace_days,
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
    exp.add_argument("file", type=Path, help="output file, or - for standard output")
    search = records.add_parser("search", parents=[data, filters], help="search records")
    search.add_argument("--limit", type=_count(1), default=50)
    search.add_argument("--offset", type=_count(0), default=0)
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
    reset = users.add_parser(
        "password", parents=[data], help="reset a password; the user must change it at next login"
    )
    reset.add_argument("name")
    reset.add_argument("--password-file", type=Path, help="default: generated and printed once")

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
    lookup.add_argument("--case-ref", default="", help="your case reference (told to the owner)")
    lookup.add_argument("--key-passphrase-file", type=Path)
    lookup.add_argument("--json", action="store_true", help="one JSON object per peer and serial")
    hits = sub.add_parser("hits", parents=[data], help="peers' lookups that matched our records")
    hits.add_argument(
        "--limit", type=_count(1), default=1000, help="show at most N, newest first (default 1000)"
    )
    hits.add_argument("--offset", type=_count(0), default=0, help="skip the N newest")
    hits.add_argument("--json", action="store_true", help="one JSON object per line")

    evidence = sub.add_parser(
        "evidence", help="peers' signed confirmations of our lookups' hits"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = evidence.add_parser("list", parents=[data], help="kept evidence, newest first")
    listing.add_argument("--limit", type=_count(1), default=50)
    listing.add_argument("--json", action="store_true")
    show_evidence = evidence.add_parser("show", parents=[data], help="verify and show one")
    show_evidence.add_argument("id", type=_count(1, MAX_ID))
    show_evidence.add_argument("--json", action="store_true")
    export = evidence.add_parser("export", parents=[data], help="write one bundle to a file")
    export.add_argument("id", type=_count(1, MAX_ID))
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    check = evidence.add_parser("verify", help="verify a bundle file (no node needed)")
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    audit.add_parser("verify", parents=[data], help="check the hash chain")
    show = audit.add_parser("show", parents=[data], help="newest entries")
    show.add_argument("--limit", type=_count(1), default=20)
    show.add_argument("--json", action="store_true")
    return parser


def _chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command given, e.g. that of `peers show`."""
    chosen = parser
    while subs := [a for a in chosen._actions if isinstance(a, argparse._SubParsersAction)]:
        chosen = subs[0].choices[getattr(args, subs[0].dest)]
    return chosen


def _text_problem(value: object) -> str | None:
    """What makes a text argument unusable: bytes that were not UTF-8 (Python made them
    surrogates), or a NUL character (which the database cannot store); None if nothing."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 text"
    if "\x00" in value:
        return "contains a NUL character (U+0000), which cannot be stored"
    return None


def _check_text(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse text arguments that are not UTF-8 or hold a NUL, naming the option.

    A command line from the shell cannot hold a NUL (the kernel's argv is C
    strings); one built by a program calling `main` can. Paths are not text:
    their bytes are a legitimate file name, kept as they are.
    """
    names = {
        action.dest: max(action.option_strings, key=len, default=action.dest)
        for action in parser._actions
    }
    for dest, value in vars(args).items():
        for v in value if isinstance(value, list) else [value]:
            if problem := _text_problem(v):
                parser.error(f"argument {names.get(dest, dest)}: {problem}")


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say: a required data directory, options that conflict."""
    _check_text(parser, args)
    if "data_dir" in vars(args) and args.data_dir is None:
        parser.error(f"--data-dir is required (or set {DATA_DIR_ENV})")
    if args.command == "lookup" and args.bulk is not None and args.make is not None:
        parser.error("--make applies to --serial; give a make column in the CSV for --bulk")


def _stdout_gone() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    # Not a real file (tests, embedding): then there is no final flush to fail.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from node.cli_commands import COMMANDS

    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(_chosen_parser(parser, args), args)
    key = args.command if args.command in COMMANDS else f"{args.command} {args.action}"
    if isinstance(sys.stdout, io.TextIOWrapper):
        # File names given as arguments may hold bytes that are not UTF-8: print them back as
        # they were given rather than fail on them.
        sys.stdout.reconfigure(errors="surrogateescape")
    handler = COMMANDS[key]
    try:
        status = asyncio.run(handler(args))
        sys.stdout.flush()  # a reader gone away shows here, not in the interpreter's exit
    except BrokenPipeError:
        return _stdout_gone()
    except IarmsError as e:
        echo(f"iarms-node: {e}", sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        echo(f"iarms-node: {disk_full(e, None)}", sys.stderr)
        _stdout_gone()  # it may be the full file: the final flush must not fail again
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("iarms-node: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


def disk_full(error: OSError, target: Path | None) -> StorageFullError:
    """The StorageFullError of writing `target` (None: the standard output) on a full disk."""
    if target is None and error.filename is not None:
        target = Path(os.fsdecode(error.filename))
    where = "the standard output's file" if target is None else str(target.absolute().parent)
    return StorageFullError(where, error.strerror or "no space left on device")


def echo(line: str, file: TextIO | None = None, *, flush: bool = False) -> None:
    """Print one line, its control and disguising characters escaped (`node.terminal.shown`).

    Every human-readable line goes through here: it may quote a peer's record
    fields or error messages, or text from the database.
    """
    print(shown(line), file=file or sys.stdout, flush=flush)


def print_json(obj: Any) -> None:
    """One JSON object on one line, with no raw control character (`node.terminal.json_line`)."""
    print(json_line(obj))


if __name__ == "__main__":
    sys.exit(main())
