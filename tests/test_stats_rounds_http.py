"""Statistics rounds between real nodes over loopback HTTP (issue 10's key scenarios):
five nodes release the total, with OpenDP's noise and with none; an aggregator down
past the deadline fails the round naming it; tampered, mis-sized or misdirected shares
and a replayed share envelope, each POSTed to the aggregator's federation endpoint,
are refused and change nothing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio

from node.errors import PeerRefusedError
from node.protocol.envelope import seal, to_ms
from node.protocol.transport import MESSAGES_PATH
from node.stats.round import GRACE, RoundStatus
from node.stats.service import RoundRequest
from node.web.federation_api import MSGPACK
from tests.conftest import MODULE_LOOP
from tests.harness import Federation
from tests.stats_rounds import (
    PERIOD,
    carry,
    round_federation,
    shares_sent,
    true_totals,
    zero_noise,
)

pytestmark = pytest.mark.http
QUERY = "records_by_type_status"


@pytest.mark.parametrize("noise", [None, zero_noise], ids=["opendp", "zero"])
async def test_five_nodes_over_http_release_the_total_within_its_interval(
    tmp_path: Path, noise: object
) -> None:
    fed = await round_federation(tmp_path, http=True, noise=noise)  # type: ignore[arg-type]
    try:
        started = await fed["FRA"].f.rounds.start(
            RoundRequest(QUERY, 1.0, "DEU,ITA", 3, timedelta(minutes=10), *PERIOD), "analyst"
        )
        await carry(fed)
        view = await fed["FRA"].f.rounds.show(started.spec.round_id)
        assert view.status is RoundStatus.RELEASED, view.round.reason
        assert view.verified
        assert view.contributors == ("DEU", "ESP", "FRA", "ITA", "NLD")
        truth = await true_totals(fed, QUERY, view.contributors)
        cells = view.to_json()["cells"]
        assert [c["name"] for c in cells] == list(truth)
        if noise is zero_noise:
            assert {c["name"]: c["value"] for c in cells} == truth
            return
        # 56 cells, each within its 95 % interval with probability ≥ 0.95: 8 or more
        # outside has probability below 1e-3; noise leaves some cells off the truth.
        outside = [c for c in cells if not c["interval"][0] <= truth[c["name"]] <= c["interval"][1]]
        assert len(outside) < 8, outside
        assert any(c["value"] != truth[c["name"]] for c in cells)
        # most cells are 0: their noisy values are negative about 4 times in 10, and are
        # released as such (none of 40 or more negative: below 1e-8)
        assert sum(v == 0 for v in truth.values()) >= 40
        assert any(c["value"] < 0 for c in cells)
    finally:
        await fed.close()


async def test_an_aggregator_down_past_the_deadline_fails_the_round_naming_it(
    tmp_path: Path,
) -> None:
    """ITA's server is down: what is sent to it fails to connect and waits in the outboxes;
    DEU signs a failure at the deadline's grace (no holding from ITA), and FRA fails the
    round naming ITA, with nothing released."""
    fed = await round_federation(tmp_path, ("FRA", "DEU", "ITA", "ESP"), http=True)
    try:
        await fed.stop("ITA")
        started = await fed["FRA"].f.rounds.start(
            RoundRequest(QUERY, 0.5, "DEU,ITA", 2, timedelta(minutes=10), *PERIOD), "analyst"
        )
        await carry(fed)
        view = await fed["FRA"].f.rounds.show(started.spec.round_id)
        assert view.status is RoundStatus.COLLECTING  # waiting for the deadline
        stuck = [m for m in await fed["FRA"].n.delivery.messages() if m.recipient == "ITA"]
        host = fed["ITA"].url.removeprefix("http://")
        assert any(m.attempts and host in (m.last_error or "") for m in stuck)  # no server
        fed.clock.advance(timedelta(minutes=10).total_seconds() + 1)  # DEU holds, ITA can't
        await carry(fed)
        fed.clock.advance(GRACE.total_seconds())  # DEU signs its failure
        await carry(fed)
        view = await fed["FRA"].f.rounds.show(started.spec.round_id)
        assert view.status is RoundStatus.FAILED
        assert "no holding from ITA" in view.round.reason
        assert view.to_json()["cells"] == []
        assert [(c.aggregator, c.verified) for c in view.sums] == [("DEU", True)]
    finally:
        await fed.close()


@dataclass(frozen=True)
class Shared:
    """A federation over HTTP whose round released, and ESP's share body sent to DEU."""

    fed: Federation
    body: bytes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    """Built once for the tests below, which only send what DEU refuses (or ignores)."""
    fed = await round_federation(
        tmp_path_factory.mktemp("stats-http"), ("FRA", "DEU", "ITA", "ESP"), http=True
    )
    try:
        body = await shares_sent(fed)
        await carry(fed)
        yield Shared(fed, body)
    finally:
        await fed.close()


def _flip_last(b: dict[str, Any]) -> dict[str, Any]:
    return b | {"sealed": b["sealed"][:-1] + bytes([b["sealed"][-1] ^ 1])}


@MODULE_LOOP
@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        (_flip_last, "unsealable_share", "does not open"),
        (lambda b: b | {"sealed": b["sealed"][:-8]}, "invalid_share", "a sealed share of"),
        (lambda b: b | {"round_id": os.urandom(16)}, "unsealable_share", "does not open"),
        (lambda b: b | {"query": "routes"}, "malformed", "not the round's query"),
        (lambda b: b | {"period_to": "2025-13"}, "malformed", "not the round's query"),
    ],
    ids=["tampered", "mis-sized", "another-round", "another-query", "another-period"],
)
async def test_a_bad_share_over_http_is_refused_and_changes_nothing(
    shared: Shared, change: Callable[[dict[str, Any]], dict[str, Any]], code: str, words: str
) -> None:
    fed = shared.fed
    body = msgspec.msgpack.decode(shared.body)
    round_id = body["round_id"]
    before = await fed["DEU"].f.rounds._store.get_shares(round_id)
    peer = await fed["ESP"].n.peers.get("DEU")
    with pytest.raises(PeerRefusedError) as refused:
        await fed["ESP"].f.client.request(
            peer, "stats.share", change(body) | {"delivery_id": os.urandom(16)}
        )
    assert refused.value.peer_code == code
    assert words in str(refused.value)
    assert await fed["DEU"].f.rounds._store.get_shares(round_id) == before


@MODULE_LOOP
async def test_a_replayed_share_envelope_posted_over_http_is_refused(shared: Shared) -> None:
    """The same signed envelope POSTed twice to DEU's federation endpoint: the first is
    taken (its share a copy of one held: counted once), the second refused as a replay."""
    fed = shared.fed
    body = msgspec.msgpack.decode(shared.body)
    fresh = msgspec.msgpack.encode(body | {"delivery_id": os.urandom(16)})
    envelope = seal(
        fed["ESP"].k.signing,
        "ESP",
        "DEU",
        "stats.share",
        fresh,
        timestamp_ms=to_ms(fed.clock.now()),
    )
    url = fed["DEU"].url + MESSAGES_PATH
    answers = []
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(
                url, data=envelope, headers={"Content-Type": MSGPACK}
            ) as response:
                answers.append((response.status, await response.read()))
    assert [status for status, _ in answers] == [200, 409]
    assert b"replay" in answers[1][1]
    held = await fed["DEU"].f.rounds._store.get_shares(body["round_id"])
    assert [s.contributor for s in held].count("ESP") == 1
