"""The store itself: migrations match the tables; concurrent writers keep one audit chain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from node.app import Node
from node.auditing import AuditEvent
from node.config import load_config
from node.records.model import RecordInput
from node.store.audit import append_in_sqlite_transaction
from node.store.database import alembic_config
from node.store.tables import Base


async def test_migrations_create_exactly_the_declared_schema(node: Node) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(sync_conn), Base.metadata))

    async with node.db.write() as conn:
        assert await conn.run_sync(diff) == []


async def test_migrating_twice_is_harmless(node: Node) -> None:
    await node.db.migrate()
    assert (await node.audit.verify()).ok


async def test_upgrading_to_0011_gives_every_output_its_record_serial(node: Node) -> None:
    record = await node.records.create(RecordInput("UP-11", "Glock", "pistol", "stolen"), "t")
    await node.lookups_store.add_outputs([(record.id, record.serial_canonical, bytes(64))])

    def downgrade(sync_conn: Any) -> None:
        config = alembic_config(node.db.url)
        config.attributes["connection"] = sync_conn
        command.downgrade(config, "0010")

    async with node.db.write() as conn:
        await conn.run_sync(downgrade)
    await node.db.migrate()
    async with node.db.read() as conn:
        rows = await conn.exec_driver_sql("SELECT record_id, serial_canonical FROM record_outputs")
        assert rows.all() == [(record.id, record.serial_canonical)]


async def test_two_processes_appending_keep_one_chain(node: Node) -> None:
    """The CLI may write while the node serves: two Node objects on one database."""
    other = await Node.open(load_config(node.config.data_dir), node.clock, migrate=False)
    try:

        async def burst(n: Node, who: str) -> None:
            for i in range(25):
                await n.audit.record(AuditEvent(who, "test.event", str(i)))
                await n.records.create(RecordInput(f"{who}{i}", "Glock", "pistol", "stolen"), who)

        await asyncio.gather(burst(node, "A"), burst(other, "B"), burst(node, "C"))
    finally:
        await other.close()
    report = await node.audit.verify()
    assert report.ok, report.message
    assert report.entries == 1 + 3 * 25 * 2
    assert await node.records.count() == 75


async def test_sqlite_file_is_in_wal_mode_with_foreign_keys(sqlite_node: Node) -> None:
    async with sqlite_node.db.read() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
    assert (mode, fks) == ("wal", 1)
    assert Path(sqlite_node.config.database_url.split("///", 1)[1]).exists()


async def test_a_failed_sqlite_transaction_writes_nothing_and_frees_the_writer(
    sqlite_node: Node,
) -> None:
    db, clock = sqlite_node.db, sqlite_node.clock
    event = AuditEvent("t", "test.append", "x")
    before = len(await sqlite_node.audit.recent(limit=1000))

    async def append_then_fail() -> None:
        async with db.sqlite_transaction() as run:
            await append_in_sqlite_transaction(run, clock.now(), event)
            raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        await append_then_fail()
    assert len(await sqlite_node.audit.recent(limit=1000)) == before
    async with db.sqlite_transaction() as run:  # the connection is not left in a transaction
        await append_in_sqlite_transaction(run, clock.now(), event)
    assert [e.action for e in await sqlite_node.audit.recent(limit=1)] == ["test.append"]
    assert (await sqlite_node.audit.verify()).ok
