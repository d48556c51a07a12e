"""National statistics: this country's own figures, exact, over a period of months.

`LocalStats` reads group-by counts from a `StatsStorage` and shapes them for
the console's statistics page, its `.json` twin, its CSV exports and
`iarms-node stats local`: records by status, type, make, calibre, country of
manufacture and month; lookups, hits and the hit rate per peer and month; traces
by outcome, hops' answer times, overdue traces and the routes traces revealed.
`compute` gives one catalogue query's vector or one national report by name
(`names`), from the same functions as the page's figures. `view` is `national` for
a person, audited as reads of records are (`stats.view`; `exported` notes a
figure's CSV export, `stats.export`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import ValidationError
from node.stats.model import PeerMonth, TraceHop
from node.stats.periods import Period
from node.stats.queries import QUERIES, query
from node.stats.storage import StatsStorage

#: How many makes and calibres the "top" lists hold.
TOP = 10
Rows = list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class PeerFigures:
    """Lookups and hits with one peer (in a month, or over the period)."""

    peer: str
    month: str
    made: int = 0
    answered: int = 0
    hits_given: int = 0
    hits_received: int = 0

    @property
    def hit_rate(self) -> float | None:
        """Hits our lookups got per serial looked up at this peer (None: no lookup)."""
        return round(self.hits_received / self.made, 4) if self.made else None

    def to_json(self) -> dict[str, Any]:
        """The figures with the hit rate."""
        return {
            "peer": self.peer,
            "month": self.month,
            "made": self.made,
            "answered": self.answered,
            "hits_given": self.hits_given,
            "hits_received": self.hits_received,
            "hit_rate": self.hit_rate,
        }


@dataclass(frozen=True, slots=True)
class AnswerTimes:
    """How long one peer's hops took to answer our traces, in hours."""

    peer: str
    answers: int
    median_hours: float
    p90_hours: float


@dataclass(frozen=True, slots=True)
class NationalStats:
    """Everything the statistics page shows, for one period."""

    period: Period
    by_status: Rows
    by_type: Rows
    by_make: Rows
    by_calibre: Rows
    by_country: Rows
    #: (month, recorded, recovered) for every month of the period.
    by_month: list[tuple[str, int, int]]
    peers: list[PeerFigures]
    peer_months: list[PeerFigures]
    traces_sent: Rows
    traces_received: Rows
    answer_times: list[AnswerTimes]
    overdue_sent: int
    overdue_received: int
    #: (from, to, traces) pairs of countries along the chains of our traces.
    routes: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Records counted in the period."""
        return sum(n for _v, n in self.by_status)

    def to_json(self) -> dict[str, Any]:
        """The page's `.json` twin."""

        def pairs(rows: Rows, key: str) -> list[dict[str, Any]]:
            return [{key: v, "count": n} for v, n in rows]

        return {
            "period": self.period.to_json(),
            "records": {
                "total": self.total,
                "by_status": pairs(self.by_status, "status"),
                "by_type": pairs(self.by_type, "type"),
                "top_makes": pairs(self.by_make[:TOP], "make"),
                "top_calibres": pairs(self.by_calibre[:TOP], "calibre"),
                "by_make": pairs(self.by_make, "make"),
                "by_calibre": pairs(self.by_calibre, "calibre"),
                "by_country_of_manufacture": pairs(self.by_country, "country"),
                "by_month": [
                    {"month": m, "recorded": a, "recovered": b} for m, a, b in self.by_month
                ],
            },
            "lookups": {
                "per_peer": [p.to_json() for p in self.peers],
                "per_peer_month": [p.to_json() for p in self.peer_months],
            },
            "traces": {
                "sent": pairs(self.traces_sent, "outcome"),
                "received": pairs(self.traces_received, "outcome"),
                "answer_times": [
                    {
                        "peer": t.peer,
                        "answers": t.answers,
                        "median_hours": t.median_hours,
                        "p90_hours": t.p90_hours,
                    }
                    for t in self.answer_times
                ],
                "overdue": {"sent": self.overdue_sent, "received": self.overdue_received},
                "routes": [{"from": a, "to": b, "traces": n} for a, b, n in self.routes],
            },
        }


def _peer_figures(sources: dict[str, list[PeerMonth]], by_month: bool) -> list[PeerFigures]:
    """Merge the four per-peer-and-month counts, per (peer, month) or per peer."""
    merged: dict[tuple[str, str], dict[str, int]] = {}
    for name, rows in sources.items():
        for row in rows:
            key = (row.peer, row.month if by_month else "")
            slot = merged.setdefault(key, {})
            slot[name] = slot.get(name, 0) + row.count
    return [PeerFigures(peer, month, **counts) for (peer, month), counts in sorted(merged.items())]


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def answer_times(times: list[tuple[str, float]]) -> list[AnswerTimes]:
    """Median and 90th percentile (inclusive method) of each peer's answer times."""
    per: dict[str, list[float]] = {}
    for peer, seconds in times:
        per.setdefault(peer, []).append(seconds)
    out = []
    for peer, samples in sorted(per.items()):
        p90 = (
            statistics.quantiles(samples, n=10, method="inclusive")[8]
            if len(samples) > 1
            else samples[0]
        )
        out.append(AnswerTimes(peer, len(samples), _hours(statistics.median(samples)), _hours(p90)))
    return out


def routes(hops: list[TraceHop], me: str) -> list[tuple[str, str, int]]:
    """The pairs of countries along our traces' chains (hop n to hop n+1, the last hop to
    us, where the firearm surfaced), each counted once per trace, most first."""
    chains: dict[int, list[str]] = {}
    for hop in sorted(hops, key=lambda h: (h.trace, h.position)):
        chains.setdefault(hop.trace, []).append(hop.country)
    counts: Counter[tuple[str, str]] = Counter()
    for chain in chains.values():
        path = [*chain, me]
        counts.update({(a, b) for a, b in pairwise(path) if a != b})
    return [(a, b, n) for (a, b), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class LocalStats:
    """This node's statistics, exact, from its own data (no noise: they stay here)."""

    def __init__(
        self,
        storage: StatsStorage,
        audit: AuditLog,
        clock: Clock,
        me: str,
        deadlines_s: tuple[float, float],
    ) -> None:
        self._store = storage
        self._audit = audit
        self._clock = clock
        self._me = me
        self._deadlines_s = deadlines_s  # (urgent, routine)
        self._reports: dict[str, tuple[str, Callable[[Period], Awaitable[dict[str, Any]]]]] = {
            "records_by_status": ("records by status", self._dimension("status")),
            "records_by_type": ("records by firearm type", self._dimension("type")),
            "records_by_make": ("records by make", self._dimension("make")),
            "records_by_calibre": ("records by calibre", self._dimension("calibre")),
            "records_by_country": (
                'records by country of manufacture ("": unknown)',
                self._dimension("country"),
            ),
            "records_by_month": ("records by month (event, else recording)", self._recorded),
            "lookups_by_peer": ("serials looked up at each peer", self._peer_report("made")),
            "answered_by_peer": ("serials each peer looked up here", self._peer_report("answered")),
            "hits_given_by_peer": ("hits on our records, by peer", self._peer_report("hits_given")),
            "hits_received_by_peer": (
                "hits of our lookups, by peer",
                self._peer_report("hits_received"),
            ),
            "hit_rate_by_peer": (
                "hits of our lookups per serial looked up, by peer (peers we looked up at)",
                self._hit_rates,
            ),
            "traces_sent": ("traces sent, by outcome or status", self._traces(sent=True)),
            "traces_received": ("traces received, by outcome or status", self._traces(sent=False)),
            "trace_answer_times": (
                "hours each peer's hops took to answer our traces (PEER/answers, "
                "PEER/median_hours, PEER/p90_hours)",
                self._answer_times,
            ),
            "traces_overdue": (
                "traces overdue now: sent and still open past their deadline, received and "
                "queued here past theirs (not limited to the period)",
                self._overdue,
            ),
            "trace_routes": ("pairs of countries along our traces' chains (FROM>TO)", self._routes),
        }

    @property
    def me(self) -> str:
        """This node's country."""
        return self._me

    def period(self, start: str | None, end: str | None) -> Period:
        """The period of `--from`/`--to` (or the form's), defaults from the Clock's month.

        Raises:
            ValidationError: a bad month, a start after the end, too long a period.
        """
        return Period.resolve(start or None, end or None, self._clock.now().date())

    def names(self) -> dict[str, str]:
        """Every name `compute` knows (the catalogue's queries, then the national
        reports) with what it counts."""
        return {q.name: q.description for q in QUERIES} | {
            name: what for name, (what, _f) in self._reports.items()
        }

    async def compute(self, name: str, period: Period) -> dict[str, Any]:
        """The exact cells of the catalogue query or national report `name`.

        Raises:
            ValidationError: no such query or report (the message lists them).
        """
        if name in self._reports:
            return await self._reports[name][1](period)
        try:
            found = query(name)
        except ValidationError:
            known = ", ".join(self.names())
            raise ValidationError(
                f"query: no query {name!r}; the queries and reports are {known}", "query"
            ) from None
        return await found.compute(self._store, period, self._me)

    def _dimension(self, dimension: str) -> Callable[[Period], Awaitable[dict[str, Any]]]:
        async def report(period: Period) -> dict[str, Any]:
            return dict(await self._store.get_record_counts(dimension, period))

        return report

    async def _recorded(self, period: Period) -> dict[str, Any]:
        counts = dict(await self._store.get_record_months("recorded", period))
        return {str(m): counts.get(str(m), 0) for m in period.months()}

    def _peer_report(self, what: str) -> Callable[[Period], Awaitable[dict[str, Any]]]:
        async def report(period: Period) -> dict[str, Any]:
            figures = await self._peers(period, by_month=False)
            return {p.peer: getattr(p, what) for p in figures if getattr(p, what)}

        return report

    def _traces(self, sent: bool) -> Callable[[Period], Awaitable[dict[str, Any]]]:
        async def report(period: Period) -> dict[str, Any]:
            return dict(await self._store.get_trace_counts(period, sent))

        return report

    async def _answer_times(self, period: Period) -> dict[str, Any]:
        times = answer_times(
            [(t.country, t.seconds) for t in await self._store.get_hop_times(period)]
        )
        return {
            f"{t.peer}/{name}": value
            for t in times
            for name, value in (
                ("answers", t.answers),
                ("median_hours", t.median_hours),
                ("p90_hours", t.p90_hours),
            )
        }

    async def _hit_rates(self, period: Period) -> dict[str, Any]:
        figures = await self._peers(period, by_month=False)
        return {p.peer: p.hit_rate for p in figures if p.hit_rate is not None}

    async def _overdue(self, _period: Period) -> dict[str, Any]:
        sent, received = await self._store.get_overdue(self._clock.now(), *self._deadlines_s)
        return {"sent": sent, "received": received}

    async def _routes(self, period: Period) -> dict[str, Any]:
        hops = await self._store.get_trace_hops(period)
        return {f"{a}>{b}": n for a, b, n in routes(hops, self._me)}

    async def _peers(self, period: Period, by_month: bool) -> list[PeerFigures]:
        return _peer_figures(await self._peer_sources(period), by_month)

    async def _peer_sources(self, period: Period) -> dict[str, list[PeerMonth]]:
        return {
            "made": await self._store.get_lookups_made(period),
            "answered": await self._store.get_lookups_answered(period),
            "hits_given": await self._store.get_hits_given(period),
            "hits_received": await self._store.get_hits_received(period),
        }

    async def view(self, period: Period, actor: str) -> NationalStats:
        """Every figure of `period`, read by `actor` (audited: `stats.view`)."""
        national = await self.national(period)
        await self._audit.add_entry(
            self._clock.now(),
            AuditEvent(actor, "stats.view", "statistics", {"period": period.to_json()}),
        )
        return national

    async def exported(self, period: Period, name: str, actor: str) -> None:
        """Note that `actor` exported the figure `name` of `period` (`stats.export`)."""
        details = {"period": period.to_json(), "figure": name}
        await self._audit.add_entry(
            self._clock.now(), AuditEvent(actor, "stats.export", "statistics", details)
        )

    async def national(self, period: Period) -> NationalStats:
        """Every figure of the statistics page for `period`."""
        store = self._store
        recorded = dict(await store.get_record_months("recorded", period))
        recovered = dict(await store.get_record_months("recovered", period))
        months = [str(m) for m in period.months()]
        times = await store.get_hop_times(period)
        sent_late, received_late = await store.get_overdue(self._clock.now(), *self._deadlines_s)
        sources = await self._peer_sources(period)
        return NationalStats(
            period=period,
            by_status=await store.get_record_counts("status", period),
            by_type=await store.get_record_counts("type", period),
            by_make=await store.get_record_counts("make", period),
            by_calibre=await store.get_record_counts("calibre", period),
            by_country=await store.get_record_counts("country", period),
            by_month=[(m, recorded.get(m, 0), recovered.get(m, 0)) for m in months],
            peers=_peer_figures(sources, by_month=False),
            peer_months=_peer_figures(sources, by_month=True),
            traces_sent=await store.get_trace_counts(period, sent=True),
            traces_received=await store.get_trace_counts(period, sent=False),
            answer_times=answer_times([(t.country, t.seconds) for t in times]),
            overdue_sent=sent_late,
            overdue_received=received_late,
            routes=routes(await store.get_trace_hops(period), self._me),
        )
