"""The statistics rounds store: rounds, answers, shares, holdings, sums and the ledger.

Each statement is built once per shape and run either inside a unit of work
(`node.store.work.StoreWork` mixes in `RoundReads` and `RoundWrites` on its
transaction) or on its own (`RoundsStore`, reads only): both run statements the
same way (`Database.fetch` and `Transaction.run` take a shape, a builder and
parameters). Every `add_` ignores a row that is there already and says whether it
added one: a round's answer, share, holding, sum or ledger entry is taken once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ClauseElement, Table, bindparam, func, select, update

from node.stats.budget import LedgerEntry
from node.stats.periods import Month, Period
from node.stats.round import HeldShare, RoundAnswer, RoundSpec, RoundStatus, StoredRound
from node.store.database import Database
from node.store.dialect import insert_ignoring
from node.store.tables import (
    StatsAnswerRow,
    StatsHoldingRow,
    StatsLedgerRow,
    StatsRoundRow,
    StatsShareRow,
    StatsSumRow,
    table,
)

Run = Callable[[Hashable, Callable[[], ClauseElement], Mapping[str, Any]], Awaitable[list[Any]]]

_rounds = table(StatsRoundRow)
_answers = table(StatsAnswerRow)
_shares = table(StatsShareRow)
_holdings = table(StatsHoldingRow)
_sums = table(StatsSumRow)
_ledger = table(StatsLedgerRow)
_ROUND = (
    "round_id",
    "requester",
    "query",
    "period_from",
    "period_to",
    "epsilon",
    "aggregators",
    "min_contributors",
    "deadline_at",
    "created_at",
    "status",
    "reason",
    "asked",
    "closed",
)
_LEDGER = ("round_id", "requester", "query", "month", "epsilon", "spent", "reason", "at")


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def _round(row: Sequence[Any]) -> StoredRound:
    v = dict(zip(_ROUND, row, strict=True))
    spec = RoundSpec(
        round_id=v["round_id"],
        requester=v["requester"],
        query=v["query"],
        period=Period(Month.parse(v["period_from"]), Month.parse(v["period_to"])),
        epsilon=float(v["epsilon"]),
        aggregators=_split(v["aggregators"]),
        min_contributors=int(v["min_contributors"]),
        deadline_at=v["deadline_at"],
    )
    closed = v["closed"]
    return StoredRound(
        spec,
        v["created_at"],
        RoundStatus(v["status"]),
        v["reason"],
        _split(v["asked"]),
        None if closed is None else _split(closed),
    )


def _select(t: Table, names: Sequence[str], *order: str) -> Callable[[], ClauseElement]:
    def build() -> ClauseElement:
        q = select(*(t.c[n] for n in names)).where(t.c.round_id == bindparam("round_id"))
        return q.order_by(*(t.c[o] for o in order))

    return build


def _insert(t: Table, names: Sequence[str], dialect: str) -> Callable[[], ClauseElement]:
    return lambda: (
        insert_ignoring(dialect, t).values({n: bindparam(n) for n in names}).returning(t.c.id)
    )


class RoundReads:
    """The reads of `node.stats.rounds_storage.RoundsReader` on `self._run`."""

    _run: Run

    async def get_round(self, round_id: bytes) -> StoredRound | None:
        """The round, or None."""
        rows = await self._run("rounds.get", _select(_rounds, _ROUND), {"round_id": round_id})
        return _round(rows[0]) if rows else None

    async def get_answers(self, round_id: bytes) -> list[RoundAnswer]:
        """The answers this node knows of, by country."""
        names = ("country", "joined", "reason", "detail")
        build = _select(_answers, names, "country")
        rows = await self._run("rounds.answers", build, {"round_id": round_id})
        return [RoundAnswer(c, bool(j), r, d) for c, j, r, d in rows]

    async def get_shares(self, round_id: bytes) -> list[HeldShare]:
        """The shares held, by contributor."""
        names = ("contributor", "query", "period_from", "period_to", "sealed")
        build = _select(_shares, names, "contributor")
        rows = await self._run("rounds.shares", build, {"round_id": round_id})
        return [HeldShare(*row) for row in rows]

    async def count_early(self, sender: str) -> int:
        """How many shares and holdings from `sender` are held for rounds not known here."""

        def build() -> ClauseElement:
            known = select(_rounds.c.round_id)
            counts = [
                select(func.count())
                .select_from(t)
                .where(t.c[column] == bindparam("sender"))
                .where(t.c.round_id.not_in(known))
                .scalar_subquery()
                for t, column in ((_shares, "contributor"), (_holdings, "aggregator"))
            ]
            return select(counts[0] + counts[1])

        rows = await self._run("rounds.early", build, {"sender": sender})
        return int(rows[0][0])

    async def get_holdings(self, round_id: bytes) -> dict[str, tuple[str, ...]]:
        """Each aggregator's holding."""
        build = _select(_holdings, ("aggregator", "contributors"), "aggregator")
        rows = await self._run("rounds.holdings", build, {"round_id": round_id})
        return {a: _split(c) for a, c in rows}

    async def get_sums(self, round_id: bytes) -> dict[str, bytes]:
        """Each aggregator's signed sum."""
        build = _select(_sums, ("aggregator", "statement"), "aggregator")
        rows = await self._run("rounds.sums", build, {"round_id": round_id})
        return {a: bytes(s) for a, s in rows}

    async def get_ledger(self, month: str | None = None) -> list[LedgerEntry]:
        """The budget's entries (of `month`), oldest first."""

        def build() -> ClauseElement:
            q = select(*(_ledger.c[n] for n in _LEDGER)).order_by(_ledger.c.id)
            return q if month is None else q.where(_ledger.c.month == bindparam("month"))

        params = {} if month is None else {"month": month}
        rows = await self._run(("rounds.ledger", month is None), build, params)
        return [
            LedgerEntry(bytes(r), q, c, m, float(e), bool(s), why, at)
            for r, q, c, m, e, s, why, at in rows
        ]


class RoundWrites:
    """The writes of `node.stats.rounds_storage.StatsWork` on `self._run` (a transaction)."""

    _run: Run
    _dialect: str

    async def _add(self, t: Table, values: dict[str, Any]) -> bool:
        names = tuple(values)
        build = _insert(t, names, self._dialect)
        return bool(await self._run(("rounds.add", t.name, names), build, values))

    async def add_round(self, round_: StoredRound) -> bool:
        """Store a round (False if known)."""
        s = round_.spec
        closed = round_.closed
        return await self._add(
            _rounds,
            {
                "round_id": s.round_id,
                "requester": s.requester,
                "query": s.query,
                "period_from": str(s.period.start),
                "period_to": str(s.period.end),
                "epsilon": s.epsilon,
                "aggregators": ",".join(s.aggregators),
                "min_contributors": s.min_contributors,
                "deadline_at": s.deadline_at,
                "created_at": round_.created_at,
                "status": round_.status.value,
                "reason": round_.reason,
                "asked": ",".join(round_.asked),
                "closed": None if closed is None else ",".join(closed),
            },
        )

    async def set_round(self, round_id: bytes, status: RoundStatus, reason: str) -> bool:
        """Close a round still collecting; False if it was not collecting."""

        def build() -> ClauseElement:
            return (
                update(_rounds)
                .where(
                    _rounds.c.round_id == bindparam("w_round_id"),
                    _rounds.c.status == RoundStatus.COLLECTING.value,
                )
                .values(status=bindparam("status"), reason=bindparam("reason"))
                .returning(_rounds.c.id)
            )

        params = {"w_round_id": round_id, "status": status.value, "reason": reason}
        return bool(await self._run("rounds.set", build, params))

    async def set_closed(self, round_id: bytes, joined: Sequence[str]) -> bool:
        """Keep the contributors of `stats.close` (False if kept before)."""

        def build() -> ClauseElement:
            return (
                update(_rounds)
                .where(_rounds.c.round_id == bindparam("w_round_id"), _rounds.c.closed.is_(None))
                .values(closed=bindparam("closed"))
                .returning(_rounds.c.id)
            )

        params = {"w_round_id": round_id, "closed": ",".join(joined)}
        return bool(await self._run("rounds.close", build, params))

    async def add_answer(self, round_id: bytes, answer: RoundAnswer, at: datetime) -> bool:
        """Keep a party's answer (its first)."""
        values = {
            "round_id": round_id,
            "country": answer.country,
            "joined": answer.joined,
            "reason": answer.reason,
            "detail": answer.detail,
            "at": at,
        }
        return await self._add(_answers, values)

    async def add_share(self, round_id: bytes, share: HeldShare, at: datetime) -> bool:
        """Keep a contributor's sealed share (its first)."""
        values = {
            "round_id": round_id,
            "contributor": share.contributor,
            "query": share.query,
            "period_from": share.period_from,
            "period_to": share.period_to,
            "sealed": share.sealed,
            "at": at,
        }
        return await self._add(_shares, values)

    async def add_holding(
        self, round_id: bytes, aggregator: str, contributors: Sequence[str], at: datetime
    ) -> bool:
        """Keep an aggregator's holding (its first)."""
        values = {
            "round_id": round_id,
            "aggregator": aggregator,
            "contributors": ",".join(contributors),
            "at": at,
        }
        return await self._add(_holdings, values)

    async def add_sum(
        self, round_id: bytes, aggregator: str, statement: bytes, at: datetime
    ) -> bool:
        """Keep an aggregator's signed sum (its first)."""
        values = {"round_id": round_id, "aggregator": aggregator, "statement": statement, "at": at}
        return await self._add(_sums, values)

    async def add_ledger_entry(self, entry: LedgerEntry) -> bool:
        """Keep a round's budget entry (one per round)."""
        values = {name: getattr(entry, name) for name in _LEDGER}
        return await self._add(_ledger, values)


class RoundsStore(RoundReads):
    """Reads the rounds this node keeps (`node.stats.rounds_storage.RoundsStorage`)."""

    def __init__(self, db: Database) -> None:
        self._run = db.fetch

    async def list_rounds(self, status: RoundStatus | None = None) -> list[StoredRound]:
        """Rounds, newest first (of `status`, if given)."""

        def build() -> ClauseElement:
            q = select(*(_rounds.c[n] for n in _ROUND)).order_by(_rounds.c.id.desc())
            return q if status is None else q.where(_rounds.c.status == bindparam("status"))

        params = {} if status is None else {"status": status.value}
        rows = await self._run(("rounds.list", status is None), build, params)
        return [_round(row) for row in rows]
