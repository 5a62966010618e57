"""Prometheus counters (per worker process)."""

from __future__ import annotations

from prometheus_client import Counter

SIGNED = Counter("hallmark_signed_total", "Files signed", ["media_type", "output"])
VERIFIED = Counter("hallmark_verified_total", "Files verified", ["outcome"])
PROBLEMS = Counter("hallmark_problems_total", "Requests answered with a problem", ["code"])
ISOLATION_EVENTS = Counter(
    "hallmark_isolation_events_total",
    "Isolated decode workers: started, and ended by crash, cpu, memory, deadline, cancelled (client gone); "
    "busy: no worker free in time",
    ["event"],
)
