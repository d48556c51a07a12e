"""CSV import: streams a file, validates every row, stores good rows in batches.

One importer serves every kind of file (records, custody events): the kind
(`node.records.import_parse.RowKind`) says what the columns are and how a row
becomes what its store inserts. Each batch is one transaction with its own
audit entry, so a crash loses at most the batch in flight, and re-running the
same import stores nothing twice (each row carries its dedupe key). Files of
`WORKER_MIN_BYTES` or more are parsed in a worker process while this process
writes (`node.records.import_parse`); smaller ones are parsed here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing, suppress
from pathlib import Path

import msgspec

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import CsvFormatError, ImportWorkerError, StorageFullError
from node.records.import_parse import ParsedBatch, RowKind, Unreadable, parse_batches
from node.records.model import ImportReport
from node.records.reference import ReferenceTable
from node.records.storage import BatchStorage

#: Rows per transaction: SQLite's cost per row falls as batches grow (fewer
#: index pages rewritten per row, measured: 20,000 rows 24k rows/s, 50,000 rows
#: 31k rows/s into a million-row node), memory rises (~70 MB a batch).
BATCH_ROWS = 50_000
WORKER_MIN_BYTES = 16 << 20
Progress = Callable[[int], None]


class ImportService:
    """Imports one kind of CSV file (`kind`) into its store.

    Its audit entries are `<action>.import` (one per import) and
    `<action>.import_batch` (one per stored batch, in the batch's transaction).
    """

    def __init__(
        self,
        kind: RowKind,
        store: BatchStorage,
        audit: AuditLog,
        reference: ReferenceTable,
        clock: Clock,
        action: str,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self._action = action
        self._store = store
        self._audit = audit
        self._reference = reference
        self._clock = clock
        self._changed = changed  # told after each stored batch (the lookup index follows)

    async def import_csv(
        self,
        path: Path,
        actor: str,
        progress: Progress | None = None,
        batch_rows: int = BATCH_ROWS,
        source: str | None = None,
        worker_min_bytes: int = WORKER_MIN_BYTES,
    ) -> ImportReport:
        """Import `path`; bad rows are reported, good rows stored. CsvFormatError if unreadable.

        A full disk stops the import with a StorageFullError that says how many
        rows were imported: the batches stored before it are kept, and running
        the same import again stores the rest (nothing twice).

        Args:
            path: the CSV file.
            actor: who imports (for the audit log).
            progress: called with the bytes read so far, after each batch.
            batch_rows: rows per transaction.
            source: the file name to record in the audit log (defaults to `path`'s name).
            worker_min_bytes: files at least this large are parsed in a worker process.
        """
        report = ImportReport()
        name = source or path.name
        size = path.stat().st_size if path.exists() else 0
        batches = (
            self._worker_batches(path, batch_rows)
            if size >= worker_min_bytes
            else self._local_batches(path, batch_rows)
        )
        done = 0  # rows of the batches stored so far
        try:
            async with aclosing(batches):  # stops the worker if storing fails
                async for batch in batches:
                    report.rows += batch.rows
                    for error in batch.errors:
                        report.reject(error)
                    if batch.records:
                        await self._store_batch(batch, report, actor, name)
                    done = report.rows
                    if progress:
                        progress(batch.bytes_read)
            await self._audit_import(report, actor, name)
        except StorageFullError as e:
            raise e.advising(
                f"the first {done:,} rows of {name} were imported ({report.created:,} new "
                f"{self.kind.noun}), the rest were not; free some space and run the same "
                "import again (rows already stored are not stored twice)"
            ) from e
        return report

    async def _audit_import(self, report: ImportReport, actor: str, name: str) -> None:
        details = {
            "rows": report.rows,
            "created": report.created,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
        }
        await self._audit.add_entry(
            self._clock.now(), AuditEvent(actor, f"{self._action}.import", name, details)
        )

    async def _store_batch(
        self, batch: ParsedBatch, report: ImportReport, actor: str, name: str
    ) -> None:
        def audit(created: int) -> AuditEvent:
            details = {"rows": batch.rows, "valid": len(batch.records), "created": created}
            return AuditEvent(actor, f"{self._action}.import_batch", name, details)

        at = self._clock.now()
        created = await self._store.add_many(batch.records, at, audit, batch.counts)
        if created:
            self._changed()
        report.created += created
        report.duplicates += len(batch.records) - created

    async def _local_batches(self, path: Path, batch_rows: int) -> AsyncGenerator[ParsedBatch]:
        reader = self.kind.reader(path)
        try:
            today = self._clock.now().date()
            for batch in parse_batches(reader, self.kind, self._reference, today, batch_rows):
                yield batch
        finally:
            reader.close()

    async def _worker_batches(self, path: Path, batch_rows: int) -> AsyncGenerator[ParsedBatch]:
        today = self._clock.now().date().isoformat()
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "node.records.import_parse",
            self.kind.address,
            str(path),
            today,
            str(batch_rows),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        assert worker.stdout is not None and worker.stderr is not None
        decoder = self.kind.decoder
        try:
            while True:
                try:
                    size = int.from_bytes(await worker.stdout.readexactly(4), "big")
                    message = decoder.decode(await worker.stdout.readexactly(size))
                except asyncio.IncompleteReadError:
                    stderr = (await worker.stderr.read()).decode(errors="replace").strip()
                    last = stderr.splitlines()[-1] if stderr else f"exit code {await worker.wait()}"
                    raise ImportWorkerError(f"the import worker failed: {last}") from None
                except msgspec.DecodeError as e:
                    raise ImportWorkerError(f"the import worker sent a bad message: {e}") from e
                if isinstance(message, ParsedBatch):
                    yield message
                elif isinstance(message, Unreadable):
                    raise CsvFormatError(message.message)
                else:
                    return
        finally:
            if worker.returncode is None:
                with suppress(ProcessLookupError):
                    worker.kill()
            await worker.wait()
