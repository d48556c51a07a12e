"""Signed envelopes: sealing, the verification order, the replay cache, signed error answers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.app import Node
from node.clock import FakeClock
from node.config import load_config
from node.errors import (
    BadSignatureError,
    EnvelopeTooLargeError,
    MalformedEnvelopeError,
    NotFoundError,
    ProtocolError,
    ReplayError,
    SenderRevokedError,
    StaleMessageError,
    UnknownMessageTypeError,
    UnknownSenderError,
    WrongRecipientError,
)
from node.identity import load_signing_key
from node.protocol.envelope import (
    ERROR,
    Envelope,
    PeerKey,
    decode_error,
    key_id,
    open_envelope,
    read_header,
    seal,
    to_ms,
)
from node.protocol.messages import Bin16, Message, Str, decode
from node.protocol.model import Peer, PeerStatus, Service
from node.protocol.receive import UNADDRESSED, Receiver, select_key
from node.store.replay import ReplayStore

NOW = to_ms(datetime(2026, 1, 1, tzinfo=UTC))  # FakeClock's start
DEU = Ed25519PrivateKey.generate()
DEU_PUB = DEU.public_key().public_bytes_raw()
OTHER = Ed25519PrivateKey.generate()
EMPTY = msgpack.packb({})


def trusting(*keys: PeerKey, sender: str = "DEU") -> dict[tuple[str, bytes], PeerKey]:
    return {(sender, key_id(k.public_key)): k for k in keys}


TRUST = trusting(PeerKey(DEU_PUB))


class Serial(Message, frozen=True, kw_only=True):
    """A body of these tests: a string, a count and an optional id."""

    wire_type = "ping"
    serial: Str
    count: int
    ref: Bin16 | None = None


def make(key: Ed25519PrivateKey = DEU, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "sender": "DEU",
        "recipient": "FRA",
        "type": "ping",
        "body": EMPTY,
        "timestamp_ms": NOW,
    } | fields
    return seal(key, **values)


def forge(fields: list[Any], key: Ed25519PrivateKey = DEU) -> bytes:
    """An envelope around any header fields, correctly signed (for decoding failures)."""
    signed = msgpack.packb(fields, use_bin_type=True)
    return msgpack.packb([signed, key.sign(signed)], use_bin_type=True)


def good_fields() -> list[Any]:
    return [1, "DEU", "FRA", "ping", bytes(16), NOW, key_id(DEU_PUB), EMPTY]


def open_(data: bytes, keys: dict[tuple[str, bytes], PeerKey] = TRUST, **kw: Any) -> Envelope:
    return open_envelope(
        data,
        me=kw.pop("me", "FRA"),
        now_ms=kw.pop("now_ms", NOW),
        keys=lambda s, k: keys.get((s, k)),
        **kw,
    )


def test_seal_and_open_round_trip() -> None:
    body = msgpack.packb({"serial": "A123", "count": 3}, use_bin_type=True)
    data = make(type="lookup.evaluate", body=body, message_id=b"\x07" * 16)
    envelope = open_(data)
    assert (envelope.version, envelope.sender, envelope.recipient, envelope.type) == (
        1,
        "DEU",
        "FRA",
        "lookup.evaluate",
    )
    assert (envelope.message_id, envelope.timestamp_ms) == (b"\x07" * 16, NOW)
    assert (envelope.key_id, envelope.body, envelope.data) == (key_id(DEU_PUB), body, data)
    assert decode(Serial, envelope.body) == Serial(serial="A123", count=3)


def test_seal_draws_a_fresh_message_id_and_refuses_bad_fields() -> None:
    assert read_header(make()).message_id != read_header(make()).message_id
    for bad in ({"sender": "De"}, {"type": "Ping"}, {"message_id": b"1"}, {"timestamp_ms": -1}):
        with pytest.raises(ValueError, match="cannot seal"):
            make(**bad)


def test_size_is_checked_first() -> None:
    data = make()
    assert open_(data, max_bytes=len(data)).sender == "DEU"
    with pytest.raises(EnvelopeTooLargeError, match=f"{len(data)} bytes; .* at most 100"):
        open_(data, max_bytes=100)
    with pytest.raises(EnvelopeTooLargeError):  # garbage that is too large is not decoded
        open_(b"\xc1" * 2000, max_bytes=1000)


def _field(index: int, value: Any) -> bytes:
    fields = good_fields()
    fields[index] = value
    return forge(fields)


MALFORMED = {
    "empty": (b"", "envelope"),
    "never-used byte": (b"\xc1", "envelope"),
    "not an array": (msgpack.packb({"signed": b"", "signature": b""}), "envelope"),
    "one element": (msgpack.packb([b"x"]), "envelope"),
    "three elements": (msgpack.packb([b"x", bytes(64), b""]), "envelope"),
    "signed as str": (msgpack.packb(["x", bytes(64)], use_bin_type=True), "envelope"),
    "short signature": (msgpack.packb([b"x", bytes(63)], use_bin_type=True), "signature"),
    "trailing bytes": (make() + b"\x00", "envelope"),
    "header not msgpack": (msgpack.packb([b"\xc1", bytes(64)], use_bin_type=True), "header"),
    "header too short": (forge(good_fields()[:7]), "signed header"),
    "header too long": (forge([*good_fields(), 0]), "signed header"),
    "header trailing": (
        msgpack.packb([msgpack.packb(good_fields()) + b"\x00", bytes(64)]),
        "signed header",
    ),
    "version 2": (_field(0, 2), "version 2"),
    "version as str": (_field(0, "1"), "version str"),
    "lower-case sender": (_field(1, "deu"), "sender"),
    "two-letter recipient": (_field(2, "FR"), "recipient"),
    "sender as bin": (_field(1, b"DEU"), "sender"),
    "upper-case type": (_field(3, "PING"), "type"),
    "empty type": (_field(3, ""), "type"),
    "15-byte id": (_field(4, bytes(15)), "message_id"),
    "id as str": (_field(4, "0" * 16), "message_id"),
    "negative time": (_field(5, -1), "timestamp_ms"),
    "float time": (_field(5, float(NOW)), "timestamp_ms"),
    "boolean time": (_field(5, True), "timestamp_ms"),
    "time as ext": (_field(5, msgpack.Timestamp(1)), "header"),
    "7-byte key id": (_field(6, bytes(7)), "key_id"),
    "body as str": (_field(7, "{}"), "body"),
    "body as empty map": (_field(7, {}), "body"),
    "body as map": (_field(7, {"a": 1}), "header"),
}


@pytest.mark.parametrize(("data", "names"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_envelopes_are_refused_naming_the_part(data: bytes, names: str) -> None:
    with pytest.raises(MalformedEnvelopeError, match=names):
        open_(data)


def test_unknown_sender_or_unknown_key() -> None:
    with pytest.raises(
        UnknownSenderError, match=r"DEU with key id \w+ is not a trusted peer of FRA"
    ):
        open_(make(), keys={})
    with pytest.raises(UnknownSenderError):  # DEU is a peer, but not with this key
        open_(make(OTHER))
    with pytest.raises(UnknownSenderError):  # a lookup that answers with the wrong key
        open_envelope(make(), me="FRA", now_ms=NOW, keys=lambda s, k: PeerKey(bytes(32)))


def _flip(data: bytes, index: int, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[index] ^= 1 << bit
    return bytes(flipped)


def test_a_flipped_bit_in_the_signed_bytes_or_the_signature_is_caught() -> None:
    data = make(message_id=bytes(16), body=msgpack.packb({"a": 1}))
    signed_at, signature_at = 3, len(data) - 64  # after 92 c4 LL, and after c4 40
    id_at = data.index(bytes(16))
    for index in [*range(id_at, id_at + 16), len(data) - 66 - 3]:  # message id, body
        for bit in range(8):
            with pytest.raises(BadSignatureError, match="does not verify under DEU's key"):
                open_(_flip(data, index, bit))
    for index in range(signature_at, len(data)):
        for bit in range(8):
            with pytest.raises(BadSignatureError):
                open_(_flip(data, index, bit))
    assert data[signed_at] == 0x98  # the header array: the layout the offsets assume


def test_revoked_sender_is_refused_after_its_signature_is_checked() -> None:
    revoked = trusting(PeerKey(DEU_PUB, revoked=True))
    with pytest.raises(SenderRevokedError, match="FRA has revoked its trust in DEU"):
        open_(make(), revoked)
    with pytest.raises(BadSignatureError):
        open_(_flip(make(), len(make()) - 1, 0), revoked)


def test_wrong_recipient() -> None:
    with pytest.raises(WrongRecipientError, match="this node is FRA; the message is for ITA"):
        open_(make(recipient="ITA"))
    assert WrongRecipientError.status == 421


@pytest.mark.parametrize(
    ("skew_ms", "message"),
    [
        (-412_000, "message timestamp is 412 s behind this node's clock"),
        (412_000, "message timestamp is 412 s ahead of this node's clock"),
        (300_001, "message timestamp is 300.001 s ahead of this node's clock"),
        (-86_400_500, "message timestamp is 86400.500 s behind this node's clock"),
    ],
)
def test_stale_in_the_past_and_the_future_with_the_exact_skew(skew_ms: int, message: str) -> None:
    with pytest.raises(StaleMessageError) as caught:
        open_(make(timestamp_ms=NOW + skew_ms))
    assert str(caught.value) == f"{message}; the window is ±300 s: check the clocks (NTP)"
    assert (caught.value.skew_ms, caught.value.window_s, caught.value.code) == (
        skew_ms,
        300,
        "clock_skew",
    )


def test_the_window_is_inclusive_and_configurable() -> None:
    for skew in (-300_000, 300_000):
        assert open_(make(timestamp_ms=NOW + skew)).timestamp_ms == NOW + skew
    with pytest.raises(StaleMessageError, match="the window is ±60 s"):
        open_(make(timestamp_ms=NOW + 61_000), window_s=60)


@pytest.mark.parametrize(
    ("keys", "recipient", "expected"),
    [
        ({}, "ITA", UnknownSenderError),
        (trusting(PeerKey(DEU_PUB, revoked=True)), "ITA", SenderRevokedError),
        (TRUST, "ITA", WrongRecipientError),
        (TRUST, "FRA", StaleMessageError),
    ],
)
def test_the_first_failing_check_wins(
    keys: dict[tuple[str, bytes], PeerKey], recipient: str, expected: type[ProtocolError]
) -> None:
    """A stale message with every other fault too is refused for the earliest one."""
    with pytest.raises(expected):
        open_(make(recipient=recipient, timestamp_ms=NOW - 3_600_000), keys)


def _peer(key: bytes, previous: bytes | None, until: datetime | None) -> Peer:
    at = datetime(2025, 12, 1, tzinfo=UTC)
    return Peer(
        country="DEU",
        url="http://127.0.0.1:1",
        signing_key=key,
        fingerprint="",
        oprf_key=None,
        status=PeerStatus.ACTIVE,
        policy=frozenset({Service.LOOKUPS}),
        added_at=at,
        added_by="admin",
        revoked_at=None,
        last_contact_at=None,
        index_version=None,
        previous_key=previous,
        previous_key_until=until,
    )


def test_key_rotation_accepts_the_previous_key_until_the_grace_period_ends() -> None:
    new_pub = OTHER.public_key().public_bytes_raw()
    grace_end = datetime(2026, 1, 2, tzinfo=UTC)
    peer = _peer(new_pub, DEU_PUB, grace_end)
    old_message, new_message = make(), make(OTHER)

    def keys_at(now: datetime) -> dict[tuple[str, bytes], PeerKey]:
        return {
            ("DEU", kid): found
            for kid in (key_id(DEU_PUB), key_id(new_pub))
            if (found := select_key(peer, kid, now)) is not None
        }

    during = keys_at(grace_end)
    assert open_(old_message, during).key_id == key_id(DEU_PUB)
    assert open_(new_message, during).key_id == key_id(new_pub)
    after = keys_at(grace_end + timedelta(seconds=1))
    assert open_(new_message, after).sender == "DEU"
    with pytest.raises(UnknownSenderError, match="rotated out"):
        open_(old_message, after)
    revoked_peer = replace(peer, status=PeerStatus.REVOKED)
    assert select_key(revoked_peer, key_id(DEU_PUB), grace_end) == PeerKey(DEU_PUB, revoked=True)


def test_decode_is_strict_and_names_the_field() -> None:
    def body(**fields: Any) -> Envelope:
        return open_(make(body=msgpack.packb(fields, use_bin_type=True)))

    assert decode(Serial, body(serial="A", count=2, ref=None).body).ref is None
    cases = [
        (body(count=2), "missing required field `serial`"),
        (body(serial="A", count=2, ref=None, extra=1), "unknown field `extra`"),
        (body(serial="A", count=True), r"got `bool` - at `\$.count`"),
        (body(serial=b"A", count=2), r"got `bytes` - at `\$.serial`"),
        (body(serial="A", count=2, ref=b"1"), r"length >= 16 - at `\$.ref`"),
        (body(serial="A\x00", count=2), r"NUL character \(U\+0000\) - at `\$.serial`"),
        (open_(make(body=msgpack.packb([1, 2]))), "ping body: Expected `object`, got `array`"),
        (open_(make(body=b"\xc1")), "ping body: not the expected msgpack"),
        (open_(make(body=msgpack.packb({1: 2}))), "ping body: Expected `str`, got `int`"),
    ]
    for envelope, message in cases:
        with pytest.raises(MalformedEnvelopeError, match=message):
            decode(Serial, envelope.body)


# The shell: replay cache and error answers, on each database backend.


class Registry:
    """The peer registry of these tests: DEU under its key, unless told otherwise."""

    def __init__(self, *peers: Peer) -> None:
        self.peers = {p.country: p for p in peers or (_peer(DEU_PUB, None, None),)}

    async def get(self, country: str) -> Peer:
        await asyncio.sleep(0)
        if country not in self.peers:
            raise NotFoundError(f"{country} is not a peer")
        return self.peers[country]


def receiver(node: Node, registry: Registry | None = None) -> Receiver:
    signing_key = load_signing_key(node.config.signing_key_file, None)
    return Receiver("FRA", registry or Registry(), ReplayStore(node.db), node.clock, signing_key)


async def test_a_repeat_is_refused_even_after_a_restart(node: Node, clock: FakeClock) -> None:
    data = make()
    first = receiver(node)
    envelope, peer = await first.accept(data)
    assert (envelope.message_id, peer.country) == (read_header(data).message_id, "DEU")
    with pytest.raises(ReplayError, match="already accepted"):
        await first.accept(data)
    assert (await first.accept(make()))[0].sender == "DEU"  # a new id is fine
    restarted = await Node.open(load_config(node.config.data_dir), clock, migrate=False)
    try:
        with pytest.raises(ReplayError):
            await receiver(restarted).accept(data)
    finally:
        await restarted.close()


async def test_the_same_id_from_another_sender_is_not_a_replay(node: Node) -> None:
    ita = replace(_peer(OTHER.public_key().public_bytes_raw(), None, None), country="ITA")
    shell = receiver(node, Registry(_peer(DEU_PUB, None, None), ita))
    await shell.accept(make(message_id=b"\x01" * 16))
    envelope, peer = await shell.accept(make(OTHER, sender="ITA", message_id=b"\x01" * 16))
    assert (envelope.sender, peer) == ("ITA", ita)


async def test_expired_ids_are_deleted_and_their_repeat_is_stale(
    node: Node, clock: FakeClock
) -> None:
    shell, store = receiver(node), ReplayStore(node.db)
    old, recent = make(timestamp_ms=NOW - 200_000), make(timestamp_ms=NOW)
    await shell.accept(old)
    await shell.accept(recent)
    clock.advance(100)  # `old` expires now (timestamp + 300 s): kept until strictly after
    assert await shell.prune() == 0
    clock.advance(0.001)
    assert await shell.prune() == 1
    with pytest.raises(StaleMessageError, match=r"300\.001 s behind"):
        await shell.accept(old)
    with pytest.raises(ReplayError):
        await shell.accept(recent)
    clock.advance(300)
    assert await store.delete_expired(clock.now()) == 1


async def test_concurrent_receptions_of_one_id_accept_exactly_one(node: Node) -> None:
    store = ReplayStore(node.db)
    until = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    results = await asyncio.gather(*(store.add_seen("DEU", b"\x02" * 16, until) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def _open_answer(node: Node, answer: bytes, me: str) -> Envelope:
    fra = PeerKey(node.public_key)
    return open_envelope(
        answer,
        me=me,
        now_ms=to_ms(node.clock.now()),
        keys=lambda s, k: fra if (s, k) == ("FRA", key_id(node.public_key)) else None,
    )


async def test_error_answers_are_signed_and_verifiable_by_their_recipient(node: Node) -> None:
    shell = receiver(node)
    data = make()
    await shell.accept(data)
    with pytest.raises(ReplayError) as caught:
        await shell.accept(data)
    answer = await _open_answer(node, shell.answer_error(caught.value, data), "DEU")
    assert (answer.type, answer.sender, answer.recipient) == (ERROR, "FRA", "DEU")
    error = decode_error(answer)
    assert (error.code, error.ref) == ("replay", read_header(data).message_id)
    assert error.message == str(caught.value)
    with pytest.raises(UnknownMessageTypeError):
        decode_error(open_(make()))


async def test_errors_before_the_sender_is_known(node: Node) -> None:
    shell = receiver(node)
    forged = _flip(make(), len(make()) - 1, 0)  # a bad signature still names its sender
    with pytest.raises(BadSignatureError) as caught:
        await shell.accept(forged)
    answer = decode_error(await _open_answer(node, shell.answer_error(caught.value, forged), "DEU"))
    assert (answer.code, answer.ref) == ("bad_signature", read_header(forged).message_id)
    header = [2, "DEU", "FRA", "ping", bytes(16), 0, bytes(8), b"\x80"]  # version 2
    version_2 = msgpack.packb([msgpack.packb(header), bytes(64)])
    typed = msgpack.packb(
        [msgpack.packb([1, "DEU", "FRA", "ping", "id", 0, bytes(8), b"\x80"]), bytes(64)]
    )
    cases = [
        (b"\xc1garbage", "malformed"),
        (b"\x00" * (2 << 20), "too_large"),
        (version_2, "malformed"),  # PROTOCOL.md §1.7: step 2 fails, so XXX and no ref
        (typed, "malformed"),  # a header field of the wrong type
    ]
    for data, code in cases:
        with pytest.raises(ProtocolError) as refused:
            await shell.accept(data)
        envelope = await _open_answer(node, shell.answer_error(refused.value, data), UNADDRESSED)
        assert (envelope.recipient, decode_error(envelope).ref) == ("XXX", None)
        assert (decode_error(envelope).code, refused.value.code) == (code, code)


async def test_the_receiver_reads_keys_and_revocation_from_the_registry(node: Node) -> None:
    registry = Registry()
    shell = receiver(node, registry)
    assert (await shell.accept(make()))[1] == registry.peers["DEU"]
    with pytest.raises(UnknownSenderError):
        await shell.accept(make(OTHER))  # DEU's, under a key DEU does not hold
    with pytest.raises(UnknownSenderError):
        await shell.accept(make(sender="ITA"))  # not a peer at all
    registry.peers["DEU"] = replace(registry.peers["DEU"], status=PeerStatus.REVOKED)
    with pytest.raises(SenderRevokedError):
        await shell.accept(make())  # revoked from the next message on
