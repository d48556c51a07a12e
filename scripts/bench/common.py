"""Small helpers every benchmark script shares."""

from __future__ import annotations

import argparse
import statistics
import sys


def say(message: str) -> None:
    """Progress on standard error: standard output carries only the one JSON line."""
    print(message, file=sys.stderr, flush=True)


def positive(text: str) -> int:
    """An argparse type: a whole number, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def percentiles(samples: list[float]) -> tuple[float, float]:
    """Median and 95th percentile (the lower sample at the 95 % rank)."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(int(len(ordered) * 0.95) - 1, 0)]
