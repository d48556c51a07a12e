#!/usr/bin/env python3
"""Write N synthetic firearm records to a CSV file that `iarms-node` can import.

Usage:
    scripts/generate_records.py 1000000 --out records.csv [--seed 7] [--quiet]

The same N and seed always give the same file. Errors (a bad N, a file that
cannot be written) are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from node.records.synthetic import write_csv

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, write the file and return the exit status."""
    parser = _Parser(prog="generate_records.py", description=__doc__.splitlines()[0])
    parser.add_argument("n", metavar="N", type=_positive_int, help="how many records")
    parser.add_argument("--out", required=True, metavar="FILE.csv", help="the CSV file to write")
    parser.add_argument("--seed", type=_int, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        write_csv(args.out, args.n, args.seed, progress=not args.quiet)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"{parser.prog}: error: cannot write {args.out}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
