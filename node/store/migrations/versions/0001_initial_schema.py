"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_log_action_seq"), ["action", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_log_actor_seq"), ["actor", "seq"], unique=False)

    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("serial_canonical", sa.String(length=64), nullable=False),
        sa.Column("make", sa.String(length=200), nullable=False),
        sa.Column("make_known", sa.Boolean(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("firearm_type", sa.String(length=100), nullable=False),
        sa.Column("firearm_type_known", sa.Boolean(), nullable=False),
        sa.Column("calibre", sa.String(length=100), nullable=False),
        sa.Column("calibre_known", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("country_of_manufacture", sa.String(length=3), nullable=True),
        sa.Column("event_date", sa.Date(), nullable=True),
        sa.Column("event_place", sa.Text(), nullable=False),
        sa.Column("reporting_agency", sa.Text(), nullable=False),
        sa.Column("case_reference", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("markings", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("recovered_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_records_dedupe_key")),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_records_calibre"), ["calibre"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_records_country_of_manufacture"),
            ["country_of_manufacture"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_records_event_date"), ["event_date"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_records_make_firearm_type_status_id"),
            ["make", "firearm_type", "status", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_records_model_key"), ["model_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_records_serial_canonical"), ["serial_canonical"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("external", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_console_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_user_id"))

    op.drop_table("console_sessions")
    op.drop_table("users")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_serial_canonical"))
        batch_op.drop_index(batch_op.f("ix_records_model_key"))
        batch_op.drop_index(batch_op.f("ix_records_make_firearm_type_status_id"))
        batch_op.drop_index(batch_op.f("ix_records_event_date"))
        batch_op.drop_index(batch_op.f("ix_records_country_of_manufacture"))
        batch_op.drop_index(batch_op.f("ix_records_calibre"))

    op.drop_table("records")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_actor_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action_seq"))

    op.drop_table("audit_log")
    op.drop_table("audit_head")
