"""Signed trace chains built in memory, for the tests of receipts, chains and exports.

FRA asks; by default AUT forwards to DEU, DEU to ITA, and ITA ends the chain.
Every country has a fixed key; `resolver` knows them all, always valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.records.reference import load_reference
from node.trace.export import KeyHistory, KeySpan
from node.trace.receipts import (
    Outcome,
    ReceiptStatement,
    answered,
    digest,
    sign_answer,
    sign_receipt,
    sign_request,
)
from node.trace.request import TraceRequestInput, check_request, to_wire

KEYS = {
    country: Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)
    for n, country in enumerate(("FRA", "AUT", "DEU", "ITA", "BEL"), 1)
}
TRACE_ID = bytes(range(16))
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FIELDS = to_wire(
    check_request(
        TraceRequestInput(
            case_reference="FR-2026-0042",
            agency="OCRGDF",
            make="Glock",
            crime="homicide",
            recovered_at="Marseille",
            recovered_on="2025-12-20",
            serial_number="ABC123",
        ),
        load_reference(),
        date(2026, 1, 1),
    )
)
#: (country, outcome, next country) of each hop.
DEFAULT_HOPS = (
    ("AUT", Outcome.FORWARDED, "DEU"),
    ("DEU", Outcome.FORWARDED, "ITA"),
    ("ITA", Outcome.END_OF_CHAIN, None),
)


def public(country: str) -> bytes:
    """The raw public key of a country's test key."""
    return KEYS[country].public_key().public_bytes_raw()


def resolver() -> KeyHistory:
    """Every test country's one key, valid at all times."""
    return KeyHistory({c: [KeySpan(public(c), None, None)] for c in KEYS})


@dataclass
class Chain:
    """A signed request, its hops' receipts (in order) and their answers."""

    request: bytes
    receipts: list[bytes] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)


def build(
    hops: tuple[tuple[str, Outcome | None, str | None], ...] = DEFAULT_HOPS,
    signers: dict[int, Ed25519PrivateKey] | None = None,
    times: dict[int, tuple[int, int]] | None = None,
    trace_id: bytes = TRACE_ID,
) -> Chain:
    """A chain whose hop n (from 1) is signed by `signers[n]` (default: its country's key)
    at `times[n]` = (received, answered) ms (default: 10 s apart, answered after 5 s).
    An outcome None leaves the hop pending."""
    request = sign_request(KEYS["FRA"], trace_id, "FRA", T0, FIELDS)
    chain = Chain(request)
    prev = digest(request)
    for position, (country, outcome, next_country) in enumerate(hops, 1):
        key = (signers or {}).get(position, KEYS[country])
        received, at = (times or {}).get(position, (T0 + position * 10_000, 0))
        at = at or received + 5_000
        pending = ReceiptStatement(
            trace_id, position, country, prev, digest(request), received, None, None, None, None
        )
        if outcome is None:
            receipt = sign_receipt(key, pending)
        else:
            details = {"party": f"party {position}", "date": "2019-05-02"}
            answer = sign_answer(key, trace_id, position, country, outcome, details, next_country)
            receipt = answered(key, pending, at, answer)
            chain.answers.append(answer)
        chain.receipts.append(receipt)
        prev = digest(receipt)
    return chain
