"""The firearm records store: one named transaction per public method."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import fields
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.auditing import AuditEvent
from node.errors import ConflictError, NotFoundError
from node.records.model import FirearmRecord, NewRecord, Page, RecordFilter, SerialMatch, Status
from node.store.audit import append_entry
from node.store.database import Database
from node.store.dialect import insert_many_ignoring_conflicts, like_escape
from node.store.tables import RecordRow, table

_t = table(RecordRow)
_c = _t.c
AuditFor = Callable[[FirearmRecord], AuditEvent]


def model_key(model: str) -> str:
    """The case- and space-insensitive form of a model name used for filtering."""
    return " ".join(model.upper().split())


_NEW_FIELDS = tuple(f.name for f in fields(NewRecord) if f.name != "status")
#: Column order of the rows `add_many` builds: the record's fields, then derived ones.
_BULK_COLUMNS = (*_NEW_FIELDS, "status", "model_key", "dedupe_key")
_new_fields = attrgetter(*_NEW_FIELDS)


def _values(new: NewRecord) -> dict[str, Any]:
    values = {name: getattr(new, name) for name in _NEW_FIELDS}
    values["status"] = new.status.value
    values["model_key"] = model_key(new.model)
    return values


def _record(row: Row[Any]) -> FirearmRecord:
    return FirearmRecord(
        id=row.id,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        serial_number=row.serial_number,
        serial_canonical=row.serial_canonical,
        make=row.make,
        make_known=row.make_known,
        model=row.model,
        firearm_type=row.firearm_type,
        firearm_type_known=row.firearm_type_known,
        calibre=row.calibre,
        calibre_known=row.calibre_known,
        status=Status(row.status),
        country_of_manufacture=row.country_of_manufacture,
        event_date=row.event_date,
        event_place=row.event_place,
        reporting_agency=row.reporting_agency,
        case_reference=row.case_reference,
        contact=row.contact,
        markings=row.markings,
        notes=row.notes,
        external_id=row.external_id,
        recovered_on=row.recovered_on,
    )


def _conditions(f: RecordFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.serial:
        if f.serial_match is SerialMatch.EXACT:
            conds.append(_c.serial_canonical == f.serial)
        elif f.serial_match is SerialMatch.PREFIX:
            # A range, not LIKE: SQLite's LIKE is case-insensitive and skips the index.
            conds += [_c.serial_canonical >= f.serial, _c.serial_canonical < f.serial + "\uffff"]
        else:
            conds.append(_c.serial_canonical.like(f"%{like_escape(f.serial)}%", escape="\\"))
    if f.make:
        conds.append(_c.make == f.make)
    if f.model:
        key = model_key(f.model)
        conds += [_c.model_key >= key, _c.model_key < key + "\uffff"]
    if f.firearm_type:
        conds.append(_c.firearm_type == f.firearm_type)
    if f.calibre:
        conds.append(_c.calibre == f.calibre)
    if f.status:
        conds.append(_c.status == f.status.value)
    if f.country:
        conds.append(_c.country_of_manufacture == f.country)
    if f.date_from:
        conds.append(_c.event_date >= f.date_from)
    if f.date_to:
        conds.append(_c.event_date <= f.date_to)
    return conds


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
            result = await conn.execute(insert(_t).values(**values).returning(*_t.c))
            record = _record(result.one())
            await append_entry(conn, at, audit(record))
        return record

    async def get_record(self, record_id: int) -> FirearmRecord:
        """The record with this id; NotFoundError if there is none."""
        async with self._db.read() as conn:
            return await self._get(conn, record_id)

    async def _get(self, conn: AsyncConnection, record_id: int) -> FirearmRecord:
        row = (await conn.execute(select(_t).where(_c.id == record_id))).first()
        if row is None:
            raise NotFoundError(f"no record with id {record_id}")
        return _record(row)

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
            result = await conn.execute(
                update(_t)
                .where(_c.id == record_id, _c.version == expected_version)
                .values(**values, version=expected_version + 1, updated_at=at)
                .returning(*_t.c)
            )
            row = result.first()
            if row is None:  # changed between our read and our write
                raise ConflictError(f"record {record_id} was changed by someone else; reload")
            record = _record(row)
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
            deleted = await conn.execute(
                delete(_t).where(_c.id == record_id, _c.version == expected_version)
            )
            if deleted.rowcount != 1:
                raise ConflictError(f"record {record_id} was changed by someone else; reload")
            await append_entry(conn, at, audit(current))
        return current

    async def add_many(
        self,
        batch: Sequence[tuple[NewRecord, str | None]],
        at: datetime,
        audit: Callable[[int], AuditEvent],
    ) -> int:
        """Insert a batch of (record, dedupe key) skipping taken keys; return how many were new.

        `audit(created)` gives the batch's audit entry, written in the same transaction.
        """
        rows = [
            (*_new_fields(new), new.status.value, model_key(new.model), key) for new, key in batch
        ]
        constants = {"version": 1, "created_at": at, "updated_at": at}
        async with self._db.write() as conn:
            created = await insert_many_ignoring_conflicts(
                conn, _t, "dedupe_key", _BULK_COLUMNS, rows, constants
            )
            await append_entry(conn, at, audit(created))
        return created

    async def search(self, f: RecordFilter, offset: int, limit: int) -> Page:
        """One page of matching records, newest id first."""
        query = (
            select(_t).where(*_conditions(f)).order_by(_c.id.desc()).offset(offset).limit(limit + 1)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        records = [_record(row) for row in rows[:limit]]
        return Page(records=records, offset=offset, limit=limit, has_more=len(rows) > limit)

    async def iter_records(
        self, f: RecordFilter, batch: int = 2000
    ) -> AsyncIterator[FirearmRecord]:
        """Every matching record in id order, fetched in batches (bounded memory)."""
        after = 0
        conds = _conditions(f)
        while True:
            query = select(_t).where(_c.id > after, *conds).order_by(_c.id).limit(batch)
            async with self._db.read() as conn:
                records = [_record(row) for row in await conn.execute(query)]
            for record in records:
                yield record
            if len(records) < batch:
                return
            after = records[-1].id

    async def count(self) -> int:
        """How many records this node holds."""
        async with self._db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(_t))).scalar_one())
