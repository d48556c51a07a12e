"""Additive shares modulo 2^64 (node/stats/shares.py): split and combine, the wire form,
refusals, and that what one aggregator receives is uniformly random."""

from __future__ import annotations

import secrets
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import ShareError
from node.stats.shares import (
    MAX_COUNT,
    MAX_NOISE,
    MODULUS,
    add_noise,
    combine,
    decode_share,
    encode_share,
    reveal,
    split,
    to_signed,
)

counts = st.lists(st.integers(0, MAX_COUNT), min_size=1, max_size=40)
parties = st.integers(2, 16)


@given(counts, parties)
def test_shares_add_up_to_the_counts(vector: list[int], n: int) -> None:
    shares = split(vector, n)
    assert len(shares) == n and all(len(s) == len(vector) for s in shares)
    assert all(0 <= value < MODULUS for share in shares for value in share)
    assert combine(shares) == tuple(vector)


@given(counts, parties)
def test_the_wire_form_round_trips(vector: list[int], n: int) -> None:
    for share in split(vector, n):
        data = encode_share(share)
        assert len(data) == 8 * len(vector)
        assert decode_share(data, len(vector)) == share
        assert decode_share(bytearray(data), len(vector)) == share


@given(counts, st.lists(st.integers(-(10**9), 10**9), min_size=2, max_size=4))
def test_noisy_sums_reveal_the_total_with_negative_noise(
    vector: list[int], noises: list[int]
) -> None:
    """Each aggregator adds its noise to its sum of shares; the sums reveal total + noises,
    read as signed: a negative noisy count survives."""
    shares = split(vector, len(noises))
    sums = [
        add_noise(share, [noise] * len(vector)) for share, noise in zip(shares, noises, strict=True)
    ]
    assert reveal(sums) == tuple(count + sum(noises) for count in vector)


def test_the_encoding_is_big_endian_in_the_query_s_order() -> None:
    data = encode_share([1, 0x0102030405060708, MODULUS - 1])
    assert data.hex() == "00000000000000010102030405060708ffffffffffffffff"


def test_a_fixed_random_stream_gives_fixed_shares() -> None:
    """The stream is read share by share, 8 bytes big-endian per cell; the last share is
    what remains: v − r mod 2^64."""
    stream = bytes(range(1, 17)) + bytes(range(17, 33))
    taken: list[int] = []

    def fixed(n: int) -> bytes:
        start = sum(taken)
        taken.append(n)
        return stream[start : start + n]

    first, second, last = split([5, 0], 3, fixed)
    assert taken == [16, 16]
    assert first == (0x0102030405060708, 0x090A0B0C0D0E0F10)
    assert second == (0x1112131415161718, 0x191A1B1C1D1E1F20)
    assert last == ((5 - first[0] - second[0]) % MODULUS, (-first[1] - second[1]) % MODULUS)


@pytest.mark.parametrize(
    ("data", "cells", "message"),
    [
        (b"\x00" * 15, 2, "is 16 bytes \\(2 cells of 8\\), got 15"),
        (b"\x00" * 17, 2, "is 16 bytes \\(2 cells of 8\\), got 17"),
        (b"", 1, "is 8 bytes \\(1 cells of 8\\), got 0"),
        (b"\x00" * 8, 0, "at least one cell"),
        ("0" * 16, 2, "a share is bytes, not str"),
        ([0, 0], 2, "a share is bytes, not list"),
    ],
)
def test_mis_sized_or_malformed_shares_are_refused(data: object, cells: int, message: str) -> None:
    with pytest.raises(ShareError, match=message):
        decode_share(data, cells)  # type: ignore[arg-type]


@given(st.binary(max_size=100), st.integers(1, 12))
def test_any_bytes_decode_only_at_exactly_eight_per_cell(data: bytes, cells: int) -> None:
    if len(data) == 8 * cells:
        assert encode_share(decode_share(data, cells)) == data
    else:
        with pytest.raises(ShareError):
            decode_share(data, cells)


@pytest.mark.parametrize(
    ("vector", "n", "message"),
    [
        ([1], 1, "for 2 to 16 aggregators, not 1"),
        ([1], 17, "for 2 to 16 aggregators, not 17"),
        ([], 2, "at least one cell"),
        ([-1], 2, "cell 0: a count is from 0 to 2\\^40, got -1"),
        ([0, MAX_COUNT + 1], 2, "cell 1: a count is from 0 to 2\\^40"),
        ([1.5], 2, "cell 0: a count is an integer"),
        ([True], 2, "cell 0: a count is an integer"),
    ],
)
def test_a_split_refuses_what_it_cannot_keep_exact(vector: list[int], n: int, message: str) -> None:
    with pytest.raises(ShareError, match=message):
        split(vector, n)


def test_combining_refuses_mismatched_or_out_of_range_shares() -> None:
    with pytest.raises(ShareError, match="shares of 2 and 3 cells cannot be added"):
        combine([(1, 2), (1, 2, 3)])
    with pytest.raises(ShareError, match="cell 1: a share's value is from 0 to 2\\^64"):
        combine([(1, MODULUS)])
    with pytest.raises(ShareError, match="no share to add"):
        combine([])
    with pytest.raises(ShareError, match="a share's value is an integer"):
        encode_share([MODULUS])
    with pytest.raises(ShareError, match="a share's value is an integer"):
        encode_share([-1])
    with pytest.raises(ShareError, match="3 noises for 2 cells"):
        add_noise((1, 2), [0, 0, 0])
    with pytest.raises(ShareError, match="within ±2\\^62"):
        add_noise((1,), [MAX_NOISE + 1])


def test_signed_reading() -> None:
    assert [to_signed(v) for v in (0, 7, (1 << 63) - 1, 1 << 63, MODULUS - 1)] == [
        0,
        7,
        (1 << 63) - 1,
        -(1 << 63),
        -1,
    ]
    with pytest.raises(ShareError):
        to_signed(MODULUS)


def test_a_random_stream_of_the_wrong_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="gave 3 bytes, not 8"):
        split([1], 2, lambda n: b"abc")


# Chi-square critical values at p = 1e-7 are about 57 (15 degrees of freedom), 45 (7) and
# 42 (6); 80 is generous enough never to flake on a uniform source, and a share that carried
# the count (or a skewed generator's) lands in the thousands.
CHI_SQUARE_LIMIT = 80.0
DRAWS = 8000


def _chi_square(values: list[int], buckets: int) -> float:
    observed = Counter(values)
    expected = len(values) / buckets
    return sum((observed[b] - expected) ** 2 / expected for b in range(buckets))


def _statistics(cells: list[int]) -> list[float]:
    """Chi-square of `cells` by their top 4 bits, their low 3 bits and their residue mod 7."""
    return [
        _chi_square([c >> 60 for c in cells], 16),
        _chi_square([c & 7 for c in cells], 8),
        _chi_square([c % 7 for c in cells], 7),
    ]


@pytest.mark.parametrize("aggregator", [0, 1, 2])
def test_what_one_aggregator_receives_is_uniform(aggregator: int) -> None:
    """Many splits of one fixed vector for three aggregators: each cell of the share one
    aggregator receives (the random ones and the one that completes the sum alike) is
    spread evenly, by its top bits, its low bits and its residue modulo 7."""
    vector = [3, 0, 1 << 30]
    shares = [split(vector, 3)[aggregator] for _ in range(DRAWS)]
    for cell in range(len(vector)):
        assert max(_statistics([share[cell] for share in shares])) < CHI_SQUARE_LIMIT


def test_the_uniformity_check_catches_a_share_that_is_not_uniform() -> None:
    """The same statistics on the count itself, or on the completing share when the random
    one comes from a generator whose low byte is stuck at zero, fail."""

    def stuck(n: int) -> bytes:
        return bytes(b if (i + 1) % 8 else 0 for i, b in enumerate(secrets.token_bytes(n)))

    completing = [split([3], 2, stuck)[1][0] for _ in range(DRAWS)]
    assert max(_statistics(completing)) > CHI_SQUARE_LIMIT
    assert max(_statistics([3] * DRAWS)) > CHI_SQUARE_LIMIT
