"""Trust profiles end to end: the `hallmark trust` commands, the real C2PA lists, and the real engine saying
which profile trusted a signer and which trusted a timestamp."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

import signing
from app.cli import app as cli
from app.files import write_private, write_public
from app.pem_keys import CredentialFiles, load_pem_signer
from app.runtime import load_trust
from app.settings import Settings
from app.trust import Bundle, TrustStore, load_trust_dir
from signing.devpki import dev_name, issue_leaf, key_pem, new_key, pem
from signing.oids import C2PA_CLAIM_SIGNING_EKU
from signing.tiny_png import tiny_png
from tests.conftest import MemoryLedger
from tests.fixtures import TRUST_LISTS
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*
from tests.tsa import LocalTsa

C2PA_LIST_SHA256 = "75cacc98b79ecac33713c7ecfb58d4a0ef383f3c1f886e7409f9e37e8664aea5"
C2PA_TSA_LIST_SHA256 = "c688d3555f4a2f1f8d663472bbd37888ff234abdd234c25934c0f9292e4eb5c9"


@pytest.fixture(scope="module")
def lists() -> Path:
    if not (TRUST_LISTS / "C2PA-TRUST-LIST.pem").is_file():
        pytest.fail(f"C2PA trust list copies missing in {TRUST_LISTS}: they are part of the repository")
    return TRUST_LISTS


def run(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env.update(HALLMARK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1")
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def sign_png(
    engine: signing.Engine, chain: Path, key: Path, tsa_url: str | None = None, provider: str = "Example AI"
) -> bytes:
    signer = signing.NativeSigner(load_pem_signer(CredentialFiles(chain, key, "test-key")), tsa_url)
    ctx = signing.SignContext(
        engine, signer, MemoryLedger(), signing.SystemClock(), signing.ClaimGenerator("Hallmark", "test")
    )
    generation = signing.validate_generation(
        model_name="test-diffusion", model_version="2.1", provider=provider, digital_source_type=None
    )
    out = io.BytesIO()
    signing.sign_asset(ctx, io.BytesIO(tiny_png()), out, generation)
    return out.getvalue()


def verify(engine: signing.Engine, data: bytes) -> signing.VerificationReport:
    return signing.inspect_asset(engine, io.BytesIO(data))


def codes(report: signing.VerificationReport) -> set[str]:
    return {c.code for c in (*report.codes.success, *report.codes.informational, *report.codes.failure)}


# --- the CLI -----------------------------------------------------------------------------------------


def test_cli_add_list_show_remove(pki: Pki, lists: Path, tmp_path: Path) -> None:
    data = tmp_path / "var"
    code, out = run(data, "trust", "list")
    assert code == 0
    assert "No trust profiles" in out

    code, out = run(data, "trust", "add", "c2pa", str(lists / "C2PA-TRUST-LIST.pem"))
    assert code == 0, out
    assert "30 signer anchor(s), 0 TSA anchor(s)" in out
    assert C2PA_LIST_SHA256 in out
    assert "HALLMARK_TRUST_POLL_SECONDS" in out  # running services reload it, no restart
    code, out = run(
        data, "trust", "add", "test-root", str(pki.root), "--eku", C2PA_CLAIM_SIGNING_EKU.dotted_string
    )
    assert code == 0, out
    assert "DEVELOPMENT" in out
    (data / "trust" / "legacy.pem").write_bytes(pki.other_root.read_bytes())

    code, out = run(data, "trust", "list", "--json")
    assert code == 0, out
    rows = {row["name"]: row for row in json.loads(out)}
    assert sorted(rows) == ["c2pa", "legacy", "test-root"]
    assert rows["c2pa"]["signer_anchors"] == 30
    assert rows["c2pa"]["allowed_ekus"] == ["1.3.6.1.4.1.62558.2.1", "1.3.6.1.5.5.7.3.36"]  # C2PA defaults
    assert rows["c2pa"]["development"] is False
    assert rows["test-root"]["development"] is True
    assert rows["test-root"]["allowed_ekus"] == [C2PA_CLAIM_SIGNING_EKU.dotted_string]
    assert rows["legacy"]["layout"] == "pem"
    code, out = run(data, "trust", "list")
    assert "(development)" in out.splitlines()[2]

    code, out = run(data, "trust", "show", "c2pa", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["sha256"] == C2PA_LIST_SHA256
    assert len(shown["signer_anchor_list"]) == 30
    assert shown["tsa_anchor_list"] == []
    code, out = run(data, "trust", "show", "c2pa")
    assert "Google C2PA" in out
    code, out = run(data, "trust", "show", "nope")
    assert code == 1
    assert "no trust profile 'nope'" in out

    code, out = run(data, "trust", "add", "c2pa", str(pki.root))
    assert code == 1
    assert "exists" in out
    code, out = run(data, "trust", "add", "bad", str(pki.root), "--kind", "roots")
    assert code == 2

    code, out = run(data, "trust", "remove", "legacy")
    assert code == 0, out
    code, out = run(data, "trust", "remove", "c2pa")
    assert code == 0, out
    assert [p.name for p in load_trust_dir(data / "trust")] == ["test-root"]
    code, out = run(data, "trust", "remove", "c2pa")
    assert code == 1


def test_cli_update_from_file_checks_the_hash(lists: Path, tmp_path: Path) -> None:
    data = tmp_path / "var"
    tsa_list = str(lists / "C2PA-TSA-TRUST-LIST.pem")
    code, out = run(data, "trust", "update", "c2pa-tsa", "--from", tsa_list, "--sha256", C2PA_LIST_SHA256)
    assert code == 1
    assert "does not have the expected SHA-256" in out
    assert C2PA_TSA_LIST_SHA256 in out  # the actual hash, to compare with the publisher's
    assert not (data / "trust" / "c2pa-tsa").exists()

    code, out = run(data, "trust", "update", "c2pa-tsa", "--from", tsa_list, "--sha256", C2PA_TSA_LIST_SHA256)
    assert code == 0, out
    assert "0 signer anchor(s), 22 TSA anchor(s)" in out
    (profile,) = load_trust_dir(data / "trust")
    assert (profile.name, profile.anchor_count, profile.tsa_anchor_count) == ("c2pa-tsa", 0, 22)
    assert hashlib.sha256((data / "trust" / "c2pa-tsa" / "tsa-anchors.pem").read_bytes()).hexdigest() == (
        C2PA_TSA_LIST_SHA256
    )

    code, out = run(
        data,
        "trust",
        "update",
        "c2pa-tsa",
        "--from",
        "http://example.com/x.pem",
        "--sha256",
        C2PA_TSA_LIST_SHA256,
    )
    assert code == 1
    assert "https only" in out
    code, out = run(data, "trust", "update", "mine", "--sha256", C2PA_TSA_LIST_SHA256)
    assert code == 2
    assert "--from" in out


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "hallmark"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env["HALLMARK_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [str(script), "trust", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# --- the real C2PA lists and the engine ----------------------------------------------------------------


@pytest.fixture
def c2pa_store(lists: Path, tmp_path: Path) -> TrustStore:
    store = TrustStore(tmp_path / "trust")
    for name, file, digest in (
        ("c2pa", "C2PA-TRUST-LIST.pem", C2PA_LIST_SHA256),
        ("c2pa-tsa", "C2PA-TSA-TRUST-LIST.pem", C2PA_TSA_LIST_SHA256),
    ):
        path = lists / file
        store.update(name, Bundle(path.read_bytes(), str(path)), expected_sha256=digest)
    return store


def test_real_lists_load_as_production_profiles(c2pa_store: TrustStore) -> None:
    c2pa, tsa = c2pa_store.profiles()
    assert (c2pa.name, c2pa.anchor_count, c2pa.tsa_anchor_count, c2pa.development) == ("c2pa", 30, 0, False)
    assert (tsa.name, tsa.anchor_count, tsa.tsa_anchor_count, tsa.development) == ("c2pa-tsa", 0, 22, False)
    assert c2pa.sha256 == C2PA_LIST_SHA256
    settings = Settings(env="production", data_dir=c2pa_store.directory.parent)
    assert [p.name for p in load_trust(settings)] == ["c2pa", "c2pa-tsa"]
    signing.Engine(signing.EngineConfig(trust=(c2pa, tsa)))  # the engine accepts every anchor set


def test_report_names_the_profile_that_trusted_the_signer(pki: Pki, c2pa_store: TrustStore) -> None:
    c2pa_store.add("test-root", anchors=Bundle(pki.root.read_bytes(), str(pki.root)))
    profiles = c2pa_store.profiles()
    assert [p.name for p in profiles] == ["c2pa", "c2pa-tsa", "test-root"]  # the C2PA list is tried first
    engine = signing.Engine(signing.EngineConfig(trust=profiles))
    report = verify(engine, sign_png(engine, pki.chain, pki.key))
    assert report.outcome is signing.Outcome.TRUSTED
    assert report.signer is not None
    assert (report.signer.trusted, report.signer.trust_profile) == (True, "test-root")
    assert report.development_trust is True
    assert "'test-root' trust profile" in report.summary
    assert report.revocation is signing.RevocationStatus.NOT_CHECKED
    assert "signingCredential.ocsp.skipped" in codes(report)

    stranger = verify(engine, sign_png(engine, pki.untrusted_chain, pki.untrusted_key))
    assert stranger.outcome is signing.Outcome.VALID_UNTRUSTED  # valid but untrusted, not invalid
    assert stranger.signer is not None
    assert (stranger.signer.trusted, stranger.signer.trust_profile) == (False, None)


def test_development_profiles_are_flagged_and_refused_in_production(pki: Pki, c2pa_store: TrustStore) -> None:
    dev = c2pa_store.add("hallmark-dev", anchors=Bundle(pki.root.read_bytes(), str(pki.root)))
    assert dev.development is True
    flagged = c2pa_store.add(
        "staging", anchors=Bundle(pki.other_root.read_bytes(), str(pki.other_root)), development=True
    )
    assert flagged.development is True
    data_dir = c2pa_store.directory.parent
    with pytest.raises(signing.ConfigError, match="hallmark-dev, staging"):
        load_trust(Settings(env="production", data_dir=data_dir))
    assert len(load_trust(Settings(env="development", data_dir=data_dir))) == 4
    (c2pa_store.directory / "legacy-dev.pem").write_bytes(pki.root.read_bytes())  # the old layout too
    c2pa_store.remove("hallmark-dev")
    c2pa_store.remove("staging")
    with pytest.raises(signing.ConfigError, match="legacy-dev"):
        load_trust(Settings(env="production", data_dir=data_dir))


# --- timestamps ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    with LocalTsa() as local:
        yield local


def test_timestamp_trusted_by_a_tsa_profile(pki: Pki, tsa: LocalTsa, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    store.add("test-root", anchors=Bundle(pki.root.read_bytes(), str(pki.root)))
    store.add("test-tsa", tsa_anchors=Bundle(tsa.root_pem, "local TSA root"))
    engine = signing.Engine(signing.EngineConfig(trust=store.profiles()))
    report = verify(engine, sign_png(engine, pki.chain, pki.key, tsa.url))
    assert report.outcome is signing.Outcome.TRUSTED
    assert report.signer is not None
    assert report.signer.trust_profile == "test-root"
    assert report.timestamp.status is signing.TimestampStatus.TRUSTED
    assert report.timestamp.trust_profile == "test-tsa"
    assert report.timestamp.trust_list is signing.AnchorList.TSA
    assert report.timestamp.time

    without = signing.Engine(signing.EngineConfig(trust=(store.get("test-root"),)))
    untrusted = verify(without, sign_png(without, pki.chain, pki.key, tsa.url))
    assert untrusted.outcome is signing.Outcome.TRUSTED
    assert untrusted.timestamp.status is signing.TimestampStatus.UNTRUSTED
    assert untrusted.timestamp.trust_profile is None
    assert untrusted.timestamp.trust_list is None
    assert "timeStamp.untrusted" in codes(untrusted)


def test_roots_shared_by_signer_and_tsa_profiles(pki: Pki, tsa: LocalTsa, c2pa_store: TrustStore) -> None:
    """The C2PA trust list and TSA list share 16 roots: a signer under such a root is trusted by the signer
    profile, a timestamp under one by the TSA profile, whatever other profiles come first."""
    store = c2pa_store
    store.add("acme", anchors=Bundle(pki.other_root.read_bytes(), "unrelated"))  # tried first, trusts nothing
    both = pki.root.read_bytes() + tsa.root_pem
    store.add("corp", anchors=Bundle(both, "corp roots"))
    store.add("corp-tsa", tsa_anchors=Bundle(both, "corp TSA roots"))
    profiles = store.profiles()
    assert [p.name for p in profiles] == ["acme", "c2pa", "c2pa-tsa", "corp", "corp-tsa"]
    engine = signing.Engine(signing.EngineConfig(trust=profiles))
    report = verify(engine, sign_png(engine, pki.chain, pki.key, tsa.url))
    assert report.outcome is signing.Outcome.TRUSTED
    assert report.signer is not None
    assert report.signer.trust_profile == "corp"
    assert report.timestamp.status is signing.TimestampStatus.TRUSTED
    assert report.timestamp.trust_profile == "corp-tsa"


def test_tsa_anchors_do_not_make_a_signer_trusted(pki: Pki, tmp_path: Path) -> None:
    """The engine keeps one anchor store (it says Trusted); Hallmark does not count a TSA list for signers."""
    store = TrustStore(tmp_path)
    store.add("odd-tsa", tsa_anchors=Bundle(pki.root.read_bytes(), str(pki.root)))
    engine = signing.Engine(signing.EngineConfig(trust=store.profiles()))
    report = verify(engine, sign_png(engine, pki.chain, pki.key))
    assert "signingCredential.trusted" in codes(report)  # what the engine said
    assert report.outcome is signing.Outcome.VALID_UNTRUSTED
    assert report.signer is not None
    assert report.signer.trusted is False


# --- allowed EKUs ----------------------------------------------------------------------------------------


def claim_signing_only_leaf(pki: Pki, out: Path) -> tuple[Path, Path]:
    """A leaf with only the C2PA claim-signing EKU, under the test PKI's intermediate."""
    ca = pki.root.parent
    inter = x509.load_pem_x509_certificate((ca / "intermediate-ca.pem").read_bytes())
    inter_key = serialization.load_pem_private_key((ca / "intermediate-ca.key.pem").read_bytes(), None)
    assert isinstance(inter_key, ec.EllipticCurvePrivateKey)
    key = new_key("es256")
    leaf = issue_leaf(
        dev_name("Claim Signing Only"),
        key,
        issuer=inter,
        issuer_key=inter_key,
        extended_key_usages=(C2PA_CLAIM_SIGNING_EKU,),
    )
    write_public(out / "c2pa-eku-chain.pem", pem(leaf) + pem(inter))
    write_private(out / "c2pa-eku-key.pem", key_pem(key))
    return out / "c2pa-eku-chain.pem", out / "c2pa-eku-key.pem"


def test_allowed_ekus_reach_the_engine(pki: Pki, tmp_path: Path) -> None:
    chain, key = claim_signing_only_leaf(pki, tmp_path)
    plain = TrustStore(tmp_path / "plain")
    plain.add("test-root", anchors=Bundle(pki.root.read_bytes(), str(pki.root)))
    engine = signing.Engine(signing.EngineConfig(trust=plain.profiles()))
    with pytest.raises(signing.SigningError):
        sign_png(engine, chain, key)  # the engine accepts only emailProtection unless told

    allowing = TrustStore(tmp_path / "allowing")
    allowing.add(
        "test-root",
        anchors=Bundle(pki.root.read_bytes(), str(pki.root)),
        allowed_ekus=(C2PA_CLAIM_SIGNING_EKU.dotted_string,),
    )
    engine = signing.Engine(signing.EngineConfig(trust=allowing.profiles()))
    signed = sign_png(engine, chain, key)
    report = verify(engine, signed)
    assert report.outcome is signing.Outcome.TRUSTED
    assert report.signer is not None
    assert report.signer.trust_profile == "test-root"

    refused = verify(signing.Engine(signing.EngineConfig(trust=plain.profiles())), signed)
    assert refused.outcome is signing.Outcome.INVALID
    assert "signingCredential.invalid" in codes(refused)
