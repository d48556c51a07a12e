"""What differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(dialect: str, table: Table, key: str) -> Any:
    """`INSERT … ON CONFLICT (key) DO NOTHING` for the given dialect."""
    module: Any = sqlite if dialect == "sqlite" else postgresql
    return module.insert(table).on_conflict_do_nothing(index_elements=[key])


def like_escape(text: str) -> str:
    r"""Escape LIKE wildcards so user text matches literally (escape char `\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
