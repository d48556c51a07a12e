"""Accounts: approval, lockout, sessions."""

from __future__ import annotations

import pytest

from node.accounts.model import Role, UserStatus
from node.app import Node
from node.clock import FakeClock
from node.errors import AuthError, ConflictError, ValidationError
from tests.conftest import ADMIN_PASSWORD

ADDRESS = "192.0.2.10"


async def test_five_failures_lock_the_account_for_a_while(
    sqlite_node: Node, clock: FakeClock
) -> None:
    users = sqlite_node.users
    for _ in range(5):
        with pytest.raises(AuthError, match="wrong user name or password"):
            await users.authenticate("admin", "not the password", address=ADDRESS)
    with pytest.raises(AuthError, match="too many failed logins"):
        await users.authenticate("admin", ADMIN_PASSWORD, address=ADDRESS)
    clock.advance(16 * 60)
    assert (await users.authenticate("admin", ADMIN_PASSWORD, address=ADDRESS)).name == "admin"
    actions = [e.action for e in await sqlite_node.audit.recent(limit=7)]
    assert actions.count("login.fail") == 5 and actions[0] == "login"


async def test_external_accounts_wait_for_approval(sqlite_node: Node) -> None:
    users = sqlite_node.users
    user, password = await users.add_user("customs.lille", Role.OFFICER, True, None, "admin")
    assert user.status is UserStatus.PENDING and len(password) >= 12
    with pytest.raises(AuthError, match="awaiting approval"):
        await users.authenticate("customs.lille", password, address=ADDRESS)
    approved = await users.approve("customs.lille", "admin")
    assert (approved.approved_by, approved.status) == ("admin", UserStatus.ACTIVE)
    assert (
        await users.authenticate("customs.lille", password, address=ADDRESS)
    ).name == "customs.lille"
    with pytest.raises(ConflictError, match="already exists"):
        await users.add_user("customs.lille", Role.OFFICER, True, None, "admin")


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [("A", None, "name: 'A' must be"), ("ok.name", "short", "password: at least 12")],
)
async def test_bad_names_and_passwords(
    sqlite_node: Node, name: str, password: str | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        await sqlite_node.users.add_user(name, Role.ANALYST, False, password, "admin")


async def test_sessions_expire_and_end_when_disabled(sqlite_node: Node, clock: FakeClock) -> None:
    users = sqlite_node.users
    await users.add_user("analyst.one", Role.ANALYST, False, "a long password 1", "admin")
    user = await users.authenticate("analyst.one", "a long password 1", address=ADDRESS)
    token, _session = await users.start_session(user)
    assert (await users.get_session(token)) is not None
    clock.advance(9 * 3600)
    assert await users.get_session(token) is None
    token, _session = await users.start_session(user)
    await users.set_status("analyst.one", UserStatus.DISABLED, "admin")
    assert await users.get_session(token) is None
    with pytest.raises(AuthError, match="disabled"):
        await users.authenticate("analyst.one", "a long password 1", address=ADDRESS)
