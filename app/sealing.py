"""The service's sealer: every `audit_seal_interval_seconds`, link new ledger rows into the audit chain and
sign a checkpoint with the active signing key (app/store/audit.py). Every worker runs one; the database
lock row lets one seal at a time, the others find nothing left to do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from anyio import to_thread

from app.metrics import AUDIT_SEAL_LAG, AUDIT_SEALED, AUDIT_UNSEALED
from app.store.audit import Sealer
from signing import HallmarkError, KeySigner

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger("hallmark.audit")


def seal_once(sealer: Sealer, signer: Callable[[], KeySigner | None]) -> None:
    """One run: measure the lag, seal, record the chain's size. Never raises (the next run retries)."""
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
    except HallmarkError as exc:
        log.error("audit sealer: %s", exc.diagnostics())
    except Exception:  # a database hiccup must not end the loop
        log.exception("audit sealer failed; retrying at the next interval")


async def seal_periodically(sealer: Sealer, signer: Callable[[], KeySigner | None], interval: float) -> None:
    while True:
        await to_thread.run_sync(seal_once, sealer, signer)
        await asyncio.sleep(interval)


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

    task = asyncio.create_task(seal_periodically(Sealer(rt.db), signer, interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
