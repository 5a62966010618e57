"""Trust profiles: named, pinned bundles of trust anchors, turned into engine settings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from signing.certs import is_development, load_chain
from signing.errors import ConfigError, HallmarkError


@dataclass(frozen=True)
class TrustProfile:
    name: str
    anchors_pem: str  # one or more PEM certificates
    development: bool  # anchors of the development PKI: never a production profile
    source: str
    sha256: str
    anchor_count: int


def profile_from_pem(name: str, pem: bytes, *, source: str) -> TrustProfile:
    try:
        certs = load_chain(pem, source=source)
    except HallmarkError as exc:
        raise ConfigError(f"Trust profile {name!r}: {exc.message}") from None
    return TrustProfile(
        name=name,
        # Re-serialised: published bundles interleave (non-ASCII) commentary with the certificates.
        anchors_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs),
        development=any(is_development(c) for c in certs),
        source=source,
        sha256=hashlib.sha256(pem).hexdigest(),
        anchor_count=len(certs),
    )


def load_trust_dir(directory: Path) -> tuple[TrustProfile, ...]:
    """Every `*.pem` file in `directory` is one profile, named by the file's stem, in name order."""
    if not directory.is_dir():
        return ()
    return tuple(
        profile_from_pem(path.stem, path.read_bytes(), source=str(path))
        for path in sorted(directory.glob("*.pem"))
    )
