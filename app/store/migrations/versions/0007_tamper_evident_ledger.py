"""The tamper-evident ledger: API-key and configuration events, the sealer's links and signed checkpoints,
and (SQLite) triggers that refuse UPDATE and DELETE on ledger rows. Existing API keys get their
api_key.created (and api_key.revoked) events, so authentication, which now reads the events, keeps working.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Rows nobody may change or remove once written.
APPEND_ONLY = ("signatures", "key_events", "ledger_events", "ledger_links", "ledger_checkpoints")


def upgrade() -> None:
    op.create_table(
        "ledger_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_ledger_events_subject", "ledger_events", ["subject"])
    op.create_table(
        "ledger_links",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("row_seq", sa.Integer, nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("source", "row_seq", name="uq_ledger_links_row"),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tree_size", sa.Integer, nullable=False, unique=True),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("chain_head", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(100), nullable=False),
        sa.Column("algorithm", sa.String(20), nullable=False),
        sa.Column("certificate_chain", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
    )
    sealer = op.create_table(
        "ledger_sealer",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(sealer, [{"id": 1, "sealed_at": None}])
    _backfill_api_key_events()
    if op.get_bind().dialect.name == "sqlite":
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only (audit ledger)'); END"
                )


def _backfill_api_key_events() -> None:
    conn = op.get_bind()
    keys = sa.table(
        "api_keys",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("secret_sha256", sa.String),
        sa.column("scopes", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
    )
    events = sa.table(
        "ledger_events",
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("kind", sa.String),
        sa.column("subject", sa.String),
        sa.column("data", sa.Text),
    )
    rows = []
    for key in conn.execute(sa.select(keys).order_by(keys.c.created_at)):
        created = {"name": key.name, "scopes": sorted(key.scopes.split()), "secret_sha256": key.secret_sha256}
        rows.append({"at": key.created_at or datetime.now(UTC), "kind": "api_key.created", "subject": key.id,
                     "data": _json(created)})  # fmt: skip
        if key.revoked_at is not None:
            rows.append({"at": key.revoked_at, "kind": "api_key.revoked", "subject": key.id, "data": "{}"})
    if rows:
        conn.execute(events.insert(), rows)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in APPEND_ONLY:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_table("ledger_sealer")
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_links")
    op.drop_index("ix_ledger_events_subject", "ledger_events")
    op.drop_table("ledger_events")
