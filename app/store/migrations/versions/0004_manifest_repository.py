"""The manifest repository: signed manifest stores keyed by manifest id, watermark id and fingerprints.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manifests",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("manifest_id", sa.String(200), nullable=False, unique=True),
        sa.Column("manifest_store", sa.LargeBinary, nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("watermark_id", sa.String(64), nullable=True),
        sa.Column("iscc", sa.String(32), nullable=True),
        sa.Column("pdq", sa.LargeBinary(32), nullable=True),
        sa.Column("pdq_quality", sa.SmallInteger, nullable=True),
        sa.Column("key_id", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("integrity", sa.String(64), nullable=False),
    )
    op.create_index("ix_manifests_watermark_id", "manifests", ["watermark_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_manifests_watermark_id", table_name="manifests")
    op.drop_table("manifests")
