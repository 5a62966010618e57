"""trust.py and certs.py: trust profiles from PEM bundles, the development marker."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509

from app.trust import load_trust_dir
from signing.certs import DEV_ORGANIZATION, common_name, is_development, organization
from signing.errors import ConfigError
from signing.trust import profile_from_pem
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*


def test_dev_root_is_development(pki: Pki) -> None:
    data = pki.root.read_bytes()
    profile = profile_from_pem("dev", data, source=str(pki.root))
    assert profile.development is True
    assert profile.anchor_count == 1
    assert profile.sha256 == hashlib.sha256(data).hexdigest()
    assert profile.anchors_pem == data.decode()
    assert (profile.name, profile.source) == ("dev", str(pki.root))
    root = x509.load_pem_x509_certificate(data)
    assert organization(root) == DEV_ORGANIZATION
    assert common_name(root) == "Hallmark Development Root CA"


def test_unrelated_root_is_not_development(pki: Pki) -> None:
    profile = profile_from_pem("other", pki.other_root.read_bytes(), source="other")
    assert profile.development is False
    assert profile.anchor_count == 1
    assert not is_development(x509.load_pem_x509_certificate(pki.other_root.read_bytes()))


def test_leaf_issued_by_dev_pki_is_development(pki: Pki) -> None:
    leaf = x509.load_pem_x509_certificates(pki.chain.read_bytes())[0]
    assert is_development(leaf)


def test_bundle_counts_and_flags(pki: Pki) -> None:
    bundle = b"# production anchors\n" + pki.other_root.read_bytes() + b"\n" + pki.root.read_bytes()
    profile = profile_from_pem("mixed", bundle, source="mixed")
    assert profile.anchor_count == 2
    assert profile.development is True  # one development anchor taints the profile
    assert profile.sha256 == hashlib.sha256(bundle).hexdigest()
    assert profile.sha256 != profile_from_pem("o", pki.other_root.read_bytes(), source="o").sha256


@pytest.mark.parametrize(
    "garbage",
    [b"", b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
)
def test_garbage_is_config_error(garbage: bytes) -> None:
    with pytest.raises(ConfigError) as caught:
        profile_from_pem("broken", garbage, source="broken.pem")
    assert "'broken'" in caught.value.message


def test_non_ascii_commentary_is_not_an_unhandled_error(pki: Pki) -> None:
    bundle = "Subject\tCN=Société Générale Root\n".encode() + pki.other_root.read_bytes()
    profile = profile_from_pem("intl", bundle, source="intl.pem")
    assert profile.anchor_count == 1
    assert profile.anchors_pem.isascii()


def test_load_trust_dir(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "zeta.pem").write_bytes(pki.other_root.read_bytes())
    (tmp_path / "alpha.pem").write_bytes(pki.root.read_bytes())
    (tmp_path / "middle.pem").write_bytes(pki.root.read_bytes() + pki.other_root.read_bytes())
    (tmp_path / "notes.txt").write_text("not a profile")
    (tmp_path / "backup.pem.bak").write_bytes(pki.root.read_bytes())
    profiles = load_trust_dir(tmp_path)
    assert [p.name for p in profiles] == ["alpha", "middle", "zeta"]
    assert [p.anchor_count for p in profiles] == [1, 2, 1]
    assert [p.development for p in profiles] == [True, True, False]
    assert profiles[0].source == str(tmp_path / "alpha.pem")


def test_load_trust_dir_missing_or_empty(tmp_path: Path) -> None:
    assert load_trust_dir(tmp_path / "missing") == ()
    assert load_trust_dir(tmp_path) == ()


def test_load_trust_dir_bad_file_is_config_error(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "good.pem").write_bytes(pki.root.read_bytes())
    (tmp_path / "bad.pem").write_text("garbage")
    with pytest.raises(ConfigError, match="'bad'"):
        load_trust_dir(tmp_path)
