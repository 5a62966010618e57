"""keys.example/ shows what a keys directory looks like, and never holds private key material."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "keys.example"
PEM_BEGIN = b"-----BEGIN "
PRIVATE_KEY_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def files() -> list[Path]:
    return sorted(p for p in EXAMPLE.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def example() -> Path:
    assert EXAMPLE.is_dir(), "keys.example/ is missing"
    return EXAMPLE


def test_has_a_readme(example: Path) -> None:
    readme = example / "README.md"
    assert readme.is_file(), "keys.example/README.md is missing"
    assert readme.read_text(encoding="utf-8").strip(), "keys.example/README.md is empty"


def test_holds_no_private_key_block(example: Path) -> None:
    offenders = [str(p.relative_to(REPO)) for p in files() if PRIVATE_KEY_BLOCK.search(p.read_bytes())]
    assert offenders == [], f"private key material in {offenders}"


def test_no_private_key_text_anywhere(example: Path) -> None:
    """Stricter than the block check, on purpose: `grep -r 'PRIVATE KEY' keys.example` must come up empty, so
    a reviewer or a secret scanner never has to tell prose from key material. Describe keys in other words."""
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in files()
        for n, line in enumerate(p.read_bytes().splitlines(), start=1)
        if b"PRIVATE KEY" in line
    ]
    assert offenders == [], f"'PRIVATE KEY' appears in keys.example/ at {offenders}"


def test_every_pem_is_certificates_only(example: Path) -> None:
    pems = [p for p in files() if p.suffix == ".pem"]
    for path in pems:
        data = path.read_bytes()
        blocks = data.count(PEM_BEGIN)
        certificate_blocks = data.count(b"-----BEGIN CERTIFICATE-----")
        assert blocks > 0, f"{path.name} holds no PEM block"
        assert blocks == certificate_blocks, f"{path.name} holds PEM blocks that are not certificates"
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            pytest.fail(f"{path.name} does not parse as certificates: {exc}")
        assert len(certificates) == blocks, path.name
