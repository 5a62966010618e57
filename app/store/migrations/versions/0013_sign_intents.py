"""Sign intents: one row per sign attempt, written before the engine signs and closed by the commit of the
signature's ledger row (or abandoned with the error's type). Not ledger rows: the service updates them
(app/store/intents.py says why they are not chained).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_intents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("manifest_id", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("key_id", sa.String(100), nullable=False),
        sa.Column("certificate_sha256", sa.String(64), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("closed_at", sa.Float, nullable=True),
        sa.Column("signature_id", sa.String(36), nullable=True),
        sa.Column("reason", sa.String(100), nullable=True),
    )
    op.create_index("ix_sign_intents_state_due", "sign_intents", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_intents_state_due", "sign_intents")
    op.drop_table("sign_intents")
