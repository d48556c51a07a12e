"""docs/PROTOCOL.md's test vectors and error table agree with the code, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node import errors
from node.errors import IarmsError, ProtocolError
from node.protocol.envelope import PeerKey, error_body, key_id, open_envelope, seal

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"


def vector(name: str) -> dict[str, str]:
    """The `key value` lines of the block after `<!-- test-vector: name -->`.

    A line that starts with spaces continues the previous value (long hex).
    """
    text = PROTOCOL.read_text(encoding="utf-8")
    found = re.search(rf"<!-- test-vector: {re.escape(name)} -->\n```text\n(.*?)\n```", text, re.S)
    assert found, f"no test vector {name!r} in {PROTOCOL}"
    values: dict[str, str] = {}
    last = ""
    for line in found.group(1).splitlines():
        if line.startswith(" "):
            values[last] += line.strip()
        else:
            last, _, value = line.partition(" ")
            values[last] = value.strip()
    return values


def test_the_ping_vector_is_reproduced_and_accepted() -> None:
    v = vector("envelope-ping")
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["seed"]))
    public = key.public_key().public_bytes_raw()
    assert public.hex() == v["public_key"]
    assert key_id(public).hex() == v["key_id"]
    assert bytes.fromhex(v["body"]) == msgpack.packb({})
    envelope = seal(
        key,
        v["sender"],
        v["recipient"],
        v["type"],
        bytes.fromhex(v["body"]),
        timestamp_ms=int(v["timestamp_ms"]),
        message_id=bytes.fromhex(v["message_id"]),
    )
    assert envelope.hex() == v["envelope"]
    signed, signature = msgpack.unpackb(envelope)
    assert (signed.hex(), signature.hex()) == (v["signed"], v["signature"])
    assert len(envelope) == 124

    opened = open_envelope(
        bytes.fromhex(v["envelope"]),
        me=v["recipient"],
        now_ms=int(v["timestamp_ms"]) + 299_000,
        keys=lambda s, k: PeerKey(public) if (s, k.hex()) == (v["sender"], v["key_id"]) else None,
    )
    assert (opened.sender, opened.type, opened.message_id.hex()) == (
        v["sender"],
        v["type"],
        v["message_id"],
    )


def test_the_error_body_vector() -> None:
    v = vector("error-body-clock-skew")
    body = error_body(v["code"], v["message"], bytes.fromhex(v["ref"]))
    assert body.hex() == v["body"]
    assert str(errors.StaleMessageError.for_skew(412_000, 300)) == v["message"]


def _documented_codes() -> dict[str, int]:
    text = PROTOCOL.read_text(encoding="utf-8")
    section = text.split("## 1. Transport and envelopes", 1)[1].split("\n## ", 1)[0]
    return {
        code: int(status)
        for code, status in re.findall(r"^\| `(\w+)` \| (\d{3}) \|", section, re.M)
    }


def _wire_errors() -> list[type[IarmsError]]:
    found: list[type[IarmsError]] = [IarmsError, errors.OprfError]
    pending: list[type[IarmsError]] = [ProtocolError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(c for c in cls.__subclasses__() if c.__module__ == "node.errors")
    return found


@pytest.mark.parametrize("error", _wire_errors(), ids=lambda e: e.__name__)
def test_every_protocol_error_code_is_in_the_table_with_its_status(
    error: type[IarmsError],
) -> None:
    assert _documented_codes()[error.code] == error.status


def test_the_table_names_no_code_the_code_lacks() -> None:
    assert set(_documented_codes()) == {e.code for e in _wire_errors()}
