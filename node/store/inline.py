"""SQLite on the event loop's own thread: the hot path's statements, each a few rows
through an index.

aiosqlite runs every statement on a thread of its connection: a queue, a
wake-up of that thread, a future and a wake-up of the event loop, about
35 µs of CPU and as much again in context switches, where the statement
itself takes 5 µs. A peer message costs a few dozen statements (the replay
cache, the peer, the inbox claim, what the handler stores, the outbox), so
`Database.fetch` and `Database.transaction` run them here instead, on two
plain `sqlite3` connections used by the event loop's thread alone
(`check_same_thread`): a reader in autocommit mode, and the node's single
writer. What may read many rows (`fetch(scan=True)`: searches, listings)
stays on aiosqlite's threads, and so does every `Database.read`/`write`.

The one wait a statement can meet is another process's write lock (the CLI
importing while the node runs: `SQLITE_BUSY`). SQLite's busy handler would
sleep in this thread, and so stop the node; these connections have none and
`patiently` waits on the event loop instead, retrying for up to
`BUSY_TIMEOUT_S` (a statement that gets `SQLITE_BUSY` has done nothing).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How long a statement waits for another process's lock before its error is raised.
BUSY_TIMEOUT_S = 30.0
#: The first pause before a retry, and the longest (the pause doubles in between).
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.001, 0.05


def is_busy(error: sqlite3.Error) -> bool:
    """Whether `error` is SQLite's `SQLITE_BUSY` (any extended code): another connection
    holds the lock."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY


async def patiently(run: Callable[[], T], timeout_s: float = BUSY_TIMEOUT_S) -> T:
    """`run()`; while it raises `SQLITE_BUSY`, again after a pause on the event loop, for
    up to `timeout_s` (then the error is raised)."""
    pause, waited = FIRST_PAUSE_S, 0.0
    while True:
        try:
            return run()
        except sqlite3.OperationalError as e:
            if not is_busy(e) or waited >= timeout_s:
                raise
        await asyncio.sleep(pause)
        waited += pause
        pause = min(pause * 2, LONGEST_PAUSE_S)


class InlineConnections:
    """The reader and the writer `sqlite3` connections of one database file, opened
    when first used, each prepared by `prepare` (pragmas, functions)."""

    def __init__(self, path: str, prepare: Callable[[sqlite3.Connection], None]) -> None:
        self._path = path
        self._prepare = prepare
        self._open: dict[bool, sqlite3.Connection] = {}

    def get(self, write: bool) -> sqlite3.Connection:
        """The writer (`write`) or the reader connection."""
        conn = self._open.get(write)
        if conn is None:
            # Opening may wait for a lock (the first WAL pragma): once, at the node's start.
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._prepare(conn)
            conn.execute("PRAGMA busy_timeout=0")  # `patiently` waits, on the event loop
            self._open[write] = conn
        return conn

    def close(self) -> None:
        """Close both connections."""
        opened, self._open = self._open, {}
        for conn in opened.values():
            conn.close()
