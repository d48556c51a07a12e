"""Private lookups at the peers (officers) and the peers' hits on our records (officers, auditors).

A lookup is one serial from a form or up to 10,000 from an uploaded CSV file
(multipart, CSRF token first; the file is read into memory, at most
`MAX_BULK_BYTES`). The results come back on the same page, hits first; the
`.json` twins of the two POSTs answer `{"results": [...]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import BodyPartReader, web

from admin_ui.auth import (
    MULTIPART,
    actor,
    get_federation,
    get_node,
    is_json,
    require_federation,
    require_user,
    requires,
)
from admin_ui.federation_forms import (
    DISCLOSED_LABELS,
    LOOKUP_FIELDS,
    MAKE_AGREEMENT,
    MAX_BULK_BYTES,
    RESULT_LABELS,
    hit_json,
    parse_bulk,
    results_context,
    single_query,
)
from admin_ui.forms import DEFAULT_LIMIT, parse_int, parse_offset, text_values
from admin_ui.jobs import CHUNK, size_text
from admin_ui.render import field_errors, page
from node.accounts.model import Role
from node.errors import ValidationError
from node.lookup.querier import MAX_SERIALS, LookupResult, LookupService
from node.lookup.text import MAX_CASE_REFERENCE_CHARS, check_case_reference

officer = requires(Role.OFFICER)
#: Rows without a hit shown on the page (every hit is shown; the `.json` twin has all rows).
MAX_SHOWN_ROWS = 1000
MAX_HITS_LIMIT = 500


def _lookups(request: web.Request) -> LookupService:
    return require_federation(request, "lookups").lookups


def _lookup_page(
    request: web.Request,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    bulk_values: Mapping[str, str] | None = None,
    bulk_errors: Mapping[str, str] | None = None,
    results: list[LookupResult] | None = None,
    status: int = 200,
) -> web.Response:
    available = get_federation(request) is not None
    context = {
        "available": available,
        "values": values or {},
        "errors": errors or {},
        "bulk_values": bulk_values or {},
        "bulk_errors": bulk_errors or {},
        "makes": [make.name for make in get_node(request).reference.makes],
        "max_serials": MAX_SERIALS,
        "bulk_limit": size_text(MAX_BULK_BYTES),
        "labels": DISCLOSED_LABELS,
        "result_labels": RESULT_LABELS,
        "agreement": MAKE_AGREEMENT,
        **results_context(results, MAX_SHOWN_ROWS),
    }
    data = {
        "available": available,
        "max_serials": MAX_SERIALS,
        "results": [r.to_json() for r in results or []],
    }
    return page(request, "lookup.html", context, data=data, status=status)


@officer
async def lookup_form(request: web.Request) -> web.Response:
    """GET /lookup(.json): the one-serial and the bulk lookup forms."""
    return _lookup_page(request)


@officer
async def lookup_run(request: web.Request) -> web.Response:
    """POST /lookup(.json): ask every peer about one serial; show each peer's answer."""
    values = text_values(await request.post(), LOOKUP_FIELDS)
    try:
        query = single_query(values)
        case = check_case_reference(values["case_reference"])
        results = await _lookups(request).lookup([query], case, actor(request))
    except ValidationError as e:
        if is_json(request):
            raise
        return _lookup_page(request, values=values, errors=field_errors(e), status=400)
    return _lookup_page(request, values=values, results=results)


async def _read_part(part: BodyPartReader, limit: int, error: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > limit:
            raise ValidationError(error, part.name)
    return bytes(data)


async def _bulk_form(request: web.Request) -> tuple[str, bytes]:
    """The case reference and the file of a bulk upload (whose CSRF part was checked)."""
    if (request.content_length or 0) > MAX_BULK_BYTES + (1 << 16):
        raise ValidationError(f"file: larger than {size_text(MAX_BULK_BYTES)}; split it", "file")
    reader = request.get(MULTIPART)
    case, data, chosen = "", b"", False
    while reader is not None and (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValidationError("file: the upload is malformed; send the form again", "file")
        if part.name == "file":
            chosen = bool(part.filename)
            too_large = f"file: larger than {size_text(MAX_BULK_BYTES)}; split it"
            data = await _read_part(part, MAX_BULK_BYTES, too_large)
        elif part.name == "case_reference":
            too_long = f"case_reference: at most {MAX_CASE_REFERENCE_CHARS} characters"
            text = await _read_part(part, 4 * MAX_CASE_REFERENCE_CHARS, too_long)
            case = text.decode("utf-8", "replace")
        else:
            await part.release()
    if not chosen:
        raise ValidationError("file: choose a CSV file with a serial_number column", "file")
    return case, data


@officer
async def lookup_bulk(request: web.Request) -> web.Response:
    """POST /lookup/bulk(.json): ask every peer about each serial of an uploaded CSV file."""
    values = {"case_reference": ""}
    try:
        values["case_reference"], data = await _bulk_form(request)
        case = check_case_reference(values["case_reference"])
        queries = parse_bulk(data)
        results = await _lookups(request).lookup(queries, case, actor(request))
    except ValidationError as e:
        if is_json(request):
            raise
        errors = field_errors(e)
        return _lookup_page(request, bulk_values=values, bulk_errors=errors, status=e.status)
    return _lookup_page(request, bulk_values=values, results=results)


def _hits_url(offset: int, limit: int) -> str:
    return "/hits?" + urlencode({"offset": offset, "limit": limit})


@requires(Role.OFFICER, Role.AUDITOR)
async def hits_list(request: web.Request) -> web.Response:
    """GET /hits(.json): the peers' lookups that matched our records, newest first."""
    offset = parse_offset(request.query.get("offset"))
    limit = parse_int(request.query.get("limit"), "limit", DEFAULT_LIMIT, minimum=1)
    limit = min(limit, MAX_HITS_LIMIT)
    found = await get_node(request).lookup_index.hits(limit + 1, offset)
    hits, has_more = found[:limit], len(found) > limit
    context = {
        "hits": hits,
        "offset": offset,
        "may_open_records": require_user(request).may(Role.OFFICER),
        "prev_url": _hits_url(max(0, offset - limit), limit) if offset > 0 else None,
        "next_url": _hits_url(offset + limit, limit) if has_more else None,
    }
    data = {
        "hits": [hit_json(h) for h in hits],
        "offset": offset,
        "limit": limit,
        "has_more": has_more,
    }
    return page(request, "hits.html", context, data=data)
