"""Private serial lookups across a three-country federation over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import NotFoundError, RateLimitedError, ValidationError
from node.identity import ROTATION_FILE, rotate_signing_key
from node.initialise import init_node
from node.lookup import oprf
from node.lookup.messages import LookupConfirm, LookupConfirmed
from node.lookup.querier import Query
from node.protocol.client import pack
from node.protocol.dispatch import Dispatcher
from node.protocol.envelope import (
    decode_error,
    open_envelope,
    read_header,
    seal,
    to_ms,
)
from node.protocol.model import OutboxStatus, Peer, Service
from node.protocol.ratelimit import RateLimitConfig
from node.protocol.receive import select_key
from node.protocol.rotation import sign_rotation
from node.records.model import RecordInput
from node.records.serials import canonicalise_serial
from tests.conftest import wants_http
from tests.harness import (
    ADMIN_PASSWORD,
    Federation,
    Member,
    assert_seeded_lookup,
    free_port,
    run_cli,
    seeded_federation,
)

CASE = "FR-2026-0042"


@pytest.fixture
async def fed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, DEU and ITA with records at DEU and ITA (`seeded_federation`)."""
    limit = RateLimitConfig(capacity=50, rate=1)
    federation = await seeded_federation(tmp_path, limit, http=wants_http(request))
    yield federation
    await federation.close()


def by_peer(results: list) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r.peer: r.to_json() for r in results}


@pytest.mark.http  # end to end: a lookup over loopback HTTP
async def test_hit_and_miss(fed: Federation) -> None:
    results = await fed["FRA"].f.lookups.lookup([Query("glk 12345", "glock")], CASE, "officer")
    answers = by_peer(results)
    assert_seeded_lookup(answers)
    hits = await fed["DEU"].n.lookup_index.hits()
    assert [(h.peer, h.serial_number, h.case_reference) for h in hits] == [
        ("FRA", "GLK-12345", CASE)
    ]
    actions = [e.action for e in await fed["ITA"].n.audit.recent(limit=5)]
    assert "lookup.evaluate" in actions and "lookup.confirm" not in actions
    evaluate = next(
        e for e in await fed["ITA"].n.audit.recent(limit=5) if e.action == "lookup.evaluate"
    )
    assert evaluate.details == {"count": 1}  # the peer and the count, never the values


async def test_serial_only_match_when_the_make_is_spelled_differently(fed: Federation) -> None:
    results = await fed["FRA"].f.lookups.lookup(
        [Query("GLK12345", "Smith & Wesson")], CASE, "officer"
    )
    assert by_peer(results)["DEU"]["result"] == "hit"
    assert by_peer(results)["DEU"]["make_agrees"] is False


async def test_bulk_check(fed: Federation) -> None:
    queries = [Query(s) for s in ("GLK-12345", "B-777", "NOPE-1", "NOPE-2")]
    results = await fed["FRA"].f.lookups.lookup(queries, CASE, "officer")
    table = {(r.peer, r.serial): r.result for r in results}
    assert table == {
        ("DEU", "GLK-12345"): "hit",
        ("DEU", "B-777"): "no_hit",
        ("DEU", "NOPE-1"): "no_hit",
        ("DEU", "NOPE-2"): "no_hit",
        ("ITA", "GLK-12345"): "no_hit",
        ("ITA", "B-777"): "hit",
        ("ITA", "NOPE-1"): "no_hit",
        ("ITA", "NOPE-2"): "no_hit",
    }


async def test_details_follow_policy_revocation_refuses(fed: Federation) -> None:
    await fed["DEU"].n.peers.set_policy("FRA", [Service.LOOKUPS], "admin")
    await fed["ITA"].n.peers.revoke("FRA", "admin")
    answers = by_peer(await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "o"))
    assert answers["DEU"]["result"] == "hit"
    assert answers["DEU"]["records"] == [{"status": "stolen"}]
    assert answers["ITA"]["result"] == "refused" and "(revoked)" in answers["ITA"]["reason"]
    await fed["DEU"].n.peers.set_policy("FRA", [], "admin")
    answers = by_peer(await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "o"))
    assert answers["DEU"]["result"] == "refused" and "(refused)" in answers["DEU"]["reason"]


async def test_unreachable_peer_and_recovered_record(fed: Federation) -> None:
    await fed.stop("ITA")
    deu = fed["DEU"].n
    record = (
        await deu.records.search(
            deu.records.parse_filter(
                __import__("node.records.service", fromlist=["FilterText"]).FilterText(
                    serial="GLK12345"
                )
            ),
            "t",
        )
    ).records[0]
    await deu.records.recover(record.id, record.version, date(2026, 1, 2), "t")
    assert await deu.lookup_index.refresh(fed["DEU"].k.oprf) == 2
    answers = by_peer(await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "o"))
    assert answers["ITA"]["result"] == "unreachable"
    assert answers["DEU"] == {
        "peer": "DEU",
        "serial": "GLK-12345",
        "result": "no_hit",
        "index_version": 2,
    }


async def test_rate_limit(fed: Federation) -> None:
    queries = [Query(f"R-{i}") for i in range(60)]
    answers = by_peer(await fed["FRA"].f.lookups.lookup(queries, CASE, "o"))
    assert answers["DEU"]["result"] == "refused" and "rate_limited" in answers["DEU"]["reason"]


@pytest.mark.http  # end to end: delivery to a node that restarts its HTTP server
@pytest.mark.parametrize("back", ["it greets us", "it answers us"])
async def test_hit_notice_reaches_a_peer_that_was_down(fed: Federation, back: str) -> None:
    """Queued while DEU was down; sent as soon as DEU is heard from, not after the backoff."""
    fra, deu = fed["FRA"], fed["DEU"]

    output = oprf.evaluate_direct(
        deu.k.oprf, oprf.serial_input(canonicalise_serial("GLK-12345")), oprf.MODE_VOPRF
    )
    await fed.stop("DEU")
    notice = {"lookup_id": b"L" * 16, "output": output, "make": "Glock", "case_reference": CASE}
    await fra.n.delivery.enqueue("DEU", "hit.notice", pack(notice))
    assert await fra.n.delivery.deliver_due(fra.f.client) == 0
    await fed.start("DEU")
    assert await fra.n.delivery.deliver_due(fra.f.client) == 0  # still backing off
    if back == "it greets us":  # as `iarms-node run` does when it starts
        assert await fed["DEU"].f.client.greet(await fed["DEU"].n.peers.list_peers()) == 2
    else:
        await fra.f.lookups.lookup([Query("NOT-HELD-1")], CASE, "o")
    assert await fra.n.delivery.deliver_due(fra.f.client) == 1
    hits = await fed["DEU"].n.lookup_index.hits()
    assert [(h.peer, h.case_reference) for h in hits] == [("FRA", CASE)]


async def _post(url: str, data: bytes) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/federation/v1/messages", data=data) as response,
    ):
        return response.status, await response.read()


@pytest.mark.http
@pytest.mark.parametrize(
    "fault",
    ["replay", "tampered", "wrong_recipient", "stale", "too_large", "unknown_type", "malformed"],
)
async def test_bad_envelopes_get_signed_errors_and_the_node_keeps_serving(
    fed: Federation, fault: str
) -> None:
    fra, deu = fed["FRA"], fed["DEU"]
    now = to_ms(fra.clock.now())
    body = pack({"since": None})
    kind, recipient, ts = "index.get", "DEU", now
    if fault == "wrong_recipient":
        recipient = "ITA"
    if fault == "stale":
        ts = now - 3_600_000
    if fault == "unknown_type":
        kind = "lookup.everything"
    data = seal(fra.k.signing, "FRA", recipient, kind, body, timestamp_ms=ts)
    if fault == "replay":
        assert (await _post(deu.url, data))[0] == 200
    if fault == "tampered":
        data = data[:-1] + bytes([data[-1] ^ 1])
    if fault == "too_large":
        data = seal(
            fra.k.signing,
            "FRA",
            "DEU",
            "index.get",
            b"\x00" * (1 << 20),  # type: ignore[arg-type]
            timestamp_ms=now,
        )
    if fault == "malformed":
        data = b"\x93\x01\x02"
    status, answer = await _post(deu.url, data)
    assert status >= 400
    peer = await fra.n.peers.get("DEU")
    envelope = open_envelope(
        answer,
        me="XXX" if fault in ("too_large", "malformed") else "FRA",
        now_ms=to_ms(fra.clock.now()),
        keys=lambda s, k: select_key(peer, k, fra.clock.now()),
    )
    expected = {
        "replay": "replay",
        "tampered": "bad_signature",
        "wrong_recipient": "wrong_recipient",
        "stale": "clock_skew",
        "too_large": "too_large",
        "unknown_type": "unknown_type",
        "malformed": "malformed",
    }[fault]
    assert decode_error(envelope).code == expected
    # and it still answers good messages
    good = await fra.f.lookups.lookup([Query("GLK-12345")], CASE, "o")
    assert by_peer(good)["DEU"]["result"] == "hit"


@pytest.mark.http
async def test_lookup_and_hits_from_the_command_line(fed: Federation, tmp_path: Path) -> None:
    fra, deu = str(fed["FRA"].data_dir), str(fed["DEU"].data_dir)
    code, out, err = await run_cli(
        "lookup",
        "--serial",
        "GLK 12345",
        "--make",
        "Glock",
        "--case-ref",
        "FR-1",
        "--json",
        "--data-dir",
        fra,
    )
    assert code == 0, err
    rows = {r["peer"]: r for r in map(json.loads, out.splitlines())}
    assert rows["DEU"]["result"] == "hit" and rows["DEU"]["make_agrees"] is True
    assert rows["ITA"] == {
        "peer": "ITA",
        "serial": "GLK 12345",
        "result": "no_hit",
        "index_version": 1,
    }
    bulk = tmp_path / "seized.csv"
    bulk.write_text("serial_number,make\nB-777,Beretta\nX-1,\n", encoding="utf-8")
    code, out, err = await run_cli(
        "lookup", "--bulk", str(bulk), "--case-ref", "FR-2", "--json", "--data-dir", fra
    )
    assert code == 0, err
    table = {(r["peer"], r["serial"]): r["result"] for r in map(json.loads, out.splitlines())}
    assert table[("ITA", "B-777")] == "hit" and table[("DEU", "X-1")] == "no_hit"
    bad = tmp_path / "bad.csv"
    bad.write_text("serial\nA\n", encoding="utf-8")
    code, _out, err = await run_cli(
        "lookup", "--bulk", str(bad), "--case-ref", "FR-3", "--data-dir", fra
    )
    assert code == 1 and "serial_number column" in err
    code, out, err = await run_cli("hits", "--json", "--data-dir", deu)
    assert code == 0, err
    hits = [json.loads(x) for x in out.splitlines()]
    assert [(h["peer"], h["serial_number"], h["case_reference"]) for h in hits] == [
        ("FRA", "GLK-12345", "FR-1")
    ]
    assert set(hits[0]) == {
        "record_id",
        "serial_number",
        "peer",
        "at",
        "case_reference",
        "make_agrees",
    }


async def _reinstall(fed: Federation, country: str) -> Member:
    """`country` installs its node afresh (new keys, versions from 1) at the same URL."""
    listen = f"{fed[country].n.config.federation.host}:{fed[country].n.config.federation.port}"
    url = fed[country].url
    await fed.stop(country)
    data_dir = fed.base / f"{country}-reinstalled"
    await init_node(
        data_dir,
        country,
        admin_password=ADMIN_PASSWORD,
        clock=fed.clock,
        federation_listen=listen,
        console_listen=f"127.0.0.1:{free_port()}",
    )
    fed.members[country] = Member(country, data_dir, fed.clock, url)
    await fed.start(country)
    return fed[country]


async def test_a_peer_reinstalled_with_new_keys_is_not_checked_against_its_old_index(
    fed: Federation,
) -> None:
    fra = fed["FRA"]
    answers = by_peer(await fra.f.lookups.lookup([Query("NEW-1")], CASE, "o"))
    assert answers["DEU"] == {
        "peer": "DEU",
        "serial": "NEW-1",
        "result": "no_hit",
        "index_version": 1,
    }
    deu = await _reinstall(fed, "DEU")
    await deu.n.peers.add(fra.url, "FRA", fra.fingerprint, "admin")
    await deu.n.records.create(RecordInput("NEW-1", "Glock", "pistol", "stolen"), "t")
    assert await deu.n.lookup_index.refresh(deu.k.oprf) == 1  # the version FRA holds
    await fra.n.peers.revoke("DEU", "admin")
    await fra.n.peers.add(deu.url, "DEU", deu.fingerprint, "admin")
    assert (await fra.n.peers.get("DEU")).index_version is None
    assert await fra.n.lookups_store.get_peer_index("DEU") is None
    answers = by_peer(await fra.f.lookups.lookup([Query("NEW-1")], CASE, "o"))
    assert answers["DEU"]["result"] == "hit", answers["DEU"]
    assert [h.peer for h in await deu.n.lookup_index.hits()] == ["FRA"]


async def test_a_peer_with_a_forged_rotation_is_unreachable_and_the_others_answer(
    fed: Federation,
) -> None:
    """DEU signs with a new key, announced by a statement that FRA cannot verify."""
    deu = fed["DEU"]
    key_file = deu.n.config.signing_key_file
    rotation = rotate_signing_key(key_file, None, "DEU", deu.clock.now(), timedelta(days=1))
    forged = sign_rotation(
        Ed25519PrivateKey.generate(), "DEU", rotation.new_key, rotation.at, rotation.grace_until
    )
    (key_file.parent / ROTATION_FILE).write_bytes(forged)
    await fed.stop("DEU")
    await fed.start("DEU")
    answers = by_peer(await fed["FRA"].f.lookups.lookup([Query("B-777")], CASE, "o"))
    assert answers["ITA"]["result"] == "hit"
    assert answers["DEU"]["result"] == "unreachable"
    assert "signed with a key this node does not trust" in answers["DEU"]["reason"]
    assert "not signed by the key this node trusted" in answers["DEU"]["reason"]
    assert (await fed["FRA"].n.peers.get("DEU")).signing_key != rotation.new_key


@pytest.mark.parametrize(
    ("error", "result", "reason"),
    [
        (NotFoundError("no such thing"), "refused", "DEU: no such thing"),
        (RuntimeError("a bug"), "unreachable", "DEU: this node failed to ask it (RuntimeError)"),
    ],
)
async def test_whatever_fails_with_one_peer_is_that_peers_result_only(
    fed: Federation,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    result: str,
    reason: str,
) -> None:
    fra, deu_url = fed["FRA"], fed["DEU"].url
    post = fra.n.transport.post

    async def failing_at_deu(url: str, data: bytes, max_bytes: int) -> bytes:
        if url.startswith(deu_url):
            raise error
        return await post(url, data, max_bytes)

    monkeypatch.setattr(fra.n.transport, "post", failing_at_deu)
    answers = by_peer(await fra.f.lookups.lookup([Query("B-777")], CASE, "o"))
    assert answers["ITA"]["result"] == "hit"
    assert (answers["DEU"]["result"], answers["DEU"]["reason"]) == (result, reason)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
    assert len(logged) == (result == "unreachable")  # only the unexpected is logged


LONG = "x" * 201


@pytest.mark.parametrize(
    ("queries", "case_reference", "field", "message"),
    [
        ([Query("GLK-12345", LONG)], CASE, "make", "make: longer than 200 characters"),
        ([Query("GLK-12345")], "c" * 101, "case_reference", "case_reference: at most 100"),
        ([Query("GLK-12345")], " ", "case_reference", "case_reference: give the case"),
        ([Query("GLK-12345")], "FR-\u202e1", "case_reference", "character 4 (U+202E)"),
        ([Query("GLK-12345", "Gl\udcffck")], CASE, "make", "make: 'Gl\\udcffck' is not valid"),
        ([Query("GLK-12345")], "FR-\udcff", "case_reference", "case_reference: 'FR-"),
        ([Query("GLK\udcff12345")], CASE, "serial", "serial: 'GLK\\udcff12345' is not valid"),
        (
            [Query("A-1"), Query("B-777", LONG)],
            CASE,
            "make",
            "serial 2 of 2 ('B-777'): make: longer than 200",
        ),
        (
            [Query("A-1"), Query("B-2"), Query("C\udcff3")],
            CASE,
            "serial",
            "serial 3 of 3 ('C\\udcff3'): serial: ",
        ),
    ],
)
async def test_what_the_owners_would_refuse_is_refused_before_anything_is_sent(
    fed: Federation, queries: list[Query], case_reference: str, field: str, message: str
) -> None:
    fra = fed["FRA"]
    with pytest.raises(ValidationError) as raised:
        await fra.f.lookups.lookup(queries, case_reference, "o")
    assert raised.value.field == field
    assert message in str(raised.value)
    assert await fra.n.audit.recent(action="lookup.query") == []
    assert await fed["DEU"].n.audit.recent(action="lookup.evaluate") == []
    ok = by_peer(await fra.f.lookups.lookup([Query("GLK-12345", "x" * 200)], "c" * 100, "o"))
    assert ok["DEU"]["result"] == "hit"


def _handle_confirm_with(
    dispatcher: Dispatcher[Any], handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Have `dispatcher` answer `lookup.confirm` with `handler` (until the monkeypatch undoes)."""
    registration = replace(dispatcher._registry["lookup.confirm"], effect=handler)
    monkeypatch.setitem(dispatcher._registry, "lookup.confirm", registration)


async def test_a_confirmation_refused_for_now_queues_a_hit_notice(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    fra, deu = fed["FRA"], fed["DEU"]

    async def busy(_message: LookupConfirm, _peer: Peer, _work: object) -> LookupConfirmed:
        raise RateLimitedError("too many confirmations")

    _handle_confirm_with(deu.f.dispatcher, busy, monkeypatch)
    answers = by_peer(await fra.f.lookups.lookup([Query("GLK-12345", "Glock")], CASE, "o"))
    deu_answer = answers["DEU"]
    assert deu_answer["result"] == "unreachable"
    assert deu_answer["reason"].startswith(
        "the index matches; the confirmation was refused for now"
    )
    assert "(rate_limited)" in deu_answer["reason"]
    assert deu_answer["reason"].endswith("a hit notice is queued")
    [notice] = await fra.n.delivery.messages(OutboxStatus.PENDING)
    assert (notice.recipient, notice.type) == ("DEU", "hit.notice")
    assert await deu.n.lookup_index.hits() == []
    monkeypatch.undo()
    assert await fra.n.delivery.deliver_due(fra.f.client) == 1
    hits = await deu.n.lookup_index.hits()
    assert [(h.peer, h.serial_number, h.case_reference) for h in hits] == [
        ("FRA", "GLK-12345", CASE)
    ]


async def test_a_confirmation_refused_for_good_queues_nothing(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no(_message: LookupConfirm, _peer: Peer, _work: object) -> LookupConfirmed:
        raise ValidationError("no")

    _handle_confirm_with(fed["DEU"].f.dispatcher, no, monkeypatch)
    answers = by_peer(await fed["FRA"].f.lookups.lookup([Query("GLK-12345")], CASE, "o"))
    assert answers["DEU"]["result"] == "refused" and "(invalid)" in answers["DEU"]["reason"]
    assert await fed["FRA"].n.delivery.messages() == []


async def test_an_owner_down_before_the_confirmation_records_the_hit_from_its_notice(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEU answers the evaluation, then goes down: the hit reaches it through FRA's outbox."""
    fra = fed["FRA"]
    post = fra.n.transport.post

    async def down_before_confirm(url: str, data: bytes, max_bytes: int) -> bytes:
        if read_header(data).type == "lookup.confirm":
            await fed.stop("DEU")
        return await post(url, data, max_bytes)

    monkeypatch.setattr(fra.n.transport, "post", down_before_confirm)
    answers = by_peer(await fra.f.lookups.lookup([Query("GLK-12345", "Glock")], CASE, "o"))
    assert answers["DEU"]["result"] == "unreachable"
    assert answers["DEU"]["reason"].startswith("the index matches; confirmation failed")
    assert answers["ITA"]["result"] == "no_hit"
    assert await fra.n.delivery.deliver_due(fra.f.client) == 0  # DEU is still down
    await fed.start("DEU")
    assert await fed["DEU"].f.client.greet(await fed["DEU"].n.peers.list_peers()) == 2
    assert await fra.n.delivery.deliver_due(fra.f.client) == 1
    hits = await fed["DEU"].n.lookup_index.hits()
    assert [(h.peer, h.serial_number, h.case_reference, h.make_agrees) for h in hits] == [
        ("FRA", "GLK-12345", CASE, True)
    ]
