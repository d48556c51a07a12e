"""The national statistics page (analysts, auditors, admins): charts, tables, exports.

`/statistics(.json)?from=YYYY-MM&to=YYYY-MM` shows every figure of
`node.stats.local.NationalStats` for the period (default: the 12 months ending
this month): each a chart, served as SVG from `/statistics/charts/NAME.svg`
(`admin_ui.charts`), beside its table, with its CSV at
`/statistics/export/NAME.csv` (`csv_export`, which a round's result uses too). The
`.json` twin holds every figure.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.auth import get_node, is_json, requires
from admin_ui.forms import text_values
from admin_ui.render import field_errors, page
from admin_ui.stats_figures import Figure, csv_cell, figure, figures
from node.accounts.model import Role
from node.errors import NotFoundError, ValidationError
from node.records.csvio import neutralise
from node.stats.local import NationalStats

reader = requires(Role.ANALYST, Role.AUDITOR)
PERIOD_PARAMS = ("from", "to")
#: A figure's name in a chart's or an export's address.
FIGURE = r"{name:[a-z_]{1,40}}"


async def _national(request: web.Request) -> NationalStats:
    """The figures of the period the query string names (ValidationError if it is bad)."""
    params = text_values(request.query, PERIOD_PARAMS)
    stats = get_node(request).stats
    return await stats.national(stats.period(params["from"], params["to"]))


async def _figure(request: web.Request) -> Figure:
    found = figure(await _national(request), request.match_info["name"])
    if found is None:
        raise NotFoundError(f"there is no figure {request.match_info['name']!r}")
    return found


@reader
async def statistics(request: web.Request) -> web.Response:
    """GET /statistics(.json): every figure for the period, charts beside their tables."""
    params = text_values(request.query, PERIOD_PARAMS)
    context: dict[str, object]
    try:
        national = await _national(request)
    except ValidationError as e:
        if is_json(request):
            raise
        context = {"params": params, "errors": field_errors(e), "figures": [], "query": ""}
        return page(request, "statistics.html", context, status=e.status)
    query = urlencode(national.period.to_json())
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
    found = await _figure(request)
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
