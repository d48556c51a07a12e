"""The owner's side of the membership index: the next version after record changes.

Pure and in memory. The records service feeds `IndexBuilder` the item of each
record that becomes active or stops being active, and calls `publish` when it
wants to publish; the owner persists (and signs) the bytes it gets back.
"""

from __future__ import annotations

from collections.abc import Iterable

from node.lookup.golomb import check_item
from node.lookup.membership import (
    MAX_VERSION,
    SortedItems,
    build_delta,
    build_full,
    check_country,
    should_rebuild,
)


class IndexBuilder:
    """Keeps the owner's active items and produces each next version, full or delta.

    Record events map to calls: created (active) → `add(item)`; serial
    changed → `remove(old)` then `add(new)`; recovered or deleted →
    `remove(item)`. Several records may share a canonical serial, so items are
    counted: an item leaves the index with its last active record.

    The first version published is full; later ones are deltas against the
    last full version until `should_rebuild` says the delta has grown too
    large. Deltas are cumulative, so a peer needs only the base and the newest.
    """

    def __init__(
        self,
        country: str,
        *,
        last_version: int = 0,
        ratio: float = 0.1,
        max_delta: int = 10_000,
    ) -> None:
        """Start with no items; the next `publish` is full version `last_version + 1`.

        Args:
            country: the owner's ISO 3166-1 alpha-3 code.
            last_version: the last version this node ever published (0 for
                none), so that versions keep increasing across restarts.
            ratio: see `should_rebuild`.
            max_delta: see `should_rebuild`.
        """
        self._country = check_country(country)
        if not 0 <= last_version < MAX_VERSION:
            raise ValueError(f"last version {last_version} is outside [0, 2^63-2]")
        self._version = last_version
        self._ratio = ratio
        self._max_delta = max_delta
        self._base_version: int | None = None
        self._base = SortedItems()
        self._counts: dict[int, int] = {}
        self._added: set[int] = set()
        self._removed: set[int] = set()
        self._pending = True
        #: The active items in order, while known without sorting (see `add_all`).
        self._sorted: SortedItems | None = None

    @classmethod
    def restore(
        cls,
        country: str,
        *,
        version: int,
        base_version: int,
        base_items: Iterable[int],
        items: Iterable[int],
        ratio: float = 0.1,
        max_delta: int = 10_000,
    ) -> IndexBuilder:
        """Resume after a restart without forcing a full version on every peer.

        Args:
            country: the owner's country.
            version: the last version published.
            base_version: the full version that version is based on.
            base_items: the distinct items of full version `base_version`.
            items: the item of every active record now (repeated for records
                that share a serial), or a `SortedItems` (see `add_all`).
            ratio: see `should_rebuild`.
            max_delta: see `should_rebuild`.
        """
        if not 1 <= base_version <= version:
            raise ValueError(f"base version {base_version} is outside [1, {version}]")
        builder = cls(country, last_version=version, ratio=ratio, max_delta=max_delta)
        builder._base_version = base_version
        builder._base = SortedItems(base_items)
        builder._removed = set(builder._base)
        if isinstance(items, SortedItems):
            builder.add_all(items)
        else:
            for item in items:
                builder.add(item)
        return builder

    @property
    def version(self) -> int:
        """The last version published (0 before the first)."""
        return self._version

    @property
    def base_version(self) -> int | None:
        """The full version the next delta would be against (None before the first)."""
        return self._base_version

    @property
    def base_items(self) -> SortedItems:
        """The items of the base version, for an owner that persists them for `restore`."""
        return self._base

    @property
    def pending(self) -> bool:
        """Whether anything changed since the last `publish` (always before the first
        and after `restore`, which cannot tell what the last delta held)."""
        return self._pending

    def __len__(self) -> int:
        """How many distinct items are active now."""
        return len(self._counts)

    def add(self, item: int) -> None:
        """Count one more active record with this item."""
        count = self._counts.get(check_item(item), 0)
        self._counts[item] = count + 1
        if count == 0:
            self._pending = True
            self._sorted = None
            if item in self._base:
                self._removed.discard(item)
            else:
                self._added.add(item)

    def add_all(self, items: SortedItems) -> None:
        """`add` each of `items` (each once): a whole index at a time, in bulk.

        Into a builder with no active items (new, or just restored) this takes
        set operations instead of a million `add` calls, and remembers the items'
        order, so that a full version built from them is not sorted again.
        """
        if self._counts:
            for item in items:
                self.add(item)
            return
        self._counts = dict.fromkeys(items, 1)
        if not items:
            return
        self._pending = True
        self._sorted = items
        if not self._base:
            self._added.update(self._counts)
            return
        base = set(self._base)
        self._added.update(self._counts.keys() - base)
        self._removed.difference_update(self._counts)

    def remove(self, item: int) -> None:
        """Count one active record fewer with this item.

        Raises:
            KeyError: no active record has this item.
        """
        count = self._counts[item]
        if count > 1:
            self._counts[item] = count - 1
            return
        del self._counts[item]
        self._pending = True
        self._sorted = None
        if item in self._base:
            self._removed.add(item)
        else:
            self._added.discard(item)

    def publish(self) -> bytes:
        """Produce the next version (full or delta) and make it the current one."""
        version = self._version + 1
        delta_size = len(self._added) + len(self._removed)
        if self._base_version is None or should_rebuild(
            len(self._base), delta_size, ratio=self._ratio, max_delta=self._max_delta
        ):
            current = SortedItems(self._counts) if self._sorted is None else self._sorted
            data = build_full(self._country, version, current)
            self._base_version = version
            self._base = current
            self._added.clear()
            self._removed.clear()
        else:
            data = build_delta(
                self._country, version, self._base_version, self._added, self._removed
            )
        self._version = version
        self._pending = False
        return data
