"""End to end: a real `hallmark serve --workers 2` whose TMPDIR holds what killed processes left removes it
when it starts (serve itself, then each worker as it starts), keeps what is young or whose owner runs, and
never removes its own metrics directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.temp_sweep import sweep
from tests.e2e.server import serve
from tests.e2e.test_workers import log_lines, metric, worker_pids
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

AGE = 600
OLD = 3 * AGE


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)
    return child.pid


def aged(path: Path, seconds: float = OLD) -> Path:
    when = time.time() - seconds
    os.utime(path, (when, when))
    return path


def left_file(folder: Path, name: str, seconds: float = OLD) -> Path:
    path = folder / name
    path.write_bytes(b"an upload's bytes")
    return aged(path, seconds)


def test_serve_removes_what_dead_processes_left(tmp_path: Path) -> None:
    tmp = tmp_path / "t"
    tmp.mkdir()
    dead = dead_pid()
    metrics_left = tmp / f"hallmark-metrics-{dead}-a1b2c3d4"  # a killed serve's
    metrics_left.mkdir()
    (metrics_left / "counter_123.db").write_bytes(b"\0" * 64)
    aged(metrics_left)
    upload_left = left_file(tmp, f"hallmark-upload-{dead}-e5f6g7h8")
    young = left_file(tmp, f"hallmark-signed-{dead}-young123", seconds=5)
    live_owner = left_file(tmp, f"hallmark-upload-{os.getpid()}-live1234")  # this test runs: kept
    env = {"TMPDIR": str(tmp), "HALLMARK_TEMP_SWEEP_AGE_SECONDS": str(AGE), "HALLMARK_LOG_FORMAT": "json"}
    with serve(tmp_path / "var", tmp_path / "logs", "--dev", "--workers", "2", **env) as server:
        server.wait_until_ready()
        workers = worker_pids(server, 2)
        assert not metrics_left.exists()
        assert not upload_left.exists()
        assert young.exists()
        assert live_owner.exists()
        assert "Removed 2 temporary file(s) or directory(ies)" in server.output()

        # serve's own metrics directory, in the same TMPDIR, named with serve's PID: however old it looks,
        # its owner runs, so a sweep keeps it (the workers' sweeps at start kept it too).
        [own] = [p for p in tmp.iterdir() if p.name.startswith(f"hallmark-metrics-{server.proc.pid}-")]
        aged(own)
        assert sweep(AGE, directory=str(tmp)) == (0, 0)
        assert own.is_dir()
        assert metric(server, "hallmark_workers") == 2

        # A worker started later sweeps too: a file left meanwhile by a dead process is gone once
        # uvicorn has replaced a killed worker.
        later = left_file(tmp, f"hallmark-av-{dead_pid()}-later123")
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        [replacement] = worker_pids(server, 3) - workers
        assert wait_for(lambda: not later.exists())
        swept_by = [
            line["pid"] for line in log_lines(server) if line["message"].startswith("removed 1 temporary")
        ]
        assert swept_by == [replacement]
        assert young.exists()
        assert live_owner.exists()
    assert not own.exists()  # removed when serve ends
