"""hit evidence: peers' signed confirmations of our lookups' hits

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hit_evidence",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("peer", sa.String(length=3), nullable=False),
        sa.Column("serial_number", sa.Text(), nullable=False),
        sa.Column("case_reference", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("bundle", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hit_evidence")),
    )
    with op.batch_alter_table("hit_evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hit_evidence_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hit_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hit_evidence_at"))
    op.drop_table("hit_evidence")
