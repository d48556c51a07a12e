"""The custody events store: one named transaction per public method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from node.auditing import AuditEvent
from node.records.import_parse import Counts
from node.store.audit import append_entry
from node.store.database import Database
from node.store.dialect import insert_many_ignoring_conflicts
from node.store.tables import CustodyEventRow, table
from node.trace.model import STORED_FIELDS, CustodyEvent, EventKind

_t = table(CustodyEventRow)
_c = _t.c
_EVENT_COLUMNS = tuple(_c[f.name] for f in fields(CustodyEvent))
_KIND_AT = [f.name for f in fields(CustodyEvent)].index("event")


def _event(row: Sequence[Any]) -> CustodyEvent:
    values = list(row)
    values[_KIND_AT] = EventKind(values[_KIND_AT])
    return CustodyEvent(*values)


class CustodyStore:
    """Stores this node's custody events (`node.trace.storage.CustodyStorage`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_many(
        self,
        batch: Sequence[tuple[Any, ...]],
        at: datetime,
        audit: Callable[[int], AuditEvent],
        counts: Counts,
    ) -> int:
        """Insert rows of `STORED_FIELDS`, skipping digests already stored, with the batch's
        audit entry `audit(created)`, in one transaction; how many were new. (Custody
        events keep no aggregates: their row kind counts nothing.)"""
        async with self._db.write() as conn:
            created = await insert_many_ignoring_conflicts(
                conn, _t, "row_digest", STORED_FIELDS, list(batch), {"imported_at": at}
            )
            await append_entry(conn, at, audit(created))
        return created

    async def get_events(
        self, serial_canonical: str, make_key: str | None, limit: int | None = None
    ) -> list[CustodyEvent]:
        """The events of a canonical serial (and make key, if given) by event date, then id;
        at most `limit` of them (None: all). Found through the (serial, make key) index."""
        params: dict[str, Any] = {"serial": serial_canonical}
        if make_key is not None:
            params["make_key"] = make_key
        if limit is not None:
            params["limit"] = limit

        def query() -> Select[Any]:
            q = select(*_EVENT_COLUMNS).where(_c.serial_canonical == bindparam("serial"))
            if make_key is not None:
                q = q.where(_c.make_key == bindparam("make_key"))
            q = q.order_by(_c.event_date, _c.id)
            return q.limit(bindparam("limit")) if limit is not None else q

        shape = ("custody.events", *params)
        return [_event(row) for row in await self._db.fetch(shape, query, params)]

    async def count(self) -> int:
        """How many custody events this node holds."""
        async with self._db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(_t))).scalar_one())
