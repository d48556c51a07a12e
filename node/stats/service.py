"""Statistics rounds, carried by the running node: start, list, show, the budget; the
requester's side and the release.

`RoundsService.start` checks an analyst's round (the query, the period, ε within
this node's cap, 2 to 16 aggregators each ourselves or a peer allowing
`statistics` with an HPKE key, k ≥ 2, a deadline), stores it and asks every peer
it allows `statistics` (`stats.ask`), in one unit of work with its audit entry.
Everything after happens in `tick`, run by the node on its clock (`run`: at each
message that concerns a round, and at the round's next deadline) for every round
still collecting, from the stored rows alone, so a restarted node carries on:
1. this node contributes or refuses (`node.stats.contribute`);
2. as requester, once every node asked has answered, it tells the aggregators
   who joined (`stats.close`), so that they need not wait for the deadline;
3. as aggregator, it fixes its holding and signs its sum (`node.stats.aggregate`);
4. it releases the round once it holds every aggregator's sum, verified, over
   the same contributors (`node.stats.result.release`): `released`, or `failed`
   saying why; an aggregator's failure, or its refusal, fails the round at once;
   a sum still missing at `deadline + 2 × GRACE` fails it naming the aggregator.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import MalformedEnvelopeError, NotFoundError, ProtocolError, ValidationError
from node.protocol.delivery import DeliveryService
from node.protocol.dispatch import Dispatcher
from node.protocol.envelope import from_ms, to_ms
from node.protocol.model import Service
from node.protocol.peers import PeersService
from node.protocol.ratelimit import RateLimitConfig
from node.stats.aggregate import Aggregator
from node.stats.budget import Budget, BudgetConfig
from node.stats.contribute import ACTOR, BUDGET_REASONS, Contributor, ask_refusal
from node.stats.courier import STATS_LIMIT, Courier
from node.stats.messages import StatsAsk, StatsClose, StatsJoined, StatsRefused, StatsSum
from node.stats.noise import NoiseSource, check_epsilon, load_sampler
from node.stats.periods import Month, Period
from node.stats.queries import query
from node.stats.result import Released, check_sum, release
from node.stats.round import (
    DEFAULT_DEADLINE,
    DEFAULT_MIN_CONTRIBUTORS,
    GRACE,
    RoundAnswer,
    RoundSpec,
    RoundStatus,
    StoredRound,
    check_min_contributors,
    parse_aggregators,
)
from node.stats.rounds_storage import RoundsReader, RoundsStorage, StatsWork
from node.stats.seal import aggregator_key
from node.stats.storage import StatsStorage
from node.stats.view import RoundView, SumCheck

log = logging.getLogger(__name__)
W = TypeVar("W", bound=StatsWork)
#: The longest the carrier sleeps between looks at its rounds (a round started on the
#: command line, in another process, is taken up within this).
POLL_S = 5.0


@dataclass(frozen=True, slots=True)
class RoundRequest:
    """What an analyst asks for (the command line's and the console's form's fields)."""

    query: str
    epsilon: float
    aggregators: str
    min_contributors: int = DEFAULT_MIN_CONTRIBUTORS
    deadline: timedelta = DEFAULT_DEADLINE
    start: str | None = None
    end: str | None = None


class RoundsService(Generic[W]):
    """The rounds this node requests, contributes to and aggregates."""

    def __init__(
        self,
        me: str,
        signing_key: Ed25519PrivateKey,
        hpke_key: X25519PrivateKey,
        peers: PeersService,
        delivery: DeliveryService,
        store: RoundsStorage,
        counts: StatsStorage,
        budget: BudgetConfig,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        noise: NoiseSource | None = None,
        limit: RateLimitConfig = STATS_LIMIT,
    ) -> None:
        self._me = me
        self._peers = peers
        self._store = store
        self._budget = budget
        self._clock = clock
        self._work = work
        self._noise = noise
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._courier: Courier[W] = Courier(me, delivery, self.wake.set, clock, limit)
        own = hpke_key.public_key().public_bytes_raw()
        self._contributor = Contributor(me, self._courier, peers, counts, budget, own, clock, work)
        self._aggregator = Aggregator(
            me, self._courier, signing_key, hpke_key, store, clock, work, noise
        )
        self._courier.handle(StatsAsk, self.on_ask, policy=False)
        self._courier.handle(StatsRefused, self.on_answer)
        self._courier.handle(StatsJoined, self.on_answer)
        self._courier.handle(StatsSum, self.on_sum)

    def register(self, dispatcher: Dispatcher[W]) -> None:
        """Give `dispatcher` the round messages and their handlers."""
        self._courier.register(dispatcher)

    # -- the analyst's side -------------------------------------------------------------

    async def start(self, request: RoundRequest, actor: str) -> StoredRound:
        """Start a round and ask the peers.

        Raises:
            ValidationError: naming the field: an unknown query, a bad period, ε out of
                range or above this node's cap, fewer than 2 aggregators or one that is
                not usable, k below 2, a deadline out of range.
        """
        q = query(request.query)
        now = self._clock.now()
        period = Period.resolve(request.start, request.end, now.date())
        epsilon = check_epsilon(request.epsilon, self._budget.max_epsilon)
        aggregators = parse_aggregators(request.aggregators)
        k = check_min_contributors(request.min_contributors)
        await self._check_aggregators(aggregators)
        asked = sorted(
            p.country for p in await self._peers.list_peers() if p.allows(Service.STATISTICS)
        )
        deadline = from_ms(to_ms(now + request.deadline))  # as the peers read it
        spec = RoundSpec(
            os.urandom(16), self._me, q.name, period, epsilon, aggregators, k, deadline
        )
        stored = StoredRound(spec, now, RoundStatus.COLLECTING, "", tuple(asked), None)
        async with self._work() as work:
            await work.add_round(stored)
            for country in asked:
                await self._courier.post(work, country, ask_of(spec))
            await work.add_audit_entry(
                now,
                AuditEvent(
                    actor,
                    "stats.start",
                    f"stats-round/{spec.round_id.hex()}",
                    spec.to_json() | {"asked": asked},
                ),
            )
            work.after_commit(self.wake.set)
        return stored

    async def _check_aggregators(self, aggregators: tuple[str, ...]) -> None:
        for country in aggregators:
            if country == self._me:
                continue
            try:
                peer = await self._peers.get(country)
            except NotFoundError:
                raise ValidationError(
                    f"aggregators: {country} is not a peer of this node", "aggregators"
                ) from None
            if not peer.allows(Service.STATISTICS):
                raise ValidationError(
                    f"aggregators: this node's policy does not allow statistics with {country} "
                    f"(iarms-node peers policy {country} --allow ...,statistics)",
                    "aggregators",
                )
            aggregator_key(peer)

    async def listing(self) -> list[StoredRound]:
        """Every round this node keeps, newest first."""
        return await self._store.list_rounds()

    async def show(self, round_id: bytes) -> RoundView:
        """A round as `stats round show` gives it, its sums verified again.

        Raises:
            NotFoundError: no such round here.
        """
        stored = await self._store.get_round(round_id)
        if stored is None:
            raise NotFoundError(f"no statistics round {round_id.hex()} here")
        answers = await self._store.get_answers(round_id)
        checks, verified = await self._checked_sums(stored)
        outcome = None
        if stored.status is RoundStatus.RELEASED and set(verified) == set(stored.spec.aggregators):
            outcome = release(stored.spec, verified)
        return RoundView(
            stored,
            tuple(answers),
            tuple(checks),
            outcome if isinstance(outcome, Released) else None,
        )

    async def budget(self) -> Budget:
        """This node's privacy budget: this month's figures and the whole ledger."""
        return await read_budget(self._store, self._budget, self._clock.now())

    # -- messages ------------------------------------------------------------------------

    async def on_ask(self, message: StatsAsk, sender: str, work: W) -> None:
        """Keep the round asked by `sender`; `tick` contributes or refuses. A round no
        node could take part in (`ask_refusal`) is refused at once, kept as failed here:
        nothing stored for `tick`, nothing spent, the requester told why."""
        try:
            period = Period(
                Month.parse(message.period_from, "period_from"),
                Month.parse(message.period_to, "period_to"),
            )
            aggregators = parse_aggregators(message.aggregators)
        except ValidationError as e:
            raise MalformedEnvelopeError(f"stats.ask body: {e}") from e
        spec = RoundSpec(
            message.round_id,
            sender,
            message.query,
            period,
            message.epsilon,
            aggregators,
            message.min_contributors,
            from_ms(message.deadline_ms),
        )
        known = await work.get_round(message.round_id)
        if known is not None and known.spec != spec:
            raise ProtocolError(
                f"round {message.round_id.hex()} is known here with other parameters"
            )
        now = self._clock.now()
        refused = ask_refusal(spec, now)
        if refused is None:
            await work.add_round(StoredRound(spec, now, RoundStatus.COLLECTING, "", (), None))
            return
        reason = f"refused here ({refused.reason}): {refused.detail}"
        if await work.add_round(StoredRound(spec, now, RoundStatus.FAILED, reason, (), None)):
            await self._contributor.refuse_in(work, spec, refused, now)

    async def on_answer(self, message: StatsRefused | StatsJoined, sender: str, work: W) -> None:
        """Keep a contributor's answer to a round we requested."""
        stored = await work.get_round(message.round_id)
        if stored is None or stored.spec.requester != self._me:
            raise ProtocolError(f"this node requested no round {message.round_id.hex()}")
        if isinstance(message, StatsRefused):
            answer = RoundAnswer(sender, False, message.reason, message.detail)
        else:
            answer = RoundAnswer(sender, True, "", "")
        await work.add_answer(message.round_id, answer, self._clock.now())

    async def on_sum(self, message: StatsSum, sender: str, work: W) -> None:
        """Keep an aggregator's signed sum, verified, of a round we take part in."""
        stored = await work.get_round(message.round_id)
        if stored is None or sender not in stored.spec.aggregators:
            raise ProtocolError(f"{sender} aggregates no round {message.round_id.hex()} here")
        statement = check_sum(message.result, await self._peers.key_history())
        if statement.aggregator != sender or not statement.matches(stored.spec):
            raise MalformedEnvelopeError("$.result: not the sender's sum of this round")
        await work.add_sum(message.round_id, sender, message.result, self._clock.now())

    # -- carrying the rounds -------------------------------------------------------------

    async def tick(self) -> int:
        """Move every round still collecting as far as it can go now; how many steps."""
        async with self._lock:
            steps = 0
            for stored in await self._store.list_rounds(RoundStatus.COLLECTING):
                try:
                    steps += await self._advance(stored)
                except Exception:
                    log.exception("statistics round %s: a step failed", stored.spec.round_id.hex())
            return steps

    async def _advance(self, stored: StoredRound) -> int:
        spec = stored.spec
        answers = {a.country: a for a in await self._store.get_answers(spec.round_id)}
        steps = 0
        mine = answers.get(self._me)
        if mine is None:
            steps += await self._contributor.step(spec)
            answers = {a.country: a for a in await self._store.get_answers(spec.round_id)}
            mine = answers.get(self._me)
        if spec.requester == self._me and stored.closed is None:
            steps += await self._close(stored, answers)
            stored = await self._store.get_round(spec.round_id) or stored
        refused = None if mine is None or mine.joined else mine.reason
        steps += await self._aggregator.step(stored, refused)
        steps += await self._release(stored, answers)
        return steps

    async def _close(self, stored: StoredRound, answers: dict[str, RoundAnswer]) -> int:
        """Tell the aggregators who joined, once everyone asked (and we) answered."""
        if not {*stored.asked, self._me} <= set(answers):
            return 0
        joined = sorted(c for c, a in answers.items() if a.joined)
        async with self._work() as work:
            if not await work.set_closed(stored.spec.round_id, joined):
                return 0
            for aggregator in stored.spec.aggregators:
                if aggregator != self._me:
                    message = StatsClose(
                        round_id=stored.spec.round_id, joined=joined, delivery_id=os.urandom(16)
                    )
                    await self._courier.post(work, aggregator, message)
        return 1

    async def _checked_sums(self, stored: StoredRound) -> tuple[list[SumCheck], dict[str, Any]]:
        """Each stored sum verified again under its aggregator's keys."""
        keys = await self._peers.key_history()
        checks, verified = [], {}
        for aggregator, data in (await self._store.get_sums(stored.spec.round_id)).items():
            if aggregator not in stored.spec.aggregators:
                continue
            try:
                statement = check_sum(data, keys)
            except ProtocolError as e:
                checks.append(SumCheck(aggregator, False, str(e), None, data))
                continue
            ok = statement.aggregator == aggregator and statement.matches(stored.spec)
            problem = "" if ok else "not this round's"
            checks.append(SumCheck(aggregator, ok, problem, statement, data))
            if ok:
                verified[aggregator] = statement
        return checks, verified

    async def _release(self, stored: StoredRound, answers: dict[str, RoundAnswer]) -> int:
        spec = stored.spec
        now = self._clock.now()
        _checks, sums = await self._checked_sums(stored)
        refused = [
            f"aggregator {a} refused ({answers[a].reason}: {answers[a].detail})"
            for a in spec.aggregators
            if a in answers and not answers[a].joined and answers[a].reason not in BUDGET_REASONS
        ]
        failed_early = any(s.cells is None for s in sums.values())
        if refused:
            outcome: Released | str = "; ".join(refused)
        elif set(sums) == set(spec.aggregators) or failed_early:
            outcome = release(spec, sums)
        elif now >= spec.deadline_at + 2 * GRACE:
            missing = [a for a in spec.aggregators if a not in sums]
            outcome = f"no sum from aggregator {', '.join(missing)} by the deadline and its grace"
        else:
            return 0
        status = RoundStatus.RELEASED if isinstance(outcome, Released) else RoundStatus.FAILED
        reason = "" if isinstance(outcome, Released) else outcome
        async with self._work() as work:
            if not await work.set_round(spec.round_id, status, reason):
                return 0
            details: dict[str, Any] = {"status": status.value, "reason": reason or None}
            if isinstance(outcome, Released):
                details["contributors"] = list(outcome.contributors)
            await work.add_audit_entry(
                now,
                AuditEvent(
                    ACTOR,
                    f"stats.{'release' if reason == '' else 'fail'}",
                    f"stats-round/{spec.round_id.hex()}",
                    details,
                ),
            )
        return 1

    def next_due(self, rounds: list[StoredRound]) -> float:
        """Seconds until the next deadline of `rounds` (at most `POLL_S`)."""
        now = self._clock.now()
        times = [
            at
            for r in rounds
            for at in (
                r.spec.deadline_at,
                r.spec.deadline_at + GRACE,
                r.spec.deadline_at + 2 * GRACE,
            )
            if at > now
        ]
        soonest = min(((t - now).total_seconds() for t in times), default=POLL_S)
        return max(0.0, min(POLL_S, soonest))

    async def run(self, stop: asyncio.Event) -> None:
        """Carry the rounds until `stop`: at once, at each wake, at each deadline (OpenDP's
        sampler loaded first, so that no round this node aggregates waits for it)."""
        if self._noise is None:
            load_sampler()
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.tick()
                wait = self.next_due(await self._store.list_rounds(RoundStatus.COLLECTING))
            except Exception:
                log.exception("carrying the statistics rounds failed; trying again")
                wait = POLL_S
            await self._clock.wait(wait, self.wake, stop)


async def read_budget(store: RoundsReader, config: BudgetConfig, now: datetime) -> Budget:
    """The budget of `config` and the ledger `store` keeps, as of `now`."""
    return Budget(config, Month.of(now), tuple(await store.get_ledger()))


def ask_of(spec: RoundSpec) -> StatsAsk:
    """The `stats.ask` of a round."""
    return StatsAsk(
        round_id=spec.round_id,
        query=spec.query,
        period_from=str(spec.period.start),
        period_to=str(spec.period.end),
        epsilon=spec.epsilon,
        aggregators=list(spec.aggregators),
        min_contributors=spec.min_contributors,
        deadline_ms=to_ms(spec.deadline_at),
        delivery_id=os.urandom(16),
    )


def read_round_id(text: str) -> bytes:
    """A round id from its 32 hexadecimal digits.

    Raises:
        ValidationError: anything else.
    """
    try:
        data = bytes.fromhex(text)
    except ValueError:
        data = b""
    if len(data) != 16:
        raise ValidationError(f"round id: 32 hexadecimal digits, got {text!r}", "round_id")
    return data
