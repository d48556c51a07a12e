"""The trace peer service over real nodes (loopback HTTP): hops receive, answer from
custody or by an officer, forward, refuse loops; reports reach the originator; the chain
verifies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from node.errors import IncompleteTraceError, PeerRefusedError
from node.protocol.model import OutboxStatus, Service
from node.protocol.ratelimit import RateLimitConfig, TokenBuckets
from node.trace.model import CUSTODY_COLUMNS, ItemKind, TraceStatus
from node.trace.receipts import Outcome, sign_answer
from node.trace.request import TraceRequestFields, TraceRequestInput, check_request
from tests.harness import Federation

ACTOR = "cli:test"
HEADER = ",".join(CUSTODY_COLUMNS) + "\n"


def event(event: str, day: str, to_party: str, to_country: str = "", serial: str = "B-1") -> str:
    return f"{serial},Beretta,92FS,{event},{day},prev,{to_party},{to_country},L-{day},\n"


async def custody(fed: Federation, country: str, tmp_path: Path, *lines: str) -> None:
    path = tmp_path / f"{country}.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    report = await fed[country].n.custody.imports.import_csv(path, ACTOR)
    assert report.created == len(lines)


def fields(fed: Federation, serial: str = "B-1", **extra: Any) -> TraceRequestFields:
    entry = TraceRequestInput(
        case_reference="FR-1",
        agency="Police",
        make="Beretta",
        crime="homicide",
        recovered_at="Lyon",
        recovered_on="2024-01-02",
        serial_number=serial,
        country_of_manufacture="ITA",
        **extra,
    )
    return check_request(entry, fed["FRA"].n.reference, date(2025, 1, 1))


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA (originator), ITA exports B-1 to DEU, DEU to AUT, AUT sold it to a person."""
    fed = Federation(tmp_path)
    for country in ("FRA", "ITA", "DEU", "AUT"):
        await fed.add(country)
    await fed.peer_all(Service.LOOKUPS, Service.TRACES, Service.TRACE_DETAILS)
    await custody(
        fed,
        "ITA",
        tmp_path,
        event("manufactured", "2019-01-01", "Beretta SpA"),
        event("exported", "2019-02-01", "Waffen GmbH", "DEU"),
    )
    await custody(
        fed,
        "DEU",
        tmp_path,
        event("imported", "2019-03-01", "Waffen GmbH"),
        event("exported", "2019-04-01", "Jagd KG", "AUT"),
    )
    await custody(fed, "AUT", tmp_path, event("sold", "2020-05-05", "Max Muster"))
    yield fed
    await fed.close()


async def test_a_three_hop_chain_is_answered_automatically_and_verifies(
    chain: Federation,
) -> None:
    started = await chain["FRA"].f.traces.start(fields(chain), ACTOR)
    assert started.first_hop == "ITA"
    await chain.settle()
    view = await chain["FRA"].f.traces.show(started.trace_id)
    hops = [(h.country, h.outcome, h.next_country) for h in view.report.hops]
    assert hops == [
        ("ITA", Outcome.FORWARDED, "DEU"),
        ("DEU", Outcome.FORWARDED, "AUT"),
        ("AUT", Outcome.END_OF_CHAIN, None),
    ]
    assert view.status is TraceStatus.ANSWERED
    last = view.report.hops[-1].details
    assert last is not None and last["party"] == "Max Muster" and last["date"] == "2020-05-05"
    report = await chain["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems


async def test_a_hop_without_events_queues_for_an_officer(chain: Federation) -> None:
    started = await chain["FRA"].f.traces.start(
        fields(chain, serial="Z-9"),
        ACTOR,
    )
    await chain.settle()
    at_ita = await chain["ITA"].f.trace_hop.keys()  # ITA holds its peers' keys
    assert "FRA" in at_ita[1]
    view = await chain["FRA"].f.traces.show(started.trace_id)
    assert [(h.country, h.outcome) for h in view.report.hops] == [("ITA", None)]
    assert view.status is TraceStatus.OPEN
    await chain["ITA"].f.trace_hop.answer(
        started.trace_id, Outcome.NOT_FOUND, {"reason": "no such serial"}, None, "officer"
    )
    await chain.settle()
    view = await chain["FRA"].f.traces.show(started.trace_id)
    assert [(h.country, h.outcome) for h in view.report.hops] == [("ITA", Outcome.NOT_FOUND)]
    assert view.status is TraceStatus.ANSWERED
    assert (await chain["FRA"].f.traces.verify(started.trace_id)).valid


async def test_a_loop_is_refused_with_end_of_chain(chain: Federation, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.mkdir()
    await custody(chain, "AUT", loop, event("exported", "2021-01-01", "Armi", "ITA"))
    started = await chain["FRA"].f.traces.start(fields(chain), ACTOR)
    await chain.settle()
    view = await chain["FRA"].f.traces.show(started.trace_id)
    last = view.report.hops[-1]
    assert (last.country, last.outcome) == ("AUT", Outcome.END_OF_CHAIN)
    assert last.details is not None and last.details["loop"] == "ITA"
    assert view.report.valid and view.status is TraceStatus.ANSWERED


async def test_a_firearm_imported_into_the_originator_s_country_ends_there(
    chain: Federation, tmp_path: Path
) -> None:
    """Not a loop: the originator's own registry holds the rest of the chain."""
    home = tmp_path / "home"
    home.mkdir()
    await custody(chain, "AUT", home, event("exported", "2021-01-01", "Armes SA", "FRA"))
    started = await chain["FRA"].f.traces.start(fields(chain), ACTOR)
    await chain.settle()
    view = await chain["FRA"].f.traces.show(started.trace_id)
    last = view.report.hops[-1]
    assert (last.country, last.outcome, last.next_country) == ("AUT", Outcome.END_OF_CHAIN, None)
    assert last.details is not None and "loop" not in last.details
    assert last.details["party"] == "Armes SA" and "FRA, the originator" in last.details["note"]
    assert view.report.valid and view.status is TraceStatus.ANSWERED


async def test_an_incomplete_request_is_refused_unless_forced(chain: Federation) -> None:
    incomplete = fields(chain, serial="", obliterated=True)  # no serial, no markings
    with pytest.raises(IncompleteTraceError, match="serial"):
        await chain["FRA"].f.traces.start(incomplete, ACTOR)
    started = await chain["FRA"].f.traces.start(
        incomplete,
        ACTOR,
        force_reason="the officer read nothing more",
    )
    assert started.findings
    view = await chain["FRA"].f.traces.show(started.trace_id)
    assert view.trace.force_reason == "the officer read nothing more"


async def test_a_peer_without_the_traces_policy_is_refused(chain: Federation) -> None:
    await chain["ITA"].n.peers.set_policy("FRA", {Service.LOOKUPS}, "admin")
    started = await chain["FRA"].f.traces.start(fields(chain), ACTOR)
    await chain.settle()
    [dead] = [m for m in await chain["FRA"].n.delivery.messages() if m.type == "trace.request"]
    assert dead.status.value == "dead" and "traces" in (dead.last_error or "")
    assert (await chain["FRA"].f.traces.show(started.trace_id)).report.hops == ()


async def test_a_malformed_trace_request_is_answered_malformed(chain: Federation) -> None:
    peer = await chain["FRA"].n.peers.get("ITA")
    body = {
        "trace_id": bytes(16),
        "position": 1,
        "request": b"not a signed request",
        "receipts": [],
        "answers": [],
        "deadline_ms": 0,
        "delivery_id": bytes(16),
    }
    with pytest.raises(PeerRefusedError) as refused:
        await chain["FRA"].f.client.request(peer, "trace.request", body)
    assert refused.value.peer_code == "malformed"
    assert await chain["ITA"].f.trace_hop.keys()  # the node still answers
    with pytest.raises(PeerRefusedError) as refused:
        await chain["FRA"].f.client.request(peer, "trace.request", body | {"extra": 1})
    assert refused.value.peer_code == "malformed"


async def test_a_report_is_kept_whole_or_refused_whole(chain: Federation) -> None:
    """A `trace.report` carries several items: one refused refuses them all, none kept."""
    fra, ita = chain["FRA"], chain["ITA"]
    started = await fra.f.traces.start(fields(chain, serial="Z-9"), ACTOR)  # for an officer
    await chain.settle()
    trace = await fra.f.traces._store.get_trace(started.trace_id, 0)
    assert trace is not None
    items = await fra.f.traces._store.get_items(trace.id)
    [pending] = [i.item for i in items if i.kind is ItemKind.RECEIPT]
    answer = sign_answer(ita.k.signing, started.trace_id, 1, "ITA", Outcome.NOT_FOUND, {})
    forged = pending[:-1] + bytes([pending[-1] ^ 1])  # ITA's receipt, its signature changed
    other = sign_answer(ita.k.signing, bytes(16), 1, "ITA", Outcome.NOT_FOUND, {})
    to_fra = await ita.n.peers.get("FRA")
    body: dict[str, Any] = {"trace_id": started.trace_id, "delivery_id": bytes(16)}
    for items, code, said in (
        ([answer, forged], "bad_signature", ""),
        ([answer, other], "malformed", "$.items[1]: it is for another trace"),
        ([answer, b"junk"], "malformed", "$.items[1]: neither a receipt"),
    ):
        with pytest.raises(PeerRefusedError) as refused:
            await ita.f.client.request(to_fra, "trace.report", body | {"items": items})
        assert refused.value.peer_code == code and said in str(refused.value), refused.value
        assert len(await fra.f.traces._store.get_items(trace.id)) == 2  # FRA's forward, ITA's
    await ita.f.client.request(to_fra, "trace.report", body | {"items": [pending, answer]})
    kept = await fra.f.traces._store.get_items(trace.id)
    assert [i.kind.value for i in kept] == ["forward", "receipt", "answer"]  # pending once


async def test_a_redelivered_trace_request_makes_one_receipt(chain: Federation) -> None:
    started = await chain["FRA"].f.traces.start(
        fields(chain, serial="Z-9"),
        ACTOR,
    )
    [sent] = [m for m in await chain["FRA"].n.delivery.messages() if m.type == "trace.request"]
    peer = await chain["FRA"].n.peers.get("ITA")
    body = msgspec.msgpack.decode(sent.body)
    for _ in range(2):  # the same delivery twice, then as another delivery
        await chain["FRA"].f.client.request(peer, "trace.request", body)
    await chain["FRA"].f.client.request(
        peer, "trace.request", body | {"delivery_id": bytes(range(16))}
    )
    await chain.settle()
    trace = await chain["ITA"].f.traces._store.get_trace(started.trace_id, 1)
    assert trace is not None
    items = await chain["ITA"].f.traces._store.get_items(trace.id)
    assert len([i for i in items if i.kind.value == "receipt"]) == 1
    view = await chain["FRA"].f.traces.show(started.trace_id)
    assert len(view.report.hops) == 1


async def test_a_flood_of_new_traces_is_slowed_not_stored(chain: Federation) -> None:
    hop = chain["ITA"].f.trace_hop
    hop._admitted = TokenBuckets(RateLimitConfig(capacity=1, rate=0.01))  # one per 100 s
    first = await chain["FRA"].f.traces.start(fields(chain, serial="Z-1"), ACTOR)
    second = await chain["FRA"].f.traces.start(fields(chain, serial="Z-2"), ACTOR)
    for member in (chain["FRA"], chain["ITA"]):
        await member.n.delivery.deliver_due(member.f.client)
    [waiting] = await chain["FRA"].n.delivery.messages(OutboxStatus.PENDING)
    assert "rate_limited" in (waiting.last_error or "")
    assert "new trace requests exceed FRA's rate limit; retry in" in (waiting.last_error or "")
    assert (await chain["FRA"].f.traces.show(second.trace_id)).report.hops == ()
    await chain.settle()  # the clock moves on: the second one is admitted
    for started in (first, second):
        view = await chain["FRA"].f.traces.show(started.trace_id)
        assert [h.country for h in view.report.hops] == ["ITA"]
