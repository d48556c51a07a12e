"""The schema check on every open, and migrating only on `init`, `run` and `migrate`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from node.app import Node
from node.errors import SchemaVersionError
from node.store.database import SCHEMA_REVISION, Database, alembic_config
from tests.harness import ADMIN_PASSWORD, init_args, run_cli

OLDER = "0008"


def test_the_code_knows_the_newest_migration() -> None:
    """`SCHEMA_REVISION` lets an open check the schema without Alembic: it must be the head."""
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db"))
    assert script.get_current_head() == SCHEMA_REVISION


async def _downgrade(db: Database, revision: str) -> None:
    """Take the schema back to `revision` with the migrations' own downgrades."""
    config = alembic_config(db.url)

    def run(sync_conn: Any) -> None:
        config.attributes["connection"] = sync_conn
        command.downgrade(config, revision)

    async with db.write() as conn:
        await conn.run_sync(run)


async def _set_revision(db: Database, revision: str) -> None:
    async with db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


async def test_an_older_schema_is_refused_until_migrated(node: Node) -> None:
    config = node.config
    await _downgrade(node.db, OLDER)
    with pytest.raises(SchemaVersionError) as refused:
        await Node.open(config)
    assert str(refused.value) == (
        f"the database is at revision {OLDER}, this iarms-node needs {SCHEMA_REVISION}: "
        f"run `iarms-node migrate --data-dir {config.data_dir}`"
    )
    assert await node.db.schema_revision() == OLDER  # refusing changed nothing
    migrated = await Node.open(config, migrate=True)
    try:
        assert await migrated.db.schema_revision() == SCHEMA_REVISION
        assert (await migrated.audit.verify()).ok
    finally:
        await migrated.close()
    await (await Node.open(config)).close()  # and opens as usual from now on


async def test_a_newer_schema_is_refused_even_by_migrate(node: Node) -> None:
    await _set_revision(node.db, "0099")
    for migrate in (False, True):
        with pytest.raises(SchemaVersionError, match="revision 0099, which this iarms-node"):
            await Node.open(node.config, migrate=migrate)
    assert await node.db.schema_revision() == "0099"


def _revision(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "node.db") as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def _tables(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "node.db") as db:
        return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


async def test_the_migrate_command(tmp_path: Path) -> None:
    """Commands refuse an older schema in one line (exit 2) and leave it as it is;
    `iarms-node migrate` brings it up to date, and says there is nothing to do after."""
    password = tmp_path / "admin.txt"
    password.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    data = tmp_path / "fra"
    code, _out, err = await run_cli(*init_args(data, password))
    assert code == 0, err
    db = Database(f"sqlite+aiosqlite:///{data / 'node.db'}")
    try:
        await _downgrade(db, OLDER)
    finally:
        await db.close()
    before = _tables(data)
    for args in (["peers", "list"], ["records", "search", "--serial", "X"], ["users", "list"]):
        code, out, err = await run_cli(*args, "--data-dir", str(data))
        assert code == 2
        assert out == ""
        assert err == (
            f"iarms-node: the database is at revision {OLDER}, this iarms-node needs "
            f"{SCHEMA_REVISION}: run `iarms-node migrate --data-dir {data}`\n"
        )
    assert _tables(data) == before and _revision(data) == OLDER

    code, out, err = await run_cli("migrate", "--data-dir", str(data))
    assert code == 0, err
    assert out == f"migrated the database from revision {OLDER} to {SCHEMA_REVISION}\n"
    code, out, err = await run_cli("migrate", "--data-dir", str(data))
    assert code == 0, err
    assert out == f"the database is at revision {SCHEMA_REVISION}, this version's: nothing to do\n"
    code, out, err = await run_cli("users", "list", "--data-dir", str(data))
    assert code == 0, err
    assert out.startswith("admin ")

    with sqlite3.connect(data / "node.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    for args in (["migrate"], ["users", "list"]):
        code, out, err = await run_cli(*args, "--data-dir", str(data))
        assert code == 2
        assert "revision 0099, which this iarms-node" in err and err.count("\n") == 1
    assert _revision(data) == "0099"
