"""The operator CLI, run as the real `hallmark` console script in a subprocess against a temporary data dir.

Exit codes (app/cli/exitcodes.py): 0 ok, 1 a Hallmark error with its diagnostics, 2 usage; `verify` also
answers 3 valid but untrusted, 4 invalid, 5 no credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import make_data_dir

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect a `TestPki` class
    from tests.pki import TestPki

HALLMARK = Path(sys.executable).parent / "hallmark"
TIMEOUT_S = 60
API_KEY_LINE = re.compile(r"^hm_[0-9a-f]{16}_\S+$")
PRIVATE_KEY = "PRIVATE KEY"


def hallmark(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `hallmark ARGS` with only HALLMARK_DATA_DIR (and `env`) configured; never hangs."""
    if not HALLMARK.is_file():
        pytest.fail(f"console script not found at {HALLMARK}: install the project (make install)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    clean.update(HALLMARK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1", TERM="dumb", **env)
    return subprocess.run(
        [str(HALLMARK), *args], capture_output=True, text=True, env=clean, timeout=TIMEOUT_S, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def data_dir(tmp_path: Path, pki: TestPki) -> Path:
    return make_data_dir(tmp_path / "var", pki)


@pytest.fixture(scope="module")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Path:
    """One data dir for the read-only checks of a signed file."""
    return make_data_dir(tmp_path_factory.mktemp("cli") / "var", pki)


@pytest.fixture(scope="module")
def unsigned_jpeg(tmp_path_factory: pytest.TempPathFactory, interop_dir: Path) -> Path:
    """A private copy: signing without -o writes next to the input, never into the shared corpus."""
    target = tmp_path_factory.mktemp("media") / "generated.jpg"
    shutil.copyfile(interop_dir / "no_manifest.jpg", target)
    return target


@pytest.fixture(scope="module")
def signed_jpeg(shared_data_dir: Path, unsigned_jpeg: Path) -> tuple[Path, dict[str, str]]:
    out = unsigned_jpeg.with_name("signed-once.jpg")
    result = ok(
        hallmark(
            shared_data_dir,
            "sign",
            str(unsigned_jpeg),
            "--model-name",
            "m",
            "--model-version",
            "1",
            "-o",
            str(out),
        )
    )
    return out, json.loads(result.stdout)


# --- help ----------------------------------------------------------------------------------------------


def test_help_lists_every_command(empty_dir: Path) -> None:
    result = ok(hallmark(empty_dir, "--help"))
    for command in ("serve", "sign", "verify", "keys", "apikey", "audit"):
        assert re.search(rf"^\W*{command}\b", result.stdout, re.MULTILINE), (
            f"{command} missing:\n{result.stdout}"
        )


# --- keys ----------------------------------------------------------------------------------------------


def test_keys_init_dev_creates_the_development_pki(empty_dir: Path) -> None:
    result = ok(hallmark(empty_dir, "keys", "init", "--dev"))

    chain = empty_dir / "keys" / "signing-chain.pem"
    key = empty_dir / "keys" / "signing-key.pem"
    trust = empty_dir / "trust" / "hallmark-dev.pem"
    for path in (chain, key, trust):
        assert path.is_file(), f"{path} not created"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(x509.load_pem_x509_certificates(chain.read_bytes())) >= 2  # leaf first, then its issuer(s)
    assert len(x509.load_pem_x509_certificates(trust.read_bytes())) == 1
    assert PRIVATE_KEY not in chain.read_text() + trust.read_text()
    assert PRIVATE_KEY not in result.stdout + result.stderr


def test_keys_init_dev_keeps_existing_keys_unless_forced(empty_dir: Path) -> None:
    files = [
        empty_dir / "keys" / "signing-chain.pem",
        empty_dir / "keys" / "signing-key.pem",
        empty_dir / "trust" / "hallmark-dev.pem",
    ]
    ok(hallmark(empty_dir, "keys", "init", "--dev"))
    first = [p.read_bytes() for p in files]

    again = ok(hallmark(empty_dir, "keys", "init", "--dev"))
    assert [p.read_bytes() for p in files] == first, "a second `keys init --dev` replaced the keys"
    assert "--force" in again.stdout + again.stderr

    ok(hallmark(empty_dir, "keys", "init", "--dev", "--force"))
    forced = [p.read_bytes() for p in files]
    assert all(new != old for new, old in zip(forced, first, strict=True)), "--force did not replace the PKI"
    assert stat.S_IMODE(files[1].stat().st_mode) == 0o600


def test_keys_init_without_dev_is_a_usage_error(empty_dir: Path) -> None:
    result = hallmark(empty_dir, "keys", "init")
    assert result.returncode == 2
    assert not (empty_dir / "keys" / "signing-key.pem").exists()


def test_keys_list_shows_the_certificate_never_the_key(data_dir: Path) -> None:
    text = ok(hallmark(data_dir, "keys", "list"))
    for field in ("key_id", "subject", "not_after", "certificate_sha256"):
        assert field in text.stdout, f"{field} missing:\n{text.stdout}"

    [row] = json.loads(ok(hallmark(data_dir, "keys", "list", "--json")).stdout)
    assert row["state"] == "active"
    leaf = x509.load_pem_x509_certificates((data_dir / "keys" / "signing-chain.pem").read_bytes())[0]
    assert row["key_id"] == "default"
    assert row["subject"] == leaf.subject.rfc4514_string()
    assert row["not_after"] == leaf.not_valid_after_utc.isoformat()
    assert row["certificate_sha256"] == hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    assert row["certificate_sha256"] in text.stdout
    for result in (text, hallmark(data_dir, "keys", "list", "--json")):
        assert PRIVATE_KEY not in result.stdout + result.stderr


def test_keys_list_without_keys_fails_with_a_hint(empty_dir: Path) -> None:
    result = hallmark(empty_dir, "keys", "list")
    assert result.returncode == 1
    assert "keys init --dev" in result.stderr
    no_traceback(result)


# --- API keys ------------------------------------------------------------------------------------------


def test_apikey_create_list_revoke(data_dir: Path) -> None:
    created = ok(hallmark(data_dir, "apikey", "create", "--name", "ci", "--scope", "sign"))
    token = created.stdout.strip().splitlines()[-1]
    assert API_KEY_LINE.match(token), f"the key is not alone on the last stdout line:\n{created.stdout}"
    key_id = token.split("_")[1]
    secret = token.split("_", 2)[2]

    listed = ok(hallmark(data_dir, "apikey", "list"))
    line = next((ln for ln in listed.stdout.splitlines() if key_id in ln), None)
    assert line is not None, listed.stdout
    assert "ci" in line
    assert "sign" in line
    assert "active" in line
    as_json = ok(hallmark(data_dir, "apikey", "list", "--json"))
    for result in (listed, as_json):
        assert secret not in result.stdout + result.stderr
        assert token not in result.stdout + result.stderr
    [row] = json.loads(as_json.stdout)
    assert row["id"] == key_id
    assert row["scopes"] == ["sign"]
    assert row["revoked_at"] is None

    ok(hallmark(data_dir, "apikey", "revoke", key_id))
    listed = ok(hallmark(data_dir, "apikey", "list"))
    line = next(ln for ln in listed.stdout.splitlines() if key_id in ln)
    assert "revoked" in line
    [row] = json.loads(ok(hallmark(data_dir, "apikey", "list", "--json")).stdout)
    assert row["revoked_at"] is not None

    again = hallmark(data_dir, "apikey", "revoke", key_id)
    assert again.returncode == 1, "revoking a revoked key should say there is no active key"


def test_apikey_unknown_scope_is_a_usage_error(data_dir: Path) -> None:
    result = hallmark(data_dir, "apikey", "create", "--name", "ci", "--scope", "superuser")
    assert result.returncode == 2
    assert not re.search(r"^hm_", result.stdout, re.MULTILINE)
    assert json.loads(ok(hallmark(data_dir, "apikey", "list", "--json")).stdout) == []


# --- sign ----------------------------------------------------------------------------------------------


def test_sign_writes_output_and_records_it_in_the_ledger(data_dir: Path, unsigned_jpeg: Path) -> None:
    out = data_dir.parent / "out.jpg"
    result = ok(
        hallmark(
            data_dir, "sign", str(unsigned_jpeg), "--model-name", "m", "--model-version", "1", "-o", str(out)
        )
    )
    printed = json.loads(result.stdout)
    assert out.is_file()
    assert printed["output"] == str(out)
    assert printed["manifest_id"].startswith("urn:c2pa:")
    assert printed["media_type"] == "image/jpeg"
    assert printed["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert not out.with_name(out.name + ".partial").exists()

    ledger = json.loads(ok(hallmark(data_dir, "audit", "list", "--json")).stdout)
    entry = next((e for e in ledger if e["manifest_id"] == printed["manifest_id"]), None)
    assert entry is not None, ledger
    assert entry["model_name"] == "m"
    assert entry["model_version"] == "1"
    assert entry["output_sha256"] == printed["output_sha256"]
    assert entry["api_key_id"] is None  # signed offline

    text = ok(hallmark(data_dir, "audit", "list"))
    assert printed["manifest_id"] in text.stdout


def test_sign_default_output_name(data_dir: Path, unsigned_jpeg: Path, tmp_path: Path) -> None:
    src = tmp_path / "picture.jpg"
    shutil.copyfile(unsigned_jpeg, src)
    printed = json.loads(
        ok(hallmark(data_dir, "sign", str(src), "--model-name", "m", "--model-version", "1")).stdout
    )
    assert printed["output"] == str(tmp_path / "picture.signed.jpg")
    assert (tmp_path / "picture.signed.jpg").is_file()


def test_sign_sidecar_writes_a_manifest_store_and_leaves_the_file(
    data_dir: Path, unsigned_jpeg: Path, tmp_path: Path
) -> None:
    src = tmp_path / "picture.jpg"
    shutil.copyfile(unsigned_jpeg, src)
    before = src.read_bytes()
    printed = json.loads(
        ok(
            hallmark(data_dir, "sign", str(src), "--model-name", "m", "--model-version", "1", "--sidecar")
        ).stdout
    )
    sidecar = tmp_path / "picture.signed.c2pa"
    assert printed["output"] == str(sidecar)
    assert sidecar.is_file()
    assert sidecar.stat().st_size > 0
    assert src.read_bytes() == before

    result = hallmark(data_dir, "verify", "--manifest", str(sidecar), str(src))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trusted" in result.stdout
    report = json.loads(
        ok(hallmark(data_dir, "verify", "--json", "--manifest", str(sidecar), str(src))).stdout
    )
    assert report["outcome"] == "trusted"
    assert report["manifest_id"] == printed["manifest_id"]


def test_failed_sign_leaves_no_partial_output(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("not media\n")
    out = tmp_path / "out.txt"
    result = hallmark(data_dir, "sign", str(src), "--model-name", "m", "--model-version", "1", "-o", str(out))
    assert result.returncode == 1
    no_traceback(result)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["notes.txt"]


def test_sign_with_missing_option_is_a_usage_error(data_dir: Path, unsigned_jpeg: Path) -> None:
    result = hallmark(data_dir, "sign", str(unsigned_jpeg), "--model-name", "m")
    assert result.returncode == 2
    assert "--model-version" in result.stderr


# --- verify --------------------------------------------------------------------------------------------


def test_verify_signed_file_is_trusted(
    shared_data_dir: Path, signed_jpeg: tuple[Path, dict[str, str]]
) -> None:
    out, printed = signed_jpeg
    result = ok(hallmark(shared_data_dir, "verify", str(out)))
    assert re.search(r"^outcome:\s+trusted$", result.stdout, re.MULTILINE), result.stdout
    assert printed["manifest_id"] in result.stdout


def test_verify_json_reports_trusted(shared_data_dir: Path, signed_jpeg: tuple[Path, dict[str, str]]) -> None:
    out, printed = signed_jpeg
    report = json.loads(ok(hallmark(shared_data_dir, "verify", "--json", str(out))).stdout)
    assert report["outcome"] == "trusted"
    assert report["integrity"] == "intact"
    assert report["manifest_id"] == printed["manifest_id"]
    assert report["signer"]["trusted"] is True
    assert report["ai"]["model_name"] == "m"
    assert report["ai"]["model_version"] == "1"
    assert "manifest_store" not in report  # only with --detailed


def test_verify_detailed_adds_the_manifest_store(
    shared_data_dir: Path, signed_jpeg: tuple[Path, dict[str, str]]
) -> None:
    out, printed = signed_jpeg
    report = json.loads(ok(hallmark(shared_data_dir, "verify", "--json", "--detailed", str(out))).stdout)
    store = report["manifest_store"]
    assert store["active_manifest"] == printed["manifest_id"]
    assert list(store["manifests"]) == [printed["manifest_id"]]
    assert report["outcome"] == "trusted"
    human = ok(hallmark(shared_data_dir, "verify", "--detailed", str(out))).stdout
    assert re.search(r"^outcome:\s+trusted$", human, re.MULTILINE), human
    assert re.search(r"^action:\s+c2pa.created at \S+Z$", human, re.MULTILINE), human
    _, _, rest = human.partition("manifest store:\n")
    assert json.loads(rest)["active_manifest"] == printed["manifest_id"]
    assert "manifest store:" not in ok(hallmark(shared_data_dir, "verify", str(out))).stdout


def test_verify_unsigned_file_exits_5_with_outcome_none(shared_data_dir: Path, interop_dir: Path) -> None:
    path = str(interop_dir / "no_manifest.jpg")
    result = hallmark(shared_data_dir, "verify", "--json", path)
    assert result.returncode == 5, result.stderr
    assert json.loads(result.stdout)["outcome"] == "none"
    human = hallmark(shared_data_dir, "verify", path)
    assert human.returncode == 5
    assert re.search(r"^outcome:\s+none$", human.stdout, re.MULTILINE)


def test_verify_tampered_file_exits_4_with_outcome_invalid(shared_data_dir: Path, interop_dir: Path) -> None:
    result = hallmark(shared_data_dir, "verify", "--json", str(interop_dir / "XCA.jpg"))
    assert result.returncode == 4, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "invalid"
    assert "assertion.dataHash.mismatch" in [c["code"] for c in report["codes"]["failure"]]


def test_verify_unsupported_file_is_a_hallmark_error(shared_data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("plain text, not media\n")
    result = hallmark(shared_data_dir, "verify", str(path))
    assert result.returncode == 1
    assert "error:" in result.stderr
    no_traceback(result)


def test_verify_nonexistent_path_is_a_usage_error(shared_data_dir: Path, tmp_path: Path) -> None:
    result = hallmark(shared_data_dir, "verify", str(tmp_path / "missing.jpg"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    no_traceback(result)


def test_verify_nonexistent_sidecar_is_a_usage_error(
    shared_data_dir: Path, interop_dir: Path, tmp_path: Path
) -> None:
    result = hallmark(
        shared_data_dir,
        "verify",
        "--manifest",
        str(tmp_path / "missing.c2pa"),
        str(interop_dir / "no_manifest.jpg"),
    )
    no_traceback(result)
    assert result.returncode == 2


# --- configuration errors ------------------------------------------------------------------------------


def test_production_refuses_the_development_data_dir(
    data_dir: Path, unsigned_jpeg: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prod.jpg"
    result = hallmark(
        data_dir,
        "sign",
        str(unsigned_jpeg),
        "--model-name",
        "m",
        "--model-version",
        "1",
        "-o",
        str(out),
        HALLMARK_ENV="production",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^error: .*[Pp]roduction.*development", result.stderr, re.MULTILINE), result.stderr
    assert PRIVATE_KEY not in result.stdout + result.stderr
    no_traceback(result)
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


def test_invalid_setting_names_the_variable(data_dir: Path) -> None:
    result = hallmark(data_dir, "keys", "list", HALLMARK_ENV="prod")
    assert result.returncode == 1
    assert "env" in result.stderr
    assert "production" in result.stderr
    no_traceback(result)
