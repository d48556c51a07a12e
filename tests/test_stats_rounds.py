"""Statistics rounds across complete nodes (in memory): asked, contributed, aggregated,
released or failed, with the budget, the agreement and the bad input (issue 10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from node.errors import ValidationError
from node.protocol.model import Service
from node.stats.result import release
from node.stats.round import GRACE, RoundStatus
from node.stats.service import RoundRequest
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


async def test_fewer_than_k_contributors_release_nothing_and_say_why(fed: Federation) -> None:
    started = await fed["FRA"].f.rounds.start(ask(k=6), "analyst")
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.FAILED
    assert "5 contributor(s)" in view.round.reason and "k = 6" in view.round.reason
    assert view.to_json()["cells"] == []


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


async def test_an_aggregator_down_past_the_deadline_fails_the_round_naming_it(
    fed: Federation,
) -> None:
    await fed.stop("ITA")
    started = await fed["FRA"].f.rounds.start(ask(), "analyst")
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.COLLECTING  # waiting for the deadline
    fed.clock.advance((timedelta(minutes=10) + GRACE).total_seconds() + 1)
    await carry(fed)
    view = await fed["FRA"].f.rounds.show(started.spec.round_id)
    assert view.status is RoundStatus.FAILED
    assert "ITA" in view.round.reason
    assert view.to_json()["cells"] == []


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
