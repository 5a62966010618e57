"""POST /v1/sign in the isolated worker pool (app/sign_service.py, app/isolation/sign_job.py), with real
worker processes, the real engine, ffmpeg/fpcalc, SoftHSM and a loopback TSA: the whole decode-and-sign
runs in a worker, the private key stays in the service, the ledger row is committed before the file
leaves, and a hostile file ends its worker (not the service) with the documented answer."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client import REGISTRY

from app.isolation import WorkerPool
from app.main import create_app
from app.settings import Settings
from tests.pki import TestPki
from tests.processes import children
from tests.softhsm import softhsm_token
from tests.storms import flat_png, moov_storm_mp4
from tests.tsa import LocalTsa
from tests.waiting import wait_for

MiB = 1024 * 1024
STORM_BOXES = 64_000  # nested in a moov: far past every limit below on this machine
FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
HALLMARK = str(Path(sys.executable).with_name("hallmark"))


def events(event: str) -> float:
    return REGISTRY.get_sample_value("hallmark_isolation_events_total", {"event": event}) or 0.0


def fork_server() -> int | None:
    from multiprocessing import forkserver

    pid: int | None = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return pid


def workers() -> set[int]:
    server = fork_server()
    return children(server) if server else set()


@pytest.fixture(autouse=True)
def _no_worker_left() -> Iterator[None]:
    yield
    assert wait_for(lambda: not workers()), f"decode workers left running: {workers()}"


def app_client(settings: Settings, **overrides: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=overrides)))


def token_for(client: TestClient) -> dict[str, str]:
    _, token = client.app.state.runtime.api_keys.create("tests", {"sign"})  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def sign(client: TestClient, auth: dict[str, str], name: str, data: bytes, **params: str) -> Any:
    return client.post("/v1/sign", headers=auth, data=FORM, params=params, files={"file": (name, data)})


def pool_of(client: TestClient) -> WorkerPool:
    pool: WorkerPool = client.app.state.pool  # type: ignore[attr-defined]
    return pool


def jobs_done(client: TestClient) -> int:
    """Jobs the pool's live workers have run (each is a real process)."""
    return sum(w.jobs for w in pool_of(client)._idle)


def ledger_rows(client: TestClient) -> list[Any]:
    rows: list[Any] = client.app.state.runtime.ledger.list()  # type: ignore[attr-defined]
    return rows


def verify(client: TestClient, data: bytes) -> Any:
    return client.post("/v1/verify", files={"file": ("x", data)}).json()


# --- what is signed, and where ------------------------------------------------------------------------------


def as_png(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("RGB").save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("name", ["a.jpg", "a.png"])
def test_images_are_signed_and_watermarked_in_a_worker(
    name: str, settings: Settings, client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = (interop_dir / "no_manifest.jpg").read_bytes()
    if name.endswith(".png"):
        data = as_png(data)
    before = jobs_done(client)
    response = sign(client, auth, name, data)
    assert response.status_code == 200, response.text
    assert jobs_done(client) == before + 1  # the sign was one job of a worker process
    assert response.headers["hallmark-watermark"].startswith("embedded; id=")
    assert "hallmark-iscc" not in response.headers  # images carry theirs in the manifest
    report = verify(client, response.content)
    assert report["outcome"] == "trusted"
    [row] = ledger_rows(client)
    assert row.manifest_id == response.headers["hallmark-manifest-id"]
    assert row.output_sha256 == response.headers["hallmark-output-sha256"]
    entry = client.app.state.runtime.manifests.get(row.manifest_id)  # type: ignore[attr-defined]
    assert entry is not None
    assert entry.watermark_id == response.headers["hallmark-watermark"].removeprefix("embedded; id=")
    # Stripped of its manifest, the watermark the worker embedded leads back to the committed entry.
    stripped = io.BytesIO()
    Image.open(io.BytesIO(response.content)).save(stripped, "PNG")
    recovered = verify(client, stripped.getvalue())
    assert recovered["recovery"]["status"] == "recovered"
    # Negative control: the in-process path (no pool) signs the same way, in this process.
    with app_client(settings, isolation_workers=0) as local:
        assert local.app.state.pool is None  # type: ignore[attr-defined]
        here = sign(local, token_for(local), name, data)
        assert here.status_code == 200, here.text
        assert here.headers["hallmark-watermark"].startswith("embedded; id=")
        assert verify(local, here.content)["outcome"] == "trusted"


@pytest.mark.parametrize("name", ["video1.mp4", "sample1.wav"])
def test_audio_and_video_get_their_iscc_from_ffmpeg_and_fpcalc_in_the_worker(
    name: str, settings: Settings, client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = (interop_dir / name).read_bytes()
    before = jobs_done(client)
    response = sign(client, auth, name, data)
    assert response.status_code == 200, response.text
    assert jobs_done(client) == before + 1
    code = response.headers["hallmark-iscc"]
    assert code.startswith("ISCC:"), code
    assert verify(client, response.content)["outcome"] == "trusted"
    entry = client.app.state.runtime.manifests.get(response.headers["hallmark-manifest-id"])  # type: ignore[attr-defined]
    assert entry is not None
    assert entry.iscc == code
    # The same code as the in-process path computes for the same file (a control that it is the file's).
    with app_client(settings, isolation_workers=0) as local:
        here = sign(local, token_for(local), name, data)
        assert here.status_code == 200, here.text
        assert here.headers["hallmark-iscc"] == code
    # Negative control: with soft binding off there is no code and no header.
    with app_client(settings, soft_binding=False) as plain:
        off = sign(plain, token_for(plain), name, data)
        assert off.status_code == 200, off.text
        assert "hallmark-iscc" not in off.headers


def test_sidecar_output_through_the_pool(client: TestClient, auth: dict[str, str], interop_dir: Path) -> None:
    data = (interop_dir / "no_manifest.jpg").read_bytes()
    response = sign(client, auth, "a.jpg", data, output="sidecar")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/c2pa"
    report = client.post(
        "/v1/verify", files={"file": ("a.jpg", data), "manifest": ("a.c2pa", response.content)}
    ).json()
    assert report["outcome"] == "trusted"
    # Negative control: the sidecar does not fit another file.
    other = (interop_dir / "libpng-test.png").read_bytes()
    mismatch = client.post(
        "/v1/verify", files={"file": ("b.png", other), "manifest": ("a.c2pa", response.content)}
    ).json()
    assert mismatch["outcome"] != "trusted"


def test_a_refused_file_is_refused_by_the_worker_with_the_same_answer(
    settings: Settings, client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    cut = (interop_dir / "no_manifest.jpg").read_bytes()[:4000]
    pooled = sign(client, auth, "a.jpg", cut)
    with app_client(settings, isolation_workers=0) as local:
        here = sign(local, token_for(local), "a.jpg", cut)
    assert pooled.status_code == here.status_code == 422, pooled.text
    assert pooled.json()["type"] == here.json()["type"]
    assert ledger_rows(client) == []


# --- the private key stays in the service -------------------------------------------------------------------


def memory_holds(pid: int, needles: list[bytes]) -> list[bool]:
    """Whether each needle occurs in the process's writable memory (heap, anonymous maps, stacks)."""
    found = [False] * len(needles)
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1] or (len(fields) > 5 and fields[5].startswith("/")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            for i, needle in enumerate(needles):
                found[i] = found[i] or needle in chunk
    return found


def test_the_private_key_never_enters_a_worker_or_the_fork_server(
    client: TestClient, auth: dict[str, str], pki: TestPki, interop_dir: Path
) -> None:
    response = sign(client, auth, "a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())
    assert response.status_code == 200, response.text
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    size = (key.curve.key_size + 7) // 8
    scalar = key.private_numbers().private_value.to_bytes(size, "big")
    pem_line = pki.key.read_bytes().splitlines()[1]  # the first base64 line of the key file
    cert_der = base64.b64decode(b"".join(pki.chain.read_bytes().split(b"-----")[2].split()))
    cert_line = pki.chain.read_bytes().splitlines()[1]
    [worker] = pool_of(client).pids
    server = fork_server()
    assert server is not None
    secret = [scalar, pem_line]
    public = [cert_line, cert_der[:64]]
    in_worker = memory_holds(worker, secret + public)
    assert in_worker[:2] == [False, False], "private key material in a sign worker"
    # Control that the scan sees what a worker holds: the public chain it signs with is there.
    assert in_worker[2] is True
    assert memory_holds(server, secret) == [False, False], "private key material in the fork server"


# --- PKCS#11 ------------------------------------------------------------------------------------------------


def test_a_token_key_signs_through_the_pool_and_the_worker_never_loads_the_module(
    tmp_path: Path, interop_dir: Path
) -> None:
    with softhsm_token(tmp_path / "hsm") as token:
        pin_file = tmp_path / "pin"
        pin_file.write_text(token.pin)
        pin_file.chmod(0o600)
        env = {
            **os.environ,
            "HALLMARK_DATA_DIR": str(tmp_path / "var"),
            "HALLMARK_PKCS11_MODULE": str(token.module),
            "HALLMARK_PKCS11_TOKEN_LABEL": token.label,
            "HALLMARK_PKCS11_PIN_FILE": str(pin_file),
            "SOFTHSM2_CONF": str(token.conf),
        }

        def run(*args: str) -> str:
            done = subprocess.run(
                [HALLMARK, *args], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        run("keys", "init", "--dev")
        key_id = run("keys", "generate", "--pkcs11", "--dev").strip().splitlines()[-1]
        run("keys", "activate", key_id, "--yes")
        [entry] = [k for k in json.loads(run("keys", "list", "--json")) if k["key_id"] == key_id]
        assert entry["storage"] == "pkcs11"
        settings = Settings(
            data_dir=tmp_path / "var",
            pkcs11_module=token.module,
            pkcs11_token_label=token.label,
            pkcs11_pin_file=pin_file,
        )
        with TestClient(create_app(settings)) as client:
            auth = token_for(client)
            response = sign(client, auth, "a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())
            assert response.status_code == 200, response.text
            assert response.headers["hallmark-signing-key-id"] == key_id
            assert response.headers["hallmark-watermark"].startswith("embedded; id=")
            report = verify(client, response.content)
            assert report["outcome"] == "trusted", report
            [row] = ledger_rows(client)
            assert row.key_id == key_id
            [worker] = pool_of(client).pids
            module = token.module.resolve().name  # libsofthsm2.so, whatever the link it was named by
            # The signature came from the token through this process: only it has the module loaded.
            assert module not in Path(f"/proc/{worker}/maps").read_text()
            assert module in Path("/proc/self/maps").read_text()  # control


# --- timestamps ---------------------------------------------------------------------------------------------


def test_timestamps_through_the_pool_keep_the_guard_and_the_header(
    tmp_path: Path, pki: TestPki, interop_dir: Path
) -> None:
    from tests.conftest import make_data_dir

    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    with LocalTsa() as tsa:
        data_dir = make_data_dir(tmp_path / "var", pki)
        (data_dir / "trust" / "test-tsa.pem").write_bytes(tsa.root_pem)
        settings = Settings(
            data_dir=data_dir, tsa_url=tsa.url, tsa_deadline_seconds=1.0, tsa_policy="best_effort"
        )
        with TestClient(create_app(settings)) as client:
            auth = token_for(client)
            before = jobs_done(client)
            response = sign(client, auth, "a.jpg", jpeg)
            assert response.status_code == 200, response.text
            assert jobs_done(client) == before + 1
            assert response.headers["hallmark-timestamped"] == "true"
            assert tsa.requests == 1
            assert verify(client, response.content)["timestamp"]["status"] == "trusted"
            # Negative control: the TSA stops answering; best effort signs without a timestamp, says so,
            # and the service's breaker (fed by the worker) counts the failure.
            tsa.mode = "blackhole"
            late = sign(client, auth, "a.jpg", jpeg)
            assert late.status_code == 200, late.text
            assert late.headers["hallmark-timestamped"] == "false"
            breaker = client.app.state.runtime.sign_ctx.timestamps.guard.breaker  # type: ignore[attr-defined]
            assert breaker.consecutive_failures == 1
            rows = ledger_rows(client)
            assert sorted(r.timestamped for r in rows) == [False, True]


# --- hostile input ------------------------------------------------------------------------------------------


def test_a_picture_past_the_worker_memory_limit_gets_422_and_no_ledger_row(
    settings: Settings, interop_dir: Path
) -> None:
    """A few KB of flat PNG that decodes to 69 MB and, for the watermark embed, several times that: past a
    700 MiB address space (most of which the worker's modules take), within the default 2 GiB."""
    memory = events("memory")
    hog = flat_png(4800)
    with app_client(settings, isolation_memory_bytes=700 * MiB) as client:
        auth = token_for(client)
        response = sign(client, auth, "hog.png", hog)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/too-complex-to-verify"
        assert response.json()["details"] == {"event": "memory"}
        assert events("memory") == memory + 1
        assert ledger_rows(client) == []
        after = sign(client, auth, "a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())
        assert after.status_code == 200, after.text
    # Negative control: the same picture within the default limit is signed.
    with app_client(settings) as client:
        response = sign(client, token_for(client), "hog.png", hog)
        assert response.status_code == 200, response.text


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("response", call()), daemon=True)
    thread.start()
    return thread, box


def test_a_sign_worker_killed_mid_request_gives_422_and_the_service_keeps_signing(
    settings: Settings, interop_dir: Path
) -> None:
    crashes = events("crash")
    overrides = {"prescan_max_boxes": 10**7, "isolation_cpu_seconds": 600, "verify_deadline_seconds": 600}
    with app_client(settings, **overrides) as client:
        auth = token_for(client)
        thread, box = in_background(lambda: sign(client, auth, "a.mp4", moov_storm_mp4(STORM_BOXES)))
        pool = pool_of(client)
        assert wait_for(lambda: bool(pool._busy)), "no worker took the sign"
        victim = next(iter(pool._busy))
        os.kill(victim, signal.SIGKILL)
        thread.join(60)
        response = box["response"]
        assert response.status_code == 422, response.text
        assert response.json()["details"] == {"event": "crash"}
        assert events("crash") == crashes + 1
        assert ledger_rows(client) == []
        after = sign(client, auth, "a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())
        assert after.status_code == 200, after.text
        assert victim not in pool.pids


def test_a_sign_past_the_deadline_gets_503(settings: Settings, interop_dir: Path) -> None:
    deadline = events("deadline")
    overrides = {"prescan_max_boxes": 10**7, "isolation_cpu_seconds": 600, "verify_deadline_seconds": 10.0}
    with app_client(settings, **overrides) as client:
        auth = token_for(client)
        response = sign(client, auth, "a.mp4", moov_storm_mp4(STORM_BOXES))
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "/problems/decode-deadline"
        assert re.fullmatch(r"\d+", response.headers["Retry-After"])
        assert events("deadline") == deadline + 1
        assert ledger_rows(client) == []
        after = sign(client, auth, "a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())
        assert after.status_code == 200, after.text
