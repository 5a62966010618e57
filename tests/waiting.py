"""Waiting on a condition instead of sleeping a guessed time.

`wait_for` polls a condition up to a generous bound and returns its last value (assert on it);
`wait_until_past` waits for the wall clock to pass a moment, for properties that are about the real clock
(a certificate expired, a revocation in the past) and cannot be moved to an injected one because the c2pa
engine reads the system clock itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

GENEROUS_SECONDS = 10.0  # far above any expected wait: only a real hang reaches it


def wait_for(
    condition: Callable[[], bool], timeout: float = GENEROUS_SECONDS, interval: float = 0.01
) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; its last value."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= give_up:
            return condition()
        time.sleep(interval)
    return True


def wait_until_past(moment: datetime) -> None:
    """Return once the system clock is strictly after `moment` (sleeps only the time left, re-checked)."""
    while (left := (moment - datetime.now(UTC)).total_seconds()) >= 0:
        time.sleep(left + 0.001)
    assert datetime.now(UTC) > moment
