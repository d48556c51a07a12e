"""What a hostile peer tried against lookups, and what holds now (issue 7).

Real nodes over loopback HTTP (`tests/harness.py`): a querier that tests makes
through confirmations, floods confirmations, sends NUL, poisons a delivery
queue; an owner that answers with too much; a bulk lookup against a peer's
budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.errors import PeerRefusedError, ValidationError
from node.lookup import oprf
from node.lookup import owner as lookup_owner
from node.lookup import querier as lookup_module
from node.lookup.querier import Query
from node.protocol.client import pack
from node.protocol.delivery import Outcome
from node.protocol.model import OutboxStatus, Service
from node.protocol.ratelimit import RateLimitConfig, rate_limited
from node.records.model import RecordInput
from node.records.serials import canonicalise_serial
from node.store.work import StoreWork
from tests.conftest import MODULE_LOOP
from tests.harness import Federation, seeded_federation

CASE = "FR-2026-0311"


def _confirmation(fed: Federation, lookup_id: bytes, make: str = "Glock") -> dict[str, Any]:
    """What FRA sends DEU to confirm GLK-12345 (its output under DEU's key)."""
    serial = oprf.serial_input(canonicalise_serial("GLK-12345"))
    output = oprf.evaluate_direct(fed["DEU"].k.oprf, serial, oprf.MODE_VOPRF)
    return {"lookup_id": lookup_id, "output": output, "make": make, "case_reference": CASE}


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Federation]:
    """The seeded federation with a small evaluation budget: 3 at once, ~none refilled."""
    federation = await seeded_federation(tmp_path, RateLimitConfig(capacity=3, rate=0.001))
    yield federation
    await federation.close()


async def test_without_hit_details_a_peer_learns_that_a_record_exists_and_nothing_of_its_make(
    fed: Federation,
) -> None:
    """Defect 3: seven confirmations with one lookup id and seven makes revealed the make."""
    await fed["DEU"].n.peers.set_policy("FRA", {Service.LOOKUPS}, "test")
    peer = await fed["FRA"].n.peers.get("DEU")
    request = fed["FRA"].f.client.request
    answer = await request(peer, "lookup.confirm", _confirmation(fed, b"\x07" * 16, "Beretta"))
    assert answer["records"] == [{"status": "stolen"}]
    assert (answer["make_agrees"], answer["details"]) == (None, False)
    for make in ("Glock", "Smith & Wesson"):
        with pytest.raises(PeerRefusedError) as refused:
            await request(peer, "lookup.confirm", _confirmation(fed, b"\x07" * 16, make))
        assert refused.value.peer_code == "already_confirmed"
    fresh = await request(peer, "lookup.confirm", _confirmation(fed, b"\x08" * 16, "Glock"))
    assert fresh["make_agrees"] is None  # a right make answers exactly as a wrong one
    await fed["DEU"].n.peers.set_policy("FRA", {Service.LOOKUPS, Service.HIT_DETAILS}, "test")
    detailed = await request(peer, "lookup.confirm", _confirmation(fed, b"\x09" * 16, "S&W"))
    assert (detailed["make_agrees"], detailed["details"]) == (False, True)


async def test_confirmations_and_notices_are_charged_against_the_evaluation_budget(
    limited: Federation,
) -> None:
    """Defect 5: confirmations with fresh lookup ids were not limited at all."""
    fra = limited["FRA"]
    peer = await fra.n.peers.get("DEU")
    for i in range(3):
        await fra.f.client.request(peer, "lookup.confirm", _confirmation(limited, bytes([i]) * 16))
    with pytest.raises(PeerRefusedError) as refused:
        await fra.f.client.request(peer, "lookup.confirm", _confirmation(limited, b"\x0f" * 16))
    assert refused.value.peer_code == "rate_limited"
    assert "retry in" in str(refused.value) and "retry in 0 s" not in str(refused.value)
    notice = await fra.n.delivery.enqueue(
        "DEU", "hit.notice", pack(_confirmation(limited, b"\x1f" * 16))
    )
    result = await fra.f.client.deliver(notice)
    assert result.outcome is Outcome.RETRY and "rate_limited" in (result.error or "")


def test_a_wait_under_a_second_is_never_shown_as_zero() -> None:
    assert rate_limited("FRA", 5, 0.2).endswith("retry in 1 s")
    assert rate_limited("FRA", 5, 1.0).endswith("retry in 1 s")
    assert "burst limit" in rate_limited("FRA", 50_000, float("inf"))


async def test_nul_from_a_peer_is_malformed_and_blocks_no_queue(
    tmp_path: Path, db_url: str
) -> None:
    """Defect 4: on a PostgreSQL owner a NUL in a make or case reference was `internal`,
    and the hit notice carrying it was retried forever ahead of every later message."""
    fed = Federation(tmp_path)
    try:
        await fed.add("FRA")
        await fed.add("DEU", db_url=db_url)
        await fed.peer_all(Service.LOOKUPS, Service.HIT_DETAILS)
        deu = fed["DEU"]
        await deu.n.records.create(RecordInput("GLK-12345", "Glock", "pistol", "stolen"), "t")
        await deu.n.lookup_index.refresh(deu.k.oprf)
        fra = fed["FRA"]
        peer = await fra.n.peers.get("DEU")
        with pytest.raises(PeerRefusedError) as refused:
            await fra.f.client.request(
                peer, "lookup.confirm", _confirmation(fed, b"\x01" * 16, "Gl\x00ock")
            )
        assert refused.value.peer_code == "malformed" and "NUL" in str(refused.value)
        poisoned = _confirmation(fed, b"\x02" * 16) | {"case_reference": "FR\x00-1"}
        await fra.n.delivery.enqueue("DEU", "hit.notice", pack(poisoned))
        await fra.n.delivery.enqueue("DEU", "hit.notice", pack(_confirmation(fed, b"\x03" * 16)))
        assert await fra.n.delivery.deliver_due(fra.f.client) == 1
        dead = await fra.n.delivery.messages(OutboxStatus.DEAD)
        assert [m.status for m in dead] == [OutboxStatus.DEAD]
        assert "malformed" in (dead[0].last_error or "")
        assert [h.lookup_id for h in await deu.n.lookup_index.hits()] == [b"\x03" * 16]
    finally:
        await fed.close()


async def test_a_message_the_peer_keeps_failing_on_is_dead_lettered_and_the_queue_goes_on(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notice that DEU answers `internal` every time moves to the dead letters after
    `max_failed_answers` attempts; the notice queued behind it is delivered."""
    fra, deu = fed["FRA"], fed["DEU"]
    add_hits = StoreWork.add_hits
    poison = b"\x66" * 16

    async def failing(work: StoreWork, hits: list[dict[str, Any]]) -> None:
        if any(hit["lookup_id"] == poison for hit in hits):
            raise RuntimeError("a bug that this one message triggers")
        await add_hits(work, hits)

    monkeypatch.setattr(StoreWork, "add_hits", failing)
    await fra.n.delivery.enqueue("DEU", "hit.notice", pack(_confirmation(fed, poison)))
    await fra.n.delivery.enqueue("DEU", "hit.notice", pack(_confirmation(fed, b"\x67" * 16)))
    limit = fra.n.config.delivery_backoff.max_failed_answers
    delivered = 0
    for _ in range(limit + 1):
        delivered += await fra.n.delivery.deliver_due(fra.f.client)
        fed.clock.advance(60)  # past the backoff, within the freshness window
    assert delivered == 1
    [dead] = await fra.n.delivery.messages(OutboxStatus.DEAD)
    assert dead.failed_answers == limit and "given up" in (dead.last_error or "")
    assert [h.lookup_id for h in await deu.n.lookup_index.hits()] == [b"\x67" * 16]


async def test_an_owner_answering_with_too_many_records_is_refused_and_nothing_is_kept(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 9: a hostile owner answered with 60,000 records; the querier stored them."""
    flood = [{"status": "stolen", "notes": "x" * 50} for _ in range(lookup_module.MAX_RECORDS + 1)]
    monkeypatch.setattr(lookup_owner, "_disclosed", lambda rows, detailed: flood)
    results = await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "officer")
    [deu] = [r for r in results if r.peer == "DEU"]
    assert deu.result == "refused" and "invalid data" in deu.reason
    assert (await fed["FRA"].n.evidence.list())[1] == 0


async def test_an_answer_over_the_envelope_limit_is_not_read(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = [{"status": "stolen", "notes": "x" * 400_000} for _ in range(3)]
    monkeypatch.setattr(lookup_owner, "_disclosed", lambda rows, detailed: huge)
    results = await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "officer")
    [deu] = [r for r in results if r.peer == "DEU"]
    assert deu.result == "unreachable" and "larger than" in deu.reason
    assert (await fed["FRA"].n.evidence.list())[1] == 0


async def test_the_owner_names_at_most_its_bound_of_records(fed: Federation) -> None:
    deu = fed["DEU"]
    extra = lookup_owner.MAX_CONFIRMED_RECORDS + 5
    for i in range(extra):
        await deu.n.records.create(
            RecordInput("GLK-12345", "Glock", "pistol", "stolen", case_reference=f"DE-{i}"), "t"
        )
    await deu.n.lookup_index.refresh(deu.k.oprf)
    results = await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "officer")
    [hit] = [r for r in results if r.peer == "DEU"]
    assert hit.result == "hit" and len(hit.records) == lookup_owner.MAX_CONFIRMED_RECORDS
    assert hit.records[0]["case_reference"] == f"DE-{extra - 1}"  # newest first


async def test_a_bulk_lookup_asks_in_batches_within_the_peers_allowance(tmp_path: Path) -> None:
    """Defect 10: 10,000 evaluations went in one request, so a timeout wasted a peer's
    whole budget. Batches of at most `BATCH`, no larger than the allowance the
    owner states; what does not fit is reported as not checked, never refused."""
    fed = await seeded_federation(tmp_path, RateLimitConfig(capacity=1_500, rate=0.001))
    try:
        serials = [f"BULK-{i:05d}" for i in range(2_500)]
        serials[1_200] = "GLK-12345"
        results = await fed["FRA"].f.lookups.lookup([Query(s) for s in serials], CASE, "o")
        deu = {r.serial: r for r in results if r.peer == "DEU"}
        assert deu["GLK-12345"].result == "hit"
        asked = 1_500 - lookup_module.CONFIRM_RESERVE  # the rest is kept for confirmations
        assert {deu[s].result for s in serials[:asked]} == {"hit", "no_hit"}
        late = {deu[s].result for s in serials[asked:]}
        assert late == {"refused"} and "not checked" in deu[serials[-1]].reason
        entries = await fed["DEU"].n.audit.recent(actor="peer:FRA", action="lookup.evaluate")
        assert sorted(e.details["count"] for e in entries) == [asked - 1_000, 1_000]
    finally:
        await fed.close()


async def test_the_cryptography_of_a_bulk_lookup_runs_off_the_event_loop(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 10: blinding and proof checks of 10,000 serials stalled the node's loop."""
    ran: list[str] = []
    to_thread = lookup_module.asyncio.to_thread

    async def spy(work: Any, *args: Any) -> Any:
        ran.append(work.__name__)
        return await to_thread(work, *args)

    monkeypatch.setattr(lookup_module.asyncio, "to_thread", spy)  # the owners' too
    queries = [Query(f"SEIZED-{i}") for i in range(lookup_module.INLINE_ELEMENTS + 1)]
    await fed["FRA"].f.lookups.lookup(queries, CASE, "officer")
    # One batch per peer (DEU, ITA): blinded and finished in a thread each.
    assert (ran.count("_blind_all"), ran.count("_finish")) == (2, 2)


@MODULE_LOOP
@pytest.mark.parametrize(
    ("query", "case", "field"),
    [
        (Query("GLK-12345", "Gl\x00ock"), CASE, "make"),
        (Query("GLK\x00-12345"), CASE, "serial"),
        (Query("GLK-12345"), "FR\x00-1", "case_reference"),
        (Query("GLK-12345"), "FR\x1b[2J-1", "case_reference"),
    ],
)
async def test_the_querier_refuses_control_characters_before_anything_is_sent(
    seeded: Federation, query: Query, case: str, field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        await seeded["FRA"].f.lookups.lookup([query], case, "officer")
    assert refused.value.field == field and "control character" in str(refused.value)
    assert await seeded["DEU"].n.audit.recent(actor="peer:FRA") == []
