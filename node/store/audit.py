"""The audit log store: appends chained entries, reads them back in order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, String, bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from node.auditing import GENESIS_HASH, AuditEntry, AuditEvent, entry_hash
from node.store.database import Database, Run, Transaction
from node.store.tables import AuditHeadRow, AuditRow, UTCDateTime, table

_log = table(AuditRow)
_head = table(AuditHeadRow)


async def append_entry(conn: AsyncConnection, at: datetime, event: AuditEvent) -> AuditEntry:
    """Append one entry inside the caller's transaction (or as one atomic statement).

    A trigger (migration 0002) moves the head row to every inserted entry.
    SQLite reads the head, hashes (through the registered `iarms_audit_hash`
    function) and inserts in one statement, which is atomic under SQLite's
    single-writer lock. PostgreSQL locks the head row `FOR UPDATE` first, so
    concurrent appends still form one chain.
    """
    if conn.dialect.name == "sqlite":
        return await _append_sqlite(conn, at, event)
    head = (
        await conn.execute(
            select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
        )
    ).one()
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
    return AuditEntry(seq, at, event.actor, event.action, event.target, event.details, prev, digest)


_SQLITE_APPEND = (
    text(
        "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash) "
        "SELECT seq + 1, :at, :actor, :action, :target, :details, hash, "
        "iarms_audit_hash(seq + 1, :at_iso, :actor, :action, :target, :details, hash) "
        "FROM audit_head WHERE id = 1 RETURNING seq, prev_hash, hash"
    )
    .bindparams(bindparam("at", type_=UTCDateTime()))
    .columns(seq=Integer(), prev_hash=String(), hash=String())
)


def _sqlite_params(at: datetime, event: AuditEvent) -> dict[str, Any]:
    return {
        "at": at,
        "at_iso": at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "details": json.dumps(event.details, ensure_ascii=False),
    }


async def append_in_sqlite_transaction(run: Run, at: datetime, event: AuditEvent) -> None:
    """Append one entry inside a `Database.sqlite_transaction` (one driver round trip)."""
    await run("audit.append", lambda: _SQLITE_APPEND, _sqlite_params(at, event))


async def append_in(tx: Transaction, at: datetime, event: AuditEvent) -> None:
    """Append one entry inside a `Database.transaction` (one round trip on SQLite)."""
    if tx.conn is None:
        await append_in_sqlite_transaction(tx.run, at, event)
    else:
        await append_entry(tx.conn, at, event)


async def _append_sqlite(conn: AsyncConnection, at: datetime, event: AuditEvent) -> AuditEntry:
    row = (await conn.execute(_SQLITE_APPEND, _sqlite_params(at, event))).one()
    return AuditEntry(
        row.seq,
        at,
        event.actor,
        event.action,
        event.target,
        event.details,
        row.prev_hash,
        row.hash,
    )


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
        """Append one entry on its own (one atomic statement, one round trip, on SQLite)."""
        if not self._db.is_sqlite:
            async with self._db.write() as conn:
                return await append_entry(conn, at, event)
        ((seq, prev, digest),) = await self._db.fetch(
            "audit.append", lambda: _SQLITE_APPEND, _sqlite_params(at, event), write=True
        )
        return AuditEntry(
            seq, at, event.actor, event.action, event.target, event.details, prev, digest
        )

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
