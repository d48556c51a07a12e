"""This node's side of private lookups: its records' OPRF outputs and its published index.

`refresh` brings the index in line with the records: it drops the outputs of
recovered records (deleted records drop theirs by cascade; an edited record
loses its output in the same transaction), evaluates the PRF of every active
record that lacks one — in worker processes (`OprfWorkers`), one per core up
to 8, when there are at least `batch_size` to do; in a thread otherwise —,
storing the outputs `write_size` at a time while the next are evaluated, and,
if the set of items changed since the last published version,
publishes the next one (a delta on the current full version, or a new full
version when the delta has grown; `IndexBuilder`, fed the stored items
already sorted and distinct).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from node.clock import Clock
from node.lookup.index_builder import IndexBuilder
from node.lookup.membership import SortedItems
from node.lookup.model import Hit
from node.lookup.storage import LookupStorage

if TYPE_CHECKING:
    from node.lookup.oprf_workers import OprfWorkers

BATCH = 10_000
WRITE_SIZE = 100_000
MAX_WORKERS = 8
Progress = Callable[[int, int], None]


class LookupIndex:
    """Keeps this node's OPRF outputs and membership index up to date."""

    #: Records read, evaluated and written at a time; a job smaller than one
    #: batch is evaluated in a thread, a larger one by `workers` processes.
    batch_size = BATCH
    #: Worker processes for a large job (1: evaluate in a thread).
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    #: Outputs stored per transaction (see `_OutputWriter`).
    write_size = WRITE_SIZE

    def __init__(self, store: LookupStorage, country: str, clock: Clock) -> None:
        self._store = store
        self._country = country
        self._clock = clock
        self._lock = asyncio.Lock()

    async def refresh(self, oprf_key: bytes, progress: Progress | None = None) -> int | None:
        """Update outputs under `oprf_key` and publish a new version if anything changed.

        Returns the new version, or None when nothing changed.
        """
        async with self._lock:
            await self._store.delete_stale_outputs()
            await self._evaluate_missing(oprf_key, progress)
            return await self._publish()

    async def hits(self, limit: int = 100, offset: int = 0) -> list[Hit]:
        """Foreign lookups that matched our records, newest first."""
        return await self._store.get_hits(limit, offset)

    async def _evaluate_missing(self, oprf_key: bytes, progress: Progress | None) -> None:
        size = self.batch_size
        batch = await self._store.get_unindexed(size)
        if not batch:
            return
        workers = None
        if len(batch) == size and self.workers > 1:  # many to do: use every core
            from node.lookup.oprf_workers import OprfWorkers  # as `_evaluate` says

            workers = await OprfWorkers.start(oprf_key, self.workers)
        writer = _OutputWriter(self._store, self.write_size, progress)
        pending: asyncio.Task[list[bytes]] | None = None
        upcoming: asyncio.Task[list[bytes]] | None = None
        try:
            # The next batch is evaluated while this one's outputs are handed to the writer.
            pending = _evaluate(workers, oprf_key, batch)
            while pending is not None:
                following = await self._store.get_unindexed(size, after=batch[-1][0])
                upcoming = _evaluate(workers, oprf_key, following) if following else None
                outputs = await pending
                await writer.add(
                    [(rid, serial, out) for (rid, serial), out in zip(batch, outputs, strict=True)]
                )
                batch, pending, upcoming = following, upcoming, None
            await writer.finish()
        finally:
            unfinished = [task for task in (pending, upcoming) if task is not None]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            await writer.settle()
            if workers is not None:
                await workers.close()

    async def _publish(self) -> int | None:
        # The items come distinct and in order: joined, their big-endian bytes, with no
        # million integers to sort (`from_bytes` refuses any other order).
        stored = b"".join(await self._store.get_items())
        items = SortedItems.from_bytes(stored, "stored")
        digest = hashlib.sha256(stored).digest()
        last = await self._store.get_last_document()
        if last is not None and last[2] == digest:
            return None
        if last is None:
            builder = IndexBuilder(self._country)
            builder.add_all(items)
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


def _evaluate(
    workers: OprfWorkers | None, key: bytes, batch: list[tuple[int, str]]
) -> asyncio.Task[list[bytes]]:
    """Start evaluating a batch: split across the workers, or in a thread without them."""
    # Imported here: libsodium is loaded by the node that builds its index, not by every
    # command that opens the node (`iarms-node hits` reads the hits through this class).
    from node.lookup.evaluate_worker import evaluate_serials

    serials = [serial for _, serial in batch]
    if workers is None:
        return asyncio.create_task(asyncio.to_thread(evaluate_serials, key, serials))
    return asyncio.create_task(workers.evaluate(serials))


class _OutputWriter:
    """Stores evaluated outputs in the background, `size` at a time, and reports progress.

    Each write is one transaction, started once `size` outputs are waiting and
    run while the next batches are evaluated; the next write waits for it (one
    at a time). Few, large transactions matter on SQLite: the outputs' prefixes
    are random, so every transaction rewrites most pages of their index (and a
    checkpoint copies them again); a batch at a time doubled the CPU time of
    storing a million outputs. Outputs not yet stored when a refresh stops are
    evaluated again by the next one.
    """

    def __init__(self, store: LookupStorage, size: int, progress: Progress | None) -> None:
        self._store, self._size, self._progress = store, size, progress
        self._waiting: list[tuple[int, str, bytes]] = []
        self._writing: asyncio.Task[None] | None = None
        self._stored = 0

    async def add(self, outputs: list[tuple[int, str, bytes]]) -> None:
        """Queue outputs; start a write (after the one running) once `size` are waiting."""
        self._waiting += outputs
        if len(self._waiting) >= self._size:
            await self._start()

    async def finish(self) -> None:
        """Store whatever is waiting and wait until every write is done."""
        if self._waiting:
            await self._start()
        await self._wait()

    async def settle(self) -> None:
        """Let a write still running end, ignoring how (for a refresh that stops early,
        which raises its own error): what it stores need not be evaluated again."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)

    async def _start(self) -> None:
        await self._wait()
        outputs, self._waiting = self._waiting, []
        self._writing = asyncio.create_task(self._write(outputs))

    async def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write(self, outputs: list[tuple[int, str, bytes]]) -> None:
        await self._store.add_outputs(outputs)
        self._stored += len(outputs)
        if self._progress:
            self._progress(self._stored, 0)
