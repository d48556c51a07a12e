"""The firearm records store: one named transaction per public method."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.auditing import AuditEvent
from node.errors import ConflictError, NotFoundError
from node.records.import_parse import Counts
from node.records.model import (
    NEW_RECORD_FIELDS,
    FirearmRecord,
    NewRecord,
    Page,
    RecordFilter,
    SerialMatch,
    Status,
    model_key,
)
from node.records.storage import AuditFor
from node.store.audit import append_entry
from node.store.database import Database
from node.store.dialect import insert_many_ignoring_conflicts, like_escape, lock_for_append
from node.store.stats import add_record_counts, count_records_in
from node.store.tables import RecordRow, table

_t = table(RecordRow)
_c = _t.c


_NEW_FIELDS = tuple(f.name for f in fields(NewRecord) if f.name != "status")
#: Column order of the rows `add_many` inserts (`node.records.record_rows.record_row`): a
#: `new_record_row`, its model key, its dedupe key.
_BULK_COLUMNS = (*NEW_RECORD_FIELDS, "model_key", "dedupe_key")


def _values(new: NewRecord) -> dict[str, Any]:
    values = {name: getattr(new, name) for name in _NEW_FIELDS}
    values["status"] = new.status.value
    values["model_key"] = model_key(new.model)
    return values


_RECORD_FIELDS = tuple(f.name for f in fields(FirearmRecord))
#: The columns every record query selects, in `FirearmRecord` field order.
RECORD_COLUMNS = tuple(_c[name] for name in _RECORD_FIELDS)
_STATUS_AT = _RECORD_FIELDS.index("status")


def record_from_row(row: Sequence[Any]) -> FirearmRecord:
    values = list(row)
    values[_STATUS_AT] = Status(values[_STATUS_AT])
    return FirearmRecord(*values)


def _conditions(f: RecordFilter) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """The WHERE conditions of a filter, with bind parameters, and the parameters' values.

    Every value is a named bind parameter, so that filters with the same fields
    compile to the same SQL (see `Database.fetch`).
    """
    conds: list[ColumnElement[bool]] = []
    params: dict[str, Any] = {}

    def where(name: str, value: Any, make: Any) -> None:
        params[name] = value
        conds.append(make(bindparam(name)))

    if f.serial:
        if f.serial_match is SerialMatch.EXACT:
            where("serial", f.serial, lambda p: _c.serial_canonical == p)
        elif f.serial_match is SerialMatch.PREFIX:
            # A range, not LIKE: SQLite's LIKE is case-insensitive and skips the index.
            where("serial_from", f.serial, lambda p: _c.serial_canonical >= p)
            where("serial_to", f.serial + "\uffff", lambda p: _c.serial_canonical < p)
        else:
            where(
                "serial_like",
                f"%{like_escape(f.serial)}%",
                lambda p: _c.serial_canonical.like(p, escape="\\"),
            )
    if f.model:
        key = model_key(f.model)
        where("model_from", key, lambda p: _c.model_key >= p)
        where("model_to", key + "\uffff", lambda p: _c.model_key < p)
    for name, column, value in (
        ("make", _c.make, f.make),
        ("firearm_type", _c.firearm_type, f.firearm_type),
        ("calibre", _c.calibre, f.calibre),
        ("status", _c.status, f.status.value if f.status else None),
        ("country", _c.country_of_manufacture, f.country),
    ):
        if value:
            where(name, value, column.__eq__)
    if f.date_from:
        where("date_from", f.date_from, lambda p: _c.event_date >= p)
    if f.date_to:
        where("date_to", f.date_to, lambda p: _c.event_date <= p)
    return conds, params


class RecordsStore:
    """Stores this node's firearm records; every change carries its audit entry."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_record(
        self, new: NewRecord, at: datetime, audit: AuditFor, dedupe_key: str | None = None
    ) -> FirearmRecord:
        """Insert one record and its audit entry in one transaction."""
        values = _values(new) | {"version": 1, "created_at": at, "updated_at": at}
        values["dedupe_key"] = dedupe_key
        async with self._db.write() as conn:
            if dedupe_key is not None:
                taken = await conn.execute(select(_c.id).where(_c.dedupe_key == dedupe_key))
                if (existing := taken.scalar()) is not None:
                    raise ConflictError(
                        f"external id {new.external_id!r} is already record {existing}"
                    )
            result = await conn.execute(insert(_t).values(**values).returning(*RECORD_COLUMNS))
            record = record_from_row(result.one())
            await count_records_in(conn, _c.id == record.id, 1)
            await append_entry(conn, at, audit(record))
        return record

    async def get_record(self, record_id: int) -> FirearmRecord:
        """The record with this id; NotFoundError if there is none."""
        async with self._db.read() as conn:
            return await self._get(conn, record_id)

    async def _get(self, conn: AsyncConnection, record_id: int) -> FirearmRecord:
        row = (await conn.execute(select(*RECORD_COLUMNS).where(_c.id == record_id))).first()
        if row is None:
            raise NotFoundError(f"no record with id {record_id}")
        return record_from_row(row)

    async def _change(
        self,
        record_id: int,
        expected_version: int,
        values: dict[str, Any],
        at: datetime,
        audit: AuditFor,
    ) -> FirearmRecord:
        async with self._db.write() as conn:
            current = await self._get(conn, record_id)
            if current.version != expected_version:
                raise ConflictError(
                    f"record {record_id} was changed by someone else (now version "
                    f"{current.version}, you edited version {expected_version}); reload and retry"
                )
            await count_records_in(conn, _c.id == record_id, -1)
            result = await conn.execute(
                update(_t)
                .where(_c.id == record_id, _c.version == expected_version)
                .values(**values, version=expected_version + 1, updated_at=at)
                .returning(*RECORD_COLUMNS)
            )
            row = result.first()
            if row is None:  # changed between our read and our write
                raise ConflictError(f"record {record_id} was changed by someone else; reload")
            record = record_from_row(row)
            await count_records_in(conn, _c.id == record_id, 1)
            await append_entry(conn, at, audit(record))
        return record

    async def set_record(
        self, record_id: int, expected_version: int, new: NewRecord, at: datetime, audit: AuditFor
    ) -> FirearmRecord:
        """Replace a record's fields if it is still at `expected_version`."""
        values = _values(new)
        del values["external_id"]  # the import identity never changes
        return await self._change(record_id, expected_version, values, at, audit)

    async def set_recovered(
        self, record_id: int, expected_version: int, on: date, at: datetime, audit: AuditFor
    ) -> FirearmRecord:
        """Mark a record recovered (closing the case) as of `on`."""
        values = {"status": Status.RECOVERED.value, "recovered_on": on}
        return await self._change(record_id, expected_version, values, at, audit)

    async def delete_record(
        self, record_id: int, expected_version: int, at: datetime, audit: AuditFor
    ) -> FirearmRecord:
        """Delete a record; its last state goes into the audit entry via `audit`."""
        async with self._db.write() as conn:
            current = await self._get(conn, record_id)
            if current.version != expected_version:
                raise ConflictError(
                    f"record {record_id} was changed by someone else (now version "
                    f"{current.version}); reload and retry"
                )
            await count_records_in(conn, _c.id == record_id, -1)
            deleted = await conn.execute(
                delete(_t).where(_c.id == record_id, _c.version == expected_version)
            )
            if deleted.rowcount != 1:
                raise ConflictError(f"record {record_id} was changed by someone else; reload")
            await append_entry(conn, at, audit(current))
        return current

    async def add_many(
        self,
        batch: Sequence[tuple[Any, ...]],
        at: datetime,
        audit: Callable[[int], AuditEvent],
        counts: Counts,
    ) -> int:
        """Insert `new_record_row`s, each followed by its model key and its dedupe key,
        skipping taken keys.

        Returns how many were new.

        `audit(created)` gives the batch's audit entry, written in the same transaction.
        `counts`: what the rows add to `record_counts` (`record_rows.count_records`),
        added if all are new; else the new rows are counted from the table.
        """
        rows = list(batch)
        constants = {"version": 1, "created_at": at, "updated_at": at}
        async with self._db.write() as conn:
            await lock_for_append(conn, _t)  # the new rows are those past the highest id
            before = (await conn.execute(select(func.coalesce(func.max(_c.id), 0)))).scalar_one()
            created = await insert_many_ignoring_conflicts(
                conn, _t, "dedupe_key", _BULK_COLUMNS, rows, constants
            )
            if created == len(rows):  # every row is new: they add what they were counted
                await add_record_counts(conn, counts, at)
            elif created:  # some were there already: count those past the highest id
                await count_records_in(conn, _c.id > before, 1)
            await append_entry(conn, at, audit(created))
        return created

    async def search(self, f: RecordFilter, offset: int, limit: int) -> Page:
        """One page of matching records, newest id first."""
        conds, params = _conditions(f)

        def query() -> Select[Any]:
            return (
                select(*RECORD_COLUMNS)
                .where(*conds)
                .order_by(_c.id.desc())
                .offset(bindparam("offset"))
                .limit(bindparam("limit"))
            )

        shape = ("records.search", f.serial_match, *params)
        rows = await self._db.fetch(
            shape, query, params | {"offset": offset, "limit": limit + 1}, scan=True
        )
        records = [record_from_row(row) for row in rows[:limit]]
        return Page(records=records, offset=offset, limit=limit, has_more=len(rows) > limit)

    async def iter_records(
        self, f: RecordFilter, batch: int = 2000
    ) -> AsyncIterator[FirearmRecord]:
        """Every matching record in id order, fetched in batches (bounded memory)."""
        conds, params = _conditions(f)

        def query() -> Select[Any]:
            return (
                select(*RECORD_COLUMNS)
                .where(_c.id > bindparam("after"), *conds)
                .order_by(_c.id)
                .limit(bindparam("limit"))
            )

        shape = ("records.iter", f.serial_match, *params)
        after = 0
        while True:
            rows = await self._db.fetch(
                shape, query, params | {"after": after, "limit": batch}, scan=True
            )
            for row in rows:
                yield record_from_row(row)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    async def count(self) -> int:
        """How many records this node holds."""
        async with self._db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(_t))).scalar_one())
