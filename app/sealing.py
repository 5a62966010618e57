"""The service's sealer: every `audit_seal_interval_seconds`, link new ledger rows into the audit chain and
sign a checkpoint with the active signing key (app/store/audit.py), then, when a TSA is configured, have the
newest checkpoint timestamped (after the seal commits: a TSA round trip never holds the sealer's lock).
Every worker runs one; the database lock row lets one seal at a time, the others find nothing left to do.

Also the sign intents' retention (`intent_pruning`): at start and then every `PRUNE_INTERVAL_SECONDS`, each
worker deletes the completed and abandoned intents older than HALLMARK_AUDIT_INTENT_RETENTION_DAYS, in small
batches (app/store/intents.py), whether the sealer runs or not. The gauge of signs never committed is not
kept here: /metrics counts them when it is scraped (`refresh_audit_gauges`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from app.metrics import (
    AUDIT_SEAL_LAG,
    AUDIT_SEALED,
    AUDIT_TIMESTAMPS,
    AUDIT_UNCOMMITTED_SIGNS,
    AUDIT_UNSEALED,
)
from app.store.audit import Sealer
from app.store.intents import SqlSignIntents
from app.tsa.upstream import RelayError, Upstream, query_within
from signing import HallmarkError, KeySigner, timestamp_query, timestamp_reply_problem

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger("hallmark.audit")


class CheckpointStamper:
    """Asks the TSA for a token over the newest checkpoint's signature and stores it."""

    def __init__(self, tsa_url: str, deadline: float) -> None:
        self._upstream = Upstream.parse(tsa_url)
        self._deadline = deadline

    def stamp_newest(self, sealer: Sealer) -> str:
        """`stamped`, `failed`, `refused`, or `none` (nothing to stamp). Never raises for a TSA problem."""
        cp = sealer.newest_unstamped()
        if cp is None:
            return "none"
        try:
            reply = query_within(self._upstream, timestamp_query(cp.signature), self._deadline)
        except RelayError as exc:
            log.warning("audit sealer: checkpoint %d not timestamped: %s", cp.tree_size, exc)
            return _count("failed")
        problem = timestamp_reply_problem(reply, cp.signature)
        if problem is not None:
            log.warning("audit sealer: checkpoint %d not timestamped: %s", cp.tree_size, problem)
            return _count("refused")
        sealer.record_timestamp(cp.tree_size, base64.b64encode(reply).decode())
        return _count("stamped")


def _count(outcome: str) -> str:
    AUDIT_TIMESTAMPS.labels(outcome).inc()
    return outcome


def seal_once(
    sealer: Sealer,
    signer: Callable[[], KeySigner | None],
    stamper: CheckpointStamper | None = None,
) -> None:
    """One run: measure the lag, seal, record the chain's size, timestamp the newest checkpoint. Never raises
    (the next run retries)."""
    try:
        status = sealer.status()
        AUDIT_UNSEALED.set(status.unsealed)
        AUDIT_SEAL_LAG.set(status.lag_seconds)
        key = signer()
        if key is None:
            if status.unsealed:
                log.warning(
                    "audit sealer: %d rows wait; no signing key to sign a checkpoint", status.unsealed
                )
            return
        result = sealer.seal(key)
        AUDIT_SEALED.set(result.tree_size)
        if result.linked:
            log.info("audit sealer: linked %d rows, chain size %d", result.linked, result.tree_size)
        if stamper is not None:
            stamper.stamp_newest(sealer)
    except HallmarkError as exc:
        log.error("audit sealer: %s", exc.diagnostics())
    except Exception:  # a database hiccup must not end the loop
        log.exception("audit sealer failed; retrying at the next interval")


async def seal_periodically(
    sealer: Sealer,
    signer: Callable[[], KeySigner | None],
    interval: float,
    stamper: CheckpointStamper | None = None,
) -> None:
    while True:
        await to_thread.run_sync(seal_once, sealer, signer, stamper)
        await asyncio.sleep(interval)


def checkpoint_stamper(rt: Runtime) -> CheckpointStamper | None:
    """The stamper when a TSA is configured and HALLMARK_AUDIT_TIMESTAMPS is on."""
    cfg = rt.settings
    if not cfg.audit_timestamps or cfg.tsa_url is None:
        return None
    return CheckpointStamper(cfg.tsa_url, cfg.tsa_deadline_seconds)


@contextlib.asynccontextmanager
async def sealing(rt: Runtime) -> AsyncIterator[None]:
    """Runs the worker's sealing task while the app runs (not when HALLMARK_AUDIT_SEAL_INTERVAL_SECONDS
    is 0)."""
    interval = rt.settings.audit_seal_interval_seconds
    if interval <= 0:
        yield
        return

    def signer() -> KeySigner | None:
        ctx = rt.sign_ctx
        return ctx.signer.key if ctx else None

    async with _in_background(seal_periodically(Sealer(rt.db), signer, interval, checkpoint_stamper(rt))):
        yield


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Runs `work` as a task for the duration of the block, then cancels it and waits for it to end."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the sign intents: retention and the gauge -----------------------------------------------------------

PRUNE_INTERVAL_SECONDS = 3600.0
DAY = 86400.0


def prune_intents_once(intents: SqlSignIntents, retention_days: float) -> int:
    """One pruning run (see `SqlSignIntents.prune`); how many intents were deleted. Never raises (the next
    run retries)."""
    try:
        removed = intents.prune(retention_days * DAY)
    except Exception:  # a database hiccup must not end the loop
        log.exception("sign intents not pruned; retrying at the next interval")
        return 0
    if removed:
        log.info("pruned %d closed sign intents older than %g days", removed, retention_days)
    return removed


async def prune_intents_periodically(intents: SqlSignIntents, retention_days: float) -> None:
    while True:
        await to_thread.run_sync(prune_intents_once, intents, retention_days)
        await asyncio.sleep(PRUNE_INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def intent_pruning(rt: Runtime) -> AsyncIterator[None]:
    """Runs the worker's pruning task while the app runs (not when HALLMARK_AUDIT_INTENT_RETENTION_DAYS is 0,
    nor when no intents are written). Independent of the sealer."""
    days = rt.settings.audit_intent_retention_days
    if rt.intents is None or days <= 0:
        yield
        return
    async with _in_background(prune_intents_periodically(rt.intents, days)):
        yield


def refresh_audit_gauges(rt: Runtime | None) -> None:
    """Called by /metrics before it answers: `hallmark_audit_uncommitted_signs` is the database's count now
    (one indexed COUNT), whether the sealer runs or not. A database error leaves the last value."""
    if rt is None or rt.intents is None:
        return
    try:
        AUDIT_UNCOMMITTED_SIGNS.set(rt.intents.uncommitted(rt.settings.audit_intent_grace_seconds))
    except Exception:
        log.warning("hallmark_audit_uncommitted_signs not refreshed: the database did not answer")
