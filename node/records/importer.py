"""CSV import: streams a file, validates every row, stores good rows in batches.

Each batch is one transaction with its own audit entry, so a crash loses at
most the batch in flight, and re-running the same import stores nothing twice:
every imported row carries a dedupe key, `ext:<external_id>` when the row has
an external id, else `row:<hash>` over the canonical serial, make, type,
status, event date, reporting agency and case reference.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import ValidationError
from node.records.csvio import CsvRow, RecordCsvReader
from node.records.model import ImportReport, ImportRowError, NewRecord, RecordInput
from node.records.service import RecordsService, parse_date
from node.store.audit import AuditStore
from node.store.records import RecordsStore

BATCH_ROWS = 5000
_YIELD_EVERY = 100
Progress = Callable[[int], None]


def dedupe_key(new: NewRecord) -> str:
    """The import identity of a record (see the module docstring)."""
    if new.external_id:
        return f"ext:{new.external_id}"
    parts = (
        new.serial_canonical,
        new.make,
        new.firearm_type,
        new.status.value,
        new.event_date.isoformat() if new.event_date else "",
        new.reporting_agency,
        new.case_reference,
    )
    return "row:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _entry(row: CsvRow) -> RecordInput:
    values: dict[str, Any] = dict(row.values)
    values["event_date"] = parse_date(values.get("event_date", ""), "event_date")
    values["recovered_on"] = parse_date(values.get("recovered_on", ""), "recovered_on")
    return RecordInput(**values)  # absent optional columns take their defaults


class ImportService:
    """Imports records from CSV files."""

    def __init__(
        self, records: RecordsService, store: RecordsStore, audit: AuditStore, clock: Clock
    ) -> None:
        self._records = records
        self._store = store
        self._audit = audit
        self._clock = clock

    async def import_csv(
        self,
        path: Path,
        actor: str,
        progress: Progress | None = None,
        batch_rows: int = BATCH_ROWS,
        source: str | None = None,
    ) -> ImportReport:
        """Import `path`; bad rows are reported, good rows stored. CsvFormatError if unreadable.

        Args:
            path: the CSV file.
            actor: who imports (for the audit log).
            progress: called with the bytes read so far, after each batch.
            batch_rows: rows per transaction.
            source: the file name to record in the audit log (defaults to `path`'s name).
        """
        reader = RecordCsvReader(path)
        report = ImportReport()
        name = source or path.name
        batch: list[tuple[NewRecord, str | None]] = []
        # One batch is written while the next is parsed: SQLite works in its own
        # thread, so reading and writing overlap on two cores. One write at a time.
        in_flight: asyncio.Task[None] | None = None
        try:
            for row in reader:
                report.rows += 1
                new = self._validate(row, report)
                if new is not None:
                    batch.append((new, dedupe_key(new)))
                if len(batch) >= batch_rows:
                    if in_flight:
                        await in_flight
                    in_flight = asyncio.create_task(self._store_batch(batch, report, actor, name))
                    batch = []
                    if progress:
                        progress(reader.bytes_read)
                if report.rows % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the batch in flight take its next step
            if in_flight:
                await in_flight
            in_flight = None
            if batch:
                await self._store_batch(batch, report, actor, name)
        finally:
            if in_flight and not in_flight.done():
                in_flight.cancel()
            reader.close()
        if progress:
            progress(reader.bytes_read)
        await self._audit.add_entry(
            self._clock.now(),
            AuditEvent(
                actor,
                "records.import",
                name,
                {
                    "rows": report.rows,
                    "created": report.created,
                    "duplicates": report.duplicates,
                    "rejected": report.rejected,
                },
            ),
        )
        return report

    def _validate(self, row: CsvRow, report: ImportReport) -> NewRecord | None:
        if row.fault:
            report.reject(ImportRowError(row.line, "", row.fault))
            return None
        try:
            return self._records.normalise(_entry(row))
        except ValidationError as e:
            column = e.field or ""
            reason = str(e).removeprefix(f"{column}: ")
            report.reject(ImportRowError(row.line, column, reason))
            return None

    async def _store_batch(
        self, batch: list[tuple[NewRecord, str | None]], report: ImportReport, actor: str, name: str
    ) -> None:
        created = await self._store.add_many(
            batch,
            self._clock.now(),
            lambda n: AuditEvent(
                actor, "records.import_batch", name, {"rows": len(batch), "created": n}
            ),
        )
        report.created += created
        report.duplicates += len(batch) - created
