"""Traces end to end between real nodes over loopback HTTP (issue 9, "Tests").

FRA recovers a Beretta made in ITA, exported to AUT, then to CZE, then to POL, where a
dealer sold it to a licence holder: a five-country chain that each hop answers from its
own custody registry (`node.trace.synthetic.supply_chain`). One federation serves every
test of the module that leaves it as it found it; the crash test has its own, with one hop
running as a real `iarms-node run` process that is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from node.app import Node
from node.clock import SystemClock
from node.config import load_config
from node.errors import PeerRefusedError
from node.protocol.envelope import read_header
from node.protocol.model import OutboxStatus, Service
from node.trace.export import ChainFile, verify_file
from node.trace.messages import MAX_REPORT_ITEMS
from node.trace.model import CUSTODY_COLUMNS, ItemKind, TraceStatus
from node.trace.receipts import Outcome, ReceiptStatement, read, sign_receipt
from node.trace.synthetic import supply_chain
from tests.harness import Federation, Member, run_cli
from tests.test_trace_hop import fields

pytestmark = [pytest.mark.http, pytest.mark.asyncio(loop_scope="module")]

ROUTE = ("ITA", "AUT", "CZE", "POL")
ACTOR = "cli:test"


def custody_csv(path: Path, events: list[dict[str, str]]) -> Path:
    """`events` as a custody CSV file."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, CUSTODY_COLUMNS)
        writer.writeheader()
        writer.writerows(events)
    return path


async def give_custody(
    fed: Federation, serial: str, route: tuple[str, ...], skip: str = ""
) -> None:
    """Each country of `route` imports its part of `serial`'s chain (but `skip`)."""
    for country, events in supply_chain(serial, "Beretta", "92FS", route).items():
        if country == skip:
            continue
        path = custody_csv(fed.base / f"{country}-{serial}.csv", events)
        report = await fed[country].n.custody.imports.import_csv(path, ACTOR)
        assert (report.created, report.rejected) == (len(events), 0)


async def hops(member: Member, trace_id: bytes) -> list[tuple[str, Outcome | None, str | None]]:
    """(country, outcome, next country) of each hop of a trace `member` started."""
    view = await member.f.traces.show(trace_id)
    return [(h.country, h.outcome, h.next_country) for h in view.report.hops]


async def receipts_by_hop(member: Member, trace_id: bytes) -> dict[int, list[ReceiptStatement]]:
    """The receipts the originator `member` holds of a trace, by hop."""
    trace = await member.f.traces._store.get_trace(trace_id, 0)
    assert trace is not None
    found: dict[int, list[ReceiptStatement]] = {}
    for item in await member.f.traces._store.get_items(trace.id):
        if item.kind is ItemKind.RECEIPT:
            found.setdefault(item.position, []).append(read(item.item, ReceiptStatement)[1])
    return found


def one_receipt_per_hop(found: dict[int, list[ReceiptStatement]], n: int) -> None:
    """Each of `n` hops signed one receipt: once pending, once answered, received once."""
    assert sorted(found) == list(range(1, n + 1))
    for position, receipts in found.items():
        assert [r.outcome is None for r in receipts] == [True, False], position
        assert len({(r.received_ms, r.prev_hash) for r in receipts}) == 1, position


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    """FRA and the four countries of `ROUTE`, all peers allowing traces, on HTTP."""
    fed = Federation(tmp_path_factory.mktemp("trace-e2e"), http=True)
    for country in ("FRA", *ROUTE):
        await fed.add(country)
    await fed.peer_all(Service.LOOKUPS, Service.TRACES, Service.TRACE_DETAILS)
    await give_custody(fed, "E2E-AUTO", ROUTE)
    await give_custody(fed, "E2E-OFFICER", ROUTE, skip="CZE")
    await give_custody(fed, "E2E-DOWN", ROUTE)
    yield fed
    await fed.close()


async def cli_json(fed: Federation, country: str, *args: str) -> Any:
    code, out, err = await run_cli(*args, "--data-dir", str(fed[country].data_dir), "--json")
    assert code in (0, 1), err
    return json.loads(out)


async def test_a_five_country_chain_is_answered_automatically(chain: Federation) -> None:
    started = await cli_json(
        chain,
        "FRA",
        *("trace", "new", "--serial", "E2E-AUTO", "--make", "Beretta", "--model", "92FS"),
        *("--country-of-manufacture", "ITA", "--recovered-on", "2026-06-02"),
        *("--recovered-at", "Lyon", "--crime", "homicide", "--case-ref", "FR-77"),
        *("--agency", "Police judiciaire"),
    )
    assert started["sent"] is True and started["first_hop"] == "ITA"
    trace_id = bytes.fromhex(started["trace_id"])
    await chain.settle()  # the CLI queued it; the running nodes deliver it, hop by hop

    assert await hops(chain["FRA"], trace_id) == [
        ("ITA", Outcome.FORWARDED, "AUT"),
        ("AUT", Outcome.FORWARDED, "CZE"),
        ("CZE", Outcome.FORWARDED, "POL"),
        ("POL", Outcome.END_OF_CHAIN, None),
    ]
    view = await chain["FRA"].f.traces.show(trace_id)
    last = view.report.hops[-1].details
    holder = supply_chain("E2E-AUTO", "Beretta", "92FS", ROUTE)["POL"][-1]
    assert last is not None and last["party"] == holder["to_party"]
    assert view.status is TraceStatus.ANSWERED
    one_receipt_per_hop(await receipts_by_hop(chain["FRA"], trace_id), 4)
    verified = await cli_json(chain, "FRA", "trace", "verify", started["trace_id"])
    assert verified["valid"] is True and verified["complete"] is True, verified
    assert verified["problems"] == []


async def test_a_hop_without_the_events_is_answered_by_its_officer(chain: Federation) -> None:
    fra = chain["FRA"]
    started = await fra.f.traces.start(fields(chain, serial="E2E-OFFICER"), ACTOR)
    await chain.settle()
    assert await hops(fra, started.trace_id) == [
        ("ITA", Outcome.FORWARDED, "AUT"),
        ("AUT", Outcome.FORWARDED, "CZE"),
        ("CZE", None, None),  # received: its officer has it in the queue
    ]
    code, _out, err = await run_cli(
        *("trace", "answer", started.trace_id.hex(), "--outcome", "forwarded"),
        *("--next-country", "POL", "--details", "sold to Zbrojownia Nowak, Kraków"),
        *("--data-dir", str(chain["CZE"].data_dir)),
    )
    assert code == 0, err
    await chain.settle()
    assert await hops(fra, started.trace_id) == [
        ("ITA", Outcome.FORWARDED, "AUT"),
        ("AUT", Outcome.FORWARDED, "CZE"),
        ("CZE", Outcome.FORWARDED, "POL"),
        ("POL", Outcome.END_OF_CHAIN, None),
    ]
    report = await fra.f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    cze = report.hops[2].details
    assert cze is not None and "Zbrojownia Nowak" in " ".join(cze.values())


async def test_a_hop_down_for_an_hour_gets_its_messages_when_it_returns(
    chain: Federation,
) -> None:
    fra, ita = chain["FRA"], chain["ITA"]
    await chain.stop("AUT")
    try:
        started = await fra.f.traces.start(fields(chain, serial="E2E-DOWN"), ACTOR)
        for _ in range(8):  # an hour of retries: ITA's forward to AUT cannot arrive
            for member in (fra, ita):
                await member.n.delivery.deliver_due(member.f.client)
            chain.clock.advance(450)
        assert await hops(fra, started.trace_id) == [("ITA", Outcome.FORWARDED, "AUT")]
        (waiting,) = await ita.n.delivery.messages(OutboxStatus.PENDING)
        assert (waiting.recipient, waiting.type) == ("AUT", "trace.request")
        assert waiting.attempts >= 3 and "Cannot connect" in (waiting.last_error or "")
    finally:
        await chain.start("AUT")
    await chain.settle()
    assert [h[0] for h in await hops(fra, started.trace_id)] == list(ROUTE)
    report = await fra.f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    one_receipt_per_hop(await receipts_by_hop(fra, started.trace_id), 4)


async def test_a_peer_without_the_traces_policy_is_refused(chain: Federation) -> None:
    fra, ita = chain["FRA"], chain["ITA"]
    await ita.n.peers.set_policy("FRA", {Service.LOOKUPS}, "admin")
    try:
        started = await fra.f.traces.start(fields(chain, serial="E2E-AUTO"), ACTOR)
        await chain.settle()
    finally:
        await ita.n.peers.set_policy("FRA", {Service.LOOKUPS, Service.TRACES}, "admin")
    (dead,) = await fra.n.delivery.messages(OutboxStatus.DEAD)
    assert (dead.recipient, dead.type) == ("ITA", "trace.request")
    assert "does not answer traces for FRA" in (dead.last_error or "")
    assert await hops(fra, started.trace_id) == []
    assert started.trace_id not in {t.trace_id for t in await ita.f.traces.list_traces(True)}


#: A trace.request with every field, its signed request none.
UNSIGNED = {"trace_id": bytes(16), "position": 1, "request": b"not signed", "receipts": []}
UNSIGNED |= {"answers": [], "deadline_ms": 0, "delivery_id": bytes(16)}


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in UNSIGNED.items() if k not in ("answers", "delivery_id")},
        {"trace_id": b"short", "items": [b""], "delivery_id": bytes(16)},
        {"trace_id": bytes(16), "items": [], "delivery_id": bytes(16)},
        {"trace_id": bytes(16), "items": [b""] * (MAX_REPORT_ITEMS + 1), "delivery_id": bytes(16)},
        UNSIGNED,
        UNSIGNED | {"position": 0},
    ],
    ids=[
        "request-missing-fields",
        "report-short-id",
        "report-no-items",
        "report-too-many-items",
        "request-not-signed",
        "position-0",
    ],
)
async def test_malformed_trace_bodies_are_answered_malformed(
    chain: Federation, body: dict[str, Any]
) -> None:
    fra = chain["FRA"]
    kind = "trace.report" if "items" in body else "trace.request"
    with pytest.raises(PeerRefusedError) as refused:
        await fra.f.client.request(await fra.n.peers.get("ITA"), kind, body)
    assert refused.value.peer_code == "malformed", refused.value
    assert await chain["ITA"].f.trace_hop.keys()  # and it goes on serving


# -- a hop killed with SIGKILL mid-forward --------------------------------------------


async def follow(
    fed: Federation, done: Callable[[], Awaitable[bool]], within_s: float = 60
) -> None:
    """Run the in-process nodes as `iarms-node run` would (their clock on the system's,
    delivering what is due) until `done()`; TimeoutError after `within_s`."""
    system = SystemClock()
    async with asyncio.timeout(within_s):
        while not await done():
            fed.clock.advance(max(0.0, (system.now() - fed.clock.now()).total_seconds()))
            for member in fed.members.values():
                if member.node is not None:
                    await member.n.delivery.deliver_due(member.f.client)
            await asyncio.sleep(0.05)


async def outbox_of(member: Member) -> list[Any]:
    """The outbox of a node that is not running, read by opening its data directory."""
    node = await Node.open(load_config(member.data_dir), SystemClock())
    try:
        return await node.delivery.messages()
    finally:
        await node.close()


async def test_a_hop_killed_mid_forward_completes_the_trace_once(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CZE (a real process) receives the trace and answers `forwarded` to POL, which is
    down: the forward sits in CZE's outbox when CZE is killed. Restarted with POL back,
    CZE sends it; POL handles it and is about to answer when CZE is killed again, so the
    forward is sent a second time after CZE's second restart. One receipt per hop, one
    forward, one trace at POL."""
    fed = Federation(tmp_path_factory.mktemp("trace-kill"), http=True)
    try:
        for country in ("FRA", "CZE", "POL"):
            await fed.add(country)
        await fed.peer_all(Service.LOOKUPS, Service.TRACES, Service.TRACE_DETAILS)
        await give_custody(fed, "E2E-KILL", ("CZE", "POL"))
        fra, cze, pol = fed["FRA"], fed["CZE"], fed["POL"]
        await fed.stop("POL")
        await fed.stop("CZE")
        await fed.spawn("CZE")
        started = await fra.f.traces.start(fields(fed, serial="E2E-KILL"), ACTOR, to="CZE")
        trace_id = started.trace_id

        async def cze_answered() -> bool:
            return await hops(fra, trace_id) == [("CZE", Outcome.FORWARDED, "POL")]

        await follow(fed, cze_answered)  # its receipt and answer reached FRA; POL is down
        await fed.kill("CZE")
        queued = [m for m in await outbox_of(cze) if m.type == "trace.request"]
        assert [(m.recipient, m.status, m.attempts > 0) for m in queued] == [
            ("POL", OutboxStatus.PENDING, True)
        ]

        await fed.start("POL")
        handled, release = asyncio.Event(), asyncio.Event()
        handle, statuses = pol.f.dispatcher.handle, []

        async def handle_then_stall(data: bytes) -> tuple[int, bytes]:
            answer = await handle(data)  # committed: trace stored, receipt queued
            if read_header(data).type == "trace.request":
                statuses.append(answer[0])
                if not handled.is_set():
                    handled.set()
                    await release.wait()  # CZE dies before it hears the answer
            return answer

        monkeypatch.setattr(pol.f.dispatcher, "handle", handle_then_stall)
        await fed.spawn("CZE")
        await pol.f.client.greet(await pol.n.peers.list_peers())  # POL is back: retry now
        await asyncio.wait_for(handled.wait(), 60)
        await fed.kill("CZE")
        release.set()
        (sent,) = [m for m in await outbox_of(cze) if m.type == "trace.request"]
        assert sent.status is OutboxStatus.PENDING  # never heard POL's answer

        await fed.spawn("CZE")
        await pol.f.client.greet(await pol.n.peers.list_peers())

        async def complete() -> bool:
            return (await fra.f.traces.show(trace_id)).report.complete

        await follow(fed, complete)
        await fed.kill("CZE")
        assert await hops(fra, trace_id) == [
            ("CZE", Outcome.FORWARDED, "POL"),
            ("POL", Outcome.END_OF_CHAIN, None),
        ]
        assert (await fra.f.traces.verify(trace_id)).valid
        one_receipt_per_hop(await receipts_by_hop(fra, trace_id), 2)
        (forward,) = [m for m in await outbox_of(cze) if m.type == "trace.request"]
        assert (forward.recipient, forward.status) == ("POL", OutboxStatus.DELIVERED)
        assert statuses[:2] == [200, 200]  # the same delivery twice: the kept answer again
        (at_pol,) = await pol.f.traces.list_traces(incoming=True)
        assert at_pol.trace_id == trace_id
        items = await pol.f.traces._store.get_items(at_pol.id)
        mine = [i for i in items if i.position == 2]
        assert sorted(i.kind.value for i in mine) == ["answer", "receipt", "receipt"]
    finally:
        await fed.close()


async def test_a_forged_exported_chain_is_reported_by_hop_and_country(
    chain: Federation, tmp_path: Path
) -> None:
    """A chain answered over HTTP, exported, then changed three ways: `verify-file` names
    the hop and the country each time (a changed receipt, a removed one, and one signed
    with another country's key)."""
    fra = chain["FRA"]
    started = await fra.f.traces.start(fields(chain, serial="E2E-AUTO"), ACTOR)
    await chain.settle()
    good = msgspec.msgpack.decode(await fra.f.traces.export(started.trace_id), type=ChainFile)
    assert len(good.receipts) == 4 and verify_file(msgspec.msgpack.encode(good)).report.valid
    aut = good.receipts[1]  # hop 2: AUT's answered receipt
    _signed, statement = read(aut, ReceiptStatement)
    assert statement.country == "AUT"
    changed = bytearray(aut)
    changed[-70] ^= 1  # a byte of the signed statement, not of the signature
    forged = {
        "changed": [*good.receipts[:1], bytes(changed), *good.receipts[2:]],
        "removed": [good.receipts[0], *good.receipts[2:]],
        # AUT's statement, signed by CZE (a peer FRA trusts, but not for AUT)
        "wrong country": [
            *good.receipts[:1],
            sign_receipt(chain["CZE"].k.signing, statement),
            *good.receipts[2:],
        ],
    }
    for what, receipts in forged.items():
        path = tmp_path / f"{what}.trace"
        path.write_bytes(msgspec.msgpack.encode(msgspec.structs.replace(good, receipts=receipts)))
        code, out, err = await run_cli("trace", "verify-file", str(path), "--json")
        assert code == 1, (what, err)
        shown = json.loads(out)
        assert shown["valid"] is False, what
        at_aut = [p for p in shown["problems"] if (p["position"], p["country"]) == (2, "AUT")]
        assert at_aut, (what, shown["problems"])
