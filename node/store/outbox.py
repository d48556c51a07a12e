"""The durable outbox, per-peer delivery state, and the inbox of processed messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.protocol.model import DeliveryState, OutboxMessage, OutboxStatus
from node.store.database import Database
from node.store.dialect import insert_ignoring
from node.store.tables import DeliveryStateRow, InboxRow, OutboxRow, table

_o = table(OutboxRow)
_d = table(DeliveryStateRow)
_i = table(InboxRow)


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        recipient=row.recipient,
        message_id=row.message_id,
        type=row.type,
        body=row.body,
        created_at=row.created_at,
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        failed_answers=row.failed_answers,
    )


async def claim_inbox(
    conn: AsyncConnection, sender: str, message_id: bytes, type_: str, at: datetime
) -> bool:
    """Inside the transaction that applies a must-arrive message: False if it was applied before.

    Receivers are idempotent by message id: a retried delivery changes nothing.
    """
    row = {"sender": sender, "message_id": message_id, "type": type_, "received_at": at}
    result = await conn.execute(insert_ignoring(conn.dialect.name, _i).values(**row))
    return bool(result.rowcount)


class OutboxStore:
    """Messages that must arrive, written before they are sent."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_message(
        self, recipient: str, message_id: bytes, type_: str, body: bytes, at: datetime
    ) -> OutboxMessage:
        """Queue a message for `recipient`."""
        values = {
            "recipient": recipient,
            "message_id": message_id,
            "type": type_,
            "body": body,
            "created_at": at,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "failed_answers": 0,
        }
        async with self._db.write() as conn:
            row = (await conn.execute(insert(_o).values(**values).returning(*_o.c))).one()
        return _message(row)

    async def get_due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        """The oldest pending message of each peer whose backoff has expired."""
        oldest = (
            select(func.min(_o.c.id))
            .where(_o.c.status == OutboxStatus.PENDING.value)
            .group_by(_o.c.recipient)
        )
        query = (
            select(_o)
            .outerjoin(_d, _d.c.recipient == _o.c.recipient)
            .where(_o.c.id.in_(oldest), (_d.c.retry_at.is_(None)) | (_d.c.retry_at <= now))
            .order_by(_o.c.id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_message(r) for r in await conn.execute(query)]

    async def get_messages(
        self, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Newest messages first, optionally of one status (the admin's view)."""
        query = select(_o).order_by(_o.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_o.c.status == status.value)
        async with self._db.read() as conn:
            return [_message(r) for r in await conn.execute(query)]

    async def set_outcome(
        self,
        message: OutboxMessage,
        status: OutboxStatus,
        at: datetime,
        error: str | None,
        retry: tuple[float, datetime] | None = None,
        failed_answer: bool = False,
    ) -> None:
        """Record an attempt; on a retryable failure `retry` = (interval, retry_at) for its peer.

        `failed_answer`: the peer answered this attempt with a failure (counted apart
        from attempts it did not answer).
        """
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": _o.c.attempts + 1,
            "last_error": error,
        }
        if failed_answer:
            values["failed_answers"] = _o.c.failed_answers + 1
        if status is OutboxStatus.DELIVERED:
            values["delivered_at"] = at
        async with self._db.write() as conn:
            await conn.execute(update(_o).where(_o.c.id == message.id).values(**values))
            if retry is None:
                await conn.execute(delete(_d).where(_d.c.recipient == message.recipient))
                return
            interval, retry_at = retry
            state = {
                "failures": 1,
                "interval_s": interval,
                "retry_at": retry_at,
                "last_error": error or "",
            }
            changed = await conn.execute(
                update(_d)
                .where(_d.c.recipient == message.recipient)
                .values(state | {"failures": _d.c.failures + 1})
            )
            if not changed.rowcount:
                await conn.execute(insert(_d).values(state | {"recipient": message.recipient}))

    async def get_state(self, recipient: str) -> DeliveryState | None:
        """A peer's backoff, if delivery to it is failing."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(_d).where(_d.c.recipient == recipient))).first()
        if row is None:
            return None
        return DeliveryState(
            row.recipient, row.failures, row.interval_s, row.retry_at, row.last_error
        )

    async def delete_state(self, recipient: str) -> None:
        """Clear a peer's backoff (it was heard from)."""
        async with self._db.write() as conn:
            await conn.execute(delete(_d).where(_d.c.recipient == recipient))
