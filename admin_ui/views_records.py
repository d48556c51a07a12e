"""Firearm records: list and filter, create, view, edit, recover and delete (officers, admins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from admin_ui.auth import actor, get_node, is_json, requires
from admin_ui.forms import (
    DEFAULT_LIMIT,
    FILTER_PARAMS,
    FIREARM_TYPES,
    RECORD_LABELS,
    STATUSES,
    filter_text,
    page_json,
    page_url,
    parse_int,
    parse_offset,
    record_json,
    record_values,
    refuse_nul,
    text_values,
)
from admin_ui.render import field_errors, page
from node.accounts.model import Role
from node.errors import ConflictError, ValidationError
from node.records.model import Page
from node.records.normalise import parse_date, record_input

officer = requires(Role.OFFICER)


def _record_id(request: web.Request) -> int:
    return parse_int(request.match_info["id"], "id", minimum=1)


def _list_context(
    params: Mapping[str, str], result: Page | None, errors: Mapping[str, str], deleted: str
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "params": params,
        "page": result,
        "errors": errors,
        "deleted": deleted,
        "types": FIREARM_TYPES,
        "statuses": STATUSES,
        "prev_url": None,
        "next_url": None,
    }
    if result is not None and result.offset > 0:
        context["prev_url"] = page_url(params, max(0, result.offset - result.limit), result.limit)
    if result is not None and result.has_more:
        context["next_url"] = page_url(params, result.offset + result.limit, result.limit)
    return context


@officer
async def records_list(request: web.Request) -> web.Response:
    """GET /records(.json): the filter form and one page of matching records, newest first."""
    params = text_values(request.query, FILTER_PARAMS)
    deleted = request.query.get("deleted", "")
    node = get_node(request)
    try:
        offset = parse_offset(request.query.get("offset"))
        limit = parse_int(request.query.get("limit"), "limit", DEFAULT_LIMIT, minimum=1)
        found = node.records.parse_filter(filter_text(params))
        result = await node.records.search(found, actor(request), offset, limit)
    except ValidationError as e:
        if is_json(request):
            raise
        context = _list_context(params, None, field_errors(e), deleted)
        return page(request, "records.html", context, status=400)
    context = _list_context(params, result, {}, deleted if deleted.isdigit() else "")
    return page(request, "records.html", context, data=page_json(result))


def _form(
    request: web.Request,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    record_id: int | None = None,
    version: int | str | None = None,
    status: int = 200,
) -> web.Response:
    reference = get_node(request).reference
    types = FIREARM_TYPES
    if values.get("firearm_type") and values["firearm_type"] not in types:
        types = (*types, values["firearm_type"])  # an unlisted type stays selectable
    context = {
        "values": values,
        "errors": errors,
        "labels": RECORD_LABELS,
        "types": types,
        "statuses": STATUSES,
        "makes": [make.name for make in reference.makes],
        "calibres": [calibre.name for calibre in reference.calibres],
        "record_id": record_id,
        "version": version,
    }
    return page(request, "record_form.html", context, status=status)


@officer
async def record_new_form(request: web.Request) -> web.Response:
    """GET /records/new: an empty record form."""
    return _form(request, {}, {})


@officer
async def record_create(request: web.Request) -> web.Response:
    """POST /records/new: store the record and show it, or show the form again with the error."""
    values = record_values(await request.post())
    try:
        refuse_nul(values)
        record = await get_node(request).records.create(record_input(values), actor(request))
    except ValidationError as e:
        return _form(request, values, field_errors(e), status=400)
    except ConflictError as e:
        return _form(request, values, {"external_id": str(e)}, status=e.status)
    raise web.HTTPSeeOther(f"/records/{record.id}")


async def _record_page(
    request: web.Request, record_id: int, errors: Mapping[str, str], status: int = 200
) -> web.Response:
    record = await get_node(request).records.get(record_id, actor(request))
    context = {"record": record, "labels": RECORD_LABELS, "errors": errors}
    return page(request, "record.html", context, data=record_json(record), status=status)


@officer
async def record_view(request: web.Request) -> web.Response:
    """GET /records/{id}(.json): every field of one record, with its version."""
    return await _record_page(request, _record_id(request), {})


@officer
async def record_edit_form(request: web.Request) -> web.Response:
    """GET /records/{id}/edit: the record form filled in, with the version being edited."""
    record = await get_node(request).records.get(_record_id(request), actor(request))
    return _form(request, record.to_row(), {}, record_id=record.id, version=record.version)


@officer
async def record_update(request: web.Request) -> web.Response:
    """POST /records/{id}/edit: save if nobody changed the record since the form was loaded."""
    record_id = _record_id(request)
    form = await request.post()
    values = record_values(form)
    version = text_values(form, ("version",))["version"]
    try:
        refuse_nul(values)
        expected = parse_int(version, "version", minimum=1)
        entry = record_input(values)
        await get_node(request).records.update(record_id, expected, entry, actor(request))
    except ValidationError as e:
        return _form(
            request, values, field_errors(e), record_id=record_id, version=version, status=400
        )
    except ConflictError as e:
        errors = {"_conflict": str(e)}
        return _form(request, values, errors, record_id=record_id, version=version, status=409)
    raise web.HTTPSeeOther(f"/records/{record_id}")


@officer
async def record_recover(request: web.Request) -> web.Response:
    """POST /records/{id}/recover: mark the firearm recovered (today, or on the given date)."""
    record_id = _record_id(request)
    form = await request.post()
    try:
        refuse_nul(form.items())
        version = parse_int(form.get("version"), "version", minimum=1)
        on = parse_date(text_values(form, ("recovered_on",))["recovered_on"], "recovered_on")
        await get_node(request).records.recover(record_id, version, on, actor(request))
    except ValidationError as e:
        return await _record_page(request, record_id, field_errors(e), status=400)
    except ConflictError as e:
        return await _record_page(request, record_id, {"_conflict": str(e)}, status=409)
    raise web.HTTPSeeOther(f"/records/{record_id}")


@officer
async def record_delete(request: web.Request) -> web.Response:
    """POST /records/{id}/delete: delete the record, giving a reason for the audit log."""
    record_id = _record_id(request)
    form = await request.post()
    try:
        refuse_nul(form.items())
        version = parse_int(form.get("version"), "version", minimum=1)
        reason = text_values(form, ("reason",))["reason"]
        await get_node(request).records.delete(record_id, version, reason, actor(request))
    except ValidationError as e:
        return await _record_page(request, record_id, field_errors(e), status=400)
    except ConflictError as e:
        return await _record_page(request, record_id, {"_conflict": str(e)}, status=409)
    raise web.HTTPSeeOther(f"/records?deleted={record_id}")
