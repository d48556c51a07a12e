"""custody events: the registry of legal custody that trace hops answer from

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custody_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("serial_canonical", sa.String(length=64), nullable=False),
        sa.Column("make", sa.String(length=200), nullable=False),
        sa.Column("make_key", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("from_party", sa.Text(), nullable=False),
        sa.Column("to_party", sa.Text(), nullable=False),
        sa.Column("to_country", sa.String(length=3), nullable=True),
        sa.Column("licence_reference", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("row_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_events")),
        sa.UniqueConstraint("row_digest", name=op.f("uq_custody_events_row_digest")),
    )
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_custody_events_serial_canonical_make_key"),
            ["serial_canonical", "make_key"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custody_events_serial_canonical_make_key"))
    op.drop_table("custody_events")
