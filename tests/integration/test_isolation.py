"""Isolated decode workers (app/isolation) through HTTP, with real worker processes and the real engine:
the pre-scan refuses storms; past the pre-scan, the worker's CPU, memory and wall limits and a SIGKILL end
the worker (not the service) with the documented answer; reports are the same as in-process."""

from __future__ import annotations

import io
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.isolation import WorkerPool
from app.main import create_app
from app.settings import Settings
from tests.processes import children
from tests.storms import box_storm_mp4, chunk_storm_png, flat_png, moov_storm_mp4
from tests.waiting import wait_for

STORM_BOXES = 64_000  # ~16 s of engine time on one core here, far past every limit below
MiB = 1024 * 1024


def events(event: str) -> float:
    return REGISTRY.get_sample_value("hallmark_isolation_events_total", {"event": event}) or 0.0


def verify(client: TestClient, data: bytes, **params: str) -> Any:
    return client.post("/v1/verify", params=params, files={"file": ("upload", data)})


def pool_of(client: TestClient) -> WorkerPool:
    pool: WorkerPool = client.app.state.pool  # type: ignore[attr-defined]
    return pool


def workers() -> set[int]:
    """Processes forked by the multiprocessing fork server of this test process (the decode workers)."""
    from multiprocessing import forkserver

    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return children(server) if server else set()


@pytest.fixture(autouse=True)
def _no_worker_left() -> Iterator[None]:
    yield
    assert wait_for(lambda: not workers()), f"decode workers left running: {workers()}"


def app_client(settings: Settings, **overrides: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=overrides)))


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("response", call()), daemon=True)
    thread.start()
    return thread, box


def busy_pid(client: TestClient) -> int:
    pool = pool_of(client)
    assert wait_for(lambda: bool(pool._busy)), "no worker took the job"
    return next(iter(pool._busy))


# --- the pre-scan -----------------------------------------------------------------------------------------


def test_a_box_storm_mp4_is_refused_by_the_prescan(client: TestClient, interop_dir: Path) -> None:
    started = events("started")
    response = verify(client, box_storm_mp4(STORM_BOXES))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/asset-too-complex"
    assert "boxes" in problem["detail"]
    assert events("started") == started  # refused before any worker was needed
    # Negative control: a real MP4 goes through.
    assert verify(client, (interop_dir / "video1.mp4").read_bytes()).status_code == 200


def test_a_chunk_storm_png_is_refused_by_the_prescan(client: TestClient, interop_dir: Path) -> None:
    response = verify(client, chunk_storm_png(80_000))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/asset-too-complex"
    assert "PNG chunks" in response.json()["detail"]
    assert verify(client, chunk_storm_png(100)).status_code == 200
    assert verify(client, (interop_dir / "libpng-test.png").read_bytes()).status_code == 200


def test_sign_is_prescanned_too(client: TestClient, auth: dict[str, str]) -> None:
    form = {"model_name": "test-diffusion", "model_version": "2.1"}
    response = client.post(
        "/v1/sign", headers=auth, data=form, files={"file": ("a.png", chunk_storm_png(80_000))}
    )
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/asset-too-complex"
    control = client.post(
        "/v1/sign", headers=auth, data=form, files={"file": ("a.png", chunk_storm_png(100))}
    )
    assert control.status_code == 200, control.text


def test_sbr_by_content_is_prescanned_too(client: TestClient) -> None:
    response = client.post("/sbr/v1/matches/byContent", content=chunk_storm_png(80_000))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/asset-too-complex"


# --- past the pre-scan: the worker's limits -----------------------------------------------------------------


def test_a_storm_past_the_cpu_limit_gets_422_and_the_next_request_works(
    settings: Settings, interop_dir: Path
) -> None:
    cpu = events("cpu")
    with app_client(settings, prescan_max_boxes=10**7, isolation_cpu_seconds=1) as client:
        response = verify(client, box_storm_mp4(STORM_BOXES))
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"] == "/problems/too-complex-to-verify"
        assert problem["details"] == {"event": "cpu"}
        assert events("cpu") == cpu + 1
        assert verify(client, (interop_dir / "C.jpg").read_bytes()).status_code == 200


def test_sign_decodes_a_storm_in_a_worker_and_gets_422(settings: Settings, interop_dir: Path) -> None:
    """Sign runs in a worker: the engine's read of the input's credentials passes the worker's CPU limit."""
    cpu = events("cpu")
    with app_client(settings, prescan_max_boxes=10**7, isolation_cpu_seconds=1) as client:
        _, token = client.app.state.runtime.api_keys.create("tests", {"sign"})  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {token}"}
        form = {"model_name": "test-diffusion", "model_version": "2.1"}
        storm = {"file": ("a.mp4", moov_storm_mp4(STORM_BOXES))}
        response = client.post("/v1/sign", headers=auth, data=form, files=storm)
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "/problems/too-complex-to-verify"
        assert response.json()["details"] == {"event": "cpu"}
        assert events("cpu") == cpu + 1
        normal = {"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())}
        assert client.post("/v1/sign", headers=auth, data=form, files=normal).status_code == 200


def test_a_storm_past_the_deadline_gets_503_while_a_concurrent_verify_succeeds(
    settings: Settings, interop_dir: Path
) -> None:
    deadline = events("deadline")
    overrides = {"prescan_max_boxes": 10**7, "isolation_cpu_seconds": 600, "verify_deadline_seconds": 3.0}
    with app_client(settings, **overrides) as client:
        thread, box = in_background(lambda: verify(client, box_storm_mp4(STORM_BOXES)))
        storm_worker = busy_pid(client)
        normal = verify(client, (interop_dir / "C.jpg").read_bytes())
        assert normal.status_code == 200, normal.text
        assert normal.json()["outcome"] == "valid_untrusted"
        thread.join(60)
        response = box["response"]
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "/problems/decode-deadline"
        assert int(response.headers["Retry-After"]) > 0
        assert events("deadline") == deadline + 1
        assert not Path(f"/proc/{storm_worker}").exists()  # killed and reaped
        assert verify(client, (interop_dir / "C.jpg").read_bytes()).status_code == 200


def test_a_worker_killed_mid_request_gives_422_and_is_replaced(settings: Settings, interop_dir: Path) -> None:
    crashes = events("crash")
    overrides = {"prescan_max_boxes": 10**7, "isolation_cpu_seconds": 600, "verify_deadline_seconds": 600}
    with app_client(settings, **overrides) as client:
        thread, box = in_background(lambda: verify(client, box_storm_mp4(STORM_BOXES)))
        victim = busy_pid(client)
        os.kill(victim, signal.SIGKILL)
        thread.join(60)
        response = box["response"]
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "/problems/too-complex-to-verify"
        assert response.json()["details"] == {"event": "crash"}
        assert events("crash") == crashes + 1
        after = verify(client, (interop_dir / "C.jpg").read_bytes())
        assert after.status_code == 200, after.text
        assert victim not in pool_of(client).pids


def test_a_picture_past_the_memory_limit_gets_422(settings: Settings, interop_dir: Path) -> None:
    """A few KB of flat PNG that decodes to 69 MB and, for the watermark search, several times that: past
    a 700 MiB address space (most of which the worker's modules take), within the default 2 GiB."""
    memory = events("memory")
    hog = flat_png(4800)
    with app_client(settings, isolation_memory_bytes=700 * MiB) as client:
        response = verify(client, hog)
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "/problems/too-complex-to-verify"
        assert response.json()["details"] == {"event": "memory"}
        assert events("memory") == memory + 1
        assert verify(client, (interop_dir / "C.jpg").read_bytes()).status_code == 200
    # Negative control: the same picture within the default limit is verified (and searched).
    with app_client(settings) as client:
        response = verify(client, hog)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "none"


# --- the same answers as in-process -------------------------------------------------------------------------


def signed_then_stripped(client: TestClient, auth: dict[str, str], interop_dir: Path) -> tuple[bytes, bytes]:
    import io

    from PIL import Image

    signed = client.post(
        "/v1/sign",
        headers=auth,
        data={"model_name": "test-diffusion", "model_version": "2.1"},
        files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
    )
    assert signed.status_code == 200, signed.text
    out = io.BytesIO()
    Image.open(io.BytesIO(signed.content)).save(out, "JPEG", quality=90)  # metadata gone, watermark kept
    return signed.content, out.getvalue()


def test_reports_through_the_pool_equal_the_in_process_ones(
    settings: Settings, auth: dict[str, str], client: TestClient, interop_dir: Path
) -> None:
    signed, stripped = signed_then_stripped(client, auth, interop_dir)
    files = {
        "signed": signed,
        "stripped (recovered by watermark)": stripped,
        "interop C.jpg": (interop_dir / "C.jpg").read_bytes(),
        "interop CACA.jpg": (interop_dir / "CACA.jpg").read_bytes(),
        "unsigned wav": (interop_dir / "sample1.wav").read_bytes(),
        "no manifest": (interop_dir / "no_manifest.jpg").read_bytes(),
    }
    assert pool_of(client) is not None
    with app_client(settings, isolation_workers=0) as in_process:
        assert in_process.app.state.pool is None  # type: ignore[attr-defined]
        for name, data in files.items():
            for detail in ("summary", "full"):
                pooled = verify(client, data, detail=detail)
                local = verify(in_process, data, detail=detail)
                assert pooled.status_code == local.status_code == 200, (name, pooled.text)
                assert pooled.json() == local.json(), name
    recovered = verify(client, stripped).json()
    assert recovered["recovery"]["status"] == "recovered"  # the comparison covered a real recovery


def test_reports_equal_the_in_process_ones_when_the_worker_reads_its_copy_from_the_file(
    settings: Settings, auth: dict[str, str], client: TestClient, interop_dir: Path
) -> None:
    """A worker reads a copy of at most the spool limit into memory (app/isolation/jobs.py); past it, from the
    file. With the limit at 0 every file takes the second way: the reports are the in-process ones still,
    recovery (a verify job, then confirmation jobs on the same copy) included."""
    from app.isolation.jobs import _opened

    signed, stripped = signed_then_stripped(client, auth, interop_dir)
    files = {
        "signed": signed,
        "stripped (recovered by watermark)": stripped,
        "unsigned wav": (interop_dir / "sample1.wav").read_bytes(),
    }
    with (
        app_client(settings, spool_memory_bytes=0) as from_file,
        app_client(settings, isolation_workers=0) as in_process,
    ):
        assert pool_of(from_file) is not None
        for name, data in files.items():
            pooled = verify(from_file, data)
            local = verify(in_process, data)
            assert pooled.status_code == local.status_code == 200, (name, pooled.text)
            assert pooled.json() == local.json(), name
        recovered = verify(from_file, stripped).json()
        assert recovered["recovery"]["status"] == "recovered"
        assert verify(from_file, signed).json()["recovery"] is None  # control: an intact file, no search
    copy = Path(settings.data_dir) / "copy.jpg"
    copy.write_bytes(signed)
    with _opened(str(copy), 0) as (on_disk, on_disk_id), _opened(str(copy), len(signed)) as (held, held_id):
        assert isinstance(on_disk, io.BufferedReader)  # past the limit: the file itself
        assert isinstance(held, io.BytesIO)  # within it: in memory
        assert on_disk.read() == held.read() == signed
        assert on_disk_id == held_id


def test_sbr_by_content_matches_equal_the_in_process_ones(
    settings: Settings, auth: dict[str, str], client: TestClient, interop_dir: Path
) -> None:
    _signed, stripped = signed_then_stripped(client, auth, interop_dir)
    pooled = client.post("/sbr/v1/matches/byContent", content=stripped)
    with app_client(settings, isolation_workers=0) as in_process:
        local = in_process.post("/sbr/v1/matches/byContent", content=stripped)
    assert pooled.status_code == local.status_code == 200
    assert pooled.json() == local.json()
    assert len(pooled.json()["matches"]) == 1
    # An undecodable image is the query's fault (400), raised in the worker and carried back.
    cut = (interop_dir / "libpng-test.png").read_bytes()[:200]
    refused = client.post("/sbr/v1/matches/byContent", content=cut)
    assert refused.status_code == 400, refused.text
    assert refused.json()["type"] == "/problems/invalid-query"


def test_a_worker_is_replaced_after_its_max_jobs(settings: Settings) -> None:
    from app.isolation.jobs import PingJob
    from app.isolation.service import worker_config

    with app_client(settings, isolation_workers=1, isolation_max_jobs=2) as client:
        pool = pool_of(client)
        config = worker_config(client.app.state.runtime)  # type: ignore[attr-defined]
        started = events("started")
        pool.run(PingJob(), config)
        first = pool.pids
        pool.run(PingJob(), config)  # its second job: retired afterwards
        assert pool.pids == []
        pool.run(PingJob(), config)
        assert len(first) == 1
        assert len(pool.pids) == 1
        assert pool.pids != first
        assert events("started") == started + 2
