"""A node's privacy budget: the ε its contributions to federation rounds may spend (pure).

Every round a node contributes to spends the round's ε from the budget of the
calendar month (UTC) in which it contributes; the month's total is at most
`monthly_epsilon` (default 1.0, `[statistics]` in the config) and one round at
most `max_epsilon`. A round that would exceed either is refused
(`budget_exhausted`, `epsilon_above_cap`), and the refusal is kept in the ledger
beside the spending, so that the ledger shows what was asked and what was given.
The ledger is stored (`StatsWork.add_ledger_entry`) in the unit of work that
queues the contribution's shares: a contribution is spent exactly when it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.stats.periods import Month

#: ε is compared with this tolerance: 0.1 spent ten times is 1.0, not 1.0000000000000002.
TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How much ε this node's contributions may spend: per calendar month, per round."""

    monthly_epsilon: float = 1.0
    max_epsilon: float = 1.0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One round this node was asked to contribute to: the ε it spent, or refused to."""

    round_id: bytes
    requester: str
    query: str
    month: str
    epsilon: float
    spent: bool
    reason: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """As `stats budget --json` lists it."""
        return {
            "round_id": self.round_id.hex(),
            "requester": self.requester,
            "query": self.query,
            "month": self.month,
            "epsilon": self.epsilon,
            "spent": self.spent,
            "reason": self.reason or None,
            "at": self.at.isoformat(),
        }


def spent_in(entries: Sequence[LedgerEntry], month: Month) -> float:
    """The ε spent in `month`."""
    return sum(e.epsilon for e in entries if e.spent and e.month == str(month))


def refusal(config: BudgetConfig, spent: float, epsilon: float) -> str | None:
    """Why a round of `epsilon` cannot be spent after `spent` this month, or None.

    `epsilon_above_cap`: more than one round may spend; `budget_exhausted`: the
    month's budget would be exceeded.
    """
    if epsilon > config.max_epsilon + TOLERANCE:
        return "epsilon_above_cap"
    if spent + epsilon > config.monthly_epsilon + TOLERANCE:
        return "budget_exhausted"
    return None


@dataclass(frozen=True, slots=True)
class Budget:
    """The ledger as `stats budget` shows it: this month's figures and every entry."""

    config: BudgetConfig
    month: Month
    entries: tuple[LedgerEntry, ...]

    @property
    def spent(self) -> float:
        """The ε spent this month."""
        return spent_in(self.entries, self.month)

    @property
    def remaining(self) -> float:
        """The ε left this month (never below 0)."""
        return max(0.0, self.config.monthly_epsilon - self.spent)

    def to_json(self) -> dict[str, Any]:
        """`stats budget --json` and `/statistics/budget.json`."""
        return {
            "month": str(self.month),
            "monthly_epsilon": self.config.monthly_epsilon,
            "max_epsilon": self.config.max_epsilon,
            "spent": round(self.spent, 9),
            "remaining": round(self.remaining, 9),
            "entries": [e.to_json() for e in self.entries],
        }
