"""A round as `stats round show` and the console give it (pure)."""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from typing import Any

from node.errors import MalformedEnvelopeError, ValidationError
from node.stats.noise import NoiseDescription, describe
from node.stats.queries import query
from node.stats.result import Released, SumStatement, read_sum
from node.stats.round import RoundAnswer, RoundStatus, StoredRound
from node.trace.receipts import Signed


@dataclass(frozen=True, slots=True)
class SumCheck:
    """An aggregator's stored sum, verified again: whether it holds, and why not; `signed`,
    the signed statement exactly as the aggregator sent it (`stats.sum`'s `result`)."""

    aggregator: str
    verified: bool
    problem: str
    statement: SumStatement | None
    signed: bytes

    def to_json(self) -> dict[str, Any]:
        """As `signatures` lists it: with the signed bytes, so that anyone holding the
        aggregator's key can verify it again (PROTOCOL.md §4.5.3): `statement` (base64,
        the exact bytes signed), `key_id` and `signature` (hex, Ed25519), and `signed`
        (base64, the whole `[statement, key_id, signature]`); null where unreadable."""
        s = self.statement
        try:
            parts: Signed | None = read_sum(self.signed)[0]
        except MalformedEnvelopeError:
            parts = None
        return {
            "aggregator": self.aggregator,
            "verified": self.verified,
            "problem": self.problem or None,
            "contributors": None if s is None else list(s.contributors),
            "failure": None if s is None else s.failure,
            "statement": None if parts is None else b64encode(parts.statement).decode(),
            "key_id": None if parts is None else parts.key_id.hex(),
            "signature": None if parts is None else parts.signature.hex(),
            "signed": b64encode(self.signed).decode(),
        }


@dataclass(frozen=True, slots=True)
class RoundView:
    """A round, its answers, its sums as verified, and its released result (if any)."""

    round: StoredRound
    answers: tuple[RoundAnswer, ...]
    sums: tuple[SumCheck, ...]
    result: Released | None

    @property
    def status(self) -> RoundStatus:
        """`collecting`, `released` or `failed`."""
        return self.round.status

    @property
    def verified(self) -> bool:
        """A released result whose every aggregator's signature verifies (and adds up)."""
        return self.result is not None and all(c.verified for c in self.sums)

    @property
    def contributors(self) -> tuple[str, ...]:
        """Those whose counts are in the result; before it, those known to have joined."""
        if self.result is not None:
            return self.result.contributors
        return tuple(sorted(a.country for a in self.answers if a.joined))

    @property
    def refused(self) -> tuple[RoundAnswer, ...]:
        """The refusals this node knows of."""
        return tuple(a for a in self.answers if not a.joined)

    @property
    def noise(self) -> NoiseDescription | None:
        """The noise of the round's result; None for a round refused here because no
        result of it could be described (an unknown query, ε out of range)."""
        spec = self.round.spec
        try:
            return describe(spec.epsilon, query(spec.query).sensitivity, len(spec.aggregators))
        except ValidationError:
            return None

    def to_json(self) -> dict[str, Any]:
        """`stats round show --json` and `/statistics/rounds/ID.json`."""
        spec = self.round.spec
        return spec.to_json() | {
            "status": self.status.value,
            "reason": self.round.reason or None,
            "created_at": self.round.created_at.isoformat(),
            "asked": list(self.round.asked),
            "contributors": list(self.contributors),
            "refused": [a.to_json() for a in self.refused],
            "noise": None if self.noise is None else self.noise.to_json(),
            "cells": [] if self.result is None else self.result.cells_json(),
            "signatures": [c.to_json() for c in self.sums],
            "verified": self.verified,
        }


def summary(stored: StoredRound) -> dict[str, Any]:
    """A round as `stats round list --json` gives it."""
    return stored.spec.to_json() | {
        "status": stored.status.value,
        "reason": stored.reason or None,
        "created_at": stored.created_at.isoformat(),
    }
