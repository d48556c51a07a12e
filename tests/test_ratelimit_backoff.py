"""Token buckets and backoff (pure functions of time and randomness); limits from the config."""

from __future__ import annotations

import itertools
import math
import random
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from node.config import config_path
from node.lookup.querier import Query
from node.protocol.backoff import BackoffConfig, next_interval
from node.protocol.ratelimit import RateLimitConfig, TokenBuckets
from tests.harness import seeded_federation


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


def test_a_peer_with_its_own_limit_uses_it_and_others_the_default() -> None:
    buckets = TokenBuckets(
        RateLimitConfig(capacity=10, rate=1), {"DEU": RateLimitConfig(capacity=100, rate=20)}
    )
    assert buckets.limit_for("DEU").capacity == 100
    assert buckets.limit_for("ITA").capacity == 10
    assert buckets.take("DEU", 100, now=0.0) == 0.0
    assert buckets.take("DEU", 40, now=1.0) == pytest.approx(1.0)  # 20 back after 1 s, at 20/s
    assert math.isinf(buckets.take("ITA", 11, now=0.0))  # ITA's burst is the default's
    assert buckets.take("ITA", 10, now=0.0) == 0.0
    assert buckets.take("ITA", 5, now=1.0) == pytest.approx(4.0)  # 1 back after 1 s, at 1/s


async def test_a_node_applies_the_limits_of_its_config_file(tmp_path: Path) -> None:
    """DEU's config: a burst of 5 evaluations, 10 for ITA; FRA asking for 6 is refused."""
    fed = await seeded_federation(tmp_path)  # no limit given: each node reads its config
    try:
        deu = fed["DEU"]
        await fed.stop("DEU")
        path = config_path(deu.data_dir)
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        raw["federation"]["evaluations_burst"] = 5
        raw["federation"]["peer_limits"] = {"ITA": {"evaluations_burst": 10}}
        path.write_text(tomli_w.dumps(raw), encoding="utf-8")
        await fed.start("DEU")
        assert deu.n.config.rate_limit.capacity == 5

        six = [Query(f"R-{i}") for i in range(6)]
        answers = {r.peer: r for r in await fed["FRA"].f.lookups.lookup(six, "C-1", "o")}
        assert answers["DEU"].result == "refused"
        assert "exceed FRA's burst limit" in answers["DEU"].reason
        assert answers["ITA"].result == "no_hit"  # ITA keeps the default limit of 20,000
        answers = {r.peer: r for r in await fed["ITA"].f.lookups.lookup(six, "C-2", "o")}
        assert answers["DEU"].result == "no_hit"  # ITA's own limit at DEU is 10
        five = six[:5]
        answers = {r.peer: r for r in await fed["FRA"].f.lookups.lookup(five, "C-3", "o")}
        assert answers["DEU"].result == "no_hit"
    finally:
        await fed.close()
