"""Everything Hallmark creates in its data directory is owner-only (folders 0700, files 0600: keys, keyring,
trust bundles, the database and its -wal/-shm, the development PKI), whatever the umask. Each test runs under
umask 000, where any mode left to the umask would show up world-writable. A data directory made before with
wider modes is reported at start-up and left as it is (group access may be deliberate)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.bootstrap import init_dev
from app.files import loose_paths
from app.main import create_app
from app.settings import Settings
from signing.tiny_png import tiny_png
from tests.integration.test_cli import hallmark, ok
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of every folder and file under `root`, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_owner_only(root: Path, *expected: str) -> None:
    seen = modes(root)
    assert set(expected) <= set(seen), sorted(seen)
    wrong = {
        name: oct(mode) for name, mode in seen.items() if mode != (0o700 if (root / name).is_dir() else 0o600)
    }
    assert wrong == {}, wrong
    assert loose_paths(root) == []


def test_keys_init_dev_writes_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "var"  # the parent is missing too
    ok(hallmark(data, "keys", "init", "--dev"))
    assert_owner_only(data, "keys", "keys/keyring.json", "trust", "trust/hallmark-dev.pem")
    # The control: the very same helper sees a file that is not owner-only.
    (data / "keys" / "keyring.json").chmod(0o644)
    assert loose_paths(data) == [data / "keys" / "keyring.json"]


def test_first_start_and_signing_write_owner_only(tmp_path: Path, pki: Pki) -> None:
    settings = Settings(data_dir=tmp_path / "var", default_provider="Example AI")
    created = init_dev(settings)  # what `make run` (serve --dev) does before serving
    assert created.api_key
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {created.api_key}"}
        response = client.post(
            "/v1/sign",
            headers=headers,
            data={"model_name": "m", "model_version": "1"},
            files={"file": ("x.png", tiny_png(), "image/png")},
        )
        assert response.status_code == 200, response.text
        assert_owner_only(
            settings.data_dir, "hallmark.db", "hallmark.db-wal", "hallmark.db-shm", "keys/dev-ca/root-ca.pem"
        )


def test_trust_add_and_keyring_changes_write_owner_only(tmp_path: Path, pki: Pki) -> None:
    data = tmp_path / "var"
    ok(hallmark(data, "keys", "init", "--dev"))
    ok(hallmark(data, "trust", "add", "test-root", str(pki.root)))
    new_id = ok(hallmark(data, "keys", "generate", "--dev")).stdout.strip().splitlines()[-1]
    ok(hallmark(data, "keys", "activate", new_id, "--yes"))
    assert_owner_only(data, "trust/test-root", "keys/keyring.json", f"keys/{new_id}")


def test_a_loose_existing_data_dir_is_reported_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "var", default_provider="Example AI")
    init_dev(settings)
    with caplog.at_level(logging.WARNING, logger="hallmark"), TestClient(create_app(settings)):
        pass
    assert "open to group or others" not in caplog.text  # the control: a directory Hallmark made
    caplog.clear()
    settings.data_dir.chmod(0o755)
    keyring = settings.data_dir / "keys" / "keyring.json"
    keyring.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="hallmark"), TestClient(create_app(settings)):
        pass
    assert "2 path(s) in the data directory are open to group or others" in caplog.text
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o644  # reported, not changed
