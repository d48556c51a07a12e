"""exactly once and receipts: the inbox keeps each answer, the outbox each receipt

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("answer", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("delivered_message_id", sa.LargeBinary(length=16), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("delivered_message_id")
        batch_op.drop_column("receipt")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("answer")
        batch_op.drop_column("answer_type")
