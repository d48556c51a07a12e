"""Connections: one engine per node, a single writer, SQLite pragmas, migrations.

SQLite (the embedded default) gets WAL, foreign keys and a busy timeout on
every connection, and its write transactions start with `BEGIN IMMEDIATE`
through a pool of one connection: one writer at a time in this process, and a
clean wait (not a deadlock) when the CLI writes while the node runs. Reads use
their own pool and never wait for the writer. PostgreSQL uses one engine for both.

Its two write connections (SQLAlchemy's, for the store's general transactions,
and the held driver connection of the hot path, `fetch(write=True)` and
`transaction`) take turns on one `asyncio.Lock`: within the process a writer
waits on the event loop, never in SQLite's busy handler, which polls with
sleeps of up to 100 ms (a second, where SQLite is built without usleep).
Durability: WAL with `synchronous=NORMAL` (docs/adr/0001-store-single-writer.md):
a commit is atomic and survives the process being killed (SIGKILL) at any
point; only an operating-system crash or power cut may lose the last
transactions, never corrupt the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from node.auditing import sql_entry_hash
from node.errors import ConfigError, SchemaVersionError, StorageFullError
from node.store.inline import InlineConnections, patiently

#: The newest migration's revision (node/store/migrations/versions): the schema this code
#: reads and writes. Written here so that opening a node can check its database's schema
#: without importing Alembic; a test keeps it equal to the migrations' head.
SCHEMA_REVISION = "0020"
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)
#: PostgreSQL's SQLSTATE for "disk full" (asyncpg's DiskFullError).
PG_DISK_FULL = "53100"


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
        _prepare_sqlite(dbapi_connection)

    if begin:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

    return engine


def _prepare_sqlite(dbapi_connection: Any) -> None:
    """Set up a new SQLite connection (aiosqlite's or a plain `sqlite3` one): autocommit
    (we issue BEGIN ourselves: pysqlite's implicit BEGIN is deferred), the audit hash
    function, the pragmas."""
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function("iarms_audit_hash", 7, sql_entry_hash, deterministic=True)
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it wraps: SQLAlchemy's `orig`, then each `__cause__`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__


def disk_full_reason(error: BaseException) -> str | None:
    """The driver's words if `error` says the disk is full (SQLITE_FULL, SQLSTATE 53100)."""
    found = None
    for cause in _causes(error):
        code = getattr(cause, "sqlite_errorcode", None)
        if (isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL) or getattr(
            cause, "sqlstate", None
        ) == PG_DISK_FULL:
            found = cause  # the innermost says it plainest (no SQL, no class name)
    return None if found is None else str(found).strip().split("\n")[0]


def storage_name(url: str) -> str:
    """What the database's disk holds, for a message: SQLite's directory, PostgreSQL's database."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return str(Path(parsed.database or ".").resolve().parent)
    return f"the PostgreSQL database {parsed.database} on {parsed.host or 'localhost'}"


#: Runs one statement of a `Database.sqlite_transaction`: (shape, build, params) -> rows.
Run = Callable[
    [Hashable, Callable[[], ClauseElement], Mapping[str, Any]], Awaitable[list[tuple[Any, ...]]]
]


@dataclass(frozen=True, slots=True)
class Transaction:
    """An open write transaction (`Database.transaction`).

    `run` executes one statement shaped as for `Database.fetch` and returns its
    rows (none for a statement without RETURNING). `conn` is the SQLAlchemy
    connection on PostgreSQL, for the statements that need one; None on
    SQLite, whose transaction runs on the driver's connection.
    """

    run: Run
    dialect: str
    conn: AsyncConnection | None


async def _rows(
    conn: AsyncConnection, build: Callable[[], ClauseElement], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Run one statement through SQLAlchemy; its rows as tuples."""
    result = await conn.execute(cast(Executable, build()), params)
    return [tuple(row) for row in result] if result.returns_rows else []


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled once for SQLite, with its parameter and result converters."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Callable[[Any], Any] | None, ...]
    defaults: Mapping[str, Any]  # values the compiler bound itself (SQLite's OFFSET 0)
    results: tuple[Callable[[Any], Any] | None, ...]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = (params[n] if n in params else self.defaults[n] for n in self.names)
        return tuple(p(v) if p else v for v, p in zip(values, self.binds, strict=True))

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        results = self.results
        if not any(results):  # nothing to convert: `tuple` hands back the driver's tuples
            return [tuple(r) for r in raw]
        return [tuple(p(v) if p else v for v, p in zip(r, results, strict=True)) for r in raw]


#: Every shape compiled in this process, shared by its SQLite databases: a shape always
#: builds the same statement and they all have the same dialect, so the many nodes of a
#: harness or a benchmark in one process compile each statement once, as one node does.
_COMPILED: dict[Hashable, _Compiled] = {}


def _compile_sqlite(stmt: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[n] for n in names]
    columns = getattr(stmt, "exported_columns", ())
    return _Compiled(
        sql=compiled.string,
        names=names,
        binds=tuple(b.type._cached_bind_processor(dialect) for b in binds),
        defaults={n: b.value for n, b in zip(names, binds, strict=True)},
        results=tuple(c.type._cached_result_processor(dialect, None) for c in columns),
    )


class _Drivers:
    """Up to `size` driver connections of an SQLite engine, each checked out once and kept.

    `Database.fetch` runs its statements on them directly: SQLAlchemy's async
    checkout and return of a pooled connection (greenlet switches, pool
    events) cost three times the statement itself, several times per peer
    message. Connections open on demand, the most recently used is reused
    first (sequential callers keep one warm connection), and at most `size`
    are in use at once.
    """

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self._engine = engine
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._held: list[AsyncConnection] = []

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """An aiosqlite connection for the caller alone until it exits."""
        async with self._slots:
            if self._idle:
                driver = self._idle.pop()
            else:
                conn = await self._engine.connect()
                self._held.append(conn)
                driver = (await conn.get_raw_connection()).driver_connection
            try:
                yield driver
            finally:
                self._idle.append(driver)

    async def close(self) -> None:
        """Close every connection."""
        held, self._held, self._idle = self._held, [], []
        for conn in held:
            await conn.close()
        await self._engine.dispose()


def _wrapped(compiled: _Compiled, error: sqlite3.Error) -> StatementError:
    """The driver's error as SQLAlchemy raises it (IntegrityError and so on)."""
    return DBAPIError.instance(compiled.sql, None, error, sqlite3.Error)


async def _scan(
    driver: Any, compiled: _Compiled, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """One statement through aiosqlite's `execute_fetchall`: one trip to its thread."""
    try:
        raw = await driver.execute_fetchall(compiled.sql, compiled.args(params))
    except sqlite3.Error as e:
        raise _wrapped(compiled, e) from e
    return compiled.rows(raw)


async def _inline(
    conn: sqlite3.Connection, compiled: _Compiled, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """One statement on a connection of the event loop's thread (waiting, on the loop,
    while another process holds the lock)."""
    args = compiled.args(params)
    try:
        raw = await patiently(lambda: conn.execute(compiled.sql, args).fetchall())
    except sqlite3.Error as e:
        raise _wrapped(compiled, e) from e
    return compiled.rows(raw)


class Database:
    """The node's database: engines for reads, transactions and single-statement writes.

    On SQLite, reads and single-statement writes run in autocommit mode (one
    statement is atomic; skipping BEGIN/COMMIT halves their latency), and
    multi-statement writes run in `BEGIN IMMEDIATE` transactions. The hot
    path's statements (`fetch`, `transaction`) run on the event loop's own
    thread (`node.store.inline`); what may read many rows (`fetch(scan=True)`)
    on driver connections held for the node's life (`_Drivers`); the store's
    general transactions (`read`, `write`) through SQLAlchemy. PostgreSQL uses
    one engine for everything.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._storage = storage_name(url)
        self._scanners: _Drivers | None = None  # SQLite: aiosqlite readers for `scan`
        self._inline: InlineConnections | None = None  # SQLite: the hot path's connections
        self._writing = asyncio.Lock()  # SQLite: one writer at a time in this process
        self._writer_task: asyncio.Task[Any] | None = None  # ... and the task it is
        if self.is_sqlite:
            self._reader = _sqlite_engine(url, pool=4, begin=None)
            self._writer = _sqlite_engine(url, pool=1, begin="BEGIN IMMEDIATE")
            self._scanners = _Drivers(_sqlite_engine(url, pool=4, begin=None), 4)
            self._inline = InlineConnections(make_url(url).database or "", _prepare_sqlite)
        else:
            self._reader = self._writer = create_async_engine(url, pool_size=8, max_overflow=8)

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: 'sqlite' or 'postgresql'."""
        return self._writer.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading (each statement sees a consistent snapshot)."""
        with self._full_disk():
            async with self._reader.connect() as conn:
                if self.is_sqlite:
                    yield conn
                else:
                    async with conn.begin():
                        yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed on clean exit."""
        with self._full_disk():
            async with self._turn(), self._writer.connect() as conn, conn.begin():
                yield conn

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """On SQLite, this process's turn to write (module docstring); on PostgreSQL, at once."""
        if not self.is_sqlite:
            yield
            return
        me = asyncio.current_task()
        if me is not None and me is self._writer_task:  # it would wait for itself forever
            raise RuntimeError("a write inside this task's own write transaction")
        async with self._writing:
            self._writer_task = me
            try:
                yield
            finally:
                self._writer_task = None

    @contextmanager
    def _full_disk(self) -> Iterator[None]:
        """Turn the driver's "disk full" into StorageFullError (the transaction is undone)."""
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error) as e:
            reason = disk_full_reason(e)
            if reason is None:
                raise
            raise StorageFullError(self._storage, reason) from e

    async def fetch(
        self,
        shape: Hashable,
        build: Callable[[], ClauseElement],
        params: Mapping[str, Any],
        *,
        write: bool = False,
        scan: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Run one statement with named `params`; return its rows as converted tuples.

        The hot path of the node (a peer message, a serial check and its audit
        entry). On SQLite the statement is built and compiled once per `shape`
        (a key that names its structure: `build` must then always build the
        same statement, with bind parameters for every value) and runs on the
        event loop's thread (`node.store.inline`): a few rows through an index
        cost microseconds there, and a trip to a driver thread costs ten times
        more. `write` runs it as one atomic write, on the node's single writer.
        `scan`, for a statement that may read many rows (a search, a listing),
        runs it on one of aiosqlite's threads instead, so that it does not hold
        up the event loop. PostgreSQL runs it through SQLAlchemy as usual.
        """
        if self._inline is None or self._scanners is None:
            async with self.write() if write else self.read() as conn:  # they translate
                return await _rows(conn, build, params)
        compiled = self._compile(shape, build)
        with self._full_disk():
            if scan and not write:
                async with self._scanners.driver() as driver:
                    return await _scan(driver, compiled, params)
            if not write:
                return await _inline(self._inline.get(write=False), compiled, params)
            async with self._turn():
                return await _inline(self._inline.get(write=True), compiled, params)

    def _compile(self, shape: Hashable, build: Callable[[], ClauseElement]) -> _Compiled:
        compiled = _COMPILED.get(shape)
        if compiled is None:
            compiled = _COMPILED[shape] = _compile_sqlite(build(), self._reader.dialect)
        return compiled

    @asynccontextmanager
    async def sqlite_transaction(self) -> AsyncIterator[Run]:
        """A write transaction of statements shaped as for `fetch` (SQLite only: the hot
        paths that must write several rows atomically).

        `BEGIN IMMEDIATE`, the statements and `COMMIT` (or `ROLLBACK` on an
        exception) all run on the node's single writer, on the event loop's
        thread, which is otherwise in autocommit mode.
        """
        assert self._inline is not None, "PostgreSQL uses write()"
        with self._full_disk():
            async with self._turn():
                conn = self._inline.get(write=True)

                async def run(
                    shape: Hashable, build: Callable[[], ClauseElement], params: Mapping[str, Any]
                ) -> list[tuple[Any, ...]]:
                    return await _inline(conn, self._compile(shape, build), params)

                await patiently(lambda: conn.execute("BEGIN IMMEDIATE"))
                try:
                    yield run
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # none left open on the held connection
                        with suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction for statements shaped as for `fetch`, on either backend:
        `sqlite_transaction` on SQLite, and `write()` on PostgreSQL. Committed on
        clean exit, rolled back on an exception."""
        if self.is_sqlite:
            async with self.sqlite_transaction() as run:
                yield Transaction(run, "sqlite", None)
            return
        async with self.write() as conn:

            async def run(
                _shape: Hashable, build: Callable[[], ClauseElement], params: Mapping[str, Any]
            ) -> list[tuple[Any, ...]]:
                return await _rows(conn, build, params)

            yield Transaction(run, self.dialect, conn)

    async def schema_revision(self, doing: str = "open") -> str | None:
        """The revision of the database's schema (Alembic's `alembic_version`); None if it has
        none (an empty database). One cheap read: no Alembic, nothing written.

        Raises:
            ConfigError: the database cannot be read ("cannot `doing` the database at ...").
        """
        try:
            async with self.read() as conn:
                if not await conn.run_sync(lambda c: inspect(c).has_table("alembic_version")):
                    return None
                found = await conn.execute(text("SELECT version_num FROM alembic_version"))
                return found.scalar()
        except (SQLAlchemyError, OSError) as e:
            raise ConfigError(f"cannot {doing} the database at {self.url}: {e}") from e

    async def check_schema(self, migrate: str) -> None:
        """Refuse a schema that is not `SCHEMA_REVISION`, behind or ahead (SchemaVersionError,
        whose message tells the user to run the command `migrate` when it is behind)."""
        found = await self.schema_revision()
        if found != SCHEMA_REVISION:
            raise SchemaVersionError(found, SCHEMA_REVISION, migrate)

    async def migrate(self) -> str | None:
        """Bring the schema to `SCHEMA_REVISION` (Alembic `upgrade head`); the revision it was
        at before (None: an empty database). Nothing to do costs one read, without Alembic.

        Raises:
            SchemaVersionError: the schema is ahead of this code's; it is left as it is.
        """
        before = await self.schema_revision("migrate")
        if before == SCHEMA_REVISION:
            return before
        error = SchemaVersionError(before, SCHEMA_REVISION, "iarms-node migrate")
        if not error.behind:
            raise error
        from alembic import command

        config = alembic_config(self.url)
        try:
            with self._full_disk():
                async with self._writer.connect() as conn:
                    await conn.run_sync(_upgrade, config, command)
                    await conn.commit()
        except (SQLAlchemyError, OSError) as e:
            raise ConfigError(f"cannot migrate the database at {self.url}: {e}") from e
        return before

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._inline is not None:
            self._inline.close()
        if self._scanners is not None:
            await self._scanners.close()
        for engine in {self._reader, self._writer}:
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
