"""End to end: `hallmark serve --dev` as a real process on a free port (what `make run` does), real HTTP.

Every wait is bounded and every process started here is killed in a `finally`, also when a test fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx2
import pytest

from tests.e2e.server import (
    API_KEY_LINE,
    HALLMARK,
    HTTP_TIMEOUT_S,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Server,
    hallmark_env,
    key_lines,
    serve,
)

pytestmark = pytest.mark.e2e


def sign(server: Server, image: Path, token: str | None, **form: str) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = {"model_name": "e2e-diffusion", "model_version": "3", **form}
    with image.open("rb") as fh:
        return httpx2.post(
            server.base_url + "/v1/sign",
            headers=headers,
            data=data,
            files={"file": ("generated.jpg", fh, "image/jpeg")},
            timeout=HTTP_TIMEOUT_S,
        )


def verify(server: Server, content: bytes) -> httpx2.Response:
    return httpx2.post(
        server.base_url + "/v1/verify",
        files={"file": ("upload.jpg", content, "application/octet-stream")},
        timeout=HTTP_TIMEOUT_S,
    )


def audit(data_dir: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [str(HALLMARK), "audit", "list", "--json"],
        capture_output=True,
        text=True,
        env=hallmark_env(data_dir),
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


@pytest.fixture
def image(interop_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "generated.jpg"
    shutil.copyfile(interop_dir / "no_manifest.jpg", target)
    return target


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


# --- tests ---------------------------------------------------------------------------------------------


def test_dev_server_signs_and_verifies(empty_data_dir: Path, image: Path, tmp_path: Path) -> None:
    with serve(empty_data_dir, tmp_path / "logs", "--dev") as server:
        token = server.wait_for_line(API_KEY_LINE)
        server.wait_until_ready()
        assert len(key_lines(server)) == 1

        signed = sign(server, image, token)
        assert signed.status_code == 200, signed.text
        manifest_id = signed.headers["Hallmark-Manifest-Id"]
        assert manifest_id.startswith("urn:c2pa:")
        assert signed.headers["content-type"] == "image/jpeg"
        assert signed.content[:2] == b"\xff\xd8"
        assert signed.content != image.read_bytes()

        verified = verify(server, signed.content)
        assert verified.status_code == 200, verified.text
        report = verified.json()
        assert report["outcome"] == "trusted", report
        assert report["manifest_id"] == manifest_id
        assert report["development_trust"] is True
        assert report["signer"]["trust_profile"] == "hallmark-dev"
        assert report["ai"]["model_name"] == "e2e-diffusion"

        unauthenticated = sign(server, image, None)
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"].startswith("application/problem+json")
        problem = unauthenticated.json()
        assert problem["status"] == 401
        assert problem["type"]
        assert problem["title"]
        assert unauthenticated.headers.get("WWW-Authenticate", "").startswith("Bearer")

        wrong = sign(server, image, token[:-4] + "AAAA")
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")

        unsigned = verify(server, image.read_bytes())
        assert unsigned.status_code == 200
        assert unsigned.json()["outcome"] == "none"


def test_restart_reuses_keys_database_and_api_key(empty_data_dir: Path, image: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with serve(empty_data_dir, logs, "--dev") as first:
        token = first.wait_for_line(API_KEY_LINE)
        first.wait_until_ready()
        one = sign(first, image, token)
        assert one.status_code == 200, one.text
    key_files = {
        p: p.read_bytes()
        for p in sorted(empty_data_dir.glob("keys/*.pem")) + sorted(empty_data_dir.glob("trust/*"))
    }
    assert len(key_files) >= 3

    with serve(empty_data_dir, logs, "--dev") as second:
        second.wait_until_ready()
        assert key_lines(second) == [], f"a restart printed a new API key\n{second.output()}"
        assert "exist" in "\n".join(second.lines)  # "API keys exist already; ..."
        two = sign(second, image, token)
        assert two.status_code == 200, two.text
        verified = verify(second, two.content).json()
        assert verified["outcome"] == "trusted"

    assert {p: p.read_bytes() for p in key_files} == key_files, "a restart replaced the keys or trust"
    ids = {one.headers["Hallmark-Manifest-Id"], two.headers["Hallmark-Manifest-Id"]}
    assert len(ids) == 2
    entries = audit(empty_data_dir)
    recorded = {str(e["manifest_id"]): e for e in entries}
    assert ids <= recorded.keys(), entries
    key_id = token.split("_")[1]
    assert {recorded[i]["api_key_id"] for i in ids} == {key_id}


def test_production_refuses_the_dev_data_dir(empty_data_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with serve(empty_data_dir, logs, "--dev") as dev:
        dev.wait_until_ready()

    for args in ((), ("--dev",)):
        with serve(empty_data_dir, logs, *args, HALLMARK_ENV="production") as prod:
            try:
                code = prod.proc.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"`serve {' '.join(args)}` in production did not refuse within {START_TIMEOUT_S}s"
                )
            prod._reader.join(STOP_TIMEOUT_S)
            output = prod.output()
            assert code != 0, output
            assert re.search(r"[Dd]evelopment (keys|trust|signing)", output), output
            assert "PRIVATE KEY" not in output
            assert key_lines(prod) == []
