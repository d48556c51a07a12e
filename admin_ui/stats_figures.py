"""The statistics page's figures: each a chart and the table beside it, from one set of rows.

A `Figure` holds its columns and rows (what the table shows and the CSV export
holds) and how its chart draws them, so that a chart, its table, its CSV and
the page's JSON can never disagree.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from admin_ui.charts import bar_chart, line_chart, matrix_chart
from node.stats.local import TOP, NationalStats
from node.stats.periods import Period

Row = tuple[Any, ...]
#: How many countries of manufacture the chart shows (the table and CSV hold all).
TOP_COUNTRIES = 15


@dataclass(frozen=True, slots=True)
class Figure:
    """One chart with its table.

    Attributes:
        name: its id (`/statistics/charts/NAME.svg`, `/statistics/export/NAME.csv`).
        title: the heading, and the chart's title.
        kind: "line", "bar", "hbar" (top-N) or "matrix".
        x_title: the x axis's label (the categories, or months).
        y_title: the y axis's label, with its unit.
        columns: the table's columns; the first is the label, the others the series.
        rows: every row (the CSV's); the chart and the table show the first `shown`.
        shown: how many rows the chart and the table show (None: all).
        note: what the figure counts, shown under its heading.
    """

    name: str
    title: str
    kind: str
    x_title: str
    y_title: str
    columns: tuple[str, ...]
    rows: list[Row]
    shown: int | None = None
    note: str = ""
    #: The columns the chart draws (default: every column after the first).
    series: tuple[str, ...] = ()

    @property
    def table(self) -> list[Row]:
        """The rows the page's table and the chart show."""
        return self.rows if self.shown is None else self.rows[: self.shown]

    def svg(self) -> bytes:
        """The chart, as SVG bytes."""
        rows = self.table
        if self.kind == "matrix":
            return matrix_chart(self.title, self.x_title, self.y_title, rows)
        labels = [str(r[0]) for r in rows]
        drawn = self.series or self.columns[1:]
        series = {name: [r[self.columns.index(name)] for r in rows] for name in drawn}
        if self.kind == "line":
            return line_chart(self.title, self.x_title, self.y_title, labels, series)
        return bar_chart(
            self.title, self.x_title, self.y_title, labels, series, horizontal=self.kind == "hbar"
        )


def _records(ns: NationalStats) -> list[Figure]:
    return [
        Figure(
            "records_by_month",
            "Records by month",
            "line",
            "Month",
            "Records",
            ("month", "recorded", "recovered"),
            list(ns.by_month),
            note="Recorded: by the month of the record's event (or of its recording when it "
            "has no event date). Recovered: by the month of recovery.",
        ),
        Figure(
            "records_by_status",
            "Records by status",
            "bar",
            "Status",
            "Records",
            ("status", "records"),
            list(ns.by_status),
        ),
        Figure(
            "records_by_type",
            "Records by firearm type",
            "bar",
            "Firearm type",
            "Records",
            ("type", "records"),
            list(ns.by_type),
        ),
        Figure(
            "top_makes",
            f"Top {TOP} makes",
            "hbar",
            "Make",
            "Records",
            ("make", "records"),
            list(ns.by_make),
            TOP,
            note="The export holds every make.",
        ),
        Figure(
            "top_calibres",
            f"Top {TOP} calibres",
            "hbar",
            "Calibre",
            "Records",
            ("calibre", "records"),
            [(c or "unknown", n) for c, n in ns.by_calibre],
            TOP,
            note="The export holds every calibre.",
        ),
        Figure(
            "countries_of_manufacture",
            "Where our recorded firearms were made",
            "hbar",
            "Country of manufacture",
            "Records",
            ("country", "records"),
            [(c or "unknown", n) for c, n in ns.by_country],
            TOP_COUNTRIES,
            note="The inbound routes: records by country of manufacture (ISO 3166 alpha-3).",
        ),
    ]


def _federation(ns: NationalStats) -> list[Figure]:
    months: dict[str, list[int]] = {m: [0, 0, 0, 0] for m, _a, _b in ns.by_month}
    for p in ns.peer_months:
        for i, n in enumerate((p.made, p.answered, p.hits_given, p.hits_received)):
            months.setdefault(p.month, [0, 0, 0, 0])[i] += n
    counts = ("made", "answered", "hits_given", "hits_received")
    sent, received = dict(ns.traces_sent), dict(ns.traces_received)
    outcomes = sorted(set(sent) | set(received))
    return [
        Figure(
            "lookups_by_month",
            "Lookups and hits by month",
            "line",
            "Month",
            "Serials (lookups) and hits",
            ("month", *counts),
            [(m, *v) for m, v in sorted(months.items())],
            note="Made: serials our officers looked up, per peer asked. Answered: serials "
            "peers had us evaluate. Hits given: peers' lookups that matched our records; "
            "hits received: our lookups that peers confirmed.",
        ),
        Figure(
            "lookups_by_peer",
            "Lookups and hits by peer",
            "bar",
            "Peer",
            "Serials (lookups) and hits",
            ("peer", *counts, "hit_rate"),
            [
                (p.peer, p.made, p.answered, p.hits_given, p.hits_received, p.hit_rate)
                for p in ns.peers
            ],
            series=counts,
            note="Hit rate: hits received per serial looked up at the peer.",
        ),
        Figure(
            "traces_by_outcome",
            "Traces by outcome",
            "bar",
            "Outcome (or status while open)",
            "Traces",
            ("outcome", "sent", "received"),
            [(o, sent.get(o, 0), received.get(o, 0)) for o in outcomes],
            note=f"Overdue now: {ns.overdue_sent} sent (open past the deadline period), "
            f"{ns.overdue_received} received (queued here past their deadline).",
        ),
        Figure(
            "answer_times",
            "Answer time by peer",
            "bar",
            "Peer",
            "Hours",
            ("peer", "answers", "median_hours", "p90_hours"),
            [(t.peer, t.answers, t.median_hours, t.p90_hours) for t in ns.answer_times],
            series=("median_hours", "p90_hours"),
            note="From a hop's receipt of our trace to its last answer.",
        ),
        Figure(
            "trace_routes",
            "Routes our traces revealed",
            "matrix",
            "To",
            "From",
            ("from", "to", "traces"),
            list(ns.routes),
            note="Pairs of countries along our traces' chains, ending where the firearm "
            "surfaced (here); each trace counted once per pair.",
        ),
    ]


FIGURE_SETS: tuple[Callable[[NationalStats], list[Figure]], ...] = (_records, _federation)


def figures(ns: NationalStats) -> list[Figure]:
    """Every figure of the page, in order."""
    return [f for make in FIGURE_SETS for f in make(ns)]


def figure(ns: NationalStats, name: str) -> Figure | None:
    """The figure called `name`, or None."""
    return next((f for f in figures(ns) if f.name == name), None)


def csv_cell(value: object, neutralise: Callable[[str], str]) -> str:
    """A value as the CSV export writes it: text neutralised against formulas, numbers as
    they are (a negative total stays a number), None empty."""
    if value is None:
        return ""
    return neutralise(value) if isinstance(value, str) else str(value)


FIGURE_NAMES: Sequence[str] = (
    "records_by_month",
    "records_by_status",
    "records_by_type",
    "top_makes",
    "top_calibres",
    "countries_of_manufacture",
    "lookups_by_month",
    "lookups_by_peer",
    "traces_by_outcome",
    "answer_times",
    "trace_routes",
)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    actor: str
    at: datetime
    national: NationalStats


class Snapshots:
    """The figures each statistics page was drawn from, for its charts and exports.

    A page's charts are requested right after it, one figure each, and each would
    read every figure again (a dozen group-by queries over the records). The page
    keeps what it read here under a random id that its chart and export links
    carry (`snapshot=`), so they show exactly the figures of the table beside them
    and read nothing. A snapshot is only its reader's, for `TTL` at most; the
    newest `SIZE` are kept. Without a (live) snapshot a chart or export reads
    the figures again.
    """

    SIZE = 32
    TTL = timedelta(minutes=10)

    def __init__(self) -> None:
        self._kept: OrderedDict[str, _Snapshot] = OrderedDict()

    def keep(self, national: NationalStats, actor: str, now: datetime) -> str:
        """Keep the figures `actor` read; the snapshot's id."""
        snapshot_id = secrets.token_urlsafe(12)
        self._kept[snapshot_id] = _Snapshot(actor, now, national)
        while len(self._kept) > self.SIZE:
            self._kept.popitem(last=False)
        return snapshot_id

    def get(
        self, snapshot_id: str, actor: str, period: Period, now: datetime
    ) -> NationalStats | None:
        """The figures kept under `snapshot_id` for `actor` and `period`, if still fresh."""
        found = self._kept.get(snapshot_id)
        if found is None or found.actor != actor or found.national.period != period:
            return None
        if now - found.at > self.TTL:
            del self._kept[snapshot_id]
            return None
        return found.national


SNAPSHOTS = web.AppKey("stats_snapshots", Snapshots)
