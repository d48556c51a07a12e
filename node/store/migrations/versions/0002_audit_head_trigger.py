"""Keep the audit head row in step with the log by a trigger; seed the head.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.execute(
        sa.text(
            "INSERT INTO audit_head (id, seq, hash) SELECT 1, 0, :genesis "
            "WHERE NOT EXISTS (SELECT 1 FROM audit_head WHERE id = 1)"
        ).bindparams(genesis=GENESIS)
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_advance_head() RETURNS trigger AS $$ BEGIN "
            "UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1; RETURN NEW; "
            "END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_advance_head AFTER INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_advance_head()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_log_advance_head AFTER INSERT ON audit_log BEGIN "
            "UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1; END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER audit_log_advance_head"
        + (" ON audit_log" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_advance_head()")
