"""This node's side of private lookups: its records' OPRF outputs and its published index.

`refresh` brings the index in line with the records: it drops the outputs of
recovered records (deleted records drop theirs by cascade; an edited record
loses its output in the same transaction), evaluates the PRF of every active
record that lacks one — in a pool of processes, one per core, when there are
many — and, if the set of items changed since the last published version,
publishes the next one (a delta on the current full version, or a new full
version when the delta has grown; `IndexBuilder`).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from node.clock import Clock
from node.protocol import oprf
from node.protocol.index_builder import IndexBuilder
from node.protocol.membership import SortedItems
from node.protocol.model import Hit
from node.store.lookups import LookupStore

BATCH = 10_000
Progress = Callable[[int, int], None]


def evaluate_serials(key: bytes, serials: list[str]) -> list[bytes]:
    """The OPRF outputs of canonical serials (runs in a pool worker)."""
    return oprf.evaluate_direct_many(key, [oprf.serial_input(s) for s in serials], oprf.MODE_VOPRF)


class LookupIndex:
    """Keeps this node's OPRF outputs and membership index up to date."""

    def __init__(self, store: LookupStore, oprf_key: bytes, country: str, clock: Clock) -> None:
        self._store = store
        self._key = oprf_key
        self._country = country
        self._clock = clock
        self._lock = asyncio.Lock()

    async def refresh(self, progress: Progress | None = None) -> int | None:
        """Update outputs and publish a new version if anything changed; return it (or None)."""
        async with self._lock:
            await self._store.delete_inactive_outputs()
            await self._evaluate_missing(progress)
            return await self._publish()

    async def hits(self, limit: int = 100, offset: int = 0) -> list[Hit]:
        """Foreign lookups that matched our records, newest first."""
        return await self._store.get_hits(limit, offset)

    async def _evaluate_missing(self, progress: Progress | None) -> None:
        batch = await self._store.get_unindexed(BATCH)
        if not batch:
            return
        workers = min(os.cpu_count() or 1, 8)
        pool = None
        if len(batch) == BATCH and workers > 1:  # many to do: use every core
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        done = 0
        try:
            # The next batch is evaluated while this one's outputs are written.
            pending: asyncio.Future[list[bytes]] | None = self._evaluate(pool, workers, batch)
            while pending is not None:
                after = batch[-1][0]
                following = await self._store.get_unindexed(BATCH, after=after)
                upcoming = self._evaluate(pool, workers, following) if following else None
                outputs = await pending
                await self._store.add_outputs(
                    list(zip((rid for rid, _ in batch), outputs, strict=True))
                )
                done += len(batch)
                if progress:
                    progress(done, 0)
                batch, pending = following, upcoming
        finally:
            if pool is not None:
                pool.shutdown()

    def _evaluate(
        self, pool: ProcessPoolExecutor | None, workers: int, batch: list[tuple[int, str]]
    ) -> asyncio.Future[list[bytes]]:
        """Start evaluating a batch: split across the pool, or in a thread without one."""
        serials = [serial for _, serial in batch]
        loop = asyncio.get_running_loop()
        if pool is None:
            return asyncio.ensure_future(asyncio.to_thread(evaluate_serials, self._key, serials))
        step = -(-len(serials) // workers)
        parts = [
            loop.run_in_executor(pool, evaluate_serials, self._key, serials[i : i + step])
            for i in range(0, len(serials), step)
        ]

        async def joined() -> list[bytes]:
            return [output for part in await asyncio.gather(*parts) for output in part]

        return asyncio.ensure_future(joined())

    async def _publish(self) -> int | None:
        items = sorted({int.from_bytes(p, "big") for p in await self._store.get_prefixes()})
        digest = hashlib.sha256(b"".join(i.to_bytes(8, "big") for i in items)).digest()
        last = await self._store.get_last_document()
        if last is not None and last[2] == digest:
            return None
        if last is None:
            builder = IndexBuilder(self._country)
            for item in items:
                builder.add(item)
        else:
            version, base_version, _digest, base_items = last
            builder = IndexBuilder.restore(
                self._country,
                version=version,
                base_version=base_version,
                base_items=SortedItems.from_bytes(base_items, "base items"),
                items=items,
            )
        data = builder.publish()
        full = builder.base_version == builder.version
        await self._store.add_document(
            builder.version,
            builder.base_version or builder.version,
            data,
            self._clock.now(),
            digest,
            builder.base_items.to_bytes() if full else None,
        )
        return builder.version
