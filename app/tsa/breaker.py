"""The circuit breaker in front of the TSA, shared by the signing threads: core rules, a lock, a clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from signing import BreakerRules, BreakerState


class CircuitBreaker:
    """Thread-safe `signing.BreakerRules` (see there for the states); `clock` (monotonic seconds) is
    injectable."""

    def __init__(
        self,
        threshold: int = 3,
        open_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = BreakerRules(threshold, open_seconds)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def threshold(self) -> int:
        return self._rules.threshold

    @property
    def open_seconds(self) -> float:
        return self._rules.open_seconds

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._rules.state(self._clock())

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._rules.failures

    def allow(self) -> bool:
        with self._lock:
            return self._rules.allow(self._clock())

    def success(self) -> None:
        with self._lock:
            self._rules.success()

    def failure(self) -> None:
        with self._lock:
            self._rules.failure(self._clock())

    def release(self) -> None:
        with self._lock:
            self._rules.release()

    def retry_after(self) -> float:
        with self._lock:
            return self._rules.retry_after(self._clock())
