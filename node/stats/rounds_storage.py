"""What statistics rounds need stored: `typing.Protocol`s that `node.store.rounds`
implements (`RoundsStore` for reads, and `node.store.work.StoreWork` for what the
rounds write in their unit of work, all or nothing with the messages they queue)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from node.protocol.storage import UnitOfWork
from node.stats.budget import LedgerEntry
from node.stats.round import HeldShare, RoundAnswer, RoundStatus, StoredRound


class RoundsReader(Protocol):
    """The reads of a round's rows, in a unit of work or on their own."""

    async def get_round(self, round_id: bytes) -> StoredRound | None:
        """The round, or None if this node does not know it."""
        ...

    async def get_answers(self, round_id: bytes) -> list[RoundAnswer]:
        """The answers this node knows of (the requester: all; a contributor: its own)."""
        ...

    async def get_shares(self, round_id: bytes) -> list[HeldShare]:
        """The shares this node holds as an aggregator, by contributor."""
        ...

    async def count_early(self, sender: str) -> int:
        """How many shares and holdings from `sender` are held for rounds this node does not
        know (they may come before the round's ask)."""
        ...

    async def get_holdings(self, round_id: bytes) -> dict[str, tuple[str, ...]]:
        """Each aggregator's holding this node has (its own included)."""
        ...

    async def get_sums(self, round_id: bytes) -> dict[str, bytes]:
        """Each aggregator's signed sum this node has (its own included)."""
        ...

    async def get_ledger(self, month: str | None = None) -> list[LedgerEntry]:
        """The budget's entries (of `month`, if given), oldest first."""
        ...


class StatsWork(UnitOfWork, RoundsReader, Protocol):
    """What rounds write (and read back) in their unit of work; each `add_` is False when
    the row was there already (the round, the answer, the share... is taken once)."""

    async def add_round(self, round_: StoredRound) -> bool:
        """Store a round."""
        ...

    async def set_round(self, round_id: bytes, status: RoundStatus, reason: str) -> bool:
        """Close a round still collecting (released or failed); False if it was not."""
        ...

    async def set_closed(self, round_id: bytes, joined: Sequence[str]) -> bool:
        """Keep the contributors of the requester's `stats.close`; False if kept before."""
        ...

    async def add_answer(self, round_id: bytes, answer: RoundAnswer, at: datetime) -> bool:
        """Keep a party's answer."""
        ...

    async def add_share(self, round_id: bytes, share: HeldShare, at: datetime) -> bool:
        """Keep a contributor's sealed share (its first only)."""
        ...

    async def add_holding(
        self, round_id: bytes, aggregator: str, contributors: Sequence[str], at: datetime
    ) -> bool:
        """Keep an aggregator's holding."""
        ...

    async def add_sum(
        self, round_id: bytes, aggregator: str, statement: bytes, at: datetime
    ) -> bool:
        """Keep an aggregator's signed sum."""
        ...

    async def add_ledger_entry(self, entry: LedgerEntry) -> bool:
        """Keep the budget's entry of a round (one per round)."""
        ...


class RoundsStorage(RoundsReader, Protocol):
    """The rounds read outside a unit of work."""

    async def list_rounds(self, status: RoundStatus | None = None) -> list[StoredRound]:
        """Rounds, newest first (of `status`, if given)."""
        ...
