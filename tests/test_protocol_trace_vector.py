"""docs/PROTOCOL.md §3.6: a two-hop trace chain, byte for byte, and §3's numbers."""

from __future__ import annotations

import json
import re

import msgpack
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.protocol.envelope import key_id
from node.trace.chain import ProblemKind, verify_chain
from node.trace.export import (
    MAX_FILE_BYTES,
    MAX_FORWARDS,
    KeyHistory,
    KeySpan,
    export_chain,
    verify_file,
)
from node.trace.intake import BOUNDS, Slot
from node.trace.receipts import (
    MAX_ANSWER_BYTES,
    MAX_FORWARD_BYTES,
    MAX_HOPS,
    MAX_RECEIPT_BYTES,
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    AnswerStatement,
    Outcome,
    ReceiptStatement,
    answered,
    digest,
    read,
    sign_answer,
    sign_forward,
    sign_receipt,
    sign_request,
)
from node.trace.request import RequestFields
from tests.test_protocol_vectors import PROTOCOL, vector

V = vector("trace-two-hops")
HOPS = (1, 2)


def _hex(name: str) -> bytes:
    return bytes.fromhex(V[name])


def _nil(name: str) -> str | None:
    return None if V[name] == "nil" else V[name]


def _keys() -> dict[str, Ed25519PrivateKey]:
    return {
        country: Ed25519PrivateKey.from_private_bytes(_hex(f"seed_{country}"))
        for country in ("FRA", "AUT", "DEU")
    }


def _plain(*elements: object) -> bytes:
    """The documented array, encoded by plain msgpack (not by our classes)."""
    return bytes(msgpack.packb(list(elements), use_bin_type=True))


def test_the_keys() -> None:
    for country, key in _keys().items():
        public = key.public_key().public_bytes_raw()
        assert public.hex() == V[f"public_{country}"]
        assert key_id(public).hex() == V[f"key_id_{country}"]


def test_the_request() -> None:
    fields = json.loads(V["fields"])
    assert list(fields) == sorted(fields)
    trace_id, created = _hex("trace_id"), int(V["created_ms"])
    assert _plain("iarms-trace-request-v1", trace_id, "FRA", created, fields) == _hex("request")
    signed = sign_request(
        _keys()["FRA"], trace_id, "FRA", created, msgspec.convert(fields, RequestFields)
    )
    assert signed.hex() == V["signed_request"]
    assert msgpack.unpackb(signed)[0] == _hex("request")
    assert digest(signed).hex() == V["request_hash"]


def _chain() -> tuple[list[bytes], list[bytes]]:
    """The receipts and answers, made by the code from the vector's inputs, each checked
    against the vector and against the plain msgpack array."""
    keys, trace_id, request_hash = _keys(), _hex("trace_id"), _hex("request_hash")
    prev, receipts, answers = request_hash, [], []
    for n in HOPS:
        country, received = V[f"country_{n}"], int(V[f"received_ms_{n}"])
        pending = ReceiptStatement(
            trace_id, n, country, prev, request_hash, received, None, None, None, None
        )
        if n == 1:
            plain = _plain(RECEIPT, trace_id, 1, country, prev, request_hash, received, *[None] * 4)
            assert plain == _hex("pending_1")
            assert sign_receipt(keys[country], pending).hex() == V["signed_pending_1"]
        outcome, next_country = Outcome(V[f"outcome_{n}"]), _nil(f"next_country_{n}")
        details = json.loads(V[f"details_{n}"])
        answer = sign_answer(keys[country], trace_id, n, country, outcome, details, next_country)
        assert answer.hex() == V[f"signed_answer_{n}"]
        ordered = dict(sorted(details.items()))
        plain = _plain(ANSWER, trace_id, n, country, outcome.value, ordered, next_country)
        assert plain == _hex(f"answer_{n}") == read(answer, AnswerStatement)[0].statement
        assert digest(answer).hex() == V[f"answer_hash_{n}"]
        at = int(V[f"answered_ms_{n}"])
        receipt = answered(keys[country], pending, at, answer)
        assert receipt.hex() == V[f"signed_receipt_{n}"]
        plain = _plain(
            RECEIPT,
            trace_id,
            n,
            country,
            prev,
            request_hash,
            received,
            at,
            outcome.value,
            digest(answer),
            next_country,
        )
        assert plain == _hex(f"receipt_{n}") == msgpack.unpackb(receipt)[0]
        assert digest(receipt).hex() == V[f"receipt_hash_{n}"]
        prev = digest(receipt)
        receipts.append(receipt)
        answers.append(answer)
    return receipts, answers


RECEIPT, ANSWER = "iarms-trace-receipt-v1", "iarms-trace-answer-v1"


def test_the_forward_statement() -> None:
    """AUT vouches for DEU's key as it forwards the trace to hop 2 (§3.9)."""
    trace_id, at = _hex("trace_id"), int(V["answered_ms_1"])
    deu = _hex("public_DEU")
    plain = _plain("iarms-trace-forward-v1", trace_id, 2, "AUT", "DEU", deu, at)
    assert plain == _hex("forward_2")
    signed = sign_forward(_keys()["AUT"], trace_id, 2, "AUT", "DEU", deu, at)
    assert signed.hex() == V["signed_forward_2"]
    assert msgpack.unpackb(signed)[0] == plain
    assert digest(signed).hex() == V["forward_hash_2"]


def test_the_two_hops_and_their_chain() -> None:
    receipts, answers = _chain()
    keys = KeyHistory(
        {c: [KeySpan(bytes.fromhex(V[f"public_{c}"]), None, None)] for c in ("FRA", "AUT", "DEU")}
    )
    report = verify_chain(_hex("signed_request"), receipts, answers, keys)
    assert report.valid and report.complete
    assert [(h.country, h.outcome) for h in report.hops] == [
        ("AUT", Outcome.FORWARDED),
        ("DEU", Outcome.END_OF_CHAIN),
    ]
    assert report.hops[1].details == json.loads(V["details_2"])
    swapped = verify_chain(_hex("signed_request"), receipts[::-1], answers, keys)
    assert (1, "AUT", ProblemKind.OUT_OF_ORDER) in {
        (p.position, p.country, p.kind) for p in swapped.problems
    }
    exported = export_chain(
        _hex("signed_request"),
        receipts,
        answers,
        {c: (bytes.fromhex(V[f"public_{c}"]), []) for c in ("FRA", "AUT", "DEU")},
    )
    assert verify_file(exported).report.valid


def test_the_limits_in_the_text_are_the_code_s() -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    section = text.split("## 3. Traces", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \| ", section.split("### 3.2")[1], re.M)
    assert documented[: len(RequestFields.__struct_fields__)] == list(
        RequestFields.__struct_fields__
    )
    words = " ".join(section.split())
    assert f"A file is at most {MAX_FILE_BYTES:,} bytes" in words
    assert (
        MAX_REQUEST_BYTES,
        MAX_RECEIPT_BYTES,
        MAX_ANSWER_BYTES,
        MAX_REPLY_BYTES,
        MAX_FORWARD_BYTES,
        MAX_HOPS,
    ) == (32768, 1024, 16384, 12288, 512, 16)
    assert (
        "A signed request is at most 32 KiB (32,768 bytes), a signed receipt 1 KiB, "
        "a signed answer 16 KiB, a signed reply 12 KiB, a signed forward 512 bytes, and a trace "
        "has at most 16 hops"
    ) in words
    bounds = dict(BOUNDS)
    assert (
        f"at most 1 pending receipt, {bounds[Slot.ASKED]} `needs_information` receipts, "
        f"1 final receipt, {bounds[Slot.ANSWER]} answers and {bounds[Slot.FORWARD]} forwards, "
        f"and per country {bounds[Slot.ROTATION]} rotation statements"
    ) in words
    assert f"at most {MAX_FORWARDS}) that vouch" in words
