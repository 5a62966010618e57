"""Modules, tokens and the shared login.

Two facts of PKCS#11 shape this module:

* python-pkcs11 calls `C_Initialize(NULL)`, which promises the module that the application will not call it
  from several threads at once (SoftHSM then turns its own mutexes off). Every call into a module therefore
  holds that module's lock. With the lock in place one long-lived session per token is the cheapest design:
  measured on SoftHSM 2.6, ~70 us per P-256 signature on a shared session versus ~240 us when each
  signature opens a session and finds the key again.
* Login is per application and per token, not per session, and closing the last session logs out. Signers
  on the same token therefore share one logged-in session (`Token`), counted by reference.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pkcs11
from pkcs11 import Mechanism
from pkcs11 import exceptions as p11

from app.pkcs11.config import Pkcs11Config
from app.pkcs11.schemes import MECHANISM_NAMES
from signing import KeyringError

# A session or login that went away (token re-plugged, network HSM restarted): reconnect once and retry.
RECONNECTABLE = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.UserNotLoggedIn,
    p11.ObjectHandleInvalid,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
)
_PIN_REFUSED = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange)


class Token:
    """One logged-in token: the session every signer on it shares, and the module lock."""

    def __init__(self, key: tuple[str, str], lib: Any, token: Any, lock: threading.RLock, pin: str):
        self.key = key  # (module path, token label)
        self.label = key[1]
        self.lib = lib
        self.token = token
        self.lock = lock
        self.refs = 0
        self.generation = 0
        self._pin_digest = _pin_digest(pin)
        self.session: Any = _login(token, pin, self.label)
        try:
            self.mechanisms: frozenset[int] = frozenset(int(m) for m in token.slot.get_mechanisms())
        except p11.PKCS11Error as exc:
            self.close()
            raise KeyringError(
                f"PKCS#11 token '{self.label}' did not list its mechanisms ({type(exc).__name__})."
            ) from None

    def pin_matches(self, pin: str) -> bool:
        return hmac.compare_digest(self._pin_digest, _pin_digest(pin))

    def reconnect(self, pin: str, seen_generation: int) -> None:
        """Open a fresh logged-in session unless another signer already did since `seen_generation`."""
        with self.lock:
            if self.generation != seen_generation:
                return
            with suppress(p11.PKCS11Error):  # it is gone already: that is why we are here
                self.session.close()
            self.session = _login(self.token, pin, self.label)
            self.generation += 1

    def close(self) -> None:
        with self.lock, suppress(p11.PKCS11Error):
            self.session.close()  # the last session: logs the token out


_REGISTRY_LOCK = threading.Lock()
_MODULE_LOCKS: dict[str, threading.RLock] = {}
_TOKENS: dict[tuple[str, str], Token] = {}
_PIN_SALT = secrets.token_bytes(32)
_FORKED_MODULES: set[str] = set()


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(_PIN_SALT + pin.encode("utf-8")).digest()


def _after_fork_in_child() -> None:
    """Sessions, logins and locks belong to the parent: a child starts over (PKCS#11 requires it)."""
    global _REGISTRY_LOCK  # noqa: PLW0603
    _REGISTRY_LOCK = threading.Lock()
    _FORKED_MODULES.update(_MODULE_LOCKS)
    _MODULE_LOCKS.clear()
    _TOKENS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _module_path(config: Pkcs11Config) -> str:
    if not config.module.is_file():
        raise KeyringError(
            f"The PKCS#11 module {config.module} does not exist.",
            hint="Install the token vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so) "
            "or fix the module path.",
        )
    return str(config.module)


def _load(path: str) -> Any:
    """The loaded module (caller holds `_REGISTRY_LOCK`)."""
    try:
        lib = pkcs11.lib(path)
        if path in _FORKED_MODULES:
            _FORKED_MODULES.discard(path)
            lib.reinitialize()
    except p11.PKCS11Error as exc:
        raise KeyringError(
            f"{path} could not be loaded as a PKCS#11 module.",
            hint="Point the module path at the vendor's PKCS#11 shared library (.so).",
            details={"reason": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__},
        ) from None
    return lib


def _login(token: Any, pin: str, label: str) -> Any:
    try:
        return token.open(user_pin=pin)
    except _PIN_REFUSED:
        raise KeyringError(
            f"PIN incorrect for PKCS#11 token '{label}'.",
            hint="Check the configured PIN file or environment variable. Tokens lock the PIN after a few "
            "failed attempts.",
        ) from None
    except p11.PinLocked:
        raise KeyringError(
            f"The user PIN of PKCS#11 token '{label}' is locked after too many wrong attempts.",
            hint="The token's security officer must unlock it (e.g. softhsm2-util / pkcs11-tool --init-pin).",
        ) from None
    except p11.PinExpired:
        raise KeyringError(f"The user PIN of PKCS#11 token '{label}' has expired.") from None
    except p11.UserPinNotInitialized:
        raise KeyringError(f"PKCS#11 token '{label}' has no user PIN yet.") from None
    except p11.UserAlreadyLoggedIn:
        raise KeyringError(
            f"PKCS#11 token '{label}' is already logged in by other code in this process.",
            hint="Use one Hallmark token configuration per process.",
        ) from None
    except p11.PKCS11Error as exc:
        raise KeyringError(f"PKCS#11 token '{label}' refused the login ({type(exc).__name__}).") from None


def acquire(config: Pkcs11Config) -> Token:
    path = _module_path(config)
    with _REGISTRY_LOCK:
        lib = _load(path)
        lock = _MODULE_LOCKS.setdefault(path, threading.RLock())
        key = (path, config.token_label)
        with lock:
            shared = _TOKENS.get(key)
            if shared is not None and shared.lib is not lib:  # the module was unloaded and loaded again
                del _TOKENS[key]
                shared = None
            if shared is None:
                try:
                    token = lib.get_token(token_label=config.token_label)
                except p11.NoSuchToken:
                    raise KeyringError(
                        f"No PKCS#11 token labelled '{config.token_label}' in {path}.",
                        hint="List the tokens (softhsm2-util --show-slots, pkcs11-tool --list-token-slots) "
                        "and fix the token label.",
                    ) from None
                except p11.MultipleTokensReturned:
                    raise KeyringError(
                        f"Several PKCS#11 tokens are labelled '{config.token_label}' in {path}.",
                        hint="Give each token a distinct label.",
                    ) from None
                except p11.PKCS11Error as exc:
                    raise KeyringError(
                        f"The PKCS#11 module {path} could not list its tokens ({type(exc).__name__})."
                    ) from None
                shared = Token(key, lib, token, lock, config.pin)
                _TOKENS[key] = shared
            elif not shared.pin_matches(config.pin):
                # The token is logged in with the right PIN already; a different one cannot be right.
                raise KeyringError(
                    f"PIN incorrect for PKCS#11 token '{config.token_label}'.",
                    hint="Check the configured PIN file or environment variable.",
                )
            shared.refs += 1
            return shared


def release(shared: Token) -> None:
    with _REGISTRY_LOCK, shared.lock:
        shared.refs -= 1
        if shared.refs == 0:
            if _TOKENS.get(shared.key) is shared:
                del _TOKENS[shared.key]
            shared.close()


def open_tokens() -> dict[tuple[str, str], int]:
    """The tokens this process holds logged in, (module path, token label) -> how many signers share each
    session. Empty once every signer was closed."""
    with _REGISTRY_LOCK:
        return {key: shared.refs for key, shared in _TOKENS.items()}


@contextmanager
def logged_in(config: Pkcs11Config) -> Iterator[Token]:
    shared = acquire(config)
    try:
        yield shared
    finally:
        release(shared)


@contextmanager
def token_errors(config: Pkcs11Config, doing: str) -> Iterator[None]:
    """Any PKCS#11 failure not handled closer to its cause becomes a KeyringError naming what we did."""
    try:
        yield
    except p11.PKCS11Error as exc:
        raise KeyringError(
            f"PKCS#11 token '{config.token_label}' failed while {doing} ({type(exc).__name__})."
        ) from None


def require_mechanism(shared: Token, mechanism: Mechanism, why: str) -> None:
    if int(mechanism) not in shared.mechanisms:
        name = MECHANISM_NAMES.get(mechanism, mechanism.name)
        raise KeyringError(
            f"PKCS#11 token '{shared.label}' does not offer {name}, which {why} needs.",
            hint="Use an algorithm the token supports (ES256 needs CKM_ECDSA).",
        )
