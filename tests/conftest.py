"""Shared fixtures: a fresh test PKI per session, the real engine, an in-memory ledger fake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import signing
from app.pem_keys import CredentialFiles, load_pem_signer
from app.settings import Settings
from tests.fixtures import INTEROP
from tests.pki import TestPki, make_test_pki
from tests.postgres import PostgresServer, start_postgres

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def interop_dir() -> Path:
    if not (INTEROP / "EXPECTED.tsv").is_file():
        pytest.fail(f"interop corpus missing at {INTEROP}: it is part of the repository")
    return INTEROP


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real per-user data directory: where a test does not name a data dir, `Settings()`
    and every CLI it starts (which inherit the environment) use a fresh temporary one."""
    monkeypatch.setenv("HALLMARK_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, started on first use (tests/postgres.py)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With HALLMARK_TEST_DATABASE=postgresql (the second pass of `make test`), every test's service, CLI and
    store use a fresh PostgreSQL database instead of the data directory's SQLite file."""
    backend = os.environ.get("HALLMARK_TEST_DATABASE", "sqlite")
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        monkeypatch.setenv("HALLMARK_DATABASE_URL", server.new_database())
    elif backend != "sqlite":
        pytest.fail(f"HALLMARK_TEST_DATABASE={backend!r}: use sqlite or postgresql", pytrace=False)


@pytest.fixture(autouse=True)
def _no_checkpoint_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service started with a TSA would also timestamp its audit checkpoints, one more TSA request at a
    moment the sealer picks; tests that count TSA requests count signs. The checkpoint timestamps have
    their own tests (tests/integration/test_audit_timestamps.py), which turn this back on."""
    monkeypatch.setenv("HALLMARK_AUDIT_TIMESTAMPS", "false")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def trust_profile(pki: TestPki) -> signing.TrustProfile:
    return signing.profile_from_pem("test-root", pki.root.read_bytes(), source=str(pki.root))


@pytest.fixture(scope="session")
def engine(trust_profile: signing.TrustProfile) -> signing.Engine:
    return signing.Engine(signing.EngineConfig(trust=(trust_profile,)))


@pytest.fixture(scope="session")
def native_signer(pki: TestPki) -> signing.NativeSigner:
    key = load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))
    return signing.NativeSigner(key)


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: list[signing.LedgerEntry] = []

    def record(self, entry: signing.LedgerEntry) -> None:
        self.entries.append(entry)


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def sign_ctx(
    engine: signing.Engine, native_signer: signing.NativeSigner, ledger: MemoryLedger
) -> signing.SignContext:
    return signing.SignContext(
        engine, native_signer, ledger, signing.SystemClock(), signing.ClaimGenerator("Hallmark", "test")
    )


@pytest.fixture
def generation() -> signing.GenerationInfo:
    return signing.validate_generation(
        model_name="test-diffusion",
        model_version="2.1",
        provider="Example AI",
        digital_source_type=None,
    )


# --- the HTTP app, wired to a temporary data directory --------------------------------------------------


def make_data_dir(root: Path, pki: TestPki) -> Path:
    """A data directory laid out like `keys init --dev` makes it, with the session's test PKI."""
    import shutil

    keys = root / "keys"
    trust = root / "trust"
    keys.mkdir(parents=True)
    trust.mkdir()
    shutil.copyfile(pki.chain, keys / "signing-chain.pem")
    shutil.copyfile(pki.key, keys / "signing-key.pem")
    (keys / "signing-key.pem").chmod(0o600)
    shutil.copyfile(pki.root, trust / "test-root.pem")
    return root


@pytest.fixture
def settings(tmp_path: Path, pki: TestPki) -> Settings:
    return Settings(data_dir=make_data_dir(tmp_path / "var", pki), default_provider="Example AI")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def api_key(client: TestClient) -> str:
    """A fresh API key with the sign scope, created through the running app's store."""
    _, token = client.app.state.runtime.api_keys.create("tests", {"sign"})  # type: ignore[attr-defined]
    return str(token)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
