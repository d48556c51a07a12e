"""What an aggregator receives is uniformly random (issue 10): the shares of one fixed
vector, made by the contributor's own path (`Contributor.step`: compute, bound, split,
seal, queue) and opened with each aggregator's HPKE key, over many rounds.

The contributor is the real one; only what surrounds it is a stand-in (its counts, its
peers, its unit of work, the outbox it queues on), so that 2,000 rounds take seconds.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from math import log, sqrt
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.clock import FakeClock
from node.protocol.model import Peer, PeerStatus, Service
from node.stats.budget import BudgetConfig
from node.stats.contribute import Contributor
from node.stats.courier import Courier
from node.stats.messages import StatsShare
from node.stats.periods import Period
from node.stats.queries import query
from node.stats.round import RoundSpec
from node.stats.seal import open_share, share_info
from node.stats.shares import MAX_COUNT

QUERY = "records_by_type_status"
AGGREGATORS = ("DEU", "ITA")
#: The contributor's counts: zeros, small ones, one at the bound and one over it.
COUNTS = [
    ("pistol/stolen", 3),
    ("rifle/seized", 1),
    ("shotgun/lost", 1 << 30),
    ("pistol/lost", MAX_COUNT),
    ("rifle/stolen", MAX_COUNT + 9),
]
ROUNDS = 2000
#: The false-failure probability of the check below.
DELTA = 1e-6


@dataclass
class _Outbox:
    """The delivery service the courier queues on: keeps what was sent."""

    sent: list[tuple[str, Any]] = field(default_factory=list)

    async def send(self, recipient: str, message: Any, work: object) -> None:
        self.sent.append((recipient, message))


class _Counts:
    """This contributor's record counts (the one group-by `QUERY` reads)."""

    async def get_record_counts(self, dimension: str, period: Period) -> list[tuple[str, int]]:
        assert dimension == "type_status"
        return COUNTS


class _Peers:
    """The requester FRA and the aggregators, each allowing statistics."""

    def __init__(self, keys: dict[str, bytes], clock: FakeClock) -> None:
        self._peers = {
            country: Peer(
                country=country,
                url=f"https://{country.lower()}.test",
                signing_key=b"",
                fingerprint="",
                oprf_key=None,
                status=PeerStatus.ACTIVE,
                policy=frozenset({Service.STATISTICS}),
                added_at=clock.now(),
                added_by="test",
                revoked_at=None,
                last_contact_at=None,
                index_version=None,
                previous_key=None,
                previous_key_until=None,
                hpke_key=keys.get(country),
            )
            for country in ("FRA", *AGGREGATORS)
        }

    async def get(self, country: str) -> Peer:
        return self._peers[country]


class _Work:
    """A unit of work in which nothing was answered or spent before."""

    async def get_answers(self, round_id: bytes) -> list[Any]:
        return []

    async def get_ledger(self, month: str | None = None) -> list[Any]:
        return []

    async def add_ledger_entry(self, entry: object) -> bool:
        return True

    async def add_answer(self, round_id: bytes, answer: object, at: object) -> bool:
        return True

    async def add_audit_entry(self, at: object, event: object) -> None:
        return None


@asynccontextmanager
async def _work() -> AsyncIterator[_Work]:
    yield _Work()


async def _received(
    rounds: int, random_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> dict[str, list[list[int]]]:
    """Each aggregator's opened share of ESP's vector, in each of `rounds` rounds."""
    clock = FakeClock()
    secret = {a: X25519PrivateKey.generate() for a in AGGREGATORS}
    public = {a: k.public_key().public_bytes_raw() for a, k in secret.items()}
    outbox = _Outbox()
    contributor: Contributor[Any] = Contributor(
        "ESP",
        Courier("ESP", cast(Any, outbox), lambda: None, clock),
        cast(Any, _Peers(public, clock)),
        cast(Any, _Counts()),
        BudgetConfig(monthly_epsilon=rounds, max_epsilon=1.0),
        b"",
        clock,
        _work,
        random_bytes,
    )
    period = Period.resolve("2025-05", "2025-07", clock.now().date())
    spec = RoundSpec(
        b"", "FRA", QUERY, period, 0.5, AGGREGATORS, 2, clock.now() + timedelta(minutes=10)
    )
    cells = len(query(QUERY).cells(period, "ESP"))
    opened: dict[str, list[list[int]]] = {a: [] for a in AGGREGATORS}
    for _ in range(rounds):
        round_id = os.urandom(16)
        assert await contributor.step(replace(spec, round_id=round_id))
        shares = [(r, m) for r, m in outbox.sent if isinstance(m, StatsShare)]
        assert [r for r, _ in shares] == list(AGGREGATORS)
        for aggregator, message in shares:
            info = share_info(round_id, QUERY, "ESP", aggregator)
            opened[aggregator].append(open_share(message.sealed, secret[aggregator], info, cells))
        outbox.sent.clear()
    return opened


def _ones_per_bit(values: list[int]) -> list[int]:
    """How many of `values` (each below 2^64) have each of the 64 bits set."""
    x = int.from_bytes(b"".join(v.to_bytes(8, "little") for v in values), "little")
    low = ((1 << (64 * len(values))) - 1) // ((1 << 64) - 1)  # bit 0 of every value
    return [(x & (low << bit)).bit_count() for bit in range(64)]


def _worst_bit(opened: dict[str, list[list[int]]]) -> tuple[int, int]:
    """The largest |ones − rounds/2| over every bit of every cell of every aggregator's
    share, and how many such bits there are."""
    deviations = [
        abs(ones - len(shares) / 2)
        for shares in opened.values()
        for cell in zip(*shares, strict=True)
        for ones in _ones_per_bit(list(cell))
    ]
    return int(max(deviations)), len(deviations)


def _limit(rounds: int, bits: int) -> float:
    """Hoeffding: each bit is 1 in `rounds` independent rounds with probability 1/2 if
    the share is uniform, so P(|ones − rounds/2| ≥ t) ≤ 2 exp(−2t² / rounds); over `bits`
    bits (a union bound, valid though the aggregators' shares are dependent), the chance
    that any one reaches t is at most `DELTA` for t = sqrt(rounds/2 · ln(2 · bits / DELTA))."""
    return sqrt(rounds / 2 * log(2 * bits / DELTA))


async def test_every_bit_an_aggregator_opens_is_a_fair_coin() -> None:
    """ESP's shares for DEU and ITA of one fixed vector (zeros, 1, 3, 2^30, the bound),
    2,000 rounds: each of the 64 bits of each of the 56 cells is 1 in close to half of
    them, for both aggregators (the random share and the completing one). A uniform
    share fails this with probability at most 1e-6 (`_limit`: 2 × 56 × 64 = 7,168 bits,
    t ≈ 153 of 1,000 expected); a share carrying a count, or a bit of it, is off by ~1,000."""
    opened = await _received(ROUNDS)
    worst, bits = _worst_bit(opened)
    assert bits == 2 * 56 * 64
    assert worst < _limit(ROUNDS, bits)
    # the shares still add up to the bounded vector, so what was tested is what was sent
    total = [(a + b) % 2**64 for a, b in zip(opened["DEU"][0], opened["ITA"][0], strict=True)]
    assert sorted(v for v in total if v) == sorted([3, 1, 1 << 30, MAX_COUNT, MAX_COUNT])


async def test_the_check_catches_shares_that_are_not_uniform() -> None:
    """The same check, the contributor's random bytes coming from a generator whose every
    eighth byte is zero (a share's low byte stuck: bits a share would carry of the count),
    or whose bits are 1 with probability 3/4, fails by far (300 rounds: t ≈ 59, off by
    150 and 75)."""

    def stuck(n: int) -> bytes:
        return bytes(b if (i + 1) % 8 else 0 for i, b in enumerate(secrets.token_bytes(n)))

    def biased(n: int) -> bytes:  # each bit 1 with probability 3/4
        a, b = secrets.token_bytes(n), secrets.token_bytes(n)
        return bytes(x | y for x, y in zip(a, b, strict=True))

    for generator, rounds in ((stuck, 300), (biased, 300)):
        worst, bits = _worst_bit(await _received(rounds, generator))
        assert worst > 1.3 * _limit(rounds, bits), generator.__name__


def test_bits_are_counted_where_they_are() -> None:
    assert _ones_per_bit([1, 3, 1 << 63, (1 << 64) - 1]) == [3, 2] + [1] * 61 + [2]


def test_the_limit_is_what_the_docstrings_say() -> None:
    assert 152 < _limit(ROUNDS, 2 * 56 * 64) < 154
    assert 58 < _limit(300, 2 * 56 * 64) < 60
