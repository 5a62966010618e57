"""PostgreSQL grants for the service's own database role: it may read and append ledger rows but never change
or remove them (SQLite has triggers for the same, migration 0007). The schema owner runs the migrations and
applies these grants; the service connects as the restricted role (`hallmark audit pg-grants ROLE` prints
them, README "Audit ledger")."""

from __future__ import annotations

import re

from app.store.tables import metadata

# Rows nobody may change or remove once written (migration 0007's SQLite triggers, and 0009's).
APPEND_ONLY = (
    "signatures",
    "key_events",
    "ledger_events",
    "ledger_links",
    "ledger_checkpoints",
    "ledger_checkpoint_timestamps",
)
# The job queue's tables on PostgreSQL (Procrastinate's schema, migration 0011); its functions run with the
# caller's rights, and PostgreSQL lets every role execute functions unless told otherwise.
PROCRASTINATE_TABLES = (
    "procrastinate_events",
    "procrastinate_jobs",
    "procrastinate_periodic_defers",
    "procrastinate_workers",
)
ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def service_role_grants(role: str) -> list[str]:
    """The statements that let `role` run the service: SELECT and INSERT on the ledger tables, read-write on
    the others (API keys, manifests, feedback, the sealer's lock row, jobs and the job queue's), read on the
    migration version (the service checks the schema is current at start), and the sequences that number new
    rows."""
    if not ROLE.fullmatch(role):
        raise ValueError(
            "the role name must be 1 to 63 lower-case letters, digits or _, not starting with a digit"
        )
    others = sorted(name for name in metadata.tables if name not in APPEND_ONLY)
    return [
        f"GRANT USAGE ON SCHEMA public TO {role};",
        f"GRANT SELECT, INSERT ON {', '.join(APPEND_ONLY)} TO {role};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(others)} TO {role};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(PROCRASTINATE_TABLES)} TO {role};",
        f"GRANT SELECT ON alembic_version TO {role};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};",
    ]
