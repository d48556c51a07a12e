"""Per-peer token buckets: the online cooperation a lookup needs is rate-limited.

A peer may ask for `capacity` blind evaluations at once and `rate` more per
second after that; a request for more than it has is refused whole (never
partly served), with the time after which it would fit. Every peer has the
node's default limit unless it has its own (`[federation.peer_limits.XXX]` in
the config). Pure: time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from node.errors import RateLimitedError


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """How many evaluations a peer may ask for: a burst, then a steady rate."""

    capacity: float = 20_000.0
    rate: float = 50.0  # tokens per second

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.rate <= 0:
            raise ValueError("rate limit: capacity must be at least 1 and rate positive")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per peer, full when first seen, sized by the peer's own limit or the default."""

    def __init__(
        self, default: RateLimitConfig, per_peer: Mapping[str, RateLimitConfig] | None = None
    ) -> None:
        self.default = default
        self.per_peer = dict(per_peer or {})
        self._buckets: dict[str, _Bucket] = {}

    def limit_for(self, peer: str) -> RateLimitConfig:
        """The limit that applies to `peer`."""
        return self.per_peer.get(peer, self.default)

    def _refilled(self, peer: str, now: float) -> tuple[RateLimitConfig, _Bucket]:
        cfg = self.limit_for(peer)
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(cfg.capacity, now)
        bucket.tokens = min(cfg.capacity, bucket.tokens + max(0.0, now - bucket.at) * cfg.rate)
        bucket.at = now
        return cfg, bucket

    def available(self, peer: str, now: float) -> int:
        """How many tokens `peer` may take at once at time `now` (whole ones)."""
        return int(self._refilled(peer, now)[1].tokens)

    def take(self, peer: str, cost: float, now: float) -> float:
        """Take `cost` tokens for `peer` at time `now` (seconds).

        Returns:
            0.0 if taken; otherwise the seconds to wait before the same request fits
            (infinite if it can never fit), and nothing is taken.
        """
        cfg, bucket = self._refilled(peer, now)
        if cost > cfg.capacity:
            return float("inf")
        if cost <= bucket.tokens:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / cfg.rate

    def charge(self, peer: str, cost: int, now: float, what: str) -> None:
        """`take`, or refuse the whole message with `RateLimitedError` saying when it fits."""
        wait = self.take(peer, cost, now)
        if wait:
            raise RateLimitedError(rate_limited(peer, cost, wait, what))


def rate_limited(country: str, count: int, wait: float, what: str = "evaluations") -> str:
    """Why `count` `what` are refused: when they would fit, rounded up, or never."""
    if wait == float("inf"):
        return f"{count} {what} exceed {country}'s burst limit; send fewer at once"
    return f"{count} {what} exceed {country}'s rate limit; retry in {math.ceil(wait)} s"
