"""The audit log store: appends chained entries, reads them back in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.auditing import GENESIS_HASH, AuditEntry, AuditEvent, entry_hash
from node.store.database import Database
from node.store.tables import AuditHeadRow, AuditRow, table

_log = table(AuditRow)
_head = table(AuditHeadRow)


async def append_entry(conn: AsyncConnection, at: datetime, event: AuditEvent) -> AuditEntry:
    """Append one entry inside the caller's write transaction.

    The head row is read `FOR UPDATE` (PostgreSQL; SQLite's writer already
    holds the database lock), so concurrent appends form one chain.
    """
    head = (
        await conn.execute(
            select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
        )
    ).first()
    if head is None:
        seq, prev = 1, GENESIS_HASH
        await conn.execute(insert(_head).values(id=1, seq=0, hash=GENESIS_HASH))
    else:
        seq, prev = head.seq + 1, head.hash
    digest = entry_hash(seq, at, event, prev)
    await conn.execute(
        insert(_log).values(
            seq=seq,
            at=at,
            actor=event.actor,
            action=event.action,
            target=event.target,
            details=event.details,
            prev_hash=prev,
            hash=digest,
        )
    )
    await conn.execute(update(_head).where(_head.c.id == 1).values(seq=seq, hash=digest))
    return AuditEntry(seq, at, event.actor, event.action, event.target, event.details, prev, digest)


def _entry(row: Row[tuple[object, ...]]) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class AuditStore:
    """Reads and appends the hash-chained audit log."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_entry(self, at: datetime, event: AuditEvent) -> AuditEntry:
        """Append one entry in its own transaction."""
        async with self._db.write() as conn:
            return await append_entry(conn, at, event)

    async def get_entries(
        self,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Newest entries first, optionally before a sequence number and filtered."""
        query = select(_log).order_by(_log.c.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(_log.c.seq < before_seq)
        if action:
            query = query.where(_log.c.action == action)
        if actor:
            query = query.where(_log.c.actor == actor)
        async with self._db.read() as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def iter_entries(self, batch: int = 5000) -> AsyncIterator[list[AuditEntry]]:
        """Every entry in sequence order, in batches (bounded memory)."""
        after = 0
        while True:
            query = select(_log).where(_log.c.seq > after).order_by(_log.c.seq).limit(batch)
            async with self._db.read() as conn:
                entries = [_entry(row) for row in await conn.execute(query)]
            if not entries:
                return
            yield entries
            after = entries[-1].seq

    async def get_head(self) -> tuple[int, str]:
        """The last sequence number and hash as the head row records them."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(_head.c.seq, _head.c.hash))).first()
        if row is None:
            return 0, GENESIS_HASH
        return row.seq, row.hash
