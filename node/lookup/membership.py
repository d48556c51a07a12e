"""Membership indexes: the signed, versioned, compact set of a node's OPRF outputs.

An owner publishes a *full* document (a Golomb-coded set of the items of its
active records) and then *deltas* against it: each delta carries every item
added and removed since that full base, so a peer needs only the base and the
newest delta, and can skip deltas it missed. A querier turns the OPRF output
of a serial into an item (`item_of`) and checks `MembershipIndex.contains`;
only on a match does it ask the owner to confirm.

Everything here is pure: bytes in, values out. The caller signs the bytes (they
are canonical) and verifies the envelope before calling `parse_index`, which
still treats them as hostile. Format and rationale:
docs/adr/0004-membership-index.md.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import lt

from node.errors import IndexDeltaError, IndexFormatError
from node.lookup.golomb import (
    DEFAULT_MAX_ITEMS,
    GolombCodedSet,
    big_endian_bytes,
    check_item,
    check_max_items,
    u64_array,
)

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "FullIndex",
    "GolombCodedSet",
    "IndexDelta",
    "IndexDeltaError",
    "IndexDocument",
    "IndexFormatError",
    "MembershipIndex",
    "SortedItems",
    "apply_delta",
    "build_delta",
    "build_full",
    "check_country",
    "encode_index",
    "item_of",
    "parse_index",
    "should_rebuild",
    "update_index",
]

MAGIC = b"IAMX"
FORMAT_VERSION = 1
KIND_FULL = 1
KIND_DELTA = 2
MAX_VERSION = (1 << 63) - 1
OPRF_OUTPUT_SIZE = 64
#: magic, format version, kind, country, version.
_DOCUMENT_HEADER = struct.Struct(">4sBB3sQ")
#: base version, added count, removed count.
_DELTA_HEADER = struct.Struct(">QII")


def item_of(output: bytes) -> int:
    """The 64-bit item of a 64-byte OPRF output: its first 8 bytes, big-endian.

    OPRF outputs (RFC 9497, ristretto255-SHA512) are SHA-512 digests, uniform
    to anyone without the owner's key, so any 64 of their bits are a uniform
    item; the other 448 bits add nothing to a 2^-32 filter.

    Raises:
        ValueError: `output` is not 64 bytes long.
    """
    if len(output) != OPRF_OUTPUT_SIZE:
        raise ValueError(f"an OPRF output is {OPRF_OUTPUT_SIZE} bytes, got {len(output)}")
    return int.from_bytes(output[:8], "big")


class SortedItems:
    """An immutable, strictly increasing sequence of 64-bit items with binary search."""

    __slots__ = ("_items",)
    _items: array[int]

    def __init__(self, items: Iterable[int] = ()) -> None:
        """Sort and deduplicate `items`; raise ValueError if one is not 64-bit unsigned."""
        if isinstance(items, SortedItems):  # immutable: share its array
            self._items = items._items
            return
        values = sorted(set(items))
        if values:
            check_item(values[0])
            check_item(values[-1])
        self._items = array("Q", values)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, what: str) -> SortedItems:
        """Parse big-endian u64 items that must be strictly increasing."""
        items = u64_array(data)
        if not all(map(lt, items, islice(items, 1, None))):
            raise IndexFormatError(f"{what} items are not strictly increasing")
        parsed = cls()
        parsed._items = items
        return parsed

    def to_bytes(self) -> bytes:
        """The items as big-endian u64, in increasing order."""
        return big_endian_bytes(self._items)

    def isdisjoint(self, other: SortedItems) -> bool:
        """Whether no item is in both (binary search from the smaller side)."""
        small, large = sorted((self, other), key=len)
        return not any(item in large for item in small)

    def __contains__(self, item: object) -> bool:
        """Exact membership: no false positives."""
        items = self._items
        if not isinstance(item, int):
            return False
        i = bisect_left(items, item)
        return i < len(items) and items[i] == item

    def __iter__(self) -> Iterator[int]:
        """The items in increasing order."""
        return iter(self._items)

    def __len__(self) -> int:
        """How many items."""
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        """Equal when the items are."""
        if not isinstance(other, SortedItems):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        """Hash of the canonical bytes (the items never change)."""
        return hash(self._items.tobytes())

    def __repr__(self) -> str:
        """Show the size, never the items."""
        return f"SortedItems(len={len(self._items)})"


@dataclass(frozen=True, slots=True)
class FullIndex:
    """A full version: every active item of `country` at `version`."""

    country: str
    version: int
    items: GolombCodedSet


@dataclass(frozen=True, slots=True)
class IndexDelta:
    """The changes from full version `base_version` to `version` (cumulative)."""

    country: str
    version: int
    base_version: int
    added: SortedItems
    removed: SortedItems


IndexDocument = FullIndex | IndexDelta


@dataclass(frozen=True, slots=True)
class MembershipIndex:
    """A peer's index as a querier holds it: a full base and the newest delta on it."""

    country: str
    version: int
    base_version: int
    base: GolombCodedSet
    added: SortedItems
    removed: SortedItems

    @classmethod
    def from_full(cls, document: FullIndex) -> MembershipIndex:
        """The index of a full version, with an empty delta."""
        empty = SortedItems()
        return cls(
            document.country, document.version, document.version, document.items, empty, empty
        )

    def contains(self, item: int) -> bool:
        """Whether `item` may be active: always if it is, with probability ≤ 2^-32 if not."""
        return item in self.added or (item in self.base and item not in self.removed)

    def __contains__(self, item: object) -> bool:
        """`item in index` is `index.contains(item)`."""
        return isinstance(item, int) and self.contains(item)


def build_full(country: str, version: int, items: Iterable[int]) -> bytes:
    """Encode the full version `version` of `country`'s index of `items`.

    Raises:
        ValueError: a bad country, version or item.
    """
    if isinstance(items, SortedItems):  # already distinct and in order: no second sort
        return encode_index(FullIndex(country, version, GolombCodedSet.from_sorted(items)))
    return encode_index(FullIndex(country, version, GolombCodedSet.from_items(items)))


def build_delta(
    country: str, version: int, base_version: int, added: Iterable[int], removed: Iterable[int]
) -> bytes:
    """Encode the changes of `country`'s index from full `base_version` to `version`.

    Raises:
        ValueError: bad header values, bad items, or an item both added and removed.
    """
    delta = IndexDelta(country, version, base_version, SortedItems(added), SortedItems(removed))
    return encode_index(delta)


def encode_index(document: IndexDocument) -> bytes:
    """The canonical bytes of `document`: ``parse_index(encode_index(d)) == d``.

    Raises:
        IndexFormatError: the document breaks a rule `parse_index` enforces
            (country, versions, an item both added and removed).
    """
    check_country(document.country)
    _check_version(document.version, "version")
    if isinstance(document, FullIndex):
        return _header(KIND_FULL, document) + document.items.to_bytes()
    _check_base_version(document.base_version, document.version)
    added, removed = document.added, document.removed
    if not added.isdisjoint(removed):
        raise IndexFormatError("delta lists an item as both added and removed")
    counts = _DELTA_HEADER.pack(document.base_version, len(added), len(removed))
    return _header(KIND_DELTA, document) + counts + added.to_bytes() + removed.to_bytes()


def parse_index(data: bytes | memoryview, *, max_items: int = DEFAULT_MAX_ITEMS) -> IndexDocument:
    """Parse a full or delta document from untrusted bytes, strictly.

    Args:
        data: exactly one document.
        max_items: refuse documents with more items than this (a full set's
            n, or a delta's added plus removed) before allocating for them.

    Raises:
        IndexFormatError: for anything malformed, absurd or non-canonical.
    """
    check_max_items(max_items)
    view = memoryview(data)
    if len(view) < _DOCUMENT_HEADER.size:
        raise IndexFormatError(
            f"index is {len(view)} bytes, its header alone is {_DOCUMENT_HEADER.size}"
        )
    magic, fmt, kind, raw_country, version = _DOCUMENT_HEADER.unpack_from(view)
    if magic != MAGIC:
        raise IndexFormatError(f"not a membership index: magic {magic!r}, expected {MAGIC!r}")
    if fmt != FORMAT_VERSION:
        raise IndexFormatError(
            f"index format {fmt} is not supported (this node reads {FORMAT_VERSION})"
        )
    country = check_country(raw_country.decode("latin-1"))
    _check_version(version, "version")
    body = view[_DOCUMENT_HEADER.size :]
    if kind == KIND_FULL:
        return FullIndex(country, version, GolombCodedSet.from_bytes(body, max_items=max_items))
    if kind == KIND_DELTA:
        return _parse_delta(body, country, version, max_items)
    raise IndexFormatError(f"document kind {kind} is neither full (1) nor delta (2)")


def apply_delta(index: MembershipIndex, delta: IndexDelta) -> MembershipIndex:
    """Move `index` to the version of `delta`, which replaces any earlier delta.

    Raises:
        IndexDeltaError: the delta is for another country or base, is not
            newer than `index`, or removes an item the base does not hold.
    """
    if delta.country != index.country:
        raise IndexDeltaError(f"delta is for {delta.country}, the index for {index.country}")
    if delta.base_version != index.base_version:
        raise IndexDeltaError(
            f"delta {delta.version} is against base {delta.base_version}, the index's base "
            f"is {index.base_version}: fetch the full version {delta.base_version}"
        )
    if delta.version <= index.version:
        raise IndexDeltaError(
            f"delta version {delta.version} is not newer than the index's {index.version}"
        )
    absent = next((item for item in delta.removed if item not in index.base), None)
    if absent is not None:
        raise IndexDeltaError(f"delta removes item {absent:#018x}, which the base does not hold")
    return MembershipIndex(
        index.country, delta.version, index.base_version, index.base, delta.added, delta.removed
    )


def update_index(index: MembershipIndex | None, document: IndexDocument) -> MembershipIndex:
    """Apply a freshly parsed document to the cached index of the same peer, if any.

    Raises:
        IndexDeltaError: a full version that is not newer (or for another
            country), a delta without a base, or a delta `apply_delta` refuses.
    """
    if isinstance(document, IndexDelta):
        if index is None:
            raise IndexDeltaError(
                f"delta {document.version} needs full version {document.base_version} first"
            )
        return apply_delta(index, document)
    if index is not None:
        if document.country != index.country:
            raise IndexDeltaError(f"index is for {document.country}, expected {index.country}")
        if document.version <= index.version:
            raise IndexDeltaError(
                f"full version {document.version} is not newer than the index's {index.version}"
            )
    return MembershipIndex.from_full(document)


def should_rebuild(
    base_size: int, delta_size: int, *, ratio: float = 0.1, max_delta: int = 10_000
) -> bool:
    """Whether to publish a new full version instead of a delta.

    A delta item costs 8 bytes in every later delta until the next full
    version, a base item about 4.2 bytes once; past `ratio` of the base (or
    `max_delta` items) a peer fetching the delta would pay most of a full.
    """
    return delta_size > max_delta or delta_size > base_size * ratio


def check_country(country: str) -> str:
    """Return `country` if it looks like an ISO 3166-1 alpha-3 code, else raise IndexFormatError."""
    if not (len(country) == 3 and country.isascii() and country.isalpha() and country.isupper()):
        raise IndexFormatError(f"country {country!r} is not three capital ASCII letters")
    return country


def _header(kind: int, document: IndexDocument) -> bytes:
    country = document.country.encode("ascii")
    return _DOCUMENT_HEADER.pack(MAGIC, FORMAT_VERSION, kind, country, document.version)


def _parse_delta(body: memoryview, country: str, version: int, max_items: int) -> IndexDelta:
    if len(body) < _DELTA_HEADER.size:
        raise IndexFormatError(
            f"delta body is {len(body)} bytes, its header alone is {_DELTA_HEADER.size}"
        )
    base_version, n_added, n_removed = _DELTA_HEADER.unpack_from(body)
    _check_base_version(base_version, version)
    if n_added + n_removed > max_items:
        raise IndexFormatError(
            f"delta claims {n_added} added and {n_removed} removed items, "
            f"more than the maximum {max_items}"
        )
    added_end = _DELTA_HEADER.size + 8 * n_added
    expected = added_end + 8 * n_removed
    if len(body) != expected:
        raise IndexFormatError(
            f"delta body with {n_added} added and {n_removed} removed items is "
            f"{expected} bytes, got {len(body)}"
        )
    added = SortedItems.from_bytes(body[_DELTA_HEADER.size : added_end], "added")
    removed = SortedItems.from_bytes(body[added_end:], "removed")
    if not added.isdisjoint(removed):
        raise IndexFormatError("delta lists an item as both added and removed")
    return IndexDelta(country, version, base_version, added, removed)


def _check_version(version: int, what: str) -> None:
    if not 1 <= version <= MAX_VERSION:
        raise IndexFormatError(f"{what} {version} is outside [1, 2^63-1]")


def _check_base_version(base_version: int, version: int) -> None:
    _check_version(base_version, "base version")
    if base_version >= version:
        raise IndexFormatError(f"base version {base_version} is not older than version {version}")
