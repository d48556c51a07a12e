"""Alembic environment: runs on the connection that `Database.migrate` hands over."""

from __future__ import annotations

from alembic import context

from node.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through node.store.database.Database.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
