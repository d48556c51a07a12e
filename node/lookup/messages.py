"""The messages of private lookups (PROTOCOL.md §2.3), as typed bodies.

The querier builds them and the owner decodes them with the kernel's one
decoder (`node.protocol.messages.decode`), so their shape is written here
only; PROTOCOL.md's message table is checked against these classes.

- `index.get {since}` → `index {version, documents}`
- `lookup.evaluate {elements}` → `lookup.evaluated {elements, proof, index_version, allowance}`
- `lookup.confirm {lookup_id, output, make, case_reference}` →
  `lookup.confirmed {records, make_agrees, details}`: takes effect once per
  lookup id; a repeat is refused (`already_confirmed`).
- `hit.notice {lookup_id, output, make, case_reference, delivery_id}` → `ack`:
  through the outbox; takes effect once per lookup id (its confirmation and
  it count once) and is acknowledged however often it arrives.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from node.errors import LookupIdUsedError
from node.protocol.messages import Ack, Answer, Bin16, Bin32, Bin64, Message, Request, Str, Text

#: Blinded elements in one `lookup.evaluate`.
MAX_ELEMENTS = 10_000
#: The most records a confirmation may name.
MAX_RECORDS = 100


class Index(Answer, frozen=True, kw_only=True):
    """The owner's newest index version and the documents a peer needs to reach it."""

    wire_type = "index"
    version: int
    documents: list[bytes]


class IndexGet(Request[Index], frozen=True, kw_only=True):
    """The owner's membership index since the version the querier holds (nil: none)."""

    wire_type = "index.get"
    since: int | None


class LookupEvaluated(Answer, frozen=True, kw_only=True):
    """The evaluated elements in the request's order, one batched DLEQ proof, the
    owner's index version and how many more evaluations the querier may ask for now."""

    wire_type = "lookup.evaluated"
    elements: list[Bin32]
    proof: Bin64
    index_version: int
    allowance: int


class LookupEvaluate(Request[LookupEvaluated], frozen=True, kw_only=True):
    """1 to `MAX_ELEMENTS` blinded elements to evaluate."""

    wire_type = "lookup.evaluate"
    elements: Annotated[list[Bin32], msgspec.Meta(min_length=1, max_length=MAX_ELEMENTS)]


class LookupConfirmed(Answer, frozen=True, kw_only=True):
    """The owner's records with this output (newest first), whether the make agrees
    (nil without details or without a make), and whether details were applied."""

    wire_type = "lookup.confirmed"
    records: Annotated[list[dict[Str, Str]], msgspec.Meta(max_length=MAX_RECORDS)]
    make_agrees: bool | None
    details: bool


class Confirmation(Message, frozen=True, kw_only=True):
    """What a confirmation and a hit notice both say: which lookup, of which OPRF
    output, with the make as the officer read it and the querier's case reference."""

    lookup_id: Bin16
    output: Bin64
    make: Text
    case_reference: Text


class LookupConfirm(Confirmation, Request[LookupConfirmed], frozen=True, kw_only=True):
    """Which of the owner's records have this output? Confirmed once per lookup id."""

    wire_type = "lookup.confirm"
    once_by = "lookup_id"
    refuse_repeat = LookupIdUsedError


class HitNotice(Confirmation, Request[Ack], frozen=True, kw_only=True):
    """The durable notice of a hit whose confirmation could not be delivered."""

    wire_type = "hit.notice"
    once_by = "lookup_id"
    delivery_id: Bin16
