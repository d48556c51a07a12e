"""The harness itself: nodes in memory answer as over HTTP; partition, heal and settle."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.lookup.messages import HitNotice
from node.protocol.descriptor import verify_descriptor
from node.protocol.envelope import read_header, seal, to_ms
from node.protocol.messages import Ping, Pong
from node.protocol.model import OutboxStatus, Service
from node.protocol.receipts import verify_receipt
from node.protocol.transport import DESCRIPTOR_PATH, MESSAGES_PATH, PeerUnreachableError
from tests.harness import Federation


def _notice() -> HitNotice:
    return HitNotice(
        lookup_id=os.urandom(16),
        output=bytes(64),
        make="",
        case_reference="FR-1",
        delivery_id=os.urandom(16),
    )


@pytest.fixture(params=["memory", pytest.param("http", marks=pytest.mark.http)])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA and DEU, peers allowing lookups: in memory, and on loopback HTTP."""
    fed = Federation(tmp_path, http=request.param == "http")
    try:
        await fed.add("FRA")
        await fed.add("DEU")
        await fed.peer_all(Service.LOOKUPS)
        yield fed
    finally:
        await fed.close()


async def test_a_partitioned_pair_queues_and_delivers_after_heal(pair: Federation) -> None:
    fra, deu = pair["FRA"], pair["DEU"]
    pair.partition("FRA", "DEU")
    sent = await fra.n.delivery.send("DEU", _notice())
    for a, b in ((fra, deu), (deu, fra)):  # both directions
        with pytest.raises(PeerUnreachableError, match="partitioned"):
            await a.f.client.ask(await a.n.peers.get(b.country), Ping())
    with pytest.raises(AssertionError, match=r"FRA -> DEU hit\.notice .*partitioned"):
        await pair.settle(within_s=300)
    [queued] = await fra.n.delivery.messages()
    assert queued.status is OutboxStatus.PENDING and queued.attempts >= 2

    pair.heal("FRA", "DEU")
    await pair.settle()
    [delivered] = await fra.n.delivery.messages()
    assert delivered.message_id == sent.message_id
    assert delivered.status is OutboxStatus.DELIVERED
    verify_receipt(delivered, "FRA", [deu.n.public_key])
    assert isinstance(await deu.f.client.ask(await deu.n.peers.get("FRA"), Ping()), Pong)


async def test_settle_names_what_cannot_be_delivered_and_delivers_after_a_restart(
    pair: Federation,
) -> None:
    fra = pair["FRA"]
    await pair.stop("DEU")
    await fra.n.delivery.send("DEU", _notice())
    await fra.n.delivery.send("DEU", _notice())
    before = pair.clock.now()
    with pytest.raises(AssertionError) as failed:
        await pair.settle(within_s=600)
    message = str(failed.value)
    assert message.startswith("still queued after 600 s of clock time: ")
    assert message.count("FRA -> DEU hit.notice") == 2
    assert "last error: http://127.0.0.1:" in message  # DEU's URL: nobody answers there
    assert (pair.clock.now() - before).total_seconds() == 600

    await pair.start("DEU")
    await pair.settle()
    statuses = [m.status for m in await fra.n.delivery.messages()]
    assert statuses == [OutboxStatus.DELIVERED, OutboxStatus.DELIVERED]


async def test_the_transport_keeps_the_limits_of_http(pair: Federation) -> None:
    fra, deu = pair["FRA"], pair["DEU"]
    transport = fra.n.transport
    descriptor = await transport.get(deu.url + DESCRIPTOR_PATH, 16 * 1024)
    assert verify_descriptor(descriptor).signing_key == deu.n.public_key
    with pytest.raises(PeerUnreachableError, match="larger than 100 bytes"):
        await transport.get(deu.url + DESCRIPTOR_PATH, 100)
    with pytest.raises(PeerUnreachableError):
        await transport.get("http://127.0.0.1:1" + DESCRIPTOR_PATH, 16 * 1024)

    # An envelope over the receiver's limit: its signed refusal, as over HTTP.
    limit = deu.n.config.max_envelope_bytes
    big = seal(
        fra.f.signing_key,
        "FRA",
        "DEU",
        "ping",
        b"\x80" + bytes(limit),
        timestamp_ms=to_ms(pair.clock.now()),
    )
    answer = await transport.post(deu.url + MESSAGES_PATH, big, limit)
    assert read_header(answer).sender == "DEU" and read_header(answer).type == "error"
    assert b"too_large" in answer
