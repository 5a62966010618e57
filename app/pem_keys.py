"""PEM key files on disk: find and read them, refuse a private key other users can read, and hand the bytes
to the core's `PemKeySigner.from_pem`."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from signing import KeyNotFoundError, KeyringError, PemKeySigner


@dataclass(frozen=True)
class CredentialFiles:
    chain: Path
    key: Path
    key_id: str = "default"
    passphrase: bytes | None = None

    def __repr__(self) -> str:  # the passphrase never reaches a log line
        return f"CredentialFiles(chain={self.chain!s}, key={self.key!s}, key_id={self.key_id!r})"


def load_pem_signer(files: CredentialFiles, *, algorithm: str | None = None) -> PemKeySigner:
    for path, what in ((files.chain, "certificate chain"), (files.key, "private key")):
        if not path.is_file():
            raise KeyNotFoundError(
                f"The {what} file {path} does not exist.",
                hint="Run `hallmark keys init --dev` or set the key paths.",
            )
    check_key_file_mode(files.key)
    return PemKeySigner.from_pem(
        files.key.read_bytes(),
        files.chain.read_bytes(),
        key_id=files.key_id,
        passphrase=files.passphrase,
        algorithm=algorithm,
        key_source=str(files.key),
        chain_source=str(files.chain),
    )


def check_key_file_mode(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyringError(
            f"The private key file {path} is readable by other users (mode {mode:o}).",
            hint=f"chmod 600 {path}",
        )
