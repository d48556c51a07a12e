"""The registry of legal custody: a firearm's events by serial (and make); officers.

Its CSV import is the shared import's (`views_import`, kind `CUSTODY_IMPORT`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from admin_ui.auth import actor, get_node, is_json, requires
from admin_ui.forms import text_values
from admin_ui.render import field_errors, page
from node.accounts.model import Role
from node.errors import ValidationError
from node.trace.model import CustodyEvent, CustodyQuery

SEARCH_PARAMS = ("serial", "make")


def _context(
    params: Mapping[str, str],
    query: CustodyQuery | None,
    events: Sequence[CustodyEvent],
    errors: Mapping[str, str],
) -> dict[str, Any]:
    return {"params": params, "query": query, "events": events, "errors": errors}


@requires(Role.OFFICER)
async def custody_search(request: web.Request) -> web.Response:
    """GET /custody(.json)?serial=&make=: the search form and the serial's events in order."""
    params = text_values(request.query, SEARCH_PARAMS)
    if not params["serial"].strip():
        return page(request, "custody.html", _context(params, None, [], {}), data={"events": []})
    custody = get_node(request).custody
    try:
        query = custody.query(params["serial"], params["make"])
    except ValidationError as e:
        if is_json(request):
            raise
        context = _context(params, None, [], field_errors(e))
        return page(request, "custody.html", context, status=e.status)
    events = await custody.search(query, actor(request))
    data = {
        "serial_canonical": query.serial_canonical,
        "make_key": query.make_key,
        "events": [event.to_row() for event in events],
    }
    return page(request, "custody.html", _context(params, query, events, {}), data=data)
