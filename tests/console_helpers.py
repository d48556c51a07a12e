"""Helpers for the console tests: a logged-in test client over a real console app."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse, CookieJar, FormData
from aiohttp.test_utils import TestClient, TestServer

from admin_ui.app import build_console_app
from node.accounts.model import Role
from node.app import Node
from node.records.model import FirearmRecord, RecordInput
from tests.conftest import ADMIN_PASSWORD

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
OFFICER_PASSWORD = "officer password 123"
JOB_TIMEOUT = 10.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def csrf_in(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_FIELD.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Console:
    """A test client of one console, logged in as one user at a time."""

    def __init__(self, client: TestClient[Any, Any], node: Node) -> None:
        self.client = client
        self.node = node
        self.csrf = ""

    async def login(self, name: str, password: str, next_path: str = "/") -> ClientResponse:
        """Forget the current session and log in; return the login POST's response."""
        self.client.session.cookie_jar.clear()
        page = await self.client.get("/login")
        form = {
            "csrf_token": csrf_in(await page.text()),
            "name": name,
            "password": password,
            "next": next_path,
        }
        response = await self.client.post("/login", data=form, allow_redirects=False)
        if response.status == 303:
            self.csrf = csrf_in(await (await self.client.get("/")).text())
        return response

    async def login_as(self, name: str, password: str) -> None:
        """Log in and insist that it worked."""
        response = await self.login(name, password)
        assert response.status == 303, await response.text()

    async def change_password(
        self, current: str, new: str, repeat: str | None = None, next_path: str = "/"
    ) -> ClientResponse:
        """POST the change-password form of the logged-in user."""
        form = {
            "current_password": current,
            "new_password": new,
            "repeat_password": new if repeat is None else repeat,
            "next": next_path,
        }
        return await self.post("/account/password", form)

    async def add_user(self, name: str, role: Role, password: str = OFFICER_PASSWORD) -> None:
        """Create an active in-bureau account through the service, its password already its own."""
        await self.node.users.add_user(
            name, role, False, password, actor="test", must_change_password=False
        )

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        """GET without following redirects."""
        return await self.client.get(path, allow_redirects=False, **kwargs)

    async def json(self, path: str, status: int = 200) -> Any:
        """GET a `.json` twin and return its data, checking the status."""
        response = await self.client.get(path, allow_redirects=False)
        assert response.status == status, await response.text()
        return await response.json()

    async def json_post(self, path: str, data: Mapping[str, str], status: int = 200) -> Any:
        """POST a form (with the CSRF token) to a `.json` twin; its data, checking the status."""
        response = await self.post(path, data)
        assert response.status == status, await response.text()
        return await response.json()

    async def post(
        self, path: str, data: Mapping[str, str] | None = None, *, csrf: str | None = None
    ) -> ClientResponse:
        """POST a form with the session's CSRF token (or `csrf`, "" for none)."""
        form = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            form["csrf_token"] = token
        return await self.client.post(path, data=form, allow_redirects=False)

    async def upload(
        self,
        content: bytes,
        filename: str = "records.csv",
        *,
        csrf: str | None = None,
        path: str = "/records/import",
    ) -> ClientResponse:
        """POST a CSV file to `path` (an import form) as multipart form data, token first."""
        form = FormData()
        token = self.csrf if csrf is None else csrf
        if token:
            form.add_field("csrf_token", token)
        form.add_field("file", content, filename=filename, content_type="text/csv")
        return await self.client.post(path, data=form, allow_redirects=False)

    async def wait_for_job(self, location: str) -> dict[str, Any]:
        """Poll an import job's `.json` twin until it is no longer running."""
        async with asyncio.timeout(JOB_TIMEOUT):
            while True:
                job: dict[str, Any] = await self.json(location + ".json")
                if job["state"] != "running":
                    return job
                await asyncio.sleep(0.02)


@asynccontextmanager
async def console_for(node: Node, **app_options: Any) -> AsyncIterator[Console]:
    """A console app for `node` on a test server, with a client that keeps Secure cookies."""
    server = TestServer(build_console_app(node, **app_options))
    await server.start_server()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
    client: TestClient[Any, Any] = TestClient(server, cookie_jar=jar)
    await client.start_server()
    try:
        yield Console(client, node)
    finally:
        await client.close()


def record_entry(serial: str, **fields: Any) -> RecordInput:
    """A valid record entry with sensible defaults."""
    values: dict[str, Any] = {"make": "Glock", "firearm_type": "pistol", "status": "stolen"}
    return RecordInput(serial_number=serial, **(values | fields))


async def add_record(node: Node, serial: str, **fields: Any) -> FirearmRecord:
    """Store a record through the service, as a test officer."""
    return await node.records.create(record_entry(serial, **fields), actor="test")


__all__ = ["ADMIN_PASSWORD", "OFFICER_PASSWORD", "Console", "add_record", "console_for"]
