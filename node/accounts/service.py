"""Users, approval, login and sessions."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import datetime, timedelta

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


def check_name(name: str) -> str:
    """A user name: 2-64 lower-case letters, digits, '.', '_' or '-'."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            f"name: {name!r} must be 2-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            "name",
        )
    return name


def check_password(password: str) -> str:
    """Refuse passwords that are too short or absurdly long."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password: at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"password: at most {MAX_PASSWORD} characters", "password")
    return password


def parse_role(text: str) -> Role:
    """A role from user text, or a ValidationError listing the roles."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValidationError(f"role: {text!r} is not one of {roles}", "role") from None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UsersService:
    """Accounts and console sessions."""

    def __init__(
        self,
        store: UserStorage,
        audit: AuditLog,
        clock: Clock,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._throttle = throttle or LoginThrottle()
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    async def add_user(
        self, name: str, role: Role, external: bool, password: str | None, actor: str
    ) -> tuple[User, str]:
        """Create an account; return it and its password (generated when none is given).

        Accounts for users outside the bureau start `pending` and cannot log in
        until a bureau admin approves them.
        """
        check_name(name)
        password = check_password(password) if password else secrets.token_urlsafe(15)
        status = UserStatus.PENDING if external else UserStatus.ACTIVE
        digest = await asyncio.to_thread(self._hasher.hash, password)
        details = {"role": role.value, "external": external, "status": status.value}
        user = await self._store.add_user(
            name,
            role,
            external,
            status,
            digest,
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

    async def set_password(self, name: str, password: str, actor: str) -> User:
        """Set a new password and clear any lockout."""
        digest = await asyncio.to_thread(self._hasher.hash, check_password(password))
        values = {"password_hash": digest, "failed_logins": 0, "locked_until": None}
        return await self._store.set_user(
            name, values, self._clock.now(), AuditEvent(actor, "user.password", f"user/{name}")
        )

    async def list_users(self) -> list[User]:
        """Every account, by name."""
        return await self._store.get_users()

    async def get_user(self, name: str) -> User:
        """One account; NotFoundError if none."""
        return await self._store.get_user(name)

    async def authenticate(self, name: str, password: str, *, address: str) -> User:
        """Check a login from client `address`; AuthError with the reason an officer may be told.

        The address's throttle is checked first, before any user is looked up or
        password hashed: a throttled address (LoginThrottledError, 429) can
        neither guess nor push an account towards its lockout.
        """
        now = self._clock.now()
        self._throttle.admit(address, now)
        user = await self._verified_user(name, password, address, now)
        self._throttle.forgive(address, now)
        if user.status is UserStatus.PENDING:
            raise AuthError("your account is awaiting approval by a bureau admin")
        if user.status is not UserStatus.ACTIVE:
            raise AuthError("your account is disabled")
        await self._store.set_user(
            name,
            {"failed_logins": 0, "locked_until": None},
            now,
            AuditEvent(name, "login", "console"),
        )
        return user

    async def _verified_user(self, name: str, password: str, address: str, now: datetime) -> User:
        """The account if `password` is its password; else AuthError, after the audit."""
        try:
            user = await self._store.get_user(name)
        except NotFoundError:
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            await self._audit_failure(address, now, unknown_user=True)
            raise AuthError("wrong user name or password") from None
        if user.locked_until and user.locked_until > now:
            await self._audit_failure(address, now, unknown_user=False)
            raise AuthError("too many failed logins; try again later or ask an admin")
        if not await asyncio.to_thread(self._verify, user.password_hash, password):
            failures = user.failed_logins + 1
            locked = now + LOCKOUT if failures >= MAX_FAILED_LOGINS else None
            details = {"reason": "wrong password", "locked": locked is not None, "address": address}
            await self._store.set_user(
                name,
                {"failed_logins": 0 if locked else failures, "locked_until": locked},
                now,
                AuditEvent(name, "login.fail", "console", details),
            )
            await self._audit_failure(address, now, unknown_user=False)
            raise AuthError("wrong user name or password")
        return user

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
