"""Fixes from the security review, one section per finding: each test failed before its fix."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.errors import status_for
from app.files import write_private, write_public
from app.settings import Settings
from app.store.apikeys import ApiKeyStore
from app.store.db import make_engine, migrate
from app.trust import TrustStore
from signing import (
    AssetTooLargeError,
    ConfigError,
    HallmarkError,
    InvalidMetadataError,
    KeyringError,
    LedgerError,
    MalformedAssetError,
    MediaFingerprintError,
    MediaToolMissingError,
    MediaToolTimeoutError,
    SigningError,
    StorageError,
    UnsupportedMediaError,
    devpki,
)
from signing.devpki import key_pem, new_key
from signing.doctor import diagnose
from signing.vocabulary import AI_SOURCE_TYPES, IPTC_DST_BASE, SOURCE_TYPE_WORDS
from tests.unit.test_report import action, manifest, report_of

SECRET = "correct horse battery staple"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- settings.passphrase(): the passphrase file is held to the PIN file's rules ---------------------------


def passphrase_settings(tmp_path: Path, file: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", signing_key_passphrase_file=file)


def test_passphrase_file_readable_by_others_is_refused_without_leaking_it(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o644)
    with pytest.raises(HallmarkError) as caught:
        passphrase_settings(tmp_path, secret).passphrase()
    text = str(caught.value.diagnostics())
    assert str(secret) in text
    assert "644" in text
    assert "chmod 600" in text
    assert "horse" not in text


def test_missing_passphrase_file_is_a_hallmark_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "passphrase"
    with pytest.raises(HallmarkError) as caught:
        passphrase_settings(tmp_path, missing).passphrase()
    assert not isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, ConfigError | KeyringError)
    assert str(missing) in caught.value.message


def test_empty_or_undecodable_passphrase_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    for content in (b"\n", b"\xff\xfe not utf-8"):
        secret.write_bytes(content)
        secret.chmod(0o600)
        with pytest.raises(HallmarkError, match="passphrase file"):
            passphrase_settings(tmp_path, secret).passphrase()


def test_owner_only_passphrase_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    value = passphrase_settings(tmp_path, secret).passphrase()
    assert value is not None
    assert value.get_secret_value() == SECRET
    assert Settings(data_dir=tmp_path / "var").passphrase() is None


# --- devpki.write_private / write_public: a fresh temporary file, never a leftover one --------------------


def test_write_private_ignores_a_world_readable_leftover_tmp(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "key.pem"
    target.parent.mkdir()
    leftover = target.with_name("key.pem.tmp")
    leftover.write_bytes(b"left by a crash")
    leftover.chmod(0o644)
    data = key_pem(new_key())
    write_private(target, data)
    assert target.read_bytes() == data
    assert mode_of(target) == 0o600
    # Nothing new is left behind, and the stray file is neither reused nor touched.
    assert sorted(p.name for p in target.parent.iterdir()) == ["key.pem", "key.pem.tmp"]
    assert leftover.read_bytes() == b"left by a crash"


def test_write_private_replaces_an_existing_key_and_stays_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_write_public_is_world_readable_and_leaves_no_tmp(tmp_path: Path) -> None:
    target = tmp_path / "chain.pem"
    write_public(target, b"chain")
    assert target.read_bytes() == b"chain"
    assert mode_of(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["chain.pem"]


def test_a_failed_write_removes_its_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_private(tmp_path / "key.pem", b"secret")
    assert list(tmp_path.iterdir()) == []


# --- errors.status_for: an unclaimed HallmarkError is the service's fault ---------------------------------


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (HallmarkError("The C2PA engine refused its configuration."), 500),
        (HallmarkError("x"), 500),
        (UnsupportedMediaError("x"), 415),
        (AssetTooLargeError("x"), 413),
        (MalformedAssetError("x"), 422),
        (InvalidMetadataError("x"), 422),
        (LedgerError("x"), 503),
        (StorageError("x"), 503),
        (KeyringError("x"), 503),
        (SigningError("x"), 500),
        (ConfigError("x"), 503),
        (MediaFingerprintError("x"), 422),
        (MediaToolMissingError("x"), 503),
        (MediaToolTimeoutError("x"), 503),
    ],
)
def test_status_for(exc: HallmarkError, status: int) -> None:
    assert status_for(exc) == status


# --- doctor: the passphrase hint names the real setting ---------------------------------------------------


def test_encrypted_key_without_passphrase_hint_names_the_real_setting() -> None:
    from tests.unit.test_doctor import dev_leaf, make_ca

    ca = make_ca()
    key = new_key()
    chain = devpki.pem(dev_leaf(ca, key)) + devpki.pem(ca.inter)
    report = diagnose(chain, key_pem(key, b"secret"), now=datetime.now(UTC))
    [finding] = [f for f in report.engine_findings if f.check == "key-unreadable"]
    assert "HALLMARK_SIGNING_KEY_PASSPHRASE_FILE" in finding.fix
    assert "HALLMARK_KEY_PASSPHRASE)" not in finding.fix


# --- vocabulary: compositeSynthetic is synthetic, not necessarily AI --------------------------------------

COMPOSITE_SYNTHETIC = IPTC_DST_BASE + "compositeSynthetic"


def test_composite_synthetic_is_not_an_ai_source_type() -> None:
    assert COMPOSITE_SYNTHETIC not in AI_SOURCE_TYPES
    assert IPTC_DST_BASE + "compositeWithTrainedAlgorithmicMedia" in AI_SOURCE_TYPES
    assert SOURCE_TYPE_WORDS[COMPOSITE_SYNTHETIC] == "is a composite that includes synthetic elements"


def test_a_composite_synthetic_report_does_not_declare_ai() -> None:
    report = report_of(manifest(actions=[action("c2pa.created", COMPOSITE_SYNTHETIC)]))
    assert report.ai is not None
    assert report.ai.declared is False
    assert report.ai.digital_source_type == COMPOSITE_SYNTHETIC
    assert "is a composite that includes synthetic elements" in report.summary
    assert "AI" not in report.summary


def test_an_ai_action_still_wins_over_composite_synthetic() -> None:
    actions = [
        action("c2pa.created", COMPOSITE_SYNTHETIC),
        action("c2pa.edited", IPTC_DST_BASE + "trainedAlgorithmicMedia"),
    ]
    report = report_of(manifest(actions=actions))
    assert report.ai is not None
    assert report.ai.declared is True
    assert report.ai.digital_source_type == IPTC_DST_BASE + "trainedAlgorithmicMedia"


# --- trust store: remove validates the name before building a path ---------------------------------------


def test_trust_remove_refuses_a_path_outside_the_trust_dir(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    outside = keys / "signing-chain.pem"
    outside.write_text("chain")
    store = TrustStore(tmp_path / "trust")
    with pytest.raises(ConfigError, match="not a trust profile name"):
        store.remove("../keys/signing-chain")
    assert outside.read_text() == "chain"
    with pytest.raises(ConfigError, match="not a trust profile name"):
        store.remove("ok\n")


def test_trust_remove_still_removes_a_hand_copied_pem(tmp_path: Path) -> None:
    from tests.pki import make_test_pki

    pki = make_test_pki(tmp_path / "pki")
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "MyCA.pem").write_bytes(pki.root.read_bytes())  # predates the naming rule
    TrustStore(trust).remove("MyCA")
    assert not (trust / "MyCA.pem").exists()


# --- store.db: the database and its side files are owner-only ---------------------------------------------


def database_files(db_file: Path) -> list[Path]:
    return [p for p in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")) if p.exists()]


def test_new_database_and_its_side_files_are_owner_only(tmp_path: Path) -> None:
    db_file = tmp_path / "var" / "hallmark.db"
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        migrate(engine)
        ApiKeyStore(engine).create("tests", {"sign"})
        with engine.connect() as conn:  # an open connection keeps -wal and -shm around
            conn.execute(sa.text("SELECT 1"))
            files = database_files(db_file)
            assert [p.name for p in files] == ["hallmark.db", "hallmark.db-wal", "hallmark.db-shm"]
            assert {p.name: oct(mode_of(p)) for p in files} == {p.name: oct(0o600) for p in files}
    finally:
        engine.dispose()


def test_existing_world_readable_database_files_are_tightened(tmp_path: Path) -> None:
    db_file = tmp_path / "hallmark.db"
    first = make_engine(f"sqlite:///{db_file}")
    try:
        migrate(first)
    finally:
        first.dispose()
    db_file.chmod(0o644)  # as an older Hallmark left it
    for suffix in ("-wal", "-shm"):
        side = Path(f"{db_file}{suffix}")
        if side.exists():
            side.chmod(0o644)
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        ApiKeyStore(engine).create("tests", {"sign"})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            files = database_files(db_file)
            assert db_file in files
            assert {p.name: oct(mode_of(p)) for p in files} == {p.name: oct(0o600) for p in files}
    finally:
        engine.dispose()


def test_in_memory_database_still_works() -> None:
    engine = make_engine("sqlite://")
    try:
        migrate(engine)
        assert ApiKeyStore(engine).count_active() == 0
    finally:
        engine.dispose()
