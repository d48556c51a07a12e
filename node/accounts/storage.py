"""What the accounts service needs from storage: a `typing.Protocol` that `node.store`
implements (`node.store.users.UsersStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from node.accounts.model import ConsoleSession, Role, User, UserStatus
from node.auditing import AuditEvent


class UserStorage(Protocol):
    """Console accounts and their sessions."""

    async def add_user(
        self,
        name: str,
        role: Role,
        external: bool,
        status: UserStatus,
        password_hash: str,
        must_change_password: bool,
        at: datetime,
        audit: AuditEvent,
    ) -> User:
        """Create an account; ConflictError if the name is taken."""
        ...

    async def get_user(self, name: str) -> User:
        """The account with this name; NotFoundError if none."""
        ...

    async def get_users(self) -> list[User]:
        """Every account, by name."""
        ...

    async def set_user(
        self, name: str, values: dict[str, Any], at: datetime, audit: AuditEvent | None
    ) -> User:
        """Change an account's columns (status, role, login counters); an account that is
        no longer active loses its sessions."""
        ...

    async def set_password(
        self,
        name: str,
        values: dict[str, Any],
        at: datetime,
        audit: AuditEvent,
        *,
        keep_session: str | None,
    ) -> User:
        """Change an account's password columns and end its sessions, but `keep_session`'s."""
        ...

    async def add_session(
        self, token_hash: str, user: User, csrf_token: str, at: datetime, expires_at: datetime
    ) -> None:
        """Store a new console session."""
        ...

    async def get_session(self, token_hash: str, at: datetime) -> ConsoleSession | None:
        """The live session with this token hash and its user, or None."""
        ...

    async def delete_session(self, token_hash: str) -> None:
        """End one session."""
        ...
