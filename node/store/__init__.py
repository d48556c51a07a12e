"""Persistence: the only package with SQL.

`Database` (database.py) owns the engines (SQLite by default, PostgreSQL by
URL) and applies the Alembic migrations in `migrations/`. One store class
per concern (`RecordsStore`, `AuditStore`, `UsersStore`, `PeersStore`,
`OutboxStore`, `LookupStore`, ...) implements the storage Protocol its
service declares, turns each public method into one transaction and returns
frozen dataclasses from the domain's model modules, never ORM objects; a
handler that must write through several stores at once gets one
`work.StoreWork` (a unit of work). Dialect differences live in
`dialect.py`; the schema in `tables.py`.
"""
