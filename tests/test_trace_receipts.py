"""A trace's receipts and their chain: signed, linked, checked with public keys only.

Each forgery — a tampered, removed, reordered or duplicated receipt, one signed
by the wrong country, a forged answer, times out of order — is reported with
its hop and country; a key since rotated verifies what it signed while valid,
and only then; an exported chain verifies anywhere, a malformed file is named.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

import msgpack
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import MalformedEnvelopeError, TraceFileError
from node.protocol.rotation import sign_rotation
from node.trace.chain import ChainReport, NextHop, ProblemKind, pending_receipt, verify_chain
from node.trace.export import (
    FORMAT,
    MAX_FILE_BYTES,
    KeyHistory,
    export_chain,
    key_spans,
    verify_file,
)
from node.trace.receipts import (
    Outcome,
    ReceiptStatement,
    Signed,
    digest,
    read,
    sign_answer,
    sign_receipt,
)
from tests.trace_chains import (
    DEFAULT_HOPS,
    KEYS,
    T0,
    TRACE_ID,
    Chain,
    build,
    public,
    resolver,
)

Found = set[tuple[int | None, str | None, ProblemKind]]


def check(chain: Chain, keys: KeyHistory | None = None) -> ChainReport:
    return verify_chain(chain.request, chain.receipts, chain.answers, keys or resolver())


def found(report: ChainReport) -> Found:
    return {(p.position, p.country, p.kind) for p in report.problems}


def test_a_chain_of_three_hops_verifies() -> None:
    report = check(build())
    assert report.valid and report.complete, [str(p) for p in report.problems]
    assert [(h.position, h.country, h.outcome) for h in report.hops] == [
        (1, "AUT", Outcome.FORWARDED),
        (2, "DEU", Outcome.FORWARDED),
        (3, "ITA", Outcome.END_OF_CHAIN),
    ]
    assert all(hop.verified for hop in report.hops)
    assert report.hops[2].details == {"party": "party 3", "date": "2019-05-02"}
    assert (report.trace_id, report.originator, report.next_hop) == (TRACE_ID, "FRA", None)
    shown = report.to_json()
    assert shown["valid"] is True and shown["problems"] == []
    assert shown["hops"][0]["received_at"] == "2026-01-01T00:00:10+00:00"


def test_a_chain_in_flight_says_who_signs_next() -> None:
    two = build(DEFAULT_HOPS[:2])
    report = check(two)
    assert report.valid and not report.complete
    assert report.next_hop == NextHop(3, "ITA", digest(two.receipts[-1]))
    pending = check(build((("AUT", Outcome.FORWARDED, "DEU"), ("DEU", None, None))))
    assert pending.valid and not pending.complete and pending.next_hop is None
    assert pending.hops[-1].outcome is None


def _resign_statement(receipt: bytes, **changes: object) -> bytes:
    """The receipt with its statement changed and its old signature kept."""
    signed, statement = read(receipt, ReceiptStatement)
    changed = msgspec.structs.replace(statement, **changes)
    return msgspec.msgpack.encode(
        Signed(msgspec.msgpack.encode(changed), signed.key_id, signed.signature)
    )


def test_a_tampered_receipt_is_reported_with_its_hop_and_country() -> None:
    chain = build()
    chain.receipts[1] = _resign_statement(chain.receipts[1], answered_ms=T0 + 99_000)
    report = check(chain)
    assert not report.valid
    assert found(report) == {
        (2, "DEU", ProblemKind.BAD_SIGNATURE),
        (3, "ITA", ProblemKind.BROKEN_LINK),  # its hash changed, so the link broke
    }
    assert [h.verified for h in report.hops] == [True, False, False]
    messages = [str(p) for p in report.problems]
    assert "hop 2 (DEU): receipt: the signature does not verify under DEU's key" in messages[0]


def test_a_removed_receipt_is_reported() -> None:
    chain = build()
    del chain.receipts[1]
    report = check(chain)
    assert found(report) == {
        (3, "ITA", ProblemKind.MISSING_HOP),
        (3, "ITA", ProblemKind.BROKEN_LINK),
        (3, "ITA", ProblemKind.NOT_FOLLOWED),
        (None, None, ProblemKind.UNREFERENCED_ANSWER),  # DEU's answer, left in
    }
    assert "hop 3 (ITA): hop 2 is missing before it" in [str(p) for p in report.problems]


def test_a_removed_first_receipt_breaks_the_link_to_the_request() -> None:
    chain = build()
    del chain.receipts[0], chain.answers[0]
    assert found(check(chain)) == {
        (2, "DEU", ProblemKind.MISSING_HOP),
        (2, "DEU", ProblemKind.BROKEN_LINK),
    }


def test_a_receipt_signed_by_the_wrong_country() -> None:
    """ITA signs DEU's receipt (with ITA's key, so under its own key id)."""
    report = check(build(signers={2: KEYS["ITA"]}))
    assert [(p.position, p.country, p.kind) for p in report.problems] == [
        (2, "DEU", ProblemKind.WRONG_SIGNER),  # the receipt
        (2, "DEU", ProblemKind.WRONG_SIGNER),  # and its answer
    ]
    assert str(report.problems[0]).startswith(
        "hop 2 (DEU): receipt: not signed by a key of DEU valid at that time (key id "
    )


def test_a_hop_that_is_not_the_country_named_by_the_forward() -> None:
    hops = (("AUT", Outcome.FORWARDED, "DEU"), ("BEL", Outcome.END_OF_CHAIN, None))
    report = check(build(hops))
    assert found(report) == {(2, "BEL", ProblemKind.NOT_FOLLOWED)}
    assert "hop 1 (AUT) forwarded the trace to DEU, but this receipt is BEL's" in str(
        report.problems[0]
    )


def test_reordered_receipts() -> None:
    chain = build()
    chain.receipts[1], chain.receipts[2] = chain.receipts[2], chain.receipts[1]
    problems = found(check(chain))
    assert {
        (3, "ITA", ProblemKind.MISSING_HOP),
        (3, "ITA", ProblemKind.BROKEN_LINK),
        (2, "DEU", ProblemKind.OUT_OF_ORDER),
        (2, "DEU", ProblemKind.BROKEN_LINK),
    } <= problems


def test_a_duplicated_receipt() -> None:
    chain = build()
    chain.receipts.insert(2, chain.receipts[1])
    assert (2, "DEU", ProblemKind.DUPLICATE_POSITION) in found(check(chain))


def test_a_forged_answer() -> None:
    chain = build()
    chain.answers[2] = sign_answer(
        KEYS["ITA"], TRACE_ID, 3, "ITA", Outcome.END_OF_CHAIN, {"party": "someone else"}
    )
    report = check(chain)
    assert found(report) == {
        (3, "ITA", ProblemKind.ANSWER_MISMATCH),
        (None, None, ProblemKind.UNREFERENCED_ANSWER),
    }
    assert "no answer given matches the hash its receipt signed" in str(report.problems[0])


def test_an_answer_that_says_other_than_its_receipt() -> None:
    """DEU signs a receipt for an answer (its hash) that names another next country."""
    chain = build()
    forged = sign_answer(KEYS["DEU"], TRACE_ID, 2, "DEU", Outcome.FORWARDED, {}, "BEL")
    chain.receipts[1] = _resign_statement(chain.receipts[1], answer_hash=digest(forged))
    chain.receipts[1] = _resigned(chain.receipts[1])
    chain.answers[1] = forged
    assert (2, "DEU", ProblemKind.ANSWER_MISMATCH) in found(check(chain))


def _resigned(receipt: bytes, country: str = "DEU") -> bytes:
    _signed, statement = read(receipt, ReceiptStatement)
    return sign_receipt(KEYS[country], statement)


def test_times_out_of_order_allow_for_clock_skew() -> None:
    skewed = {2: (T0 + 15_000 - 60_000, T0 + 30_000)}  # 60 s before hop 1 answered
    assert check(build(times=skewed)).valid
    late = {2: (T0 + 15_000 - 301_000, T0 + 30_000)}
    assert found(check(build(times=late))) == {(2, "DEU", ProblemKind.TIMES_OUT_OF_ORDER)}
    before_request = {1: (T0 - 400_000, T0 + 5_000)}
    assert found(check(build(times=before_request))) == {(1, "AUT", ProblemKind.TIMES_OUT_OF_ORDER)}


def test_a_receipt_answered_before_it_was_received_is_never_signed() -> None:
    chain = build()
    with pytest.raises(MalformedEnvelopeError, match="answered_ms is before received_ms"):
        _resigned(_resign_statement(chain.receipts[1], answered_ms=T0 + 1))


def test_a_receipt_of_another_trace() -> None:
    other = build(trace_id=bytes(16))
    chain = build()
    chain.receipts[2], chain.answers[2] = other.receipts[2], other.answers[2]
    assert (3, "ITA", ProblemKind.WRONG_TRACE) in found(check(chain))


def test_only_the_last_hop_may_be_open() -> None:
    hops = (("AUT", Outcome.NEEDS_INFORMATION, None), ("DEU", Outcome.END_OF_CHAIN, None))
    assert (1, "AUT", ProblemKind.NOT_FINAL) in found(check(build(hops)))
    after_end = (("AUT", Outcome.NOT_FOUND, None), ("DEU", Outcome.END_OF_CHAIN, None))
    assert (2, "DEU", ProblemKind.AFTER_END) in found(check(build(after_end)))
    loop = (("AUT", Outcome.FORWARDED, "DEU"), ("DEU", Outcome.FORWARDED, "AUT"))
    assert found(check(build(loop))) == {(2, "DEU", ProblemKind.LOOP)}


def test_inconsistent_statements_are_never_signed() -> None:
    chain = build()
    with pytest.raises(MalformedEnvelopeError, match="next_country is set exactly when"):
        _resigned(_resign_statement(chain.receipts[2], next_country="BEL"), "ITA")
    with pytest.raises(MalformedEnvelopeError, match="all nil or all set"):
        _resigned(_resign_statement(chain.receipts[2], answer_hash=None), "ITA")
    with pytest.raises(MalformedEnvelopeError, match="Invalid enum value 'name'"):
        sign_answer(KEYS["ITA"], TRACE_ID, 3, "ITA", Outcome.REFUSED, {"name": "x"})
    with pytest.raises(MalformedEnvelopeError, match=r"Expected `int` <= 16"):
        sign_answer(KEYS["ITA"], TRACE_ID, 17, "ITA", Outcome.REFUSED, {})


def test_a_malformed_receipt_in_the_chain() -> None:
    chain = build()
    chain.receipts[1] = msgpack.packb([b"x", bytes(8), bytes(64)])
    problems = found(check(chain))
    assert (2, None, ProblemKind.MALFORMED) in problems


# -- key rotation ------------------------------------------------------------------------

ROTATED_AT = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)  # T0 + 60 s
GRACE = timedelta(seconds=60)


def _rotation(new: bytes | None = None) -> bytes:
    at = int(ROTATED_AT.timestamp())
    return sign_rotation(
        KEYS["DEU"], "DEU", new or public("BEL"), at, int((ROTATED_AT + GRACE).timestamp())
    )


def _rotated() -> KeyHistory:
    """DEU's key rotated at T0 + 60 s to (BEL's test key, as DEU's new one), old key until
    T0 + 120 s."""
    spans = {c: key_spans(c, public(c), []) for c in ("FRA", "AUT", "ITA")}
    return KeyHistory(spans | {"DEU": key_spans("DEU", public("DEU"), [_rotation()])})


@pytest.mark.parametrize(
    ("signer", "answered_at_s", "valid"),
    [
        ("DEU", 30, True),  # the old key before the rotation
        ("DEU", 110, True),  # ... and within its grace period
        ("DEU", 130, False),  # ... not after it
        ("BEL", 70, True),  # the new key after the rotation
        ("BEL", 50, False),  # ... not before it
    ],
)
def test_a_rotated_key_verifies_what_it_signed_while_valid(
    signer: str, answered_at_s: int, valid: bool
) -> None:
    times = {2: (T0 + 20_000, T0 + answered_at_s * 1000), 3: (T0 + 200_000, T0 + 205_000)}
    report = check(build(signers={2: KEYS[signer]}, times=times), _rotated())
    assert report.valid is valid, [str(p) for p in report.problems]
    if not valid:
        assert found(report) == {(2, "DEU", ProblemKind.WRONG_SIGNER)}


def test_a_rotation_not_signed_by_the_key_before_is_refused() -> None:
    with pytest.raises(TraceFileError, match="DEU's rotation 1: key rotation: not signed"):
        export_chain(build().request, [], [], {"DEU": (public("AUT"), [_rotation()])})


# -- the export file ---------------------------------------------------------------------


def _file(chain: Chain) -> bytes:
    keys = {c: (public(c), []) for c in ("FRA", "AUT", "ITA")}
    keys["DEU"] = (public("DEU"), [_rotation()])
    return export_chain(chain.request, chain.receipts, chain.answers, keys)


def test_an_exported_chain_verifies_without_a_node() -> None:
    times = {2: (T0 + 20_000, T0 + 70_000)}  # DEU answers with the new key
    verified = verify_file(_file(build(signers={2: KEYS["BEL"]}, times=times)))
    assert verified.report.valid and verified.report.complete
    shown = verified.to_json()
    assert shown["valid"] is True
    assert len(shown["key_fingerprints"]["DEU"]) == 2
    assert shown["key_fingerprints"]["FRA"] == [digest(public("FRA")).hex()]


def test_an_exported_chain_that_was_tampered_with_is_reported() -> None:
    chain = build()
    del chain.receipts[1]
    verified = verify_file(_file(chain))
    assert not verified.report.valid
    assert (3, "ITA", ProblemKind.MISSING_HOP) in found(verified.report)


def _fields(data: bytes) -> dict[str, object]:
    return dict(msgpack.unpackb(data))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"\xc1 not msgpack", "not a trace chain file (not msgpack)"),
        (lambda d: msgpack.packb([1, 2]), "not a trace chain file (Expected `object`"),
        (
            lambda d: msgpack.packb({k: v for k, v in _fields(d).items() if k != "keys"}),
            "missing required field `keys`",
        ),
        (lambda d: msgpack.packb(_fields(d) | {"extra": 1}), "unknown field `extra`"),
        (lambda d: msgpack.packb(_fields(d) | {"format": "x/2"}), "unknown format 'x/2'"),
        (lambda d: msgpack.packb(_fields(d) | {"receipts": ["x"]}), "Expected `bytes`, got `str`"),
        (lambda d: b"\x00" * (MAX_FILE_BYTES + 1), "larger than"),
        (
            lambda d: msgpack.packb(_fields(d) | {"receipts": [b"r"] * 17}),
            "Expected `array` of length <= 16",
        ),
        (
            lambda d: msgpack.packb(_fields(d) | {"keys": _fields(d)["keys"] * 2}),  # type: ignore[operator]
            "a country's keys are listed twice",
        ),
    ],
)
def test_a_malformed_file_is_named(mangle: object, message: str) -> None:
    data = mangle(_file(build()))  # type: ignore[operator]
    with pytest.raises(TraceFileError, match=re.escape(message)):
        verify_file(data)


def test_the_file_format_is_as_documented() -> None:
    fields = _fields(_file(build()))
    assert list(fields) == [
        "format",
        "request",
        "receipts",
        "answers",
        "keys",
        "forwards",
        "rotations",
    ]
    assert fields["format"] == FORMAT
    keys = fields["keys"]
    assert isinstance(keys, list)
    assert [k["country"] for k in keys] == ["AUT", "DEU", "FRA", "ITA"]
    assert set(keys[0]) == {"country", "key", "rotations"}


@given(st.binary(max_size=300), st.lists(st.binary(max_size=300), max_size=4))
def test_verify_chain_never_raises(request: bytes, receipts: list[bytes]) -> None:
    report = verify_chain(request, receipts, receipts, resolver())
    assert not report.valid


@given(st.binary(max_size=400))
def test_verify_file_raises_only_trace_file_errors(data: bytes) -> None:
    with contextlib.suppress(TraceFileError):
        verify_file(data)


def test_a_hop_makes_its_pending_receipt_from_the_chain_so_far() -> None:
    chain = build(DEFAULT_HOPS[:2])
    statement = pending_receipt(
        chain.request, chain.receipts, chain.answers, resolver(), "ITA", T0 + 40_000
    )
    assert (statement.position, statement.country) == (3, "ITA")
    assert statement.prev_hash == digest(chain.receipts[-1])
    chain.receipts.append(sign_receipt(KEYS["ITA"], statement))
    report = check(chain)
    assert report.valid and not report.complete
    first = pending_receipt(build(()).request, [], [], resolver(), "AUT", T0 + 1)
    assert (first.position, first.prev_hash) == (1, digest(build(()).request))


def test_a_hop_refuses_a_chain_that_is_not_for_it_or_does_not_verify() -> None:
    chain = build(DEFAULT_HOPS[:2])
    with pytest.raises(MalformedEnvelopeError, match="forwarded the trace to ITA, not to BEL"):
        pending_receipt(chain.request, chain.receipts, chain.answers, resolver(), "BEL", T0)
    done = build()
    with pytest.raises(MalformedEnvelopeError, match="did not forward the trace"):
        pending_receipt(done.request, done.receipts, done.answers, resolver(), "BEL", T0)
    del chain.receipts[0]
    with pytest.raises(MalformedEnvelopeError, match=r"does not verify: hop 2 \(DEU\): hop 1 is"):
        pending_receipt(chain.request, chain.receipts, chain.answers, resolver(), "ITA", T0)
