"""Fixes from the security review, through the real `hallmark` console script: each failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.runtime import load_trust
from app.settings import Settings
from signing import ConfigError

if TYPE_CHECKING:  # for annotations only: pytest would try to collect a `TestPki` class
    from tests.pki import TestPki

HALLMARK = Path(sys.executable).parent / "hallmark"


def hallmark(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`hallmark ARGS` with only HALLMARK_DATA_DIR configured."""
    if not HALLMARK.is_file():
        pytest.fail(f"console script not found at {HALLMARK}: install the project (make install)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env.update(HALLMARK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1", TERM="dumb")
    return subprocess.run(
        [str(HALLMARK), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def key_states(data_dir: Path) -> dict[str, str]:
    rows = json.loads(ok(hallmark(data_dir, "keys", "list", "--json")).stdout)
    return {row["key_id"]: row["state"] for row in rows}


# --- keys init --dev --force must not wipe a keyring with history -----------------------------------------


def test_force_init_refuses_to_drop_a_rotated_keyring(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    ok(hallmark(data_dir, "keys", "init", "--dev"))
    key_id = ok(hallmark(data_dir, "keys", "generate", "--dev")).stdout.strip().splitlines()[-1]
    ok(hallmark(data_dir, "keys", "activate", key_id, "--yes"))
    keyring = (data_dir / "keys" / "keyring.json").read_bytes()
    legacy_key = (data_dir / "keys" / "signing-key.pem").read_bytes()

    forced = hallmark(data_dir, "keys", "init", "--dev", "--force")

    assert forced.returncode == 1, forced.stdout + forced.stderr
    assert "Traceback" not in forced.stderr
    assert "--force" in forced.stderr
    assert "keys generate --dev" in forced.stderr
    assert "keys activate" in forced.stderr
    assert key_states(data_dir) == {"default": "retired", key_id: "active"}
    assert (data_dir / "keys" / "keyring.json").read_bytes() == keyring
    assert (data_dir / "keys" / "signing-key.pem").read_bytes() == legacy_key  # refused before any write


def test_force_init_refuses_to_reuse_a_revoked_default_id(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    ok(hallmark(data_dir, "keys", "init", "--dev"))
    ok(hallmark(data_dir, "keys", "revoke", "default", "--reason", "key compromise", "--yes"))

    forced = hallmark(data_dir, "keys", "init", "--dev", "--force")

    assert forced.returncode == 1, forced.stdout + forced.stderr
    assert key_states(data_dir) == {"default": "revoked"}


def test_force_init_still_replaces_a_lone_legacy_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    ok(hallmark(data_dir, "keys", "init", "--dev"))
    before = (data_dir / "keys" / "signing-key.pem").read_bytes()
    ok(hallmark(data_dir, "keys", "init", "--dev", "--force"))
    assert (data_dir / "keys" / "signing-key.pem").read_bytes() != before
    assert key_states(data_dir) == {"default": "active"}


# --- trust remove: the name is checked before it becomes a path -------------------------------------------


@pytest.mark.parametrize("name", ["../keys/signing-chain", "../../outside", "/etc/passwd", "a/b"])
def test_trust_remove_refuses_a_path(tmp_path: Path, name: str) -> None:
    data_dir = tmp_path / "var"
    ok(hallmark(data_dir, "keys", "init", "--dev"))
    chain = data_dir / "keys" / "signing-chain.pem"
    before = chain.read_bytes()
    listing = sorted(p.name for p in (data_dir / "keys").iterdir())

    result = hallmark(data_dir, "trust", "remove", name)

    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "not a trust profile name" in result.stderr
    assert chain.read_bytes() == before
    assert sorted(p.name for p in (data_dir / "keys").iterdir()) == listing
    assert not list((data_dir / "trust").glob(".removed-*"))


# --- production needs signer anchors, not only TSA anchors ------------------------------------------------


def test_production_refuses_a_tsa_only_trust_dir(tmp_path: Path, pki: TestPki) -> None:
    data_dir = tmp_path / "var"
    added = ok(hallmark(data_dir, "trust", "add", "timestamps", str(pki.other_root), "--kind", "tsa"))
    assert "0 signer anchor(s), 1 TSA anchor(s)" in added.stdout
    production = Settings(env="production", data_dir=data_dir)

    with pytest.raises(ConfigError) as caught:
        load_trust(production)

    assert "signer anchors" in caught.value.message
    assert "timestamps" in caught.value.message


def test_production_accepts_signer_anchors_beside_tsa_ones(tmp_path: Path, pki: TestPki) -> None:
    data_dir = tmp_path / "var"
    ok(hallmark(data_dir, "trust", "add", "timestamps", str(pki.other_root), "--kind", "tsa"))
    ok(hallmark(data_dir, "trust", "add", "partners", str(pki.other_root)))
    trust = load_trust(Settings(env="production", data_dir=data_dir))
    assert sorted(p.name for p in trust) == ["partners", "timestamps"]
