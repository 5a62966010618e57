"""The job API for large files: one row per job (POST /v1/jobs). Not ledger rows: expired jobs keep their
row (state `expired`) while their files are deleted.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("api_key_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("phase", sa.String(12), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("upload_size", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("problem", sa.Text, nullable=True),
        sa.Column("result_media_type", sa.String(100), nullable=True),
        sa.Column("result_size", sa.BigInteger, nullable=True),
        sa.Column("result_headers", sa.Text, nullable=True),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])
    op.create_index("ix_jobs_api_key_state", "jobs", ["api_key_id", "state"])
    op.create_index("ix_jobs_expires_at", "jobs", ["expires_at"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The job queue on PostgreSQL (app/jobs/queue.py): Procrastinate's own tables and functions, as the
        # pinned version ships them (a later Procrastinate version brings its migrations in a new revision).
        from procrastinate.schema import SchemaManager  # noqa: PLC0415 - PostgreSQL only

        # On the driver's connection, in this migration's transaction, without parameters: the schema's
        # text holds `%` signs that a parameter-passing execute would take for placeholders.
        with bind.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(SchemaManager.get_schema())


def downgrade() -> None:
    # On PostgreSQL, Procrastinate's tables, types and functions are left in place (they hold no Hallmark
    # data); remove them with Procrastinate's own tooling if wanted.
    op.drop_index("ix_jobs_expires_at", "jobs")
    op.drop_index("ix_jobs_api_key_state", "jobs")
    op.drop_index("ix_jobs_state_created", "jobs")
    op.drop_table("jobs")
