"""The console's accounts: first-login password change, self-service change, admin reset,
one answer to every failed sign-in, and a login form that only this console can post."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse, ClientSession, DummyCookieJar, web

from admin_ui.app import build_console_app
from node.accounts.model import Role, UserStatus
from node.accounts.service import SIGN_IN_FAILED
from node.app import Node
from tests.console_helpers import (
    ADMIN_PASSWORD,
    OFFICER_PASSWORD,
    Console,
    add_record,
    console_for,
    csrf_in,
)

NEW_PASSWORD = "the officer's own password"
SECRET = re.compile(r'<code class="secret">([^<]+)</code>')
LOGIN_ERROR = re.compile(r'<p class="alert" role="alert" id="login-error">([^<]*)</p>')


@pytest.fixture
async def console(node: Node) -> AsyncIterator[Console]:
    """A console on each backend, logged in as the first admin."""
    async with console_for(node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        yield c


async def _handed_out(response: ClientResponse) -> str:
    found = SECRET.search(await response.text())
    assert found, "the one-time password is shown"
    return found.group(1)


async def test_a_password_an_admin_hands_out_opens_only_the_change_password_page(
    console: Console,
) -> None:
    password = await _handed_out(
        await console.post("/users", {"name": "officer.a", "role": "officer"})
    )
    assert (await console.json("/users.json"))["users"][1]["must_change_password"] is True
    await console.login_as("officer.a", password)
    page = await console.get("/records?status=stolen")
    assert page.status == 303
    location = urlsplit(page.headers["Location"])
    assert location.path == "/account/password"
    assert parse_qs(location.query) == {"next": ["/records?status=stolen"]}
    refused = await console.json("/records.json", 403)
    assert refused["error"]["code"] == "password_change_required"
    posted = await console.post("/records/new", {"serial_number": "X-1", "make": "Glock"})
    assert posted.status == 403
    assert await console.node.records.count() == 0
    form = await console.get("/account/password?next=/records%3Fstatus%3Dstolen")
    assert form.status == 200 and 'id="must-change"' in await form.text()

    mismatch = await console.change_password(password, NEW_PASSWORD, "not the same one")
    assert mismatch.status == 400
    assert 'id="e-repeat_password"' in await mismatch.text()
    changed = await console.change_password(password, NEW_PASSWORD, next_path="/records")
    assert (changed.status, changed.headers["Location"]) == (303, "/records")
    assert (await console.get("/records")).status == 200
    assert (await console.json("/users.json", 403))["error"]["code"] == "forbidden"  # an officer
    await console.login_as("officer.a", NEW_PASSWORD)
    assert (await console.get("/")).status == 200  # no detour any more


async def test_logging_out_is_allowed_before_the_change(console: Console) -> None:
    password = await _handed_out(
        await console.post("/users", {"name": "officer.a", "role": "officer"})
    )
    await console.login_as("officer.a", password)
    out = await console.post("/logout")
    assert (out.status, out.headers["Location"]) == (303, "/login")
    assert (await console.json("/.json", 401))["error"]["code"] == "unauthenticated"


async def test_changing_one_s_password_ends_the_other_sessions(node: Node) -> None:
    async with console_for(node) as first, console_for(node) as second:
        await first.add_user("officer.a", Role.OFFICER)
        await first.login_as("officer.a", OFFICER_PASSWORD)
        await second.login_as("officer.a", OFFICER_PASSWORD)
        assert 'href="/account/password"' in await (await first.get("/")).text()
        changed = await first.change_password(OFFICER_PASSWORD, NEW_PASSWORD)
        assert changed.status == 303
        assert (await first.json("/.json"))["user"]["name"] == "officer.a"
        assert (await second.json("/.json", 401))["error"]["code"] == "unauthenticated"
        wrong = await first.change_password("not my password", "yet another password")
        assert wrong.status == 400 and 'id="e-current_password"' in await wrong.text()
    [entry] = await node.audit.recent(limit=10, action="user.password.change")
    assert (entry.actor, entry.target) == ("officer.a", "user/officer.a")


async def test_an_admin_resets_a_password_on_the_users_page(console: Console) -> None:
    await console.add_user("officer.a", Role.OFFICER)
    async with console_for(console.node) as officer:
        await officer.login_as("officer.a", OFFICER_PASSWORD)
        reset = await console.post("/users/officer.a/password")
        assert reset.status == 200 and 'id="reset-password"' in await reset.text()
        password = await _handed_out(reset)
        assert (await officer.json("/.json", 401))["error"]["code"] == "unauthenticated"
        assert (await officer.login("officer.a", OFFICER_PASSWORD)).status == 401
        await officer.login_as("officer.a", password)
        assert (await officer.json("/.json", 403))["error"]["code"] == "password_change_required"
        assert (await officer.change_password(password, NEW_PASSWORD)).status == 303
        assert (await officer.post("/users/admin/password")).status == 403  # officers may not
    assert (await console.post("/users/admin/password")).status == 400  # one's own: change it
    assert (await console.post("/users/nobody.here/password")).status == 404
    [entry] = await console.node.audit.recent(limit=20, action="user.password.reset")
    assert (entry.actor, entry.target) == ("admin", "user/officer.a")


async def test_every_failed_sign_in_gets_the_same_page(console: Console) -> None:
    """Defect 11 at the console: same status, same words, whatever the reason."""
    users = console.node.users
    for name in ("officer.a", "officer.d"):
        await console.add_user(name, Role.OFFICER)
    await users.set_status("officer.d", UserStatus.DISABLED, "admin")
    await users.add_user("customs.p", Role.OFFICER, True, OFFICER_PASSWORD, "admin")
    for _ in range(5):
        await console.login("officer.a", "a wrong password")
    answers = set()
    for name, password in [
        ("nobody.here", OFFICER_PASSWORD),
        ("admin", "a wrong password"),
        ("officer.a", OFFICER_PASSWORD),  # locked
        ("officer.d", OFFICER_PASSWORD),  # disabled
        ("customs.p", OFFICER_PASSWORD),  # pending
    ]:
        response = await console.login(name, password)
        found = LOGIN_ERROR.search(await response.text())
        assert found, name
        answers.add((response.status, found.group(1)))
    assert answers == {(401, SIGN_IN_FAILED)}


# --- the login form can only be posted from this console -----------------------------------


@pytest.fixture
async def two_ports(sqlite_node: Node) -> AsyncIterator[tuple[str, str]]:
    """One console app (one key) listening on two ports of 127.0.0.1."""
    runner = web.AppRunner(build_console_app(sqlite_node), access_log=None)
    await runner.setup()
    for _ in range(2):
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    first, second = (f"http://{host}:{port}" for host, port in runner.addresses)
    yield first, second
    await runner.cleanup()


async def _login_pair(http: ClientSession, base: str) -> tuple[str, str]:
    """The login form's token and its cookie, as the console at `base` hands them out."""
    page = await http.get(base + "/login")
    cookie = page.cookies["iarms_login_csrf"].value
    return csrf_in(await page.text()), cookie


async def _post_login(
    http: ClientSession, base: str, token: str, cookie: str, **headers: str
) -> ClientResponse:
    form = {"csrf_token": token, "name": "admin", "password": ADMIN_PASSWORD, "next": "/"}
    headers["Cookie"] = f"iarms_login_csrf={cookie}"
    return await http.post(base + "/login", data=form, headers=headers, allow_redirects=False)


async def test_a_login_token_pair_minted_elsewhere_or_forged_is_refused(
    two_ports: tuple[str, str],
) -> None:
    here, other_port = two_ports
    async with ClientSession(cookie_jar=DummyCookieJar()) as http:
        foreign = await _login_pair(http, other_port)
        refused = await _post_login(http, here, *foreign)
        assert refused.status == 403 and "did not come from this console" in await refused.text()
        # What a page on another port can do: set the cookie to a value and echo it.
        forged = await _post_login(http, here, "chosen-by-the-page", "chosen-by-the-page")
        assert forged.status == 403
        mine = await _login_pair(http, here)
        assert (await _post_login(http, here, *mine)).status == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ],
)
async def test_a_login_post_from_another_origin_is_refused(
    two_ports: tuple[str, str], headers: dict[str, str]
) -> None:
    here, _ = two_ports
    async with ClientSession(cookie_jar=DummyCookieJar()) as http:
        pair = await _login_pair(http, here)
        refused = await _post_login(http, here, *pair, **headers)
        assert refused.status == 403
        text = await refused.text()
        assert "sent from another site or port" in text and 'data-code="cross_origin"' in text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "{here}"},
        {"Origin": "{here}", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # Chromium under no-referrer
        {},  # not a browser
    ],
)
async def test_a_same_origin_login_post_works(
    two_ports: tuple[str, str], headers: dict[str, str]
) -> None:
    here, _ = two_ports
    async with ClientSession(cookie_jar=DummyCookieJar()) as http:
        pair = await _login_pair(http, here)
        sent = {name: value.format(here=here) for name, value in headers.items()}
        assert (await _post_login(http, here, *pair, **sent)).status == 303


async def test_a_cross_origin_post_after_login_is_refused_and_changes_nothing(
    console: Console,
) -> None:
    record = await add_record(console.node, "KEEP-1")
    form = {"version": "1", "reason": "a forged form", "csrf_token": console.csrf}
    refused = await console.client.post(
        f"/records/{record.id}/delete",
        data=form,
        headers={"Origin": "http://127.0.0.1:9999"},
        allow_redirects=False,
    )
    assert refused.status == 403
    assert (await console.node.records.get(record.id, "test")).version == 1
