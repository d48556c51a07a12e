"""Statistics rounds across complete nodes (in memory): asked, contributed, aggregated,
released or failed, with the budget, the agreement and the bad input (issue 10)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from node.countries import alpha3_codes
from node.errors import PeerRefusedError, ValidationError
from node.protocol.model import Service
from node.stats.periods import Month, Period
from node.stats.result import release
from node.stats.round import GRACE, RoundSpec, RoundStatus, StoredRound
from node.stats.seal import sealed_size
from node.stats.service import RoundRequest, ask_of
from node.store.work import unit_of_work
from tests.harness import Federation
from tests.stats_rounds import PERIOD, carry, deliver, round_federation, true_totals

QUERY = "records_by_type_status"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await round_federation(tmp_path)
    yield federation
    await federation.close()


def ask(
    epsilon: float = 0.5, k: int = 3, aggregators: str = "DEU,ITA", **kw: object
) -> RoundRequest:
    return RoundRequest(
        QUERY,
        epsilon,
        aggregators,
        k,
        kw.pop("deadline", timedelta(minutes=10)),
        *PERIOD,
        **kw,  # type: ignore[arg-type]
    )


async def audited(fed: Federation, country: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """`country`'s statistics audit entries, oldest first: (action, actor, target, details)."""
    entries = reversed(await fed[country].n.audit.recent(limit=500))
    return [
        (e.action, e.actor, e.target, e.details) for e in entries if e.action.startswith("stats.")
    ]


async def test_five_contributors_release_exactly_the_true_total_with_zero_noise(
    fed: Federation,
) -> None:
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.RELEASED, view.round.reason
    assert view.contributors == ("DEU", "ESP", "FRA", "ITA", "NLD")
    assert view.verified
    truth = await true_totals(fed, QUERY, view.contributors)
    assert sum(truth.values()) == 1 + 2 + 3 + 4 + 5
    data = view.to_json()
    assert {c["name"]: c["value"] for c in data["cells"]} == truth
    assert data["noise"]["distribution"] == "discrete_laplace"
    assert data["noise"]["scale"] == 2.0  # sensitivity 1 / ε 0.5
    for cell in data["cells"]:
        low, high = cell["interval"]
        assert low < cell["value"] < high
    assert [s["aggregator"] for s in data["signatures"]] == ["DEU", "ITA"]
    # every contributor released the same result from the sums it received
    for country in ("DEU", "ESP", "ITA", "NLD"):
        theirs = await fed[country].f.rounds.show(started.spec.round_id)
        assert theirs.status is RoundStatus.RELEASED
        assert theirs.to_json()["cells"] == data["cells"]
    # and each wrote what it did in its audit log: the requester's start, every
    # contribution, each aggregator's sum, every party's release
    target = f"stats-round/{started.spec.round_id.hex()}"
    month = str(Month.of(fed.clock.now()))
    contributed = (
        "stats.contribute",
        "statistics",
        target,
        {"requester": "FRA", "query": QUERY, "epsilon": 0.5, "month": month},
    )
    everyone = ["DEU", "ESP", "FRA", "ITA", "NLD"]
    aggregated = (
        "stats.aggregate",
        "statistics",
        target,
        {"contributors": everyone, "failure": None, "epsilon": 0.5},
    )
    released = (
        "stats.release",
        "statistics",
        target,
        {"status": "released", "reason": None, "contributors": everyone},
    )
    start = await audited(fed, "FRA")
    assert start[0][:3] == ("stats.start", "analyst", target)
    assert start[0][3] == started.spec.to_json() | {"asked": ["DEU", "ESP", "ITA", "NLD"]}
    assert start[1:] == [contributed, released]
    for country in ("DEU", "ITA"):
        assert await audited(fed, country) == [contributed, aggregated, released]
    for country in ("ESP", "NLD"):
        assert await audited(fed, country) == [contributed, released]
        assert (await fed[country].n.audit.verify()).broken_seq is None


async def test_a_routes_round_releases_every_route_and_shares_cover_only_their_own(
    fed: Federation,
) -> None:
    """`routes` with zero noise: the released SRC>DST cells are the true counts of each
    contributor's records by country of manufacture, and each contributor's sealed
    share covers only its own cells (SRC>itself), not the whole matrix."""
    request = RoundRequest("routes", 0.5, "DEU,ITA", 3, timedelta(minutes=10), *PERIOD)
    started = await fed["FRA"].f.rounds.start(request, "analyst")
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.RELEASED, view.round.reason
    assert view.contributors == ("DEU", "ESP", "FRA", "ITA", "NLD")
    cells = {c["name"]: c["value"] for c in view.to_json()["cells"]}
    assert cells == await true_totals(fed, "routes", view.contributors)
    # the seeded records: node i holds i + 1, made in AUT, USA, BEL, ITA in turn
    assert {name: value for name, value in cells.items() if value} == {
        "AUT>DEU": 1, "USA>DEU": 1,
        "AUT>ESP": 1, "USA>ESP": 1, "BEL>ESP": 1, "ITA>ESP": 1,
        "AUT>FRA": 1,
        "AUT>ITA": 1, "USA>ITA": 1, "BEL>ITA": 1,
        "AUT>NLD": 2, "USA>NLD": 1, "BEL>NLD": 1, "ITA>NLD": 1,
    }  # fmt: skip
    sources = len(alpha3_codes())
    assert len(cells) == 5 * sources and {n.split(">")[1] for n in cells} == set(view.contributors)
    for aggregator in ("DEU", "ITA"):
        held = await fed[aggregator].f.rounds._store.get_shares(started.spec.round_id)
        assert {s.contributor: len(s.sealed) for s in held} == dict.fromkeys(
            view.contributors, sealed_size(sources)
        )
    assert sealed_size(sources) < sealed_size(len(cells)) / 4


async def test_fewer_than_k_contributors_release_nothing_and_say_why(fed: Federation) -> None:
    started = await fed["FRA"].f.rounds.start(ask(k=6), "analyst")
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.FAILED
    assert "5 contributor(s)" in view.round.reason and "k = 6" in view.round.reason
    assert view.to_json()["cells"] == []
    failed = ("stats.fail", "statistics", f"stats-round/{started.spec.round_id.hex()}")
    assert (await audited(fed, "FRA"))[-1] == (
        *failed,
        {"status": "failed", "reason": view.round.reason},
    )
    action, _actor, _target, details = (await audited(fed, "DEU"))[-2]  # before its fail
    assert action == "stats.aggregate" and "fewer than k = 6" in details["failure"]


async def test_a_peer_without_the_statistics_policy_is_not_asked(fed: Federation) -> None:
    await fed["FRA"].n.peers.set_policy("NLD", {Service.LOOKUPS}, "admin")
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    await carry(fed)
    assert "NLD" not in started.asked
    assert await fed["NLD"].f.rounds.listing() == []
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.contributors == ("DEU", "ESP", "FRA", "ITA")


async def test_a_peer_whose_policy_refuses_the_requester_refuses_and_is_recorded(
    fed: Federation,
) -> None:
    await fed["NLD"].n.peers.set_policy("FRA", {Service.LOOKUPS}, "admin")
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    await carry(fed)
    data = (await fed["FRA"].f.rounds.show(started.spec.round_id)).to_json()
    assert data["status"] == "released"
    assert [(r["country"], r["reason"]) for r in data["refused"]] == [("NLD", "policy")]
    assert "NLD" not in data["contributors"]


async def test_a_contributor_over_budget_refuses_and_its_ledger_shows_it(
    tmp_path: Path,
) -> None:
    fed = await round_federation(tmp_path)
    try:
        await fed.stop("ESP")
        config = fed["ESP"].data_dir / "config.toml"
        config.write_text(
            config.read_text() + "\n[statistics]\nmonthly_epsilon = 0.6\nmax_epsilon = 0.6\n"
        )
        await fed.start("ESP")
        first = await fed["FRA"].f.rounds.start(ask(epsilon=0.5), "analyst")
        await carry(fed)
        second = await fed["FRA"].f.rounds.start(ask(epsilon=0.5), "analyst")
        await carry(fed)
        view = await fed["FRA"].f.rounds.show(second.spec.round_id)
        assert view.status is RoundStatus.RELEASED
        assert "ESP" not in view.contributors
        assert [(r.country, r.reason) for r in view.refused] == [("ESP", "budget_exhausted")]
        refused = (
            "stats.refuse",
            "statistics",
            f"stats-round/{second.spec.round_id.hex()}",
            {"requester": "FRA", "reason": "budget_exhausted", "epsilon": 0.5},
        )
        assert [e[0] for e in await audited(fed, "ESP")] == [
            "stats.contribute",
            "stats.release",
            "stats.refuse",  # the second round, which ESP does not receive the sums of
        ]
        assert (await audited(fed, "ESP"))[-1] == refused
        ledger = (await fed["ESP"].f.rounds.budget()).to_json()
        assert ledger["monthly_epsilon"] == 0.6
        assert [(e["round_id"], e["spent"], e["reason"]) for e in ledger["entries"]] == [
            (first.spec.round_id.hex(), True, None),
            (second.spec.round_id.hex(), False, "budget_exhausted"),
        ]
        assert ledger["spent"] == 0.5
        # the others spent both rounds (0.5 + 0.5 = their 1.0)
        assert (await fed["DEU"].f.rounds.budget()).spent == pytest.approx(1.0)
    finally:
        await fed.close()


async def test_a_contributor_that_sent_one_aggregator_its_share_is_excluded_by_both(
    fed: Federation,
) -> None:
    fed.partition("ESP", "ITA")  # ESP's share to ITA never arrives
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    await carry(fed)
    fed.clock.advance(timedelta(minutes=10).total_seconds() + 1)  # ITA holds at the deadline
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.RELEASED, view.round.reason
    assert view.contributors == ("DEU", "FRA", "ITA", "NLD")
    assert [s.statement.contributors for s in view.sums if s.statement] == [
        ["DEU", "FRA", "ITA", "NLD"]
    ] * 2
    truth = await true_totals(fed, QUERY, view.contributors)
    assert {c["name"]: c["value"] for c in view.to_json()["cells"]} == truth


async def test_start_refuses_bad_input_with_clear_messages(fed: Federation) -> None:
    rounds = fed["FRA"].f.rounds
    cases = [
        (RoundRequest("nope", 0.5, "DEU,ITA"), "no query 'nope'"),
        (ask(epsilon=0), "epsilon: from .* got 0"),
        (ask(epsilon=1.5), "epsilon: from .* to 1, got 1.5"),
        (ask(aggregators="DEU"), "2 to 16 countries"),
        (ask(aggregators="DEU,DEU"), "named twice"),
        (ask(aggregators="DEU,USA"), "USA is not a peer of this node"),
        (ask(k=1), "min_contributors: a whole number from 2"),
    ]
    for request, message in cases:
        with pytest.raises(ValidationError, match=message):
            await rounds.start(request, "analyst")
    await fed["FRA"].n.peers.set_policy("DEU", {Service.LOOKUPS}, "admin")
    with pytest.raises(ValidationError, match="does not allow statistics with DEU"):
        await rounds.start(ask(), "analyst")
    assert await rounds.listing() == []


async def test_round_state_survives_a_restart(fed: Federation) -> None:
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    for member in fed.members.values():
        await member.f.rounds.tick()
    await deliver(fed)
    for country in ("FRA", "DEU"):
        await fed.stop(country)
        await fed.start(country)
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.RELEASED
    assert len(view.contributors) == 5
    sums = {c.aggregator: c.statement for c in view.sums if c.statement}
    assert isinstance(release(view.round.spec, sums), type(view.result))


async def _ask_from_fra(fed: Federation, spec: RoundSpec) -> None:
    """FRA asks DEU, ITA and ESP to take part in `spec` as it stands: a requester whose
    checks are not this version's (its round stored and its asks queued as `start` does,
    without `start`'s checks)."""
    asked = ("DEU", "ESP", "ITA")
    async with unit_of_work(fed["FRA"].n.db)() as work:
        await work.add_round(
            StoredRound(spec, fed.clock.now(), RoundStatus.COLLECTING, "", asked, None)
        )
        for country in asked:
            await fed["FRA"].n.delivery.send(country, ask_of(spec), work=work)


async def test_bad_asks_from_a_peer_are_refused_with_their_reason_and_spend_nothing(
    fed: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    """Asks no node can take part in (ε below 0.01, an unknown query, a period backwards)
    are refused as they arrive, each with its reason, recorded at the requester, kept as
    failed where refused; ε above the node's cap is refused by its budget. Nothing is
    spent, every round shows and lists, no step fails, and the nodes carry on."""
    period = Period.resolve(*PERIOD, fed.clock.now().date())
    base = RoundSpec(
        b"", "FRA", QUERY, period, 0.5, ("DEU", "ITA"), 2, fed.clock.now() + timedelta(minutes=10)
    )
    cases = {
        "epsilon_out_of_range": replace(base, epsilon=0.001),
        "query": replace(base, query="nope"),
        "period": replace(base, period=Period(period.end, period.start)),
        "deadline": replace(base, deadline_at=fed.clock.now() + timedelta(days=40)),
        "epsilon_above_cap": replace(base, epsilon=5.0),  # the peers' cap is 1.0
    }
    rounds = {reason: replace(spec, round_id=os.urandom(16)) for reason, spec in cases.items()}
    for spec in rounds.values():
        await _ask_from_fra(fed, spec)
    caplog.set_level(logging.ERROR, logger="node.stats")
    await carry(fed)
    fed.clock.advance((timedelta(minutes=10) + 2 * GRACE).total_seconds() + 1)
    await carry(fed)
    assert [r.message for r in caplog.records] == []  # no step failed

    for reason, spec in rounds.items():
        view = await fed["FRA"].f.rounds.show(spec.round_id)
        data = view.to_json()
        assert data["status"] == "failed", reason
        assert data["cells"] == []
        refused = {r["country"]: r for r in data["refused"]}
        assert {refused[c]["reason"] for c in ("DEU", "ESP", "ITA")} == {reason}, data
        for country in ("DEU", "ESP", "ITA"):
            theirs = (await fed[country].f.rounds.show(spec.round_id)).to_json()
            assert theirs["status"] == "failed"
            assert [r["reason"] for r in theirs["refused"]] == [reason]
    # what each reason says
    esp = {
        r: (await fed["ESP"].f.rounds.show(s.round_id)).to_json()["refused"][0]["detail"]
        for r, s in rounds.items()
    }
    assert esp["epsilon_out_of_range"] == "epsilon: from 0.01 to 100, got 0.001"
    assert esp["query"] == "this node does not know the query 'nope'"
    assert esp["period"] == "period from: 2025-07 is after to (2025-05)"
    assert "more than 30 days away" in esp["deadline"]
    assert esp["epsilon_above_cap"] == "ε above this node's cap of 1 per round"
    # refused on arrival: kept as failed there, saying why, with no noise to describe
    stored = await fed["ESP"].f.rounds._store.get_round(rounds["query"].round_id)
    assert stored is not None and stored.reason.startswith("refused here (query): ")
    assert (await fed["ESP"].f.rounds.show(rounds["query"].round_id)).to_json()["noise"] is None
    # an aggregator refusing fails the round at once, naming it
    view = await fed["FRA"].f.rounds.show(rounds["epsilon_out_of_range"].round_id)
    assert view.round.reason.startswith("aggregator DEU refused (epsilon_out_of_range")
    # nothing spent anywhere; the cap's refusal alone is in the ledger, as refused
    for country in ("DEU", "ESP", "ITA"):
        ledger = (await fed[country].f.rounds.budget()).to_json()
        assert ledger["spent"] == 0
        assert [(e["round_id"], e["spent"], e["reason"]) for e in ledger["entries"]] == [
            (rounds["epsilon_above_cap"].round_id.hex(), False, "epsilon_above_cap")
        ]
    assert len(await fed["ESP"].f.rounds.listing()) == len(rounds)
    refusals = [
        (target, d["reason"])
        for a, _, target, d in await audited(fed, "ESP")
        if a == "stats.refuse"
    ]
    assert sorted(refusals) == sorted(
        (f"stats-round/{s.round_id.hex()}", r) for r, s in rounds.items()
    )
    # the nodes carry on: a good round is released
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.RELEASED, view.round.reason
    assert (await fed["ESP"].f.rounds.budget()).spent == 0.5


async def test_asks_whose_aggregators_or_k_are_out_of_bounds_are_malformed(
    fed: Federation,
) -> None:
    """The wire type bounds an ask's aggregators (2 to 16) and k (2 and up): the peer
    refuses the envelope, naming the field, and stores nothing."""
    period = Period.resolve(*PERIOD, fed.clock.now().date())
    spec = RoundSpec(os.urandom(16), "FRA", QUERY, period, 0.5, ("DEU", "ITA"), 2, fed.clock.now())
    peer = await fed["FRA"].n.peers.get("DEU")
    body = msgspec.to_builtins(ask_of(spec), builtin_types=(bytes,))
    for change, field in [
        ({"aggregators": ["DEU"]}, "aggregators"),
        ({"min_contributors": 1}, "min_contributors"),
    ]:
        with pytest.raises(PeerRefusedError) as refused:
            await fed["FRA"].f.client.request(peer, "stats.ask", body | change)
        assert refused.value.peer_code == "malformed"
        assert f"$.{field}" in str(refused.value)
    assert await fed["DEU"].f.rounds.listing() == []
