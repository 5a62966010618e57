"""Prometheus counters (per worker process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SIGNED = Counter("hallmark_signed_total", "Files signed", ["media_type", "output"])
VERIFIED = Counter("hallmark_verified_total", "Files verified", ["outcome"])
PROBLEMS = Counter("hallmark_problems_total", "Requests answered with a problem", ["code"])
ISOLATION_EVENTS = Counter(
    "hallmark_isolation_events_total",
    "Isolated decode workers: started, and ended by crash, cpu, memory, deadline, cancelled (client gone); "
    "busy: no worker free in time",
    ["event"],
)
AUDIT_UNSEALED = Gauge(
    "hallmark_audit_unsealed_rows", "Ledger rows the sealer has not linked yet (at its last run)"
)
AUDIT_SEAL_LAG = Gauge(
    "hallmark_audit_seal_lag_seconds", "Age of the oldest unsealed ledger row at the sealer's last run"
)
AUDIT_SEALED = Gauge("hallmark_audit_chain_rows", "Rows in the audit chain under a signed checkpoint")
AUDIT_TIMESTAMPS = Counter(
    "hallmark_audit_timestamps_total",
    "RFC 3161 timestamps requested for audit checkpoints: stamped, failed (TSA unreachable, slow or "
    "erroring), refused (a reply that is not a granted token over the checkpoint)",
    ["outcome"],
)
