"""The signed-in user's own account: changing their password.

A user whose password was handed out by someone else (by `init`, or by an
admin adding the account or resetting its password) is sent here by the
session middleware before any other page, and may leave only by changing it
or logging out.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from admin_ui.auth import PASSWORD_PATH, current_session, get_node, require_user, safe_next
from admin_ui.forms import refuse_nul, text_values
from admin_ui.render import field_errors, page
from node.accounts.service import MIN_PASSWORD
from node.errors import AuthError, ValidationError

PASSWORD_FIELDS = ("current_password", "new_password", "repeat_password")


def _password_page(
    request: web.Request, next_path: str, errors: Mapping[str, str], status: int = 200
) -> web.Response:
    user = require_user(request)
    context = {
        "next": next_path,
        "errors": errors,
        "must_change": user.must_change_password,
        "min_length": MIN_PASSWORD,
    }
    return page(request, "account_password.html", context, status=status)


async def password_form(request: web.Request) -> web.Response:
    """GET /account/password: the form (current password, new one twice)."""
    return _password_page(request, _next(request.query.get("next")), {})


async def password_change(request: web.Request) -> web.Response:
    """POST /account/password: change the password, end the other sessions, go to `next`."""
    form = await request.post()
    next_path = _next(form.get("next"))
    values = text_values(form, PASSWORD_FIELDS)
    session = current_session(request)
    if session is None:  # the session middleware lets no one here without one
        raise AuthError("you are not logged in; log in first")
    try:
        refuse_nul(values)
        await get_node(request).users.change_password(
            session, values["current_password"], values["new_password"], values["repeat_password"]
        )
    except ValidationError as e:
        return _password_page(request, next_path, field_errors(e), status=e.status)
    raise web.HTTPSeeOther(next_path)


def _next(target: object) -> str:
    """Where to go after the change: a console path, but not this page again."""
    path = safe_next(target)
    return "/" if path.startswith(PASSWORD_PATH) else path
