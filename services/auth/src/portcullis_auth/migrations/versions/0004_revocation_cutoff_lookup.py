"""index revocations by kind and subject (cutoff lookups)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_revocations_kind_subject", "revocations", ["kind", "subject"])


def downgrade() -> None:
    op.drop_index("ix_revocations_kind_subject", table_name="revocations")
