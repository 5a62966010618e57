"""RFC 3161 timestamps of audit checkpoints, one insert-only row per timestamped checkpoint. A table of
its own because the checkpoint row is written inside the sealer's lock and a TSA round trip must not hold
that lock; the token is fetched after the seal commits (app/sealing.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLE = "ledger_checkpoint_timestamps"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tree_size", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only (audit ledger)'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_{action}")
    op.drop_table(TABLE)
