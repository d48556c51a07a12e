"""Console users, their roles and sessions: typed values shared by service and store."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(enum.StrEnum):
    """What a user may do. Admins may do everything."""

    ADMIN = "admin"  # users, configuration, and everything below
    OFFICER = "officer"  # records and searches
    ANALYST = "analyst"  # read-only statistics
    AUDITOR = "auditor"  # the audit log


class UserStatus(enum.StrEnum):
    """`pending` accounts (users outside the bureau) cannot log in until approved."""

    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class User:
    """A console account."""

    id: int
    name: str
    role: Role
    external: bool
    status: UserStatus
    password_hash: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    failed_logins: int
    locked_until: datetime | None
    must_change_password: bool  # its password was handed out by someone else

    def may(self, *roles: Role) -> bool:
        """Whether this user holds one of `roles` (admins hold every role)."""
        return self.role is Role.ADMIN or self.role in roles


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A logged-in browser session; the cookie holds a token whose hash is `token_hash`."""

    token_hash: str
    user: User
    csrf_token: str
    created_at: datetime
    expires_at: datetime
