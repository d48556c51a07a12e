"""traces and their signed items (receipts, answers): the trace peer service

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trace_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("originator", sa.String(length=3), nullable=False),
        sa.Column("prev_country", sa.String(length=3), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("deadline_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("next_country", sa.String(length=3), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("force_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traces")),
        sa.UniqueConstraint("trace_id", "position", name=op.f("uq_traces_trace_id_position")),
    )
    op.create_table(
        "trace_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trace", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("item", sa.LargeBinary(), nullable=False),
        sa.Column("item_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_ms", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace"], ["traces.id"], name=op.f("fk_trace_items_trace_traces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_items")),
        sa.UniqueConstraint("trace", "item_hash", name=op.f("uq_trace_items_trace_item_hash")),
    )


def downgrade() -> None:
    op.drop_table("trace_items")
    op.drop_table("traces")
