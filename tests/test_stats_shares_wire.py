"""Share messages as an aggregator takes them: sent twice counts once; tampered, mis-sized,
sealed for another round, or replayed, refused; a sum that does not verify is refused
(issue 10's bad input)."""

from __future__ import annotations

import os
from base64 import b64decode
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.errors import (
    BadSignatureError,
    MalformedEnvelopeError,
    PeerRefusedError,
    UnknownSenderError,
)
from node.protocol.envelope import key_id
from node.stats.aggregate import MAX_EARLY
from node.stats.courier import STATS_LIMIT
from node.stats.layout import contributor_cells
from node.stats.periods import Period
from node.stats.queries import query
from node.stats.result import check_sum, read_sum, sign_sum
from node.stats.round import RoundSpec, RoundStatus
from node.stats.seal import aggregator_key, seal_share, share_info
from node.stats.service import ask_of
from tests.harness import Federation
from tests.stats_rounds import PERIOD, carry, round_federation, shares_sent, true_totals

QUERY = "records_by_type_status"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await round_federation(tmp_path)
    yield federation
    await federation.close()


async def _send(fed: Federation, body: dict[str, object]) -> dict[str, object]:
    peer = await fed["ESP"].n.peers.get("DEU")
    return await fed["ESP"].f.client.request(peer, "stats.share", body)


async def test_a_share_sent_twice_counts_once(fed: Federation) -> None:
    body = msgspec.msgpack.decode(await shares_sent(fed))
    answer = await _send(fed, body | {"delivery_id": os.urandom(16)})  # a new delivery
    assert set(answer) == {"ref"}
    rounds = await fed["FRA"].f.rounds.listing()
    held = await fed["DEU"].f.rounds._store.get_shares(rounds[0].spec.round_id)
    assert [s.contributor for s in held].count("ESP") == 1
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(rounds[0].spec.round_id)
    assert view.status is RoundStatus.RELEASED
    truth = await true_totals(fed, QUERY, view.contributors)
    assert {c["name"]: c["value"] for c in view.to_json()["cells"]} == truth


async def test_a_released_result_verifies_against_the_aggregators_keys(fed: Federation) -> None:
    await shares_sent(fed)
    await carry(fed)
    [stored] = await fed["FRA"].f.rounds.listing()
    view = await fed["FRA"].f.rounds.show(stored.spec.round_id)
    assert view.verified and all(c.verified for c in view.sums)
    keys = await fed["FRA"].n.peers.key_history()
    sums = await fed["FRA"].f.rounds._store.get_sums(stored.spec.round_id)
    assert check_sum(sums["DEU"], keys).aggregator == "DEU"
    _signed, statement = read_sum(sums["DEU"])
    forged = sign_sum(Ed25519PrivateKey.generate(), statement)  # DEU's sum, another key
    with pytest.raises(UnknownSenderError):
        check_sum(forged, keys)
    altered = bytearray(sums["DEU"])
    altered[-70] ^= 1  # inside the statement or its signature
    with pytest.raises((BadSignatureError, MalformedEnvelopeError, UnknownSenderError)):
        check_sum(bytes(altered), keys)
    # an outsider holding only the round's JSON and the aggregators' public keys
    # verifies each signature and adds the signed sums up to the released cells
    data = view.to_json()
    signatures = {s["aggregator"]: s for s in data["signatures"]}
    vectors = []
    for aggregator in ("DEU", "ITA"):
        signature = signatures[aggregator]
        public = fed[aggregator].n.public_key
        statement = b64decode(signature["statement"])
        assert bytes.fromhex(signature["key_id"]) == key_id(public)
        Ed25519PublicKey.from_public_bytes(public).verify(
            bytes.fromhex(signature["signature"]), statement
        )
        with pytest.raises(InvalidSignature):
            Ed25519PublicKey.from_public_bytes(public).verify(
                bytes.fromhex(signature["signature"]), statement[:-1] + b"\x00"
            )
        fields = msgspec.msgpack.decode(statement)  # PROTOCOL.md §4.5.3's array
        assert fields[:2] == ["iarms-stats-sum-v1", stored.spec.round_id]
        assert fields[9:11] == [aggregator, data["contributors"]]
        cells = fields[14]
        vectors.append([int.from_bytes(cells[i : i + 8], "big") for i in range(0, len(cells), 8)])
        assert b64decode(signature["signed"]) == sums[aggregator]
    totals = [(a + b) % 2**64 for a, b in zip(*vectors, strict=True)]
    assert [t - 2**64 if t >= 2**63 else t for t in totals] == [c["value"] for c in data["cells"]]
    # a forged sum sent by DEU itself is refused on arrival
    peer = await fed["DEU"].n.peers.get("FRA")
    with pytest.raises(PeerRefusedError) as refused:
        await fed["DEU"].f.client.request(
            peer,
            "stats.sum",
            {"round_id": stored.spec.round_id, "result": forged, "delivery_id": os.urandom(16)},
        )
    assert refused.value.peer_code == "unknown_sender"


async def test_shares_for_rounds_not_known_here_are_bounded_per_contributor(
    fed: Federation,
) -> None:
    """A share may come before its round's ask and is kept; a peer cannot make an aggregator
    keep more than `MAX_EARLY` of them: the next is refused `rate_limited` (its
    outbox sends it again later) and nothing is stored."""
    esp, deu = fed["ESP"], fed["DEU"]
    q = query(QUERY)
    period = Period.resolve(*PERIOD, esp.clock.now().date())
    key = aggregator_key(await esp.n.peers.get("DEU"))

    def body(round_id: bytes) -> dict[str, object]:
        share = [0] * len(contributor_cells(q, period, "ESP"))
        info = share_info(round_id, QUERY, "ESP", "DEU")
        sealed = seal_share(share, key, info)
        return {"round_id": round_id, "query": QUERY, "period_from": PERIOD[0]} | {
            "period_to": PERIOD[1],
            "sealed": sealed,
            "delivery_id": os.urandom(16),
        }

    for _ in range(MAX_EARLY):
        assert set(await _send(fed, body(os.urandom(16)))) == {"ref"}
    store = deu.f.rounds._store
    assert await store.count_early("ESP") == MAX_EARLY
    round_id = os.urandom(16)
    with pytest.raises(PeerRefusedError) as refused:
        await _send(fed, body(round_id))
    assert refused.value.peer_code == "rate_limited"
    assert "rounds not known here" in str(refused.value)
    assert await store.get_shares(round_id) == []
    holding = {"round_id": round_id, "contributors": ["ESP"], "delivery_id": os.urandom(16)}
    with pytest.raises(PeerRefusedError) as refused:  # holdings count too
        await esp.f.client.request(await esp.n.peers.get("DEU"), "stats.holding", holding)
    assert refused.value.peer_code == "rate_limited"
    assert await store.get_holdings(round_id) == {}
    assert await store.count_early("ITA") == 0


async def test_a_peer_flooding_round_messages_is_rate_limited_and_nothing_is_corrupted(
    fed: Federation,
) -> None:
    """Every round message a peer sends is charged to its token bucket (`STATS_LIMIT`), as
    lookups' evaluations and traces' requests are: past its burst, the next is refused
    whole, `rate_limited`, before anything is read or written; other peers are not held
    up; once the bucket refills, the very message refused (its outbox sends it again,
    same delivery id) is taken; the audit chain is whole."""
    deu = fed["DEU"]
    store = deu.f.rounds._store

    def ask(sender: str) -> dict[str, object]:
        spec = RoundSpec(
            os.urandom(16),
            sender,
            QUERY,
            Period.resolve(*PERIOD, deu.clock.now().date()),
            0.5,
            ("DEU", "ITA"),
            3,
            deu.clock.now() + timedelta(minutes=10),
        )
        return msgspec.structs.asdict(ask_of(spec))

    async def send(sender: str, body: dict[str, object]) -> dict[str, object]:
        member = fed[sender]
        return await member.f.client.request(await member.n.peers.get("DEU"), "stats.ask", body)

    before = len(await store.list_rounds())
    for _ in range(int(STATS_LIMIT.capacity)):
        assert set(await send("ESP", ask("ESP"))) == {"ref"}
    flood = ask("ESP")
    with pytest.raises(PeerRefusedError) as refused:
        await send("ESP", flood)
    assert refused.value.peer_code == "rate_limited"
    assert "round messages (stats.ask) exceed ESP's rate limit; retry in 10 s" in str(refused.value)
    kept = await store.list_rounds()
    assert len(kept) == before + STATS_LIMIT.capacity
    assert await store.get_round(flood["round_id"]) is None  # type: ignore[arg-type]
    assert {r.spec.requester for r in kept[: int(STATS_LIMIT.capacity)]} == {"ESP"}
    assert set(await send("ITA", ask("ITA"))) == {"ref"}  # another peer: its own bucket

    fed.clock.advance(1 / STATS_LIMIT.rate)  # one message's worth of refill
    assert set(await send("ESP", flood)) == {"ref"}  # the same delivery, sent again
    assert await store.get_round(flood["round_id"]) is not None  # type: ignore[arg-type]
    with pytest.raises(PeerRefusedError) as refused:
        await send("ESP", ask("ESP"))
    assert refused.value.peer_code == "rate_limited"
    assert len(await store.list_rounds()) == before + STATS_LIMIT.capacity + 2
    report = await deu.n.audit.verify()
    assert report.ok, report.message
