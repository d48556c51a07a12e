"""The statistics' SQL: group-by counts over records, lookups, hits and traces.

Record counts are read from `record_counts`: one row per dimension, value and
month, the dimensions being make, calibre, country of manufacture and
`TYPE/STATUS` (from which types, statuses and monthly totals are summed), and
`recovered` (by month of recovery). `count_records_in` keeps them exact: the
record store calls it in the transaction of every change, subtracting a
record's rows before the change and adding them after; an import's batch
whose rows are all new adds what its parser counted of them
(`node.records.record_rows.count_records`, the same dimensions in Python,
`add_record_counts`), one with rows stored before counts its new rows with
one group-by over their ids. A record's month is that of its event
date, or of its recording when it has none. The other figures are group-bys
over indexed columns of their own tables.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from node.records.import_parse import Counts
from node.stats.model import HopTime, PeerMonth, SentTrace, TraceHop
from node.stats.periods import Period
from node.store.database import Database
from node.store.dialect import month_of, upsert_adding
from node.store.tables import (
    AuditRow,
    HitEvidenceRow,
    HitRow,
    RecordCountRow,
    RecordRow,
    TraceItemRow,
    TraceRow,
    table,
)

_r = table(RecordRow)
_n = table(RecordCountRow)
_a = table(AuditRow)
_h = table(HitRow)
_e = table(HitEvidenceRow)
_t = table(TraceRow)
_i = table(TraceItemRow)
_KEYS = ("dimension", "value", "month")
#: Dimensions read from `type_status` (whose values are `TYPE/STATUS`): the part of the
#: value each is (`str.rpartition`'s index), so that a record change upserts fewer rows.
_FROM_TYPE_STATUS = {"type": 0, "status": 2}
#: SQL, per dialect, for each peer a lookup asked and how many serials (the audit entry's
#: `peers` array exploded), with the entry's time; bound `start` and `end`.
_LOOKUPS_MADE = {
    "sqlite": (
        "SELECT j.value AS peer, strftime('%Y-%m', a.at) AS month, "
        "SUM(json_extract(a.details, '$.serials')) AS n "
        "FROM audit_log AS a, json_each(a.details, '$.peers') AS j "
        "WHERE a.action = 'lookup.query' AND a.at >= :start AND a.at < :end "
        "GROUP BY 1, 2"
    ),
    "postgresql": (
        "SELECT j.peer, to_char(a.at, 'YYYY-MM') AS month, "
        "SUM((a.details->>'serials')::bigint) AS n "
        "FROM audit_log AS a, json_array_elements_text(a.details->'peers') AS j(peer) "
        "WHERE a.action = 'lookup.query' AND a.at >= :start AND a.at < :end "
        "GROUP BY 1, 2"
    ),
}


def _record_rows(dialect: str, where: ColumnElement[bool]) -> Select[Any]:
    """(dimension, value, month, count) of the records `where` selects."""
    month = month_of(dialect, func.coalesce(_r.c.event_date, _r.c.created_at))
    values: dict[str, ColumnElement[Any]] = {
        "make": _r.c.make,
        "calibre": _r.c.calibre,
        "country": func.coalesce(_r.c.country_of_manufacture, ""),
        "type_status": _r.c.firearm_type + "/" + _r.c.status,
    }
    parts = [
        select(
            literal(name).label("dimension"),
            value.label("value"),
            month.label("month"),
            func.count().label("n"),
        )
        .where(where)
        .group_by(value, month)
        for name, value in values.items()
    ]
    recovered = month_of(dialect, _r.c.recovered_on)
    parts.append(
        select(literal("recovered"), literal(""), recovered, func.count())
        .where(where, _r.c.status == "recovered", _r.c.recovered_on.is_not(None))
        .group_by(recovered)
    )
    return union_all(*parts)  # type: ignore[return-value]


async def count_records_in(conn: AsyncConnection, where: ColumnElement[bool], sign: int) -> None:
    """Add (`sign` 1) or subtract (-1) the counts of the records `where` selects, inside the
    caller's transaction (before a change: -1, after it: 1)."""
    rows = (await conn.execute(_record_rows(conn.dialect.name, where))).all()
    await upsert_adding(conn, _n, _KEYS, "n", [(d, v, m, sign * n) for d, v, m, n in rows])


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


async def add_record_counts(conn: AsyncConnection, counts: Counts, at: datetime) -> None:
    """Add `counts` (`node.records.record_rows.count_records`: what new records add, month
    "" for their month of recording, `at`) inside the caller's transaction."""
    recorded = _month(at.astimezone(UTC))
    await upsert_adding(conn, _n, _KEYS, "n", [c for c in counts if c[2]])
    # Apart: a count of this month may be in both lists (one upsert must not meet a key twice).
    undated = [(dimension, value, recorded, n) for dimension, value, m, n in counts if not m]
    await upsert_adding(conn, _n, _KEYS, "n", undated)


def _in_months(period: Period) -> ColumnElement[bool]:
    return _n.c.month.between(str(period.start), str(period.end))


def _between(column: Any, period: Period) -> ColumnElement[bool]:
    start, end = period.bounds()
    return column >= start if end is None else and_(column >= start, column < end)


def _peer_months(rows: Any) -> list[PeerMonth]:
    return [PeerMonth(peer, month, int(n)) for peer, month, n in rows]


class StatsStore:
    """The statistics' group-bys (`node.stats.storage.StatsStorage`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _month(self, column: Any) -> Any:
        return month_of(self._db.dialect, column)

    async def _all(self, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
        async with self._db.read() as conn:
            return list((await conn.execute(query, params or {})).all())

    async def get_record_counts(self, dimension: str, period: Period) -> list[tuple[str, int]]:
        stored = "type_status" if dimension in _FROM_TYPE_STATUS else dimension
        total = func.sum(_n.c.n)
        query = (
            select(_n.c.value, total)
            .where(_n.c.dimension == stored, _in_months(period))
            .group_by(_n.c.value)
            .having(total > 0)
        )
        rows = await self._all(query)
        if stored != dimension:  # fold TYPE/STATUS into the type's or the status's count
            part = _FROM_TYPE_STATUS[dimension]
            folded: dict[str, int] = {}
            for value, n in rows:
                key = value.rpartition("/")[part]  # a status never holds "/"; a type may
                folded[key] = folded.get(key, 0) + int(n)
            rows = list(folded.items())
        return sorted(((v, int(n)) for v, n in rows), key=lambda vn: (-vn[1], vn[0]))

    async def get_record_months(self, series: str, period: Period) -> list[tuple[str, int]]:
        stored = "recovered" if series == "recovered" else "type_status"
        total = func.sum(_n.c.n)
        query = (
            select(_n.c.month, total)
            .where(_n.c.dimension == stored, _in_months(period))
            .group_by(_n.c.month)
            .having(total > 0)
            .order_by(_n.c.month)
        )
        return [(month, int(n)) for month, n in await self._all(query)]

    async def get_first_hit_months(self, period: Period) -> list[tuple[str, int]]:
        first = (
            select(func.min(_h.c.at).label("at"))
            .where(_between(_h.c.at, period))
            .group_by(_h.c.record_id)
            .subquery()
        )
        month = self._month(first.c.at)
        query = select(month, func.count()).group_by(month).order_by(month)
        return [(m, int(n)) for m, n in await self._all(query)]

    async def get_sent_traces(self, period: Period) -> list[SentTrace]:
        query = (
            select(_t.c.id, _t.c.request, _t.c.outcome)
            .where(_t.c.position == 0, _between(_t.c.created_at, period))
            .order_by(_t.c.created_at, _t.c.id)
        )
        return [SentTrace(i, bytes(r), o) for i, r, o in await self._all(query)]

    async def get_lookups_made(self, period: Period) -> list[PeerMonth]:
        start, end = (
            (t or datetime.max.replace(tzinfo=UTC)).replace(tzinfo=None) for t in period.bounds()
        )
        params: dict[str, Any] = {"start": start, "end": end}  # naive UTC, as stored
        if self._db.dialect == "sqlite":  # as UTCDateTime stores them: text
            params = {k: v.isoformat(" ") for k, v in params.items()}
        sql = _LOOKUPS_MADE["sqlite" if self._db.dialect == "sqlite" else "postgresql"]
        return _peer_months(await self._all(text(sql), params))

    async def get_lookups_answered(self, period: Period) -> list[PeerMonth]:
        peer = func.substr(_a.c.target, 6)  # "peer/XXX"
        month = self._month(_a.c.at)
        count = func.sum(_a.c.details["count"].as_integer())
        query = (
            select(peer, month, count)
            .where(_a.c.action == "lookup.evaluate", _between(_a.c.at, period))
            .group_by(peer, month)
        )
        return _peer_months(await self._all(query))

    async def get_hits_given(self, period: Period) -> list[PeerMonth]:
        month = self._month(_h.c.at)
        query = (
            select(_h.c.peer, month, func.count())
            .where(_between(_h.c.at, period))
            .group_by(_h.c.peer, month)
        )
        return _peer_months(await self._all(query))

    async def get_hits_received(self, period: Period) -> list[PeerMonth]:
        month = self._month(_e.c.at)
        query = (
            select(_e.c.peer, month, func.count())
            .where(_between(_e.c.at, period))
            .group_by(_e.c.peer, month)
        )
        return _peer_months(await self._all(query))

    async def get_trace_counts(self, period: Period, sent: bool) -> list[tuple[str, int]]:
        state = func.coalesce(_t.c.outcome, _t.c.status)
        query = (
            select(state, func.count())
            .where(
                _t.c.position == 0 if sent else _t.c.position > 0,
                _between(_t.c.created_at, period),
            )
            .group_by(state)
            .order_by(func.count().desc(), state)
        )
        return [(s, int(n)) for s, n in await self._all(query)]

    def _our_items(self, period: Period) -> Select[Any]:
        return (
            select(_i.c.trace, _i.c.position, _i.c.country)
            .join(_t, _t.c.id == _i.c.trace)
            .where(_t.c.position == 0, _between(_t.c.created_at, period))
        )

    async def get_hop_times(self, period: Period) -> list[HopTime]:
        receipt = _i.c.kind == "receipt"
        first = func.min(case((receipt, _i.c.signed_ms)))
        last = func.max(case((receipt, _i.c.signed_ms)))
        answers = func.sum(case((_i.c.kind == "answer", 1), else_=0))
        query = (
            self._our_items(period)
            .with_only_columns(_i.c.country, (last - first).label("ms"))
            .group_by(_i.c.trace, _i.c.position, _i.c.country)
            .having(answers > 0, first.is_not(None))
        )
        return [HopTime(country, int(ms) / 1000) for country, ms in await self._all(query)]

    async def get_trace_hops(self, period: Period) -> list[TraceHop]:
        query = (
            self._our_items(period)
            .group_by(_i.c.trace, _i.c.position, _i.c.country)
            .order_by(_i.c.trace, _i.c.position)
        )
        return [TraceHop(t, p, c) for t, p, c in await self._all(query)]

    async def get_overdue(
        self, now: datetime, urgent_s: float, routine_s: float
    ) -> tuple[int, int]:
        late = or_(
            and_(_t.c.priority == "urgent", _t.c.created_at < now - timedelta(seconds=urgent_s)),
            and_(_t.c.priority != "urgent", _t.c.created_at < now - timedelta(seconds=routine_s)),
        )
        sent = select(func.count()).where(_t.c.position == 0, _t.c.status == "open", late)
        received = select(func.count()).where(
            _t.c.position > 0, _t.c.status == "queued", _t.c.deadline_at < now
        )
        async with self._db.read() as conn:
            return (
                int((await conn.execute(sent)).scalar_one()),
                int((await conn.execute(received)).scalar_one()),
            )
