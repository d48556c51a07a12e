"""The traces store: traces and their signed items, read and written in one transaction
(`*_in`, used by the unit of work of trace handlers) or read on their own (`TraceStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import ClauseElement, bindparam, func, insert, select, update

from node.store.database import Database, Transaction
from node.store.dialect import insert_ignoring
from node.store.tables import TraceItemRow, TraceReminderRow, TraceRow, table
from node.trace.model import HopReminders, ItemKind, StoredTrace, TraceItem, TraceStatus

_t = table(TraceRow)
_i = table(TraceItemRow)
_r = table(TraceReminderRow)
_REMINDER_FIELDS = tuple(f.name for f in fields(HopReminders))
_TRACE_COLUMNS = tuple(_t.c[f.name] for f in fields(StoredTrace))
_ITEM_FIELDS = tuple(f.name for f in fields(TraceItem))


def _trace(row: Sequence[Any]) -> StoredTrace:
    values = dict(zip((c.name for c in _TRACE_COLUMNS), row, strict=True))
    values["status"] = TraceStatus(values["status"])
    return StoredTrace(**values)


def _item(row: Sequence[Any]) -> TraceItem:
    values = dict(zip(_ITEM_FIELDS, row, strict=True))
    values["kind"] = ItemKind(values["kind"])
    return TraceItem(**values)


def _get_trace(at: bool) -> ClauseElement:
    q = select(*_TRACE_COLUMNS).where(_t.c.trace_id == bindparam("trace_id"))
    if at:
        return q.where(_t.c.position == bindparam("position"))
    return q.order_by(_t.c.position.desc()).limit(1)


def _params(trace_id: bytes, position: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"trace_id": trace_id}
    if position is not None:
        params["position"] = position
    return params


def _get_items() -> ClauseElement:
    return (
        select(*(_i.c[name] for name in _ITEM_FIELDS))
        .where(_i.c.trace == bindparam("trace"))
        .order_by(_i.c.id)
    )


def _add_trace() -> ClauseElement:
    names = [c.name for c in _TRACE_COLUMNS if c.name != "id"]
    return insert(_t).values({n: bindparam(n) for n in names}).returning(_t.c.id)


def _set_trace() -> ClauseElement:
    return (
        update(_t)
        .where(_t.c.id == bindparam("w_id"))
        .values(
            status=bindparam("status"),
            outcome=bindparam("outcome"),
            next_country=bindparam("next_country"),
            note=bindparam("note"),
        )
    )


def _add_item(dialect: str) -> ClauseElement:
    names = ("trace", *_ITEM_FIELDS, "added_at")
    return insert_ignoring(dialect, _i).values({n: bindparam(n) for n in names}).returning(_i.c.id)


def _get_reminders() -> ClauseElement:
    return (
        select(*(_r.c[name] for name in _REMINDER_FIELDS))
        .where(_r.c.trace == bindparam("trace"))
        .order_by(_r.c.position)
    )


def _reminder_totals() -> ClauseElement:
    return select(_r.c.trace, func.sum(_r.c.count), func.max(_r.c.last_at)).group_by(_r.c.trace)


def _add_reminder(dialect: str) -> ClauseElement:
    names = ("trace", "position", "country", "count", "last_at")
    return insert_ignoring(dialect, _r).values({n: bindparam(n) for n in names})


def _count_reminder() -> ClauseElement:
    return (
        update(_r)
        .where(_r.c.trace == bindparam("w_trace"), _r.c.position == bindparam("w_position"))
        .values(count=_r.c.count + 1, last_at=bindparam("last_at"))
        .returning(_r.c.count)
    )


async def get_trace_in(
    tx: Transaction, trace_id: bytes, position: int | None
) -> StoredTrace | None:
    """The trace at `position` (None: our latest position on it), inside `tx`."""
    at = position is not None
    rows = await tx.run(f"traces.get.{at}", lambda: _get_trace(at), _params(trace_id, position))
    return _trace(rows[0]) if rows else None


async def add_trace_in(tx: Transaction, trace: StoredTrace) -> int:
    """Store a new trace inside `tx`; its id."""
    values = {c.name: getattr(trace, c.name) for c in _TRACE_COLUMNS if c.name != "id"}
    values["status"] = trace.status.value
    [(trace_pk,)] = await tx.run("traces.add", _add_trace, values)
    return int(trace_pk)


async def set_trace_in(
    tx: Transaction,
    trace: int,
    status: TraceStatus,
    outcome: str | None,
    next_country: str | None,
    note: str,
) -> None:
    """Where the trace stands now, inside `tx`."""
    params = {
        "w_id": trace,
        "status": status.value,
        "outcome": outcome,
        "next_country": next_country,
        "note": note,
    }
    await tx.run("traces.set", _set_trace, params)


async def add_item_in(tx: Transaction, trace: int, item: TraceItem, at: datetime) -> bool:
    """Keep a signed item inside `tx`; False if the trace holds it already."""
    values = {name: getattr(item, name) for name in _ITEM_FIELDS}
    values.update(trace=trace, kind=item.kind.value, added_at=at)
    return bool(await tx.run("traces.add_item", lambda: _add_item(tx.dialect), values))


async def get_items_in(tx: Transaction, trace: int) -> list[TraceItem]:
    """The trace's items in the order kept, inside `tx`."""
    return [_item(row) for row in await tx.run("traces.items", _get_items, {"trace": trace})]


async def get_reminders_in(tx: Transaction, trace: int) -> list[HopReminders]:
    """The reminders of each hop of the trace, by position, inside `tx`."""
    rows = await tx.run("traces.reminders", _get_reminders, {"trace": trace})
    return [HopReminders(*row) for row in rows]


async def add_reminder_in(
    tx: Transaction, trace: int, position: int, country: str, at: datetime
) -> int:
    """Count one more reminder of hop `position`, at `at`, inside `tx`; how many now."""
    first = {"trace": trace, "position": position, "country": country, "count": 0, "last_at": at}
    await tx.run("traces.add_reminder", lambda: _add_reminder(tx.dialect), first)
    params = {"w_trace": trace, "w_position": position, "last_at": at}
    [(count,)] = await tx.run("traces.count_reminder", _count_reminder, params)
    return int(count)


class TraceStore:
    """Reads the traces this node keeps (`node.trace.storage.TraceStorage`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_trace(self, trace_id: bytes, position: int | None = None) -> StoredTrace | None:
        """The trace at `position` (None: our latest position on it), or None."""
        at = position is not None
        rows = await self._db.fetch(
            f"traces.get.{at}", lambda: _get_trace(at), _params(trace_id, position)
        )
        return _trace(rows[0]) if rows else None

    async def get_items(self, trace: int) -> list[TraceItem]:
        """The trace's items, in the order they were kept."""
        rows = await self._db.fetch("traces.items", _get_items, {"trace": trace})
        return [_item(row) for row in rows]

    async def list_traces(
        self, status: TraceStatus | None = None, incoming: bool | None = None
    ) -> list[StoredTrace]:
        """Traces, newest first (of `status`, if given; received as a hop, or started
        here, if `incoming` is given)."""
        params = {} if status is None else {"status": status.value}

        def query() -> ClauseElement:
            q = select(*_TRACE_COLUMNS).order_by(_t.c.id.desc())
            if status is not None:
                q = q.where(_t.c.status == bindparam("status"))
            if incoming is not None:
                q = q.where(_t.c.position > 0 if incoming else _t.c.position == 0)
            return q

        key = ("traces.list", status is None, incoming)
        rows = await self._db.fetch(key, query, params, scan=True)
        return [_trace(row) for row in rows]

    async def reminder_totals(self) -> dict[int, tuple[int, datetime]]:
        """For each trace with reminders, how many (all its hops') and the last one's time."""
        rows = await self._db.fetch("traces.reminder_totals", _reminder_totals, {}, scan=True)
        return {trace: (int(count), last) for trace, count, last in rows}

    async def get_reminders(self, trace: int) -> list[HopReminders]:
        """The reminders of each hop of the trace, by position."""
        rows = await self._db.fetch("traces.reminders", _get_reminders, {"trace": trace})
        return [HopReminders(*row) for row in rows]
