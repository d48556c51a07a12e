"""Persistence: the only package with SQL.

`Database` (database.py) owns the engines (SQLite by default, PostgreSQL by
URL) and applies the Alembic migrations in `migrations/`. One store class
per concern (`RecordsStore`, `AuditStore`, `UsersStore`) turns each public
method into one named transaction and returns frozen dataclasses from the
domain's model modules, never ORM objects. Dialect differences live in
`dialect.py`; the schema in `tables.py`.
"""
