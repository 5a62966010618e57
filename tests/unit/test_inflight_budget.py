"""The per-worker byte budget as requests charge it chunk by chunk (app/limits.py)."""

from __future__ import annotations

import pytest

from app.limits import BodyPace, InflightBudget
from signing import CapacityError


def test_a_request_alone_may_grow_past_the_capacity() -> None:
    budget = InflightBudget(100)
    with budget.charge() as alone:
        alone.add(80)
        alone.add(80)  # nobody else holds anything: it runs (the upload limit bounds it)
        assert budget.used == 160
    assert budget.used == 0


def test_a_chunk_that_would_overfill_the_budget_beside_another_request_is_refused() -> None:
    budget = InflightBudget(100)
    with budget.charge() as first, budget.charge() as second:
        first.add(60)
        second.add(40)  # control: exactly full is still admitted
        with pytest.raises(CapacityError):
            second.add(1)
        assert (budget.used, second.held) == (100, 40)  # the refused chunk is not charged
    assert budget.used == 0


def test_bytes_are_given_back_when_the_request_fails() -> None:
    budget = InflightBudget(100)

    def failing_request() -> None:
        with budget.charge() as charge:
            charge.add(70)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        failing_request()
    assert budget.used == 0


def test_the_pace_deadline_is_the_earlier_of_the_gap_and_the_average_rate() -> None:
    pace = BodyPace(min_rate=1000, grace=10.0, max_gap=30.0)
    # 5000 bytes after the start: on pace until 10 s of grace + 5 s; the gap would allow 30 s.
    assert pace.deadline(started=0.0, last_chunk=2.0, received=5000) == 15.0
    # 100 KB: the rate allows 110 s, the gap only 30 s after the last chunk.
    assert pace.deadline(started=0.0, last_chunk=2.0, received=100_000) == 32.0
    # No rate: the gap alone.
    assert BodyPace(min_rate=0, grace=10.0, max_gap=30.0).deadline(0.0, 2.0, 5000) == 32.0
