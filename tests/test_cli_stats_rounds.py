"""`iarms-node stats round start|list|show` and `stats budget`, run as a user runs them (a
real process), against the harness's nodes: the CLI starts a round at FRA, the harness
carries it as the running nodes would (`carry`: every node's tick, then delivery), and
the CLI shows the result and the ledger."""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.protocol.model import Service
from tests.harness import Federation
from tests.stats_rounds import PERIOD, carry, round_federation, send_ask, true_totals
from tests.test_cli_trace import cli, cli_json

COUNTRIES = ("FRA", "DEU", "ITA", "ESP")
START = ("stats", "round", "start", "--query", "records_by_type_status")
ROUND = ("--aggregators", "DEU,ITA", "--from", PERIOD[0], "--to", PERIOD[1])


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, DEU, ITA and ESP, peers allowing statistics, with zero noise (exact totals)."""
    federation = await round_federation(tmp_path, COUNTRIES)
    yield federation
    await federation.close()


async def test_a_round_started_on_the_cli_is_released_and_shown(fed: Federation) -> None:
    started = await cli_json(fed, "FRA", *START, "--epsilon", "0.5", *ROUND)
    round_id = started["round_id"]
    assert started["status"] == "collecting" and started["epsilon"] == 0.5
    assert started["aggregators"] == ["DEU", "ITA"] and started["min_contributors"] == 3
    await carry(fed)

    shown = await cli_json(fed, "FRA", "stats", "round", "show", round_id)
    assert shown["status"] == "released", shown["reason"]
    assert shown["contributors"] == ["DEU", "ESP", "FRA", "ITA"]
    assert shown["refused"] == []
    assert shown["epsilon"] == 0.5
    assert shown["noise"]["distribution"] == "discrete_laplace"
    assert shown["noise"]["scale"] == 2.0
    truth = await true_totals(fed, "records_by_type_status", COUNTRIES)
    assert {c["name"]: c["value"] for c in shown["cells"]} == truth
    assert sum(truth.values()) == 1 + 2 + 3 + 4
    for cell in shown["cells"]:
        low, high = cell["interval"]
        assert low < cell["value"] < high
    assert [s["verified"] for s in shown["signatures"]] == [True, True]
    for signature in shown["signatures"]:  # the signed bytes, for anyone to verify again
        assert len(bytes.fromhex(signature["signature"])) == 64
        assert len(bytes.fromhex(signature["key_id"])) == 8
        assert b64decode(signature["statement"]) in b64decode(signature["signed"])
    assert shown["verified"] is True

    code, out, err = await cli(fed, "FRA", "stats", "round", "show", round_id)
    assert code == 0, err
    assert f"round {round_id}: released" in out
    assert "contributors: DEU, ESP, FRA, ITA" in out
    assert "sum of DEU: verified" in out and "pistol/stolen" in out

    code, out, err = await cli(fed, "FRA", "stats", "round", "list", "--json")
    assert code == 0, err
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert listed["round_id"] == round_id and listed["status"] == "released"
    code, out, _ = await cli(fed, "FRA", "stats", "round", "list")
    assert round_id in out and "released" in out

    # a contributor's copy is released too
    theirs = await cli_json(fed, "ESP", "stats", "round", "show", round_id)
    assert theirs["status"] == "released" and theirs["cells"] == shown["cells"]


async def test_the_budget_ledger_shows_spending_and_a_refusal(fed: Federation) -> None:
    first = await cli_json(fed, "FRA", *START, "--epsilon", "0.75", *ROUND)
    await carry(fed)
    second = await cli_json(fed, "FRA", *START, "--epsilon", "0.5", *ROUND)
    await carry(fed)

    budget = await cli_json(fed, "ESP", "stats", "budget")
    assert budget["monthly_epsilon"] == 1.0 and budget["max_epsilon"] == 1.0
    assert budget["spent"] == 0.75 and budget["remaining"] == 0.25
    entries = {e["round_id"]: e for e in budget["entries"]}
    assert entries[first["round_id"]]["spent"] is True
    assert entries[first["round_id"]]["requester"] == "FRA"
    refused = entries[second["round_id"]]
    assert refused["spent"] is False and refused["reason"] == "budget_exhausted"
    code, out, err = await cli(fed, "ESP", "stats", "budget")
    assert code == 0, err
    assert "spent ε 0.75 of 1" in out and "refused (budget_exhausted)" in out

    # every node is over budget: the second round fails, and says who refused and why
    shown = await cli_json(fed, "FRA", "stats", "round", "show", second["round_id"])
    assert shown["status"] == "failed" and shown["cells"] == []
    refusals = {(r["country"], r["reason"]) for r in shown["refused"]}
    assert ("ESP", "budget_exhausted") in refusals


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--query", "guns", "--epsilon", "0.5", "--aggregators", "DEU,ITA"),
            "iarms-node: query: no query 'guns'; the queries are records_by_type_status",
        ),
        (
            ("--query", "routes", "--epsilon", "0", "--aggregators", "DEU,ITA"),
            "iarms-node: epsilon: from 0.01 to 1, got 0",
        ),
        (
            ("--query", "routes", "--epsilon", "-1", "--aggregators", "DEU,ITA"),
            "iarms-node: epsilon: from 0.01 to 1, got -1",
        ),
        (
            ("--query", "routes", "--epsilon", "1.5", "--aggregators", "DEU,ITA"),
            "iarms-node: epsilon: from 0.01 to 1, got 1.5",
        ),
        (
            ("--query", "routes", "--epsilon", "0.5", "--aggregators", "DEU"),
            "iarms-node: aggregators: 2 to 16 countries",
        ),
        (
            ("--query", "routes", "--epsilon", "0.5", "--aggregators", "DEU,BRA"),
            "iarms-node: aggregators: BRA is not a peer of this node",
        ),
    ],
)
async def test_bad_round_input_is_one_clear_line_and_exit_2(
    fed: Federation, args: tuple[str, ...], message: str
) -> None:
    code, out, err = await cli(fed, "FRA", "stats", "round", "start", *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err
    code, out, _ = await cli(fed, "FRA", "stats", "round", "list", "--json")
    assert code == 0 and out == ""  # nothing started
    assert (await cli_json(fed, "FRA", "stats", "budget"))["entries"] == []


async def test_an_aggregator_without_the_statistics_policy_is_refused(fed: Federation) -> None:
    """`peers policy ITA --allow` without `statistics`: ITA cannot aggregate FRA's rounds;
    with `...,statistics` again, it can, and is asked."""
    code, _out, err = await cli(fed, "FRA", "peers", "policy", "ITA", "--allow", "lookups,traces")
    assert code == 0, err
    code, out, err = await cli(fed, "FRA", *START, "--epsilon", "0.5", "--aggregators", "DEU,ITA")
    assert code == 2 and out == ""
    assert err.startswith(
        "iarms-node: aggregators: this node's policy does not allow statistics with ITA"
    )
    assert err.count("\n") == 1
    allow = "lookups,hit-details,traces,statistics"
    code, _out, err = await cli(fed, "FRA", "peers", "policy", "ITA", "--allow", allow)
    assert code == 0, err
    shown = await cli_json(fed, "FRA", "peers", "show", "ITA")
    assert shown["policy"] == ["hit-details", "lookups", "statistics", "traces"]
    assert (await fed["FRA"].n.peers.get("ITA")).allows(Service.STATISTICS)
    started = await cli_json(fed, "FRA", *START, "--epsilon", "0.5", *ROUND)
    assert started["aggregators"] == ["DEU", "ITA"]
    [stored] = await fed["FRA"].f.rounds.listing()
    assert stored.asked == ("DEU", "ESP", "ITA")


async def test_show_of_an_unknown_or_malformed_round_id_exits_2(fed: Federation) -> None:
    code, out, err = await cli(fed, "FRA", "stats", "round", "show", "ab" * 16)
    assert (code, out) == (2, "")
    assert err == f"iarms-node: no statistics round {'ab' * 16} here\n"
    code, out, err = await cli(fed, "FRA", "stats", "round", "show", "xyz")
    assert (code, out) == (2, "")
    assert err == "iarms-node: round id: 32 hexadecimal digits, got 'xyz'\n"


async def test_a_round_refused_on_arrival_is_listed_and_shown(fed: Federation) -> None:
    """A peer's ask of ε 0.001 (below any round's range) is refused by ESP as it arrives;
    ESP's CLI lists and shows the round, failed, with the reason and no noise."""
    round_id = (await send_ask(fed, "DEU", "ESP", epsilon=0.001)).hex()
    await carry(fed)
    shown = await cli_json(fed, "ESP", "stats", "round", "show", round_id)
    assert shown["status"] == "failed" and shown["noise"] is None and shown["cells"] == []
    assert shown["reason"] == (
        "refused here (epsilon_out_of_range): epsilon: from 0.01 to 100, got 0.001"
    )
    assert [(r["country"], r["reason"]) for r in shown["refused"]] == [
        ("ESP", "epsilon_out_of_range")
    ]
    code, out, err = await cli(fed, "ESP", "stats", "round", "show", round_id)
    assert code == 0, err
    assert f"round {round_id}: failed (refused here (epsilon_out_of_range)" in out
    assert "noise: none" in out
    code, out, err = await cli(fed, "ESP", "stats", "round", "list")
    assert code == 0, err
    assert round_id in out and "failed" in out
    assert (await cli_json(fed, "ESP", "stats", "budget"))["entries"] == []
