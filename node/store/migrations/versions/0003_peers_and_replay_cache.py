"""peers and replay cache

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "peers",
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("url", sa.String(length=400), nullable=False),
        sa.Column("signing_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("oprf_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_contact_at", sa.DateTime(), nullable=True),
        sa.Column("index_version", sa.BigInteger(), nullable=True),
        sa.Column("previous_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("previous_key_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("country", name=op.f("pk_peers")),
    )
    op.create_table(
        "seen_messages",
        sa.Column("sender", sa.String(length=3), nullable=False),
        sa.Column("message_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sender", "message_id", name=op.f("pk_seen_messages")),
    )
    with op.batch_alter_table("seen_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_seen_messages_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("seen_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_messages_expires_at"))

    op.drop_table("seen_messages")
    op.drop_table("peers")
