"""The console's statistics rounds and budget pages: the start form and its errors, the
list, a round's released result (table and chart, negative totals clamped only on the
chart), the ledger; each with its `.json` twin, roles, CSRF and escaping (issue 10)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from node.accounts.model import Role
from tests.console_helpers import OFFICER_PASSWORD, Console, console_for
from tests.harness import ADMIN_PASSWORD, Federation
from tests.stats_rounds import PERIOD, carry, round_federation, send_ask

COUNTRIES = ("FRA", "DEU", "ITA")
FORM = {
    "query": "records_by_type_status",
    "epsilon": "0.5",
    "aggregators": "DEU,ITA",
    "min_contributors": "3",
    "deadline": "10m",
    "from": PERIOD[0],
    "to": PERIOD[1],
}


def minus_fifty(_scale: float, cells: int) -> Sequence[int]:
    """Noise for the test only: every aggregator takes 50 off every cell (totals < 0)."""
    return [-50] * cells


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await round_federation(tmp_path, COUNTRIES, noise=minus_fifty)
    yield federation
    await federation.close()


@pytest.fixture
async def fra(fed: Federation) -> AsyncIterator[Console]:
    """FRA's console with its federation services, logged in as an analyst."""
    async with console_for(fed["FRA"].n, fed=fed["FRA"].f) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        await console.add_user("analyst", Role.ANALYST)
        await console.login_as("analyst", OFFICER_PASSWORD)
        yield console


async def test_a_round_started_in_the_form_is_shown_released(fed: Federation, fra: Console) -> None:
    response = await fra.post("/statistics/rounds", FORM)
    assert response.status == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/statistics/rounds/[0-9a-f]{32}", location)
    collecting = await fra.json(location + ".json")
    assert collecting["status"] == "collecting"
    assert 'id="collecting"' in await (await fra.get(location)).text()
    await carry(fed)

    data = await fra.json(location + ".json")
    assert data["status"] == "released" and data["verified"] is True
    assert data["contributors"] == ["DEU", "FRA", "ITA"]
    assert data["noise"]["distribution"] == "discrete_laplace"
    assert data["noise"]["scale"] == 2.0
    assert [(s["aggregator"], len(s["signature"])) for s in data["signatures"]] == [
        ("DEU", 128),
        ("ITA", 128),
    ]
    values = {c["name"]: c["value"] for c in data["cells"]}
    assert values["pistol/stolen"] == 3 - 100  # FRA 1, DEU 1, ITA 1; -50 from each aggregator
    assert all(v < 0 for v in values.values())  # shown as such in the data

    html = await (await fra.get(location)).text()
    assert '<table class="data" id="cells">' in html
    assert '<td>pistol/stolen</td><td class="num">-97</td>' in html
    assert f'src="{location}/chart.svg"' in html
    assert "DEU: verified; ITA: verified" in html
    assert 'id="verified"' in html

    export = await fra.get(location + "/cells.csv")
    assert export.status == 200 and export.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await export.text())))
    assert rows[0] == ["cell", "value", "interval_low", "interval_high"]
    assert [[r[0], int(r[1])] for r in rows[1:]] == [[n, v] for n, v in values.items()]
    assert [list(map(int, r[2:])) for r in rows[1:]] == [c["interval"] for c in data["cells"]]
    assert f'href="{location}/cells.csv"' in html

    chart = await fra.get(location + "/chart.svg")
    assert chart.status == 200 and chart.headers["Content-Type"].startswith("image/svg+xml")
    svg = await chart.text()
    assert svg.startswith("<svg") and "<script" not in svg.lower()
    assert "Released noisy totals" in svg and "pistol/stolen" in svg
    assert "-97" not in svg and "-100" not in svg  # clamped on the chart only

    listed = await fra.json("/statistics/rounds.json")
    assert [r["round_id"] for r in listed["rounds"]] == [location.rsplit("/", 1)[1]]
    assert listed["rounds"][0]["status"] == "released"
    page = await (await fra.get("/statistics/rounds")).text()
    assert f'href="{location}"' in page and "released" in page

    budget = await fra.json("/statistics/budget.json")
    assert budget["spent"] == 0.5 and budget["remaining"] == 0.5
    (entry,) = budget["entries"]
    assert entry["spent"] is True and entry["query"] == "records_by_type_status"
    ledger = await (await fra.get("/statistics/budget")).text()
    assert 'id="ledger"' in ledger and "spent ε <strong>0.5</strong>" in ledger


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("query", "guns", "no query 'guns'"),
        ("epsilon", "abc", "a number (as 0.5), got 'abc'"),
        ("epsilon", "0", "from 0.01 to 1, got 0"),
        ("epsilon", "2", "from 0.01 to 1, got 2"),
        ("aggregators", "DEU", "2 to 16 countries"),
        ("aggregators", "DEU,BRA", "BRA is not a peer of this node"),
        ("min_contributors", "1", "min_contributors"),
        ("deadline", "soon", "a number and a unit"),
    ],
)
async def test_bad_input_is_shown_beside_its_field_and_starts_nothing(
    fed: Federation, fra: Console, field: str, value: str, message: str
) -> None:
    response = await fra.post("/statistics/rounds", FORM | {field: value})
    assert response.status == 400
    html = await response.text()
    error = re.search(rf'<p class="field-error" id="e-{field}">([^<]*)</p>', html)
    assert error is not None, html
    assert message.replace("'", "&#39;") in error.group(1) or field == "min_contributors"
    assert f'aria-invalid="true" aria-describedby="e-{field}"' in html
    data = await fra.json_post("/statistics/rounds.json", FORM | {field: value}, status=400)
    assert data["error"]["code"] == "invalid" and data["error"]["field"] == field
    assert await fed["FRA"].f.rounds.listing() == []


async def test_hostile_input_is_escaped(fra: Console) -> None:
    response = await fra.post("/statistics/rounds", FORM | {"aggregators": "<script>x</script>"})
    html = await response.text()
    assert response.status == 400
    assert "<script>x" not in html and "&lt;script&gt;" in html


async def test_a_post_without_the_csrf_token_starts_nothing(fed: Federation, fra: Console) -> None:
    response = await fra.post("/statistics/rounds", FORM, csrf="")
    assert response.status == 403
    assert await fed["FRA"].f.rounds.listing() == []


async def test_roles(fed: Federation, fra: Console) -> None:
    await fra.login_as("admin", ADMIN_PASSWORD)
    await fra.add_user("auditor", Role.AUDITOR)
    await fra.add_user("officer", Role.OFFICER)
    await fra.login_as("auditor", OFFICER_PASSWORD)
    assert (await fra.json("/statistics/rounds.json"))["rounds"] == []
    assert (await fra.json("/statistics/budget.json"))["entries"] == []
    assert (await fra.post("/statistics/rounds", FORM)).status == 403  # auditors only read
    await fra.login_as("officer", OFFICER_PASSWORD)
    for path in (
        "/statistics/rounds.json",
        "/statistics/budget.json",
        f"/statistics/rounds/{'ab' * 16}.json",
    ):
        assert (await fra.json(path, 403))["error"]["code"] == "forbidden", path
    assert (await fra.get(f"/statistics/rounds/{'ab' * 16}/cells.csv")).status == 403
    assert await fed["FRA"].f.rounds.listing() == []
    async with console_for(fed["FRA"].n, fed=fed["FRA"].f) as anonymous:
        for path in ("/statistics/rounds", "/statistics/budget"):
            response = await anonymous.get(path)
            assert response.status == 302 and response.headers["Location"].startswith("/login")


async def test_an_unknown_round_is_not_found(fra: Console) -> None:
    data = await fra.json(f"/statistics/rounds/{'ab' * 16}.json", 404)
    assert data["error"]["message"] == f"no statistics round {'ab' * 16} here"


async def test_without_the_signing_key_rounds_are_explained_and_the_budget_shown(
    fed: Federation,
) -> None:
    async with console_for(fed["FRA"].n) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        html = await (await console.get("/statistics/rounds")).text()
        assert 'id="rounds-unavailable"' in html and "iarms-node run" in html
        response = await console.post("/statistics/rounds.json", FORM)
        assert response.status == 503
        assert (await console.json("/statistics/budget.json"))["monthly_epsilon"] == 1.0


async def test_a_round_refused_on_arrival_is_shown(fed: Federation, fra: Console) -> None:
    """A peer's ask for a query FRA does not know is refused as it arrives; the round's
    page and its JSON show it failed, with the reason and no noise."""
    round_id = (await send_ask(fed, "DEU", "FRA", query="guns_by_colour")).hex()
    data = await fra.json(f"/statistics/rounds/{round_id}.json")
    assert data["status"] == "failed" and data["noise"] is None
    assert data["reason"] == "refused here (query): this node does not know the query " + (
        "'guns_by_colour'"
    )
    html = await (await fra.get(f"/statistics/rounds/{round_id}")).text()
    assert "refused here (query)" in html and "none: this round" in html
    assert "cells.csv" not in html
    missing = await fra.get(f"/statistics/rounds/{round_id}/cells.csv")
    assert missing.status == 404
    assert f"statistics round {round_id} has no released result" in await missing.text()
    listed = await fra.json("/statistics/rounds.json")
    assert [(r["round_id"], r["status"]) for r in listed["rounds"]] == [(round_id, "failed")]
