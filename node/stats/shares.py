"""Additive secret shares of a vector of counts modulo 2^64, and their wire form
(docs/PROTOCOL.md §4.1).

A contributor splits its vector `v` (one count per cell of the query, in the
query's order) into one share per aggregator: every share but the last is
uniformly random, drawn from the operating system's CSPRNG, and the last is
`v − (sum of the others) mod 2^64`. Any set of shares short of all of them is
uniformly random and independent of `v`, so an aggregator, or any coalition
of aggregators short of all, learns nothing of the counts; the sum of all of
them is `v`.

Why 2^64 is enough. A cell's true total never wraps and the noisy total is read
as a signed 64-bit integer (two's complement), so negative noisy counts survive:
- one contributor's count in a cell is at most `MAX_COUNT` (2^40, about 10^12:
  more than all the firearms there are), and a round has at most
  `MAX_CONTRIBUTORS` (2^16; the federation has 196 members), so
  `0 ≤ total < 2^56`;
- each of at most `MAX_AGGREGATORS` (16) aggregators adds discrete Laplace noise
  of scale `b = sensitivity / ε` (`noise.py`); a noise beyond 2^58 in magnitude
  has probability `exp(−2^58 / b)`, nil for any scale a round can have, and
  `add_noise` refuses one beyond 2^62 outright;
so `|total + noises| < 2^63`, and its residue modulo 2^64 read as signed is the
exact integer. A power of two also makes a uniform share exactly 8 random bytes,
with no rejection sampling and no reduction bias, and the arithmetic that of
every language's unsigned 64-bit integers.

Wire form of a share (or of an aggregator's noisy sum): each cell as an 8-byte
big-endian unsigned integer, in the query's order, nothing else; a share of a
query of `c` cells is exactly `8c` bytes.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from operator import add
from typing import cast

from node.errors import ShareError

MODULUS = 1 << 64
CELL_BYTES = 8
#: The largest count one contributor may put in one cell.
MAX_COUNT = 1 << 40
#: The most contributors and aggregators a round may have (the bounds that keep totals exact).
MAX_CONTRIBUTORS = 1 << 16
MAX_AGGREGATORS = 16
#: The largest noise, in magnitude, that `add_noise` takes for one cell.
MAX_NOISE = 1 << 62
_SIGN = 1 << 63
_MASK = MODULUS - 1

#: A share: one value in 0..2^64−1 per cell of the query, in the query's order.
Share = tuple[int, ...]
#: Where random shares come from: n bytes on each call (the CSPRNG; a fixed stream in tests).
RandomBytes = Callable[[int], bytes]


def _within(values: Sequence[object], low: int, high: int) -> bool:
    """Whether every value is an `int` (a `bool` is not) from `low` to `high`, checked at
    C speed (a round's vectors have thousands of cells)."""
    if not values:
        return True
    if not set(map(type, values)) <= {int}:
        return False
    ints = cast(Sequence[int], values)
    return low <= min(ints) and max(ints) <= high


def _check_counts(counts: Sequence[int]) -> None:
    if not counts:
        raise ShareError("a share covers at least one cell")
    if _within(counts, 0, MAX_COUNT):
        return
    for position, count in enumerate(counts):  # name the first bad cell
        if isinstance(count, bool) or not isinstance(count, int):
            raise ShareError(f"cell {position}: a count is an integer, got {count!r}")
        if not 0 <= count <= MAX_COUNT:
            raise ShareError(f"cell {position}: a count is from 0 to 2^40, got {count}")


def _check_values(share: Sequence[int]) -> None:
    """Every value of `share` in 0..2^64−1 (a share's or a noisy sum's)."""
    if _within(share, 0, MODULUS - 1):
        return
    for position, value in enumerate(share):  # name the first bad cell
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MODULUS:
            raise ShareError(f"cell {position}: a share's value is from 0 to 2^64 − 1")


def split(
    counts: Sequence[int], parties: int, random_bytes: RandomBytes = secrets.token_bytes
) -> list[Share]:
    """Split `counts` into `parties` additive shares modulo 2^64, one per aggregator.

    The first `parties − 1` shares are uniformly random: 8 bytes of
    `random_bytes` per cell (big-endian), drawn share by share; the last is what
    makes them add up to `counts`. `random_bytes` is the CSPRNG
    (`secrets.token_bytes`); tests pass a fixed stream to reproduce a vector.

    Raises:
        ShareError: fewer than two parties (or more than 16), an empty vector, or a
            count that is not an integer from 0 to 2^40.
    """
    if isinstance(parties, bool) or not 2 <= parties <= MAX_AGGREGATORS:
        raise ShareError(f"a vector is split for 2 to {MAX_AGGREGATORS} aggregators, not {parties}")
    _check_counts(counts)
    cells = len(counts)
    shares = []
    for _ in range(parties - 1):
        data = random_bytes(CELL_BYTES * cells)
        if len(data) != CELL_BYTES * cells:
            raise ValueError(f"the random source gave {len(data)} bytes, not {CELL_BYTES * cells}")
        shares.append(decode_share(data, cells))
    taken = combine(shares)
    shares.append(
        tuple((count - used) % MODULUS for count, used in zip(counts, taken, strict=True))
    )
    return shares


def combine(shares: Iterable[Sequence[int]]) -> Share:
    """The cell-by-cell sum of `shares` modulo 2^64 (shares, or aggregators' noisy sums).

    Raises:
        ShareError: no share, shares of different lengths, or a value outside 0..2^64−1.
    """
    total: list[int] | None = None
    for share in shares:
        if total is None:
            total = [0] * len(share)
        if len(share) != len(total):
            raise ShareError(f"shares of {len(total)} and {len(share)} cells cannot be added")
        if share:
            _check_values(share)
        total = list(map(add, total, share))
    if not total:
        raise ShareError("no share to add")
    return tuple([value & _MASK for value in total])


def add_noise(total: Sequence[int], noise: Sequence[int]) -> Share:
    """An aggregator's sum of shares with its noise added, cell by cell, modulo 2^64.

    Raises:
        ShareError: as many noises as cells are needed, each within ±2^62.
    """
    if len(noise) != len(total):
        raise ShareError(f"{len(noise)} noises for {len(total)} cells")
    if not _within(noise, -MAX_NOISE, MAX_NOISE):
        raise ShareError("a noise is an integer within ±2^62")
    return combine([total, [n & _MASK for n in noise]])


def to_signed(value: int) -> int:
    """A value modulo 2^64 read as a signed 64-bit integer (two's complement)."""
    if not 0 <= value < MODULUS:
        raise ShareError(f"{value} is not a value modulo 2^64")
    return value - MODULUS if value >= _SIGN else value


def reveal(sums: Iterable[Sequence[int]]) -> tuple[int, ...]:
    """The released total: every aggregator's noisy sum added, each cell read as signed."""
    return tuple([value - MODULUS if value >= _SIGN else value for value in combine(sums)])


def encode_share(share: Sequence[int]) -> bytes:
    """A share's wire form: 8 bytes big-endian per cell, in the query's order.

    Raises:
        ShareError: an empty share or a value outside 0..2^64−1.
    """
    if not share:
        raise ShareError("a share covers at least one cell")
    try:
        return struct.pack(f">{len(share)}Q", *share)
    except struct.error as e:
        raise ShareError("a share's value is an integer from 0 to 2^64 − 1") from e


def decode_share(data: bytes, cells: int) -> Share:
    """A share of a query of `cells` cells from its wire form.

    Raises:
        ShareError: `data` is not bytes, or not exactly `8 × cells` bytes long.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ShareError(f"a share is bytes, not {type(data).__name__}")
    if cells < 1:
        raise ShareError("a share covers at least one cell")
    if len(data) != CELL_BYTES * cells:
        raise ShareError(
            f"a share of this query is {CELL_BYTES * cells} bytes ({cells} cells of "
            f"{CELL_BYTES}), got {len(data)}"
        )
    return struct.unpack(f">{cells}Q", data)
