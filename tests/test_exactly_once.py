"""Exactly once, in one place: the dispatcher's unit of work (issue 8).

The dispatcher claims each inbound message's key in the transaction in which
its handler stores the effect and queues what it sends; a repeat gets the
kept answer, sealed for the repeat; a failure after the claim undoes the
claim, the effect and the queued message together. Real nodes over loopback,
the owner on each backend.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.auditing import AuditEntry, AuditEvent
from node.errors import PeerRefusedError
from node.lookup import oprf
from node.lookup.messages import HitNotice
from node.protocol.delivery import Outcome
from node.protocol.envelope import read_header
from node.protocol.messages import Answer, Bin16, Request, Text, decode
from node.protocol.model import OutboxStatus, Peer, Service
from node.records.model import RecordInput
from node.records.serials import canonicalise_serial
from node.store.work import StoreWork
from tests.harness import Federation

CASE = "FR-2026-0311"


class Tallied(Answer, frozen=True, kw_only=True):
    """How many times the handler has run so far."""

    wire_type = "test.tallied"
    count: int


class Tally(Request[Tallied], frozen=True, kw_only=True):
    """A must-arrive message whose effect is an audit entry and a message queued back."""

    wire_type = "test.tally"
    once_by = "delivery_id"
    delivery_id: Bin16
    note: Text


@pytest.fixture
async def pair(tmp_path: Path, db_url: str) -> AsyncIterator[Federation]:
    """FRA (SQLite) and DEU (each backend) holding GLK-12345, peers allowing lookups."""
    fed = Federation(tmp_path)
    try:
        await fed.add("FRA")
        await fed.add("DEU", db_url=db_url)
        await fed.peer_all(Service.LOOKUPS)
        deu = fed["DEU"]
        await deu.n.records.create(RecordInput("GLK-12345", "Glock", "pistol", "stolen"), "t")
        await deu.n.lookup_index.refresh(deu.k.oprf)
        yield fed
    finally:
        await fed.close()


def _notice(fed: Federation, lookup_id: bytes, delivery_id: bytes) -> HitNotice:
    serial = oprf.serial_input(canonicalise_serial("GLK-12345"))
    output = oprf.evaluate_direct(fed["DEU"].k.oprf, serial, oprf.MODE_VOPRF)
    return HitNotice(
        lookup_id=lookup_id,
        output=output,
        make="Glock",
        case_reference=CASE,
        delivery_id=delivery_id,
    )


async def _effects(fed: Federation, action: str) -> list[AuditEntry]:
    return await fed["DEU"].n.audit.recent(actor="peer:FRA", action=action)


async def test_a_hit_notice_delivered_twice_takes_effect_once_and_is_answered_alike(
    pair: Federation,
) -> None:
    fra, deu = pair["FRA"], pair["DEU"]
    peer = await fra.n.peers.get("DEU")
    notice = _notice(pair, b"\x11" * 16, b"\x12" * 16)
    first = await fra.f.client.ask_signed(peer, notice)
    second = await fra.f.client.ask_signed(peer, notice)  # a new envelope, the same delivery
    assert read_header(first.request).message_id != read_header(second.request).message_id
    assert (first.body.ref, second.body.ref) == (
        read_header(first.request).message_id,
        read_header(second.request).message_id,
    )
    assert type(first.body) is type(second.body)
    assert [h.lookup_id for h in await deu.n.lookup_index.hits()] == [b"\x11" * 16]
    assert len(await _effects(pair, "hit.notice")) == 1


async def test_a_repeat_gets_the_kept_answer_sealed_for_the_repeat(pair: Federation) -> None:
    """The handler answers with how often it ran: a repeat is answered from the inbox."""
    fra, deu = pair["FRA"], pair["DEU"]
    runs: list[Tally] = []

    async def tally(message: Tally, peer: Peer, work: StoreWork) -> Tallied:
        runs.append(message)
        await work.add_audit_entry(
            deu.clock.now(), AuditEvent(f"peer:{peer.country}", "test.tally", "", {})
        )
        return Tallied(count=len(runs))

    deu.f.dispatcher.register_effect(Tally, tally)
    peer = await fra.n.peers.get("DEU")
    message = Tally(delivery_id=os.urandom(16), note="once")
    answers = [await fra.f.client.ask_signed(peer, message) for _ in range(3)]
    assert [a.body.count for a in answers] == [1, 1, 1] and len(runs) == 1
    assert len({a.body.ref for a in answers}) == 3  # each names its own request
    assert len(await _effects(pair, "test.tally")) == 1
    fresh = await fra.f.client.ask(peer, Tally(delivery_id=os.urandom(16), note="again"))
    assert fresh.count == 2


async def test_a_failure_after_the_claim_undoes_claim_effect_and_queued_message(
    pair: Federation,
) -> None:
    fra, deu = pair["FRA"], pair["DEU"]
    fail = [True]

    async def tally(message: Tally, peer: Peer, work: StoreWork) -> Tallied:
        await work.add_audit_entry(
            deu.clock.now(), AuditEvent(f"peer:{peer.country}", "test.tally", "", {})
        )
        reply = Tally(delivery_id=os.urandom(16), note=f"re: {message.note}")
        await deu.n.delivery.send(peer.country, reply, work=work)
        if fail[0]:
            raise RuntimeError("injected after the claim, the effect and the queued message")
        return Tallied(count=1)

    deu.f.dispatcher.register_effect(Tally, tally)
    peer = await fra.n.peers.get("DEU")
    message = Tally(delivery_id=os.urandom(16), note="n")
    with pytest.raises(PeerRefusedError) as refused:
        await fra.f.client.ask(peer, message)
    assert refused.value.peer_code == "internal"
    assert await _effects(pair, "test.tally") == []
    assert await deu.n.delivery.messages() == []
    fail[0] = False
    assert (await fra.f.client.ask(peer, message)).count == 1  # the claim was undone too
    assert (await fra.f.client.ask(peer, message)).count == 1
    assert len(await _effects(pair, "test.tally")) == 1
    [queued] = await deu.n.delivery.messages(OutboxStatus.PENDING)
    assert (queued.recipient, queued.type) == ("FRA", "test.tally")
    assert decode(Tally, queued.body).note == "re: n"


async def test_a_hit_notice_whose_audit_fails_leaves_no_hit_and_is_recorded_on_retry(
    pair: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    fra, deu = pair["FRA"], pair["DEU"]
    add_audit_entry = StoreWork.add_audit_entry

    async def failing(work: StoreWork, at: Any, event: AuditEvent) -> None:
        if event.action == "hit.notice":
            raise RuntimeError("the audit log cannot be written")
        await add_audit_entry(work, at, event)

    monkeypatch.setattr(StoreWork, "add_audit_entry", failing)
    notice = await fra.n.delivery.send("DEU", _notice(pair, b"\x21" * 16, os.urandom(16)))
    assert (await fra.f.client.deliver(notice)).outcome is Outcome.RETRY
    assert await deu.n.lookup_index.hits() == []  # the hit written before the audit is undone
    monkeypatch.undo()
    for _ in range(2):
        assert (await fra.f.client.deliver(notice)).outcome is Outcome.DELIVERED
    assert [h.lookup_id for h in await deu.n.lookup_index.hits()] == [b"\x21" * 16]
    assert len(await _effects(pair, "hit.notice")) == 1
