"""Feedback on verify results from the public page, without personal data.

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
        "feedback",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("verdict_correct", sa.Boolean, nullable=False),
        sa.Column("manifest_id", sa.String(200), nullable=True),
        sa.Column("comment", sa.String(500), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("feedback")
