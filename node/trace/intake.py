"""What the originator keeps of the `trace.report`s that reach it (docs/PROTOCOL.md §3.10).

Each item is decoded strictly (`read_item`) and checked on arrival when it can
be: under the trusted keys and those the chain vouches for (`chain.vouched_keys`),
at the time it was signed. An item whose signature fails under a key we hold
is refused (`bad_signature`); one we cannot check yet (a hop whose key no
forward has vouched for so far, a key id not yet followed) is kept, and
checked by `verify` later. Items are kept for good (by hash): a later one
never replaces an earlier one, and the chain takes, per hop, a verified final
receipt over anything else (`node.trace.forward.latest_receipts`).

A hostile hop must not grow our storage without bound: per hop position at
most one pending receipt, `MAX_ROUNDS` `needs_information` receipts, one final
receipt, `MAX_ROUNDS` + 1 answers and two forwards (the hop before's and ours),
per country `MAX_ROTATIONS` rotation statements, each bound counted apart for
verified items and for those not checkable yet (so an unchecked forgery cannot
take a good item's place); positions are at most `MAX_HOPS` (16) by the
statements' own decoding. Beyond, `TraceItemsFullError` (409, `trace_full`).
Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from node.errors import (
    BadSignatureError,
    MalformedEnvelopeError,
    TraceItemsFullError,
    ValidationError,
)
from node.protocol.keyring import KeyHistory, KeySpan
from node.protocol.rotation import named_old_key, verify_rotation
from node.trace.model import ItemKind, TraceItem
from node.trace.receipts import (
    AnswerStatement,
    ForwardStatement,
    Outcome,
    ReceiptStatement,
    digest,
    read,
    signed_part,
    verify,
)

#: The `needs_information` rounds a hop may have (each a receipt and an answer).
MAX_ROUNDS = 4
#: Rotation statements kept per country (as in an export file).
MAX_ROTATIONS = 8
_MAX_ROTATION_BYTES = 512

Statement = ReceiptStatement | AnswerStatement | ForwardStatement


class Slot(enum.StrEnum):
    """What an item is, for its bound."""

    PENDING = "pending receipt"
    ASKED = "needs_information receipt"
    FINAL = "final receipt"
    ANSWER = "answer"
    FORWARD = "forward"
    ROTATION = "rotation statement"


BOUNDS = {
    Slot.PENDING: 1,
    Slot.ASKED: MAX_ROUNDS,
    Slot.FINAL: 1,
    Slot.ANSWER: MAX_ROUNDS + 1,
    Slot.FORWARD: 2,
    Slot.ROTATION: MAX_ROTATIONS,
}


def _open(data: bytes) -> tuple[ItemKind, Statement | None]:
    """A signed receipt, answer or forward, or a rotation statement (None), decoded
    strictly and NOT verified.

    Raises:
        MalformedEnvelopeError: none of them.
    """
    try:
        return ItemKind.RECEIPT, read(data, ReceiptStatement)[1]
    except MalformedEnvelopeError:
        pass
    try:
        return ItemKind.ANSWER, read(data, AnswerStatement)[1]
    except MalformedEnvelopeError:
        pass
    try:
        return ItemKind.FORWARD, read(data, ForwardStatement)[1]
    except MalformedEnvelopeError as e:
        error = e
    if len(data) <= _MAX_ROTATION_BYTES:
        try:
            verify_rotation(data, named_old_key(data))
        except ValidationError:
            pass
        else:
            return ItemKind.ROTATION, None
    raise MalformedEnvelopeError(
        f"neither a receipt, an answer, a forward nor a rotation statement: {error}"
    )


def read_item(data: bytes) -> tuple[TraceItem, Statement | None]:
    """A signed item as stored, and what it says (None for a rotation statement: its
    country is the item's), decoded strictly and NOT verified.

    Raises:
        MalformedEnvelopeError: it is none of them.
    """
    kind, statement = _open(data)
    if statement is None:
        rotation = verify_rotation(data, named_old_key(data))
        item = TraceItem(0, kind, rotation.country, data, digest(data), rotation.at * 1000)
        return item, None
    # An answer is signed when its receipt says it was answered: 0 here.
    signed_ms = 0 if isinstance(statement, AnswerStatement) else statement.signed_ms
    item = TraceItem(statement.position, kind, statement.country, data, digest(data), signed_ms)
    return item, statement


def item_of(data: bytes) -> TraceItem:
    """A signed item as stored (MalformedEnvelopeError if it is none of them)."""
    return read_item(data)[0]


def slot(item: TraceItem) -> Slot:
    """The bound an item counts against."""
    if item.kind is ItemKind.RECEIPT:
        receipt = read(item.item, ReceiptStatement)[1]
        if receipt.outcome is None:
            return Slot.PENDING
        return Slot.ASKED if receipt.outcome is Outcome.NEEDS_INFORMATION else Slot.FINAL
    return {
        ItemKind.ANSWER: Slot.ANSWER,
        ItemKind.FORWARD: Slot.FORWARD,
        ItemKind.ROTATION: Slot.ROTATION,
    }[item.kind]


def checked(item: TraceItem, keys: KeyHistory, items: Sequence[TraceItem]) -> bool | None:
    """Whether `item` verifies (True), cannot be checked with `keys` yet (None).

    An answer is checked at the time its receipt (among `items`) says it was answered,
    or, before that receipt arrives, under any key of its country with its key id. A
    rotation statement verifies under the key it replaces by its own decoding: None.

    Raises:
        BadSignatureError: the signature fails under a key we hold for its country.
    """
    if item.kind is ItemKind.ROTATION or not keys.knows(item.country):
        return None
    signed = signed_part(item.item)
    at_ms = _answered_ms(item, items) if item.kind is ItemKind.ANSWER else item.signed_ms
    resolver = keys
    if at_ms is None:  # an answer before its receipt: any key of its country with its id
        public = keys.find(item.country, signed.key_id)
        if public is None:
            return None
        spans = {item.country: [KeySpan(public, None, None)]}
        resolver, at_ms = KeyHistory(spans, keys.verified), 0
    elif keys(item.country, signed.key_id, at_ms) is None:
        return None  # a key id not followed yet, or not valid then: `verify` reports it
    verify(signed, item.country, at_ms, resolver)
    return True


def _answered_ms(answer: TraceItem, items: Sequence[TraceItem]) -> int | None:
    for item in items:
        if item.kind is ItemKind.RECEIPT:
            receipt = read(item.item, ReceiptStatement)[1]
            if receipt.answer_hash == answer.item_hash:
                return receipt.answered_ms
    return None


def admit(item: TraceItem, keys: KeyHistory, items: Sequence[TraceItem]) -> None:
    """Refuse `item` if it is forged or over its bound (module docstring).

    Raises:
        BadSignatureError: it does not verify under a key we hold.
        TraceItemsFullError: its position (or country) holds as many such items already.
    """
    state = checked(item, keys, items)
    kind = slot(item)
    same = [
        other
        for other in items
        if other.kind is item.kind
        and slot(other) is kind
        and (
            other.country == item.country
            if kind is Slot.ROTATION
            else other.position == item.position
        )
    ]
    held = sum(1 for other in same if _state(other, keys, items) == state)
    if held >= BOUNDS[kind]:
        where = item.country if kind is Slot.ROTATION else f"hop {item.position}"
        what = "verified" if state else "not yet verifiable"
        raise TraceItemsFullError(
            f"trace.report: {where} already has {held} {what} {kind.value}"
            f"{'s' if held > 1 else ''}, the most kept; this one is refused"
        )


def _state(item: TraceItem, keys: KeyHistory, items: Sequence[TraceItem]) -> bool | None:
    try:
        return checked(item, keys, items)
    except BadSignatureError:
        return False
