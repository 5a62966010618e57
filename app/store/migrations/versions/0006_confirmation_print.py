"""The manifest repository keeps each signed image's confirmation print (crop-tolerant cross-check of a
watermark hit); its SHA-256 is declared in the signed manifest.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("manifests") as batch:
        batch.add_column(sa.Column("confirmation", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("confirmation")
