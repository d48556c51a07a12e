"""The statistics of traces, on SQLite and PostgreSQL: outcomes (a serial counted once),
answer times per hop, overdue traces and the routes the chains revealed, from trace rows
stored as the trace services store them (signed chains from tests/trace_chains.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from node.app import Node
from node.stats.periods import Month, Period
from node.store.database import Transaction
from node.store.trace import add_item_in, add_trace_in
from node.trace.model import ItemKind, StoredTrace, TraceItem, TraceStatus
from node.trace.receipts import AnswerStatement, Outcome, ReceiptStatement, digest, read
from tests.trace_chains import DEFAULT_HOPS, T0, build

HOUR = 3_600_000
MARCH = Period(Month(2025, 3), Month(2025, 3))
#: (received, answered) ms of each hop of trace A: 2 h, 4 h and 1 h to answer.
TIMES = {
    1: (T0, T0 + 2 * HOUR),
    2: (T0 + 3 * HOUR, T0 + 7 * HOUR),
    3: (T0 + 8 * HOUR, T0 + 9 * HOUR),
}


def _trace(position: int, status: TraceStatus, created: datetime, **kw: object) -> StoredTrace:
    values: dict[str, object] = {
        "id": 0,
        "trace_id": bytes([position + 1]) * 16,
        "position": position,
        "originator": "FRA",
        "prev_country": None,
        "priority": "routine",
        "status": status,
        "request": build().request,
        "created_at": created,
        "deadline_at": None,
        "outcome": None,
        "next_country": None,
        "note": "",
        "force_reason": "",
    } | kw
    return StoredTrace(**values)  # type: ignore[arg-type]


def _items(
    chain_pending: list[bytes], chain_final: list[bytes], answers: list[bytes]
) -> list[TraceItem]:
    items = []
    for kind, signed in (
        *((ItemKind.RECEIPT, r) for r in chain_pending),
        *((ItemKind.RECEIPT, r) for r in chain_final),
        *((ItemKind.ANSWER, a) for a in answers),
    ):
        if kind is ItemKind.RECEIPT:
            s = read(signed, ReceiptStatement)[1]
            items.append(
                TraceItem(s.position, kind, s.country, signed, digest(signed), s.signed_ms)
            )
        else:
            a = read(signed, AnswerStatement)[1]
            items.append(TraceItem(a.position, kind, a.country, signed, digest(signed), T0))
    return items


@pytest.fixture
async def traced(node: Node) -> Node:
    """A: sent 2025-03-01, answered (AUT > DEU > ITA, end of chain). B: the same serial
    sent 2025-03-05, open, AUT's receipt pending. C: received from AUT, queued past its
    deadline. The clock reads 2026-01-01."""
    pending_hops = tuple((c, None, None) for c, _o, _n in DEFAULT_HOPS)
    pending = build(pending_hops, times=TIMES)
    final = build(DEFAULT_HOPS, times=TIMES)
    open_b = build(pending_hops[:1], trace_id=bytes([9]) * 16)
    now = node.clock.now()
    async with node.db.transaction() as tx:
        assert isinstance(tx, Transaction)
        a = await add_trace_in(
            tx,
            _trace(
                0,
                TraceStatus.ANSWERED,
                datetime(2025, 3, 1, tzinfo=UTC),
                outcome=Outcome.END_OF_CHAIN.value,
            ),
        )
        for item in _items(pending.receipts, final.receipts, final.answers):
            await add_item_in(tx, a, item, now)
        b = await add_trace_in(
            tx,
            _trace(0, TraceStatus.OPEN, datetime(2025, 3, 5, tzinfo=UTC), trace_id=bytes([9]) * 16),
        )
        for item in _items(open_b.receipts, [], []):
            await add_item_in(tx, b, item, now)
        await add_trace_in(
            tx,
            _trace(
                2,
                TraceStatus.QUEUED,
                datetime(2025, 3, 7, tzinfo=UTC),
                prev_country="AUT",
                deadline_at=now - timedelta(days=1),
            ),
        )
    return node


async def test_trace_outcomes_count_a_serial_once(traced: Node) -> None:
    # A and B trace the same serial: B, the latest, is not answered yet.
    assert await traced.stats.compute("trace_outcomes", MARCH) == {
        "end_of_chain": 0,
        "not_found": 0,
        "refused": 0,
        "unanswered": 1,
    }
    feb = Period(Month(2025, 2), Month(2025, 2))
    assert sum((await traced.stats.compute("trace_outcomes", feb)).values()) == 0


async def test_trace_figures(traced: Node) -> None:
    stats = traced.stats
    assert await stats.compute("traces_sent", MARCH) == {"end_of_chain": 1, "open": 1}
    assert await stats.compute("traces_received", MARCH) == {"queued": 1}
    national = await stats.national(MARCH)
    times = {t.peer: (t.answers, t.median_hours) for t in national.answer_times}
    assert times == {"AUT": (1, 2.0), "DEU": (1, 4.0), "ITA": (1, 1.0)}
    assert (national.overdue_sent, national.overdue_received) == (1, 1)
    assert national.routes == [
        ("AUT", "DEU", 1),
        ("AUT", "FRA", 1),
        ("DEU", "ITA", 1),
        ("ITA", "FRA", 1),
    ]
    # the same figures as `stats local` reports (one cell each)
    p90 = {t.peer: t.p90_hours for t in national.answer_times}
    assert await stats.compute("trace_answer_times", MARCH) == {
        f"{peer}/{name}": value
        for peer, (answers, median) in times.items()
        for name, value in (
            ("answers", answers),
            ("median_hours", median),
            ("p90_hours", p90[peer]),
        )
    }
    assert await stats.compute("traces_overdue", MARCH) == {"sent": 1, "received": 1}
    assert await stats.compute("trace_routes", MARCH) == {
        "AUT>DEU": 1,
        "AUT>FRA": 1,
        "DEU>ITA": 1,
        "ITA>FRA": 1,
    }
