"""Delivery receipts: the peer's signed answer to a delivered outbox message (pure).

When a message from the outbox is delivered, the peer's answer envelope is
kept with it exactly as it travelled, with the message id of the attempt it
answers. The answer is signed by the peer, addressed to us and names that
attempt (`ref`), so it proves "delivered to X at T" to anyone holding X's
key, whatever this node's database says. `verify_receipt` checks it as the
client did when it arrived (PROTOCOL.md §1.4 without the freshness window:
a receipt is old by nature) and says what it proves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.errors import ProtocolError, ReceiptError
from node.protocol.envelope import (
    ERROR,
    MAX_ENVELOPE_LIMIT,
    PeerKey,
    from_ms,
    key_id,
    open_envelope,
    read_header,
)
from node.protocol.messages import AnyAnswer, decode
from node.protocol.model import OutboxMessage


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What a verified receipt proves: which peer answered which message, and when."""

    outbox_id: int
    message_type: str
    recipient: str
    delivered_at: datetime  # the peer's signed timestamp of its answer
    answer_type: str

    def __str__(self) -> str:
        return f"delivered to {self.recipient} at {self.delivered_at:%Y-%m-%d %H:%M:%S} UTC"

    def to_json(self) -> dict[str, Any]:
        """The receipt as the console's and the CLI's JSON give it."""
        return {
            "outbox_id": self.outbox_id,
            "type": self.message_type,
            "recipient": self.recipient,
            "delivered_at": self.delivered_at.isoformat(),
            "answer_type": self.answer_type,
            "receipt": str(self),
        }


def verify_receipt(message: OutboxMessage, me: str, keys: Iterable[bytes]) -> DeliveryReceipt:
    """Check the receipt of a delivered message against the recipient's keys.

    Args:
        message: an outbox message with its receipt and delivered attempt's id.
        me: this node's country: the receipt must be addressed to it.
        keys: the recipient's Ed25519 public keys (current and previous); the one
            whose key id the receipt names must verify it.

    Raises:
        ReceiptError: no receipt; or it does not verify, is not signed by the
            recipient, is not addressed to us, is a refusal, or answers another message.
    """
    receipt, attempt = message.receipt, message.delivered_message_id
    what = f"the receipt of outbox message {message.id}"
    if receipt is None or attempt is None:
        raise ReceiptError(f"outbox message {message.id} has no receipt")
    try:
        header = read_header(receipt, MAX_ENVELOPE_LIMIT)
        key = next((PeerKey(k) for k in keys if key_id(k) == header.key_id), None)
        envelope = open_envelope(
            receipt,
            me=me,
            now_ms=header.timestamp_ms,
            keys=lambda sender, _kid: key if sender == message.recipient else None,
            max_bytes=MAX_ENVELOPE_LIMIT,
        )
        if envelope.type == ERROR:
            raise ReceiptError(f"{what} is a refusal")
        ref = decode(AnyAnswer, envelope.body).ref
    except ProtocolError as e:
        raise ReceiptError(f"{what} does not verify: {e}") from e
    if ref != attempt:
        raise ReceiptError(f"{what} answers another message")
    return DeliveryReceipt(
        message.id, message.type, envelope.sender, from_ms(envelope.timestamp_ms), envelope.type
    )
