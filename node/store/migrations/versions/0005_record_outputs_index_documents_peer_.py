"""record outputs, index documents, peer indexes, hits

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "hits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("peer", sa.String(length=3), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("case_reference", sa.Text(), nullable=False),
        sa.Column("make_given", sa.String(length=200), nullable=False),
        sa.Column("make_agrees", sa.Boolean(), nullable=False),
        sa.Column("lookup_id", sa.LargeBinary(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hits")),
        sa.UniqueConstraint(
            "peer", "lookup_id", "record_id", name=op.f("uq_hits_peer_lookup_id_record_id")
        ),
    )
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hits_at"), ["at"], unique=False)

    op.create_table(
        "index_documents",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("base_version", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("items_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("base_items", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_index_documents")),
    )
    op.create_table(
        "peer_indexes",
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("documents", sa.LargeBinary(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("country", name=op.f("pk_peer_indexes")),
    )
    op.create_table(
        "record_outputs",
        sa.Column(
            "record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("prefix", sa.LargeBinary(length=8), nullable=False),
        sa.Column("output", sa.LargeBinary(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
            name=op.f("fk_record_outputs_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_record_outputs")),
    )
    with op.batch_alter_table("record_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_outputs_prefix"), ["prefix"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("record_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_outputs_prefix"))

    op.drop_table("record_outputs")
    op.drop_table("peer_indexes")
    op.drop_table("index_documents")
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hits_at"))

    op.drop_table("hits")
