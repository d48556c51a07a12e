"""The owner's side of lookups, spoken to directly: what it records and what its index answers.

Real nodes over loopback (`fed` in conftest: FRA, DEU holding GLK-12345, ITA).
"""

from __future__ import annotations

import pytest

from node.errors import PeerRefusedError
from node.lookup import oprf
from node.protocol.client import pack
from node.protocol.delivery import Outcome
from node.records.serials import canonicalise_serial
from tests.harness import Federation

CASE = "FR-2026-0311"


def _confirmation(fed: Federation, lookup_id: bytes) -> dict[str, object]:
    """What FRA sends DEU to confirm GLK-12345 (its output under DEU's key)."""
    serial = oprf.serial_input(canonicalise_serial("GLK-12345"))
    output = oprf.evaluate_direct(fed["DEU"].k.oprf, serial, oprf.MODE_VOPRF)
    return {"lookup_id": lookup_id, "output": output, "make": "Glock", "case_reference": CASE}


async def test_a_lookup_is_recorded_once_however_often_it_arrives(fed: Federation) -> None:
    """Its confirmation, then its hit notice (the querier missed the answer), then the
    notice again (the ack was lost): one hit, one audit entry."""
    fra, deu = fed["FRA"], fed["DEU"]
    body = _confirmation(fed, b"\x01" * 16)
    peer = await fra.n.peers.get("DEU")
    answer = await fra.f.client.request(peer, "lookup.confirm", body)
    assert [r["serial_number"] for r in answer["records"]] == ["GLK-12345"]
    notice = await fra.n.delivery.enqueue("DEU", "hit.notice", pack(body))
    for _ in range(2):
        assert (await fra.f.client.deliver(notice)).outcome is Outcome.DELIVERED
    hits = await deu.n.lookup_index.hits()
    assert [(h.peer, h.case_reference) for h in hits] == [("FRA", CASE)]
    recorded = [
        e for e in await deu.n.audit.recent(actor="peer:FRA") if e.action != "lookup.evaluate"
    ]
    assert [e.action for e in recorded] == ["lookup.confirm"]
    other = _confirmation(fed, b"\x02" * 16)  # another lookup of the same serial counts
    await fra.f.client.request(peer, "lookup.confirm", other)
    assert len(await deu.n.lookup_index.hits()) == 2


async def test_the_index_answers_a_copy_from_before_a_fresh_start_with_the_full_version(
    fed: Federation,
) -> None:
    """A querier whose copy is newer than anything DEU published (DEU started afresh)
    gets DEU's newest full version and the version it really is, not its own echoed."""
    peer = await fed["FRA"].n.peers.get("DEU")
    request = fed["FRA"].f.client.request
    current = await request(peer, "index.get", {"since": None})
    assert current["version"] == 1 and len(current["documents"]) == 1
    beyond = await request(peer, "index.get", {"since": 2**63 - 1})
    assert beyond["version"] == 1 and beyond["documents"] == current["documents"]
    same = await request(peer, "index.get", {"since": 1})
    assert (same["version"], same["documents"]) == (1, [])


async def test_an_invalid_element_is_refused_with_the_oprf_code(fed: Federation) -> None:
    peer = await fed["FRA"].n.peers.get("DEU")
    identity = bytes(32)  # the identity element: never a blinded serial
    with pytest.raises(PeerRefusedError) as refused:
        await fed["FRA"].f.client.request(peer, "lookup.evaluate", {"elements": [identity]})
    assert refused.value.peer_code == "oprf"
