"""The console's defences: CSRF, security headers, cookie flags, escaping, redirects, logout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import Morsel, SimpleCookie
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, FormData

from node.accounts.model import Role
from node.app import Node
from tests.console_helpers import (
    ADMIN_PASSWORD,
    OFFICER_PASSWORD,
    SECURITY_HEADERS,
    Console,
    add_record,
    console_for,
    csrf_in,
)

SCRIPT = "<script>alert(1)</script>"
NEW_RECORD = {
    "serial_number": "CSRF-1",
    "make": "Glock",
    "firearm_type": "pistol",
    "status": "lost",
}


@pytest.fixture
async def console(sqlite_node: Node) -> AsyncIterator[Console]:
    """A console on the SQLite node, logged in as the first admin."""
    async with console_for(sqlite_node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        yield c


def set_cookies(response: ClientResponse) -> dict[str, Morsel[str]]:
    """Every cookie a response sets, parsed, by name."""
    cookies: dict[str, Morsel[str]] = {}
    for header in response.headers.getall("Set-Cookie", []):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        cookies.update(parsed)
    return cookies


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    console: Console,
) -> None:
    record = await add_record(console.node, "KEEP-1")
    refused = [
        await console.post("/records/new", NEW_RECORD, csrf=""),
        await console.post(
            f"/records/{record.id}/delete", {"version": "1", "reason": "x"}, csrf=""
        ),
        await console.post(f"/records/{record.id}/recover", {"version": "1"}, csrf=""),
        await console.post("/users", {"name": "intruder", "role": "admin"}, csrf=""),
        await console.post("/logout", csrf=""),
        await console.client.post(
            "/records/new", json={**NEW_RECORD, "csrf_token": console.csrf}, allow_redirects=False
        ),
    ]
    for response in refused:
        assert response.status == 403
        assert "did not come from this console" in await response.text()
    assert await console.node.records.count() == 1
    assert (await console.json(f"/records/{record.id}.json"))["status"] == "stolen"
    assert "intruder" not in {u.name for u in await console.node.users.list_users()}
    assert (await console.get("/")).status == 200  # the logout was refused too


async def test_a_wrong_csrf_token_is_refused(console: Console) -> None:
    other = console.csrf[:-2] + ("AA" if not console.csrf.endswith("AA") else "BB")
    for token in (other, "x", "é" * 40, console.csrf + "0"):
        response = await console.post("/records/new", NEW_RECORD, csrf=token)
        assert response.status == 403
    assert await console.node.records.count() == 0
    assert (await console.post("/records/new", NEW_RECORD)).status == 303


async def test_an_upload_must_start_with_the_csrf_token(console: Console) -> None:
    assert (
        await console.upload(b"serial_number,make,firearm_type,status\n", csrf="")
    ).status == 403
    assert (
        await console.upload(b"serial_number,make,firearm_type,status\n", csrf="wrong")
    ).status == 403
    late = FormData()
    late.add_field("file", b"serial_number,make,firearm_type,status\n", filename="a.csv")
    late.add_field("csrf_token", console.csrf)
    response = await console.client.post("/records/import", data=late, allow_redirects=False)
    assert response.status == 403
    elsewhere = FormData()
    elsewhere.add_field("csrf_token", console.csrf)
    for name, value in NEW_RECORD.items():
        elsewhere.add_field(name, value)
    elsewhere.add_field("file", b"x", filename="x.csv")
    response = await console.client.post("/records/new", data=elsewhere, allow_redirects=False)
    assert response.status == 415
    assert await console.node.records.count() == 0
    uploads = console.node.config.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


async def test_the_login_form_has_its_own_csrf_protection(sqlite_node: Node) -> None:
    async with console_for(sqlite_node) as anonymous:
        form = {"name": "admin", "password": ADMIN_PASSWORD, "next": "/"}
        no_cookie = await anonymous.client.post(
            "/login", data=form | {"csrf_token": "forged"}, allow_redirects=False
        )
        assert no_cookie.status == 403
        page = await anonymous.get("/login")
        token = csrf_in(await page.text())
        wrong = await anonymous.client.post(
            "/login", data=form | {"csrf_token": token + "x"}, allow_redirects=False
        )
        assert wrong.status == 403
        assert "iarms_session" not in set_cookies(wrong)
        right = await anonymous.client.post(
            "/login", data=form | {"csrf_token": token}, allow_redirects=False
        )
        assert right.status == 303


async def test_every_response_carries_the_security_headers(console: Console) -> None:
    record = await add_record(console.node, "HDR-1")
    responses = {
        "dashboard": await console.get("/"),
        "record": await console.get(f"/records/{record.id}"),
        "json twin": await console.get("/records.json"),
        "not found": await console.get("/nowhere"),
        "forbidden post": await console.post("/records/new", NEW_RECORD, csrf="bad"),
        "redirect after post": await console.post(
            "/records/new", NEW_RECORD | {"serial_number": "HDR-2"}
        ),
        "stylesheet": await console.get("/static/console.css"),
        "missing static": await console.get("/static/nothing.css"),
    }
    await console.post("/logout")
    responses |= {
        "login page": await console.get("/login"),
        "login redirect": await console.get("/records"),
        "unauthenticated json": await console.get("/records.json"),
    }
    for what, response in responses.items():
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (what, header)
        if not what.endswith("static") and what != "stylesheet":
            assert response.headers.get("Cache-Control") == "no-store", what
    assert responses["stylesheet"].status == 200
    assert responses["stylesheet"].content_type == "text/css"
    assert responses["missing static"].status == 404


async def test_the_session_cookie_flags(sqlite_node: Node) -> None:
    async with console_for(sqlite_node) as console:
        login_page = await console.get("/login")
        login_csrf = set_cookies(login_page)["iarms_login_csrf"]
        assert login_csrf["httponly"] and login_csrf["secure"]
        assert login_csrf["samesite"] == "Strict"
        response = await console.login("admin", ADMIN_PASSWORD)
        cookie = set_cookies(response)["iarms_session"]
        assert cookie["httponly"] is True
        assert cookie["secure"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"
        assert len(cookie.value) >= 40
        assert cookie.value not in await (await console.get("/")).text()


async def test_script_in_a_record_is_shown_as_text(console: Console) -> None:
    record = await add_record(
        console.node, "XSS-1", notes=SCRIPT, make=SCRIPT, model='"><img src=x onerror=alert(1)>'
    )
    for path in (f"/records/{record.id}", "/records", f"/records/{record.id}/edit"):
        html = await (await console.get(path)).text()
        assert SCRIPT not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert "<img src=x" not in html, path
    data = await console.json(f"/records/{record.id}.json")
    assert data["notes"] == SCRIPT  # stored as entered; escaping is the page's job


OFF_SITE = [
    "https://evil.example",
    "//evil.example/x",
    "/\\evil.example",
    "javascript:x",
    "http:/evil.example",
    " /records",
    "/\t/evil.example",
]


async def test_login_never_redirects_off_the_console(sqlite_node: Node) -> None:
    async with console_for(sqlite_node) as console:
        for target in OFF_SITE:
            page = await console.get("/login?next=" + quote(target))
            assert 'name="next" value="/"' in await page.text(), target
        response = await console.login("admin", ADMIN_PASSWORD, next_path="https://evil.example")
        assert response.status == 303
        assert response.headers["Location"] == "/"
        for target in OFF_SITE[1:]:
            form = {
                "csrf_token": csrf_in(await (await console.get("/login")).text()),
                "name": "admin",
                "password": ADMIN_PASSWORD,
                "next": target,
            }
            response = await console.client.post("/login", data=form, allow_redirects=False)
            assert response.headers["Location"] == "/", target


async def test_logout_ends_the_session_for_good(console: Console) -> None:
    old_cookie = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/"))[
        "iarms_session"
    ].value
    response = await console.post("/logout")
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    assert set_cookies(response)["iarms_session"].value == ""
    replay = await console.client.get(
        "/records.json", cookies={"iarms_session": old_cookie}, allow_redirects=False
    )
    assert replay.status == 401
    replay_page = await console.client.get(
        "/", cookies={"iarms_session": old_cookie}, allow_redirects=False
    )
    assert replay_page.status == 302
    actions = [e.action for e in await console.node.audit.recent(limit=5)]
    assert "logout" in actions


async def test_disabling_a_user_ends_their_sessions(console: Console) -> None:
    await console.add_user("officer", Role.OFFICER)
    async with console_for(console.node) as officer:
        await officer.login_as("officer", OFFICER_PASSWORD)
        assert (await officer.get("/records")).status == 200
        assert (await console.post("/users/officer/status", {"status": "disabled"})).status == 303
        assert (await officer.get("/records")).status == 302
