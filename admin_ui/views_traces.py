"""Trace requests: the list, a trace's chain as a timeline, its export, and the incoming
queue where officers answer the traces waiting at this hop.

Officers start and answer traces (as they run lookups); officers and auditors
read the list and the timelines. A trace's page verifies its chain on every
view (`TraceService.show`, for a trace started here or come to us as a hop)
and shows each hop's country, receipt and answer times, outcome,
details and whether its signatures verified. The export is the file
`iarms-node trace export` writes. New traces: `views_trace_new`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.auth import actor, is_json, require_federation, require_user, requires
from admin_ui.forms import DEFAULT_LIMIT, parse_int, parse_offset, refuse_nul, text_values
from admin_ui.render import field_errors, page
from admin_ui.trace_forms import (
    ANSWER_FIELDS,
    CRIMES,
    DETAIL_LABELS,
    DIRECTIONS,
    FILTER_PARAMS,
    OUTCOME_LABELS,
    OUTCOMES,
    PRIORITIES,
    QUESTION_LABELS,
    STATUSES,
    TraceRow,
    entry_rows,
    form_text,
    list_filter,
    parse_answer,
    reply_text,
    timeline,
    trace_row,
    view_json,
)
from node.accounts.model import Role
from node.app import Federation
from node.errors import ValidationError
from node.trace.model import TraceStatus
from node.trace.service import request_fields

officer = requires(Role.OFFICER)
reader = requires(Role.OFFICER, Role.AUDITOR)
MAX_TRACES_LIMIT = 500
#: The path pattern of a trace id: 32 hexadecimal digits, lower case as pages spell it.
TRACE_ID = "{id:[0-9a-f]{32}}"


def federation_of(request: web.Request) -> Federation:
    """The federation services traces need (LookupUnavailableError without the key)."""
    return require_federation(request, "traces")


def trace_url(trace_id: bytes | str) -> str:
    """A trace's page."""
    return f"/traces/{trace_id if isinstance(trace_id, str) else trace_id.hex()}"


def _trace_id(request: web.Request) -> bytes:
    return bytes.fromhex(request.match_info["id"])


def _list_url(params: Mapping[str, str], offset: int, limit: int) -> str:
    query = {name: value for name, value in params.items() if value}
    return "/traces?" + urlencode(query | {"offset": str(offset), "limit": str(limit)})


def _list_context(params: Mapping[str, str], rows: list[TraceRow], **extra: Any) -> dict[str, Any]:
    return {
        "params": params,
        "rows": rows,
        "directions": DIRECTIONS,
        "statuses": STATUSES,
        "priorities": PRIORITIES,
        "prev_url": None,
        "next_url": None,
        "errors": {},
        **extra,
    }


@reader
async def traces_list(request: web.Request) -> web.Response:
    """GET /traces(.json): outgoing or incoming traces, overdue first, filtered."""
    params = text_values(request.query, FILTER_PARAMS)
    try:
        chosen = list_filter(params)
        offset = parse_offset(request.query.get("offset"))
        limit = parse_int(request.query.get("limit"), "limit", DEFAULT_LIMIT, minimum=1)
    except ValidationError as e:
        if is_json(request):
            raise
        context = _list_context(params, [], errors=field_errors(e))
        return page(request, "traces.html", context, status=400)
    limit = min(limit, MAX_TRACES_LIMIT)
    found = await federation_of(request).traces.listing(chosen.incoming, chosen.status)
    rows = entry_rows([e for e in found if chosen.keeps(e)])
    shown, has_more = rows[offset : offset + limit], len(rows) > offset + limit
    direction = "incoming" if chosen.incoming else "outgoing"
    context = _list_context(params | {"direction": direction}, shown)
    if offset > 0:
        context["prev_url"] = _list_url(params, max(0, offset - limit), limit)
    if has_more:
        context["next_url"] = _list_url(params, offset + limit, limit)
    data = {
        "direction": direction,
        "traces": [row.to_json() for row in shown],
        "offset": offset,
        "limit": limit,
        "total": len(rows),
        "has_more": has_more,
    }
    return page(request, "traces.html", context, data=data)


async def _trace_page(
    request: web.Request,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    reply_errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    view = await federation_of(request).traces.show(_trace_id(request))
    row = trace_row(view.trace, view.overdue_seconds)
    context = {
        "view": view,
        "row": row,
        "fields": view.fields,
        "hops": timeline(view),
        "detail_labels": DETAIL_LABELS,
        "first_hop": view.report.hops[0].country if view.report.hops else view.trace.next_country,
        "incoming": view.trace.position > 0,
        "answerable": view.trace.position > 0 and view.trace.status is TraceStatus.QUEUED,
        "may_answer": require_user(request).may(Role.OFFICER),
        "values": values or {},
        "errors": errors or {},
        "reply_errors": reply_errors or {},
        "outcomes": OUTCOMES,
        "outcome_labels": OUTCOME_LABELS,
        "question_labels": QUESTION_LABELS,
        "answered": request.query.get("answered") == "1",
        "sent": request.query.get("sent") == "1",
        "replied": request.query.get("replied") == "1",
    }
    return page(request, "trace.html", context, data=view_json(view, row), status=status)


@reader
async def trace_view(request: web.Request) -> web.Response:
    """GET /traces/{id}(.json): the trace's chain as a timeline, verified on each view."""
    return await _trace_page(request)


@reader
async def trace_export(request: web.Request) -> web.Response:
    """GET /traces/{id}/export: the chain as `iarms-node trace export` writes it."""
    trace_id = _trace_id(request)
    data = await federation_of(request).traces.export(trace_id)
    filename = f"iarms-trace-{trace_id.hex()}.trace"
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@officer
async def incoming_queue(request: web.Request) -> web.Response:
    """GET /traces/incoming(.json): the traces waiting at this hop for an officer's answer."""
    queued = await federation_of(request).traces.listing(True, TraceStatus.QUEUED)
    rows = entry_rows(queued)
    items = [(row, request_fields(row.trace)) for row in rows]
    context = {
        "items": items,
        "outcomes": OUTCOMES,
        "outcome_labels": OUTCOME_LABELS,
        "crimes": CRIMES,
        "answered": request.query.get("answered", ""),
    }
    data = {
        "traces": [
            row.to_json() | {"request": {n: getattr(f, n) for n in f.__struct_fields__}}
            for row, f in items
        ]
    }
    return page(request, "traces_incoming.html", context, data=data)


@officer
async def trace_answer(request: web.Request) -> web.Response:
    """POST /traces/{id}/answer(.json): an officer's answer to a trace queued at this hop."""
    trace_id = _trace_id(request)
    form = await request.post()
    values = form_text(form, ANSWER_FIELDS)
    try:
        refuse_nul(form.items())
        outcome, details, country = parse_answer(form)
        hop = federation_of(request).trace_hop
        await hop.answer(trace_id, outcome, details, country, actor(request))
    except ValidationError as e:
        if is_json(request):
            raise
        return await _trace_page(request, values=values, errors=field_errors(e), status=e.status)
    if is_json(request):
        view = await federation_of(request).traces.show(trace_id)
        return web.json_response(
            {"trace_id": trace_id.hex(), "outcome": outcome.value, "status": view.status.value}
        )
    raise web.HTTPSeeOther("/traces/incoming?" + urlencode({"answered": trace_id.hex()}))


@officer
async def trace_reply(request: web.Request) -> web.Response:
    """POST /traces/{id}/reply(.json): our reply to the question a hop of our trace asked."""
    trace_id = _trace_id(request)
    form = await request.post()
    try:
        refuse_nul(form.items())
        text = reply_text(form)
        to = await federation_of(request).traces.reply(trace_id, text, actor(request))
    except ValidationError as e:
        if is_json(request):
            raise
        values = {"text": text_values(form, ("text",))["text"]}
        errors = field_errors(e)
        return await _trace_page(request, values=values, reply_errors=errors, status=e.status)
    if is_json(request):
        return web.json_response({"trace_id": trace_id.hex(), "to": to, "text": text})
    raise web.HTTPSeeOther(trace_url(trace_id) + "?replied=1")
