"""Golomb-coded sets: a compact, strictly parsed set of 64-bit items with FPR 2^-32.

A set of n items is stored as the sorted values ``(item * n * M) >> 64`` (each
in ``[0, n*M)``, ``M = 2^32``), Golomb-Rice coded with parameter P = 32: the
gaps between successive values are split into a 32-bit remainder and a unary
quotient. A non-member's value is uniform in ``[0, n*M)`` and hits one of the
n stored values with probability about ``n / (n*M) = 2^-32``; the code costs
about 32 + 1.6 bits per item. See docs/adr/0004-membership-index.md.

The remainders and the quotients are written as two separate streams (the same
code as BIP-158, not interleaved) so that this pure-Python decoder runs at C
speed: the remainders are an array of big-endian u32, and the quotients are
runs of 1-bits found with one `str.split`. Parsing checks every length against
the item count before it allocates anything.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable
from itertools import accumulate, chain, islice, repeat
from operator import add, and_, lshift, rshift, sub

from node.errors import IndexFormatError

SET_FORMAT = 1
RICE_P = 32
RANGE_M = 1 << 32
DEFAULT_MAX_ITEMS = 5_000_000
#: Past this, sums of gaps could leave 64 bits; no node comes near it.
HARD_MAX_ITEMS = 1 << 30
ITEM_LIMIT = 1 << 64

#: format, P, M, n, length of the quotient stream in bytes.
_HEADER = struct.Struct(">BBQQI")
_REMAINDER_MASK = (1 << RICE_P) - 1
_LITTLE_ENDIAN = sys.byteorder == "little"


def u32_array(data: bytes | memoryview) -> array[int]:
    """Decode big-endian u32 values into a native array."""
    values = array("I")
    if values.itemsize != 4:  # pragma: no cover - no supported platform
        raise RuntimeError("array('I') is not 32 bits on this platform")
    values.frombytes(data)
    if _LITTLE_ENDIAN:
        values.byteswap()
    return values


def u64_array(data: bytes | memoryview) -> array[int]:
    """Decode big-endian u64 values into a native array."""
    values = array("Q")
    values.frombytes(data)
    if _LITTLE_ENDIAN:
        values.byteswap()
    return values


def big_endian_bytes(values: array[int]) -> bytes:
    """Encode a native array of u32 or u64 as big-endian bytes."""
    if not _LITTLE_ENDIAN:  # pragma: no cover - tests run little-endian
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def check_item(item: int) -> int:
    """Return `item` if it is a 64-bit unsigned integer, else raise ValueError."""
    if not 0 <= item < ITEM_LIMIT:
        raise ValueError(f"item {item} is not a 64-bit unsigned integer")
    return item


def check_max_items(max_items: int) -> None:
    """Refuse a configured maximum that the format cannot honour."""
    if not 0 <= max_items <= HARD_MAX_ITEMS:
        raise ValueError(f"max_items {max_items} is outside [0, {HARD_MAX_ITEMS}]")


class GolombCodedSet:
    """An immutable Golomb-coded set, decoded once into a sorted `array('Q')`.

    Membership is a multiply-shift and a binary search (about 1 µs). Build with
    `from_items`, parse untrusted bytes with `from_bytes`.
    """

    __slots__ = ("_span", "_values")

    def __init__(self, values: array[int]) -> None:
        """Wrap sorted hashed values; use `from_items` or `from_bytes` instead."""
        self._values = values
        self._span = len(values) * RANGE_M

    @classmethod
    def from_items(cls, items: Iterable[int]) -> GolombCodedSet:
        """Build the set of distinct 64-bit `items` (duplicates count once).

        Raises:
            ValueError: an item is not a 64-bit unsigned integer, or there are
                more than `HARD_MAX_ITEMS` items.
        """
        distinct = sorted(set(items))
        if distinct:
            check_item(distinct[0])
            check_item(distinct[-1])
        return cls.from_sorted(distinct)

    @classmethod
    def from_sorted(cls, items: Collection[int]) -> GolombCodedSet:
        """`from_items` of items already distinct, 64-bit and in increasing order (as
        `membership.SortedItems` holds them), without sorting them again.

        The hashed value ``(item * n * M) >> 64`` never decreases as the item grows,
        so the values come out sorted too.

        Raises:
            ValueError: there are more than `HARD_MAX_ITEMS` items.
        """
        if len(items) > HARD_MAX_ITEMS:
            raise ValueError(f"{len(items)} items exceed the format's {HARD_MAX_ITEMS}")
        span = len(items) * RANGE_M
        return cls(array("Q", [(item * span) >> 64 for item in items]))

    @classmethod
    def from_bytes(
        cls, data: bytes | memoryview, *, max_items: int = DEFAULT_MAX_ITEMS
    ) -> GolombCodedSet:
        """Parse exactly one encoded set (see `to_bytes`), refusing anything off.

        Args:
            data: the encoded set, nothing before or after it.
            max_items: refuse sets claiming more items than this, before
                allocating anything for them.

        Raises:
            IndexFormatError: for any malformed, absurd or non-canonical input.
        """
        check_max_items(max_items)
        view = memoryview(data)
        n, quotient_len = _parse_header(view, max_items)
        remainder_end = _HEADER.size + 4 * n
        expected = remainder_end + quotient_len
        if len(view) != expected:
            raise IndexFormatError(
                f"set of {n} items with a {quotient_len}-byte quotient stream is "
                f"{expected} bytes, got {len(view)}"
            )
        remainders = u32_array(view[_HEADER.size : remainder_end])
        quotients = _decode_quotients(view[remainder_end:], n)
        # The quotients sum to at most n + 6 (checked lengths), so with n below
        # HARD_MAX_ITEMS no partial sum can overflow 'Q'.
        values = array(
            "Q", accumulate(map(add, map(lshift, quotients, repeat(RICE_P)), remainders))
        )
        if values and values[-1] >= n * RANGE_M:
            raise IndexFormatError(f"value {values[-1]} is outside the range [0, {n}*2^32)")
        return cls(values)

    def to_bytes(self) -> bytes:
        """Encode canonically: the same set always gives the same bytes.

        Layout (big-endian): u8 format (1), u8 P (32), u64 M (2^32), u64 n,
        u32 quotient-stream length L; n u32 remainders; L bytes of quotients,
        each ``gap >> 32`` as that many 1-bits then a 0-bit, most significant
        bit first, the last byte padded with 0-bits.
        """
        values = self._values
        gaps = list(map(sub, values, chain((0,), values)))
        remainders = array("I", map(and_, gaps, repeat(_REMAINDER_MASK)))
        unary = "".join(["1" * q + "0" for q in map(rshift, gaps, repeat(RICE_P))])
        unary += "0" * (-len(unary) % 8)
        quotients = int(unary, 2).to_bytes(len(unary) // 8, "big") if unary else b""
        header = _HEADER.pack(SET_FORMAT, RICE_P, RANGE_M, len(values), len(quotients))
        return header + big_endian_bytes(remainders) + quotients

    def __contains__(self, item: object) -> bool:
        """Whether `item` may be a member: always for members, 2^-32 for others."""
        if not isinstance(item, int) or not self._span:
            return False
        target = (item * self._span) >> 64
        values = self._values
        i = bisect_left(values, target)
        return i < len(values) and values[i] == target

    def __len__(self) -> int:
        """The item count n (distinct items at build time)."""
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        """Sets are equal when their hashed values are."""
        if not isinstance(other, GolombCodedSet):
            return NotImplemented
        return self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """Show the size, never the values."""
        return f"GolombCodedSet(n={len(self._values)})"


def _parse_header(view: memoryview, max_items: int) -> tuple[int, int]:
    """Check the header against the format and return (n, quotient length)."""
    if len(view) < _HEADER.size:
        raise IndexFormatError(f"set is {len(view)} bytes, its header alone is {_HEADER.size}")
    fmt, p, m, n, quotient_len = _HEADER.unpack_from(view)
    if fmt != SET_FORMAT:
        raise IndexFormatError(f"set format {fmt} is not supported (this node reads {SET_FORMAT})")
    if p != RICE_P or m != RANGE_M:
        raise IndexFormatError(f"set parameters P={p}, M={m} are not the required P=32, M=2^32")
    if n > max_items:
        raise IndexFormatError(f"set claims {n} items, more than the maximum {max_items}")
    # The gaps sum to less than n*M, so their quotients sum to at most n-1.
    least = (n + 7) // 8
    most = (2 * n - 1 + 7) // 8 if n else 0
    if not least <= quotient_len <= most:
        raise IndexFormatError(
            f"quotient stream of {quotient_len} bytes is impossible for {n} items "
            f"(must be {least} to {most})"
        )
    return n, quotient_len


def _decode_quotients(stream: memoryview, n: int) -> Iterable[int]:
    """Return the n unary quotients of `stream`, checking that nothing follows them."""
    bits = bin(int.from_bytes(b"\x01" + stream, "big"))[3:]  # the 1 keeps leading zeros
    runs = bits.split("0", n)
    if len(runs) <= n:
        raise IndexFormatError(f"quotient stream ends after {len(runs) - 1} of {n} items")
    padding = runs[n]
    if "1" in padding:
        raise IndexFormatError("quotient stream has non-zero bits after the last item")
    if len(padding) >= 8:
        raise IndexFormatError(
            f"quotient stream is {len(padding) // 8} byte(s) longer than its {n} items need"
        )
    return map(len, islice(runs, n))
