"""What the statistics need stored: counts by SQL group-bys (`node/store/stats.py`).

Record counts come from `record_counts`, aggregates the record store keeps
exact in the transaction of every record change; the federation's figures
from the audit log, the hits, the evidence and the traces tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from node.stats.model import HopTime, PeerMonth, SentTrace, TraceHop
from node.stats.periods import Period


class StatsStorage(Protocol):
    """Group-by counts over this node's data, each over a period of months."""

    async def get_record_counts(self, dimension: str, period: Period) -> list[tuple[str, int]]:
        """Records by one of `RECORD_DIMENSIONS` (value, count), most first; only values
        with records."""
        ...

    async def get_record_months(self, series: str, period: Period) -> list[tuple[str, int]]:
        """Records by month (`YYYY-MM`, count) of one of `RECORD_SERIES`, in month order."""
        ...

    async def get_first_hit_months(self, period: Period) -> list[tuple[str, int]]:
        """Our records hit by foreign lookups, each in the first month of the period it
        was hit: (month, records)."""
        ...

    async def get_sent_traces(self, period: Period) -> list[SentTrace]:
        """The traces this node sent in the period, oldest first."""
        ...

    async def get_lookups_made(self, period: Period) -> list[PeerMonth]:
        """Serials our officers looked up, per peer asked and month."""
        ...

    async def get_lookups_answered(self, period: Period) -> list[PeerMonth]:
        """Serials peers had us evaluate, per peer and month."""
        ...

    async def get_hits_given(self, period: Period) -> list[PeerMonth]:
        """Hits on our records by peers' lookups, per peer and month."""
        ...

    async def get_hits_received(self, period: Period) -> list[PeerMonth]:
        """Hits of our lookups that peers confirmed (kept evidence), per peer and month."""
        ...

    async def get_trace_counts(self, period: Period, sent: bool) -> list[tuple[str, int]]:
        """Traces sent (`sent`) or received in the period, by outcome (or, while there is
        none, by status)."""
        ...

    async def get_hop_times(self, period: Period) -> list[HopTime]:
        """Each answered hop of the traces we sent in the period: its country, how long
        from its receipt of the trace to its last answer."""
        ...

    async def get_trace_hops(self, period: Period) -> list[TraceHop]:
        """The hops of the traces we sent in the period (one row per trace and position)."""
        ...

    async def get_overdue(
        self, now: datetime, urgent_s: float, routine_s: float
    ) -> tuple[int, int]:
        """Overdue traces: (sent, still open a deadline period after we sent them;
        received, queued here past the deadline they came with)."""
        ...
