"""An aggregator's signed sum, and the released result read from all of them (pure).

Exact bytes (docs/PROTOCOL.md §4.5.3): the statement is a msgpack array, signed with
Ed25519 as a trace's statements are (`[statement, key_id, signature]`,
`node.trace.receipts.Signed`):

    sum = ["iarms-stats-sum-v1", round_id (bin 16), requester, query, period_from,
           period_to, epsilon (float 64), aggregators [str], min_contributors,
           aggregator, contributors [str, sorted], distribution, scale (float 64),
           signed_ms, cells (bin, 8 bytes per cell) | nil, failure (str) | nil]

`cells` is the aggregator's sum of the shares of `contributors` plus its noise,
each cell modulo 2^64 (`node.stats.shares`), over `round.round_cells`; `failure`
says why there is none (fewer than k contributors, holdings missing). A result
is released when every aggregator of the round signed a sum over the same
contributors with the round's parameters: its cells are the sums added and read
as signed 64-bit integers (`shares.reveal`), so negative noisy counts stay
negative. Anyone holding the statements and the aggregators' keys can check it
again (`check_sum`, `release`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import MalformedEnvelopeError, ShareError
from node.protocol.envelope import key_id
from node.protocol.messages import Bin16
from node.stats.layout import round_cells
from node.stats.messages import MAX_BLOB_BYTES
from node.stats.noise import DISTRIBUTION, NoiseDescription, describe
from node.stats.queries import query
from node.stats.round import RoundSpec
from node.stats.shares import decode_share, encode_share, reveal
from node.trace.receipts import KeyResolver, Signed, verify

SUM_TAG = "iarms-stats-sum-v1"
_Country = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
_Text = Annotated[str, msgspec.Meta(max_length=400, pattern="^[^\\x00]*$")]


class SumStatement(
    msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True, tag=SUM_TAG
):
    """An aggregator's statement of its noisy sum (or of its failure)."""

    round_id: Bin16
    requester: _Country
    query: _Text
    period_from: _Text
    period_to: _Text
    epsilon: float
    aggregators: list[_Country]
    min_contributors: int
    aggregator: _Country
    contributors: list[_Country]
    distribution: _Text
    scale: float
    signed_ms: int
    cells: bytes | None
    failure: _Text | None

    def matches(self, spec: RoundSpec) -> bool:
        """Whether it is for the round `spec` as this node keeps it."""
        return (
            self.round_id,
            self.requester,
            self.query,
            self.period_from,
            self.period_to,
            self.epsilon,
            tuple(self.aggregators),
            self.min_contributors,
        ) == (
            spec.round_id,
            spec.requester,
            spec.query,
            str(spec.period.start),
            str(spec.period.end),
            spec.epsilon,
            spec.aggregators,
            spec.min_contributors,
        )


def statement_for(
    spec: RoundSpec,
    aggregator: str,
    contributors: Sequence[str],
    signed_ms: int,
    cells: Sequence[int] | None,
    failure: str | None,
) -> SumStatement:
    """The statement of `aggregator`'s sum (`cells`, each mod 2^64) or failure in `spec`."""
    noise = describe(spec.epsilon, query(spec.query).sensitivity, len(spec.aggregators))
    data = None if cells is None else encode_share(cells)
    return SumStatement(
        spec.round_id,
        spec.requester,
        spec.query,
        str(spec.period.start),
        str(spec.period.end),
        spec.epsilon,
        list(spec.aggregators),
        spec.min_contributors,
        aggregator,
        sorted(contributors),
        noise.distribution,
        noise.scale,
        signed_ms,
        data,
        None if failure is None else failure[:400],
    )


def sign_sum(key: Ed25519PrivateKey, statement: SumStatement) -> bytes:
    """The signed statement (`[statement, key_id, signature]`)."""
    data = msgspec.msgpack.encode(statement)
    public = key.public_key().public_bytes_raw()
    return msgspec.msgpack.encode(Signed(data, key_id(public), key.sign(data)))


def read_sum(data: bytes) -> tuple[Signed, SumStatement]:
    """A signed sum, decoded strictly but NOT verified.

    Raises:
        MalformedEnvelopeError: too large, or not a sum statement's exact shape.
    """
    if len(data) > MAX_BLOB_BYTES:
        raise MalformedEnvelopeError(f"sum: {len(data)} bytes, at most {MAX_BLOB_BYTES}")
    try:
        signed = msgspec.msgpack.decode(data, type=Signed)
        return signed, msgspec.msgpack.decode(signed.statement, type=SumStatement)
    except msgspec.DecodeError as e:
        raise MalformedEnvelopeError(f"sum: {e}") from e


def check_sum(data: bytes, keys: KeyResolver) -> SumStatement:
    """A signed sum verified under its aggregator's key valid when it was signed.

    Raises:
        MalformedEnvelopeError: not a sum statement.
        UnknownSenderError, BadSignatureError: its signature does not verify.
    """
    signed, statement = read_sum(data)
    verify(signed, statement.aggregator, statement.signed_ms, keys)
    return statement


@dataclass(frozen=True, slots=True)
class Released:
    """A round's released result: who contributed, each cell's noisy total, the noise."""

    contributors: tuple[str, ...]
    cells: tuple[tuple[str, int], ...]
    noise: NoiseDescription

    def cells_json(self) -> list[dict[str, Any]]:
        """Each cell's name, value and 95 % interval (bounds may be negative)."""
        return [
            {"name": name, "value": value, "interval": list(self.noise.interval(value))}
            for name, value in self.cells
        ]


def release(spec: RoundSpec, sums: Mapping[str, SumStatement]) -> Released | str:
    """The released result of `spec` from every aggregator's verified sum, or why none is.

    Not yet complete (an aggregator's sum missing, none failed) is the caller's to
    tell from `sums`; this says why a complete set releases nothing.
    """
    bad = [a for a, s in sums.items() if not s.matches(spec) or s.aggregator != a]
    if bad:
        return f"the sum of {', '.join(sorted(bad))} is not for this round's parameters"
    failed = [f"{a}: {s.failure}" for a, s in sorted(sums.items()) if s.cells is None]
    if failed:
        return "; ".join(failed)
    sets = {tuple(s.contributors) for s in sums.values()}
    if len(sets) != 1:
        return "the aggregators summed different contributors: " + "; ".join(
            f"{a}: {', '.join(s.contributors) or 'none'}" for a, s in sorted(sums.items())
        )
    contributors = sets.pop()
    q = query(spec.query)
    noise = describe(spec.epsilon, q.sensitivity, len(spec.aggregators))
    if any(s.distribution != DISTRIBUTION or s.scale != noise.scale for s in sums.values()):
        return f"a sum's noise is not {DISTRIBUTION} of scale {noise.scale:g}"
    if len(contributors) < spec.min_contributors:
        return f"{len(contributors)} contributors, fewer than k = {spec.min_contributors}"
    names = round_cells(q, spec.period, contributors)
    try:
        vectors = [decode_share(s.cells or b"", len(names)) for s in sums.values()]
    except ShareError as e:
        return f"a sum is not the size of this round's {len(names)} cells: {e}"
    values = reveal(vectors)
    return Released(contributors, tuple(zip(names, values, strict=True)), noise)
