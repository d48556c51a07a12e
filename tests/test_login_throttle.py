"""The failed-login throttle per client address: the pure class, the service, the console."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar, TCPConnector
from aiohttp.test_utils import TestClient

from node.accounts.model import Role
from node.accounts.throttle import LoginThrottle, LoginThrottleConfig
from node.app import Node
from node.clock import FakeClock
from node.config import load_config
from node.errors import AuthError, LoginThrottledError
from node.initialise import init_node
from tests.console_helpers import (
    ADMIN_PASSWORD,
    OFFICER_PASSWORD,
    Console,
    console_for,
    csrf_in,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
ADDRESS = "192.0.2.10"


def fail(throttle: LoginThrottle, address: str, at: datetime, *, unknown: bool = False) -> None:
    throttle.admit(address, at)
    throttle.failed(address, at, unknown_user=unknown)


async def actions(node: Node, action: str) -> list[dict[str, Any]]:
    """The details of every audit entry with `action`, newest first."""
    return [e.details for e in await node.audit.recent(limit=200, action=action)]


# The pure throttle.


def test_an_address_is_refused_after_its_failures_and_another_is_not() -> None:
    throttle = LoginThrottle(LoginThrottleConfig(max_failures=3))
    for minute in range(3):
        fail(throttle, "a", T0 + timedelta(minutes=minute))
    with pytest.raises(LoginThrottledError) as refused:
        throttle.admit("a", T0 + timedelta(minutes=5))
    assert refused.value.retry_after == timedelta(minutes=10)  # the oldest failure ages out
    assert refused.value.status == 429
    throttle.admit("b", T0 + timedelta(minutes=5))


def test_the_window_slides_one_failure_at_a_time() -> None:
    throttle = LoginThrottle(LoginThrottleConfig(max_failures=2))
    fail(throttle, "a", T0)
    fail(throttle, "a", T0 + timedelta(minutes=10))
    throttle.admit("a", T0 + WINDOW)  # the first failure has aged out: one more try
    throttle.failed("a", T0 + WINDOW, unknown_user=False)
    with pytest.raises(LoginThrottledError):
        throttle.admit("a", T0 + WINDOW)


def test_attempts_count_until_forgiven_so_concurrent_ones_cannot_slip_past() -> None:
    throttle = LoginThrottle(LoginThrottleConfig(max_failures=2))
    throttle.admit("a", T0)
    throttle.admit("a", T0)  # two passwords still being checked
    with pytest.raises(LoginThrottledError):
        throttle.admit("a", T0)
    throttle.forgive("a", T0)  # one was right
    throttle.admit("a", T0)


def test_unknown_names_and_the_throttling_are_audited_once_per_window() -> None:
    throttle = LoginThrottle(LoginThrottleConfig(max_failures=3))
    outcomes = []
    for _ in range(3):
        throttle.admit("a", T0)
        outcomes.append(throttle.failed("a", T0, unknown_user=True))
    assert [o.audit_unknown_user for o in outcomes] == [True, False, False]
    assert [o.throttled_until for o in outcomes] == [None, None, T0 + WINDOW]
    assert [o.failures for o in outcomes] == [1, 2, 3]
    later = T0 + WINDOW
    throttle.admit("a", later)
    assert throttle.failed("a", later, unknown_user=True).audit_unknown_user


def test_memory_is_bounded_and_the_least_recent_address_is_forgotten() -> None:
    throttle = LoginThrottle(LoginThrottleConfig(max_failures=1, max_addresses=2))
    fail(throttle, "a", T0)
    fail(throttle, "b", T0)
    fail(throttle, "c", T0)
    assert len(throttle) == 2
    throttle.admit("a", T0)  # forgotten, so admitted again
    with pytest.raises(LoginThrottledError):
        throttle.admit("c", T0)
    throttle.admit("d", T0 + WINDOW)  # everything else is stale by now
    assert len(throttle) == 1


@pytest.mark.parametrize(
    ("seconds", "message"),
    [(30, "try again in 1 minute"), (61, "try again in 2 minutes"), (900, "in 15 minutes")],
)
def test_the_message_says_when_to_retry(seconds: int, message: str) -> None:
    error = LoginThrottledError(timedelta(seconds=seconds))
    assert str(error).startswith("too many failed sign-ins from this address; ")
    assert message in str(error)


def test_a_nonsense_config_is_refused() -> None:
    with pytest.raises(ValueError, match="login throttle"):
        LoginThrottleConfig(max_failures=0)


# The service: audit entries and account lockouts.


async def test_unknown_names_write_one_entry_and_the_throttling_one(
    sqlite_node: Node, clock: FakeClock
) -> None:
    users = sqlite_node.users
    for i in range(10):
        with pytest.raises(AuthError, match="wrong user name or password"):
            await users.authenticate(f"guess{i}", f"password {i}", address=ADDRESS)
    for _ in range(5):
        with pytest.raises(LoginThrottledError):
            await users.authenticate("admin", ADMIN_PASSWORD, address=ADDRESS)
    unknown = await actions(sqlite_node, "login.unknown_user")
    assert unknown == [{"address": ADDRESS, "failures": 1}]
    throttled = await actions(sqlite_node, "login.throttled")
    until = (clock.now() + timedelta(minutes=15)).isoformat()
    assert throttled == [{"address": ADDRESS, "failures": 10, "until": until}]
    entries = await sqlite_node.audit.recent(limit=200)
    assert not any("password" in str(e.details) or "guess" in str(e.details) for e in entries)
    assert {e.actor for e in entries if e.action.startswith("login.")} == {f"address:{ADDRESS}"}
    clock.advance(15 * 60)
    with pytest.raises(AuthError, match="wrong user name"):
        await users.authenticate("guess", "password", address=ADDRESS)
    assert len(await actions(sqlite_node, "login.unknown_user")) == 2  # a new window


async def test_the_node_s_configured_throttle_is_the_one_used(
    tmp_path: Path, clock: FakeClock
) -> None:
    """An empty LoginThrottle has len() 0: `throttle or LoginThrottle()` used to replace the
    configured one with the defaults, so `login_failures` in config.toml had no effect."""
    await init_node(tmp_path / "fra", "FRA", admin_password=ADMIN_PASSWORD, clock=clock)
    path = tmp_path / "fra" / "config.toml"
    text = path.read_text()
    path.write_text(text.replace("[console]\n", "[console]\nlogin_failures = 2\n"))
    config = load_config(tmp_path / "fra")
    assert config.login_throttle.max_failures == 2
    node = await Node.open(config, clock)
    try:
        for _ in range(2):
            with pytest.raises(AuthError):
                await node.users.authenticate("nobody", "a wrong password", address=ADDRESS)
        with pytest.raises(LoginThrottledError):
            await node.users.authenticate("admin", ADMIN_PASSWORD, address=ADDRESS)
    finally:
        await node.close()


async def test_one_address_can_lock_at_most_two_accounts_per_window(sqlite_node: Node) -> None:
    users = sqlite_node.users
    for name in ("officer.a", "officer.b", "officer.c"):
        await users.add_user(name, Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    for name in ("officer.a", "officer.b", "officer.c"):
        for _ in range(5):
            with pytest.raises(AuthError):
                await users.authenticate(name, "a wrong password", address=ADDRESS)
    assert (await users.get_user("officer.a")).locked_until is not None
    assert (await users.get_user("officer.b")).locked_until is not None
    spared = await users.get_user("officer.c")
    assert (spared.locked_until, spared.failed_logins) == (None, 0)
    fails = await actions(sqlite_node, "login.fail")
    assert len(fails) == 10 and all(d["address"] == ADDRESS for d in fails)
    assert len(await actions(sqlite_node, "login.throttled")) == 1
    user = await users.authenticate("officer.c", OFFICER_PASSWORD, address="192.0.2.11")
    assert user.name == "officer.c"


# The console.


@asynccontextmanager
async def client_from(console: Console, source: str) -> AsyncIterator[Console]:
    """Another browser on the same console, connecting from the loopback address `source`."""
    server = console.client.server
    jar = CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
    connector = TCPConnector(local_addr=(source, 0))
    client: TestClient[Any, Any] = TestClient(server, cookie_jar=jar, connector=connector)
    try:
        yield Console(client, console.node)
    finally:
        await client.close()


@pytest.fixture
async def console(sqlite_node: Node) -> AsyncIterator[Console]:
    """A console on the SQLite node, nobody logged in."""
    async with console_for(sqlite_node) as c:
        yield c


async def test_after_ten_failures_the_right_password_gets_429_until_the_window_passes(
    console: Console, clock: FakeClock
) -> None:
    for i in range(10):
        assert (await console.login(f"nobody{i}", "a wrong password")).status == 401
    refused = await console.login("admin", ADMIN_PASSWORD)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "900"
    message = "too many failed sign-ins from this address; try again in 15 minutes"
    assert message in await refused.text()
    assert await actions(console.node, "login") == []
    assert len(await actions(console.node, "login.throttled")) == 1
    clock.advance(10 * 60)
    assert "try again in 5 minutes" in await (await console.login("admin", ADMIN_PASSWORD)).text()
    clock.advance(5 * 60)
    await console.login_as("admin", ADMIN_PASSWORD)
    assert len(await actions(console.node, "login.unknown_user")) == 1
    assert len(await actions(console.node, "login.throttled")) == 1


async def test_another_address_is_unaffected_and_forwarded_for_is_ignored(
    console: Console,
) -> None:
    for _ in range(10):
        assert (await console.login("nobody", "a wrong password")).status == 401
    assert (await console.login("admin", ADMIN_PASSWORD)).status == 429
    page = await console.client.get("/login")
    form = {
        "csrf_token": csrf_in(await page.text()),
        "name": "admin",
        "password": ADMIN_PASSWORD,
        "next": "/",
    }
    spoofed = await console.client.post(
        "/login", data=form, headers={"X-Forwarded-For": "192.0.2.99"}, allow_redirects=False
    )
    assert spoofed.status == 429
    async with client_from(console, "127.0.0.2") as other:
        await other.login_as("admin", ADMIN_PASSWORD)
    [throttled] = await actions(console.node, "login.throttled")
    assert throttled["address"] == "127.0.0.1"
