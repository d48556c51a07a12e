"""Connections: one engine per node, a single writer, SQLite pragmas, migrations.

SQLite (the embedded default) gets WAL, foreign keys and a busy timeout on
every connection, and its write transactions start with `BEGIN IMMEDIATE`
through a pool of one connection: one writer at a time in this process, and a
clean wait (not a deadlock) when the CLI writes while the node runs. Reads use
their own pool and never wait for the writer. PostgreSQL uses one engine for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from node.errors import ConfigError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)


def check_url(url: str) -> str:
    """Validate a database URL; return it unchanged or raise ConfigError."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"database URL {url!r} is not a valid URL") from e
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"database URL uses {parsed.drivername!r}; supported: {', '.join(SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername.startswith("sqlite") and not parsed.database:
        raise ConfigError("an SQLite database URL needs a file path (sqlite+aiosqlite:///PATH)")
    return url


def _sqlite_engine(url: str, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=1 if writer else 4,
        max_overflow=0 if writer else 4,
        connect_args={"timeout": 30},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


class Database:
    """The node's database: a read engine and a write engine (the same on PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._reader = _sqlite_engine(url, writer=False)
            self._writer = _sqlite_engine(url, writer=True)
        else:
            self._reader = self._writer = create_async_engine(url, pool_size=8, max_overflow=8)

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: 'sqlite' or 'postgresql'."""
        return self._writer.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read transaction."""
        async with self._reader.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed on clean exit."""
        async with self._writer.connect() as conn, conn.begin():
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic `upgrade head`)."""
        from alembic import command

        config = alembic_config(self.url)
        try:
            async with self._writer.connect() as conn:
                await conn.run_sync(_upgrade, config, command)
                await conn.commit()
        except (SQLAlchemyError, OSError) as e:
            raise ConfigError(f"cannot migrate the database at {self.url}: {e}") from e

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()


def _upgrade(sync_conn: Any, config: Any, command: Any) -> None:
    config.attributes["connection"] = sync_conn
    command.upgrade(config, "head")


def alembic_config(url: str) -> Any:
    """An Alembic Config pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("node.store") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
