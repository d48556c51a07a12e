"""When each hop of a trace must answer, which hops are late, and when to remind them
(PROTOCOL.md §3.8): pure rules, on the times the caller gives.

- Each priority has a deadline per hop (`model.TraceDeadlines`, `[trace]` in
  the config). Whoever sends a hop the trace (the originator to the first hop,
  each forwarding hop to the next) puts `now + deadline` in the
  `trace.request` it sends; the hop holds itself to that time.
- The originator holds each hop it has a receipt from to the time that hop
  says it received the trace (its signed `received_ms`) plus the
  originator's own deadline for the priority.
- A hop is overdue while it owes its answer past that time: not once its
  final answer is sent (whatever came of it), nor while it waits for the
  originator's reply to its question (`needs_information`). Once replied
  to, it owes its answer again, by its deadline or one period after the
  reply, whichever is later (`answer_due`).
- An overdue hop is reminded at most once per deadline period: the first
  reminder once its answer is overdue, each next one a whole period after
  the one before, for as long as it stays overdue. The times of the last
  reminders are stored, so a restart neither repeats nor skips one, and a
  node that was down for several periods sends one reminder, not one per
  period missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from node.protocol.envelope import from_ms
from node.trace.chain import CLOCK_SKEW_MS
from node.trace.forward import latest_receipts, replies_to
from node.trace.model import TraceItem
from node.trace.receipts import Outcome


def seconds_late(due_at: datetime | None, now: datetime) -> float:
    """How far past `due_at` it is now, in seconds (0 when not past, or no deadline)."""
    if due_at is None or now <= due_at:
        return 0.0
    return (now - due_at).total_seconds()


@dataclass(frozen=True, slots=True)
class HopDeadline:
    """A hop of a trace as the originator reckons its deadline."""

    position: int
    country: str
    due_at: datetime
    #: Seconds past `due_at` while the hop still owes its answer; 0 otherwise.
    overdue_seconds: float

    @property
    def overdue(self) -> bool:
        """Whether the hop is late with its answer."""
        return self.overdue_seconds > 0

    def to_json(self) -> dict[str, Any]:
        """The deadline keys of a hop in `trace show --json`."""
        return {
            "due_at": self.due_at.isoformat(),
            "overdue": self.overdue,
            "overdue_seconds": round(self.overdue_seconds),
        }


def answer_due(deadline: datetime, replied_at: datetime | None, period: timedelta) -> datetime:
    """When a hop owes its answer: by `deadline`, or one `period` after the originator's
    reply to its question (`replied_at`), whichever is later."""
    return deadline if replied_at is None else max(deadline, replied_at + period)


def chain_deadlines(
    items: Sequence[TraceItem], period: timedelta, now: datetime
) -> list[HopDeadline]:
    """Each hop the originator holds a receipt of (`items`: a trace's signed items), with
    when its answer is due (its `received_ms` + `period`, `answer_due` once replied to) and
    how late it is at `now`. A hop whose due time no date can hold is left out."""
    out = []
    for position, held in latest_receipts(items).items():
        receipt = held.receipt
        replied = None
        if receipt.outcome is Outcome.NEEDS_INFORMATION:
            times = [r.replied_ms for r in replies_to(items, receipt.answer_hash)]
            replied = max(times, default=None)
        owes = receipt.outcome is None or (
            receipt.outcome is Outcome.NEEDS_INFORMATION and replied is not None
        )
        try:
            due = answer_due(
                from_ms(receipt.received_ms) + period,
                None if replied is None else from_ms(replied),
                period,
            )
        except OverflowError:  # a time past the year 9999, as signed: never due
            continue
        late = seconds_late(due, now) if owes else 0.0
        out.append(HopDeadline(position, receipt.country, due, late))
    return out


def may_be_late(created_at: datetime, period: timedelta, now: datetime) -> bool:
    """Whether a hop of a trace created at `created_at` can be late at `now`: no hop
    received it before then (less the clock skew a chain allows), so none is due sooner
    than a period after. Lets the originator skip reading the chains of recent traces."""
    return now > created_at + period - timedelta(milliseconds=CLOCK_SKEW_MS)


def reminder_due(
    due_at: datetime, last_reminded: datetime | None, period: timedelta, now: datetime
) -> bool:
    """Whether an overdue hop is sent a reminder now: the first once `due_at` has passed,
    each next one a whole `period` after the last (`last_reminded`)."""
    if now <= due_at:
        return False
    return last_reminded is None or now >= last_reminded + period
