"""RFC 3161 timestamps without letting a timestamp authority (TSA) hang or break signing: the decisions.

The c2pa engine fetches the timestamp itself (native code) from the signer's TSA URL. It never falls back to
an untimestamped signature, and a TSA that accepts the connection but never answers blocks a sign for
~30 s. The adapters in `app.tsa` give the engine a loopback relay with a hard deadline (so a bad TSA fails
in milliseconds) and a thread-safe circuit breaker; this module holds what they decide with:

- `BreakerRules`: the consecutive-failure circuit breaker as a pure state machine over explicit times.
- `TimestampGuard`: the per-sign decision. Breaker closed: sign with the TSA. Breaker open, or the TSA
  failed: policy `require` raises `TimestampAuthorityError` (HTTP 503 + Retry-After); policy `best_effort`
  signs without a timestamp and says so.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from signing.errors import TimestampAuthorityError
from signing.ports import Breaker

T = TypeVar("T")


class TimestampPolicy(enum.StrEnum):
    """What a sign does when the TSA cannot be used."""

    REQUIRE = "require"  # fail the sign (HTTP 503 + Retry-After)
    BEST_EFFORT = "best_effort"  # sign without a timestamp and record that


# --- circuit breaker ------------------------------------------------------------------------------------


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerRules:
    """Consecutive-failure circuit breaker over explicit times (monotonic seconds). Not locked: the adapter
    (`app.tsa.CircuitBreaker`) holds a lock and a clock around it.

    Closed: every call may go. `threshold` consecutive failures open it. Open: no call goes until
    `open_seconds` have passed; then it is half-open and exactly one call (the probe) may go. The probe's
    success closes it, its failure opens it again for another `open_seconds`. A probe that reports neither
    (`release()`, or nothing at all) frees the slot; an unreported probe slot expires after `open_seconds`.
    """

    def __init__(self, threshold: int = 3, open_seconds: float = 30.0) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if open_seconds <= 0:
            raise ValueError("open_seconds must be positive")
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.failures = 0
        self._opened_at: float | None = None  # None: closed
        self._probe_since: float | None = None  # a half-open probe is in flight since then

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self.open_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self, now: float) -> bool:
        """May a call use the TSA now? In half-open state only the first caller gets True (the probe)."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._probe_since is not None and now - self._probe_since < self.open_seconds:
            return False  # another caller is probing
        self._probe_since = now
        return True

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._probe_since = None

    def failure(self, now: float) -> None:
        self.failures += 1
        self._probe_since = None
        if self._opened_at is not None or self.failures >= self.threshold:
            self._opened_at = now  # (re)open: a failed probe, or the threshold reached

    def release(self) -> None:
        """The call ended without saying anything about the TSA (it failed for another reason)."""
        self._probe_since = None

    def retry_after(self, now: float) -> float:
        """Seconds until the breaker lets a probe through (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.open_seconds - now)


# --- the per-sign decision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimestampOutcome:
    """Whether the signature carries a timestamp and, if not, why (for the response and the ledger)."""

    timestamped: bool
    reason: str | None = None  # "breaker_open" | "tsa_failed" when not timestamped


class TimestampGuard:
    """Decides per sign whether to use the TSA, and what a TSA failure means under the policy.

    `sign(with_tsa, without_tsa)`: `with_tsa` signs with the relay-backed signer and raises
    `TimestampAuthorityError` when the TSA failed; `without_tsa` signs with a signer that has no TSA URL.
    Any other exception from `with_tsa` propagates and says nothing about the TSA.
    """

    def __init__(self, policy: TimestampPolicy, breaker: Breaker) -> None:
        self.policy = policy
        self.breaker = breaker

    def sign(self, with_tsa: Callable[[], T], without_tsa: Callable[[], T]) -> tuple[T, TimestampOutcome]:
        if not self.breaker.allow():
            return self._fallback(without_tsa, "breaker_open", None)
        try:
            result = with_tsa()
        except TimestampAuthorityError as exc:
            self.breaker.failure()
            return self._fallback(without_tsa, "tsa_failed", exc)
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.success()
        return result, TimestampOutcome(timestamped=True)

    def _fallback(
        self, without_tsa: Callable[[], T], reason: str, cause: TimestampAuthorityError | None
    ) -> tuple[T, TimestampOutcome]:
        if self.policy is TimestampPolicy.BEST_EFFORT:
            return without_tsa(), TimestampOutcome(timestamped=False, reason=reason)
        retry = max(1, math.ceil(self.breaker.retry_after()))
        details: dict[str, object] = {"reason": reason, "retry_after_seconds": retry}
        if cause is not None:
            details.update(cause.details)
        message = (
            "The timestamp authority failed repeatedly; signing is paused until it recovers."
            if reason == "breaker_open"
            else "The timestamp authority did not return a usable timestamp in time."
        )
        raise TimestampAuthorityError(
            message, hint=f"Retry in {retry} s; timestamps are required by this service.", details=details
        ) from None
