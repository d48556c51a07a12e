"""The messages of traces (PROTOCOL.md §2.3's table and §3), as typed bodies.

All go through the outbox and take effect once per `delivery_id`:
- `trace.request {trace_id, position, request, receipts, answers, deadline_ms,
  delivery_id}` → `ack`: the trace for hop `position`, with the originator's
  signed request and the chain so far (each earlier hop's final receipt and
  the signed answers), and the time the hop should answer by.
- `trace.report {trace_id, items, delivery_id}` → `ack`: a hop's signed
  receipts, answers and `forward`s (or rotation statements of its key), all
  it signed of the trace in one message (at most `MAX_REPORT_ITEMS`), toward
  the originator: straight to it when the hop is its peer, else to the hop
  before, which relays it unchanged.
- `trace.reply {trace_id, position, reply, delivery_id}` → `ack`: the
  originator's signed reply to the question of hop `position`, toward that
  hop: straight to it when it is the originator's peer, else to a hop before
  it, each hop relaying it unchanged to the country it forwarded the trace to.
- `trace.forwarded {trace_id, position, delivery_id}` → `ack`: the originator
  forwarded the trace from hop `position` itself (that hop could not: no
  peering), so that hop no longer waits to; routed as `trace.reply`.
- `trace.reminder {trace_id, position, country, due_ms, delivery_id}` → `ack`:
  the originator reminds hop `position` (of `country`) that its answer was
  due at `due_ms`; routed as `trace.reply`.
All require the sender's `traces` policy.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from node.protocol.messages import NUL_FREE, Ack, Bin16, Request
from node.trace.receipts import MAX_ANSWER_BYTES, MAX_HOPS, MAX_REPLY_BYTES, MAX_REQUEST_BYTES

_Statement = Annotated[bytes, msgspec.Meta(max_length=MAX_ANSWER_BYTES)]
_Position = Annotated[int, msgspec.Meta(ge=1, le=MAX_HOPS)]
_Country = Annotated[str, msgspec.Meta(max_length=3, pattern=NUL_FREE)]
#: The last millisecond a date can hold (9999-12-31T23:59:59.999Z): a deadline beyond it
#: is refused as `malformed`, never an overflow of this node's arithmetic.
MAX_TIME_MS = 253_402_300_799_999
_Time = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME_MS)]
#: The signed items one `trace.report` carries at most: what a hop signs in one message
#: is at most its pending receipt, an answer, its final receipt and a forward.
MAX_REPORT_ITEMS = 8


class TraceRequest(Request[Ack], frozen=True, kw_only=True):
    """A trace for hop `position`, with the chain so far."""

    wire_type = "trace.request"
    once_by = "delivery_id"
    trace_id: Bin16
    position: _Position
    request: Annotated[bytes, msgspec.Meta(max_length=MAX_REQUEST_BYTES)]
    receipts: Annotated[list[_Statement], msgspec.Meta(max_length=MAX_HOPS)]
    answers: Annotated[list[_Statement], msgspec.Meta(max_length=MAX_HOPS)]
    deadline_ms: _Time
    delivery_id: Bin16


class TraceReport(Request[Ack], frozen=True, kw_only=True):
    """A hop's signed items of one message of its own (its receipt, answer, forward...),
    on their way to the originator."""

    wire_type = "trace.report"
    once_by = "delivery_id"
    trace_id: Bin16
    items: Annotated[list[_Statement], msgspec.Meta(min_length=1, max_length=MAX_REPORT_ITEMS)]
    delivery_id: Bin16


class TraceReply(Request[Ack], frozen=True, kw_only=True):
    """The originator's signed reply to hop `position`'s question, on its way to that hop."""

    wire_type = "trace.reply"
    once_by = "delivery_id"
    trace_id: Bin16
    position: _Position
    reply: Annotated[bytes, msgspec.Meta(max_length=MAX_REPLY_BYTES)]
    delivery_id: Bin16


class TraceForwarded(Request[Ack], frozen=True, kw_only=True):
    """The originator forwarded the trace from hop `position`: that hop stops waiting to."""

    wire_type = "trace.forwarded"
    once_by = "delivery_id"
    trace_id: Bin16
    position: _Position
    delivery_id: Bin16


class TraceReminder(Request[Ack], frozen=True, kw_only=True):
    """The originator's reminder to hop `position`, whose answer is overdue."""

    wire_type = "trace.reminder"
    once_by = "delivery_id"
    trace_id: Bin16
    position: _Position
    country: _Country
    due_ms: _Time
    delivery_id: Bin16
