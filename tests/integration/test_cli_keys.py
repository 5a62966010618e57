"""The key lifecycle through the real CLI: generate, import, activate, retire, revoke, doctor, key events."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HALLMARK = str(Path(sys.executable).with_name("hallmark"))


def run(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"HALLMARK_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [HALLMARK, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def keys(data_dir: Path) -> dict[str, dict[str, object]]:
    return {k["key_id"]: k for k in json.loads(ok(run(data_dir, "keys", "list", "--json")).stdout)}


def events(data_dir: Path) -> list[tuple[str, str, str | None, str | None]]:
    rows = json.loads(ok(run(data_dir, "audit", "keys", "--json", "--limit", "100")).stdout)
    return [(r["key_id"], r["event"], r["from_state"], r["to_state"]) for r in reversed(rows)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    ok(run(path, "keys", "init", "--dev"))
    return path


def test_init_makes_a_keyring_with_one_active_key(data_dir: Path) -> None:
    ring = keys(data_dir)
    assert list(ring) == ["default"]
    assert ring["default"]["state"] == "active"
    assert ring["default"]["development"] is True
    assert events(data_dir) == [("default", "added", None, "active")]


def test_generate_dev_then_activate_retires_the_previous_key(data_dir: Path) -> None:
    new_id = ok(run(data_dir, "keys", "generate", "--dev")).stdout.strip().splitlines()[-1]
    assert keys(data_dir)[new_id]["state"] == "pending"
    assert (data_dir / "keys" / new_id / "request.csr.pem").is_file()
    assert (data_dir / "keys" / new_id / "key.pem").stat().st_mode & 0o077 == 0

    dry = ok(run(data_dir, "keys", "activate", new_id, "--dry-run"))
    assert f"would activate {new_id}: pending -> active" in dry.stdout
    assert "would retire default: active -> retired" in dry.stdout
    assert "would activated" not in dry.stdout
    assert keys(data_dir)[new_id]["state"] == "pending", "--dry-run changed the keyring"

    ok(run(data_dir, "keys", "activate", new_id, "--yes"))
    ring = keys(data_dir)
    assert ring[new_id]["state"] == "active"
    assert ring["default"]["state"] == "retired"
    assert events(data_dir)[-2:] == [
        ("default", "retired", "active", "retired"),
        (new_id, "activated", "pending", "active"),
    ]


def test_destructive_commands_need_confirmation(data_dir: Path) -> None:
    refused = run(data_dir, "keys", "retire", "default", stdin="n\n")
    assert refused.returncode == 1
    assert keys(data_dir)["default"]["state"] == "active"
    no_reason = run(data_dir, "keys", "revoke", "default", "--yes")
    assert no_reason.returncode == 2  # --reason is required
    ok(run(data_dir, "keys", "revoke", "default", "--reason", "key compromise", "--yes"))
    assert keys(data_dir)["default"]["state"] == "revoked"
    assert events(data_dir)[-1] == ("default", "revoked", "active", "revoked")
    again = run(data_dir, "keys", "activate", "default", "--yes")
    assert again.returncode == 1
    assert "only a pending key" in again.stderr


def test_ca_flow_generate_csr_import_chain_activate(data_dir: Path) -> None:
    """Without --dev: key and CSR; 'the CA' (the dev intermediate) issues from the CSR; import; activate."""
    new_id = ok(run(data_dir, "keys", "generate", "--alg", "es384")).stdout.strip().splitlines()[-1]
    assert keys(data_dir)[new_id]["subject"] is None
    not_yet = run(data_dir, "keys", "activate", new_id, "--yes")
    assert not_yet.returncode == 1
    assert "keys import" in not_yet.stderr

    csr = x509.load_pem_x509_csr((data_dir / "keys" / new_id / "request.csr.pem").read_bytes())
    assert csr.is_signature_valid
    chain = issue_from_csr(data_dir, csr)
    wrong = issue_from_csr(data_dir, other_csr())
    mismatch = run(data_dir, "keys", "import", new_id, "--chain", str(wrong))
    assert mismatch.returncode == 1
    assert "not issued for key" in mismatch.stderr

    ok(run(data_dir, "keys", "import", new_id, "--chain", str(chain)))
    assert keys(data_dir)[new_id]["certificate_sha256"]
    ok(run(data_dir, "keys", "activate", new_id, "--yes"))
    assert keys(data_dir)[new_id]["state"] == "active"
    doctor = ok(run(data_dir, "keys", "doctor")).stdout.splitlines()
    assert doctor[:2] == [f"Data directory: {data_dir}", "Engine accepts this credential: yes"]


def test_doctor_exit_codes_and_verdicts(data_dir: Path, tmp_path: Path) -> None:
    good = ok(run(data_dir, "keys", "doctor", "--json"))
    report = json.loads(good.stdout)
    assert report["engine_accepts"] is True
    assert report["trust_list_issuable"] is False  # a development leaf lacks the C2PA policy extensions
    # A chain whose leaf is a CA certificate: the engine refuses it.
    ca = data_dir / "keys" / "dev-ca" / "intermediate-ca.pem"
    ca_key = data_dir / "keys" / "dev-ca" / "intermediate-ca.key.pem"
    bad = run(data_dir, "keys", "doctor", "--chain", str(ca), "--key", str(ca_key))
    assert bad.returncode == 1
    assert "Engine accepts this credential: no" in bad.stdout
    assert "ca-flag" in bad.stdout
    assert "PRIVATE KEY" not in bad.stdout + bad.stderr


def test_running_service_switches_keys_without_restart(data_dir: Path) -> None:
    """The worker-side half of rotation, in-process: SignerWatch notices the keyring change."""
    clock = ManualClock()
    watch = _watch(data_dir, clock)
    first = watch.current()
    assert first is not None
    assert first.signer.key.key_id == "default"
    new_id = ok(run(data_dir, "keys", "generate", "--dev")).stdout.strip().splitlines()[-1]
    ok(run(data_dir, "keys", "activate", new_id, "--yes"))
    clock.advance_past_the_poll()
    current = watch.current()
    assert current is not None
    assert current.signer.key.key_id == new_id
    assert first.signer.key.key_id == "default", "a context taken before the switch keeps its key"


# --- helpers: a tiny CA around the development intermediate --------------------------------------------


def issue_from_csr(data_dir: Path, csr: x509.CertificateSigningRequest) -> Path:
    ca_dir = data_dir / "keys" / "dev-ca"
    inter = x509.load_pem_x509_certificate((ca_dir / "intermediate-ca.pem").read_bytes())
    inter_key = serialization.load_pem_private_key((ca_dir / "intermediate-ca.key.pem").read_bytes(), None)
    assert isinstance(inter_key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(inter.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), critical=False
        )
        .sign(inter_key, hashes.SHA256())
    )
    out = data_dir.parent / f"issued-{cert.serial_number}.pem"
    out.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + inter.public_bytes(serialization.Encoding.PEM)
    )
    return out


def other_csr() -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else")])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def test_generate_encrypted_key_signs_with_the_passphrase(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    ok(run(data_dir, "keys", "init", "--dev"))
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)

    def env_run(*a: str) -> subprocess.CompletedProcess[str]:
        """`run` with one extra variable: the passphrase file."""
        return subprocess.run(
            [HALLMARK, *a],
            env={
                "HALLMARK_DATA_DIR": str(data_dir),
                "PATH": "/usr/bin:/bin",
                "HALLMARK_SIGNING_KEY_PASSPHRASE_FILE": str(secret),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    generated = env_run("keys", "generate", "--dev", "--encrypt")
    assert generated.returncode == 0, generated.stderr
    key_id = generated.stdout.strip().splitlines()[-1]
    key_file = data_dir / "keys" / key_id / "key.pem"
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    assert env_run("keys", "activate", key_id, "--yes").returncode == 0
    # Without the passphrase the key cannot be used, and the error says so without leaking anything.
    refused = run(data_dir, "keys", "doctor", key_id)
    assert refused.returncode == 1
    assert "correct horse" not in refused.stdout + refused.stderr
    assert env_run("keys", "doctor", key_id).returncode == 0


POLL_SECONDS = 5.0


class ManualClock:
    """The watcher's monotonic clock, moved by the test: a poll is due exactly when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance_past_the_poll(self) -> None:
        self.now += POLL_SECONDS


def _watch(data_dir: Path, clock: ManualClock) -> Any:
    from app.keywatch import SignerWatch
    from app.runtime import GENERATOR, load_trust, open_database
    from app.settings import Settings
    from app.store.ledger import SqlLedger
    from signing import Engine, EngineConfig

    cfg = Settings(data_dir=data_dir, keyring_poll_seconds=POLL_SECONDS)
    engine = Engine(EngineConfig(trust=load_trust(cfg)))
    watch = SignerWatch(cfg, engine, SqlLedger(open_database(cfg)), GENERATOR, clock=clock)
    watch.start()
    return watch


def test_revoking_the_active_key_stops_signing_at_the_next_poll(data_dir: Path) -> None:
    clock = ManualClock()
    watch = _watch(data_dir, clock)
    assert watch.current() is not None
    ok(run(data_dir, "keys", "revoke", "default", "--reason", "key compromise", "--yes"))
    assert watch.current() is not None, "the control: before the poll is due the watcher has not looked"
    clock.advance_past_the_poll()
    assert watch.current() is None, "a revoked key must not keep signing"
    assert "no usable active key" in (watch.problem or "")


def test_a_key_that_fails_to_load_is_retried_until_it_works(data_dir: Path) -> None:
    clock = ManualClock()
    watch = _watch(data_dir, clock)
    new_id = ok(run(data_dir, "keys", "generate", "--dev")).stdout.strip().splitlines()[-1]
    ok(run(data_dir, "keys", "activate", new_id, "--yes"))
    key_file = data_dir / "keys" / new_id / "key.pem"
    key_file.chmod(0o644)  # the operator's mistake: the worker refuses a readable key
    clock.advance_past_the_poll()
    assert watch.current() is None, "the old key is retired: no signing until the new one loads"
    key_file.chmod(0o600)
    assert watch.current() is None, "no retry before the next poll"
    clock.advance_past_the_poll()
    current = watch.current()
    assert current is not None
    assert current.signer.key.key_id == new_id
    assert watch.problem is None


def test_import_never_replaces_the_chain_of_a_key_in_use(data_dir: Path) -> None:
    chain = data_dir / "keys" / "signing-chain.pem"
    before = chain.read_bytes()
    other = issue_from_csr(data_dir, other_csr())
    refused = run(data_dir, "keys", "import", "default", "--chain", str(other))
    assert refused.returncode == 1
    assert "only be imported for a pending key" in refused.stderr
    assert chain.read_bytes() == before


def test_production_refuses_to_activate_a_development_key(data_dir: Path) -> None:
    from app.keyadmin import activate
    from app.settings import Settings
    from signing import KeyringError

    new_id = ok(run(data_dir, "keys", "generate", "--dev")).stdout.strip().splitlines()[-1]
    with pytest.raises(KeyringError, match="production refuses"):
        activate(Settings(data_dir=data_dir, env="production"), new_id)
    assert keys(data_dir)[new_id]["state"] == "pending"
