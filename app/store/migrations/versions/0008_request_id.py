"""The request id of the HTTP request behind each signature (nullable: rows signed before, and signs from the
CLI, have none). The audit encoding leaves None fields out, so rows sealed before this column existed hash
as they did.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("signatures", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("signatures", "request_id")
