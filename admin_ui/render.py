"""The one place that renders: pages, their `.json` twins, errors and security headers.

Views hand `page()` a template, its context and the page's data; a path
ending in `.json` gets the data as JSON, any other path the rendered HTML.
`error_middleware` is the single error renderer: an `IarmsError` becomes its
HTTP status with its message (and `{"error": {"code", "message", "field"}}`
on `.json` paths); an unexpected exception becomes a logged 500 page whose
only detail is an incident number to look up in the node's log.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from admin_ui.auth import current_session, get_node, is_json
from node.accounts.model import Role, User
from node.errors import IarmsError, ValidationError

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: Navigation: (path, label, roles that see it; empty means everyone logged in).
NAV: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    ("/", "Dashboard", ()),
    ("/records", "Records", (Role.OFFICER,)),
    ("/records/new", "New record", (Role.OFFICER,)),
    ("/records/import", "Import", (Role.OFFICER,)),
    ("/custody", "Custody registry", (Role.OFFICER,)),
    ("/audit", "Audit log", (Role.AUDITOR,)),
    ("/statistics", "Statistics", (Role.ANALYST, Role.AUDITOR)),
    ("/users", "Users", (Role.ADMIN,)),
)
#: The federation's pages, shown in the top bar after `NAV` (the dashboard lists only `NAV`).
FEDERATION_NAV: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    ("/lookup", "Lookup", (Role.OFFICER,)),
    ("/hits", "Hits on our records", (Role.OFFICER, Role.AUDITOR)),
    ("/evidence", "Evidence", (Role.OFFICER, Role.AUDITOR)),
    ("/traces", "Traces", (Role.OFFICER, Role.AUDITOR)),
    ("/statistics/rounds", "Statistics rounds", (Role.ANALYST, Role.AUDITOR)),
    ("/peers", "Peers", (Role.ADMIN,)),
)


def _json_default(value: object) -> object:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):  # a peer's record may carry them: shown, never a 500
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(data: object) -> str:
    """JSON text for a page's data (dates as ISO 8601, enums as their values, bytes as hex)."""
    return json.dumps(data, default=_json_default, ensure_ascii=False)


def nav_links(
    user: User | None, nav: tuple[tuple[str, str, tuple[Role, ...]], ...] = NAV
) -> list[tuple[str, str]]:
    """The links of `nav` that `user` may follow (none before a due password change)."""
    if user is None or user.must_change_password:
        return []
    return [(path, label) for path, label, roles in nav if not roles or user.may(*roles)]


def field_errors(error: ValidationError) -> dict[str, str]:
    """A form's error map: the message next to its field, or under "_form" without one."""
    field = error.field or "_form"
    return {field: str(error).removeprefix(f"{field}: ")}


def page(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    data: object = None,
    status: int = 200,
) -> web.Response:
    """Render `template` with `context`, or `data` as JSON on a `.json` path.

    Args:
        request: the request being answered.
        template: the template's file name under `admin_ui/templates`.
        context: the template's variables (the user, CSRF token and nav are added).
        data: what the `.json` twin returns; must be JSON-encodable by `dumps`.
        status: the HTTP status.
    """
    if is_json(request):
        return web.json_response(data, status=status, dumps=dumps)
    session = current_session(request)
    user = session.user if session else None
    base = {
        "user": user,
        "csrf_token": session.csrf_token if session else "",
        "nav": nav_links(user),
        "federation_nav": nav_links(user, FEDERATION_NAV),
        "country": get_node(request).config.country,
        "path": request.path,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def error_page(
    request: web.Request, status: int, code: str, message: str, field: str | None = None
) -> web.Response:
    """An error as an HTML page, or as `{"error": {...}}` on a `.json` path."""
    data = {"error": {"code": code, "message": message, "field": field}}
    context = {"status": status, "code": code, "message": message}
    try:
        return page(request, "error.html", context, data=data, status=status)
    except Exception:
        log.exception("cannot render the error page for %s", request.path)
        return web.Response(text=f"{status}: {message}", status=status)


def _http_error(request: web.Request, error: web.HTTPException) -> web.Response:
    if error.status == 404:
        message = f"there is no page at {request.path}"
    elif error.status == 413:
        message = "the form is too large"
    else:
        message = error.reason
    return error_page(request, error.status, error.reason.lower().replace(" ", "_"), message)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error in one way; redirects pass through untouched."""
    try:
        return await handler(request)
    except IarmsError as e:
        return error_page(request, e.status, e.code, str(e), getattr(e, "field", None))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _http_error(request, e)
    except Exception:
        incident = secrets.token_hex(4)
        log.exception("console incident %s: %s %s failed", incident, request.method, request.path)
        return error_page(
            request,
            500,
            "internal",
            f"the node could not answer this request (incident {incident}, in the node's log)",
        )


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Put the security headers on every response (an `on_response_prepare` signal)."""
    response.headers.update(SECURITY_HEADERS)
    static = request.path.startswith("/static/")
    response.headers["Cache-Control"] = "no-cache" if static else "no-store"
