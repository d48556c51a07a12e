"""Federation statistics rounds and the privacy budget (analysts start, auditors read).

`/statistics/rounds(.json)` lists this node's rounds, newest first, with the form
that starts one (`POST`, analysts: errors beside their fields); a round's page,
`/statistics/rounds/ID(.json)`, shows its status, contributors, refusals, noise
and the aggregators' signatures as verified again, and, once released, its
cells as a table (noisy values as released, negative ones included) beside a
chart (`/statistics/rounds/ID/chart.svg`, negative values drawn as zero), and as
CSV (`/statistics/rounds/ID/cells.csv`).
`/statistics/budget(.json)` shows this node's ledger. Rounds are signed with the
node's key: without it (a console started without `iarms-node run`) the round
pages say so; the budget is read from the store alone.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_ui.auth import actor, get_federation, get_node, is_json, require_federation, requires
from admin_ui.charts import bar_chart
from admin_ui.forms import parse_int, refuse_nul, text_values
from admin_ui.render import field_errors, page
from admin_ui.views_stats import csv_export
from node.accounts.model import Role
from node.app import Federation, stats_budget
from node.errors import NotFoundError, ValidationError
from node.stats.queries import QUERIES
from node.stats.round import DEFAULT_MIN_CONTRIBUTORS, parse_deadline
from node.stats.service import RoundRequest, read_round_id
from node.stats.view import RoundView, summary

reader = requires(Role.ANALYST, Role.AUDITOR)
analyst = requires(Role.ANALYST)
ROUND_ID = r"{round_id:[0-9a-f]{32}}"
FIELDS = ("query", "epsilon", "aggregators", "min_contributors", "deadline", "from", "to")
DEFAULTS = {"min_contributors": str(DEFAULT_MIN_CONTRIBUTORS), "deadline": "10m"}
#: The most cells a round's chart draws in the catalogue's order; past it, the largest
#: as a top-N list (the table has every cell).
CHART_CELLS = 15


def _rounds_of(request: web.Request) -> Federation:
    return require_federation(request, "statistics rounds")


def round_url(round_id: bytes | str) -> str:
    """A round's page."""
    return f"/statistics/rounds/{round_id if isinstance(round_id, str) else round_id.hex()}"


def _request_of(values: dict[str, str]) -> RoundRequest:
    """The round a posted form asks for (ValidationError naming the field)."""
    try:
        epsilon = float(values["epsilon"].strip())
    except ValueError:
        raise ValidationError(
            f"epsilon: a number (as 0.5), got {values['epsilon']!r}", "epsilon"
        ) from None
    return RoundRequest(
        values["query"].strip(),
        epsilon,
        values["aggregators"],
        parse_int(values["min_contributors"], "min_contributors", DEFAULT_MIN_CONTRIBUTORS, 2),
        parse_deadline(values["deadline"] or DEFAULTS["deadline"]),
        values["from"].strip() or None,
        values["to"].strip() or None,
    )


async def _listing(
    request: web.Request,
    values: dict[str, str],
    error: ValidationError | None = None,
) -> web.Response:
    fed = get_federation(request)
    rounds = await fed.rounds.listing() if fed is not None else []
    context = {
        "available": fed is not None,
        "rounds": rounds,
        "values": values,
        "errors": field_errors(error) if error is not None else {},
        "queries": [q.name for q in QUERIES],
    }
    data: dict[str, Any] = {"available": fed is not None, "rounds": [summary(r) for r in rounds]}
    return page(
        request, "rounds.html", context, data=data, status=200 if error is None else error.status
    )


@reader
async def rounds_list(request: web.Request) -> web.Response:
    """GET /statistics/rounds(.json): this node's rounds and the form that starts one."""
    return await _listing(request, dict(DEFAULTS) | {"query": "", "epsilon": "", "aggregators": ""})


@analyst
async def round_start(request: web.Request) -> web.Response:
    """POST /statistics/rounds(.json): start a round; the form again with its errors."""
    values = text_values(await request.post(), FIELDS)
    try:
        refuse_nul(values)
        started = await _rounds_of(request).rounds.start(_request_of(values), actor(request))
    except ValidationError as e:
        if is_json(request):
            raise
        return await _listing(request, values, e)
    if is_json(request):
        return web.json_response(summary(started), status=201)
    raise web.HTTPSeeOther(round_url(started.spec.round_id))


async def _view(request: web.Request) -> RoundView:
    round_id = read_round_id(request.match_info["round_id"])
    return await _rounds_of(request).rounds.show(round_id)


@reader
async def round_view(request: web.Request) -> web.Response:
    """GET /statistics/rounds/ID(.json): a round, and its released result."""
    view = await _view(request)
    data = view.to_json()
    return page(request, "round.html", {"view": view, "data": data}, data=data)


@reader
async def round_chart(request: web.Request) -> web.Response:
    """GET /statistics/rounds/ID/chart.svg: the released cells (negative drawn as zero)."""
    cells = (await _view(request)).to_json()["cells"]
    title, horizontal = "Released noisy totals", len(cells) > CHART_CELLS
    if horizontal:  # many cells (a routes matrix): the largest, as a top-N list
        title = f"Released noisy totals: the {CHART_CELLS} largest of {len(cells)} cells"
        cells = sorted(cells, key=lambda c: -c["value"])[:CHART_CELLS]
    svg = bar_chart(
        title,
        "Cell",
        "Firearms (noisy count)",
        [c["name"] for c in cells],
        {"noisy total": [c["value"] for c in cells]},
        horizontal=horizontal,
    )
    return web.Response(body=svg, content_type="image/svg+xml")


@reader
async def round_export(request: web.Request) -> web.Response:
    """GET /statistics/rounds/ID/cells.csv: the released cells, values as released (negative
    ones included), with their 95 % intervals."""
    view = await _view(request)
    data = view.to_json()
    if view.result is None:
        raise NotFoundError(f"statistics round {data['round_id']} has no released result")
    return csv_export(
        f"round-{data['round_id']}-{data['query']}",
        ("cell", "value", "interval_low", "interval_high"),
        ((c["name"], c["value"], *c["interval"]) for c in data["cells"]),
    )


@reader
async def budget_view(request: web.Request) -> web.Response:
    """GET /statistics/budget(.json): this node's privacy budget and its ledger."""
    budget = await stats_budget(get_node(request))
    data = budget.to_json()
    return page(request, "stats_budget.html", {"budget": data}, data=data)
