"""Sessions, CSRF and roles: who is calling and whether they may.

The session cookie `iarms_session` holds a random token; the node stores only
its hash with the user and the session's CSRF token (`UsersService`). The
cookie is HttpOnly, SameSite=Strict, Path=/ and Secure: Chromium keeps a
Secure cookie set over plain http on loopback addresses (127.0.0.1,
localhost), which are "potentially trustworthy" origins, so the console
works on its default address while any other address needs HTTPS.

Every POST after login must carry the session's CSRF token as the form field
`csrf_token` (for multipart uploads: as the first part, checked before the
file is read). The login form, posted before any session exists, uses a
double-submit cookie instead, whose token is bound to this console: an HMAC,
under a key the console draws when it starts, over a nonce and the address
the console listens on. Cookies are scoped by host, not by port, so a page
on another port of the same host can set the cookie; it cannot mint a token
that this console accepts.

Every POST, the login's included, must also come from the console's own
origin (scheme, host and port): `check_origin` refuses any whose
`Sec-Fetch-Site` or `Origin` header says it was sent by another site or
another port. A request with neither header is not from a browser that a
forged form could drive, and is let through to the token checks.

A user whose password was handed out by someone else (`must_change_password`)
may only change it or log out: every other page sends them to
`PASSWORD_PATH`, and the `.json` twins and other posts answer 403
`password_change_required`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.typedefs import Handler

from node.accounts.model import ConsoleSession, Role, User
from node.app import Federation, Node
from node.errors import (
    AuthError,
    CrossOriginError,
    CsrfError,
    LookupUnavailableError,
    PasswordChangeRequiredError,
    PermissionDeniedError,
)

SESSION_COOKIE = "iarms_session"
LOGIN_CSRF_COOKIE = "iarms_login_csrf"
CSRF_FIELD = "csrf_token"
PUBLIC_PATHS = frozenset({"/login"})
PASSWORD_PATH = "/account/password"  # noqa: S105 (a page, not a password)
#: Where a user who must change their password may still go.
PASSWORD_CHANGE_PATHS = frozenset({PASSWORD_PATH, "/logout"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: `Sec-Fetch-Site` values of a request the console's own pages (or the user) made.
SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})
#: The only paths that take multipart (file upload) bodies.
UPLOAD_PATHS = frozenset(
    {"/records/import", "/custody/import", "/lookup/bulk", "/lookup/bulk.json"}
)
STATIC_PREFIX = "/static/"
MAX_TOKEN_CHARS = 128

NODE = web.AppKey("node", Node)
#: The key of the login form's token HMAC, drawn when the console starts.
LOGIN_CSRF_KEY = web.AppKey("login_csrf_key", bytes)
#: The federation services; absent when the console runs without the node's signing key.
FEDERATION = web.AppKey("federation", Federation)
SESSION: web.RequestKey[ConsoleSession] = web.RequestKey("session")
MULTIPART: web.RequestKey[MultipartReader] = web.RequestKey("multipart")


def get_node(request: web.Request) -> Node:
    """The node this console serves."""
    return request.app[NODE]


def get_federation(request: web.Request) -> Federation | None:
    """The node's federation services, or None if the console has no signing key."""
    return request.app.get(FEDERATION)


def require_federation(request: web.Request, what: str) -> Federation:
    """The node's federation services, for pages whose `what` are signed with the node's
    key (LookupUnavailableError, saying so, when the console was started without it)."""
    fed = get_federation(request)
    if fed is None:
        raise LookupUnavailableError(
            f"{what} are signed with this node's key, and this console was started without "
            "it: serve the node with 'iarms-node run', which loads the key"
        )
    return fed


def is_json(request: web.Request) -> bool:
    """Whether the request asks for a page's `.json` twin."""
    return request.path.endswith(".json")


def current_session(request: web.Request) -> ConsoleSession | None:
    """The caller's live session, or None on public pages."""
    return request.get(SESSION)


def current_user(request: web.Request) -> User | None:
    """The logged-in user, or None."""
    session = current_session(request)
    return session.user if session else None


def require_user(request: web.Request) -> User:
    """The logged-in user; AuthError if there is none."""
    session = current_session(request)
    if session is None:
        raise AuthError("you are not logged in; log in first")
    return session.user


def actor(request: web.Request) -> str:
    """The name the services record as the actor of this request."""
    return require_user(request).name


def safe_next(target: object) -> str:
    """`target` if it is a path on this console, else "/" (no open redirects)."""
    if not isinstance(target, str) or len(target) > 2000 or not target.startswith("/"):
        return "/"
    if target.startswith("//") or "\\" in target or not target.isprintable():
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in PUBLIC_PATHS | {"/logout"}:
        return "/"
    return target


def is_loopback(request: web.Request) -> bool:
    """Whether the console is reached on a loopback host (where browsers keep Secure cookies)."""
    host = (request.url.host or "").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_address(request: web.Request) -> str:
    """The address a login attempt comes from, as the failed-login throttle counts it.

    The TCP peer's address (`request.remote`), never X-Forwarded-For or the
    like: the console listens on a local address with no proxy in front, so
    such a header says only what the client chose to write in it. Behind a
    proxy every attempt would share the proxy's address (and its throttle).
    """
    return request.remote or "unknown"


def set_session_cookie(response: web.StreamResponse, token: str) -> None:
    """Give the browser its session token (no Max-Age: it ends with the browser)."""
    response.set_cookie(
        SESSION_COOKIE, token, path="/", httponly=True, secure=True, samesite="Strict"
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    """Tell the browser to forget its session token."""
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def _listen_address(request: web.Request) -> str:
    """The address and port of the console's socket this request came in on.

    From the socket, not the Host header: a client cannot choose it.
    """
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return f"{sockname[0]}:{sockname[1]}"
    return str(sockname)


def _login_mac(request: web.Request, nonce: str) -> str:
    message = f"{_listen_address(request)}|{nonce}".encode()
    digest = hmac.new(request.app[LOGIN_CSRF_KEY], message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _bound_here(request: web.Request, token: str) -> bool:
    """Whether `token` is a login token this console minted on this address."""
    nonce, _, mac = token.partition(".")
    if not nonce or not mac or len(token) > MAX_TOKEN_CHARS:
        return False
    return hmac.compare_digest(mac.encode(), _login_mac(request, nonce).encode())


def login_csrf_token(request: web.Request) -> str:
    """The login form's CSRF token: the browser's cookie if this console minted it, else new."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _bound_here(request, token):
        nonce = secrets.token_urlsafe(24)
        token = f"{nonce}.{_login_mac(request, nonce)}"
    return token


def set_login_csrf_cookie(response: web.StreamResponse, token: str) -> None:
    """Set the double-submit cookie that the login form must echo."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/login", httponly=True, secure=True, samesite="Strict"
    )


def check_login_csrf(request: web.Request, form: Mapping[str, object]) -> None:
    """Refuse a login post whose token does not match its cookie or was not minted here."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    _check_token(form.get(CSRF_FIELD), cookie)
    if not _bound_here(request, cookie):
        raise CsrfError("the login form did not come from this console; reload it")


def check_origin(request: web.Request) -> None:
    """Refuse a request that a browser says another origin sent (CrossOriginError, 403).

    Another port of the same host is another origin: `Sec-Fetch-Site` says
    `same-site` then, and `Origin` names the other port. `Origin: null` (an
    opaque origin; also what Chromium sends under `Referrer-Policy:
    no-referrer`) passes only when `Sec-Fetch-Site` vouches for it.
    """
    own = f"{request.scheme}://{request.host}".lower()
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    cross = (
        (site is not None and site not in SAME_ORIGIN_SITES)
        or (origin is not None and origin != "null" and origin.lower() != own)
        or (origin == "null" and site not in SAME_ORIGIN_SITES)
    )
    if cross:
        sender = origin if origin and origin != "null" else f"a {site or 'unknown'} page"
        raise CrossOriginError(
            f"this form was sent from another site or port ({sender[:200]}), not from this "
            f"console ({own[:200]}); open the console at its own address and send it from there"
        )


def _check_token(given: object, expected: str) -> None:
    if not isinstance(given, str) or not expected or len(given) > MAX_TOKEN_CHARS:
        raise CsrfError("the form has expired or did not come from this console; reload it")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfError("the form has expired or did not come from this console; reload it")


async def _check_csrf(request: web.Request, session: ConsoleSession) -> None:
    if request.content_type == "multipart/form-data":
        if request.path not in UPLOAD_PATHS:
            raise web.HTTPUnsupportedMediaType(reason="This form does not take file uploads")
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD:
            raise CsrfError("the upload form must start with its CSRF token; reload the form")
        token = b""
        while chunk := await part.read_chunk(MAX_TOKEN_CHARS):
            token += chunk
            if len(token) > MAX_TOKEN_CHARS:
                raise CsrfError("the upload form's CSRF token is malformed; reload the form")
        _check_token(token.decode("utf-8", "replace"), session.csrf_token)
        request[MULTIPART] = reader
        return
    form = await request.post()
    _check_token(form.get(CSRF_FIELD), session.csrf_token)


def _check_password_changed(request: web.Request, session: ConsoleSession) -> None:
    """Send a user who must change their password to the page that does it."""
    if not session.user.must_change_password or request.path in PASSWORD_CHANGE_PATHS:
        return
    if request.method in ("GET", "HEAD") and not is_json(request):
        raise web.HTTPSeeOther(PASSWORD_PATH + "?" + urlencode({"next": request.path_qs}))
    raise PasswordChangeRequiredError(
        f"you signed in with a password someone else gave you: change it first, at {PASSWORD_PATH}"
    )


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a same-origin POST, a live session (except on public paths), a changed
    password where one is due, and the session's CSRF token on every POST."""
    if request.method not in SAFE_METHODS:
        check_origin(request)
    if request.path in PUBLIC_PATHS or request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    session = await get_node(request).users.get_session(token) if token else None
    if session is None:
        if request.method in ("GET", "HEAD") and not is_json(request):
            raise web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))
        raise AuthError("you are not logged in or your session has ended; log in again")
    request[SESSION] = session
    _check_password_changed(request, session)
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, session)
    return await handler(request)


def requires(*roles: Role) -> Callable[[Handler], Handler]:
    """Let a view run only for users holding one of `roles` (admins hold all).

    Args:
        roles: the roles that may use the view.

    Returns:
        A decorator raising PermissionDeniedError (403) for anyone else.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            user = require_user(request)
            if not user.may(*roles):
                raise PermissionDeniedError(
                    f"your role ({user.role.value}) does not give access to this page"
                )
            return await handler(request)

        return checked

    return decorate
