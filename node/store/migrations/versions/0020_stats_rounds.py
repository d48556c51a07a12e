"""statistics rounds: rounds, answers, shares, holdings, sums and the privacy budget's ledger

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_TABLES = (
    "stats_rounds",
    "stats_answers",
    "stats_shares",
    "stats_holdings",
    "stats_sums",
    "stats_ledger",
)


def upgrade() -> None:
    op.create_table(
        "stats_rounds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("requester", sa.String(length=3), nullable=False),
        sa.Column("query", sa.String(length=32), nullable=False),
        sa.Column("period_from", sa.String(length=7), nullable=False),
        sa.Column("period_to", sa.String(length=7), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("aggregators", sa.String(length=64), nullable=False),
        sa.Column("min_contributors", sa.Integer(), nullable=False),
        sa.Column("deadline_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("asked", sa.Text(), nullable=False),
        sa.Column("closed", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_rounds")),
        sa.UniqueConstraint("round_id", name=op.f("uq_stats_rounds_round_id")),
    )
    op.create_index(op.f("ix_stats_rounds_status"), "stats_rounds", ["status"], unique=False)
    op.create_table(
        "stats_answers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("joined", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_answers")),
        sa.UniqueConstraint("round_id", "country", name=op.f("uq_stats_answers_round_id_country")),
    )
    op.create_table(
        "stats_shares",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("contributor", sa.String(length=3), nullable=False),
        sa.Column("query", sa.String(length=32), nullable=False),
        sa.Column("period_from", sa.String(length=7), nullable=False),
        sa.Column("period_to", sa.String(length=7), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_shares")),
        sa.UniqueConstraint(
            "round_id", "contributor", name=op.f("uq_stats_shares_round_id_contributor")
        ),
    )
    op.create_table(
        "stats_holdings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("aggregator", sa.String(length=3), nullable=False),
        sa.Column("contributors", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_holdings")),
        sa.UniqueConstraint(
            "round_id", "aggregator", name=op.f("uq_stats_holdings_round_id_aggregator")
        ),
    )
    op.create_table(
        "stats_sums",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("aggregator", sa.String(length=3), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_sums")),
        sa.UniqueConstraint(
            "round_id", "aggregator", name=op.f("uq_stats_sums_round_id_aggregator")
        ),
    )
    op.create_table(
        "stats_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("requester", sa.String(length=3), nullable=False),
        sa.Column("query", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("spent", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_ledger")),
        sa.UniqueConstraint("round_id", name=op.f("uq_stats_ledger_round_id")),
    )
    op.create_index(op.f("ix_stats_ledger_month"), "stats_ledger", ["month"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stats_ledger_month"), table_name="stats_ledger")
    op.drop_index(op.f("ix_stats_rounds_status"), table_name="stats_rounds")
    for name in reversed(_TABLES):
        op.drop_table(name)
