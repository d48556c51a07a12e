"""A hop's question in the chain (PROTOCOL.md §3.4, rule 6): a `needs_information`
receipt replaced by the hop's later answer verifies beside the chain, and each way of
forging one is reported with its hop and country."""

from __future__ import annotations

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.trace.chain import ChainReport, ProblemKind, verify_chain
from node.trace.receipts import (
    Outcome,
    ReceiptStatement,
    answered,
    read,
    sign_answer,
)
from tests.trace_chains import DEFAULT_HOPS, KEYS, TRACE_ID, Chain, build, resolver

QUESTION = "Which import marking?"


def asked(
    chain: Chain,
    position: int,
    at_ms: int | None = None,
    key: Ed25519PrivateKey | None = None,
    outcome: Outcome = Outcome.NEEDS_INFORMATION,
    **changes: object,
) -> tuple[bytes, bytes]:
    """A question hop `position` asked before its latest receipt: (receipt, answer)."""
    _s, latest = read(chain.receipts[position - 1], ReceiptStatement)
    pending = msgspec.structs.replace(
        latest, answered_ms=None, outcome=None, answer_hash=None, next_country=None, **changes
    )
    key = key or KEYS[latest.country]
    details = {"question": QUESTION} if outcome is Outcome.NEEDS_INFORMATION else {}
    answer = sign_answer(key, TRACE_ID, position, latest.country, outcome, details)
    when = at_ms if at_ms is not None else latest.received_ms + 1_000
    return answered(key, pending, when, answer), answer


def check(chain: Chain, replaced: list[bytes], answers: list[bytes]) -> ChainReport:
    return verify_chain(
        chain.request,
        chain.receipts,
        [*chain.answers, *answers],
        resolver(),
        superseded=replaced,
    )


def kinds(report: ChainReport) -> set[tuple[int | None, str | None, ProblemKind]]:
    return {(p.position, p.country, p.kind) for p in report.problems}


def test_a_replaced_question_verifies_beside_the_chain() -> None:
    chain = build()
    receipt, answer = asked(chain, 2)
    report = check(chain, [receipt], [answer])
    assert report.valid and report.complete, [str(p) for p in report.problems]
    assert [h.questions for h in report.hops] == [(), (QUESTION,), ()]
    assert report.to_json()["hops"][1]["questions"] == [QUESTION]
    # Without it, its answer is left over: the question is part of what the hop signed.
    left_over = check(chain, [], [answer])
    assert {p.kind for p in left_over.problems} == {ProblemKind.UNREFERENCED_ANSWER}


def test_each_forged_question_is_named_with_its_hop() -> None:
    chain = build()
    _s, latest = read(chain.receipts[1], ReceiptStatement)
    assert latest.answered_ms is not None
    late, late_answer = asked(chain, 2, at_ms=latest.answered_ms + 1)
    moved, moved_answer = asked(chain, 2, received_ms=latest.received_ms - 1)
    final, final_answer = asked(chain, 2, outcome=Outcome.NOT_FOUND)
    wrong, wrong_answer = asked(chain, 2, key=KEYS["BEL"])
    cases = [
        ([late], [late_answer], ProblemKind.TIMES_OUT_OF_ORDER),
        ([moved], [moved_answer], ProblemKind.BROKEN_LINK),
        ([final], [final_answer], ProblemKind.DUPLICATE_POSITION),
        ([wrong], [wrong_answer], ProblemKind.WRONG_SIGNER),
        ([late], [], ProblemKind.ANSWER_MISMATCH),
    ]
    for replaced, answers, kind in cases:
        report = check(chain, replaced, answers)
        assert (2, "DEU", kind) in kinds(report), (kind, [str(p) for p in report.problems])
    two = build(DEFAULT_HOPS[:2])
    beyond, beyond_answer = asked(chain, 3)
    report = check(two, [beyond], [beyond_answer])
    assert (3, "ITA", ProblemKind.MISSING_HOP) in kinds(report)
    report = check(chain, [b"not a receipt"], [])
    assert (None, None, ProblemKind.MALFORMED) in kinds(report)
