"""Table definitions (SQLAlchemy Core). Migrations in migrations/versions/ must match these."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(200), nullable=False),  # space-separated
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("api_key_id", sa.String(32), nullable=True),
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("digital_source_type", sa.String(200), nullable=False),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("output_mode", sa.String(20), nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("output_sha256", sa.String(64), nullable=False),
    sa.Column("manifest_id", sa.String(100), nullable=False, unique=True),
    sa.Column("parent_manifest_id", sa.String(200), nullable=True),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("certificate_sha256", sa.String(64), nullable=False),
    sa.Column("timestamped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Index("ix_signatures_created_at", "created_at"),
    sa.Index("ix_signatures_output_sha256", "output_sha256"),
    sa.Index("ix_signatures_api_key_created", "api_key_id", "created_at"),  # monthly quotas (0009)
)

key_events = sa.Table(
    "key_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("from_state", sa.String(20), nullable=True),
    sa.Column("to_state", sa.String(20), nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("certificate_sha256", sa.String(64), nullable=True),
    sa.Index("ix_key_events_key_id", "key_id"),
)

# The manifest repository: every signed manifest store, findable by id, watermark id and fingerprints.
# `integrity` is signing.entry_digest over the other columns (seq aside).
manifests = sa.Table(
    "manifests",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("manifest_id", sa.String(200), nullable=False, unique=True),
    sa.Column("manifest_store", sa.LargeBinary, nullable=False),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("watermark_id", sa.String(64), nullable=True),
    sa.Column("iscc", sa.String(32), nullable=True),
    sa.Column("pdq", sa.LargeBinary(32), nullable=True),
    sa.Column("pdq_quality", sa.SmallInteger, nullable=True),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("integrity", sa.String(64), nullable=False),
    sa.Column("confirmation", sa.LargeBinary, nullable=True),
    sa.Index("ix_manifests_watermark_id", "watermark_id", unique=True),
)

# Answers to the public page's "Was this result right?". No personal data: no address, no user agent, no
# file or hash of it, no exact time (the UTC day only); `comment` is what the person typed, if anything.
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("verdict_correct", sa.Boolean, nullable=False),
    sa.Column("manifest_id", sa.String(200), nullable=True),
    sa.Column("comment", sa.String(500), nullable=True),
)

# --- the tamper-evident ledger (migration 0007) ----------------------------------------------------------
# signatures, key_events and ledger_events are the ledger rows: insert-only (SQLite triggers refuse UPDATE
# and DELETE). The sealer links them, in order, into a hash chain and a Merkle tree (ledger_links) and
# signs checkpoints (ledger_checkpoints); both are insert-only too. See signing/audit.py.

# API-key events (api_key.created / api_key.scoped / api_key.revoked) and configuration changes
# (trust.added / trust.updated / trust.removed). `data` is compact sorted-key JSON.
ledger_events = sa.Table(
    "ledger_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_ledger_events_subject", "subject"),
)

ledger_links = sa.Table(
    "ledger_links",
    metadata,
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("row_seq", sa.Integer, nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("source", "row_seq", name="uq_ledger_links_row"),
)

ledger_checkpoints = sa.Table(
    "ledger_checkpoints",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tree_size", sa.Integer, nullable=False, unique=True),
    sa.Column("root_hash", sa.String(64), nullable=False),
    sa.Column("chain_head", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("algorithm", sa.String(20), nullable=False),
    sa.Column("certificate_chain", sa.Text, nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),  # JSON list of hex subtree roots, for the next seal
)

# The TSA's token over a checkpoint's signature (base64 DER TimeStampResp), fetched after the seal commits.
ledger_checkpoint_timestamps = sa.Table(
    "ledger_checkpoint_timestamps",
    metadata,
    sa.Column("tree_size", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("token", sa.Text, nullable=False),
)

# One row (id 1): the sealer takes the write lock by updating it, so one sealer runs at a time.
ledger_sealer = sa.Table(
    "ledger_sealer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
)

# --- Idempotency-Key on /v1/sign and per-API-key rate limits (migration 0009) ----------------------------
# Not ledger rows: expired entries are deleted. One row per (scope = API key id, or "-" without one, key).
# A row is `pending` while a request holds it (token + lease) and `done` once the sign's ledger row is
# committed: the same transaction inserts the signature row and stores the result here, so a crash leaves
# either neither or both. Times are epoch seconds (float), the same on SQLite and PostgreSQL.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
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
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

# Requests per API key per UTC minute (`minute` = epoch minute), shared by every service process.
api_key_rate = sa.Table(
    "api_key_rate",
    metadata,
    sa.Column("api_key_id", sa.String(32), primary_key=True),
    sa.Column("minute", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# --- the job API for large files (migration 0011) ---------------------------------------------------------
# Not ledger rows: a job is a piece of work on its way to a ledger row (written by the sign pipeline, as
# for POST /v1/sign). `id` is 256 random bits (the job's only name: unguessable). `params` is the validated
# request (form fields, output mode, file name) as JSON; `result_headers` the /v1/sign headers of the result;
# `problem` the RFC 9457 body of a failure. Times are epoch seconds (float), the same on SQLite and
# PostgreSQL. A running row is leased (`lease_until`, renewed while it runs): a row whose lease ran out
# belongs to a process that died and is queued again (up to `attempts` tries) or failed.
jobs = sa.Table(
    "jobs",
    metadata,
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
    # Idempotency-Key on POST /v1/jobs (migration 0012): one job per (API key, key).
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("idempotency_fingerprint", sa.String(64), nullable=True),
    sa.Index("ix_jobs_state_created", "state", "created_at"),
    sa.Index("ix_jobs_api_key_state", "api_key_id", "state"),
    sa.Index("ix_jobs_expires_at", "expires_at"),
    sa.Index("ux_jobs_api_key_idempotency", "api_key_id", "idempotency_key", unique=True),
)

# --- sign intents (migration 0013) -----------------------------------------------------------------------
# Not ledger rows, and deliberately not chained: see app/store/intents.py. One row per sign attempt, written
# in its own short transaction right before the engine signs (state `open`), then turned `completed` by the
# transaction that inserts the signature's ledger row (matched by manifest_id), or `abandoned` with the
# error's type name when the sign fails or is cancelled. An `open` row past `due_at` is a sign that died
# between the engine and the commit (a crash): `hallmark audit verify` reports it. Times are epoch seconds.
sign_intents = sa.Table(
    "sign_intents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("manifest_id", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),  # the latest the sign could still commit (its deadline)
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("api_key_id", sa.String(32), nullable=True),
    sa.Column("key_id", sa.String(100), nullable=False),
    sa.Column("certificate_sha256", sa.String(64), nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("signature_id", sa.String(36), nullable=True),  # the ledger row that completed it
    sa.Column("reason", sa.String(100), nullable=True),  # abandoned: the error's type name, never its text
    sa.Index("ix_sign_intents_state_due", "state", "due_at"),
)
