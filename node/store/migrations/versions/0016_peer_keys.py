"""peer_keys: every signing key seen for each country, with its validity (trace verification)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peer_keys",
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("valid_from_ms", sa.BigInteger(), nullable=True),
        sa.Column("valid_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("rotation", sa.LargeBinary(), nullable=True),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("country", "key", name=op.f("pk_peer_keys")),
    )
    # The keys peers already have, as first keys (the rotation statements were not kept):
    # the current one and the previous one, both without bounds (converting
    # `previous_key_until` differs by dialect; a node rotating from now on keeps bounds).
    op.execute(
        "INSERT INTO peer_keys (country, key, valid_from_ms, valid_until_ms, rotation, added_at) "
        "SELECT country, signing_key, NULL, NULL, NULL, added_at FROM peers"
    )
    op.execute(
        "INSERT INTO peer_keys (country, key, valid_from_ms, valid_until_ms, rotation, added_at) "
        "SELECT country, previous_key, NULL, NULL, NULL, added_at FROM peers "
        "WHERE previous_key IS NOT NULL AND previous_key <> signing_key"
    )


def downgrade() -> None:
    op.drop_table("peer_keys")
