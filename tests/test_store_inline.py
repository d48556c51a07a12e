"""The hot path's SQLite statements on the event loop's thread: another process's lock is
waited for on the event loop, never in SQLite's busy handler; other errors at once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from node.app import Node
from node.auditing import AuditEvent
from node.store.inline import is_busy, patiently


def _database_file(node: Node) -> Path:
    return Path(node.config.database_url.split("///", 1)[1])


async def test_a_write_waits_for_another_process_without_stopping_the_node(
    sqlite_node: Node,
) -> None:
    other = sqlite3.connect(_database_file(sqlite_node), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the CLI, say, in the middle of an import
    try:
        event = AuditEvent("t", "test.append", "x")
        write = asyncio.create_task(sqlite_node.audit.record(event))
        for _ in range(50):  # the event loop goes on while the write waits
            await asyncio.sleep(0)
        assert not write.done()
        reads = await sqlite_node.audit.recent(limit=5)  # readers never wait
        assert "test.append" not in [e.action for e in reads]
    finally:
        other.execute("COMMIT")
        other.close()
    entry = await asyncio.wait_for(write, 30)
    assert entry.action == "test.append"
    assert (await sqlite_node.audit.verify()).ok


async def test_patiently_retries_while_busy_and_raises_anything_else_at_once() -> None:
    calls = []

    def busy_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise error
        return "done"

    assert await patiently(busy_twice) == "done"
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nowhere")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await patiently(broken)
    assert len(calls) == 4


async def test_patiently_gives_up_after_its_timeout() -> None:
    def always_busy() -> None:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = sqlite3.SQLITE_BUSY_RECOVERY  # type: ignore[attr-defined]
        raise error

    with pytest.raises(sqlite3.OperationalError, match="locked") as raised:
        await patiently(always_busy, timeout_s=0.01)
    assert is_busy(raised.value)


async def test_a_write_nested_in_a_write_transaction_is_refused_not_a_deadlock(
    sqlite_node: Node,
) -> None:
    event = AuditEvent("t", "test.append", "x")
    async with sqlite_node.db.transaction():
        with pytest.raises(RuntimeError, match="inside this task's own write transaction"):
            await sqlite_node.audit.record(event)
    assert (await sqlite_node.audit.record(event)).action == "test.append"  # the lock is free
