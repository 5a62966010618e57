"""The committed test-PKI script: a root CA, an intermediate and claim-signing leaves, generated fresh.

Run it by hand (`python tests/pki.py OUT_DIR`) to look at the certificates; the test suite calls
`make_test_pki` once per session. Leaves are valid for years so no test depends on today's date, except
those that ask for an expired or not-yet-valid one on purpose.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from app.dev_pki import create_dev_pki
from app.files import write_public
from signing.devpki import dev_name, issue_ca, new_key, pem


@dataclass(frozen=True)
class TestPki:
    root: Path
    chain: Path
    key: Path
    other_root: Path  # an unrelated root: anchors that must NOT trust our chain
    untrusted_chain: Path  # a chain under an unrelated root
    untrusted_key: Path


def make_test_pki(out: Path) -> TestPki:
    dev = create_dev_pki(
        out / "ca", out / "signing-chain.pem", out / "signing-key.pem", provider="Hallmark Test Signer"
    )
    other_key = new_key("es256")
    other_root = issue_ca(dev_name("Unrelated Test Root", organization="Unrelated Test CA"), other_key)
    write_public(out / "other-root.pem", pem(other_root))
    stranger = create_dev_pki(
        out / "stranger-ca", out / "stranger-chain.pem", out / "stranger-key.pem", provider="Stranger"
    )
    return TestPki(
        root=dev.root,
        chain=dev.chain,
        key=dev.key,
        other_root=out / "other-root.pem",
        untrusted_chain=stranger.chain,
        untrusted_key=stranger.key,
    )


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "test-pki")
    pki = make_test_pki(target)
    print(pki)
