"""The development PKI on disk (`keys init --dev`, the test PKI): the core issues it, this writes it."""

from __future__ import annotations

from pathlib import Path

from app.files import write_private
from signing import DevPki, issue_dev_pki


def create_dev_pki(
    ca_dir: Path,
    chain_path: Path,
    key_path: Path,
    *,
    provider: str = "Hallmark development signer",
    alg: str = "es256",
) -> DevPki[Path]:
    """Write a fresh development PKI (private keys owner-only, every file atomically)."""
    material = issue_dev_pki(provider=provider, alg=alg)
    out: DevPki[Path] = DevPki(
        root=ca_dir / "root-ca.pem",
        intermediate=ca_dir / "intermediate-ca.pem",
        intermediate_key=ca_dir / "intermediate-ca.key.pem",
        chain=chain_path,
        key=key_path,
    )
    write_private(out.root, material.root)
    write_private(out.intermediate, material.intermediate)
    write_private(out.intermediate_key, material.intermediate_key)
    write_private(out.key, material.key)
    write_private(out.chain, material.chain)
    return out
