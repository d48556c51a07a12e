"""The messages of statistics rounds (PROTOCOL.md §2.3's table and §4.5), as typed bodies.

All go through the outbox and take effect once per `delivery_id`:
- `stats.ask` (requester → each peer it allows `statistics`): a round, its query,
  period, ε, aggregators, k and deadline; the receiver contributes or refuses.
- `stats.refused` (contributor → requester): why it does not contribute.
- `stats.joined` (contributor → requester): it sent its shares.
- `stats.close` (requester → aggregators): every node asked has answered; those
  that joined: an aggregator holding all their shares need not wait for the deadline.
- `stats.share` (contributor → each aggregator): its share, sealed with HPKE to it.
- `stats.holding` (aggregator → the other aggregators): the contributors whose
  shares it holds, once, when it stops taking shares.
- `stats.sum` (aggregator → requester and contributors): its signed noisy sum
  over the agreed contributors, or why there is none (`node.stats.result`).
All but `stats.ask` require the sender's `statistics` policy; a node whose policy
does not allow the requester answers an ask with `stats.refused` (`policy`), so
that the requester records the refusal.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from node.protocol.messages import MAX_TEXT, NUL_FREE, Ack, Bin16, Request
from node.stats.shares import MAX_AGGREGATORS, MAX_CONTRIBUTORS

#: The largest sealed share or signed sum a message carries (a 1 MiB envelope holds it).
MAX_BLOB_BYTES = 900 * 1024
# Strings take any text but NUL here (the kernel's rule); their form is checked by the
# handlers, which refuse what they cannot use with a specific message.
_Country = Annotated[str, msgspec.Meta(max_length=3, pattern=NUL_FREE)]
_Query = Annotated[str, msgspec.Meta(max_length=28, pattern=NUL_FREE)]
_Month = Annotated[str, msgspec.Meta(max_length=7, pattern=NUL_FREE)]
_Reason = Annotated[str, msgspec.Meta(max_length=32, pattern=NUL_FREE)]
_Detail = Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=NUL_FREE)]
_Blob = Annotated[bytes, msgspec.Meta(max_length=MAX_BLOB_BYTES)]
_Time = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)]
_Epsilon = Annotated[float, msgspec.Meta(gt=0, le=100)]
_Aggregators = Annotated[list[_Country], msgspec.Meta(min_length=2, max_length=MAX_AGGREGATORS)]
_Contributors = Annotated[list[_Country], msgspec.Meta(max_length=MAX_CONTRIBUTORS)]
_K = Annotated[int, msgspec.Meta(ge=2, le=MAX_CONTRIBUTORS)]


class StatsAsk(Request[Ack], frozen=True, kw_only=True):
    """A round: contribute to it, or refuse."""

    wire_type = "stats.ask"
    once_by = "delivery_id"
    round_id: Bin16
    query: _Query
    period_from: _Month
    period_to: _Month
    epsilon: _Epsilon
    aggregators: _Aggregators
    min_contributors: _K
    deadline_ms: _Time
    delivery_id: Bin16


class StatsRefused(Request[Ack], frozen=True, kw_only=True):
    """A contributor's refusal, with its stable reason and a sentence saying why."""

    wire_type = "stats.refused"
    once_by = "delivery_id"
    round_id: Bin16
    reason: _Reason
    detail: _Detail
    delivery_id: Bin16


class StatsJoined(Request[Ack], frozen=True, kw_only=True):
    """A contributor sent its shares to the aggregators."""

    wire_type = "stats.joined"
    once_by = "delivery_id"
    round_id: Bin16
    delivery_id: Bin16


class StatsClose(Request[Ack], frozen=True, kw_only=True):
    """Every node asked has answered; `joined` are those that contribute."""

    wire_type = "stats.close"
    once_by = "delivery_id"
    round_id: Bin16
    joined: _Contributors
    delivery_id: Bin16


class StatsShare(Request[Ack], frozen=True, kw_only=True):
    """A contributor's share for the receiving aggregator, sealed to its HPKE key."""

    wire_type = "stats.share"
    once_by = "delivery_id"
    round_id: Bin16
    query: _Query
    period_from: _Month
    period_to: _Month
    sealed: _Blob
    delivery_id: Bin16


class StatsHolding(Request[Ack], frozen=True, kw_only=True):
    """The contributors whose shares an aggregator holds (sorted), fixed once sent."""

    wire_type = "stats.holding"
    once_by = "delivery_id"
    round_id: Bin16
    contributors: _Contributors
    delivery_id: Bin16


class StatsSum(Request[Ack], frozen=True, kw_only=True):
    """An aggregator's signed statement: its noisy sum, or why there is none."""

    wire_type = "stats.sum"
    once_by = "delivery_id"
    round_id: Bin16
    result: _Blob
    delivery_id: Bin16
