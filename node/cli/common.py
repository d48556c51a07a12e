"""What every command group shares: argument types, printing, opening the node.

Cheap to import (argparse and the terminal's escaping only): the node's
services, keys and configuration are imported by the functions that open
them, when a command runs.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from node.errors import ConfigError, IarmsError, StorageFullError, ValidationError
from node.terminal import json_line, shown

if TYPE_CHECKING:
    from node.app import Node
    from node.config import NodeConfig
    from node.identity import NodeKeys
    from node.records.importer import ImportService

#: What a command does with its parsed arguments; its exit status.
Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

EXIT_ERROR = 1
EXIT_USAGE = 2
#: A database this code cannot use: a usage problem, fixed by `iarms-node migrate`.
EXIT_SCHEMA = 2
EXIT_REJECTED_ROWS = 3
#: A trace request refused as incomplete (`trace new` without `--force`): nothing sent.
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `set -o pipefail` scripts expect of `| head`
DATA_DIR_ENV = "IARMS_DATA_DIR"
#: The largest --limit or --offset: past any table's size, within every database's integers.
MAX_COUNT = 1_000_000_000
#: The largest row id: the databases' 64-bit signed integer.
MAX_ID = 2**63 - 1


def count(least: int, most: int = MAX_COUNT) -> Callable[[str], int]:
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


def data_dir_parent() -> argparse.ArgumentParser:
    """The `--data-dir` option of every command that works on a node."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get(DATA_DIR_ENV),
        help=f"the node's data directory (default: ${DATA_DIR_ENV})",
    )
    return parent


def actor() -> str:
    """Who runs this command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def echo(line: str, file: TextIO | None = None, *, flush: bool = False) -> None:
    """Print one line, its control and disguising characters escaped (`node.terminal.shown`).

    Every human-readable line goes through here: it may quote a peer's record
    fields or error messages, or text from the database.
    """
    print(shown(line), file=file or sys.stdout, flush=flush)


def print_json(obj: Any) -> None:
    """One JSON object on one line, with no raw control character (`node.terminal.json_line`)."""
    print(json_line(obj))


def print_info(info: dict[str, Any], as_json: bool) -> None:
    """`name: value` lines, or one JSON object."""
    if as_json:
        print_json(info)
    else:
        for name, value in info.items():
            echo(f"{name}: {value}")


def disk_full(error: OSError, target: Path | None) -> StorageFullError:
    """The StorageFullError of writing `target` (None: the standard output) on a full disk."""
    if target is None and error.filename is not None:
        target = Path(os.fsdecode(error.filename))
    where = "the standard output's file" if target is None else str(target.absolute().parent)
    return StorageFullError(where, error.strerror or "no space left on device")


def write_error(error: OSError, target: Path) -> IarmsError:
    """Why writing `target` failed, in one line: a full disk, or the system's reason."""
    if error.errno == errno.ENOSPC:
        return disk_full(error, target)
    return ValidationError(f"cannot write {target}: {error.strerror}")


def write_new(path: Path, data: bytes) -> None:
    """Write `data` to a new file at `path`; refuse to overwrite one that exists."""
    try:
        with path.open("xb") as f:
            f.write(data)
    except FileExistsError:
        raise ValidationError(f"{path} exists; refusing to overwrite it") from None
    except OSError as e:
        raise write_error(e, path) from e


def secret_file(path: Path | None, what: str) -> str | None:
    """The first line of a password file (None when no file is given)."""
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the {what} file {path}: {e}") from e
    if not lines or not lines[0]:
        raise ConfigError(f"the {what} file {path} is empty")
    return lines[0]


def config(args: argparse.Namespace) -> NodeConfig:
    """The node's configuration, from `--data-dir`."""
    from node.config import load_config

    return load_config(args.data_dir)


@asynccontextmanager
async def open_node(args: argparse.Namespace, *, migrate: bool = False) -> AsyncIterator[Node]:
    """The node of `--data-dir`, closed on exit; its schema migrated first if `migrate`."""
    from node.app import Node

    node = await Node.open(config(args), migrate=migrate)
    try:
        yield node
    finally:
        await node.close()


def _text_name(path: Path) -> str:
    """The file's name as text for the audit log: bytes that are not UTF-8 shown as U+FFFD."""
    return os.fsencode(path.name).decode("utf-8", "replace")


async def run_import(args: argparse.Namespace, importer: Callable[[Node], ImportService]) -> int:
    """Import `args.file` with the node's `importer` (records, custody events), a progress bar
    on a terminal (unless `--no-progress`); print the report, each rejected row by line and
    column; exit 3 if any row was rejected."""
    from tqdm import tqdm

    if not args.file.is_file():
        raise ValidationError(f"{args.file}: no such file")
    async with open_node(args) as node:
        size = args.file.stat().st_size
        disable = True if args.no_progress else None  # None: shown on a terminal only
        with tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc="importing",
            disable=disable,
            file=sys.stderr,
        ) as bar:
            report = await importer(node).import_csv(
                args.file,
                actor(),
                progress=lambda done: bar.update(done - bar.n),
                source=_text_name(args.file),
            )
    echo(
        f"{args.file}: {report.rows} rows, {report.created} created, "
        f"{report.duplicates} already present, {report.rejected} rejected"
    )
    for error in report.errors:
        column = f", column {error.column}" if error.column else ""
        echo(f"{args.file}: line {error.line}{column}: {error.reason}", sys.stderr)
    if report.rejected > len(report.errors):
        echo(f"... and {report.rejected - len(report.errors)} more rejected rows", sys.stderr)
    return EXIT_REJECTED_ROWS if report.rejected else 0


def passphrase(node_config: NodeConfig, passphrase_file: Path | None) -> bytes | None:
    """The keys' passphrase (file, else environment) when the node's keys are encrypted."""
    from node.identity import PASSPHRASE_ENV, read_passphrase_file

    if not node_config.key_encrypted:
        return None
    if passphrase_file:
        return read_passphrase_file(passphrase_file)
    return os.environ.get(PASSPHRASE_ENV, "").encode() or None


def keys(node_config: NodeConfig, passphrase_file: Path | None) -> NodeKeys:
    """The node's signing and OPRF keys."""
    from node.identity import load_keys

    return load_keys(node_config, passphrase(node_config, passphrase_file))
