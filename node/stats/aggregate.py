"""An aggregator's side of a round: take sealed shares, agree on whose, sum, add noise, sign.

- `stats.share`: the share is checked on arrival (the query and period of the
  round, if known here; exactly the size of the contributor's cells; it opens
  with our HPKE key under the round's binding) and its first copy kept: a share
  sent twice counts once; a tampered one, or one sealed for another round, query,
  contributor or aggregator, is refused (`invalid_share`, `unsealable_share`).
- At the deadline (or on the requester's `stats.close`, once every contributor
  it names has a share here) the aggregator fixes its holding, the sorted
  contributors whose shares it holds, and sends it to the other aggregators
  (`stats.holding`); a share that comes later is kept but never summed.
- Once it has every aggregator's holding, it sums the shares of their
  intersection — the contributors all of them hold — adds its own discrete
  Laplace noise (`noise.draw_noise`, OpenDP) and sends its signed sum
  (`node.stats.result`) to the requester and to every contributor of the set;
  with fewer than k of them, or without a holding by `deadline + GRACE`, it
  signs and sends a failure saying why instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.auditing import AuditEvent
from node.clock import Clock
from node.errors import (
    MalformedEnvelopeError,
    ProtocolError,
    RateLimitedError,
    ShareError,
    ValidationError,
)
from node.protocol.envelope import to_ms
from node.stats.contribute import ACTOR, BUDGET_REASONS
from node.stats.courier import Courier
from node.stats.layout import add_up, contributor_cells
from node.stats.messages import StatsClose, StatsHolding, StatsShare, StatsSum
from node.stats.noise import NoiseSource, draw_noise
from node.stats.periods import Period
from node.stats.queries import query
from node.stats.result import sign_sum, statement_for
from node.stats.round import (
    GRACE,
    HeldShare,
    StoredRound,
    check_countries,
)
from node.stats.rounds_storage import RoundsStorage, StatsWork
from node.stats.seal import open_share, share_info
from node.stats.shares import Share, add_noise

W = TypeVar("W", bound=StatsWork)

#: Shares and holdings one peer may have held for rounds whose ask has not arrived here yet.
MAX_EARLY = 16
EARLY_RETRY_S = 60


class Aggregator(Generic[W]):
    """Holds shares sealed to this node, agrees with the other aggregators, sums."""

    def __init__(
        self,
        me: str,
        courier: Courier[W],
        signing_key: Ed25519PrivateKey,
        hpke_key: X25519PrivateKey,
        store: RoundsStorage,
        clock: Clock,
        work: Callable[[], AbstractAsyncContextManager[W]],
        noise: NoiseSource | None = None,
    ) -> None:
        self._me = me
        self._store = store
        self._courier = courier
        self._signing = signing_key
        self._hpke = hpke_key
        self._clock = clock
        self._work = work
        self._noise = noise  # None: OpenDP's sampler; tests alone pass their own
        courier.handle(StatsShare, self.on_share)
        courier.handle(StatsHolding, self.on_holding)
        courier.handle(StatsClose, self.on_close)

    # -- messages ------------------------------------------------------------------------

    async def on_share(self, message: StatsShare, sender: str, work: W) -> None:
        """Check a share and keep its first copy."""
        share = HeldShare(
            sender, message.query, message.period_from, message.period_to, message.sealed
        )
        stored = await work.get_round(message.round_id)
        if stored is not None:
            if self._me not in stored.spec.aggregators:
                raise ProtocolError(f"this node aggregates no round {message.round_id.hex()}")
            if not share.fits(stored.spec):
                raise MalformedEnvelopeError("$.query: not the round's query and period")
        else:
            await self._early(sender, work)
        try:
            q = query(message.query)
            period = Period.resolve(
                message.period_from, message.period_to, self._clock.now().date()
            )
        except ValidationError as e:
            raise ShareError(f"$.query: {e}") from e
        info = share_info(message.round_id, message.query, sender, self._me)
        open_share(message.sealed, self._hpke, info, len(contributor_cells(q, period, sender)))
        await work.add_share(message.round_id, share, self._clock.now())

    async def on_holding(self, message: StatsHolding, sender: str, work: W) -> None:
        """Keep another aggregator's holding (its first)."""
        stored = await work.get_round(message.round_id)
        if stored is None:
            await self._early(sender, work)
        elif sender not in stored.spec.aggregators:
            raise ProtocolError(f"{sender} is not an aggregator of round {message.round_id.hex()}")
        held = check_countries(message.contributors, "contributors")
        await work.add_holding(message.round_id, sender, held, self._clock.now())

    async def _early(self, sender: str, work: W) -> None:
        """A share or holding may arrive before its round's ask: kept, but a peer cannot
        make us keep many (RateLimitedError: its outbox sends it again, once the ask is
        here)."""
        if await work.count_early(sender) >= MAX_EARLY:
            raise RateLimitedError(
                f"{sender} has {MAX_EARLY} shares or holdings held for rounds not known "
                f"here; retry in {EARLY_RETRY_S} s"
            )

    async def on_close(self, message: StatsClose, sender: str, work: W) -> None:
        """Keep the contributors the requester says joined."""
        stored = await work.get_round(message.round_id)
        if stored is None or stored.spec.requester != sender:
            raise ProtocolError(f"{sender} requested no round {message.round_id.hex()} here")
        await work.set_closed(message.round_id, check_countries(message.joined, "joined"))

    # -- the round -----------------------------------------------------------------------

    async def step(self, round_: StoredRound, refused_reason: str | None) -> bool:
        """Fix our holding, or sign our sum, when it is time; whether anything was done.

        `refused_reason`: this node's own refusal to contribute, if it refused: for a
        reason other than its budget, it does not aggregate the round either.
        """
        spec = round_.spec
        if self._me not in spec.aggregators:
            return False
        if refused_reason is not None and refused_reason not in BUDGET_REASONS:
            return False
        now = self._clock.now()
        holdings = await self._holdings(round_)
        if self._me not in holdings:
            return await self._hold(round_, now)
        if self._me in await self._store.get_sums(spec.round_id):
            return False
        return await self._sum(round_, holdings, now)

    async def _holdings(self, round_: StoredRound) -> dict[str, tuple[str, ...]]:
        found = await self._store.get_holdings(round_.spec.round_id)
        return {a: h for a, h in found.items() if a in round_.spec.aggregators}

    async def _hold(self, round_: StoredRound, now: datetime) -> bool:
        spec = round_.spec
        async with self._work() as work:
            held = sorted(
                s.contributor for s in await work.get_shares(spec.round_id) if s.fits(spec)
            )
            closing = round_.closed is not None and set(round_.closed) <= set(held)
            if now < spec.deadline_at and not closing:
                return False
            if not await work.add_holding(spec.round_id, self._me, held, now):
                return False
            for other in spec.aggregators:
                if other != self._me:
                    holding = StatsHolding(
                        round_id=spec.round_id,
                        contributors=held,
                        delivery_id=secrets.token_bytes(16),
                    )
                    await self._courier.post(work, other, holding)
        return True

    async def _sum(
        self, round_: StoredRound, holdings: dict[str, tuple[str, ...]], now: datetime
    ) -> bool:
        spec = round_.spec
        missing = [a for a in spec.aggregators if a not in holdings]
        if missing and now < spec.deadline_at + GRACE:
            return False
        cells: Share | None = None
        failure: str | None = None
        if missing:
            agreed = sorted(holdings[self._me])
            failure = f"no holding from {', '.join(missing)} by the deadline and its grace"
        else:
            agreed = sorted(set.intersection(*(set(h) for h in holdings.values())))
            if len(agreed) < spec.min_contributors:
                failure = (
                    f"{len(agreed)} contributor(s) whose shares every aggregator holds, "
                    f"fewer than k = {spec.min_contributors}: nothing is released"
                )
            else:
                cells = await self._noisy_sum(round_, agreed)
        statement = statement_for(spec, self._me, agreed, to_ms(now), cells, failure)
        signed = sign_sum(self._signing, statement)
        async with self._work() as work:
            if not await work.add_sum(spec.round_id, self._me, signed, now):
                return False
            for party in sorted({spec.requester, *agreed} - {self._me}):
                message = StatsSum(
                    round_id=spec.round_id, result=signed, delivery_id=secrets.token_bytes(16)
                )
                await self._courier.post(work, party, message)
            await work.add_audit_entry(
                now,
                AuditEvent(
                    ACTOR,
                    "stats.aggregate",
                    f"stats-round/{spec.round_id.hex()}",
                    {"contributors": agreed, "failure": failure, "epsilon": spec.epsilon},
                ),
            )
        return True

    async def _noisy_sum(self, round_: StoredRound, agreed: list[str]) -> Share:
        """The sum of the agreed contributors' shares, with our noise added."""
        spec = round_.spec
        q = query(spec.query)
        held = {s.contributor: s for s in await self._store.get_shares(spec.round_id)}
        opened = {}
        for contributor in agreed:
            info = share_info(spec.round_id, spec.query, contributor, self._me)
            size = len(contributor_cells(q, spec.period, contributor))
            opened[contributor] = open_share(held[contributor].sealed, self._hpke, info, size)
        total = add_up(q, spec.period, opened, agreed)
        noise = draw_noise(spec.epsilon, q.sensitivity, len(total), self._noise)
        return add_noise(total, noise)
