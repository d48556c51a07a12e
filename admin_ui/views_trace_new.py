"""Starting a trace (officers): the form, its completeness check, and sending it.

The form has two buttons. "Check" validates the request and shows the
completeness check's findings beside the fields it names, and the country
the trace would go to first, without sending anything (no script needed: the
page comes back from the server). "Send" does the same and sends the request
through `TraceService.start`, unless the check found something missing and
no reason to send it anyway was given. `?from_record=ID` fills the form from
one of our records, `?from_evidence=ID` from the evidence of a hit on a peer's
record, as `trace new --from-record` and `--from-evidence` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from admin_ui.auth import actor, get_federation, get_node, is_json, requires
from admin_ui.forms import FIREARM_TYPES, parse_int, refuse_nul
from admin_ui.render import field_errors, page
from admin_ui.trace_forms import (
    CRIMES,
    DEFAULT_QUESTION_VALUES,
    PRIORITIES,
    QUESTION_LABELS,
    TRACE_LABELS,
    NewTraceForm,
    blank_values,
    check_force_reason,
    findings_json,
    findings_map,
    new_trace_form,
)
from admin_ui.views_traces import federation_of, trace_url
from node.accounts.model import Role
from node.errors import IncompleteTraceError, ValidationError
from node.trace import prefill
from node.trace.request import (
    Finding,
    FirstHop,
    TraceRequestFields,
    check_request,
    completeness,
    first_hop,
)

officer = requires(Role.OFFICER)
NOT_SENT = (
    "not sent: the request is incomplete (see beside the fields); complete it, or give a "
    "reason to send it anyway"
)


def _form(
    request: web.Request,
    values: Mapping[str, str],
    questions: tuple[str, ...],
    *,
    error: ValidationError | None = None,
    findings: tuple[Finding, ...] | None = None,
    hop: FirstHop | None = None,
    status: int = 200,
) -> web.Response:
    node = get_node(request)
    errors = field_errors(error) if error is not None else {}
    context = {
        "available": get_federation(request) is not None,
        "values": values,
        "questions": questions,
        "errors": errors,
        "checked": findings is not None,
        "findings": findings_map(findings or ()),
        "hop": hop,
        "labels": TRACE_LABELS,
        "crimes": CRIMES,
        "priorities": PRIORITIES,
        "question_labels": QUESTION_LABELS,
        "types": FIREARM_TYPES,
        "makes": [make.name for make in node.reference.makes],
    }
    data: dict[str, Any] = {
        "available": context["available"],
        "values": dict(values),
        "questions": list(questions),
        "trace_id": None,
        "sent": False,
        "first_hop": hop.country if hop else None,
        "findings": findings_json(findings or ()),
    }
    if error is not None:
        data["error"] = {"code": error.code, "message": str(error), "field": error.field}
    return page(request, "trace_new.html", context, data=data, status=status)


async def _prefill(request: web.Request) -> dict[str, str]:
    """What `?from_record=ID` or `?from_evidence=ID` fills the form with (else nothing)."""
    node, query = get_node(request), request.query
    if "from_record" in query:
        record_id = parse_int(query.get("from_record"), "from_record", minimum=1)
        return prefill.from_record(await node.records.get(record_id, actor(request)))
    if "from_evidence" in query:
        evidence_id = parse_int(query.get("from_evidence"), "from_evidence", minimum=1)
        return prefill.from_evidence(*await node.evidence.open(evidence_id))
    return {}


@officer
async def trace_new_form(request: web.Request) -> web.Response:
    """GET /traces/new(.json)[?from_record=ID | ?from_evidence=ID]: the form, empty or
    filled from one of our records or from the evidence of a hit on a peer's record."""
    return _form(request, blank_values(await _prefill(request)), DEFAULT_QUESTION_VALUES)


def _checked(
    request: web.Request, posted: NewTraceForm
) -> tuple[TraceRequestFields, tuple[Finding, ...], FirstHop]:
    """The validated request, its findings and its first hop (ValidationError naming a field)."""
    node = get_node(request)
    refuse_nul(posted.values)
    check_force_reason(posted.values["force_reason"])
    fields = check_request(posted.entry(), node.reference, node.clock.now().date())
    findings = completeness(fields, node.reference)
    return fields, findings, first_hop(fields, node.reference, posted.to)


@officer
async def trace_create(request: web.Request) -> web.Response:
    """POST /traces/new(.json): check the request (action=check) or send it (action=send)."""
    posted = new_trace_form(await request.post())
    values, questions = posted.values, posted.questions
    try:
        fields, findings, hop = _checked(request, posted)
    except ValidationError as e:
        if is_json(request):
            raise
        return _form(request, values, questions, error=e, status=e.status)
    if not posted.send:
        return _form(request, values, questions, findings=findings, hop=hop)
    if findings and not posted.force_reason:
        error = IncompleteTraceError(NOT_SENT, "force_reason")
        return _form(
            request, values, questions, error=error, findings=findings, hop=hop, status=error.status
        )
    try:
        started = await federation_of(request).traces.start(
            fields, actor(request), posted.to, posted.force_reason
        )
    except ValidationError as e:
        if is_json(request):
            raise
        return _form(
            request, values, questions, error=e, findings=findings, hop=hop, status=e.status
        )
    if is_json(request):
        data = {
            "trace_id": started.trace_id.hex(),
            "sent": True,
            "first_hop": started.first_hop,
            "findings": findings_json(started.findings),
        }
        return web.json_response(data, status=201)
    raise web.HTTPSeeOther(trace_url(started.trace_id) + "?sent=1")
