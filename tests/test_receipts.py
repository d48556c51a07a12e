"""Delivery receipts: a delivered outbox message keeps the peer's signed answer (issue 8).

The receipt proves "delivered to X at T" against X's key, whatever the
database says: a tampered receipt, another message's receipt or the wrong
key does not verify. The console's peers page and `iarms-node peers show`
show it. Real nodes over loopback; the sender's outbox on each backend.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from node.errors import ReceiptError
from node.lookup.messages import HitNotice
from node.protocol.envelope import read_header, to_ms
from node.protocol.model import OutboxMessage, Service
from node.protocol.receipts import DeliveryReceipt, verify_receipt
from node.store.tables import OutboxRow, table
from tests.console_helpers import Console
from tests.harness import Federation, run_cli


def _notice(lookup_id: bytes) -> HitNotice:
    return HitNotice(
        lookup_id=lookup_id,
        output=bytes(64),
        make="",
        case_reference="FR-1",
        delivery_id=os.urandom(16),
    )


async def _delivered(fed: Federation, *lookup_ids: bytes) -> list[OutboxMessage]:
    """FRA's hit notices for DEU, delivered; newest first."""
    fra = fed["FRA"]
    for lookup_id in lookup_ids:
        await fra.n.delivery.send("DEU", _notice(lookup_id))
    assert await fra.n.delivery.deliver_due(fra.f.client) == len(lookup_ids)
    return [m for m, _r in await fra.n.delivery.receipts("DEU")]


@pytest.fixture
async def pair(tmp_path: Path, db_url: str) -> AsyncIterator[Federation]:
    """FRA (each backend) and DEU (SQLite), peers allowing lookups."""
    fed = Federation(tmp_path)
    try:
        await fed.add("FRA", db_url=db_url)
        await fed.add("DEU")
        await fed.peer_all(Service.LOOKUPS)
        yield fed
    finally:
        await fed.close()


async def test_a_delivered_message_has_a_receipt_that_verifies(pair: Federation) -> None:
    fra = pair["FRA"]
    sent_at = pair.clock.now()
    [message] = await _delivered(pair, b"\x01" * 16)
    assert message.receipt is not None and message.delivered_message_id is not None
    assert message.delivered_message_id != message.message_id  # the attempt's own envelope
    assert read_header(message.receipt).sender == "DEU"
    [(_message, receipt)] = await fra.n.delivery.receipts("DEU")
    assert isinstance(receipt, DeliveryReceipt)
    assert (receipt.recipient, receipt.message_type, receipt.answer_type) == (
        "DEU",
        "hit.notice",
        "ack",
    )
    assert to_ms(receipt.delivered_at) == to_ms(sent_at)
    assert str(receipt) == f"delivered to DEU at {receipt.delivered_at:%Y-%m-%d %H:%M:%S} UTC"
    # Offline, with DEU's key alone.
    assert verify_receipt(message, "FRA", [pair["DEU"].n.public_key]) == receipt


async def test_a_tampered_or_misplaced_receipt_does_not_verify(pair: Federation) -> None:
    second, first = await _delivered(pair, b"\x02" * 16, b"\x03" * 16)
    assert first.receipt is not None and second.receipt is not None
    deu_key = pair["DEU"].n.public_key
    flipped = first.receipt[:-1] + bytes([first.receipt[-1] ^ 1])
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    cases = [
        (dataclasses.replace(first, receipt=flipped), [deu_key], "FRA", "does not verify"),
        (dataclasses.replace(first, receipt=second.receipt), [deu_key], "FRA", "another message"),
        (first, [other], "FRA", "does not verify"),
        (first, [deu_key], "ITA", "does not verify"),
        (dataclasses.replace(first, receipt=None), [deu_key], "FRA", "has no receipt"),
    ]
    for message, keys, me, reason in cases:
        with pytest.raises(ReceiptError, match=reason):
            verify_receipt(message, me, keys)
    verify_receipt(first, "FRA", [deu_key])


async def test_the_console_and_the_cli_show_receipts_and_catch_a_tampered_one(
    fed: Federation, fra: Console
) -> None:
    [message] = await _delivered(fed, b"\x04" * 16)
    [shown] = (await fra.json("/peers.json"))["deliveries"]
    assert (shown["id"], shown["recipient"], shown["type"]) == (message.id, "DEU", "hit.notice")
    assert shown["receipt"]["receipt"].startswith("delivered to DEU at ")
    assert "signed receipt verified" in await (await fra.get("/peers")).text()
    code, out, err = await run_cli("peers", "show", "DEU", "--data-dir", str(fed["FRA"].data_dir))
    assert code == 0, err
    assert f"deliveries: hit.notice #{message.id}: delivered to DEU at " in out
    assert "(signed receipt verified)" in out

    assert message.receipt is not None
    tampered = message.receipt[:40] + b"X" + message.receipt[41:]
    outbox = table(OutboxRow)
    async with fed["FRA"].n.db.write() as conn:
        await conn.execute(update(outbox).where(outbox.c.id == message.id).values(receipt=tampered))
    [shown] = (await fra.json("/peers.json"))["deliveries"]
    assert shown["receipt"] is None and "does not verify" in shown["receipt_error"]
