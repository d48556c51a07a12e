"""The audit log (auditors, admins) and console accounts (admins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.auth import actor, get_node, requires
from admin_ui.forms import parse_int, refuse_nul, text_values
from admin_ui.render import field_errors, page
from node.accounts.model import Role, User, UserStatus
from node.accounts.service import parse_role
from node.audit import VerifyReport
from node.auditing import AuditEntry
from node.errors import ConflictError, ValidationError

AUDIT_LIMIT = 50
MAX_AUDIT_LIMIT = 500
ROLES: tuple[str, ...] = tuple(r.value for r in Role)


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "hash": entry.hash,
    }


def _user_json(user: User) -> dict[str, Any]:
    """A user without the password hash."""
    return {
        "name": user.name,
        "role": user.role.value,
        "external": user.external,
        "status": user.status.value,
        "created_at": user.created_at,
        "approved_by": user.approved_by,
        "approved_at": user.approved_at,
        "must_change_password": user.must_change_password,
    }


async def _audit_page(
    request: web.Request, report: VerifyReport | None = None, status: int = 200
) -> web.Response:
    params = text_values(request.query, ("action", "actor", "before", "limit"))
    before = parse_int(params["before"], "before", 0) or None
    limit = min(parse_int(params["limit"], "limit", AUDIT_LIMIT, minimum=1), MAX_AUDIT_LIMIT)
    entries = await get_node(request).audit.recent(
        before, limit, params["action"].strip() or None, params["actor"].strip() or None
    )
    older = None
    if len(entries) == limit:
        query = {k: v for k, v in params.items() if v and k != "before"}
        older = "/audit?" + urlencode(query | {"before": str(entries[-1].seq)})
    context = {"entries": entries, "params": params, "older_url": older, "report": report}
    data = {"entries": [_entry_json(e) for e in entries], "older": older}
    return page(request, "audit.html", context, data=data, status=status)


@requires(Role.AUDITOR)
async def audit_log(request: web.Request) -> web.Response:
    """GET /audit(.json): the newest audit entries, filtered by action and actor."""
    return await _audit_page(request)


@requires(Role.AUDITOR)
async def audit_verify(request: web.Request) -> web.Response:
    """POST /audit/verify: walk the hash chain and show what it found."""
    report = await get_node(request).audit.verify()
    return await _audit_page(request, report)


async def _users_page(
    request: web.Request,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    created: tuple[User, str] | None = None,
    reset: tuple[User, str] | None = None,
    status: int = 200,
) -> web.Response:
    users = await get_node(request).users.list_users()
    context = {
        "users": users,
        "roles": ROLES,
        "values": values or {},
        "errors": errors or {},
        "created": created,
        "reset": reset,
        "me": actor(request),
    }
    data = {"users": [_user_json(u) for u in users]}
    return page(request, "users.html", context, data=data, status=status)


@requires(Role.ADMIN)
async def users_list(request: web.Request) -> web.Response:
    """GET /users(.json): every account with its role, origin and status."""
    return await _users_page(request)


@requires(Role.ADMIN)
async def user_add(request: web.Request) -> web.Response:
    """POST /users: add an account and show its generated password, this once."""
    form = await request.post()
    values = text_values(form, ("name", "role"))
    values["external"] = "on" if form.get("external") else ""
    try:
        refuse_nul(values)
        role = parse_role(values["role"])
        created = await get_node(request).users.add_user(
            values["name"].strip(), role, bool(values["external"]), None, actor(request)
        )
    except ValidationError as e:
        return await _users_page(request, values=values, errors=field_errors(e), status=400)
    except ConflictError as e:
        return await _users_page(request, values=values, errors={"name": str(e)}, status=409)
    return await _users_page(request, created=created)


@requires(Role.ADMIN)
async def user_approve(request: web.Request) -> web.Response:
    """POST /users/{name}/approve: the bureau's approval of a pending outside account."""
    await get_node(request).users.approve(request.match_info["name"], actor(request))
    raise web.HTTPSeeOther("/users")


@requires(Role.ADMIN)
async def user_status(request: web.Request) -> web.Response:
    """POST /users/{name}/status: disable an account (ending its sessions) or enable it again."""
    name = request.match_info["name"]
    wanted = text_values(await request.post(), ("status",))["status"]
    if wanted not in (UserStatus.ACTIVE.value, UserStatus.DISABLED.value):
        raise ValidationError("status: must be active or disabled", "status")
    if name == actor(request):
        raise ValidationError("status: you cannot disable or enable your own account", "status")
    users = get_node(request).users
    pending = (await users.get_user(name)).status is UserStatus.PENDING
    if pending and wanted == UserStatus.ACTIVE.value:
        raise ConflictError(f"user {name!r} is pending: approve the account instead")
    await users.set_status(name, UserStatus(wanted), actor(request))
    raise web.HTTPSeeOther("/users")


@requires(Role.ADMIN)
async def user_password_reset(request: web.Request) -> web.Response:
    """POST /users/{name}/password: a new one-time password, shown this once; the user's
    sessions end and they must change it at their next login. Admins change their own
    password on the account page instead."""
    name = request.match_info["name"]
    if name == actor(request):
        raise ValidationError(
            "password: change your own password on the account page (Change password)", "password"
        )
    reset = await get_node(request).users.reset_password(name, None, actor(request))
    return await _users_page(request, reset=reset)
