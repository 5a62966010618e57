"""Where a token key lives, and the token PIN (from a file or the environment the caller passes)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from signing import KeyringError


@dataclass(frozen=True)
class Pkcs11Config:
    """Where a token key lives. The PIN is kept out of `repr` (and so out of every log line)."""

    module: Path
    token_label: str
    key_label: str
    pin: str = field(repr=False)


def pin_from(file: Path | None, env_var: str | None, environ: Mapping[str, str]) -> str:
    """The token PIN from a file (owner-readable only; one trailing newline is dropped) or from `environ`.

    Exactly one source must be given. The core never reads `os.environ` itself: the caller passes it.
    """
    if file is not None and env_var is not None:
        raise KeyringError(
            "Both a PIN file and a PIN environment variable are configured.", hint="Configure one of them."
        )
    if file is not None:
        if not file.is_file():
            raise KeyringError(f"The PIN file {file} does not exist.")
        mode = stat.S_IMODE(file.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            raise KeyringError(
                f"The PIN file {file} is readable by other users (mode {mode:o}).",
                hint=f"chmod 600 {file}",
            )
        try:
            pin = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise KeyringError(f"The PIN file {file} could not be read as UTF-8 text.") from None
        pin = pin.removesuffix("\n").removesuffix("\r")
        source = f"The PIN file {file}"
    elif env_var is not None:
        if env_var not in environ:
            raise KeyringError(f"The environment variable {env_var} (the token PIN) is not set.")
        pin = environ[env_var]
        source = f"The environment variable {env_var}"
    else:
        raise KeyringError(
            "No PIN is configured for the PKCS#11 token.",
            hint="Give a PIN file or a PIN environment variable.",
        )
    if not pin:
        raise KeyringError(f"{source} is empty.", hint="Put the token's user PIN there.")
    return pin
