"""The development PKI on disk (`keys init --dev`, the test PKI): the core issues it, this writes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.files import write_private, write_public
from signing import issue_dev_pki


@dataclass(frozen=True)
class DevPki:
    root: Path  # the trust anchor (certificate only)
    intermediate: Path
    intermediate_key: Path
    chain: Path  # leaf + intermediate, leaf first
    key: Path  # the leaf's private key, PKCS#8, 0600


def create_dev_pki(
    ca_dir: Path,
    chain_path: Path,
    key_path: Path,
    *,
    provider: str = "Hallmark development signer",
    alg: str = "es256",
) -> DevPki:
    """Write a fresh development PKI (private keys owner-only, every file atomically)."""
    material = issue_dev_pki(provider=provider, alg=alg)
    out = DevPki(
        root=ca_dir / "root-ca.pem",
        intermediate=ca_dir / "intermediate-ca.pem",
        intermediate_key=ca_dir / "intermediate-ca.key.pem",
        chain=chain_path,
        key=key_path,
    )
    write_public(out.root, material.root)
    write_public(out.intermediate, material.intermediate)
    write_private(out.intermediate_key, material.intermediate_key)
    write_private(out.key, material.key)
    write_public(out.chain, material.chain)
    return out
