"""What differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.ext.asyncio import AsyncConnection


def _dialect(name: str) -> Any:
    """SQLAlchemy's module for one dialect, imported when first used: a node on SQLite
    never loads PostgreSQL's (and the engine has loaded its own already)."""
    return importlib.import_module(f"sqlalchemy.dialects.{name}")


async def insert_many_ignoring_conflicts(
    conn: AsyncConnection,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    constants: dict[str, Any],
) -> int:
    """`INSERT … ON CONFLICT (key) DO NOTHING` for many rows; return how many were new.

    Each row holds the values of `columns`; `constants` are the same for every
    row. On SQLite this goes straight to the driver's `executemany` (whose row
    count sums the inserted rows), converting values with the columns' own
    bind processors so they are stored exactly as SQLAlchemy stores them: a
    million-row import spends its time in SQLite, not in statement
    compilation. PostgreSQL uses a compiled multi-row insert with RETURNING.
    """
    if not rows:
        return 0
    names = [*columns, *constants]
    if conn.dialect.name != "sqlite":
        stmt = _dialect("postgresql").insert(table).on_conflict_do_nothing(index_elements=[key])
        dicts = [dict(zip(columns, row, strict=True)) | constants for row in rows]
        return len((await conn.execute(stmt.returning(table.c[key]), dicts)).all())

    def processor(name: str) -> Callable[[Any], Any] | None:
        return table.c[name].type._cached_bind_processor(conn.dialect)

    tail = tuple(p(v) if (p := processor(n)) else v for n, v in constants.items())
    converted = [(i, p) for i, name in enumerate(columns) if (p := processor(name))]
    params = []
    for row in rows:
        values = list(row)
        for i, convert in converted:
            values[i] = convert(values[i])
        params.append((*values, *tail))
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608 - names from our schema
        f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT ({key}) DO NOTHING"
    )
    result = await conn.exec_driver_sql(sql, params)
    return int(result.rowcount)


def insert_ignoring(dialect: str, table: Table) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` (any unique key) for one dialect."""
    return (
        _dialect("sqlite" if dialect == "sqlite" else "postgresql")
        .insert(table)
        .on_conflict_do_nothing()
    )


def like_escape(text: str) -> str:
    r"""Escape LIKE wildcards so user text matches literally (escape char `\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def month_of(dialect: str, value: Any) -> Any:
    """SQL for the month (`YYYY-MM` text) of a date or timestamp expression."""
    if dialect == "sqlite":
        return func.strftime("%Y-%m", value)
    return func.to_char(value, "YYYY-MM")


async def upsert_adding(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    column: str,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """`INSERT … ON CONFLICT (keys) DO UPDATE SET column = column + the new value` for
    many rows, each the values of `keys` then of `column`.

    On SQLite straight to the driver's `executemany` (the values are text and
    integers, stored as given): an import adds tens of thousands of counts a
    batch, and SQLAlchemy's per-row parameter handling cost as much as SQLite.
    """
    if not rows:
        return
    names = [*keys, column]
    if conn.dialect.name == "sqlite":
        sql = (
            f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608 - names from our schema
            f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT ({', '.join(keys)}) "
            f"DO UPDATE SET {column} = {column} + excluded.{column}"
        )
        await conn.exec_driver_sql(sql, list(rows))
        return
    stmt = _dialect("postgresql").insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={column: table.c[column] + stmt.excluded[column]}
    )
    await conn.execute(stmt, [dict(zip(names, row, strict=True)) for row in rows])


async def lock_for_append(conn: AsyncConnection, table: Table) -> None:
    """Keep other transactions from writing `table` until this one ends (SQLite's writer
    already holds the database's one write lock; PostgreSQL locks the table, readers go on)."""
    if conn.dialect.name != "sqlite":
        await conn.exec_driver_sql(f"LOCK TABLE {table.name} IN EXCLUSIVE MODE")
