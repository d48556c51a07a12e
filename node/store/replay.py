"""The replay cache: message ids accepted from each peer, kept until they would be stale anyway."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, bindparam, delete
from sqlalchemy.sql.elements import ClauseElement

from node.store.database import Database
from node.store.dialect import insert_ignoring
from node.store.tables import SeenMessageRow, UTCDateTime, table

_seen = table(SeenMessageRow)


class ReplayStore:
    """`seen_messages`: one row per (sender, message id) accepted, until its expiry."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _insert(self) -> ClauseElement:
        values = {
            "sender": bindparam("sender", type_=String()),
            "message_id": bindparam("message_id", type_=LargeBinary()),
            "expires_at": bindparam("expires_at", type_=UTCDateTime()),
        }
        stmt: ClauseElement = (
            insert_ignoring(self._db.dialect, _seen).values(values).returning(_seen.c.sender)
        )
        return stmt

    async def add_seen(self, sender: str, message_id: bytes, expires_at: datetime) -> bool:
        """Record a message id; True if it is new, False if it was seen before.

        One atomic `INSERT … ON CONFLICT DO NOTHING` (one driver round trip on
        SQLite): of two concurrent receptions of one message, exactly one
        gets True.
        """
        params = {"sender": sender, "message_id": message_id, "expires_at": expires_at}
        rows = await self._db.fetch("replay.add_seen", self._insert, params, write=True)
        return bool(rows)

    async def delete_expired(self, now: datetime) -> int:
        """Forget ids whose expiry is before `now`; return how many were deleted."""
        async with self._db.write() as conn:
            result = await conn.execute(delete(_seen).where(_seen.c.expires_at < now))
        return int(result.rowcount)
