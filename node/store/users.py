"""Console users and their sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from node.accounts.model import ConsoleSession, Role, User, UserStatus
from node.auditing import AuditEvent
from node.errors import ConflictError, NotFoundError
from node.store.audit import append_entry
from node.store.database import Database
from node.store.tables import ConsoleSessionRow, UserRow, table

_u = table(UserRow)
_s = table(ConsoleSessionRow)


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        external=row.external,
        status=UserStatus(row.status),
        password_hash=row.password_hash,
        created_at=row.created_at,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
        must_change_password=row.must_change_password,
    )


async def _update(
    conn: AsyncConnection, name: str, values: dict[str, Any], at: datetime, audit: AuditEvent | None
) -> Row[Any]:
    """Update the account `name` (NotFoundError if none) and append its audit entry."""
    query = update(_u).where(_u.c.name == name).values(**values).returning(*_u.c)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFoundError(f"no user named {name!r}")
    if audit is not None:
        await append_entry(conn, at, audit)
    return row


class UsersStore:
    """Accounts and console sessions; account changes carry their audit entry."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        values = {
            "name": name,
            "role": role.value,
            "external": external,
            "status": status.value,
            "password_hash": password_hash,
            "must_change_password": must_change_password,
            "created_at": at,
            "failed_logins": 0,
        }
        try:
            async with self._db.write() as conn:
                row = (await conn.execute(insert(_u).values(**values).returning(*_u.c))).one()
                await append_entry(conn, at, audit)
        except IntegrityError as e:
            raise ConflictError(f"a user named {name!r} already exists") from e
        return _user(row)

    async def get_user(self, name: str) -> User:
        """The account with this name; NotFoundError if none."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(_u).where(_u.c.name == name))).first()
        if row is None:
            raise NotFoundError(f"no user named {name!r}")
        return _user(row)

    async def get_users(self) -> list[User]:
        """Every account, by name."""
        async with self._db.read() as conn:
            return [_user(row) for row in await conn.execute(select(_u).order_by(_u.c.name))]

    async def set_user(
        self, name: str, values: dict[str, Any], at: datetime, audit: AuditEvent | None
    ) -> User:
        """Change an account's columns (status, role, login counters).

        An account that is no longer active loses its sessions.
        """
        async with self._db.write() as conn:
            row = await _update(conn, name, values, at, audit)
            if values.get("status", UserStatus.ACTIVE.value) != UserStatus.ACTIVE.value:
                await conn.execute(delete(_s).where(_s.c.user_id == row.id))
        return _user(row)

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
        async with self._db.write() as conn:
            row = await _update(conn, name, values, at, audit)
            ended = delete(_s).where(_s.c.user_id == row.id)
            if keep_session is not None:
                ended = ended.where(_s.c.token_hash != keep_session)
            await conn.execute(ended)
        return _user(row)

    async def add_session(
        self, token_hash: str, user: User, csrf_token: str, at: datetime, expires_at: datetime
    ) -> None:
        """Store a new console session."""
        async with self._db.write() as conn:
            await conn.execute(
                insert(_s).values(
                    token_hash=token_hash,
                    user_id=user.id,
                    csrf_token=csrf_token,
                    created_at=at,
                    expires_at=expires_at,
                )
            )

    async def get_session(self, token_hash: str, at: datetime) -> ConsoleSession | None:
        """The live session with this token hash and its user, or None."""
        query = (
            select(
                _u,
                _s.c.token_hash,
                _s.c.csrf_token,
                _s.c.created_at.label("session_created_at"),
                _s.c.expires_at,
            )
            .join(_u, _u.c.id == _s.c.user_id)
            .where(_s.c.token_hash == token_hash, _s.c.expires_at > at)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return ConsoleSession(
            token_hash=row.token_hash,
            user=_user(row),
            csrf_token=row.csrf_token,
            created_at=row.session_created_at,
            expires_at=row.expires_at,
        )

    async def delete_session(self, token_hash: str) -> None:
        """End one session."""
        async with self._db.write() as conn:
            await conn.execute(delete(_s).where(_s.c.token_hash == token_hash))

    async def delete_expired_sessions(self, at: datetime) -> int:
        """Remove expired sessions; return how many."""
        async with self._db.write() as conn:
            result = await conn.execute(delete(_s).where(_s.c.expires_at <= at))
        return result.rowcount or 0
