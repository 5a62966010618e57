"""A throw-away SoftHSM2 token for tests: a real PKCS#11 module whose token lives in a temporary directory.

SoftHSM reads `SOFTHSM2_CONF` when the module is initialised (the first `pkcs11.lib()` in the process), so
`softhsm_token` sets it before that and, if the module was already initialised by an earlier token,
re-initialises it (open sessions of the earlier token die: close its signers first). On exit the previous
`SOFTHSM2_CONF` comes back. A missing SoftHSM fails the test with the install hint: it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
import pytest

from app.pkcs11 import Pkcs11Config

MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)
INSTALL_HINT = "SoftHSM2 is not installed ({missing}): run `make test-deps` (installs softhsm2)."


@dataclass(frozen=True)
class SoftHsmToken:
    module: Path
    label: str
    pin: str = field(repr=False)
    so_pin: str = field(repr=False)
    conf: Path

    def config(self, key_label: str, *, pin: str | None = None) -> Pkcs11Config:
        return Pkcs11Config(self.module, self.label, key_label, self.pin if pin is None else pin)


def softhsm_module() -> Path:
    """The SoftHSM2 PKCS#11 module; fails the test with the `make test-deps` hint when it is missing."""
    util = shutil.which("softhsm2-util")
    module = next((path for path in MODULE_CANDIDATES if path.is_file()), None)
    if util is None or module is None:
        missing = "softhsm2-util" if util is None else "libsofthsm2.so"
        pytest.fail(INSTALL_HINT.format(missing=missing), pytrace=False)
    return module


@contextmanager
def softhsm_token(
    directory: Path,
    label: str = "hallmark-test",
    *,
    pin: str = "246810",
    so_pin: str = "13579135",
) -> Iterator[SoftHsmToken]:
    """Initialise a fresh token in `directory` and point SoftHSM at it for the duration of the block."""
    module = softhsm_module()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n",
        encoding="utf-8",
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        result = subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            pytest.fail(f"softhsm2-util --init-token failed: {result.stderr or result.stdout}", pytrace=False)
        lib = pkcs11.lib(str(module))
        lib.reinitialize()  # (re)read SOFTHSM2_CONF: the module may have been initialised for another token
        yield SoftHsmToken(module=module, label=label, pin=pin, so_pin=so_pin, conf=conf)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
