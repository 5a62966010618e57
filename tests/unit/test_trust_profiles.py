"""Trust profiles without the engine: on-disk layout, store, engine trust settings, report attribution.

Everything here is pure Python (no c2pa calls): the engine's behaviour these rules rely on is measured in
tests/integration/test_trust_profiles.py and test_revocation.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.trust import (
    DEFAULT_SOURCES,
    Bundle,
    TrustStore,
    fetch_bundle,
    load_trust_dir,
    normalise_sha256,
)
from signing.errors import ConfigError
from signing.models import Outcome, RevocationStatus, TimestampStatus
from signing.oids import C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU
from signing.reading import RawReading
from signing.report import build_report
from signing.trust import (
    TrustListRef,
    TrustProfile,
    engine_trust_settings,
    parse_trust_list_uri,
    profile_from_pem,
    trust_list_uri,
)
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*

URN = "urn:c2pa:3f2a6c1e-8d4b-4e0f-9a7c-1b2d3e4f5a6b"


def bundle(path: Path) -> Bundle:
    return Bundle(path.read_bytes(), str(path))


# --- the directory layout and its loader ---------------------------------------------------------------


def test_store_writes_what_the_core_reads(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    made = store.add(
        "corp",
        anchors=bundle(pki.other_root),
        tsa_anchors=bundle(pki.root),
        allowed_ekus=(C2PA_CLAIM_SIGNING_EKU.dotted_string, C2PA_CLAIM_SIGNING_EKU.dotted_string),
        version="2026-08",
    )
    (loaded,) = load_trust_dir(tmp_path / "trust")
    assert loaded == made
    assert loaded.layout == "profile"
    assert (loaded.anchor_count, loaded.tsa_anchor_count) == (1, 1)
    assert loaded.allowed_ekus == (C2PA_CLAIM_SIGNING_EKU.dotted_string,)
    assert loaded.version == "2026-08"
    assert loaded.sha256 == hashlib.sha256(pki.other_root.read_bytes()).hexdigest()
    assert loaded.source == str(pki.other_root)
    assert loaded.development is True  # the TSA bundle holds a development root
    folder = tmp_path / "trust" / "corp"
    assert sorted(p.name for p in folder.iterdir()) == ["anchors.pem", "profile.json", "tsa-anchors.pem"]
    assert (folder / "anchors.pem").read_bytes() == pki.other_root.read_bytes()  # byte for byte
    doc = json.loads((folder / "profile.json").read_text())
    assert doc["schema"] == 1
    assert doc["name"] == "corp"
    assert doc["anchors"]["count"] == 1
    assert doc["tsa_anchors"]["sha256"] == hashlib.sha256(pki.root.read_bytes()).hexdigest()
    assert [p.name for p in (tmp_path / "trust").iterdir() if p.name != ".lock"] == ["corp"]  # no staging


def test_plain_pem_and_directory_profiles_load_together(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    (tmp_path / "hallmark-dev.pem").write_bytes(pki.root.read_bytes())
    store.add("zeta", anchors=bundle(pki.other_root))
    (tmp_path / ".staging-x").mkdir()  # leftovers of an interrupted change are ignored
    (tmp_path / "notes").mkdir()  # a directory without profile.json is not a profile
    profiles = load_trust_dir(tmp_path)
    assert [(p.name, p.layout, p.development) for p in profiles] == [
        ("hallmark-dev", "pem", True),
        ("zeta", "profile", False),
    ]
    assert [p.name for p in load_trust_dir(tmp_path, names=("zeta",))] == ["zeta"]
    assert store.names() == ["hallmark-dev", "zeta"]


def test_same_name_twice_is_refused(pki: Pki, tmp_path: Path) -> None:
    TrustStore(tmp_path).add("dup", anchors=bundle(pki.other_root))
    (tmp_path / "dup.pem").write_bytes(pki.other_root.read_bytes())
    with pytest.raises(ConfigError, match="exists twice"):
        load_trust_dir(tmp_path)


def _corrupt(path: Path, key: str, value: Any) -> None:
    doc = json.loads((path / "profile.json").read_text())
    doc[key] = value
    (path / "profile.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "anchors.pem").write_bytes((p / "anchors.pem").read_bytes() + b"\n"), "SHA-256"),
        (lambda p: (p / "anchors.pem").unlink(), "missing"),
        (lambda p: _corrupt(p, "schema", 99), "schema"),
        (lambda p: _corrupt(p, "name", "other"), "names 'other'"),
        (lambda p: _corrupt(p, "allowed_ekus", ["1.2,3"]), "allowed_ekus"),
        (lambda p: _corrupt(p, "development", "no"), "development"),
        (lambda p: _corrupt(p, "anchors", {"file": "../../etc/passwd"}), "must name anchors.pem"),
        (lambda p: (p / "profile.json").write_text("[]"), "not a JSON object"),
    ],
)
def test_damaged_profile_is_config_error(pki: Pki, tmp_path: Path, damage: Any, message: str) -> None:
    TrustStore(tmp_path).add("corp", anchors=bundle(pki.other_root))
    damage(tmp_path / "corp")
    with pytest.raises(ConfigError, match=message) as caught:
        load_trust_dir(tmp_path)
    assert "'corp'" in caught.value.message


def test_development_flag_can_only_add(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    assert store.add("flagged", anchors=bundle(pki.other_root), development=True).development is True
    assert store.add("marked", anchors=bundle(pki.root)).development is True  # dev PKI marker in the cert
    assert store.add("clean", anchors=bundle(pki.other_root)).development is False


# --- the store ----------------------------------------------------------------------------------------


def test_update_checks_the_hash_before_writing(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    first = store.add(
        "corp", anchors=bundle(pki.other_root), allowed_ekus=(DOCUMENT_SIGNING_EKU.dotted_string,)
    )
    before = {p.name: p.read_bytes() for p in (tmp_path / "corp").iterdir()}
    new = bundle(pki.root)
    with pytest.raises(ConfigError, match="expected SHA-256") as caught:
        store.update("corp", new, expected_sha256="0" * 64)
    assert caught.value.details["actual"] == new.sha256
    assert {p.name: p.read_bytes() for p in (tmp_path / "corp").iterdir()} == before
    updated = store.update("corp", new, expected_sha256=new.sha256.upper(), version="v2")
    assert updated.sha256 == new.sha256
    assert updated.version == "v2"
    assert updated.allowed_ekus == (DOCUMENT_SIGNING_EKU.dotted_string,)  # kept
    assert store.document("corp")["replaces"]["sha256"] == first.sha256  # type: ignore[index]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "corp"]


def test_update_creates_defaults_and_converts_plain_pem(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    signers = bundle(pki.other_root)
    made = store.update("c2pa", signers, expected_sha256=signers.sha256)
    assert made.allowed_ekus == DEFAULT_SOURCES["c2pa"].allowed_ekus
    assert (made.anchor_count, made.tsa_anchor_count) == (1, 0)
    tsa = store.update("c2pa-tsa", signers, expected_sha256=signers.sha256)
    assert (tsa.anchor_count, tsa.tsa_anchor_count) == (0, 1)
    (tmp_path / "legacy.pem").write_bytes(pki.other_root.read_bytes())
    root = bundle(pki.root)
    converted = store.update("legacy", root, expected_sha256=root.sha256)
    assert converted.layout == "profile"
    assert not (tmp_path / "legacy.pem").exists()
    assert [p.name for p in load_trust_dir(tmp_path)] == ["c2pa", "c2pa-tsa", "legacy"]


def test_update_repairs_a_broken_profile(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    store.add("corp", anchors=bundle(pki.other_root))
    (tmp_path / "corp" / "anchors.pem").write_text("damaged")
    [(name, problem)] = store.entries()
    assert name == "corp"
    assert isinstance(problem, ConfigError)
    fixed = bundle(pki.other_root)
    assert store.update("corp", fixed, expected_sha256=fixed.sha256).anchor_count == 1


def test_add_refuses_existing_bad_names_and_garbage(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    store.add("corp", anchors=bundle(pki.other_root))
    with pytest.raises(ConfigError, match="exists"):
        store.add("corp", anchors=bundle(pki.other_root))
    assert store.add("corp", anchors=bundle(pki.root), replace=True).development is True
    for bad in ("Corp", "../x", ".hidden", "", "a" * 65):
        with pytest.raises(ConfigError, match="not a trust profile name"):
            store.add(bad, anchors=bundle(pki.other_root))
    with pytest.raises(ConfigError, match="'junk'"):
        store.add("junk", anchors=Bundle(b"not a certificate", "junk.pem"))
    with pytest.raises(ConfigError, match="EKU"):
        store.add("eku", anchors=bundle(pki.other_root), allowed_ekus=("emailProtection",))
    with pytest.raises(ConfigError, match="needs"):
        store.add("empty")
    assert store.names() == ["corp"]


def test_remove(pki: Pki, tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    store.add("corp", anchors=bundle(pki.other_root))
    (tmp_path / "old.pem").write_bytes(pki.root.read_bytes())
    store.remove("corp")
    store.remove("old")
    assert store.names() == []
    with pytest.raises(ConfigError, match="no trust profile 'corp'"):
        store.remove("corp")


def test_fetch_bundle_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * 101)
    with pytest.raises(ConfigError, match="larger than 100 bytes"):
        fetch_bundle(str(big), max_bytes=100)
    with pytest.raises(ConfigError, match="https only"):
        fetch_bundle("http://example.com/list.pem")
    with pytest.raises(ConfigError, match="https only"):
        fetch_bundle("file:///etc/passwd")
    with pytest.raises(ConfigError, match="not a file"):
        fetch_bundle(str(tmp_path / "missing.pem"))
    assert normalise_sha256(" SHA256:" + "AB" * 32) == "ab" * 32
    with pytest.raises(ConfigError, match="64 hex"):
        normalise_sha256("abc")


def test_default_sources_are_the_c2pa_lists() -> None:
    assert DEFAULT_SOURCES["c2pa"].url.startswith("https://")
    assert DEFAULT_SOURCES["c2pa"].url.endswith("/C2PA-TRUST-LIST.pem")
    assert DEFAULT_SOURCES["c2pa-tsa"].url.endswith("/C2PA-TSA-TRUST-LIST.pem")
    assert DEFAULT_SOURCES["c2pa-tsa"].kind == "tsa"
    assert C2PA_CLAIM_SIGNING_EKU.dotted_string in DEFAULT_SOURCES["c2pa"].allowed_ekus


# --- engine trust settings -----------------------------------------------------------------------------


def test_engine_settings(pki: Pki) -> None:
    signer = profile_from_pem("test-root", pki.root.read_bytes(), source="r")
    other = profile_from_pem("corp", pki.other_root.read_bytes(), source="o")
    # A TSA profile listing corp's root too, as the C2PA trust list and TSA list share 16 roots.
    tsa = TrustProfile(
        "tsa",
        "",
        False,
        "t",
        "1" * 64,
        0,
        tsa_anchors_pem=other.anchors_pem,
        tsa_anchor_count=1,
    )
    ekus = TrustProfile("ekus", "", False, "e", "2" * 64, 0, allowed_ekus=("1.2.4", "1.2.3"))
    profiles = (other, signer, tsa)

    fresh = engine_trust_settings((*profiles, ekus), None)
    assert fresh == {"trust_config": "1.2.3\n1.2.4\n"}  # one OID per line; no anchors to sign
    assert engine_trust_settings(profiles, None) == {}

    expected = [
        {
            "trust_anchors": other.anchors_pem,
            "trust_kind": "manifest",
            "trust_uri": "hallmark-trust:shared/corp/tsa",
        },
        {
            "trust_anchors": signer.anchors_pem,
            "trust_kind": "manifest",
            "trust_uri": "hallmark-trust:signers/test-root",
        },
    ]
    # Every verifying context trusts every profile, each certificate once: the URI says whose it is.
    for anchors in (signer.anchors_pem, other.anchors_pem, "", other.anchors_pem + signer.anchors_pem):
        assert engine_trust_settings(profiles, anchors)["anchors"] == expected

    only_tsa = TrustProfile(
        "q", "", False, "t", "1" * 64, 0, tsa_anchors_pem=signer.anchors_pem, tsa_anchor_count=1
    )
    assert engine_trust_settings((only_tsa,), "")["anchors"] == [
        {"trust_anchors": signer.anchors_pem, "trust_kind": "tsa", "trust_uri": "hallmark-trust:tsa/q"}
    ]
    anonymous = engine_trust_settings((), signer.anchors_pem)
    assert anonymous == {"anchors": [{"trust_anchors": signer.anchors_pem, "trust_kind": "manifest"}]}


@pytest.mark.parametrize("name", ["c2pa", "hallmark-dev", "My Root (2026)", "ünï/c]ode"])
def test_trust_list_uri_round_trip(name: str) -> None:
    for signer, tsa in ((name, None), (None, name), (name, "c2pa-tsa"), ("c2pa", name)):
        uri = trust_list_uri(signer, tsa)
        assert parse_trust_list_uri(uri) == TrustListRef(signer, tsa)
        assert parse_trust_list_uri(f"signing certificate trusted, found in [{uri}] trust anchors") == (
            TrustListRef(signer, tsa)
        )
        assert parse_trust_list_uri(f"timestamp cert trusted: X, trust list: {uri}") == TrustListRef(
            signer, tsa
        )
    assert parse_trust_list_uri("found in [system_anchors] trust anchors") is None
    with pytest.raises(ValueError, match="signer profile"):
        trust_list_uri(None, None)


# --- the report: who trusted what --------------------------------------------------------------------


def _reading(
    *,
    success: tuple[tuple[str, str], ...] = (),
    informational: tuple[tuple[str, str], ...] = (),
    failure: tuple[tuple[str, str], ...] = (),
    trust_list: str | None = None,
    state: str = "Trusted",
    context: str | None = "test-root",
) -> RawReading:
    def codes(items: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
        return [{"code": code, "explanation": text, "url": "self#jumbf=/c2pa"} for code, text in items]

    results: dict[str, Any] = {
        "activeManifest": {
            "success": codes(success),
            "informational": codes(informational),
            "failure": codes(failure),
        }
    }
    if trust_list:
        results["trustListUri"] = trust_list
    manifest = {
        "signature_info": {
            "alg": "Es256",
            "issuer": "Org",
            "common_name": "Signer",
            "time": "2026-08-02T12:30:06+00:00",
        }
    }
    store = {"active_manifest": URN, "manifests": {URN: manifest}, "validation_results": results}
    return RawReading(kind="manifest", state=state, store=store, trust_profile=context)


PROFILES = (
    TrustProfile("c2pa", "", False, "c", "0" * 64, 30),
    TrustProfile("test-root", "", True, "t", "1" * 64, 1),
    TrustProfile("c2pa-tsa", "", False, "s", "2" * 64, 0, tsa_anchor_count=22),
)


def test_signer_profile_comes_from_the_engine_trust_list() -> None:
    uri = trust_list_uri("c2pa", None)
    reading = _reading(
        success=(
            ("signingCredential.trusted", f"signing certificate trusted, found in [{uri}] trust anchors"),
        ),
        trust_list=uri,
        context="test-root",
    )
    report = build_report(reading, "image/png", PROFILES)
    assert report.outcome is Outcome.TRUSTED
    assert report.signer is not None
    assert (report.signer.trusted, report.signer.trust_profile) == (True, "c2pa")
    assert report.development_trust is False
    assert "'c2pa' trust profile" in report.summary


def test_signer_under_a_root_shared_with_a_tsa_profile() -> None:
    uri = trust_list_uri("c2pa", "c2pa-tsa")
    reading = _reading(
        success=(
            ("signingCredential.trusted", f"signing certificate trusted, found in [{uri}] trust anchors"),
        ),
        trust_list=uri,
    )
    report = build_report(reading, "image/png", PROFILES)
    assert report.outcome is Outcome.TRUSTED
    assert report.signer is not None
    assert report.signer.trust_profile == "c2pa"


def test_signer_trusted_only_through_tsa_anchors_is_valid_untrusted() -> None:
    uri = trust_list_uri(None, "c2pa-tsa")
    reading = _reading(
        success=(
            ("signingCredential.trusted", f"signing certificate trusted, found in [{uri}] trust anchors"),
        ),
        trust_list=uri,
    )
    report = build_report(reading, "image/png", PROFILES)
    assert report.outcome is Outcome.VALID_UNTRUSTED
    assert report.signer is not None
    assert (report.signer.trusted, report.signer.trust_profile) == (False, None)
    assert "not on any trust list" in report.summary


def test_signer_uri_only_in_explanation_and_unknown_uri() -> None:
    uri = trust_list_uri("test-root", None)
    reading = _reading(
        success=(("signingCredential.trusted", f"found in [{uri}] trust anchors"),), context=None
    )
    report = build_report(reading, "image/png", PROFILES)
    assert report.signer is not None
    assert report.signer.trust_profile == "test-root"
    assert report.development_trust is True
    legacy = build_report(
        _reading(success=(("signingCredential.trusted", "found in [system_anchors]"),)), "image/png", PROFILES
    )
    assert legacy.signer is not None
    assert legacy.signer.trust_profile == "test-root"  # the context that trusted it


@pytest.mark.parametrize(
    ("explanation", "status", "profile"),
    [
        (
            f"timestamp cert trusted: TSA, trust list: {trust_list_uri(None, 'c2pa-tsa')}",
            TimestampStatus.TRUSTED,
            "c2pa-tsa",
        ),
        (
            f"timestamp cert trusted: TSA, trust list: {trust_list_uri('c2pa', 'c2pa-tsa')}",
            TimestampStatus.TRUSTED,
            "c2pa-tsa",
        ),
        (
            f"timestamp cert trusted: TSA, trust list: {trust_list_uri('test-root', None)}",
            TimestampStatus.TRUSTED,
            "test-root",
        ),
        # A list that is no trust profile's vouches for nothing Hallmark was configured to trust.
        ("timestamp cert trusted: TSA, trust list: system_anchors", TimestampStatus.UNANCHORED, None),
    ],
)
def test_timestamp_names_the_profile_that_trusted_it(
    explanation: str, status: TimestampStatus, profile: str | None
) -> None:
    reading = _reading(success=(("timeStamp.validated", "matched"), ("timeStamp.trusted", explanation)))
    report = build_report(reading, "image/png", PROFILES)
    assert report.timestamp.status is status
    assert report.timestamp.trust_profile == profile
    assert report.timestamp.time == "2026-08-02T12:30:06+00:00"


def test_untrusted_timestamp_names_no_profile() -> None:
    reading = _reading(informational=(("timeStamp.untrusted", "timestamp cert untrusted: TSA"),))
    report = build_report(reading, "image/png", PROFILES)
    assert report.timestamp.status is TimestampStatus.UNTRUSTED
    assert report.timestamp.trust_profile is None


@pytest.mark.parametrize(
    ("kw", "status", "outcome"),
    [
        (
            {"success": (("signingCredential.ocsp.notRevoked", "certificate not revoked"),)},
            RevocationStatus.GOOD,
            Outcome.TRUSTED,
        ),
        (
            {
                "failure": (("signingCredential.ocsp.revoked", "certificate revoked at: ..."),),
                "state": "Invalid",
            },
            RevocationStatus.REVOKED,
            Outcome.INVALID,
        ),
        (
            {"informational": (("signingCredential.ocsp.skipped", "OCSP fetching skipped"),)},
            RevocationStatus.NOT_CHECKED,
            Outcome.TRUSTED,
        ),
        (
            {"informational": (("signingCredential.ocsp.inaccessible", "signing cert not fetched"),)},
            RevocationStatus.NOT_CHECKED,
            Outcome.TRUSTED,
        ),
        ({}, RevocationStatus.NOT_CHECKED, Outcome.TRUSTED),
    ],
)
def test_revocation_from_engine_codes(kw: dict[str, Any], status: RevocationStatus, outcome: Outcome) -> None:
    report = build_report(_reading(**kw), "image/png", PROFILES)
    assert report.revocation is status
    assert report.outcome is outcome
    if status is RevocationStatus.REVOKED:
        assert "signingCredential.ocsp.revoked" in report.summary


# --- configuration -------------------------------------------------------------------------------------


def test_ocsp_responders_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HALLMARK_OCSP_RESPONDERS", " ocsp.example.com, 127.0.0.1:8080 ,,http://ocsp.ca.test:80"
    )
    assert Settings().ocsp_responders == ["ocsp.example.com", "127.0.0.1:8080", "http://ocsp.ca.test:80"]
    monkeypatch.setenv("HALLMARK_OCSP_RESPONDERS", "")
    assert Settings().ocsp_responders == []
    monkeypatch.delenv("HALLMARK_OCSP_RESPONDERS")
    assert Settings().ocsp_responders == []
    for bad in ("*", "http://ocsp.example.com/path", "ocsp example.com", "ftp://x"):
        with pytest.raises(ValueError, match="ocsp_responders"):
            Settings(ocsp_responders=[bad])
