"""The national statistics page (analysts, auditors, admins): charts, tables, exports.

`/statistics(.json)?from=YYYY-MM&to=YYYY-MM` shows every figure of
`node.stats.local.NationalStats` for the period (default: the 12 months ending
this month): each a chart, served as SVG from `/statistics/charts/NAME.svg`
(`admin_ui.charts`), beside its table, with its CSV at
`/statistics/export/NAME.csv` (`csv_export`, which a round's result uses too). The
`.json` twin holds every figure. The page's read is audited (`stats.view`), and so
is each export (`stats.export`); the page's charts and exports are drawn from the
very figures it read (`Snapshots`, their links name it), not read again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.auth import actor, get_node, is_json, requires
from admin_ui.forms import text_values
from admin_ui.render import field_errors, page
from admin_ui.stats_figures import SNAPSHOTS, Figure, csv_cell, figure, figures
from node.accounts.model import Role
from node.errors import NotFoundError, ValidationError
from node.records.csvio import neutralise
from node.stats.periods import Period

reader = requires(Role.ANALYST, Role.AUDITOR)
PERIOD_PARAMS = ("from", "to")
#: A chart's or an export's query: the period, and the page's snapshot of its figures.
FIGURE_PARAMS = (*PERIOD_PARAMS, "snapshot")
#: A figure's name in a chart's or an export's address.
FIGURE = r"{name:[a-z_]{1,40}}"


def _period(request: web.Request) -> Period:
    """The period the query string names (ValidationError if it is bad)."""
    params = text_values(request.query, PERIOD_PARAMS)
    return get_node(request).stats.period(params["from"], params["to"])


async def _figure(request: web.Request, *, export: bool = False) -> Figure:
    """The figure a chart or an export names, from its page's snapshot if it is live,
    else read again (a chart's read audited as the page's is; an export is audited as
    such by its view)."""
    node, period, who = get_node(request), _period(request), actor(request)
    snapshot = text_values(request.query, FIGURE_PARAMS)["snapshot"]
    national = request.app[SNAPSHOTS].get(snapshot, who, period, node.clock.now())
    if national is None:
        national = await (node.stats.national(period) if export else node.stats.view(period, who))
    found = figure(national, request.match_info["name"])
    if found is None:
        raise NotFoundError(f"there is no figure {request.match_info['name']!r}")
    return found


@reader
async def statistics(request: web.Request) -> web.Response:
    """GET /statistics(.json): every figure for the period, charts beside their tables."""
    params = text_values(request.query, PERIOD_PARAMS)
    context: dict[str, object]
    node, who = get_node(request), actor(request)
    try:
        national = await node.stats.view(_period(request), who)
    except ValidationError as e:
        if is_json(request):
            raise
        context = {"params": params, "errors": field_errors(e), "figures": [], "query": ""}
        return page(request, "statistics.html", context, status=e.status)
    snapshot = request.app[SNAPSHOTS].keep(national, who, node.clock.now())
    query = urlencode(national.period.to_json() | {"snapshot": snapshot})
    context = {
        "params": national.period.to_json(),
        "errors": {},
        "national": national,
        "figures": figures(national),
        "query": query,
    }
    return page(request, "statistics.html", context, data=national.to_json())


@reader
async def statistics_chart(request: web.Request) -> web.Response:
    """GET /statistics/charts/NAME.svg: one figure's chart (image/svg+xml, no script)."""
    return web.Response(body=(await _figure(request)).svg(), content_type="image/svg+xml")


@reader
async def statistics_export(request: web.Request) -> web.Response:
    """GET /statistics/export/NAME.csv: one figure's every row, formulas neutralised."""
    found = await _figure(request, export=True)
    await get_node(request).stats.exported(_period(request), found.name, actor(request))
    return csv_export(found.name, found.columns, found.rows)


def csv_export(name: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> web.Response:
    """A CSV download `NAME.csv`: a header and `rows`, text neutralised against formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([csv_cell(v, neutralise) for v in row] for row in rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
