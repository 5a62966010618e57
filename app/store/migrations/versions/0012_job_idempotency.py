"""Idempotency-Key on POST /v1/jobs: the job row carries its API key's Idempotency-Key and the request's
fingerprint; a unique index on (api_key_id, idempotency_key) lets one job only hold a key, so two
simultaneous posts with the same key make one job (the second insert fails and answers the first job).
Rows without a key hold NULL, which the unique index does not compare (SQLite and PostgreSQL alike).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column("jobs", sa.Column("idempotency_fingerprint", sa.String(64), nullable=True))
    op.create_index("ux_jobs_api_key_idempotency", "jobs", ["api_key_id", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_jobs_api_key_idempotency", "jobs")
    with op.batch_alter_table("jobs") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("idempotency_fingerprint")
        batch.drop_column("idempotency_key")
