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

from app.keysource import active_key_signer, close_key, keyring_file
from app.settings import Settings
from app.tsa import TsaRelay
from signing import (
    ClaimGenerator,
    Engine,
    HallmarkError,
    KeyringError,
    KeySigner,
    KeyState,
    Ledger,
    NativeSigner,
    SignContext,
    SystemClock,
    TimestampGuard,
    Timestamping,
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
        # Every key this watch opened. A rotated-out key may still be signing a request that took its context
        # before the rotation, so keys are closed together at `close()`, not when they are replaced.
        self._keys: list[KeySigner] = []
        self._closed = False
        self.problem: str | None = None

    def start(self) -> SignContext:
        """Load the active key now; raise if it cannot sign (fail fast at start-up)."""
        with self._lock:
            self._stamp = self._keyring.stamp()
            self._ctx = self._build()
            self._next_check = self._clock() + self._settings.keyring_poll_seconds
            return self._ctx

    def use_engine(self, engine: Engine) -> None:
        """The trust profiles changed (app/trustwatch.py): rebuild the signing context on the new engine at
        the next request (self-tested like a rotated key; on failure the current context stays)."""
        self._engine = engine
        self._stamp = object()
        self._next_check = 0.0

    def close(self) -> None:
        """At shutdown: stop the TSA relay and close every key this watch opened (a token key releases its
        share of the token's session). Idempotent; the watch hands out no context afterwards."""
        with self._lock:
            self._closed = True
            self._ctx = None
            keys, self._keys = self._keys, []
        if self._timestamping is not None:
            self._timestamping[0].close()
        for key in keys:
            close_key(key)

    def current(self) -> SignContext | None:
        if self._closed:
            return None
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
            try:
                ctx = self._build()
            except (HallmarkError, OSError) as exc:
                # Not remembered as seen: the next poll tries again (a transient failure heals itself).
                message = exc.message if isinstance(exc, HallmarkError) else type(exc).__name__
                if self._loaded_key_still_active():
                    self.problem = f"the newly active key cannot sign yet: {message}"
                    log.error("key reload failed, still signing with the active key: %s", message)
                else:
                    # The key we hold was retired or revoked (or nothing is active): stop signing with it.
                    self._ctx = None
                    self.problem = f"no usable active key: {message}"
                    log.error("signing stopped: %s", message)
                return
            self._stamp = stamp
            previous = self._ctx.signer.key.key_id if self._ctx else None
            self._ctx = ctx
            self.problem = None
            log.info("signing key changed: %s -> %s", previous, ctx.signer.key.key_id)
        finally:
            self._lock.release()

    def _loaded_key_still_active(self) -> bool:
        if self._ctx is None:
            return False
        if not self._keyring.exists():
            return True  # the pre-keyring single key has no states
        try:
            entry = self._keyring.load().get(self._ctx.signer.key.key_id)
        except (HallmarkError, OSError):
            return True  # an unreadable keyring is a transient problem, not a revocation
        return entry.state is KeyState.ACTIVE

    def _build(self) -> SignContext:
        """The caller holds `_lock`."""
        if self._closed:
            raise KeyringError("The signer was closed (the service is shutting down).")
        key = active_key_signer(self._settings)
        try:
            # Self-tested without the TSA: an outage must not block a start or a rotation.
            signer = NativeSigner(key)
            self_test(self._engine, signer, self._generator)
        except BaseException:
            close_key(key)  # never used: nothing else holds it
            raise
        self._keys.append(key)
        stamps = None
        if self._timestamping is not None:
            relay, guard = self._timestamping
            stamps = Timestamping(NativeSigner(key, relay.url), guard)
        return SignContext(
            self._engine,
            signer,
            self._ledger,
            SystemClock(),
            self._generator,
            stamps,
            max_image_pixels=self._settings.max_image_pixels,
        )
