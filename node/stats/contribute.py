"""A contributor's side of a round: count, bound, split, seal, send, spend — or refuse.

A peer's ask that this node cannot take part in at all (`ask_refusal`: an
unknown query, ε out of range, a bad period or a deadline too far) is refused as
it arrives (`RoundsService.on_ask`), the round kept as failed here and nothing
spent. `Contributor.step` runs for each round this node holds and has not
answered yet (the requester's own round included). Either way it refuses with a
stable reason kept in the round's answers (and, for the budget's reasons, in the
ledger) and sent to the requester as `stats.refused`:
- `query`: this node does not know the query;
- `epsilon_out_of_range`: ε is not from 0.01 to 100 (`noise.check_epsilon`);
- `period`: the period starts after it ends, or is longer than 600 months;
- `deadline`: the deadline is further than 30 days (and the grace) from now;
- `late`: the deadline has passed;
- `policy`: this node does not allow `statistics` for the requester;
- `aggregator`: an aggregator is not our peer allowing `statistics` with an HPKE key;
- `epsilon_above_cap`, `budget_exhausted`: the round's ε is above this node's cap per
  round, or would exceed its budget for the month (`node.stats.budget`); such a
  node still aggregates the round if it is one of its aggregators.
Otherwise it computes its vector (`Query.compute`), bounds each cell to
0..`shares.MAX_COUNT`, splits it into one additive share per aggregator
(`shares.split`), seals each to its aggregator's HPKE key bound to the round,
query, itself and that aggregator (`seal`), and, in ONE unit of work, spends the
round's ε in the ledger, queues every `stats.share` and a `stats.joined` for the
requester, and keeps its answer and audit entry: all sent and spent, or neither.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import NotFoundError, ValidationError
from node.protocol.model import Service
from node.protocol.peers import PeersService
from node.stats.budget import BudgetConfig, LedgerEntry, refusal, spent_in
from node.stats.courier import Courier
from node.stats.messages import StatsJoined, StatsRefused, StatsShare
from node.stats.noise import check_epsilon
from node.stats.periods import Month, Period
from node.stats.queries import query
from node.stats.round import GRACE, MAX_DEADLINE, RoundAnswer, RoundSpec
from node.stats.rounds_storage import StatsWork
from node.stats.seal import aggregator_key, seal_share, share_info
from node.stats.shares import MAX_COUNT, RandomBytes, split
from node.stats.storage import StatsStorage

W = TypeVar("W", bound=StatsWork)
ACTOR = "statistics"
#: The refusals that concern the budget alone: such a node still aggregates.
BUDGET_REASONS = frozenset({"budget_exhausted", "epsilon_above_cap"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why this node does not contribute: a stable reason and a sentence."""

    reason: str
    detail: str


class Contributor(Generic[W]):
    """Contributes this node's counts to the rounds it is asked to, or refuses."""

    def __init__(
        self,
        me: str,
        courier: Courier[W],
        peers: PeersService,
        counts: StatsStorage,
        budget: BudgetConfig,
        own_hpke_key: bytes,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self._me = me
        self._courier = courier
        self._peers = peers
        self._counts = counts
        self._budget = budget
        self._own_key = own_hpke_key
        self._clock = clock
        self._work = work
        self._random = random_bytes

    async def step(self, spec: RoundSpec) -> bool:
        """Contribute to the round, or refuse it; False if this node answered it before."""
        now = self._clock.now()
        refused = await self._refusal(spec, now)
        if refused is not None:
            return await self._refuse(spec, refused, now)
        q = query(spec.query)
        counts = await q.compute(self._counts, spec.period, self._me)
        vector = [min(max(value, 0), MAX_COUNT) for value in counts.values()]
        shares = split(vector, len(spec.aggregators), self._random)
        keys = await self._keys(spec)
        month = str(Month.of(now))
        async with self._work() as work:
            if any(a.country == self._me for a in await work.get_answers(spec.round_id)):
                return False
            over = refusal(
                self._budget, spent_in(await work.get_ledger(month), Month.of(now)), spec.epsilon
            )
            if over is not None:
                await self.refuse_in(work, spec, Refusal(over, self._budget_detail(over)), now)
                return True
            for aggregator, share in zip(spec.aggregators, shares, strict=True):
                info = share_info(spec.round_id, spec.query, self._me, aggregator)
                message = StatsShare(
                    round_id=spec.round_id,
                    query=spec.query,
                    period_from=str(spec.period.start),
                    period_to=str(spec.period.end),
                    sealed=seal_share(share, keys[aggregator], info),
                    delivery_id=secrets.token_bytes(16),
                )
                await self._courier.post(work, aggregator, message)
            await self._spend(work, spec, month, now)
        return True

    async def _spend(self, work: W, spec: RoundSpec, month: str, now: datetime) -> None:
        entry = LedgerEntry(
            spec.round_id, spec.requester, spec.query, month, spec.epsilon, True, "", now
        )
        await work.add_ledger_entry(entry)
        await work.add_answer(spec.round_id, RoundAnswer(self._me, True, "", ""), now)
        if spec.requester != self._me:
            joined = StatsJoined(round_id=spec.round_id, delivery_id=secrets.token_bytes(16))
            await self._courier.post(work, spec.requester, joined)
        await work.add_audit_entry(
            now,
            AuditEvent(
                ACTOR,
                "stats.contribute",
                f"stats-round/{spec.round_id.hex()}",
                {
                    "requester": spec.requester,
                    "query": spec.query,
                    "epsilon": spec.epsilon,
                    "month": month,
                },
            ),
        )

    def _budget_detail(self, reason: str) -> str:
        if reason == "epsilon_above_cap":
            return f"ε above this node's cap of {self._budget.max_epsilon:g} per round"
        return f"this node's budget of ε {self._budget.monthly_epsilon:g} for the month is spent"

    async def _keys(self, spec: RoundSpec) -> dict[str, bytes]:
        keys = {}
        for aggregator in spec.aggregators:
            if aggregator == self._me:
                keys[aggregator] = self._own_key
            else:
                keys[aggregator] = aggregator_key(await self._peers.get(aggregator))
        return keys

    async def _refusal(self, spec: RoundSpec, now: datetime) -> Refusal | None:
        """Why this node cannot contribute (the budget is checked in the unit of work)."""
        if now >= spec.deadline_at:
            return Refusal("late", "the round's deadline passed before this node could contribute")
        if spec.requester != self._me and not await self._allows(spec.requester):
            return Refusal(
                "policy", f"this node does not take part in statistics with {spec.requester}"
            )
        refused = ask_refusal(spec, now)
        if refused is not None:
            return refused
        for aggregator in spec.aggregators:
            if aggregator == self._me:
                continue
            if not await self._allows(aggregator):
                return Refusal(
                    "aggregator", f"{aggregator} is not a peer of this node allowing statistics"
                )
            try:
                aggregator_key(await self._peers.get(aggregator))
            except ValidationError:
                return Refusal("aggregator", f"{aggregator} publishes no HPKE key to this node")
        return None

    async def _allows(self, country: str) -> bool:
        try:
            return (await self._peers.get(country)).allows(Service.STATISTICS)
        except NotFoundError:
            return False

    async def _refuse(self, spec: RoundSpec, refused: Refusal, now: datetime) -> bool:
        async with self._work() as work:
            if any(a.country == self._me for a in await work.get_answers(spec.round_id)):
                return False
            await self.refuse_in(work, spec, refused, now)
        return True

    async def refuse_in(self, work: W, spec: RoundSpec, refused: Refusal, now: datetime) -> None:
        """Keep the refusal (in the ledger too, for the budget's reasons), tell the requester."""
        answer = RoundAnswer(self._me, False, refused.reason, refused.detail)
        await work.add_answer(spec.round_id, answer, now)
        if refused.reason in BUDGET_REASONS:
            month = str(Month.of(now))
            entry = LedgerEntry(
                spec.round_id,
                spec.requester,
                spec.query,
                month,
                spec.epsilon,
                False,
                refused.reason,
                now,
            )
            await work.add_ledger_entry(entry)
        if spec.requester != self._me:
            message = StatsRefused(
                round_id=spec.round_id,
                reason=refused.reason,
                detail=refused.detail,
                delivery_id=secrets.token_bytes(16),
            )
            await self._courier.post(work, spec.requester, message)
        await work.add_audit_entry(
            now,
            AuditEvent(
                ACTOR,
                "stats.refuse",
                f"stats-round/{spec.round_id.hex()}",
                {"requester": spec.requester, "reason": refused.reason, "epsilon": spec.epsilon},
            ),
        )


def ask_refusal(spec: RoundSpec, now: datetime) -> Refusal | None:
    """Why no node can take part in the round `spec` at all, or None (pure).

    What a peer's `stats.ask` carries is checked here beyond its wire type (which
    bounds the aggregators, 2 to 16, and k, 2 and up): a round with an unknown query
    or ε below 0.01 could never be summed nor described, and would fail every step.
    """
    try:
        query(spec.query)
    except ValidationError:
        return Refusal("query", f"this node does not know the query {spec.query!r}")
    try:
        check_epsilon(spec.epsilon)
    except ValidationError as e:
        return Refusal("epsilon_out_of_range", str(e))
    try:
        Period.resolve(str(spec.period.start), str(spec.period.end), now.date())
    except ValidationError as e:
        return Refusal("period", f"period {e}")
    if spec.deadline_at > now + MAX_DEADLINE + GRACE:
        return Refusal(
            "deadline",
            f"the deadline {spec.deadline_at:%Y-%m-%d %H:%M} UTC is more than "
            f"{MAX_DEADLINE.days} days away",
        )
    return None
