"""What the records service needs from storage: `typing.Protocol`s that `node.store`
implements (`node.store.records.RecordsStore`; `BatchStorage` also
`node.store.custody.CustodyStore`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from node.auditing import AuditEvent
from node.records.import_parse import Counts
from node.records.model import FirearmRecord, NewRecord, Page, RecordFilter

#: Builds a change's audit entry from the record as stored (its id, its last state).
AuditFor = Callable[[FirearmRecord], AuditEvent]


class BatchStorage(Protocol):
    """Where a CSV import stores its batches (`node.records.importer.ImportService`)."""

    async def add_many(
        self,
        batch: Sequence[tuple[Any, ...]],
        at: datetime,
        audit: Callable[[int], AuditEvent],
        counts: Counts,
    ) -> int:
        """Insert rows as the import's `RowKind` parsed them (each ending with its dedupe key),
        skipping taken keys, with the batch's audit entry `audit(created)`; how many were new.

        `counts` are what the rows add to the store's aggregates (as the kind counted
        them, `RowKind.count`), added if every row is new; otherwise the store counts
        the rows it added itself."""
        ...


class RecordStorage(BatchStorage, Protocol):
    """This node's firearm records; every change is stored with its audit entry."""

    async def add_record(
        self, new: NewRecord, at: datetime, audit: AuditFor, dedupe_key: str | None = None
    ) -> FirearmRecord:
        """Insert one record and its audit entry in one transaction."""
        ...

    async def get_record(self, record_id: int) -> FirearmRecord:
        """The record with this id; NotFoundError if there is none."""
        ...

    async def set_record(
        self, record_id: int, expected_version: int, new: NewRecord, at: datetime, audit: AuditFor
    ) -> FirearmRecord:
        """Replace a record's fields if it is still at `expected_version`."""
        ...

    async def set_recovered(
        self, record_id: int, expected_version: int, on: date, at: datetime, audit: AuditFor
    ) -> FirearmRecord:
        """Mark a record recovered (closing the case) as of `on`."""
        ...

    async def delete_record(
        self, record_id: int, expected_version: int, at: datetime, audit: AuditFor
    ) -> FirearmRecord:
        """Delete a record; its last state goes into the audit entry via `audit`."""
        ...

    async def search(self, f: RecordFilter, offset: int, limit: int) -> Page:
        """One page of matching records, newest id first."""
        ...

    def iter_records(self, f: RecordFilter, batch: int = 2000) -> AsyncIterator[FirearmRecord]:
        """Every matching record in id order, fetched in batches (bounded memory)."""
        ...

    async def count(self) -> int:
        """How many records this node holds."""
        ...
