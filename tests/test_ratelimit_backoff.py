"""Token buckets and backoff: pure functions of time and randomness."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.protocol.backoff import BackoffConfig, next_interval
from node.protocol.ratelimit import RateLimitConfig, TokenBuckets


def test_burst_then_steady_rate() -> None:
    buckets = TokenBuckets(RateLimitConfig(capacity=100, rate=10))
    assert buckets.take("DEU", 100, now=0.0) == 0.0
    wait = buckets.take("DEU", 20, now=0.0)
    assert wait == pytest.approx(2.0)
    assert buckets.take("DEU", 20, now=1.0) == pytest.approx(1.0)  # refused whole: 10 left
    assert buckets.take("DEU", 20, now=2.0) == 0.0
    assert buckets.take("ITA", 100, now=2.0) == 0.0  # one bucket per peer
    assert math.isinf(buckets.take("ITA", 101, now=100.0))


@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 1000)), max_size=50))
def test_never_more_than_capacity_plus_rate_times_time(calls: list[tuple[float, float]]) -> None:
    cfg = RateLimitConfig(capacity=100, rate=10)
    buckets, now, granted = TokenBuckets(cfg), 0.0, 0.0
    for step, cost in calls:
        now += step
        if buckets.take("X", cost, now) == 0.0:
            granted += cost
    assert granted <= cfg.capacity + cfg.rate * now + 1e-6


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    cfg = BackoffConfig(initial=10, multiplier=2, maximum=600)
    rng = random.Random(4)
    intervals: list[float] = []
    previous = None
    for _ in range(12):
        previous = next_interval(previous, cfg, rng)
        intervals.append(previous)
    assert 8 <= intervals[0] <= 14
    assert all(b >= a * 1.6 - 1e-9 or b == 600 for a, b in itertools.pairwise(intervals))
    assert max(intervals) == 600 and intervals[-1] == 600
    with pytest.raises(ValueError, match="backoff"):
        BackoffConfig(initial=0)
