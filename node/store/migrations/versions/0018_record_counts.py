"""statistics: record_counts (exact aggregates of records by dimension and month), and
indexes for the statistics' group-bys over the audit log and traces

Revision ID: 0018
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

_DIMENSIONS = {
    "make": "make",
    "calibre": "calibre",
    "country": "COALESCE(country_of_manufacture, '')",
    "type_status": "firearm_type || '/' || status",
}


def _month(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"strftime('%Y-%m', {column})"
    return f"to_char({column}, 'YYYY-MM')"


def upgrade() -> None:
    op.create_table(
        "record_counts",
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "value", "month", name=op.f("pk_record_counts")),
    )
    dialect = op.get_bind().dialect.name
    month = _month(dialect, "COALESCE(event_date, created_at)")
    for name, value in _DIMENSIONS.items():
        op.execute(
            "INSERT INTO record_counts (dimension, value, month, n) "  # noqa: S608 - constants
            f"SELECT '{name}', {value}, {month}, COUNT(*) FROM records GROUP BY 2, 3"
        )
    recovered = _month(dialect, "recovered_on")
    op.execute(
        "INSERT INTO record_counts (dimension, value, month, n) "  # noqa: S608 - constants
        f"SELECT 'recovered', '', {recovered}, COUNT(*) FROM records "
        "WHERE status = 'recovered' AND recovered_on IS NOT NULL GROUP BY 3"
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action_at"), ["action", "at"], unique=False)
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_traces_position_created_at"), ["position", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_traces_position_created_at"))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_action_at"))
    op.drop_table("record_counts")
