"""Where the pauses of a trace (tests/test_trace_flow.py) meet its keys (docs/adr/0008):
every forward is signed, whoever sends it — the originator forwarding what a hop could
not, a hop once peered, the running node at start for a peer added without the key —
and the chain beyond checks under the keys those forwards vouch for. A hop asks at most
the questions the originator keeps. In-memory nodes of the harness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.app import resume_waiting
from node.errors import ValidationError
from node.protocol.model import OutboxStatus, Service
from node.protocol.peers import PeersService
from node.store.peers import PeersStore
from node.trace.chain import ProblemKind, verify_chain
from node.trace.export import verify_file
from node.trace.forward import held_chain, vouching
from node.trace.intake import MAX_ROUNDS
from node.trace.model import ItemKind, TraceItem, TraceStatus
from node.trace.receipts import ForwardStatement, Outcome, read
from tests.conftest import wants_http
from tests.harness import Federation, run_cli
from tests.test_trace_flow import REPLY, link, sent
from tests.test_trace_hop import ACTOR, custody, event, fields


@pytest.fixture
async def fed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, ITA, DEU, AUT, not peered yet: ITA made B-1 and exported it to DEU, which
    exported it to AUT, where it was sold."""
    fed = Federation(tmp_path, http=wants_http(request))
    for country in ("FRA", "ITA", "DEU", "AUT"):
        await fed.add(country)
    await custody(
        fed,
        "ITA",
        tmp_path,
        event("manufactured", "2019-01-01", "Beretta SpA"),
        event("exported", "2019-02-01", "Waffen GmbH", "DEU"),
    )
    await custody(fed, "DEU", tmp_path, event("exported", "2020-05-05", "Alpen KG", "AUT"))
    await custody(fed, "AUT", tmp_path, event("sold", "2021-03-03", "Hans Huber"))
    yield fed
    await fed.close()


async def items_at(fed: Federation, country: str, trace_id: bytes) -> list[TraceItem]:
    """The items `country` holds of the trace (its own copy, originator or hop)."""
    store = fed[country].f.traces._store
    trace = await store.get_trace(trace_id, 0) or await store.get_trace(trace_id)
    assert trace is not None
    return await store.get_items(trace.id)


def forwards(items: list[TraceItem]) -> list[tuple[int, str, str, bytes]]:
    """(position, who forwarded, to whom, the key vouched for) of each forward held."""
    said = [read(i.item, ForwardStatement)[1] for i in items if i.kind is ItemKind.FORWARD]
    return sorted((f.position, f.country, f.next_country, f.next_key) for f in said)


async def test_the_originators_own_forward_carries_the_vouching_past_the_hop_it_skipped(
    fed: Federation,
) -> None:
    """ITA is not DEU's peer, FRA is: FRA forwards to DEU and signs the forward for hop 2.
    DEU forwards to AUT, no peer of FRA: AUT's receipts check at FRA only because the
    vouching goes FRA (hop 2) -> DEU (hop 3), in the node and in the exported file."""
    await link(fed, "FRA", "ITA")
    await link(fed, "FRA", "DEU")
    await link(fed, "DEU", "AUT")
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()

    key = {c: fed[c].n.public_key for c in ("ITA", "DEU", "AUT")}
    held = await items_at(fed, "FRA", started.trace_id)
    assert forwards(held) == [
        (1, "FRA", "ITA", key["ITA"]),
        (2, "FRA", "DEU", key["DEU"]),  # the originator's, for the hop ITA could not reach
        (3, "DEU", "AUT", key["AUT"]),  # reported by DEU
    ]
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    assert [h.country for h in report.hops] == ["ITA", "DEU", "AUT"]
    assert [(v.position, v.country, v.by) for v in report.vouched] == [(3, "AUT", "DEU")]
    checked = verify_file(await fed["FRA"].f.traces.export(started.trace_id))
    assert checked.report.valid, checked.report.problems
    assert [(v.country, v.by) for v in checked.report.vouched] == [("AUT", "DEU")]

    # Without FRA's forward for hop 2 the vouching stops there: AUT is unknown.
    history = await fed["FRA"].n.peers.key_history()
    receipts, answers, replaced = held_chain(held)
    all_forwards, rotations = vouching(held)
    cut = [f for f in all_forwards if read(f, ForwardStatement)[1].position != 2]
    trace = await fed["FRA"].f.traces._store.get_trace(started.trace_id, 0)
    assert trace is not None and len(cut) == len(all_forwards) - 1
    bare = verify_chain(
        trace.request, receipts, answers, history, cut, rotations, superseded=replaced
    )
    assert {(p.kind, p.country) for p in bare.problems} == {(ProblemKind.WRONG_SIGNER, "AUT")}


async def test_a_hop_peered_late_signs_its_forward_and_the_originator_stops_waiting(
    fed: Federation,
) -> None:
    """Neither FRA nor ITA is DEU's peer; ITA peers DEU: its forward vouches for DEU's key,
    which FRA never trusts itself."""
    await link(fed, "FRA", "ITA")
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()
    assert (await fed["FRA"].f.traces.show(started.trace_id)).status is TraceStatus.WAITING

    await link(fed, "DEU", "ITA")  # DEU first: it accepts ITA's forward
    await fed.settle()
    assert await sent(fed, "ITA", "trace.request") == ["DEU"]
    deu = fed["DEU"].n.public_key
    assert (2, "ITA", "DEU", deu) in forwards(await items_at(fed, "FRA", started.trace_id))
    view = await fed["FRA"].f.traces.show(started.trace_id)
    # It went on: DEU answered, and now waits for a peering with AUT in turn.
    assert (view.status, view.trace.note) == (TraceStatus.WAITING, "no peering with AUT")
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert [(h.country, h.outcome) for h in report.hops] == [
        ("ITA", Outcome.FORWARDED),
        ("DEU", Outcome.FORWARDED),
    ]
    assert report.valid, report.problems
    assert [(v.position, v.country, v.by) for v in report.vouched] == [(2, "DEU", "ITA")]


async def test_the_running_node_forwards_for_a_peer_added_without_its_key(
    fed: Federation,
) -> None:
    """ITA's admin adds DEU where the key cannot be loaded (no hook: `peers add` on the
    command line without the passphrase): the trace waits on, until the node starts
    (`resume_waiting`), which forwards and signs."""
    await link(fed, "FRA", "ITA")
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()
    await fed["DEU"].n.peers.add(fed["ITA"].url, "ITA", fed["ITA"].fingerprint, "harness")
    await fed["DEU"].n.peers.set_policy("ITA", {Service.TRACES}, "harness")
    ita = fed["ITA"].n
    keyless = PeersService(PeersStore(ita.db), ita.transport, ita.clock, "ITA")
    await keyless.add(fed["DEU"].url, "DEU", fed["DEU"].fingerprint, "cli")
    await keyless.set_policy("DEU", {Service.TRACES}, "cli")
    await fed.settle()
    assert await sent(fed, "ITA", "trace.request") == []
    [waiting] = await fed["ITA"].f.traces.list_traces(True, TraceStatus.WAITING)
    assert waiting.trace_id == started.trace_id

    await resume_waiting(ita, fed["ITA"].k.signing)
    await fed.settle()
    assert await sent(fed, "ITA", "trace.request") == ["DEU"]
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid, report.problems
    assert [h.country for h in report.hops] == ["ITA", "DEU"]  # DEU answered (it waits on)
    assert [(v.country, v.by) for v in report.vouched] == [("DEU", "ITA")]
    await resume_waiting(ita, fed["ITA"].k.signing)  # nothing waits any more: no 2nd forward
    await fed.settle()
    assert await sent(fed, "ITA", "trace.request") == ["DEU"]


@pytest.mark.http
async def test_peers_add_on_the_command_line_signs_the_forward_it_sends(
    fed: Federation,
) -> None:
    """`peers add` in a process of its own, with the node's (unencrypted) key: the trace
    waiting at ITA goes to DEU through the outbox, under ITA's signed forward."""
    await link(fed, "FRA", "ITA")
    started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
    await fed.settle()
    await fed["DEU"].n.peers.add(fed["ITA"].url, "ITA", fed["ITA"].fingerprint, "harness")
    await fed["DEU"].n.peers.set_policy("ITA", {Service.TRACES}, "harness")

    ita = fed["ITA"]
    code, out, err = await run_cli(
        "peers", "add", fed["DEU"].url, "--country", "DEU", "--fingerprint",
        fed["DEU"].fingerprint, "--data-dir", str(ita.data_dir),
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert "added DEU" in out
    await ita.n.peers.set_policy("DEU", {Service.TRACES}, "harness")
    await fed.settle()
    assert await sent(fed, "ITA", "trace.request") == ["DEU"]
    deu = fed["DEU"].n.public_key
    assert (2, "ITA", "DEU", deu) in forwards(await items_at(fed, "FRA", started.trace_id))
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid, report.problems
    assert [(v.country, v.by) for v in report.vouched] == [("DEU", "ITA")]


async def test_a_hop_asks_at_most_the_questions_the_originator_keeps(fed: Federation) -> None:
    await link(fed, "FRA", "ITA")
    started = await fed["FRA"].f.traces.start(fields(fed, serial="Z-9"), ACTOR)
    await fed.settle()
    hop = fed["ITA"].f.trace_hop
    for number in range(MAX_ROUNDS):
        question = {"question": f"question {number}"}
        await hop.answer(started.trace_id, Outcome.NEEDS_INFORMATION, question, None, "officer")
        await fed.settle()
        await fed["FRA"].f.traces.reply(started.trace_id, REPLY, ACTOR)
        await fed.settle()
    with pytest.raises(ValidationError, match=f"asked {MAX_ROUNDS} questions already"):
        await hop.answer(
            started.trace_id, Outcome.NEEDS_INFORMATION, {"question": "one more"}, None, "o"
        )
    await hop.answer(started.trace_id, Outcome.NOT_FOUND, {}, None, "officer")
    await fed.settle()
    # Every report reached FRA: none refused (`trace_full`) and dead-lettered.
    outbox = await fed["ITA"].n.delivery.messages()
    assert [m.type for m in outbox if m.status is OutboxStatus.DEAD] == []
    report = await fed["FRA"].f.traces.verify(started.trace_id)
    assert report.valid and report.complete, report.problems
    assert report.hops[0].questions == tuple(f"question {n}" for n in range(MAX_ROUNDS))
