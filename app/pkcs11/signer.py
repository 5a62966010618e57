"""`Pkcs11KeySigner`: a private key in a PKCS#11 token behind the core's `KeySigner` port."""

from __future__ import annotations

import os
import secrets
from typing import Any

from pkcs11 import ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import SignMixin

from app.pkcs11.config import Pkcs11Config
from app.pkcs11.objects import algorithm_of, find_key_object
from app.pkcs11.schemes import raw_sign, scheme_for, verifies
from app.pkcs11.tokens import RECONNECTABLE, acquire, release, require_mechanism, token_errors
from signing import (
    CertificateProfileError,
    CertifiedSigner,
    KeyringError,
)


class Pkcs11KeySigner(CertifiedSigner):
    """A private key in a PKCS#11 token, with its certificate chain (leaf first) as PEM.

    Thread-safe: signatures are serialised on the module's lock (see the module docstring). Call `close()`
    (or use it as a context manager) when the key is no longer used; the last signer on a token logs out.
    Make it in the process that signs: a forked child must make its own.
    """

    def __init__(
        self,
        config: Pkcs11Config,
        chain_pem: bytes,
        *,
        key_id: str = "default",
        algorithm: str | None = None,
    ):
        super().__init__(key_id, chain_pem)
        self._config = config
        self._pid = os.getpid()
        self._closed = False
        self._shared = acquire(config)
        try:
            with token_errors(config, f"opening key '{config.key_label}'"), self._shared.lock:
                self._generation = self._shared.generation
                self._key = self._find_key()
                self._scheme = scheme_for(algorithm_of(self._key, config, algorithm))
                require_mechanism(
                    self._shared, self._scheme.mechanism, self._scheme.algorithm.upper() + " signing"
                )
            self._check_certificate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return (
            f"Pkcs11KeySigner(key_id={self._key_id!r}, algorithm={self.algorithm!r}, "
            f"token={self._config.token_label!r}, key_label={self._config.key_label!r})"
        )

    def __enter__(self) -> Pkcs11KeySigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the KeySigner port ---------------------------------------------------------------------------

    @property
    def algorithm(self) -> str:
        return self._scheme.algorithm

    @property
    def token_label(self) -> str:
        return self._config.token_label

    @property
    def key_label(self) -> str:
        return self._config.key_label

    def sign(self, data: bytes) -> bytes:
        """Sign `data`: ECDSA as raw r||s (the COSE form), RSA-PSS and Ed25519 as the token returns them."""
        if self._closed:
            raise KeyringError(f"The token key '{self._config.key_label}' was closed.")
        if os.getpid() != self._pid:
            raise KeyringError(
                "A PKCS#11 signer cannot be used in a forked process.",
                hint="Create the signer in the worker process that signs.",
            )
        for attempt in (1, 2):
            try:
                with self._shared.lock:
                    if self._generation != self._shared.generation:
                        self._generation = self._shared.generation
                        self._key = self._find_key()
                    return raw_sign(self._key, self._scheme, data)
            except RECONNECTABLE as exc:
                if attempt == 2:
                    raise KeyringError(
                        f"PKCS#11 token '{self._config.token_label}' is not reachable ({type(exc).__name__})."
                    ) from None
                self._shared.reconnect(self._config.pin, self._generation)
            except p11.PKCS11Error as exc:
                raise KeyringError(
                    f"PKCS#11 token '{self._config.token_label}' refused to sign with key "
                    f"'{self._config.key_label}' ({type(exc).__name__})."
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if not self._closed and hasattr(self, "_shared"):
            self._closed = True
            if os.getpid() == self._pid:
                release(self._shared)

    # --- internals ------------------------------------------------------------------------------------

    def _find_key(self) -> Any:
        key = find_key_object(self._shared.session, ObjectClass.PRIVATE_KEY, self._config)
        if not isinstance(key, SignMixin):
            raise KeyringError(
                f"The token key '{self._config.key_label}' is not allowed to sign (CKA_SIGN is false)."
            )
        return key

    def _check_certificate(self) -> None:
        """The token's private key must belong to the leaf: sign a probe and verify it with the leaf."""
        probe = b"hallmark pkcs11 key/certificate match probe " + secrets.token_bytes(16)
        if not verifies(self._certificate.public_key(), self._scheme, self.sign(probe), probe):
            raise CertificateProfileError(
                f"The token key '{self._config.key_label}' does not belong to the leaf certificate "
                f"({self._certificate.subject.rfc4514_string()}).",
                hint="The first certificate in the chain must be the one issued for this token key.",
            )
