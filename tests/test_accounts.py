"""Accounts: approval, lockout, sessions, password changes and resets, uniform failed sign-ins."""

from __future__ import annotations

from typing import Any

import pytest

from node.accounts.model import ConsoleSession, Role, UserStatus
from node.accounts.service import SIGN_IN_FAILED, UsersService
from node.accounts.throttle import LoginThrottle, LoginThrottleConfig
from node.app import Node
from node.clock import FakeClock
from node.errors import AuthError, ConflictError, NotFoundError, ValidationError
from node.store.audit import AuditStore
from node.store.users import UsersStore
from tests.conftest import ADMIN_PASSWORD, CheapArgon2

ADDRESS = "192.0.2.10"
OFFICER_PASSWORD = "officer password 1"
NEW_PASSWORD = "a password of my own"


class CountingHasher(CheapArgon2):
    """Argon2id as the tests' nodes use it, counting the verifications."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        self.verified += 1
        return super().verify(hash, password)


async def _refusal(users: UsersService, name: str, password: str) -> str:
    with pytest.raises(AuthError) as refused:
        await users.authenticate(name, password, address=ADDRESS)
    assert type(refused.value) is AuthError and refused.value.status == 401
    return str(refused.value)


async def test_five_failures_lock_the_account_for_a_while(
    sqlite_node: Node, clock: FakeClock
) -> None:
    users = sqlite_node.users
    for _ in range(5):
        assert await _refusal(users, "admin", "not the password") == SIGN_IN_FAILED
    assert await _refusal(users, "admin", ADMIN_PASSWORD) == SIGN_IN_FAILED  # locked
    clock.advance(16 * 60)
    assert (await users.authenticate("admin", ADMIN_PASSWORD, address=ADDRESS)).name == "admin"
    entries = await sqlite_node.audit.recent(limit=7)
    assert entries[0].action == "login"
    reasons = [e.details["reason"] for e in entries if e.action == "login.fail"]
    assert reasons == ["account locked"] + ["wrong password"] * 5  # the admin sees which


async def test_every_failed_sign_in_gets_one_answer_after_one_argon2_verification(
    sqlite_node: Node, clock: FakeClock
) -> None:
    """Defect 11: a locked, disabled, pending or unknown account answers like a wrong password,
    after the same Argon2 work, so neither the text nor the time tells the name exists."""
    hasher = CountingHasher()
    throttle = LoginThrottle(LoginThrottleConfig(max_failures=100))  # this test is not about it
    users = UsersService(
        UsersStore(sqlite_node.db), AuditStore(sqlite_node.db), clock, throttle, hasher
    )
    await users.add_user("officer.a", Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    await users.add_user("officer.d", Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    await users.set_status("officer.d", UserStatus.DISABLED, "admin")
    await users.add_user("customs.p", Role.OFFICER, True, OFFICER_PASSWORD, "admin")
    for _ in range(5):
        await _refusal(users, "officer.a", "a wrong password")
    attempts = {
        "unknown name": ("nobody.here", OFFICER_PASSWORD),
        "wrong password": ("admin", "a wrong password"),
        "locked, right password": ("officer.a", OFFICER_PASSWORD),
        "locked, wrong password": ("officer.a", "a wrong password"),
        "disabled": ("officer.d", OFFICER_PASSWORD),
        "pending": ("customs.p", OFFICER_PASSWORD),
    }
    for what, (name, password) in attempts.items():
        before = hasher.verified
        assert await _refusal(users, name, password) == SIGN_IN_FAILED, what
        assert hasher.verified == before + 1, what
    locked = await users.get_user("officer.a")
    # Neither counted nor unlocked by the attempts while locked.
    assert locked.failed_logins == 0 and locked.locked_until is not None
    assert locked.locked_until > clock.now()


async def test_external_accounts_wait_for_approval(sqlite_node: Node) -> None:
    users = sqlite_node.users
    user, password = await users.add_user("customs.lille", Role.OFFICER, True, None, "admin")
    assert user.status is UserStatus.PENDING and len(password) >= 12
    assert await _refusal(users, "customs.lille", password) == SIGN_IN_FAILED
    [refused] = [e for e in await sqlite_node.audit.recent(limit=3) if e.action == "login.fail"]
    assert refused.details["reason"] == "account awaiting approval"
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
    assert await _refusal(users, "analyst.one", "a long password 1") == SIGN_IN_FAILED


async def _signed_in(users: UsersService, name: str, password: str) -> tuple[str, ConsoleSession]:
    return await users.start_session(await users.authenticate(name, password, address=ADDRESS))


async def test_handed_out_passwords_must_be_changed_and_a_chosen_one_need_not(
    node: Node,
) -> None:
    """Defect 7: what an admin hands out is flagged; init with a chosen password is not."""
    users = node.users
    assert (await users.get_user("admin")).must_change_password is False  # --admin-password-file
    user, _ = await users.add_user("officer.a", Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    assert user.must_change_password is True
    generated, _ = await users.add_user("officer.b", Role.OFFICER, False, None, "admin")
    assert generated.must_change_password is True
    [added] = [e for e in await node.audit.recent(limit=2) if e.target == "user/officer.b"]
    assert added.details["change_at_first_login"] is True


async def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(
    node: Node,
) -> None:
    users = node.users
    await users.add_user("officer.a", Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    other, _ = await _signed_in(users, "officer.a", OFFICER_PASSWORD)
    token, session = await _signed_in(users, "officer.a", OFFICER_PASSWORD)
    changed = await users.change_password(session, OFFICER_PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    assert changed.must_change_password is False
    assert await users.get_session(other) is None
    kept = await users.get_session(token)
    assert kept is not None and kept.user.must_change_password is False
    assert (await users.authenticate("officer.a", NEW_PASSWORD, address=ADDRESS)).name
    assert await _refusal(users, "officer.a", OFFICER_PASSWORD) == SIGN_IN_FAILED
    changes = [e for e in await node.audit.recent(limit=10) if e.action == "user.password.change"]
    assert [(e.actor, e.target) for e in changes] == [("officer.a", "user/officer.a")]


@pytest.mark.parametrize(
    ("current", "new", "repeat", "field", "message"),
    [
        ("not it at all", NEW_PASSWORD, NEW_PASSWORD, "current_password", "not your current"),
        (OFFICER_PASSWORD, "short", "short", "new_password", "at least 12"),
        (OFFICER_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "repeat_password", "differ"),
        (OFFICER_PASSWORD, OFFICER_PASSWORD, OFFICER_PASSWORD, "new_password", "differs from"),
    ],
)
async def test_a_refused_password_change_names_the_field_and_changes_nothing(
    sqlite_node: Node, current: str, new: str, repeat: str, field: str, message: str
) -> None:
    users = sqlite_node.users
    await users.add_user("officer.a", Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    _, session = await _signed_in(users, "officer.a", OFFICER_PASSWORD)
    with pytest.raises(ValidationError, match=message) as refused:
        await users.change_password(session, current, new, repeat)
    assert refused.value.field == field
    after = await users.get_user("officer.a")
    assert after.must_change_password is True and after.password_hash == session.user.password_hash


async def test_guessing_the_current_password_locks_the_account(sqlite_node: Node) -> None:
    users = sqlite_node.users
    await users.add_user("officer.a", Role.OFFICER, False, OFFICER_PASSWORD, "admin")
    _, session = await _signed_in(users, "officer.a", OFFICER_PASSWORD)
    for _ in range(5):
        with pytest.raises(ValidationError, match="not your current password"):
            await users.change_password(session, "a guess at it", NEW_PASSWORD, NEW_PASSWORD)
    with pytest.raises(ValidationError, match="locked"):
        await users.change_password(session, OFFICER_PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    assert await _refusal(users, "officer.a", OFFICER_PASSWORD) == SIGN_IN_FAILED


async def test_an_admin_reset_ends_sessions_clears_the_lock_and_must_be_changed(
    node: Node, clock: FakeClock
) -> None:
    users = node.users
    await users.add_user(
        "officer.a", Role.OFFICER, False, OFFICER_PASSWORD, "admin", must_change_password=False
    )
    token, _ = await _signed_in(users, "officer.a", OFFICER_PASSWORD)
    for _ in range(5):
        await _refusal(users, "officer.a", "a wrong password")
    user, password = await users.reset_password("officer.a", None, "admin")
    assert user.must_change_password is True and user.locked_until is None and len(password) >= 20
    assert await users.get_session(token) is None
    signed_in = await users.authenticate("officer.a", password, address=ADDRESS)
    assert signed_in.must_change_password is True
    [reset] = [e for e in await node.audit.recent(limit=5) if e.action == "user.password.reset"]
    assert (reset.actor, reset.target) == ("admin", "user/officer.a")
    chosen, given = await users.reset_password("officer.a", "chosen by the admin", "admin")
    assert given == "chosen by the admin" and chosen.must_change_password is True
    with pytest.raises(NotFoundError):
        await users.reset_password("nobody.here", None, "admin")
