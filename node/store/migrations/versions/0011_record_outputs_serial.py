"""record_outputs: the canonical serial each output was computed from

A record whose serial changes keeps its old output until the lookup index
recomputes it; the output answers only while its serial is the record's.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record_outputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("serial_canonical", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE record_outputs SET serial_canonical = "
        "(SELECT serial_canonical FROM records WHERE records.id = record_outputs.record_id)"
    )
    with op.batch_alter_table("record_outputs", schema=None) as batch_op:
        batch_op.alter_column(
            "serial_canonical", existing_type=sa.String(length=64), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("record_outputs", schema=None) as batch_op:
        batch_op.drop_column("serial_canonical")
