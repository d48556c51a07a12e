"""What a node knows of its peers' state: index version, last contact, reachability.

A three-country federation on loopback (`seeded_federation`): FRA looks up
serials and never receives a request itself, so whatever FRA records about
DEU and ITA comes from the answers to its own requests. The same facts are
checked through the service, the CLI (text and `--json`) and the console's
`/peers.json`; revocation twice and hits without a make are here too, and
the store's part of it all on each database backend.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from node.app import Node
from node.auditing import AuditEvent
from node.errors import ConflictError
from node.lookup.querier import Query
from node.protocol.client import pack
from node.protocol.model import Peer, PeerStatus, Reachability, Service
from node.records.service import FilterText
from node.store.peers import PeersStore
from node.store.work import unit_of_work
from tests.console_helpers import Console, console_for
from tests.harness import ADMIN_PASSWORD, Federation, run_cli

CASE = "FR-2026-0099"


async def cli_json(fed: Federation, country: str, *args: str) -> list[dict[str, Any]]:
    """The `--json` lines a CLI command prints for `country`'s node."""
    code, out, err = await run_cli(*args, "--json", "--data-dir", str(fed[country].data_dir))
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def console_peers(console: Console) -> dict[str, dict[str, Any]]:
    """`/peers.json`'s peers by country."""
    return {p["country"]: p for p in (await console.json("/peers.json"))["peers"]}


async def look_up(fed: Federation, serial: str, make: str = "") -> dict[str, dict[str, Any]]:
    """FRA's lookup of one serial: each peer's result."""
    results = await fed["FRA"].f.lookups.lookup([Query(serial, make)], CASE, "officer")
    return {r.peer: r.to_json() for r in results}


def _peer(contact: datetime | None, error: datetime | None) -> Peer:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Peer(
        "DEU", "http://127.0.0.1:1", b"k" * 32, "", None, PeerStatus.ACTIVE,
        frozenset({Service.LOOKUPS}), at, "admin", None, contact, None, None, None,
        error, "down" if error else None,
    )  # fmt: skip


def test_reachability_is_decided_by_the_later_of_contact_and_failure() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    later = t + timedelta(seconds=1)
    assert _peer(None, None).reachability is Reachability.NOT_CONTACTED
    assert _peer(None, None).reachable is None
    assert _peer(t, None).reachability is Reachability.REACHABLE
    assert _peer(t, None).reachable is True
    assert _peer(None, t).reachability is Reachability.UNREACHABLE
    assert _peer(t, later).reachable is False
    assert _peer(later, t).reachable is True
    assert _peer(t, t).reachable is False  # a failure is noted after the contact it follows


async def test_answers_give_the_querier_contact_and_the_peers_index_versions(
    fed: Federation, fra: Console
) -> None:
    peers = fed["FRA"].n.peers
    before = await peers.get("DEU")
    assert (before.last_contact_at, before.index_version) == (None, None)
    assert before.reachability is Reachability.NOT_CONTACTED

    assert (await look_up(fed, "GLK-12345"))["DEU"]["result"] == "hit"
    first = fed.clock.now()
    for country in ("DEU", "ITA"):
        peer = await peers.get(country)
        assert peer.last_contact_at == first  # from answers: nothing was sent to FRA
        assert peer.index_version == 1
        assert peer.reachability is Reachability.REACHABLE

    # DEU publishes version 2; the querier's registry follows at its next lookup.
    deu = fed["DEU"]
    found = await deu.n.records.search(
        deu.n.records.parse_filter(FilterText(serial="GLK12345")), "t"
    )
    [record] = found.records
    await deu.n.records.recover(record.id, record.version, date(2026, 1, 2), "t")
    assert await deu.n.lookup_index.refresh(deu.k.oprf) == 2
    fed.clock.advance(30)
    assert (await look_up(fed, "GLK-12345"))["DEU"] == {
        "peer": "DEU",
        "serial": "GLK-12345",
        "result": "no_hit",
        "index_version": 2,
    }
    deu_peer = await peers.get("DEU")
    assert deu_peer.index_version == 2
    assert deu_peer.last_contact_at == first  # noted at most once a minute
    fed.clock.advance(31)
    await look_up(fed, "GLK-12345")
    assert (await peers.get("DEU")).last_contact_at == fed.clock.now()

    shown = await console_peers(fra)
    assert (shown["DEU"]["index_version"], shown["ITA"]["index_version"]) == (2, 1)
    assert shown["DEU"]["reachable"] is True
    assert (shown["DEU"]["last_error_at"], shown["DEU"]["last_error"]) == (None, None)
    html = await (await fra.get("/peers")).text()
    assert "version 2" in html and '<td class="reachability details">reachable</td>' in html

    [deu_json] = await cli_json(fed, "FRA", "peers", "show", "DEU")
    assert (deu_json["index_version"], deu_json["reachable"]) == (2, True)
    listed = {p["country"]: p for p in await cli_json(fed, "FRA", "peers", "list")}
    assert {c: p["index_version"] for c, p in listed.items()} == {"DEU": 2, "ITA": 1}
    code, out, err = await run_cli("peers", "show", "DEU", "--data-dir", str(fed["FRA"].data_dir))
    assert code == 0, err
    assert "index_version: 2" in out and "reachability: reachable" in out
    code, out, err = await run_cli("peers", "list", "--data-dir", str(fed["FRA"].data_dir))
    assert code == 0, err
    assert [line.split()[:5] for line in out.splitlines()] == [
        ["DEU", "active", "hit-details,lookups", "index", "2"],
        ["ITA", "active", "hit-details,lookups", "index", "1"],
    ]
    assert all(line.endswith("  reachable") for line in out.splitlines())


async def test_a_peer_that_is_down_is_shown_unreachable_until_it_answers_again(
    fed: Federation, fra: Console
) -> None:
    peers = fed["FRA"].n.peers
    await look_up(fed, "GLK-12345")
    contact = fed.clock.now()
    await fed.stop("DEU")
    fed.clock.advance(5)
    answer = (await look_up(fed, "GLK-12345"))["DEU"]
    assert answer["result"] == "unreachable"
    down_since = fed.clock.now()
    deu = await peers.get("DEU")
    assert deu.reachability is Reachability.UNREACHABLE
    assert (deu.last_error_at, deu.last_error) == (down_since, answer["reason"])
    assert deu.last_contact_at == contact
    assert (await peers.get("ITA")).reachability is Reachability.REACHABLE

    fed.clock.advance(90)
    await look_up(fed, "GLK-12345")
    assert (await peers.get("DEU")).last_error_at == down_since  # since its first failure

    shown = (await console_peers(fra))["DEU"]
    assert (shown["reachable"], shown["last_error"]) == (False, answer["reason"])
    assert shown["last_error_at"] == down_since.isoformat()
    html = await (await fra.get("/peers")).text()
    assert f"since {down_since:%Y-%m-%d %H:%M}" in html
    code, out, err = await run_cli("peers", "show", "DEU", "--data-dir", str(fed["FRA"].data_dir))
    assert code == 0, err
    assert f"reachability: unreachable since {down_since:%Y-%m-%d %H:%M} UTC: " in out
    [deu_json] = await cli_json(fed, "FRA", "peers", "show", "DEU")
    assert (deu_json["reachable"], deu_json["last_error"]) == (False, answer["reason"])

    await fed.start("DEU")
    await look_up(fed, "GLK-12345")  # no clock step: a contact after a failure counts at once
    deu = await peers.get("DEU")
    assert deu.reachability is Reachability.REACHABLE
    assert (deu.last_contact_at, deu.last_error_at, deu.last_error) == (fed.clock.now(), None, None)
    assert (await console_peers(fra))["DEU"]["reachable"] is True

    # A failed delivery from the outbox is a failure to reach the peer too.
    await fed.stop("DEU")
    fed.clock.advance(1)
    member = fed["FRA"]
    await member.n.delivery.enqueue("DEU", "hit.notice", pack({"lookup_id": b"L" * 16}))
    assert await member.n.delivery.deliver_due(member.f.client) == 0
    deu = await peers.get("DEU")
    assert deu.reachability is Reachability.UNREACHABLE
    assert deu.last_error_at == fed.clock.now()


async def test_revoking_twice_is_refused_and_audited_once(fed: Federation, fra: Console) -> None:
    peers = fed["FRA"].n.peers
    revoked = await peers.revoke("DEU", "admin")
    fed.clock.advance(60)
    with pytest.raises(
        ConflictError, match=f"DEU is already revoked since {revoked.revoked_at:%Y-%m-%d %H:%M}"
    ):
        await peers.revoke("deu", "admin")
    assert (await peers.get("DEU")).revoked_at == revoked.revoked_at
    fra_dir = str(fed["FRA"].data_dir)
    code, _out, err = await run_cli("peers", "revoke", "DEU", "--data-dir", fra_dir)
    assert code == 1 and "DEU is already revoked since" in err
    again = await fra.post("/peers/DEU/revoke", {"confirm": "yes"})
    assert again.status == 409 and "DEU is already revoked since" in await again.text()
    entries = await fed["FRA"].n.audit.recent(limit=100, action="peer.revoke")
    assert [(e.actor, e.target) for e in entries] == [("admin", "peer/DEU")]


async def test_a_hit_without_a_make_has_no_make_agreement(fed: Federation) -> None:
    await look_up(fed, "GLK-12345")  # no make
    await look_up(fed, "B-777", "Beretta")
    [deu_hit] = await fed["DEU"].n.lookup_index.hits()
    assert (deu_hit.make_given, deu_hit.make_agrees) == ("", None)
    [deu_json] = await cli_json(fed, "DEU", "hits")
    assert deu_json["serial_number"] == "GLK-12345" and deu_json["make_agrees"] is None
    [ita_json] = await cli_json(fed, "ITA", "hits")
    assert ita_json["serial_number"] == "B-777" and ita_json["make_agrees"] is True
    async with console_for(fed["DEU"].n, fed=fed["DEU"].f) as deu:
        await deu.login_as("admin", ADMIN_PASSWORD)
        [hit] = (await deu.json("/hits.json"))["hits"]
        assert hit["make_agrees"] is None
        assert "no make given" in await (await deu.get("/hits")).text()


async def test_the_store_keeps_index_version_reachability_and_revocation(node: Node) -> None:
    """On each backend: what the services above rely on, at the store."""
    store, lookups, at = PeersStore(node.db), node.lookups_store, node.clock.now()
    await store.add_peer(
        "DEU", "http://127.0.0.1:1", b"k" * 32, None, b"d", frozenset(), at,
        AuditEvent("admin", "peer.add", "peer/DEU"),
    )  # fmt: skip
    await lookups.set_peer_index("DEU", 7, b"documents", at, oprf_key=None)
    assert (await store.get_peer("DEU")).index_version == 7
    await store.set_peer("DEU", {"last_error_at": at, "last_error": "down"}, at, None)
    peer = await store.get_peer("DEU")
    assert (peer.reachability, peer.last_error_at, peer.last_error) == (
        Reachability.UNREACHABLE,
        at,
        "down",
    )
    revoke = {"status": PeerStatus.REVOKED, "revoked_at": at}
    event = AuditEvent("admin", "peer.revoke", "peer/DEU")
    await store.set_peer("DEU", revoke, at, event, if_status=PeerStatus.ACTIVE)
    later = {"status": PeerStatus.REVOKED, "revoked_at": at + timedelta(hours=1)}
    with pytest.raises(ConflictError):
        await store.set_peer("DEU", later, at, event, if_status=PeerStatus.ACTIVE)
    assert (await store.get_peer("DEU")).revoked_at == at
    assert len(await node.audit.recent(action="peer.revoke")) == 1
    hit = {
        "record_id": 1, "serial_number": "A-1", "peer": "DEU", "at": at, "case_reference": "c",
        "make_given": "", "make_agrees": True, "lookup_id": b"L" * 16,
    }  # fmt: skip
    async with unit_of_work(node.db)() as work:
        assert await work.claim("DEU", b"L" * 16, "hit.notice", at) is None
        await work.add_hits([hit])
    assert [h.make_agrees for h in await lookups.get_hits()] == [None]


async def test_a_peers_cached_index_belongs_to_its_oprf_key(node: Node) -> None:
    """On each backend: a new OPRF key (re-added, rotated) drops the index cached under
    the old one, and an index fetched under the old key is not cached afterwards."""
    store, lookups, at = PeersStore(node.db), node.lookups_store, node.clock.now()
    old, new = b"o" * 32, b"n" * 32
    await store.add_peer(
        "DEU", "http://127.0.0.1:1", b"k" * 32, old, b"d", frozenset(), at,
        AuditEvent("admin", "peer.add", "peer/DEU"),
    )  # fmt: skip
    assert await lookups.set_peer_index("DEU", 3, b"documents", at, oprf_key=old)
    await store.set_peer("DEU", {"oprf_key": old, "descriptor": b"d2"}, at, None)
    assert await lookups.get_peer_index("DEU") == (3, b"documents")  # the same key: kept
    peer = await store.set_peer("DEU", {"oprf_key": new}, at, None)
    assert (peer.oprf_key, peer.index_version) == (new, None)
    assert await lookups.get_peer_index("DEU") is None
    assert not await lookups.set_peer_index("DEU", 3, b"documents", at, oprf_key=old)
    assert await lookups.get_peer_index("DEU") is None
    assert (await store.get_peer("DEU")).index_version is None
