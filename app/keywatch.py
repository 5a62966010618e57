"""Key rotation without restarts: each worker watches the keyring and swaps in the newly active key.

Requests take the current `SignContext` once, at their start, and finish with it even if a rotation lands
meanwhile (the old signer stays alive while referenced). A new key is self-tested before it is used; if
it fails, the worker keeps signing with the key it had and reports the problem on /readyz.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.keysource import active_key_signer, keyring_file
from app.settings import Settings
from signing import (
    ClaimGenerator,
    Engine,
    HallmarkError,
    Ledger,
    NativeSigner,
    SignContext,
    SystemClock,
    TimestampGuard,
    Timestamping,
    TsaRelay,
    self_test,
)

log = logging.getLogger("hallmark")


class SignerWatch:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        ledger: Ledger,
        generator: ClaimGenerator,
        *,
        clock: Callable[[], float] = time.monotonic,
        timestamping: tuple[TsaRelay, TimestampGuard] | None = None,
    ):
        self._settings = settings
        self._engine = engine
        self._ledger = ledger
        self._generator = generator
        self._timestamping = timestamping
        self._clock = clock
        self._keyring = keyring_file(settings)
        self._lock = threading.Lock()
        self._ctx: SignContext | None = None
        self._stamp: object = object()  # never equal to a real stamp: the first check loads
        self._next_check = 0.0
        self.problem: str | None = None

    def start(self) -> SignContext:
        """Load the active key now; raise if it cannot sign (fail fast at start-up)."""
        with self._lock:
            self._stamp = self._keyring.stamp()
            self._ctx = self._build()
            self._next_check = self._clock() + self._settings.keyring_poll_seconds
            return self._ctx

    def close(self) -> None:
        if self._timestamping is not None:
            self._timestamping[0].close()

    def current(self) -> SignContext | None:
        if self._clock() >= self._next_check:
            self._refresh()
        return self._ctx

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is reloading; keep serving with the current key meanwhile
        try:
            self._next_check = self._clock() + self._settings.keyring_poll_seconds
            stamp = self._keyring.stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                ctx = self._build()
            except HallmarkError as exc:
                self.problem = f"the newly active key cannot sign: {exc.message}"
                log.error("key reload failed, still signing with the previous key: %s", exc.diagnostics())
                return
            previous = self._ctx.signer.key.key_id if self._ctx else None
            self._ctx = ctx
            self.problem = None
            log.info("signing key changed: %s -> %s", previous, ctx.signer.key.key_id)
        finally:
            self._lock.release()

    def _build(self) -> SignContext:
        key = active_key_signer(self._settings)
        signer = NativeSigner(
            key
        )  # self-tested without the TSA: an outage must not block a start or rotation
        self_test(self._engine, signer, self._generator)
        stamps = None
        if self._timestamping is not None:
            relay, guard = self._timestamping
            stamps = Timestamping(NativeSigner(key, relay.url), guard)
        return SignContext(self._engine, signer, self._ledger, SystemClock(), self._generator, stamps)
