"""Users, approval, login and sessions."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from node.accounts.model import ConsoleSession, Role, User, UserStatus
from node.accounts.storage import UserStorage
from node.accounts.throttle import LoginThrottle
from node.auditing import AuditEvent, AuditLog
from node.clock import Clock
from node.errors import AuthError, ConflictError, NotFoundError, ValidationError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=8)
#: The one answer to every failed sign-in, whatever the reason (the audit log has the reason).
SIGN_IN_FAILED = (
    "Sign-in failed: wrong user name or password, or the account is locked for a while after "
    "too many failures, disabled, or awaiting approval by a bureau admin"
)


def check_name(name: str) -> str:
    """A user name: 2-64 lower-case letters, digits, '.', '_' or '-'."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            f"name: {name!r} must be 2-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            "name",
        )
    return name


def check_password(password: str, field: str = "password") -> str:
    """Refuse passwords that are too short or absurdly long (ValidationError naming `field`)."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"{field}: at least {MIN_PASSWORD} characters", field)
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"{field}: at most {MAX_PASSWORD} characters", field)
    return password


def generate_password() -> str:
    """A one-time password to hand to a user: 20 characters, 120 random bits."""
    return secrets.token_urlsafe(15)


def parse_role(text: str) -> Role:
    """A role from user text, or a ValidationError listing the roles."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValidationError(f"role: {text!r} is not one of {roles}", "role") from None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def _refusal(user: User | None, matches: bool, now: datetime) -> str | None:
    """Why a sign-in with a password that `matches` (or not) fails, for the audit; None: it works.

    The lock comes first: while locked, even the right password does not tell.
    """
    if user is None:
        return "unknown user"
    if _locked(user, now):
        return "account locked"
    if not matches:
        return "wrong password"
    if user.status is UserStatus.PENDING:
        return "account awaiting approval"
    if user.status is not UserStatus.ACTIVE:
        return "account disabled"
    return None


def _new_password(digest: str, *, must_change: bool) -> dict[str, Any]:
    """The columns of a new password: the lockout is cleared with it."""
    return {
        "password_hash": digest,
        "must_change_password": must_change,
        "failed_logins": 0,
        "locked_until": None,
    }


class UsersService:
    """Accounts and console sessions."""

    def __init__(
        self,
        store: UserStorage,
        audit: AuditLog,
        clock: Clock,
        throttle: LoginThrottle | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        # Not `throttle or ...`: an empty throttle has len() 0, so it is falsy.
        self._throttle = LoginThrottle() if throttle is None else throttle
        self._hasher = PasswordHasher() if hasher is None else hasher
        self._dummy_hash: str | None = None

    async def add_user(
        self,
        name: str,
        role: Role,
        external: bool,
        password: str | None,
        actor: str,
        *,
        must_change_password: bool = True,
    ) -> tuple[User, str]:
        """Create an account; return it and its password (generated when none is given).

        Accounts for users outside the bureau start `pending` and cannot log in
        until a bureau admin approves them. A password handed out by someone
        else must be changed at first login (`must_change_password`); only a
        password the user chose themselves (`init --admin-password-file`) is not.
        """
        check_name(name)
        password = check_password(password) if password else generate_password()
        status = UserStatus.PENDING if external else UserStatus.ACTIVE
        digest = await asyncio.to_thread(self._hasher.hash, password)
        details = {
            "role": role.value,
            "external": external,
            "status": status.value,
            "change_at_first_login": must_change_password,
        }
        user = await self._store.add_user(
            name,
            role,
            external,
            status,
            digest,
            must_change_password,
            self._clock.now(),
            AuditEvent(actor, "user.add", f"user/{name}", details),
        )
        return user, password

    async def approve(self, name: str, actor: str) -> User:
        """Approve a pending account (the bureau's formal approval)."""
        user = await self._store.get_user(name)
        if user.status is not UserStatus.PENDING:
            raise ConflictError(f"user {name!r} is {user.status.value}, not pending approval")
        now = self._clock.now()
        values = {"status": UserStatus.ACTIVE.value, "approved_by": actor, "approved_at": now}
        return await self._store.set_user(
            name, values, now, AuditEvent(actor, "user.approve", f"user/{name}")
        )

    async def set_status(self, name: str, status: UserStatus, actor: str) -> User:
        """Disable or re-enable an account; disabling ends its sessions.

        A pending account is activated only by `approve`, which records who approved it.
        """
        user = await self._store.get_user(name)
        if user.status is UserStatus.PENDING and status is UserStatus.ACTIVE:
            raise ConflictError(f"user {name!r} is pending; approve the account instead")
        now = self._clock.now()
        return await self._store.set_user(
            name,
            {"status": status.value},
            now,
            AuditEvent(actor, "user.status", f"user/{name}", {"status": status.value}),
        )

    async def reset_password(self, name: str, password: str | None, actor: str) -> tuple[User, str]:
        """An admin's reset: a new password (generated when none is given), changed at next login.

        Clears any lockout and ends the account's sessions. Returns the account
        and the password to hand to its user.
        """
        password = check_password(password) if password else generate_password()
        digest = await asyncio.to_thread(self._hasher.hash, password)
        values = _new_password(digest, must_change=True)
        user = await self._store.set_password(
            name,
            values,
            self._clock.now(),
            AuditEvent(actor, "user.password.reset", f"user/{name}"),
            keep_session=None,
        )
        return user, password

    async def change_password(
        self, session: ConsoleSession, current: str, new: str, repeat: str
    ) -> User:
        """The session's user changes their own password; their other sessions end.

        A wrong `current` password counts as a failed sign-in (towards the lockout),
        so a borrowed session cannot be used to guess it.

        Raises:
            ValidationError: naming `current_password`, `new_password` or
                `repeat_password`; nothing is changed then.
        """
        check_password(new, "new_password")
        if new != repeat:
            raise ValidationError(
                "repeat_password: the two new passwords differ; type the same one twice",
                "repeat_password",
            )
        name, now = session.user.name, self._clock.now()
        user = await self._store.get_user(name)
        matches = await asyncio.to_thread(self._verify, user.password_hash, current)
        if _locked(user, now):
            raise ValidationError(
                "current_password: the account is locked for a while after too many failed "
                "sign-ins; try again later",
                "current_password",
            )
        if not matches:
            await self._count_failure(user, now, {"reason": "wrong current password"})
            raise ValidationError(
                "current_password: this is not your current password", "current_password"
            )
        if new == current:
            raise ValidationError(
                "new_password: choose a password that differs from the current one",
                "new_password",
            )
        digest = await asyncio.to_thread(self._hasher.hash, new)
        return await self._store.set_password(
            name,
            _new_password(digest, must_change=False),
            now,
            AuditEvent(name, "user.password.change", f"user/{name}"),
            keep_session=session.token_hash,
        )

    async def list_users(self) -> list[User]:
        """Every account, by name."""
        return await self._store.get_users()

    async def get_user(self, name: str) -> User:
        """One account; NotFoundError if none."""
        return await self._store.get_user(name)

    async def _dummy(self) -> str:
        """The hash an unknown name's password is verified against. Made at the first
        sign-in, before the name is looked up (so that sign-in costs the same whoever it
        names), not with the service: a command that opens the node never pays for it."""
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
        return self._dummy_hash

    async def authenticate(self, name: str, password: str, *, address: str) -> User:
        """Check a login from client `address`; the account, or AuthError(SIGN_IN_FAILED).

        The address's throttle is checked first, before any user is looked up or
        password hashed: a throttled address (LoginThrottledError, 429) can
        neither guess nor push an account towards its lockout. Past it, every
        failure (unknown name, wrong password, locked, disabled or pending
        account) gets the same answer after the same Argon2 work: one
        verification, against a dummy hash for an unknown name, so neither the
        answer nor its time tells a stranger that the name exists. The audit log
        says which it was. A locked account's verification neither unlocks nor counts.
        """
        now = self._clock.now()
        self._throttle.admit(address, now)
        dummy = await self._dummy()
        user = await self._find_user(name)
        digest = dummy if user is None else user.password_hash
        matches = await asyncio.to_thread(self._verify, digest, password)
        reason = _refusal(user, matches, now)
        if user is not None and reason is None:
            self._throttle.forgive(address, now)
            await self._store.set_user(
                name,
                {"failed_logins": 0, "locked_until": None},
                now,
                AuditEvent(name, "login", "console"),
            )
            return user
        if user is not None:
            details = {"reason": reason, "address": address}
            if reason == "wrong password":
                await self._count_failure(user, now, details)
            else:
                await self._audit.add_entry(now, AuditEvent(name, "login.fail", "console", details))
        await self._audit_failure(address, now, unknown_user=user is None)
        raise AuthError(SIGN_IN_FAILED)

    async def _find_user(self, name: str) -> User | None:
        try:
            return await self._store.get_user(name)
        except NotFoundError:
            return None

    async def _count_failure(
        self, user: User, now: datetime, details: Mapping[str, object]
    ) -> None:
        """Count a wrong password against `user`, locking the account at the limit."""
        failures = user.failed_logins + 1
        locked = now + LOCKOUT if failures >= MAX_FAILED_LOGINS else None
        event = AuditEvent(
            user.name, "login.fail", "console", {**details, "locked": locked is not None}
        )
        await self._store.set_user(
            user.name,
            {"failed_logins": 0 if locked else failures, "locked_until": locked},
            now,
            event,
        )

    async def _audit_failure(self, address: str, now: datetime, *, unknown_user: bool) -> None:
        """Write the entries the throttle says are worth it: never a password.

        A name that matches no account is left out too: it is sometimes a
        password typed into the wrong field.
        """
        outcome = self._throttle.failed(address, now, unknown_user=unknown_user)
        actor = f"address:{address}"
        details: dict[str, object] = {"address": address, "failures": outcome.failures}
        if outcome.audit_unknown_user:
            event = AuditEvent(actor, "login.unknown_user", "console", details)
            await self._audit.add_entry(now, event)
        if outcome.throttled_until is not None:
            until = {"until": outcome.throttled_until.isoformat()}
            event = AuditEvent(actor, "login.throttled", "console", details | until)
            await self._audit.add_entry(now, event)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self._hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return False

    async def start_session(self, user: User) -> tuple[str, ConsoleSession]:
        """Open a console session; return the cookie token and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._clock.now()
        await self._store.add_session(_token_hash(token), user, csrf, now, now + SESSION_LIFETIME)
        session = ConsoleSession(_token_hash(token), user, csrf, now, now + SESSION_LIFETIME)
        return token, session

    async def get_session(self, token: str) -> ConsoleSession | None:
        """The live session for a cookie token, or None (expired, ended, user disabled)."""
        if not token or len(token) > 128:
            return None
        session = await self._store.get_session(_token_hash(token), self._clock.now())
        if session is None or session.user.status is not UserStatus.ACTIVE:
            return None
        return session

    async def end_session(self, session: ConsoleSession) -> None:
        """Log out."""
        await self._store.delete_session(session.token_hash)
        await self._audit.add_entry(
            self._clock.now(), AuditEvent(session.user.name, "logout", "console")
        )
