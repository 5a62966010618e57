"""`hallmark serve --workers 2` and uvicorn's supervisor: it pings each worker and kills one that does not
answer within HALLMARK_WORKER_HEALTHCHECK_SECONDS. uvicorn's own 5 s killed workers that were still importing
or busy on a loaded 2-core machine (bench/verify_load.py counted the replacements); a worker that is only
slow must survive, one that never answers must still be replaced. A worker stopped with SIGSTOP plays the
slow one: it cannot answer until SIGCONT."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx2
import pytest

from tests.e2e.server import START_TIMEOUT_S, Server, free_port, serve
from tests.processes import children

pytestmark = pytest.mark.e2e

STOPPED_S = 6.0  # longer than uvicorn's own 5 s, well within the 30 s default


def workers(server: Server) -> set[int]:
    """The uvicorn worker processes (spawned by multiprocessing; the resource tracker is not one)."""
    found = set()
    for pid in children(server.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.add(pid)
    return found


def started(server: Server, count: int) -> set[int]:
    """Waits until `count` workers have finished their start-up; returns their pids."""
    deadline = time.monotonic() + START_TIMEOUT_S * 2
    while time.monotonic() < deadline:
        if server.stderr_path.read_text().count("Application startup complete.") >= count:
            pids = workers(server)
            if len(pids) == 2:
                return pids
        time.sleep(0.2)
    pytest.fail(f"workers not started\n{server.output()}")


def stop_one_worker_for_a_while(root: Path, healthcheck_seconds: str) -> tuple[int, set[int], str]:
    setting = {"HALLMARK_WORKER_HEALTHCHECK_SECONDS": healthcheck_seconds}
    with serve(root / "var", root / "logs", "--dev", "--workers", "2", **setting) as server:
        server.wait_until_ready()
        before = started(server, 2)
        victim = min(before)
        os.kill(victim, signal.SIGSTOP)
        try:
            time.sleep(STOPPED_S)
        finally:
            os.kill(victim, signal.SIGCONT)
        time.sleep(2.0)  # the supervisor checks twice a second
        assert httpx2.get(server.base_url + "/healthz", timeout=10).status_code == 200
        return victim, workers(server), server.stderr_path.read_text()


def test_a_worker_slower_than_uvicorns_five_seconds_is_kept(tmp_path: Path) -> None:
    victim, after, log = stop_one_worker_for_a_while(tmp_path, "30")
    assert victim in after, log
    assert f"Child process [{victim}] died" not in log


def test_serve_hands_the_setting_to_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `serve` passes to uvicorn.run: the setting when given, 30 s by default, never uvicorn's own 5 s
    (a stop past the setting cannot serve as the negative control: on a loaded machine a short health check
    kills the workers while they still import, and no worker ever listens)."""
    import uvicorn
    from typer.testing import CliRunner

    from app.cli import app

    passed: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: passed.append(kw["timeout_worker_healthcheck"]))
    monkeypatch.setenv("HALLMARK_DATA_DIR", str(tmp_path / "var"))
    for value in ("17", None):
        if value is None:
            monkeypatch.delenv("HALLMARK_WORKER_HEALTHCHECK_SECONDS", raising=False)
        else:
            monkeypatch.setenv("HALLMARK_WORKER_HEALTHCHECK_SECONDS", value)
        result = CliRunner().invoke(app, ["serve", "--port", str(free_port())])
        assert result.exit_code == 0, result.output
    assert passed == [17, 30]
    assert passed[1] != uvicorn.Config("x:y").timeout_worker_healthcheck  # uvicorn's own would be 5
