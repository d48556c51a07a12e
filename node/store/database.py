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

from node.auditing import sql_entry_hash
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


def _sqlite_engine(url: str, *, pool: int, begin: str | None) -> AsyncEngine:
    """An SQLite engine; `begin` is the statement that opens transactions, None for autocommit."""
    engine = create_async_engine(
        url,
        pool_size=pool,
        max_overflow=0,
        connect_args={"timeout": 30},
        isolation_level=None if begin else "AUTOCOMMIT",
        pool_reset_on_return=None if begin is None else "rollback",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves: pysqlite's implicit BEGIN is deferred.
        dbapi_connection.isolation_level = None
        dbapi_connection.create_function("iarms_audit_hash", 7, sql_entry_hash, deterministic=True)
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    if begin:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

    return engine


class Database:
    """The node's database: engines for reads, transactions and single-statement writes.

    On SQLite, reads and single-statement writes run in autocommit mode (one
    statement is atomic; skipping BEGIN/COMMIT halves their latency), and
    multi-statement writes run in `BEGIN IMMEDIATE` transactions through a
    pool of one connection. PostgreSQL uses one engine for everything.
    """

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._reader = _sqlite_engine(url, pool=4, begin=None)
            self._writer = _sqlite_engine(url, pool=1, begin="BEGIN IMMEDIATE")
            self._single = _sqlite_engine(url, pool=1, begin=None)
        else:
            self._reader = self._writer = self._single = create_async_engine(
                url, pool_size=8, max_overflow=8
            )

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: 'sqlite' or 'postgresql'."""
        return self._writer.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading (each statement sees a consistent snapshot)."""
        async with self._reader.connect() as conn:
            if self.is_sqlite:
                yield conn
            else:
                async with conn.begin():
                    yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed on clean exit."""
        async with self._writer.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write_one(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one atomic write statement (its own transaction)."""
        if not self.is_sqlite:
            async with self.write() as conn:
                yield conn
            return
        async with self._single.connect() as conn:
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
        for engine in {self._reader, self._writer, self._single}:
            await engine.dispose()


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
