"""Signed envelopes: the one wire form of every peer message and every answer (pure).

Wire format, version 1 (docs/PROTOCOL.md §1 has the same with a test vector)::

    envelope  = msgpack array(2)  [signed: bin, signature: bin(64)]
    signed    = msgpack array(8)  [version, sender, recipient, type,
                                   message_id, timestamp_ms, key_id, body]
      version       int, 1
      sender        str, ISO 3166-1 alpha-3 of the signing node: exactly 3 of A-Z
      recipient     str, the country the message is for: exactly 3 of A-Z
      type          str, 1-64 of a-z 0-9 . _ - starting with a letter ("ping", "error")
      message_id    bin(16), random; unique per sender
      timestamp_ms  int, UTC milliseconds since 1970-01-01, 0 <= t < 2**63
      key_id        bin(8), SHA-256(sender's raw 32-byte Ed25519 public key)[:8]
      body          bin, the msgpack encoding of the message body (a map, str keys)
    signature = Ed25519 (RFC 8032) by the sender's key over exactly the `signed` bytes

Strings are msgpack str (UTF-8) and byte fields msgpack bin; neither array may
hold maps or ext values or be followed by trailing bytes. Any valid msgpack
encoding of these values is accepted (a receiver verifies the bytes it got and
never re-encodes); senders use the shortest encoding, as msgpack libraries do.

`open_envelope` checks, in this order, raising the `ProtocolError` named:
size (`EnvelopeTooLargeError`) → strict decoding of both arrays
(`MalformedEnvelopeError`) → the sender's key by (sender, key_id)
(`UnknownSenderError`) → the signature (`BadSignatureError`) → revocation
(`SenderRevokedError`) → recipient (`WrongRecipientError`) → freshness,
|now − timestamp| ≤ window (`StaleMessageError`). The body stays opaque bytes
until then. The replay check (it needs the store) and message type dispatch
happen in the shell around it, `node.protocol.receive`.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import (
    BadSignatureError,
    EnvelopeTooLargeError,
    IarmsError,
    MalformedEnvelopeError,
    SenderRevokedError,
    StaleMessageError,
    UnknownMessageTypeError,
    UnknownSenderError,
    WrongRecipientError,
)
from node.protocol.messages import ErrorAnswer, decode, encode
from node.protocol.verified import verify_ed25519

VERSION = 1
ERROR = ErrorAnswer.wire_type  # the message type of a signed error answer
MESSAGE_ID_BYTES = 16
KEY_ID_BYTES = 8
SIGNATURE_BYTES = 64
DEFAULT_WINDOW_S = 300
DEFAULT_MAX_BYTES = 1 << 20
#: The largest envelope limit a node may configure (`federation.max_envelope_bytes`).
MAX_ENVELOPE_LIMIT = 16 << 20

_COUNTRY = re.compile(r"[A-Z]{3}")
_TYPE = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_MAX_TIMESTAMP_MS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEADER_FIELDS = 8


@dataclass(frozen=True, slots=True)
class PeerKey:
    """A key this node accepts for a sender, as the peer registry knows it."""

    public_key: bytes
    revoked: bool = False

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")


@dataclass(frozen=True, slots=True)
class Header:
    """The signed header as decoded but NOT verified: for key lookup and addressing errors."""

    sender: str
    recipient: str
    type: str
    message_id: bytes
    timestamp_ms: int
    key_id: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified envelope: every header field checked, the body still undecoded."""

    version: int
    sender: str
    recipient: str
    type: str
    message_id: bytes
    timestamp_ms: int
    key_id: bytes
    body: bytes
    data: bytes  # the envelope exactly as received (for receipts and the audit log)


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: Header
    body: bytes
    signed: bytes
    signature: bytes


@functools.lru_cache(maxsize=1024)
def key_id(public_key: bytes) -> bytes:
    """The 8-byte id of a raw Ed25519 public key: the first bytes of its SHA-256 (kept
    for the few keys a node uses: every key lookup and signature asks it)."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


def to_ms(moment: datetime) -> int:
    """UTC milliseconds since the Unix epoch (exact, no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(timestamp_ms: int) -> datetime:
    """The UTC datetime of a millisecond timestamp."""
    return _EPOCH + timedelta(milliseconds=timestamp_ms)


def _unpack(data: bytes, what: str, **limits: int) -> Any:
    options = {"max_map_len": 0, "max_ext_len": 0} | limits
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, **options)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise MalformedEnvelopeError(f"{what}: not the expected msgpack ({e})") from e


def _check_header(fields: list[Any]) -> tuple[Header, bytes]:
    """Validate the eight signed fields; the header and the body bytes."""
    version, sender, recipient, kind, message_id, timestamp_ms, kid, body = fields
    if type(version) is not int or version != VERSION:
        shown = version if type(version) is int else type(version).__name__
        raise MalformedEnvelopeError(f"envelope version {shown}: this node speaks {VERSION}")
    for name, country in (("sender", sender), ("recipient", recipient)):
        if not (isinstance(country, str) and _COUNTRY.fullmatch(country)):
            raise MalformedEnvelopeError(f"{name}: expected three letters A-Z (ISO alpha-3)")
    if not (isinstance(kind, str) and _TYPE.fullmatch(kind)):
        raise MalformedEnvelopeError("type: expected 1-64 of a-z 0-9 . _ - starting with a letter")
    if not (isinstance(message_id, bytes) and len(message_id) == MESSAGE_ID_BYTES):
        raise MalformedEnvelopeError(f"message_id: expected bin of {MESSAGE_ID_BYTES} bytes")
    if not (type(timestamp_ms) is int and 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS):
        raise MalformedEnvelopeError("timestamp_ms: expected an int from 0 to 2**63-1")
    if not (isinstance(kid, bytes) and len(kid) == KEY_ID_BYTES):
        raise MalformedEnvelopeError(f"key_id: expected bin of {KEY_ID_BYTES} bytes")
    if not isinstance(body, bytes):
        raise MalformedEnvelopeError("body: expected bin")
    return Header(sender, recipient, kind, message_id, timestamp_ms, kid), body


def _parse(data: bytes, max_bytes: int) -> _Parsed:
    if len(data) > max_bytes:
        raise EnvelopeTooLargeError(
            f"envelope is {len(data)} bytes; this node accepts at most {max_bytes}"
        )
    outer = _unpack(data, "envelope", max_array_len=2, max_str_len=0, max_bin_len=len(data))
    if not (isinstance(outer, list) and len(outer) == 2):
        raise MalformedEnvelopeError("envelope: expected an array [signed, signature]")
    signed, signature = outer
    if not isinstance(signed, bytes):
        raise MalformedEnvelopeError("envelope: signed must be bin")
    if not (isinstance(signature, bytes) and len(signature) == SIGNATURE_BYTES):
        raise MalformedEnvelopeError(f"envelope: signature must be bin of {SIGNATURE_BYTES} bytes")
    fields = _unpack(
        signed,
        "signed header",
        max_array_len=_HEADER_FIELDS,
        max_str_len=64,
        max_bin_len=len(signed),
    )
    if not (isinstance(fields, list) and len(fields) == _HEADER_FIELDS):
        raise MalformedEnvelopeError(f"signed header: expected an array of {_HEADER_FIELDS}")
    header, body = _check_header(fields)
    return _Parsed(header, body, signed, signature)


def read_header(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Header:
    """Decode the header WITHOUT verifying it: to find the sender's key, or address an error.

    Raises:
        EnvelopeTooLargeError, MalformedEnvelopeError: as `open_envelope` does.
    """
    return _parse(data, max_bytes).header


def open_envelope(
    data: bytes,
    *,
    me: str,
    now_ms: int,
    keys: Callable[[str, bytes], PeerKey | None],
    window_s: int = DEFAULT_WINDOW_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Envelope:
    """Verify an envelope in the protocol's order; the envelope, or the first failure raised.

    Args:
        data: the envelope bytes as received.
        me: this node's country; the envelope must be addressed to it.
        now_ms: this node's clock, UTC milliseconds.
        keys: the key this node accepts for (sender, key_id), None if there is none
            (not a peer, or a key rotated out after its grace period).
        window_s: freshness window; the timestamp may be this far behind or ahead.
        max_bytes: size limit of the whole envelope.

    Raises:
        ProtocolError: the subclass of the first check that fails (module docstring).
    """
    parsed = _parse(data, max_bytes)
    header = parsed.header
    peer = keys(header.sender, header.key_id)
    if peer is None or key_id(peer.public_key) != header.key_id:
        raise UnknownSenderError(
            f"{header.sender} with key id {header.key_id.hex()} is not a trusted peer of "
            f"{me} (unknown country, or a key rotated out)"
        )
    try:
        verify_ed25519(peer.public_key, parsed.signature, parsed.signed)
    except InvalidSignature as e:
        raise BadSignatureError(
            f"signature does not verify under {header.sender}'s key {header.key_id.hex()}"
        ) from e
    if peer.revoked:
        raise SenderRevokedError(f"{me} has revoked its trust in {header.sender}")
    if header.recipient != me:
        raise WrongRecipientError(f"this node is {me}; the message is for {header.recipient}")
    skew_ms = header.timestamp_ms - now_ms
    if abs(skew_ms) > window_s * 1000:
        raise StaleMessageError.for_skew(skew_ms, window_s)
    return Envelope(
        VERSION,
        header.sender,
        header.recipient,
        header.type,
        header.message_id,
        header.timestamp_ms,
        header.key_id,
        parsed.body,
        data,
    )


def seal(
    key: Ed25519PrivateKey,
    sender: str,
    recipient: str,
    type: str,  # the protocol's name for the field, shadowing the builtin here only
    body: bytes,
    *,
    timestamp_ms: int,
    message_id: bytes | None = None,
) -> bytes:
    """Sign and encode an envelope; `body` is the msgpack encoding of the message body.

    Raises:
        ValueError: a field this function would produce an invalid envelope with.
    """
    message_id = secrets.token_bytes(MESSAGE_ID_BYTES) if message_id is None else message_id
    kid = key_id(key.public_key().public_bytes_raw())
    fields = [VERSION, sender, recipient, type, message_id, timestamp_ms, kid, body]
    try:
        _check_header(fields)
    except MalformedEnvelopeError as e:
        raise ValueError(f"cannot seal: {e}") from e
    signed = msgpack.packb(fields, use_bin_type=True)
    return bytes(msgpack.packb([signed, key.sign(signed)], use_bin_type=True))


def error_body(code: str, message: str, ref: bytes | None) -> bytes:
    """The body of an `error` envelope: `{"code": str, "message": str, "ref": bin(16) | nil}`."""
    return encode(ErrorAnswer(code=code, message=message, ref=ref))


def seal_error(
    key: Ed25519PrivateKey,
    sender: str,
    recipient: str,
    error: IarmsError,
    ref: bytes | None,
    now_ms: int,
) -> bytes:
    """A signed `error` envelope answering the message `ref` with `error`'s code and message."""
    body = error_body(error.code, str(error), ref)
    return seal(key, sender, recipient, ERROR, body, timestamp_ms=now_ms)


def decode_error(envelope: Envelope) -> ErrorAnswer:
    """The code, message and reference of a verified `error` envelope.

    Raises:
        UnknownMessageTypeError: the envelope is not an `error`.
        MalformedEnvelopeError: its body is not an error body.
    """
    if envelope.type != ERROR:
        raise UnknownMessageTypeError(f"expected an {ERROR} envelope, got {envelope.type}")
    return decode(ErrorAnswer, envelope.body)
