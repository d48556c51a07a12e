"""The argument parser of every command, and `main`, which runs the one chosen."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import io
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from node.cli import (
    audit,
    custody,
    evidence,
    lifecycle,
    lookups,
    peers,
    records,
    stats,
    trace,
    users,
)
from node.cli.common import (
    DATA_DIR_ENV,
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_SCHEMA,
    Handler,
    data_dir_parent,
    disk_full,
    echo,
)
from node.errors import IarmsError, SchemaVersionError
from node.terminal import shown

#: The command groups, in the order `--help` lists them.
GROUPS = (lifecycle, records, custody, users, peers, lookups, evidence, trace, stats, audit)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error messages quote arguments with control characters escaped."""

    def error(self, message: str) -> NoReturn:
        super().error(shown(message))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand; each sets its `handler` (and maybe `check`)."""
    parser: argparse.ArgumentParser = _Parser(
        prog="iarms-node", description="The `iarms-node` command line."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data = data_dir_parent()
    for group in GROUPS:
        group.add_commands(sub, data)
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
    """What argparse cannot say: bad text, a required data directory, options that conflict
    (the command's own `check`)."""
    _check_text(parser, args)
    if "data_dir" in vars(args) and args.data_dir is None:
        parser.error(f"--data-dir is required (or set {DATA_DIR_ENV})")
    if problem := args.check(args) if "check" in vars(args) else None:
        parser.error(problem)


def _stdout_gone() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    # Not a real file (tests, embedding): then there is no final flush to fail.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(_chosen_parser(parser, args), args)
    handler: Handler = args.handler
    if isinstance(sys.stdout, io.TextIOWrapper):
        # File names given as arguments may hold bytes that are not UTF-8: print them back as
        # they were given rather than fail on them.
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        status = asyncio.run(handler(args))
        sys.stdout.flush()  # a reader gone away shows here, not in the interpreter's exit
    except BrokenPipeError:
        return _stdout_gone()
    except SchemaVersionError as e:
        echo(f"iarms-node: {e}", sys.stderr)
        return EXIT_SCHEMA
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
