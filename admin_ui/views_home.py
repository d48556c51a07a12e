"""Logging in and out, and the dashboard every logged-in user lands on."""

from __future__ import annotations

import math

from aiohttp import web

from admin_ui.auth import (
    check_login_csrf,
    clear_session_cookie,
    client_address,
    current_session,
    get_node,
    is_loopback,
    login_csrf_token,
    require_user,
    safe_next,
    set_login_csrf_cookie,
    set_session_cookie,
)
from admin_ui.forms import refuse_nul, text_values
from admin_ui.render import nav_links, page
from node.errors import AuthError, LoginThrottledError, ValidationError

MAX_NAME_CHARS = 64
MAX_PASSWORD_CHARS = 1024


def _login_form(
    request: web.Request, next_path: str, name: str = "", error: str = "", status: int = 200
) -> web.Response:
    token = login_csrf_token(request)
    context = {
        "next": next_path,
        "name": name,
        "error": error,
        "login_csrf": token,
        "insecure_origin": not (request.secure or is_loopback(request)),
    }
    response = page(request, "login.html", context, status=status)
    set_login_csrf_cookie(response, token)
    return response


async def login_form(request: web.Request) -> web.Response:
    """GET /login: the login form (`next` is kept only if it is a path on this console)."""
    return _login_form(request, safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.Response:
    """POST /login: check the password, open a session, go to `next`.

    Too many failed logins from the caller's address: 429 with a Retry-After.
    """
    form = await request.post()
    check_login_csrf(request, form)
    values = text_values(form, ("name", "password"))
    next_path = safe_next(form.get("next"))
    name = values["name"].strip()[:MAX_NAME_CHARS]
    password = values["password"][:MAX_PASSWORD_CHARS]
    users = get_node(request).users
    try:
        refuse_nul(values)
        user = await users.authenticate(name, password, address=client_address(request))
    except ValidationError as e:
        return _login_form(request, next_path, name, str(e), status=e.status)
    except AuthError as e:
        response = _login_form(request, next_path, name, str(e), status=e.status)
        if isinstance(e, LoginThrottledError):
            response.headers["Retry-After"] = str(math.ceil(e.retry_after.total_seconds()))
        return response
    token, _session = await users.start_session(user)
    response = web.HTTPSeeOther(next_path)
    set_session_cookie(response, token)
    raise response


async def logout(request: web.Request) -> web.Response:
    """POST /logout: end the session on the node and in the browser."""
    session = current_session(request)
    if session is not None:
        await get_node(request).users.end_session(session)
    response = web.HTTPSeeOther("/login")
    clear_session_cookie(response)
    raise response


async def dashboard(request: web.Request) -> web.Response:
    """GET / (and /.json): the node's country, its record count and where to go next."""
    node = get_node(request)
    user = require_user(request)
    count = await node.records.count()
    data = {
        "country": node.config.country,
        "records": count,
        "user": {"name": user.name, "role": user.role.value},
        "links": [path for path, _label in nav_links(user)],
    }
    return page(request, "dashboard.html", {"record_count": count}, data=data)
