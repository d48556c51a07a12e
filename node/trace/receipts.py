"""A trace's signed statements: the originator's request, each hop's receipts and answers.

Exact bytes (docs/PROTOCOL.md §3): every statement is a msgpack array whose
first element is a domain-separation string, so that no statement can be
taken for another (or for an envelope); it is signed with Ed25519 by its
author and travels as `signed = msgpack([statement (bin), key_id (bin 8),
signature (bin 64)])`, `key_id` being the first 8 bytes of the SHA-256 of the
raw public key, as in envelopes. Hashes are SHA-256 of the whole `signed`
bytes.

    request  = ["iarms-trace-request-v1", trace_id (bin 16), originator, created_ms,
                fields (map, sorted keys: `node.trace.request.RequestFields`)]
    receipt  = ["iarms-trace-receipt-v1", trace_id, position, country, prev_hash (bin 32),
                request_hash (bin 32), received_ms, answered_ms | nil, outcome | nil,
                answer_hash (bin 32) | nil, next_country | nil]
    answer   = ["iarms-trace-answer-v1", trace_id, position, country, outcome,
                details (map of str to str, sorted keys), next_country | nil]
    reply    = ["iarms-trace-reply-v1", trace_id, position, originator, answer_hash (bin 32),
                replied_ms, text]
    forward  = ["iarms-trace-forward-v1", trace_id, position (of the hop it goes to),
                country (who forwards), next_country, next_key (bin 32), forwarded_ms]

A hop signs a pending receipt when a trace arrives (the answered fields nil)
and another when it answers (the same `received_ms`); a `needs_information`
answer is answered again after the originator's reply (a `reply` statement, signed by
the originator and naming the hash of the question's answer), so its receipt
is not final either. `prev_hash` links each hop to the one before: the request's
hash for hop 1, else hop n-1's final receipt's hash. Whoever sends a trace to
a hop (the originator, or the hop before) signs a `forward` naming the key it
trusts for that hop's country: the chain vouches for the key of each hop that
is not the verifier's peer (docs/adr/0008).

Statements are decoded strictly (`msgspec` array-like structs: exact
lengths, types and sizes) into the classes below; the bytes are those of the
plain msgpack arrays above (`tests/test_trace_receipts.py` checks it). This
module signs and opens one statement at a time; `node.trace.chain` checks a
whole chain. Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from typing import Annotated, Literal, TypeVar, cast

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import BadSignatureError, MalformedEnvelopeError, UnknownSenderError
from node.protocol.envelope import key_id
from node.protocol.keyring import KeyHistory
from node.protocol.messages import NUL_FREE, Bin8, Bin16, Bin32, Bin64
from node.protocol.verified import verify_ed25519
from node.trace.request import RequestFields

REQUEST_TAG = "iarms-trace-request-v1"
RECEIPT_TAG = "iarms-trace-receipt-v1"
ANSWER_TAG = "iarms-trace-answer-v1"
REPLY_TAG = "iarms-trace-reply-v1"
FORWARD_TAG = "iarms-trace-forward-v1"
#: The most hops a trace may have (a hop refuses to forward beyond): supply chains cross
#: a few countries, and the whole chain must fit in one 1 MiB `trace.request`.
MAX_HOPS = 16
MAX_REQUEST_BYTES = 32 * 1024
MAX_ANSWER_BYTES = 16 * 1024
MAX_RECEIPT_BYTES = 1024
MAX_FORWARD_BYTES = 512
#: The longest value in an answer's details, in characters.
MAX_DETAIL_CHARS = 400
#: The longest reply to a hop's question, in characters, and its signed statement in bytes.
MAX_REPLY_CHARS = 2000
MAX_REPLY_BYTES = 12 * 1024

#: (country, key id, time in ms) → the raw Ed25519 public key that country signed with
#: at that time under that key id, or None.
KeyResolver = Callable[[str, bytes, int], bytes | None]

Country = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
Ms = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Position = Annotated[int, msgspec.Meta(ge=1, le=MAX_HOPS)]
DetailKey = Literal[
    "party", "date", "event", "licence_reference", "question", "reason", "loop", "note"
]
DetailValue = Annotated[str, msgspec.Meta(max_length=MAX_DETAIL_CHARS, pattern=NUL_FREE)]
#: A reply's text: 1 to `MAX_REPLY_CHARS` characters, none of them a control character (Cc).
REPLY_TEXT = "^[^\\x00-\\x1f\\x7f-\\x9f]+\\Z"  # \Z, as "$" would let a final newline in
ReplyText = Annotated[str, msgspec.Meta(max_length=MAX_REPLY_CHARS, pattern=REPLY_TEXT)]


class Outcome(enum.StrEnum):
    """A hop's answer."""

    FORWARDED = "forwarded"
    END_OF_CHAIN = "end_of_chain"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    NEEDS_INFORMATION = "needs_information"


#: The outcomes that close a hop: its receipt is final. `needs_information` is answered again.
FINAL_OUTCOMES = frozenset(
    {Outcome.FORWARDED, Outcome.END_OF_CHAIN, Outcome.NOT_FOUND, Outcome.REFUSED}
)


class _Statement(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A statement: an array, its tag first."""


class RequestStatement(_Statement, frozen=True, tag=REQUEST_TAG):
    """The originator's request."""

    trace_id: Bin16
    originator: Country
    created_ms: Ms
    fields: RequestFields


class ReceiptStatement(_Statement, frozen=True, tag=RECEIPT_TAG):
    """A hop's receipt: pending (answered fields nil) or answered."""

    trace_id: Bin16
    position: Position
    country: Country
    prev_hash: Bin32
    request_hash: Bin32
    received_ms: Ms
    answered_ms: Ms | None
    outcome: Outcome | None
    answer_hash: Bin32 | None
    next_country: Country | None

    @property
    def final(self) -> bool:
        """Whether the hop is done: answered with an outcome that is not answered again."""
        return self.outcome in FINAL_OUTCOMES

    @property
    def signed_ms(self) -> int:
        """When the hop signed it: when it answered, else when it received the trace."""
        return self.received_ms if self.answered_ms is None else self.answered_ms


class AnswerStatement(_Statement, frozen=True, tag=ANSWER_TAG):
    """A hop's answer; `details` as the outcome needs (party, date, question, reason...)."""

    trace_id: Bin16
    position: Position
    country: Country
    outcome: Outcome
    details: Annotated[dict[DetailKey, DetailValue], msgspec.Meta(max_length=8)]
    next_country: Country | None


class ReplyStatement(_Statement, frozen=True, tag=REPLY_TAG):
    """The originator's reply to the question (a `needs_information` answer, by its hash)
    of hop `position`."""

    trace_id: Bin16
    position: Position
    originator: Country
    answer_hash: Bin32
    replied_ms: Ms
    text: ReplyText


class ForwardStatement(_Statement, frozen=True, tag=FORWARD_TAG):
    """Who sent the trace to hop `position`, to which country, trusting which key for it."""

    trace_id: Bin16
    position: Position
    country: Country
    next_country: Country
    next_key: Bin32
    forwarded_ms: Ms

    @property
    def signed_ms(self) -> int:
        """When it was signed."""
        return self.forwarded_ms


class Signed(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """`[statement, key_id, signature]`: a statement with its author's signature."""

    statement: bytes
    key_id: Bin8
    signature: Bin64


S = TypeVar(
    "S", RequestStatement, ReceiptStatement, AnswerStatement, ReplyStatement, ForwardStatement
)
_LIMITS: dict[type[_Statement], tuple[int, str]] = {
    RequestStatement: (MAX_REQUEST_BYTES, "request"),
    ReceiptStatement: (MAX_RECEIPT_BYTES, "receipt"),
    AnswerStatement: (MAX_ANSWER_BYTES, "answer"),
    ReplyStatement: (MAX_REPLY_BYTES, "reply"),
    ForwardStatement: (MAX_FORWARD_BYTES, "forward"),
}


def digest(signed: bytes) -> bytes:
    """The hash that links statements: SHA-256 of the whole signed bytes."""
    return hashlib.sha256(signed).digest()


def shape_fault(receipt: ReceiptStatement) -> str | None:
    """What makes a receipt inconsistent in itself, or None: the answered fields are all
    nil or all set, `next_country` is set exactly when the outcome is `forwarded`."""
    answered = (receipt.answered_ms, receipt.outcome, receipt.answer_hash)
    if any(v is None for v in answered) and any(v is not None for v in answered):
        return "answered_ms, outcome and answer_hash must be all nil or all set"
    if (receipt.next_country is not None) != (receipt.outcome is Outcome.FORWARDED):
        return "next_country is set exactly when the outcome is forwarded"
    return None


def _sign(key: Ed25519PrivateKey, statement: _Statement) -> bytes:
    """Sign a statement, refusing one its receivers would refuse as malformed."""
    limit, what = _LIMITS[type(statement)]
    data = msgspec.msgpack.encode(statement)
    try:
        msgspec.msgpack.decode(data, type=type(statement))
    except msgspec.DecodeError as e:
        raise MalformedEnvelopeError(f"{what}: {e}") from e
    public = key.public_key().public_bytes_raw()
    signed = msgspec.msgpack.encode(Signed(data, key_id(public), key.sign(data)))
    if len(signed) > limit:
        raise MalformedEnvelopeError(f"{what}: {len(signed)} bytes, at most {limit}")
    return signed


def sign_request(
    key: Ed25519PrivateKey,
    trace_id: bytes,
    originator: str,
    created_ms: int,
    fields: RequestFields,
) -> bytes:
    """The originator's signed request."""
    return _sign(key, RequestStatement(trace_id, originator, created_ms, fields))


def sign_answer(
    key: Ed25519PrivateKey,
    trace_id: bytes,
    position: int,
    country: str,
    outcome: Outcome,
    details: Mapping[str, str],
    next_country: str | None = None,
) -> bytes:
    """A hop's signed answer (`details` encoded with sorted keys).

    Raises:
        MalformedEnvelopeError: a detail key the protocol does not know, or a value too long.
    """
    ordered = cast("dict[DetailKey, str]", dict(sorted(details.items())))
    statement = AnswerStatement(trace_id, position, country, outcome, ordered, next_country)
    return _sign(key, statement)


def sign_reply(key: Ed25519PrivateKey, reply: ReplyStatement) -> bytes:
    """The originator's signed reply.

    Raises:
        MalformedEnvelopeError: its text is empty, too long or holds a control character.
    """
    return _sign(key, reply)


def sign_forward(
    key: Ed25519PrivateKey,
    trace_id: bytes,
    position: int,
    country: str,
    next_country: str,
    next_key: bytes,
    forwarded_ms: int,
) -> bytes:
    """The signed statement of `country` sending the trace to hop `position`, `next_country`,
    whose key it trusts is `next_key`."""
    statement = ForwardStatement(trace_id, position, country, next_country, next_key, forwarded_ms)
    return _sign(key, statement)


def sign_receipt(key: Ed25519PrivateKey, receipt: ReceiptStatement) -> bytes:
    """A hop's signed receipt.

    Raises:
        MalformedEnvelopeError: the receipt is inconsistent (`shape_fault`) or answered
            before it was received.
    """
    fault = shape_fault(receipt)
    if fault is None and receipt.signed_ms < receipt.received_ms:
        fault = "answered_ms is before received_ms"
    if fault:
        raise MalformedEnvelopeError(f"receipt: {fault}")
    return _sign(key, receipt)


def answered(
    key: Ed25519PrivateKey, pending: ReceiptStatement, answered_ms: int, signed_answer: bytes
) -> bytes:
    """The receipt a hop signs when it answers: its pending receipt with the answer's time,
    outcome, hash and next country."""
    _signed, answer = read(signed_answer, AnswerStatement)
    return sign_receipt(
        key,
        msgspec.structs.replace(
            pending,
            answered_ms=answered_ms,
            outcome=answer.outcome,
            answer_hash=digest(signed_answer),
            next_country=answer.next_country,
        ),
    )


def read(data: bytes, cls: type[S]) -> tuple[Signed, S]:
    """A signed statement of type `cls`, decoded strictly but NOT verified.

    Raises:
        MalformedEnvelopeError: too large, not msgpack, or not the statement's exact shape.
    """
    limit, what = _LIMITS[cls]
    if len(data) > limit:
        raise MalformedEnvelopeError(f"{what}: {len(data)} bytes, at most {limit}")
    try:
        signed = msgspec.msgpack.decode(data, type=Signed)
        return signed, msgspec.msgpack.decode(signed.statement, type=cls)
    except msgspec.DecodeError as e:  # ValidationError is a DecodeError
        raise MalformedEnvelopeError(f"{what}: {e}") from e


def signed_part(data: bytes) -> Signed:
    """The `[statement, key_id, signature]` of a signed statement, its statement not
    decoded (MalformedEnvelopeError if it is not one)."""
    try:
        return msgspec.msgpack.decode(data, type=Signed)
    except msgspec.DecodeError as e:
        raise MalformedEnvelopeError(f"statement: {e}") from e


def verify(signed: Signed, country: str, at_ms: int, keys: KeyResolver) -> None:
    """Check that `country`'s key valid at `at_ms`, named by the key id, signed it.

    Raises:
        UnknownSenderError: `country` had no such key at that time.
        BadSignatureError: the signature does not verify under that key.
    """
    public = keys(country, signed.key_id, at_ms)
    if public is None or key_id(public) != signed.key_id:
        raise UnknownSenderError(
            f"not signed by a key of {country} valid at that time (key id {signed.key_id.hex()})"
        )
    check = keys.check_signature if isinstance(keys, KeyHistory) else verify_ed25519
    try:
        check(public, signed.signature, signed.statement)
    except InvalidSignature as e:
        raise BadSignatureError(
            f"the signature does not verify under {country}'s key {signed.key_id.hex()}"
        ) from e


def open_request(data: bytes, keys: KeyResolver) -> RequestStatement:
    """The originator's request, verified under its key at its creation time.

    Raises:
        MalformedEnvelopeError, UnknownSenderError, BadSignatureError.
    """
    signed, request = read(data, RequestStatement)
    verify(signed, request.originator, request.created_ms, keys)
    return request
