"""Idempotency-Key on /v1/sign (stored results, claims with a lease), the shared per-API-key request
counters of the per-key rate limit, and an index for the monthly quota. API-key policies themselves are
ledger events (api_key.policy): no table. Neither new table holds ledger rows: old entries are deleted.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Monthly quotas count an API key's signatures since the first of the month.
    op.create_index("ix_signatures_api_key_created", "signatures", ["api_key_id", "created_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("token", sa.String(36), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("signature_id", sa.String(36), nullable=True),
        sa.Column("manifest_id", sa.String(100), nullable=True),
        sa.Column("media_type", sa.String(100), nullable=True),
        sa.Column("headers", sa.Text, nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "api_key_rate",
        sa.Column("api_key_id", sa.String(32), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_key_rate")
    op.drop_index("ix_idempotency_keys_expires_at", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_signatures_api_key_created", "signatures")
