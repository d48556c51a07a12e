"""Deadlines and reminders of traces (issue 9, PROTOCOL.md §3.7) on the harness's fake
clock: the deadlines come from the config, the originator sets the first hop's and each
forwarding hop the next one's; a hop that does not answer is overdue on both sides once its
deadline passes and is reminded at most once per deadline period, straight or through the
chain, also across a restart; an answered hop never is; bad reminders are refused."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w

from node.app import Node
from node.clock import FakeClock, SystemClock
from node.config import CONFIG_NAME, config_from_dict
from node.errors import ConfigError, PeerRefusedError
from node.protocol.envelope import from_ms, to_ms
from node.protocol.model import Service
from node.server import remind_overdue
from node.store.trace import TraceStore
from node.store.work import unit_of_work
from node.trace.deadlines import answer_due, chain_deadlines, may_be_late, reminder_due
from node.trace.hop import item_of
from node.trace.messages import MAX_TIME_MS
from node.trace.model import HopReminders, StoredTrace, TraceDeadlines, TraceStatus
from node.trace.receipts import Outcome, ReplyStatement, digest, sign_reply
from node.trace.replies import reply_item
from node.trace.service import TraceEntry
from tests.harness import Federation, Member, run_cli
from tests.test_config import GOOD
from tests.test_trace_hop import ACTOR, custody, event, fields
from tests.trace_chains import KEYS, TRACE_ID, build
from tests.trace_chains import T0 as CHAIN_T0

ROUTINE = timedelta(days=10)
#: ITA's custody events of B-1: made there, exported to DEU.
EXPORTED_TO_DEU = (
    event("manufactured", "2019-01-01", "Beretta SpA"),
    event("exported", "2019-02-01", "Waffen GmbH", "DEU"),
)
SECOND = timedelta(seconds=1)


async def federation(
    tmp_path: Path, pairs: tuple[tuple[str, str], ...], clock: FakeClock | None = None
) -> Federation:
    """FRA, ITA, DEU, peers as `pairs` say (both ways, traces allowed); ITA made B-1 and
    exported it to DEU, where nothing is known of it (an officer must answer there)."""
    fed = Federation(tmp_path) if clock is None else Federation(tmp_path, clock=clock)
    for country in ("FRA", "ITA", "DEU"):
        await fed.add(country)
    for a, b in pairs:
        for one, other in ((fed[a], fed[b]), (fed[b], fed[a])):
            await one.n.peers.add(other.url, other.country, other.fingerprint, "harness")
            await one.n.peers.set_policy(other.country, {Service.TRACES}, "harness")
    await custody(fed, "ITA", tmp_path, *EXPORTED_TO_DEU)
    return fed


@pytest.fixture
async def direct(tmp_path: Path) -> AsyncIterator[Federation]:
    """Every node a peer of every other."""
    fed = await federation(tmp_path, (("FRA", "ITA"), ("ITA", "DEU"), ("FRA", "DEU")))
    yield fed
    await fed.close()


@pytest.fixture
async def relayed(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA - ITA - DEU: FRA and DEU are not peers."""
    fed = await federation(tmp_path, (("FRA", "ITA"), ("ITA", "DEU")))
    yield fed
    await fed.close()


async def set_deadlines(fed: Federation, country: str, urgent_s: int, routine_s: int) -> None:
    """Write `[trace]` into a node's config file and restart it."""
    path = fed[country].data_dir / CONFIG_NAME
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw["trace"] = {"urgent_deadline_s": urgent_s, "routine_deadline_s": routine_s}
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    await fed.stop(country)
    await fed.start(country)


def ms(moment: datetime | None) -> int:
    """A time as the wire carries it (whole milliseconds)."""
    assert moment is not None
    return to_ms(moment)


def move_to(fed: Federation, moment: datetime) -> None:
    fed.clock.advance((moment - fed.clock.now()).total_seconds())


async def incoming(member: Member) -> TraceEntry:
    """The one trace a hop holds, as `trace list --incoming` gives it."""
    (entry,) = await member.f.traces.listing(incoming=True)
    return entry


async def hop_json(fed: Federation, trace_id: bytes, position: int) -> dict[str, Any]:
    """Hop `position` as FRA's `trace show --json` gives it."""
    shown = (await fed["FRA"].f.traces.show(trace_id)).to_json()
    return dict(shown["hops"][position - 1])


async def audited(member: Member, action: str) -> list[dict[str, Any]]:
    return [{"actor": e.actor, **e.details} for e in await member.n.audit.recent(action=action)]


async def test_a_silent_hop_is_overdue_on_both_sides_and_reminded_once_per_period(
    direct: Federation,
) -> None:
    fed, fra, ita = direct, direct["FRA"], direct["ITA"]
    before = fed.clock.now()
    started = await fra.f.traces.start(fields(fed, "Z-9"), ACTOR)  # ITA knows nothing of Z-9
    await fed.settle()
    hop = (await fra.f.traces.show(started.trace_id)).report.hops[0]
    assert (hop.country, hop.outcome) == ("ITA", None)
    due = from_ms(hop.received_ms) + ROUTINE  # FRA's reckoning
    assert ms((await incoming(ita)).trace.deadline_at) == ms(before + ROUTINE)  # as FRA set it

    move_to(fed, due - SECOND)
    assert await fra.f.reminders.sweep() == 0
    assert (await hop_json(fed, started.trace_id, 1))["overdue"] is False
    assert not (await incoming(ita)).overdue
    assert await fra.f.traces.listing(incoming=False, overdue_only=True) == []

    move_to(fed, due + SECOND)
    shown = await hop_json(fed, started.trace_id, 1)
    assert shown["overdue"] is True and shown["overdue_seconds"] == 1
    assert shown["due_at"] == due.isoformat() and shown["reminders"] == 0
    (late,) = await fra.f.traces.listing(incoming=False, overdue_only=True)
    assert late.overdue_hops == ("ITA",) and late.to_json()["overdue_seconds"] == 1
    assert (await incoming(ita)).overdue  # and at the hop

    assert await fra.f.reminders.sweep() == 1
    assert await fra.f.reminders.sweep() == 0  # not twice at once
    await fed.settle()
    at_ita = await incoming(ita)
    assert at_ita.reminders == 1 and at_ita.reminded_at is not None
    assert at_ita.to_json()["reminders"] == 1
    assert (await hop_json(fed, started.trace_id, 1))["reminders"] == 1
    [received] = await audited(ita, "trace.reminder")
    assert received["actor"] == "peer:FRA" and received["due"] == due.isoformat()
    [sent] = await audited(fra, "trace.remind")
    assert (sent["country"], sent["count"], sent["via"]) == ("ITA", 1, None)

    first = fed.clock.now()
    move_to(fed, first + ROUTINE - timedelta(minutes=1))  # not a whole period since
    assert await fra.f.reminders.sweep() == 0
    move_to(fed, first + ROUTINE)
    assert await fra.f.reminders.sweep() == 1
    await fed.settle()
    assert (await incoming(ita)).reminders == 2

    await ita.f.trace_hop.answer(started.trace_id, Outcome.NOT_FOUND, {}, None, "officer")
    await fed.settle()
    fed.clock.advance(3 * ROUTINE.total_seconds())
    assert await fra.f.reminders.sweep() == 0  # answered: never overdue again
    assert (await hop_json(fed, started.trace_id, 1))["overdue"] is False
    assert not (await incoming(ita)).overdue
    assert await fra.f.traces.listing(incoming=False, overdue_only=True) == []
    assert (await incoming(ita)).reminders == 2


async def test_a_question_stops_the_clock_and_the_reply_restarts_it(direct: Federation) -> None:
    fed, fra, ita = direct, direct["FRA"], direct["ITA"]
    started = await fra.f.traces.start(fields(fed, "Z-9"), ACTOR)
    await fed.settle()
    hop = (await fra.f.traces.show(started.trace_id)).report.hops[0]
    due = from_ms(hop.received_ms) + ROUTINE
    question = {"question": "which import marking?"}
    await ita.f.trace_hop.answer(
        started.trace_id, Outcome.NEEDS_INFORMATION, question, None, "officer"
    )
    await fed.settle()
    move_to(fed, due + DAY)  # past the deadline, but ITA waits for FRA
    assert await fra.f.reminders.sweep() == 0
    assert (await hop_json(fed, started.trace_id, 1))["overdue"] is False
    assert not (await incoming(ita)).overdue

    await fra.f.traces.reply(started.trace_id, "it reads PB", ACTOR)
    replied = fed.clock.now()
    await fed.settle()
    assert (await incoming(ita)).trace.status is TraceStatus.QUEUED  # ITA owes its answer
    assert await fra.f.reminders.sweep() == 0  # ... by a period after the reply
    assert not (await incoming(ita)).overdue
    move_to(fed, replied + ROUTINE + SECOND)
    assert (await hop_json(fed, started.trace_id, 1))["overdue"] is True
    assert (await incoming(ita)).overdue
    assert await fra.f.reminders.sweep() == 1
    await fed.settle()
    assert (await incoming(ita)).reminders == 1


async def test_the_sweep_runs_on_the_clock_and_a_restart_repeats_nothing(
    direct: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed, fra = direct, direct["FRA"]
    started = await fra.f.traces.start(fields(fed, "Z-9"), ACTOR)
    await fed.settle()
    hop = (await fra.f.traces.show(started.trace_id)).report.hops[0]
    due = from_ms(hop.received_ms) + ROUTINE

    swept: asyncio.Queue[int] = asyncio.Queue()
    sweep = fra.f.reminders.sweep

    async def sweep_and_tell() -> int:
        sent = await sweep()
        swept.put_nowait(sent)
        return sent

    monkeypatch.setattr(fra.f.reminders, "sweep", sweep_and_tell)
    stop = asyncio.Event()
    loop = asyncio.create_task(remind_overdue(fra.n, fra.f, stop, every_s=60))
    try:
        assert await asyncio.wait_for(swept.get(), 30) == 0  # at start: nothing due
        move_to(fed, due + SECOND)  # the sweep's timer fires
        assert await asyncio.wait_for(swept.get(), 30) == 1
        fed.clock.advance(60)
        assert await asyncio.wait_for(swept.get(), 30) == 0
    finally:
        stop.set()
        await loop

    await fed.stop("FRA")
    await fed.start("FRA")
    assert await fed["FRA"].f.reminders.sweep() == 0  # the reminder's time is stored
    fed.clock.advance(ROUTINE.total_seconds())
    assert await fed["FRA"].f.reminders.sweep() == 1
    await fed.settle()
    assert (await incoming(fed["ITA"])).reminders == 2


async def test_deadlines_come_from_the_config_and_reminders_go_through_the_chain(
    relayed: Federation,
) -> None:
    fed = relayed
    await set_deadlines(fed, "FRA", 3600, 86400)
    await set_deadlines(fed, "ITA", 7200, 86400)
    urgent = fields(fed, priority="urgent", justification="a homicide")
    before = fed.clock.now()
    started = await fed["FRA"].f.traces.start(urgent, ACTOR)
    await fed.settle()
    ita_hop, deu_hop = (await fed["FRA"].f.traces.show(started.trace_id)).report.hops
    assert (ita_hop.outcome, deu_hop.country, deu_hop.outcome) == (Outcome.FORWARDED, "DEU", None)
    # FRA set ITA's deadline, ITA (forwarding when it answered) set DEU's.
    ita_deadline = (await incoming(fed["ITA"])).trace.deadline_at
    assert ms(ita_deadline) == ms(before + timedelta(hours=1))
    assert ita_hop.answered_ms is not None
    deu_deadline = from_ms(ita_hop.answered_ms) + timedelta(hours=2)
    assert (await incoming(fed["DEU"])).trace.deadline_at == deu_deadline

    # FRA holds DEU to its own deadline (1 h) from DEU's receipt; DEU itself to 2 h.
    fra_due = from_ms(deu_hop.received_ms) + timedelta(hours=1)
    move_to(fed, fra_due + SECOND)
    assert (await hop_json(fed, started.trace_id, 2))["overdue"] is True
    assert (await hop_json(fed, started.trace_id, 1))["overdue"] is False  # ITA answered
    assert not (await incoming(fed["DEU"])).overdue
    assert await fed["FRA"].f.reminders.sweep() == 1
    [queued] = [m for m in await fed["FRA"].n.delivery.messages() if m.type == "trace.reminder"]
    assert queued.recipient == "ITA"  # FRA is not DEU's peer: through the first hop
    await fed.settle()
    [relayed_on] = [m for m in await fed["ITA"].n.delivery.messages() if m.type == "trace.reminder"]
    assert relayed_on.recipient == "DEU"
    at_deu = await incoming(fed["DEU"])
    assert at_deu.reminders == 1
    assert (await audited(fed["DEU"], "trace.reminder"))[0]["actor"] == "peer:ITA"
    assert (await audited(fed["FRA"], "trace.remind"))[0]["via"] == "ITA"
    move_to(fed, deu_deadline + SECOND)
    assert (await incoming(fed["DEU"])).overdue


async def test_an_answered_chain_is_never_overdue(direct: Federation, tmp_path: Path) -> None:
    fed = direct
    sold = tmp_path / "sold"
    sold.mkdir()
    await custody(fed, "DEU", sold, event("sold", "2020-05-05", "Max Muster"))
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()
    fed.clock.advance(3 * ROUTINE.total_seconds())
    view = (await fed["FRA"].f.traces.show(started.trace_id)).to_json()
    assert view["status"] == "answered" and view["overdue"] is False
    assert [h["overdue"] for h in view["hops"]] == [False, False]
    assert await fed["FRA"].f.reminders.sweep() == 0
    for country, side in (("FRA", False), ("ITA", True), ("DEU", True)):
        assert await fed[country].f.traces.listing(side, overdue_only=True) == []


def reminder(trace_id: bytes, position: int, country: str, **extra: Any) -> dict[str, Any]:
    body = {
        "trace_id": trace_id,
        "position": position,
        "country": country,
        "due_ms": to_ms(datetime(2026, 1, 1, tzinfo=UTC)),
        "delivery_id": bytes(range(16)),
    }
    return body | extra


async def refused(fed: Federation, sender: str, to: str, body: dict[str, Any]) -> str:
    """What `to` answers `sender`'s `trace.reminder`: its error code and message."""
    peer = await fed[sender].n.peers.get(to)
    with pytest.raises(PeerRefusedError) as answer:
        await fed[sender].f.client.request(peer, "trace.reminder", body)
    return f"{answer.value.peer_code}: {answer.value}"


async def test_bad_reminders_are_refused_and_change_nothing(direct: Federation) -> None:
    fed = direct
    started = await fed["FRA"].f.traces.start(fields(fed, "Z-9"), ACTOR)
    await fed.settle()
    tid = started.trace_id
    cases = [
        ("FRA", "ITA", reminder(bytes(16), 1, "ITA"), "protocol: ", "has no hop 1 here"),
        ("FRA", "ITA", reminder(tid, 1, "DEU"), "protocol: ", "is ITA here, not DEU"),
        ("FRA", "ITA", reminder(tid, 2, "ITA"), "protocol: ", "cannot relay it"),
        ("DEU", "ITA", reminder(tid, 1, "ITA"), "protocol: ", "not DEU"),
        ("ITA", "FRA", reminder(tid, 1, "ITA"), "protocol: ", "has no hop 1 here"),
        ("FRA", "ITA", reminder(tid, 1, "ITAL"), "malformed: ", "country"),
        ("FRA", "ITA", reminder(tid, 0, "ITA"), "malformed: ", "position"),
        ("FRA", "ITA", reminder(tid, 1, "ITA", due_ms=MAX_TIME_MS + 1), "malformed: ", "due_ms"),
        ("FRA", "ITA", reminder(tid, 1, "ITA", extra=1), "malformed: ", "extra"),
    ]
    for sender, to, body, code, message in cases:
        answer = await refused(fed, sender, to, body)
        assert answer.startswith(code) and message in answer, (body, answer)
    body = reminder(tid, 1, "ITA")
    del body["due_ms"]
    assert (await refused(fed, "FRA", "ITA", body)).startswith("malformed: ")
    assert (await incoming(fed["ITA"])).reminders == 0
    assert await audited(fed["ITA"], "trace.reminder") == []
    # A good one is still taken, once per delivery id.
    peer = await fed["FRA"].n.peers.get("ITA")
    for _ in range(2):
        await fed["FRA"].f.client.request(peer, "trace.reminder", reminder(tid, 1, "ITA"))
    assert (await incoming(fed["ITA"])).reminders == 1


async def test_a_trace_request_with_a_deadline_past_any_date_is_malformed(
    direct: Federation,
) -> None:
    await direct["FRA"].f.traces.start(fields(direct, "Z-9"), ACTOR)
    [sent] = [m for m in await direct["FRA"].n.delivery.messages() if m.type == "trace.request"]
    body = msgspec.msgpack.decode(sent.body) | {"deadline_ms": 2**63 - 1}
    peer = await direct["FRA"].n.peers.get("ITA")
    with pytest.raises(PeerRefusedError) as answer:
        await direct["FRA"].f.client.request(peer, "trace.request", body)
    assert answer.value.peer_code == "malformed" and "deadline_ms" in str(answer.value)
    assert await direct["ITA"].f.traces.listing(incoming=True) == []


# -- the rules, on their own ------------------------------------------------------------


T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_reminder_is_due_at_the_deadline_then_once_per_period() -> None:
    assert not reminder_due(T0, None, DAY, T0)  # at the deadline itself: not yet late
    assert reminder_due(T0, None, DAY, T0 + SECOND)
    assert not reminder_due(T0, T0 + SECOND, DAY, T0 + DAY)
    assert reminder_due(T0, T0 + SECOND, DAY, T0 + DAY + SECOND)
    # Down for a week: one reminder on return, not seven.
    assert reminder_due(T0, T0 + SECOND, DAY, T0 + 7 * DAY)
    assert not reminder_due(T0, T0 + 7 * DAY, DAY, T0 + 7 * DAY + SECOND)


def test_a_trace_younger_than_a_period_has_no_late_hop() -> None:
    skew = timedelta(minutes=5)  # PROTOCOL.md §1.5's window, which a chain allows
    assert not may_be_late(T0, DAY, T0 + DAY - skew)
    assert may_be_late(T0, DAY, T0 + DAY - skew + SECOND)


def chain_items(outcome: Outcome | None, replied_ms: int | None = None) -> list[Any]:
    """The items an originator holds of a one-hop chain (AUT received it at CHAIN_T0 +
    10 s), and its reply to AUT's question if `replied_ms`."""
    chain = build((("AUT", outcome, "DEU" if outcome is Outcome.FORWARDED else None),))
    items = [item_of(r) for r in chain.receipts] + [item_of(a) for a in chain.answers]
    if replied_ms is not None:
        reply = ReplyStatement(
            TRACE_ID, 1, "FRA", digest(chain.answers[0]), replied_ms, "the marking reads X"
        )
        items.append(reply_item(sign_reply(KEYS["FRA"], reply)))
    return items


RECEIVED = from_ms(CHAIN_T0 + 10_000)


@pytest.mark.parametrize(
    ("outcome", "late"),
    [
        (None, True),
        (Outcome.NEEDS_INFORMATION, False),  # it waits for the originator's reply
        (Outcome.FORWARDED, False),
        (Outcome.END_OF_CHAIN, False),
        (Outcome.NOT_FOUND, False),
        (Outcome.REFUSED, False),
    ],
)
def test_only_a_hop_that_owes_its_answer_is_overdue(outcome: Outcome | None, late: bool) -> None:
    now = RECEIVED + DAY + 90 * SECOND
    (due,) = chain_deadlines(chain_items(outcome), DAY, now)
    assert (due.position, due.country, due.due_at) == (1, "AUT", RECEIVED + DAY)
    assert due.overdue is late
    assert due.overdue_seconds == (90 if late else 0)


def test_a_hop_replied_to_owes_its_answer_a_period_after_the_reply() -> None:
    replied = RECEIVED + 3 * DAY
    items = chain_items(Outcome.NEEDS_INFORMATION, to_ms(replied))
    (due,) = chain_deadlines(items, DAY, replied + DAY)
    assert due.due_at == replied + DAY and not due.overdue
    (due,) = chain_deadlines(items, DAY, replied + DAY + SECOND)
    assert due.overdue_seconds == 1
    assert answer_due(T0 + DAY, T0, DAY) == T0 + DAY  # a quick reply moves nothing
    assert answer_due(T0 + DAY, None, DAY) == T0 + DAY


def test_a_receipt_time_no_date_can_hold_is_never_due() -> None:
    chain = build((("AUT", None, None),), times={1: (MAX_TIME_MS, 0)})
    assert chain_deadlines([item_of(chain.receipts[0])], DAY, T0) == []


def test_a_hop_s_trace_is_overdue_while_queued_past_its_deadline() -> None:
    queued = StoredTrace(
        *(1, b"t" * 16, 1, "FRA", "FRA", "routine", TraceStatus.QUEUED, b"", T0),
        deadline_at=T0,
        outcome=None,
        next_country=None,
        note="",
        force_reason="",
    )
    later = T0 + 90 * SECOND
    assert queued.overdue(later) and not queued.overdue(T0)
    for status in (TraceStatus.WAITING, TraceStatus.ANSWERED):  # asked, or answered
        assert not StoredTrace(**{**_fields(queued), "status": status}).overdue(later)


def _fields(trace: StoredTrace) -> dict[str, Any]:
    return {name: getattr(trace, name) for name in StoredTrace.__slots__}


def test_the_deadlines_by_priority() -> None:
    deadlines = TraceDeadlines()
    assert deadlines.period("urgent") == timedelta(hours=24)
    assert deadlines.period("routine") == timedelta(days=10)
    with pytest.raises(ValueError, match="not a trace priority: 'soon'"):
        deadlines.period("soon")


# -- the config ---------------------------------------------------------------------------


def test_the_deadlines_default_and_are_read(tmp_path: Path) -> None:
    assert config_from_dict(GOOD, tmp_path, "c").trace_deadlines == TraceDeadlines()
    raw = GOOD | {"trace": {"urgent_deadline_s": 7200, "routine_deadline_s": 3 * 86400.5}}
    deadlines = config_from_dict(raw, tmp_path, "c").trace_deadlines
    assert deadlines == TraceDeadlines(timedelta(hours=2), timedelta(days=3, seconds=1.5))
    only = config_from_dict(GOOD | {"trace": {"routine_deadline_s": 86400}}, tmp_path, "c")
    assert only.trace_deadlines == TraceDeadlines(timedelta(hours=24), timedelta(days=1))


DEADLINE = "must be a number at least 60 and at most 31,622,400"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"urgent_deadline_s": 0}, f"trace.urgent_deadline_s {DEADLINE}, got 0"),
        ({"urgent_deadline_s": 59.9}, f"trace.urgent_deadline_s {DEADLINE}"),
        ({"routine_deadline_s": -86400}, f"trace.routine_deadline_s {DEADLINE}"),
        ({"routine_deadline_s": "10d"}, f"trace.routine_deadline_s {DEADLINE}, got '10d'"),
        ({"routine_deadline_s": True}, f"trace.routine_deadline_s {DEADLINE}"),
        ({"routine_deadline_s": float("nan")}, f"trace.routine_deadline_s {DEADLINE}"),
        ({"routine_deadline_s": 400 * 86400}, f"trace.routine_deadline_s {DEADLINE}"),
        (
            {"urgent_deadline_s": 86400 * 11},
            "trace.urgent_deadline_s (950400) must not exceed trace.routine_deadline_s (864000)",
        ),
        ({"urgent_deadline": 3600}, "unknown key(s) in [trace]: urgent_deadline"),
    ],
)
def test_bad_deadlines_are_named(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(GOOD | {"trace": table}, tmp_path, "config.toml")
    assert str(info.value).startswith("config.toml: ")
    assert message in str(info.value)


# -- the command line (it runs on the system clock: the federation's is set back) ----------


async def test_the_cli_lists_overdue_traces_first_with_how_late(tmp_path: Path) -> None:
    month_ago = FakeClock(SystemClock().now() - timedelta(days=30))
    fed = await federation(tmp_path, (("FRA", "ITA"), ("ITA", "DEU")), clock=month_ago)
    try:
        late = await fed["FRA"].f.traces.start(fields(fed, "Z-9"), ACTOR)
        await fed.settle()
        fed.clock.advance(ROUTINE.total_seconds() + 60)
        assert await fed["FRA"].f.reminders.sweep() == 1
        await fed.settle()
        fed.clock.advance(15 * DAY.total_seconds())  # five days ago: not due for five more
        fresh = await fed["FRA"].f.traces.start(fields(fed, "Z-8"), ACTOR)
        await fed.settle()
        dirs = {c: str(fed[c].data_dir) for c in ("FRA", "ITA")}

        listed = await lines(run_cli("trace", "list", "--json", "--data-dir", dirs["FRA"]))
        assert [t["trace_id"] for t in listed] == [late.trace_id.hex(), fresh.trace_id.hex()]
        assert listed[0]["overdue"] is True and listed[1]["overdue"] is False
        assert listed[0]["overdue_seconds"] >= 20 * 86400 and listed[0]["reminders"] == 1
        assert listed[0]["overdue_hops"] == ["ITA"]
        only = await lines(
            run_cli("trace", "list", "--overdue", "--json", "--data-dir", dirs["FRA"])
        )
        assert [t["trace_id"] for t in only] == [late.trace_id.hex()]
        code, out, err = await run_cli("trace", "list", "--overdue", "--data-dir", dirs["FRA"])
        assert code == 0, err
        assert "OVERDUE by 20 d" in out and "(ITA)" in out and "1 reminder(s)" in out

        hop_side = await lines(
            run_cli("trace", "list", "--incoming", "--overdue", "--json", "--data-dir", dirs["ITA"])
        )
        assert [(t["trace_id"], t["reminders"]) for t in hop_side] == [(late.trace_id.hex(), 1)]
        assert hop_side[0]["overdue_seconds"] >= 20 * 86400

        code, out, err = await run_cli(
            "trace", "show", late.trace_id.hex(), "--json", "--data-dir", dirs["FRA"]
        )
        assert code == 0, err
        shown = json.loads(out)
        (hop,) = shown["hops"]
        assert shown["overdue"] is True and hop["overdue"] is True and hop["reminders"] == 1
        assert hop["overdue_seconds"] == shown["overdue_seconds"] >= 20 * 86400
    finally:
        await fed.close()


async def lines(command: Any) -> list[dict[str, Any]]:
    code, out, err = await command
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


# -- the store, on each backend -----------------------------------------------------------


async def test_reminders_are_counted_per_hop_in_the_store(node: Node) -> None:
    trace = StoredTrace(
        *(0, b"r" * 16, 0, "FRA", None, "urgent", TraceStatus.OPEN, b"", T0),
        deadline_at=None,
        outcome=None,
        next_country="ITA",
        note="",
        force_reason="",
    )
    async with unit_of_work(node.db)() as work:
        pk = await work.add_trace(trace)
        assert await work.add_reminder(pk, 2, "DEU", T0) == 1
        assert await work.add_reminder(pk, 2, "DEU", T0 + DAY) == 2
        assert await work.add_reminder(pk, 1, "ITA", T0 + SECOND) == 1
        inside = await work.get_reminders(pk)
    kept = await TraceStore(node.db).get_reminders(pk)
    assert (
        kept
        == inside
        == [
            HopReminders(1, "ITA", 1, T0 + SECOND),
            HopReminders(2, "DEU", 2, T0 + DAY),
        ]
    )
    assert await TraceStore(node.db).get_reminders(pk + 1) == []
    # The list's figures: all hops' reminders of a trace, and the latest one's time.
    assert await TraceStore(node.db).reminder_totals() == {pk: (3, T0 + DAY)}
    store = TraceStore(node.db)
    assert [t.id for t in await store.list_traces(incoming=False)] == [pk]
    assert await store.list_traces(incoming=True) == []
    assert await store.list_traces(TraceStatus.QUEUED, incoming=False) == []
