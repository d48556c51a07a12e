"""The durable outbox, per-peer delivery state, and the inbox of processed messages.

The functions ending in `_in` run inside a caller's `Transaction` (a unit of
work, `node.store.work`); the store's own methods run them in a transaction
of their own, so each statement is written once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.sql.elements import ClauseElement

from node.protocol.model import DeliveryState, OutboxMessage, OutboxStatus, PriorClaim
from node.store.database import Database, Transaction
from node.store.dialect import insert_ignoring
from node.store.tables import DeliveryStateRow, InboxRow, OutboxRow, table

_o = table(OutboxRow)
_d = table(DeliveryStateRow)
_i = table(InboxRow)
_OUTBOX_COLUMNS = tuple(_o.c.keys())
_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(OutboxMessage))


def _message(row: Mapping[Any, Any]) -> OutboxMessage:
    """An outbox row (its columns are the message's fields) as an `OutboxMessage`."""
    values = {name: row[name] for name in _MESSAGE_FIELDS}
    return OutboxMessage(**values | {"status": OutboxStatus(row["status"])})


def _claim(dialect: str) -> ClauseElement:
    names = ("sender", "message_id", "type", "received_at")
    values: dict[str, Any] = {name: bindparam(name) for name in names}
    return insert_ignoring(dialect, _i).values(values).returning(_i.c.message_id)


def _prior() -> ClauseElement:
    return select(_i.c.type, _i.c.answer_type, _i.c.answer).where(
        _i.c.sender == bindparam("sender"), _i.c.message_id == bindparam("message_id")
    )


def _set_answer() -> ClauseElement:
    return (
        update(_i)
        .where(_i.c.sender == bindparam("w_sender"), _i.c.message_id == bindparam("w_key"))
        .values(answer_type=bindparam("a_type"), answer=bindparam("a_body"))
    )


_NEW_MESSAGE = (
    "recipient",
    "message_id",
    "type",
    "body",
    "created_at",
    "status",
    "attempts",
    "failed_answers",
)


def _add_message() -> ClauseElement:
    return insert(_o).values({n: bindparam(n) for n in _NEW_MESSAGE}).returning(*_o.c)


async def claim_in(
    tx: Transaction, sender: str, key: bytes, type_: str, at: datetime
) -> PriorClaim | None:
    """Claim (sender, key) for a message of `type_` inside `tx`: None if it is new; else
    what the earlier claim kept (the message is a repeat and must change nothing)."""
    params = {"sender": sender, "message_id": key, "type": type_, "received_at": at}
    if await tx.run("inbox.claim", lambda: _claim(tx.dialect), params):
        return None
    [(claimed_by, answer_type, answer)] = await tx.run(
        "inbox.prior", _prior, {"sender": sender, "message_id": key}
    )
    return PriorClaim(claimed_by, answer_type, answer)


async def set_answer_in(
    tx: Transaction, sender: str, key: bytes, answer_type: str, answer: bytes
) -> None:
    """Keep the answer to the message that claimed (sender, key), inside `tx`."""
    params = {"w_sender": sender, "w_key": key, "a_type": answer_type, "a_body": answer}
    await tx.run("inbox.set_answer", _set_answer, params)


async def add_message_in(
    tx: Transaction, recipient: str, message_id: bytes, type_: str, body: bytes, at: datetime
) -> OutboxMessage:
    """Queue a message for `recipient` inside `tx`."""
    pending = OutboxStatus.PENDING.value
    values = dict(
        zip(_NEW_MESSAGE, (recipient, message_id, type_, body, at, pending, 0, 0), strict=True)
    )
    [row] = await tx.run("outbox.add", _add_message, values)
    return _message(dict(zip(_OUTBOX_COLUMNS, row, strict=True)))


def _due(one: bool) -> ClauseElement:
    """The oldest pending message of each peer (or of one) out of its backoff."""
    backoff_over = (_d.c.retry_at.is_(None)) | (_d.c.retry_at <= bindparam("now"))
    query = select(_o).outerjoin(_d, _d.c.recipient == _o.c.recipient)
    if one:
        query = query.where(
            _o.c.recipient == bindparam("recipient"),
            _o.c.status == OutboxStatus.PENDING.value,
            backoff_over,
        )
    else:
        oldest = (
            select(func.min(_o.c.id))
            .where(_o.c.status == OutboxStatus.PENDING.value)
            .group_by(_o.c.recipient)
        )
        query = query.where(_o.c.id.in_(oldest), backoff_over)
    return query.order_by(_o.c.id).limit(bindparam("limit"))


def _outcome(failed_answer: bool, delivered: bool, receipt: bool) -> ClauseElement:
    """An attempt's outcome on its outbox row."""
    values: dict[str, Any] = {
        "status": bindparam("o_status"),
        "attempts": _o.c.attempts + 1,
        "last_error": bindparam("o_error"),
    }
    if failed_answer:
        values["failed_answers"] = _o.c.failed_answers + 1
    if delivered:
        values["delivered_at"] = bindparam("o_delivered_at", type_=_o.c.delivered_at.type)
    if receipt:
        values["delivered_message_id"] = bindparam("o_attempt")
        values["receipt"] = bindparam("o_receipt")
    return update(_o).where(_o.c.id == bindparam("w_id")).values(values)


_STATE = (_d.c.recipient, _d.c.failures, _d.c.interval_s, _d.c.retry_at, _d.c.last_error)


def _get_state() -> ClauseElement:
    return select(*_STATE).where(_d.c.recipient == bindparam("s_recipient"))


def _delete_state() -> ClauseElement:
    return delete(_d).where(_d.c.recipient == bindparam("s_recipient"))


def _fail_state() -> ClauseElement:
    """One more failure of a peer already backing off (RETURNING: none if it was not)."""
    return (
        update(_d)
        .where(_d.c.recipient == bindparam("s_recipient"))
        .values(
            failures=_d.c.failures + 1,
            interval_s=bindparam("s_interval"),
            retry_at=bindparam("s_retry_at", type_=_d.c.retry_at.type),
            last_error=bindparam("s_error"),
        )
        .returning(_d.c.recipient)
    )


def _add_state() -> ClauseElement:
    """A peer's first failure."""
    return insert(_d).values(
        recipient=bindparam("s_recipient"),
        failures=1,
        interval_s=bindparam("s_interval"),
        retry_at=bindparam("s_retry_at", type_=_d.c.retry_at.type),
        last_error=bindparam("s_error"),
    )


class OutboxStore:
    """Messages that must arrive, written before they are sent."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_message(
        self, recipient: str, message_id: bytes, type_: str, body: bytes, at: datetime
    ) -> OutboxMessage:
        """Queue a message for `recipient`."""
        async with self._db.transaction() as tx:
            return await add_message_in(tx, recipient, message_id, type_, body, at)

    async def get_due(
        self, now: datetime, limit: int = 100, recipient: str | None = None
    ) -> list[OutboxMessage]:
        """The oldest pending message of each peer (or of `recipient` only) whose backoff
        has expired; one driver round trip, through the (recipient, status, id) index."""
        params: dict[str, Any] = {"now": now, "limit": limit}
        if recipient is not None:
            params["recipient"] = recipient
        shape = ("outbox.due", recipient is not None)
        rows = await self._db.fetch(shape, lambda: _due(recipient is not None), params)
        return [_message(dict(zip(_OUTBOX_COLUMNS, row, strict=True))) for row in rows]

    async def get_messages(
        self, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Newest messages first, optionally of one status (the admin's view)."""
        query = select(_o).order_by(_o.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_o.c.status == status.value)
        async with self._db.read() as conn:
            return [_message(r._mapping) for r in await conn.execute(query)]

    async def set_outcome(
        self,
        message: OutboxMessage,
        status: OutboxStatus,
        at: datetime,
        error: str | None,
        retry: tuple[float, datetime] | None = None,
        failed_answer: bool = False,
        receipt: tuple[bytes, bytes] | None = None,
        *,
        clear_backoff: bool = True,
    ) -> None:
        """Record an attempt; on a retryable failure `retry` = (interval, retry_at) for its peer.

        `failed_answer`: the peer answered this attempt with a failure (counted apart
        from attempts it did not answer). `receipt`: (the delivered attempt's message
        id, the peer's signed answer to it). Without `retry`, the peer's backoff is
        cleared, unless `clear_backoff` is False (the caller knows it has none): then
        the outcome is one atomic statement, the delivery's only write.
        """
        delivered = status is OutboxStatus.DELIVERED
        params: dict[str, Any] = {
            "w_id": message.id,
            "o_status": status.value,
            "o_error": error,
        }
        if delivered:
            params["o_delivered_at"] = at
        if receipt is not None:
            params["o_attempt"], params["o_receipt"] = receipt
        shape = ("outbox.outcome", failed_answer, delivered, receipt is not None)

        def build() -> ClauseElement:
            return _outcome(failed_answer, delivered, receipt is not None)

        if retry is None and not clear_backoff:
            await self._db.fetch(shape, build, params, write=True)
            return
        async with self._db.transaction() as tx:
            await tx.run(shape, build, params)
            if retry is None:
                await tx.run(
                    "delivery_state.delete", _delete_state, {"s_recipient": message.recipient}
                )
                return
            interval, retry_at = retry
            state = {
                "s_recipient": message.recipient,
                "s_interval": interval,
                "s_retry_at": retry_at,
                "s_error": error or "",
            }
            if not await tx.run("delivery_state.fail", _fail_state, state):
                await tx.run("delivery_state.add", _add_state, state)

    async def get_state(self, recipient: str) -> DeliveryState | None:
        """A peer's backoff, if delivery to it is failing."""
        rows = await self._db.fetch("delivery_state.get", _get_state, {"s_recipient": recipient})
        return DeliveryState(*rows[0]) if rows else None

    async def delete_state(self, recipient: str) -> None:
        """Clear a peer's backoff (it was heard from)."""
        await self._db.fetch(
            "delivery_state.delete", _delete_state, {"s_recipient": recipient}, write=True
        )
