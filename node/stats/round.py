"""A statistics round as every party keeps it, and the rules on its parameters (pure).

A round is named by 16 random bytes, chosen by its requester. Each party stores
the round's parameters (`RoundSpec`, from the requester's `stats.ask`) and where
it stands (`StoredRound`); what happened in it is stored as rows of its own
(answers, shares, holdings, sums: `node.stats.storage`), so that a restarted
node carries on from them.

Times: an aggregator stops taking shares at the deadline (or earlier, on the
requester's `stats.close`, once it holds the share of every contributor that
joined); it waits for the other aggregators' holdings until `deadline + GRACE`,
then sends a failed sum naming those it lacks; the parties wait for the sums
until `deadline + 2 × GRACE`, then the round fails naming the aggregators missing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from node.countries import check_alpha3
from node.errors import MalformedEnvelopeError, ValidationError
from node.stats.periods import Period
from node.stats.shares import MAX_AGGREGATORS, MAX_CONTRIBUTORS

#: How long after the deadline aggregators wait for each other's holdings, and (twice
#: it) the parties for the sums: long enough for the outbox's first retries.
GRACE = timedelta(minutes=5)
#: The default and the bounds of a round's deadline, from its start.
DEFAULT_DEADLINE = timedelta(minutes=10)
MIN_DEADLINE, MAX_DEADLINE = timedelta(seconds=10), timedelta(days=30)
DEFAULT_MIN_CONTRIBUTORS = 3
_DURATION = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class RoundStatus(enum.StrEnum):
    """Where a round stands: `collecting` until released or failed."""

    COLLECTING = "collecting"
    RELEASED = "released"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RoundSpec:
    """A round's parameters, as its requester asked them."""

    round_id: bytes
    requester: str
    query: str
    period: Period
    epsilon: float
    aggregators: tuple[str, ...]
    min_contributors: int
    deadline_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The parameters as `stats round show --json` gives them."""
        return {
            "round_id": self.round_id.hex(),
            "requester": self.requester,
            "query": self.query,
            "period": self.period.to_json(),
            "epsilon": self.epsilon,
            "aggregators": list(self.aggregators),
            "min_contributors": self.min_contributors,
            "deadline_at": self.deadline_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class StoredRound:
    """A round as this node keeps it.

    `asked`: the peers the requester asked (at the requester; empty elsewhere).
    `closed`: the contributors the requester's `stats.close` named (None: none came,
    or it was not sent yet).
    """

    spec: RoundSpec
    created_at: datetime
    status: RoundStatus
    reason: str
    asked: tuple[str, ...]
    closed: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class RoundAnswer:
    """A party's answer to a round: it joined, or refused with a reason."""

    country: str
    joined: bool
    reason: str
    detail: str

    def to_json(self) -> dict[str, str]:
        """A refusal as `refused` lists it."""
        return {"country": self.country, "reason": self.reason, "detail": self.detail}


def parse_deadline(text: str) -> timedelta:
    """A deadline from now: `90s`, `10m`, `2h`, `1d` (10 s to 30 days).

    Raises:
        ValidationError: naming the field `deadline`.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValidationError(
            f"deadline: a number and a unit, s, m, h or d (as 10m), not {text!r}", "deadline"
        )
    span = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if not MIN_DEADLINE <= span <= MAX_DEADLINE:
        raise ValidationError(f"deadline: from 10s to 30d, got {text}", "deadline")
    return span


def parse_aggregators(value: str | Sequence[str]) -> tuple[str, ...]:
    """Aggregator countries from `DEU,FRA` (or a list): 2 to 16 distinct alpha-3 codes.

    Raises:
        ValidationError: naming the field `aggregators`.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    codes = [p.strip().upper() for p in parts if p.strip()]
    for code in codes:
        check_alpha3(code, "aggregators")
    if len(set(codes)) != len(codes):
        raise ValidationError("aggregators: a country is named twice", "aggregators")
    if not 2 <= len(codes) <= MAX_AGGREGATORS:
        raise ValidationError(
            f"aggregators: 2 to {MAX_AGGREGATORS} countries (the shares of a count are "
            f"split between them), got {len(codes)}",
            "aggregators",
        )
    return tuple(codes)


def check_min_contributors(k: int) -> int:
    """k as a round takes it: 2 at least (one contributor's total would be its own figure).

    Raises:
        ValidationError: naming the field `min_contributors`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_CONTRIBUTORS:
        raise ValidationError(
            f"min_contributors: a whole number from 2 to {MAX_CONTRIBUTORS}, got {k!r}",
            "min_contributors",
        )
    return k


@dataclass(frozen=True, slots=True)
class HeldShare:
    """A contributor's sealed share as its aggregator keeps it, with the query and period
    its message named (a share for other ones is never summed)."""

    contributor: str
    query: str
    period_from: str
    period_to: str
    sealed: bytes

    def fits(self, spec: RoundSpec) -> bool:
        """Whether it was sent for `spec`'s query and period."""
        return (self.query, self.period_from, self.period_to) == (
            spec.query,
            str(spec.period.start),
            str(spec.period.end),
        )


def check_countries(values: Sequence[str], field: str) -> list[str]:
    """`values`, each an ISO 3166-1 alpha-3 code, sorted and each once (as a holding or a
    `stats.close` lists them).

    Raises:
        MalformedEnvelopeError: naming the field.
    """
    try:
        for value in values:
            check_alpha3(value, field)
    except ValidationError as e:
        raise MalformedEnvelopeError(f"$.{field}: {e}") from e
    if sorted(set(values)) != list(values):
        raise MalformedEnvelopeError(f"$.{field}: sorted, each country once")
    return list(values)
