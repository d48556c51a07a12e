"""Assembling the console: routes, templates, static files, middlewares and the job table.

`build_console_app(node, fed)` is the one entry point `node.server` calls;
`fed`, the node's federation services, is what lookups and the peers' index
versions need (None when the console runs without the signing key). Each
data page is registered twice, at its path and at the path + `.json`, with
the same handler: `render.page` picks HTML or JSON from the path.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from admin_ui import (
    views_account,
    views_admin,
    views_custody,
    views_evidence,
    views_home,
    views_import,
    views_lookup,
    views_peers,
    views_records,
    views_rounds,
    views_stats,
    views_trace_new,
    views_traces,
)
from admin_ui.auth import FEDERATION, LOGIN_CSRF_KEY, NODE, session_middleware
from admin_ui.forms import refuse_nul
from admin_ui.jobs import JOBS, MAX_UPLOAD, MAX_UPLOAD_BYTES, ImportJobs
from admin_ui.render import add_security_headers, dumps, error_middleware
from admin_ui.stats_figures import SNAPSHOTS, Snapshots
from node.app import Federation, Node
from node.web.guard import connection_middleware

#: The largest ordinary form (not an upload) the console reads.
MAX_FORM_BYTES = 1 << 20
STATIC_DIR = Path(__file__).parent / "static"
_ID = r"{id:[0-9]{1,18}}"

#: (path, handler) of every GET page; each also answers at path + ".json".
PAGES: tuple[tuple[str, Handler], ...] = (
    ("/", views_home.dashboard),
    ("/records", views_records.records_list),
    (f"/records/{_ID}", views_records.record_view),
    ("/records/import/{job:[A-Za-z0-9_-]{1,32}}", views_import.import_job),
    ("/custody", views_custody.custody_search),
    ("/custody/import/{job:[A-Za-z0-9_-]{1,32}}", views_import.import_job),
    ("/audit", views_admin.audit_log),
    ("/users", views_admin.users_list),
    ("/lookup", views_lookup.lookup_form),
    ("/hits", views_lookup.hits_list),
    ("/evidence", views_evidence.evidence_list),
    (f"/evidence/{_ID}", views_evidence.evidence_view),
    ("/peers", views_peers.peers_list),
    ("/statistics", views_stats.statistics),
    ("/statistics/rounds", views_rounds.rounds_list),
    (f"/statistics/rounds/{views_rounds.ROUND_ID}", views_rounds.round_view),
    ("/statistics/budget", views_rounds.budget_view),
    ("/traces", views_traces.traces_list),
    ("/traces/new", views_trace_new.trace_new_form),
    ("/traces/incoming", views_traces.incoming_queue),
    (f"/traces/{views_traces.TRACE_ID}", views_traces.trace_view),
)
#: (method, path, handler) of the forms and actions; the lookups' and the traces' posts also
#: answer at path + ".json".
ACTIONS: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/login", views_home.login_form),
    ("POST", "/login", views_home.login),
    ("POST", "/logout", views_home.logout),
    ("GET", "/account/password", views_account.password_form),
    ("POST", "/account/password", views_account.password_change),
    ("GET", "/records/new", views_records.record_new_form),
    ("POST", "/records/new", views_records.record_create),
    ("GET", f"/records/{_ID}/edit", views_records.record_edit_form),
    ("POST", f"/records/{_ID}/edit", views_records.record_update),
    ("POST", f"/records/{_ID}/recover", views_records.record_recover),
    ("POST", f"/records/{_ID}/delete", views_records.record_delete),
    ("GET", "/records/import", views_import.import_form),
    ("POST", "/records/import", views_import.import_upload),
    ("GET", "/custody/import", views_import.import_form),
    ("POST", "/custody/import", views_import.import_upload),
    ("POST", "/audit/verify", views_admin.audit_verify),
    ("POST", "/users", views_admin.user_add),
    ("POST", "/users/{name}/approve", views_admin.user_approve),
    ("POST", "/users/{name}/status", views_admin.user_status),
    ("POST", "/users/{name}/password", views_admin.user_password_reset),
    ("POST", "/lookup", views_lookup.lookup_run),
    ("POST", "/lookup.json", views_lookup.lookup_run),
    ("POST", "/lookup/bulk", views_lookup.lookup_bulk),
    ("POST", "/lookup/bulk.json", views_lookup.lookup_bulk),
    ("GET", f"/evidence/{_ID}/bundle", views_evidence.evidence_bundle),
    ("GET", f"/statistics/charts/{views_stats.FIGURE}.svg", views_stats.statistics_chart),
    ("GET", f"/statistics/export/{views_stats.FIGURE}.csv", views_stats.statistics_export),
    ("POST", "/statistics/rounds", views_rounds.round_start),
    ("POST", "/statistics/rounds.json", views_rounds.round_start),
    ("GET", f"/statistics/rounds/{views_rounds.ROUND_ID}/chart.svg", views_rounds.round_chart),
    ("GET", f"/statistics/rounds/{views_rounds.ROUND_ID}/cells.csv", views_rounds.round_export),
    ("POST", "/peers", views_peers.peer_add),
    ("POST", f"/peers/{views_peers.COUNTRY}/policy", views_peers.peer_policy),
    ("POST", f"/peers/{views_peers.COUNTRY}/revoke", views_peers.peer_revoke),
    ("POST", "/traces/new", views_trace_new.trace_create),
    ("POST", "/traces/new.json", views_trace_new.trace_create),
    ("GET", f"/traces/{views_traces.TRACE_ID}/export", views_traces.trace_export),
    ("POST", f"/traces/{views_traces.TRACE_ID}/answer", views_traces.trace_answer),
    ("POST", f"/traces/{views_traces.TRACE_ID}/answer.json", views_traces.trace_answer),
    ("POST", f"/traces/{views_traces.TRACE_ID}/reply", views_traces.trace_reply),
    ("POST", f"/traces/{views_traces.TRACE_ID}/reply.json", views_traces.trace_reply),
)


@web.middleware
async def nul_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a NUL character in the page's address or query string, before any view runs.

    The node cannot store U+0000 (PostgreSQL text cannot hold it), and no name,
    filter or id has one. Posted forms are checked by their views (`refuse_nul`),
    which show the form again with the message next to the field.
    """
    refuse_nul({"address": request.path})
    refuse_nul(request.query.items())
    return await handler(request)


def _add_routes(app: web.Application) -> None:
    for path, handler in PAGES:
        app.router.add_get(path, handler)
        app.router.add_get("/.json" if path == "/" else path + ".json", handler)
    for method, path, handler in ACTIONS:
        app.router.add_route(method, path, handler)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)


async def _start_jobs(app: web.Application) -> None:
    app[JOBS].sweep()


async def _stop_jobs(app: web.Application) -> None:
    await app[JOBS].close()


def build_console_app(
    node: Node, fed: Federation | None = None, *, max_upload: int = MAX_UPLOAD_BYTES
) -> web.Application:
    """The console's aiohttp application for `node`.

    Args:
        node: the opened node whose services the console calls.
        fed: the node's federation services; without them (no signing key) the
            lookup page only explains that lookups need the node's key.
        max_upload: the largest CSV file, in bytes, that an import may upload.

    Returns:
        The application, ready for an `AppRunner` (or a test server).
    """
    # The connection middleware sits inside the error renderer, so that a client
    # leaving mid-body is counted by the guard, not rendered as an incident.
    app = web.Application(
        middlewares=[error_middleware, connection_middleware, nul_middleware, session_middleware],
        client_max_size=MAX_FORM_BYTES,
    )
    app[NODE] = node
    app[LOGIN_CSRF_KEY] = secrets.token_bytes(32)
    if fed is not None:
        app[FEDERATION] = fed
    app[JOBS] = ImportJobs(node)
    app[MAX_UPLOAD] = max_upload
    app[SNAPSHOTS] = Snapshots()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("admin_ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
        filters={"json": dumps},
    )
    app.on_response_prepare.append(add_security_headers)
    app.on_startup.append(_start_jobs)
    app.on_cleanup.append(_stop_jobs)
    _add_routes(app)
    return app
