"""A file whose own content credentials are damaged: signing it is refused as the input's fault (422
damaged-credentials), never a 500 that blames the operator's signing key. The damage is one flipped byte
inside the certificate of C.jpg's manifest: the engine then fails with the same `Signature` error type that
a bad signing key raises, so only Hallmark's probes can tell the two apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_data_dir
from tests.integration.test_cli import hallmark
from tests.integration.test_http_bad_input import assert_problem, ledger_count
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
# Found by flipping bytes through C.jpg's JUMBF: this one lands in the signer's certificate.
CERTIFICATE_BYTE = 30555


def damaged(interop_dir: Path) -> bytes:
    data = bytearray((interop_dir / "C.jpg").read_bytes())
    data[data.index(b"jumb") + CERTIFICATE_BYTE] ^= 0x5A
    return bytes(data)


def truncated_manifest(interop_dir: Path) -> bytes:
    """The manifest box cut short: its tail overwritten with zeros, the file's length unchanged."""
    data = bytearray((interop_dir / "C.jpg").read_bytes())
    start = data.index(b"jumb")
    data[start + 100 : start + 3000] = bytes(2900)
    return bytes(data)


def sign(client: TestClient, auth: dict[str, str], body: bytes) -> object:
    return client.post("/v1/sign", headers=auth, data=FORM, files={"file": ("x.jpg", body, "image/jpeg")})


@pytest.mark.parametrize("damage", [damaged, truncated_manifest], ids=["certificate-byte", "truncated-box"])
def test_damaged_parent_credentials_are_the_inputs_fault(
    client: TestClient, auth: dict[str, str], interop_dir: Path, damage: Callable[[Path], bytes]
) -> None:
    response = sign(client, auth, damage(interop_dir))
    problem = assert_problem(response, 422, "already in your file are damaged")
    assert problem["type"] == "/problems/damaged-credentials"
    assert "signing key" not in problem["detail"]
    assert "keys list" not in problem.get("hint", "")
    assert ledger_count(client) == 0


def test_control_the_intact_file_signs_with_its_credentials_as_parent(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    response = sign(client, auth, (interop_dir / "C.jpg").read_bytes())
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert ledger_count(client) == 1


def test_cli_names_the_input_not_the_key(tmp_path: Path, pki: Pki, interop_dir: Path) -> None:
    data_dir = make_data_dir(tmp_path / "var", pki)
    source = tmp_path / "damaged.jpg"
    source.write_bytes(damaged(interop_dir))
    result = hallmark(data_dir, "sign", str(source), "--model-name", "m", "--model-version", "1")
    assert result.returncode != 0
    assert "already in your file are damaged" in result.stdout + result.stderr, result.stderr
    assert "keys list" not in result.stdout + result.stderr
    assert not (tmp_path / "damaged.signed.jpg").exists()
    intact = tmp_path / "intact.jpg"
    intact.write_bytes((interop_dir / "C.jpg").read_bytes())
    control = hallmark(data_dir, "sign", str(intact), "--model-name", "m", "--model-version", "1")
    assert control.returncode == 0, control.stderr
    assert json.loads(control.stdout)["manifest_id"]
