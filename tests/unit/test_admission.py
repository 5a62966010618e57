"""The verification gate (app/admission.py): slots, the queue behind them, and refusal beyond both."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.admission import WorkGate
from signing import CapacityError


@contextmanager
def held(gate: WorkGate) -> Iterator[threading.Event]:
    """Holds one slot in another thread until the block ends."""
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot():
            entered.set()
            leave.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    assert entered.wait(10)
    try:
        yield leave
    finally:
        leave.set()
        worker.join(10)


def test_a_free_slot_is_taken_at_once_and_given_back() -> None:
    gate = WorkGate(running=1, waiting=0, wait_seconds=5)
    with gate.slot():
        assert gate.saturated()
    assert not gate.saturated()
    with gate.slot():  # given back: the next one gets it
        pass


def test_beyond_slots_and_queue_the_request_is_refused_at_once() -> None:
    gate = WorkGate(running=1, waiting=0, wait_seconds=5)
    with held(gate):
        started = time.monotonic()
        with pytest.raises(CapacityError) as refused, gate.slot():
            pass
        assert time.monotonic() - started < 1  # no wait: the queue has no place
    assert refused.value.details == {"retry_after_seconds": 1}
    assert "1 at a time, 0 waiting" in refused.value.message


def test_a_queued_request_gets_the_slot_when_it_is_given_back() -> None:
    gate = WorkGate(running=1, waiting=1, wait_seconds=10)
    got = threading.Event()

    def wait_for_slot() -> None:
        with gate.slot():
            got.set()

    with held(gate) as leave:
        waiter = threading.Thread(target=wait_for_slot)
        waiter.start()
        deadline = time.monotonic() + 10
        while not gate.saturated() and time.monotonic() < deadline:  # the waiter is in the queue
            time.sleep(0.01)
        assert gate.saturated()
        assert not got.is_set()
        leave.set()
        waiter.join(10)
    assert got.is_set()
    assert not gate.saturated()


def test_a_queued_request_gives_up_after_the_wait() -> None:
    gate = WorkGate(running=1, waiting=1, wait_seconds=0.2)
    with held(gate), pytest.raises(CapacityError), gate.slot():
        pass
    assert not gate.saturated()  # the place it held in the queue is free again


def test_an_error_inside_gives_the_slot_back() -> None:
    gate = WorkGate(running=1, waiting=0, wait_seconds=5)
    with pytest.raises(ValueError, match="boom"), gate.slot():
        raise ValueError("boom")
    with gate.slot():
        assert gate.saturated()


def test_refused_requests_get_appointments_spread_at_the_measured_rate() -> None:
    """Each refusal books the next place in a virtual queue served at the completion rate: a crowd is told
    to come back spread out, not all after the same second."""
    now = [100.0]
    gate = WorkGate(running=1, waiting=0, wait_seconds=5, max_retry_after=30, clock=lambda: now[0])
    for _ in range(10):  # 10 completions within a second: about 2 per second over the 5 s average
        with gate.slot():
            now[0] += 0.1
    waits = [gate.retry_after() for _ in range(20)]
    assert waits == sorted(waits)
    assert waits[0] == 1
    # 20 places served at the measured rate, between 1.5 and 2.5 per second: the last is 8 to 14 s away.
    assert 20 / 2.5 <= waits[-1] <= math.ceil(20 / 1.5)
    assert max(gate.retry_after() for _ in range(200)) == 30  # capped by the setting
    # Control: a gate that has completed nothing serves its queue at its floor, `running` (1) per second.
    idle = WorkGate(running=1, waiting=0, wait_seconds=5, max_retry_after=30, clock=lambda: now[0])
    assert [idle.retry_after() for _ in range(20)][-1] == 20


def test_control_after_the_crowd_has_gone_the_appointments_start_again_from_now() -> None:
    now = [100.0]
    gate = WorkGate(running=1, waiting=0, wait_seconds=5, max_retry_after=30, clock=lambda: now[0])
    assert [gate.retry_after() for _ in range(5)][-1] == 5  # no history: at least 1 per second
    now[0] += 60
    assert gate.retry_after() == 1
