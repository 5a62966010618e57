"""Settings owns its defaults: the verification slots per worker are the cores this process may use divided
by the service's workers (HALLMARK_WORKERS, which `hallmark serve --workers` passes to its workers)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from app.settings import Settings


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process may run on 4 CPUs (as a cpuset would say), whatever the machine running the test has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("HALLMARK_MAX_CONCURRENT_VERIFIES", raising=False)
    monkeypatch.delenv("HALLMARK_WORKERS", raising=False)


@pytest.mark.usefixtures("four_cores")
def test_one_worker_gets_every_core_it_may_use() -> None:
    cfg = Settings()
    assert cfg.workers == 1
    assert cfg.max_concurrent_verifies == 4


@pytest.mark.usefixtures("four_cores")
def test_two_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALLMARK_WORKERS", "2")
    assert Settings().max_concurrent_verifies == 2
    monkeypatch.setenv("HALLMARK_WORKERS", "1")  # control: the same cores, one worker
    assert Settings().max_concurrent_verifies == 4


def test_the_affinity_counts_not_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default follows what sched_getaffinity reports (a container limited to 2 of the machine's CPUs
    gets 2), read when the settings are built."""
    monkeypatch.delenv("HALLMARK_MAX_CONCURRENT_VERIFIES", raising=False)
    monkeypatch.setenv("HALLMARK_WORKERS", "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 7})
    assert Settings().max_concurrent_verifies == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    assert Settings().max_concurrent_verifies == 6


@pytest.mark.usefixtures("four_cores")
def test_more_workers_than_cores_still_verify_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALLMARK_WORKERS", "9")
    assert Settings().max_concurrent_verifies == 1
    monkeypatch.setenv("HALLMARK_WORKERS", "4")  # control: exactly one core each
    assert Settings().max_concurrent_verifies == 1
    monkeypatch.setenv("HALLMARK_WORKERS", "3")
    assert Settings().max_concurrent_verifies == 1  # 4 // 3
    monkeypatch.setenv("HALLMARK_WORKERS", "2")
    assert Settings().max_concurrent_verifies == 2


@pytest.mark.usefixtures("four_cores")
def test_an_operator_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALLMARK_WORKERS", "2")
    monkeypatch.setenv("HALLMARK_MAX_CONCURRENT_VERIFIES", "7")
    assert Settings().max_concurrent_verifies == 7
    assert Settings(max_concurrent_verifies=3).max_concurrent_verifies == 3  # and a value passed in code
    monkeypatch.delenv("HALLMARK_MAX_CONCURRENT_VERIFIES")  # control: unset, the default again
    assert Settings().max_concurrent_verifies == 2


@pytest.mark.usefixtures("four_cores")
def test_workers_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALLMARK_WORKERS", "0")
    with pytest.raises(ValidationError) as caught:
        Settings()
    first = caught.value.errors()[0]  # (pydantic adds that the default slots could not be computed)
    assert (first["loc"], first["type"]) == (("workers",), "greater_than_equal")
    monkeypatch.setenv("HALLMARK_WORKERS", "1")
    assert Settings().workers == 1
