"""Property tests of envelope verification: anything but a valid envelope is a ProtocolError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from node.errors import MalformedEnvelopeError, ProtocolError
from node.protocol.envelope import (
    Envelope,
    PeerKey,
    key_id,
    open_envelope,
    seal,
    to_ms,
)
from node.protocol.messages import Message, Str, decode

NOW = to_ms(datetime(2026, 1, 1, tzinfo=UTC))
ME = "FRA"
SIGNERS = {
    c: Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32)
    for i, c in enumerate(("DEU", "ITA", "ESP"))
}
KEYS = {
    (c, key_id(k.public_key().public_bytes_raw())): PeerKey(k.public_key().public_bytes_raw())
    for c, k in SIGNERS.items()
}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def open_(data: bytes) -> Envelope:
    return open_envelope(
        data, me=ME, now_ms=NOW, keys=lambda s, k: KEYS.get((s, k)), max_bytes=4096
    )


def refused(data: bytes) -> ProtocolError:
    """Opening `data` raises a ProtocolError (anything else fails the test)."""
    with pytest.raises(ProtocolError) as caught:
        open_(data)
    return caught.value


@st.composite
def valid(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A valid envelope for this node and the fields it was sealed with."""
    fields: dict[str, Any] = {
        "sender": draw(st.sampled_from(sorted(SIGNERS))),
        "recipient": ME,
        "type": draw(st.from_regex(r"[a-z][a-z0-9._-]{0,63}", fullmatch=True)),
        "body": draw(st.binary(max_size=300)),
        "timestamp_ms": NOW + draw(st.integers(-300_000, 300_000)),
        "message_id": draw(st.binary(min_size=16, max_size=16)),
    }
    return seal(SIGNERS[fields["sender"]], **fields), fields


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=9) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=20,
)


@SETTINGS
@given(valid())
def test_a_valid_envelope_always_opens(sealed: tuple[bytes, dict[str, Any]]) -> None:
    data, fields = sealed
    envelope = open_(data)
    assert {name: getattr(envelope, name) for name in fields} == fields
    assert envelope.data == data


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes_are_refused(data: bytes) -> None:
    refused(data)


@SETTINGS
@given(msgpack_values)
def test_random_msgpack_is_refused(value: Any) -> None:
    refused(msgpack.packb(value, use_bin_type=True))


@SETTINGS
@given(valid(), st.data())
def test_a_flipped_bit_is_refused(
    sealed: tuple[bytes, dict[str, Any]], data: st.DataObject
) -> None:
    envelope = bytearray(sealed[0])
    index = data.draw(st.integers(0, len(envelope) - 1))
    envelope[index] ^= 1 << data.draw(st.integers(0, 7))
    refused(bytes(envelope))


@SETTINGS
@given(valid(), st.data())
def test_truncation_and_extension_are_refused(
    sealed: tuple[bytes, dict[str, Any]], data: st.DataObject
) -> None:
    envelope = sealed[0]
    refused(envelope[: data.draw(st.integers(0, len(envelope) - 1))])
    error = refused(envelope + data.draw(st.binary(min_size=1, max_size=50)))
    assert isinstance(error, MalformedEnvelopeError)


@SETTINGS
@given(valid(), st.integers(0, 7), msgpack_values)
def test_a_changed_field_under_the_old_signature_is_refused(
    sealed: tuple[bytes, dict[str, Any]], index: int, value: Any
) -> None:
    signed, signature = msgpack.unpackb(sealed[0])
    fields = msgpack.unpackb(signed, raw=False)
    fields[index] = value
    changed = msgpack.packb(fields, use_bin_type=True)
    assume(changed != signed)
    refused(msgpack.packb([changed, signature], use_bin_type=True))


@SETTINGS
@given(valid(), st.sampled_from(["sender", "recipient", "type", "timestamp_ms", "message_id"]))
def test_a_well_formed_change_fails_on_the_signature(
    sealed: tuple[bytes, dict[str, Any]], name: str
) -> None:
    """A change that keeps the header valid is caught by the signature, not later checks."""
    signed, signature = msgpack.unpackb(sealed[0])
    fields = msgpack.unpackb(signed, raw=False)
    index = ["version", "sender", "recipient", "type", "message_id", "timestamp_ms"].index(name)
    fields[index] = {
        "sender": "ITA" if fields[1] != "ITA" else "DEU",
        "recipient": "FRA" if fields[2] != "FRA" else "DEU",
        "type": fields[3] + "x" if len(fields[3]) < 64 else "x",
        "message_id": bytes(b ^ 1 for b in fields[4]),
        "timestamp_ms": fields[5] + 1,
    }[name]
    error = refused(msgpack.packb([msgpack.packb(fields), signature], use_bin_type=True))
    # A changed sender no longer matches the key id: no key is even tried.
    expected = "unknown_sender" if name == "sender" else "bad_signature"
    assert error.code == expected


class _Body(Message, frozen=True, kw_only=True):
    wire_type = "t"
    a: int
    b: Str | None


@SETTINGS
@given(st.binary(max_size=200))
def test_decode_returns_the_class_or_refuses(body: bytes) -> None:
    try:
        decoded = decode(_Body, body)
    except MalformedEnvelopeError:
        return
    assert type(decoded.a) is int
    assert decoded.b is None or (isinstance(decoded.b, str) and "\x00" not in decoded.b)
