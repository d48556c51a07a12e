"""A trace that pauses and goes on (issue 9): a hop's question (`needs_information`) and
the originator's reply (`trace.reply`, relayed by the hops between); a hop not peered with
the next country (the originator forwards; or both wait, then go on when a peering is
added). In-memory nodes of the harness; the peerings are drawn per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import NotFoundError, PeerRefusedError, ValidationError
from node.protocol.envelope import key_id
from node.protocol.model import Service
from node.trace.model import ItemKind, TraceStatus
from node.trace.receipts import REPLY_TAG, Outcome, Signed
from tests.harness import Federation
from tests.test_trace_hop import ACTOR, custody, event, fields

QUESTION = "Which import marking does the frame carry?"
REPLY = "IT-BS 2019 on the left side of the frame"


async def link(fed: Federation, a: str, b: str) -> None:
    """Make `a` and `b` peers allowing traces: `a` adds `b` first, then `b` adds `a`."""
    for x, y in ((a, b), (b, a)):
        await fed[x].n.peers.add(fed[y].url, y, fed[y].fingerprint, "harness")
        await fed[x].n.peers.set_policy(y, {Service.LOOKUPS, Service.TRACES}, "harness")


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, ITA, DEU, not peered yet: ITA made B-1 and exported it to DEU, which sold it."""
    fed = Federation(tmp_path)
    for country in ("FRA", "ITA", "DEU"):
        await fed.add(country)
    await custody(
        fed,
        "ITA",
        tmp_path,
        event("manufactured", "2019-01-01", "Beretta SpA"),
        event("exported", "2019-02-01", "Waffen GmbH", "DEU"),
    )
    await custody(fed, "DEU", tmp_path, event("sold", "2020-05-05", "Max Muster"))
    yield fed
    await fed.close()


async def receipts_at(fed: Federation, country: str, trace_id: bytes) -> list[int]:
    """The positions of the receipts `country` signed for the trace."""
    trace = await fed[country].f.traces._store.get_trace(trace_id)
    assert trace is not None
    items = await fed[country].f.traces._store.get_items(trace.id)
    return [i.position for i in items if i.kind is ItemKind.RECEIPT and i.country == country]


async def sent(fed: Federation, country: str, kind: str) -> list[str]:
    """The recipients of the `kind` messages `country` ever queued, sorted."""
    return sorted(m.recipient for m in await fed[country].n.delivery.messages() if m.type == kind)


async def actions(fed: Federation, country: str, action: str) -> list[dict[str, object]]:
    return [e.details for e in await fed[country].n.audit.recent(action=action)]


# -- needs_information and the reply ---------------------------------------------------


async def test_a_question_is_replied_to_and_the_hop_answers_again(fed: Federation) -> None:
    await link(fed, "FRA", "ITA")
    started = await fed["FRA"].f.traces.start(fields(fed, serial="Z-9"), ACTOR)
    await fed.settle()
    ita = fed["ITA"].f.trace_hop
    await ita.answer(
        started.trace_id, Outcome.NEEDS_INFORMATION, {"question": QUESTION}, None, "officer"
    )
    await fed.settle()

    view = await fed["FRA"].f.traces.show(started.trace_id)
    assert view.status is TraceStatus.WAITING
    assert view.question is not None
    assert (view.question.country, view.question.position, view.question.text) == (
        "ITA",
        1,
        QUESTION,
    )
    assert view.report.valid and not view.report.complete
    at_ita = await fed["ITA"].f.traces.show(started.trace_id)
    assert at_ita.status is TraceStatus.WAITING
    assert at_ita.trace.note == "waiting for information from FRA"
    with pytest.raises(ValidationError, match="not waiting for an answer"):
        await ita.answer(started.trace_id, Outcome.NOT_FOUND, {}, None, "officer")

    assert await fed["FRA"].f.traces.reply(started.trace_id, f"  {REPLY} ", ACTOR) == "ITA"
    with pytest.raises(ValidationError, match="was replied to already"):
        await fed["FRA"].f.traces.reply(started.trace_id, "again", ACTOR)
    assert (await fed["FRA"].f.traces.show(started.trace_id)).status is TraceStatus.OPEN
    await fed.settle()

    at_ita = await fed["ITA"].f.traces.show(started.trace_id)
    assert at_ita.status is TraceStatus.QUEUED
    assert [(r.position, r.text) for r in at_ita.replies] == [(1, REPLY)]
    await ita.answer(started.trace_id, Outcome.END_OF_CHAIN, {"party": "Armi Srl"}, None, "o")
    await fed.settle()

    view = await fed["FRA"].f.traces.show(started.trace_id)
    assert view.status is TraceStatus.ANSWERED
    assert [(r.position, r.text) for r in view.replies] == [(1, REPLY)]
    [hop] = view.report.hops
    assert (hop.outcome, hop.questions) == (Outcome.END_OF_CHAIN, (QUESTION,))
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    assert await actions(fed, "FRA", "trace.reply") == [{"position": 1, "to": "ITA", "via": "ITA"}]
    assert await actions(fed, "ITA", "trace.reply.receive") == [
        {"position": 1, "originator": "FRA"}
    ]


async def test_a_reply_is_relayed_by_a_hop_the_originator_and_the_asker_trust(
    fed: Federation,
) -> None:
    """FRA peers ITA only; DEU (hop 2) asks; the reply goes FRA -> ITA -> DEU."""
    await link(fed, "FRA", "ITA")
    await link(fed, "ITA", "DEU")
    started = await fed["FRA"].f.traces.start(fields(fed, serial="Z-9"), ACTOR)
    await fed.settle()
    await fed["ITA"].f.trace_hop.answer(started.trace_id, Outcome.FORWARDED, {}, "DEU", "officer")
    await fed.settle()
    await fed["DEU"].f.trace_hop.answer(
        started.trace_id, Outcome.NEEDS_INFORMATION, {"question": QUESTION}, None, "officer"
    )
    await fed.settle()
    view = await fed["FRA"].f.traces.show(started.trace_id)
    assert view.question is not None and view.question.country == "DEU"

    await fed["FRA"].f.traces.reply(started.trace_id, REPLY, ACTOR)
    await fed.settle()
    assert await sent(fed, "FRA", "trace.reply") == ["ITA"]
    assert await sent(fed, "ITA", "trace.reply") == ["DEU"]  # relayed, unchanged
    at_deu = await fed["DEU"].f.traces.show(started.trace_id)
    assert at_deu.status is TraceStatus.QUEUED
    assert [r.text for r in at_deu.replies] == [REPLY]

    await fed["DEU"].f.trace_hop.answer(
        started.trace_id, Outcome.END_OF_CHAIN, {"party": "Max Muster"}, None, "officer"
    )
    await fed.settle()
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    # FRA holds no key of DEU, not its peer: ITA's forward vouches for it (PROTOCOL.md
    # §3.9), and DEU's replaced question checks under it too; peered, DEU's own key does.
    assert report.valid and report.complete, report.problems
    assert [(v.position, v.country, v.by) for v in report.vouched] == [(2, "DEU", "ITA")]
    await link(fed, "FRA", "DEU")
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    assert report.vouched == ()
    assert [(h.country, h.questions) for h in report.hops] == [("ITA", ()), ("DEU", (QUESTION,))]


async def test_a_reply_needs_a_trace_waiting_for_one_and_a_text(fed: Federation) -> None:
    await link(fed, "FRA", "ITA")
    traces = fed["FRA"].f.traces
    with pytest.raises(NotFoundError, match="was not started here"):
        await traces.reply(bytes(16), REPLY, ACTOR)
    started = await traces.start(fields(fed, serial="Z-9"), ACTOR)
    with pytest.raises(ValidationError, match="not waiting for information: no hop has answered"):
        await traces.reply(started.trace_id, REPLY, ACTOR)
    await fed.settle()
    with pytest.raises(ValidationError, match=r"its last hop, ITA \(hop 1\), has not answered"):
        await traces.reply(started.trace_id, REPLY, ACTOR)
    await fed["ITA"].f.trace_hop.answer(
        started.trace_id, Outcome.NEEDS_INFORMATION, {"question": QUESTION}, None, "officer"
    )
    await fed.settle()
    for text, message in [
        ("   ", "give the reply"),
        ("x" * 2001, "at most 2000 characters"),
        ("a\x07b", "control character"),
    ]:
        with pytest.raises(ValidationError, match=message):
            await traces.reply(started.trace_id, text, ACTOR)
    assert await sent(fed, "FRA", "trace.reply") == []  # nothing sent, nothing kept
    assert (await traces.show(started.trace_id)).replies == ()


def signed_reply(key: Ed25519PrivateKey, trace_id: bytes, text: str) -> bytes:
    """A reply statement signed as it is, bypassing the signer's checks."""
    statement = msgspec.msgpack.encode([REPLY_TAG, trace_id, 1, "FRA", bytes(32), 0, text])
    public = key.public_key().public_bytes_raw()
    return msgspec.msgpack.encode(Signed(statement, key_id(public), key.sign(statement)))


async def test_a_malformed_reply_is_answered_malformed(fed: Federation) -> None:
    await link(fed, "FRA", "ITA")
    peer = await fed["FRA"].n.peers.get("ITA")
    key = fed["FRA"].k.signing
    base = {"trace_id": bytes(16), "position": 1, "delivery_id": bytes(16)}
    bodies = [
        base | {"reply": b"not a signed reply"},
        base | {"reply": signed_reply(key, bytes(16), "bell \x07")},
        base | {"reply": signed_reply(key, bytes(16), "x" * 2001)},
        base | {"reply": signed_reply(key, bytes(16), "")},
        base | {"reply": signed_reply(key, bytes(16), "ok"), "extra": 1},
        base | {"reply": signed_reply(key, bytes(range(16)), "ok")},  # another trace's
    ]
    for body in bodies:
        with pytest.raises(PeerRefusedError) as refused:
            await fed["FRA"].f.client.request(peer, "trace.reply", body)
        assert refused.value.peer_code == "malformed", body
    with pytest.raises(PeerRefusedError) as refused:  # well formed, for no trace here
        await fed["FRA"].f.client.request(
            peer, "trace.reply", base | {"reply": signed_reply(key, bytes(16), "ok")}
        )
    assert refused.value.peer_code == "protocol"


# -- a hop not peered with the next country ------------------------------------------


async def test_the_originator_forwards_what_a_hop_could_not_once(fed: Federation) -> None:
    """ITA is not DEU's peer; FRA is: FRA forwards, and ITA, peered later, does not."""
    await link(fed, "FRA", "ITA")
    await link(fed, "FRA", "DEU")
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()

    view = await fed["FRA"].f.traces.show(started.trace_id)
    assert [(h.country, h.outcome) for h in view.report.hops] == [
        ("ITA", Outcome.FORWARDED),
        ("DEU", Outcome.END_OF_CHAIN),
    ]
    assert view.report.hops[0].details is not None
    assert view.report.hops[0].details["note"] == "ITA is not a peer of DEU"
    assert view.status is TraceStatus.ANSWERED
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    at_ita = await fed["ITA"].f.traces.show(started.trace_id)
    assert at_ita.status is TraceStatus.ANSWERED
    assert at_ita.trace.note == "forwarded to DEU by the originator FRA"

    await link(fed, "DEU", "ITA")  # the peering ITA waited for comes too late: no 2nd forward
    await fed.settle()
    assert await sent(fed, "FRA", "trace.request") == ["DEU", "ITA"]
    assert await sent(fed, "ITA", "trace.request") == []
    assert await receipts_at(fed, "DEU", started.trace_id) == [2, 2]  # pending, final
    assert await actions(fed, "FRA", "trace.forward") == [{"position": 2, "to": "DEU", "for": 1}]


@pytest.mark.parametrize("first", ["ITA", "FRA"])
async def test_without_any_peering_the_trace_waits_then_goes_on(
    fed: Federation, first: str
) -> None:
    """Neither ITA nor FRA is DEU's peer: both show the wait; whichever peers DEU first
    forwards; the other, peered after, does not."""
    await link(fed, "FRA", "ITA")
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()
    for country in ("FRA", "ITA"):
        view = await fed[country].f.traces.show(started.trace_id)
        assert (view.status, view.trace.note) == (TraceStatus.WAITING, "no peering with DEU")
        [listed] = await fed[country].f.traces.list_traces(country == "ITA", TraceStatus.WAITING)
        assert listed.trace_id == started.trace_id
    assert (await fed["FRA"].f.traces.verify(started.trace_id)).valid

    await link(fed, "DEU", first)  # DEU first, so that it knows the one that forwards
    await fed.settle()
    other = "FRA" if first == "ITA" else "ITA"
    await link(fed, "DEU", other)
    await fed.settle()

    view = await fed["FRA"].f.traces.show(started.trace_id)
    assert [(h.country, h.outcome) for h in view.report.hops] == [
        ("ITA", Outcome.FORWARDED),
        ("DEU", Outcome.END_OF_CHAIN),
    ]
    assert view.status is TraceStatus.ANSWERED
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    to_deu = {c: await sent(fed, c, "trace.request") for c in ("FRA", "ITA")}
    assert to_deu == (
        {"FRA": ["DEU", "ITA"], "ITA": []}
        if first == "FRA"
        else {
            "FRA": ["ITA"],
            "ITA": ["DEU"],
        }
    )
    assert await receipts_at(fed, "DEU", started.trace_id) == [2, 2]
    at_ita = await fed["ITA"].f.traces.show(started.trace_id)
    assert at_ita.status is TraceStatus.ANSWERED
