"""The fixed catalogue of federation queries: vectors of counters with named cells.

Every node computes a query's vector from its own data with the same
definition, so that the vectors of all contributors can be summed cell by
cell. Each query states its contribution bound: how much adding or removing
one firearm record of the contributor can change its vector (the L1
sensitivity the noise of a round is calibrated to). All five are built so
that one record changes at most one cell by at most one: sensitivity 1.

- `records_by_type_status`: cells `TYPE/STATUS` over the reference types and
  statuses; a record is counted in its type's and status's cell if its month
  (the month of its event date, or of its recording when it has none) is in
  the period. A type outside the reference list counts as `other`.
- `routes`: cells `SRC>DST`, ISO 3166-1 alpha-3; a contributor fills its own
  column, DST = its country, over every SRC: its records of the period by
  country of manufacture (records without one are not counted).
- `recoveries_by_month`: cells `YYYY-MM`; a recovered record counted once, in
  the month of its recovery.
- `hits_by_month`: cells `YYYY-MM`; a record of ours that foreign lookups hit
  in the period counted once, in the first month of the period it was hit.
- `trace_outcomes`: cells by outcome; the traces this node sent in the period
  counted once per serial number (its latest trace), by the final outcome of
  the chain or `unanswered`; a trace of an obliterated serial is its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from node.countries import alpha3_codes
from node.errors import MalformedEnvelopeError, ValidationError
from node.records.model import FirearmType, Status
from node.records.serials import canonicalise_serial
from node.stats.model import SentTrace
from node.stats.periods import Period
from node.stats.storage import StatsStorage
from node.trace.receipts import RequestStatement, read

#: The final outcomes of a trace's chain, and the cell of a trace not answered yet.
TRACE_OUTCOMES = ("end_of_chain", "not_found", "refused", "unanswered")

Cells = Callable[[Period, str], tuple[str, ...]]
Counter = Callable[[StatsStorage, Period, str], Awaitable[dict[str, int]]]


@dataclass(frozen=True, slots=True)
class Query:
    """One query of the catalogue.

    Attributes:
        name: its stable name (the wire's and the command line's).
        description: what a cell counts.
        bound: how one firearm record can change the vector (documentation).
        sensitivity: the L1 sensitivity with respect to one firearm record.
        column_only: a contributor fills only its own column (`routes`).
    """

    name: str
    description: str
    bound: str
    sensitivity: int
    cells_of: Cells
    counter: Counter
    column_only: bool = False

    def cells(self, period: Period, me: str) -> tuple[str, ...]:
        """The cells a contributor `me` fills for `period`, in order."""
        return self.cells_of(period, me)

    async def compute(self, storage: StatsStorage, period: Period, me: str) -> dict[str, int]:
        """This node's exact vector: every cell of `cells`, in order (zero if none)."""
        counts = await self.counter(storage, period, me)
        return {cell: counts.get(cell, 0) for cell in self.cells(period, me)}

    def to_json(self, period: Period, me: str) -> dict[str, object]:
        """The query as `stats queries --json` lists it."""
        return {
            "name": self.name,
            "description": self.description,
            "bound": self.bound,
            "sensitivity": self.sensitivity,
            "period": period.to_json(),
            "cells": list(self.cells(period, me)),
        }


def _type_status_cells(_period: Period, _me: str) -> tuple[str, ...]:
    return tuple(f"{t.value}/{s.value}" for t in FirearmType for s in Status)


@cache
def _sources() -> tuple[str, ...]:
    return tuple(sorted(alpha3_codes()))


def _route_cells(_period: Period, me: str) -> tuple[str, ...]:
    return _route_column(me)


@lru_cache(maxsize=1024)  # a round names each contributor's column several times
def _route_column(dst: str) -> tuple[str, ...]:
    return tuple(f"{src}>{dst}" for src in _sources())


def _month_cells(period: Period, _me: str) -> tuple[str, ...]:
    return tuple(str(m) for m in period.months())


def _outcome_cells(_period: Period, _me: str) -> tuple[str, ...]:
    return TRACE_OUTCOMES


async def _type_status(storage: StatsStorage, period: Period, _me: str) -> dict[str, int]:
    known = {t.value for t in FirearmType}
    out: dict[str, int] = {}
    for value, n in await storage.get_record_counts("type_status", period):
        ftype, _, status = value.rpartition("/")
        cell = f"{ftype if ftype in known else FirearmType.OTHER.value}/{status}"
        out[cell] = out.get(cell, 0) + n
    return out


async def _routes(storage: StatsStorage, period: Period, me: str) -> dict[str, int]:
    return {f"{src}>{me}": n for src, n in await storage.get_record_counts("country", period)}


async def _recoveries(storage: StatsStorage, period: Period, _me: str) -> dict[str, int]:
    return dict(await storage.get_record_months("recovered", period))


async def _hits(storage: StatsStorage, period: Period, _me: str) -> dict[str, int]:
    return dict(await storage.get_first_hit_months(period))


def _serial_key(trace: SentTrace) -> str:
    """What counts a trace once: its canonical serial, or the trace itself for a firearm
    whose serial could not be read (or a request this node cannot read back)."""
    try:
        serial = read(trace.request, RequestStatement)[1].fields.serial_number
    except MalformedEnvelopeError:
        serial = ""
    canonical = canonicalise_serial(serial)
    return f"serial:{canonical}" if canonical else f"trace:{trace.id}"


async def _outcomes(storage: StatsStorage, period: Period, _me: str) -> dict[str, int]:
    latest: dict[str, str | None] = {}
    for trace in await storage.get_sent_traces(period):  # oldest first: the latest wins
        latest[_serial_key(trace)] = trace.outcome
    out: dict[str, int] = {}
    for outcome in latest.values():
        cell = outcome if outcome in TRACE_OUTCOMES else "unanswered"
        out[cell] = out.get(cell, 0) + 1
    return out


QUERIES: tuple[Query, ...] = (
    Query(
        "records_by_type_status",
        "records by firearm type and status (cells TYPE/STATUS), by the record's month",
        "a record is in one cell once: one record changes one cell by 1",
        1,
        _type_status_cells,
        _type_status,
    ),
    Query(
        "routes",
        "records by country of manufacture SRC and contributing country DST (cells SRC>DST)",
        "a record is in its SRC>DST cell once: one record changes one cell by 1",
        1,
        _route_cells,
        _routes,
        column_only=True,
    ),
    Query(
        "recoveries_by_month",
        "records recovered, by month of recovery (cells YYYY-MM)",
        "a record is recovered once, in one month: one record changes one cell by 1",
        1,
        _month_cells,
        _recoveries,
    ),
    Query(
        "hits_by_month",
        "our records hit by foreign lookups, by the first month of the period hit (YYYY-MM)",
        "a record counted once, in the first month of the period it was hit: at most 1",
        1,
        _month_cells,
        _hits,
    ),
    Query(
        "trace_outcomes",
        "traces sent, by the chain's final outcome or unanswered, one per serial number",
        "a serial counted once (its latest trace): one record changes one cell by 1",
        1,
        _outcome_cells,
        _outcomes,
    ),
)
_BY_NAME = {q.name: q for q in QUERIES}


def query(name: str) -> Query:
    """The catalogue's query called `name`.

    Raises:
        ValidationError: no such query (the message lists the known ones).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ValidationError(
            f"query: no query {name!r}; the queries are {known}", "query"
        ) from None
