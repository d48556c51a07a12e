"""`records import`, `records export` and `records search`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from node.cli.common import actor, count, echo, open_node, print_json, run_import, write_error

if TYPE_CHECKING:
    from node.records.service import FilterText


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


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    filters = _filter_parent()
    records = sub.add_parser("records", help="import, export and search records").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    imp = records.add_parser("import", parents=[data], help="import a CSV file")
    imp.set_defaults(handler=cmd_import)
    imp.add_argument("file", type=Path)
    imp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    exp = records.add_parser("export", parents=[data, filters], help="export to CSV")
    exp.set_defaults(handler=cmd_export)
    exp.add_argument("file", type=Path, help="output file, or - for standard output")
    search = records.add_parser("search", parents=[data, filters], help="search records")
    search.set_defaults(handler=cmd_search)
    search.add_argument("--limit", type=count(1), default=50)
    search.add_argument("--offset", type=count(0), default=0)
    search.add_argument("--json", action="store_true", help="one JSON object per line")


def _filter_text(args: argparse.Namespace) -> FilterText:
    from node.records.service import FilterText

    return FilterText(
        serial=args.serial,
        make=args.make,
        model=args.model,
        firearm_type=args.type,
        calibre=args.calibre,
        status=args.status,
        country=args.country,
        date_from=args.from_,
        date_to=args.to,
    )


async def cmd_import(args: argparse.Namespace) -> int:
    return await run_import(args, lambda node: node.imports)


async def cmd_export(args: argparse.Namespace) -> int:
    from node.records.csvio import RecordCsvWriter

    async with open_node(args) as node:
        f = node.records.parse_filter(_filter_text(args))
        if str(args.file) == "-":
            writer = RecordCsvWriter(sys.stdout)
            async for record in node.records.export(f, actor()):
                writer.write(record)
            return 0
        target = args.file
        # Write beside the target and rename: a failed export never leaves half a file.
        fd, tmp = tempfile.mkstemp(
            dir=target.parent if target.parent.exists() else None, prefix=".export-", suffix=".csv"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                writer = RecordCsvWriter(out)
                async for record in node.records.export(f, actor()):
                    writer.write(record)
            os.replace(tmp, target)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise write_error(e, target) from e
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    echo(f"exported {writer.count} records to {target}", sys.stderr)
    return 0


async def cmd_search(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        f = node.records.parse_filter(_filter_text(args))
        page = await node.records.search(f, actor(), offset=args.offset, limit=args.limit)
    for record in page.records:
        row = record.to_row()
        if args.json:
            print_json(row)
        else:
            echo(
                f"{row['id']:>8}  {row['serial_number']:<16} {row['make']:<22} "
                f"{row['model']:<14} {row['firearm_type']:<14} {row['calibre']:<18} "
                f"{row['status']:<10} {row['country_of_manufacture']:<3} {row['event_date']}"
            )
    if not args.json:
        more = f"; more with --offset {args.offset + args.limit}" if page.has_more else ""
        echo(f"{len(page.records)} records{more}", sys.stderr)
    return 0
