"""Retry intervals for delivery to a peer that does not answer.

`next_interval(previous) = min(max, previous × multiplier × uniform(0.8, 1.4))`,
starting from `initial`: jittered so that many nodes do not retry in step,
capped so that a peer back after a long outage is retried within `max`
(federations fail at the edges: peers stuck in backoff forever). Pure: the
random source is passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Delivery retry policy (seconds)."""

    initial: float = 10.0
    multiplier: float = 2.0
    maximum: float = 3600.0
    #: A message the peer answers with a failure (`internal`) this many times is
    #: dead-lettered, so that it cannot hold up the messages queued behind it.
    #: Attempts the peer does not answer never count: an outage loses nothing.
    max_failed_answers: int = 5

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.multiplier >= 1):
            raise ValueError("backoff: need 0 < initial <= maximum and multiplier >= 1")
        if self.max_failed_answers < 1:
            raise ValueError("backoff: max_failed_answers must be at least 1")


def next_interval(previous: float | None, config: BackoffConfig, rng: random.Random) -> float:
    """The wait before the next attempt, after a failure that followed `previous` (None: first)."""
    if previous is None:
        return min(config.maximum, config.initial * rng.uniform(0.8, 1.4))
    return min(config.maximum, previous * config.multiplier * rng.uniform(0.8, 1.4))
