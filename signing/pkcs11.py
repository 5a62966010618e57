"""Keys in hardware: a PKCS#11 token behind the `KeySigner` port.

The private key is generated inside the token, marked sensitive and non-extractable, and never leaves it:
Hallmark hashes the claim on the host and asks the token to sign the digest (SoftHSM 2.6 and most HSMs
offer plain CKM_ECDSA and CKM_RSA_PKCS_PSS; CKM_EDDSA signs the message itself).

Two facts of PKCS#11 shape this module:

* python-pkcs11 calls `C_Initialize(NULL)`, which promises the module that the application will not call it
  from several threads at once (SoftHSM then turns its own mutexes off). Every call into a module therefore
  holds that module's lock. With the lock in place one long-lived session per token is the cheapest design:
  measured on SoftHSM 2.6, ~70 us per P-256 signature on a shared session versus ~240 us when each
  signature opens a session and finds the key again.
* Login is per application and per token, not per session, and closing the last session logs out. Signers
  on the same token therefore share one logged-in session (`_Token`), counted by reference.

A PIN never appears in a message, a `repr` or an exception chain.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto import algos, core, pem  # type: ignore[import-untyped]
from asn1crypto import csr as a_csr
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import SignMixin
from pkcs11.util.ec import encode_ecdsa_signature

from signing.certs import load_chain, sha256_fingerprint
from signing.errors import CertificateProfileError, KeyNotFoundError, KeyringError

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

C2PA_CLAIM_SIGNING_EKU = "1.3.6.1.4.1.62558.2.1"
EMAIL_PROTECTION_EKU = "1.3.6.1.5.5.7.3.4"
GENERATED_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
RSA_GENERATED_BITS = 3072

_ED25519_OID = "1.3.101.112"
_CURVES: dict[str, tuple[str, ec.EllipticCurve, str]] = {  # OID -> (algorithm, curve, asn1crypto name)
    "1.2.840.10045.3.1.7": ("es256", ec.SECP256R1(), "secp256r1"),
    "1.3.132.0.34": ("es384", ec.SECP384R1(), "secp384r1"),
    "1.3.132.0.35": ("es512", ec.SECP521R1(), "secp521r1"),
}
_ALG_CURVE = {alg: oid for oid, (alg, _, _) in _CURVES.items()}
_HASHES = {"256": "sha256", "384": "sha384", "512": "sha512"}
_P11_HASH = {"sha256": Mechanism.SHA256, "sha384": Mechanism.SHA384, "sha512": Mechanism.SHA512}
_P11_MGF = {"sha256": MGF.SHA256, "sha384": MGF.SHA384, "sha512": MGF.SHA512}
_CRYPTO_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# A session or login that went away (token re-plugged, network HSM restarted): reconnect once and retry.
_RECONNECTABLE = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.UserNotLoggedIn,
    p11.ObjectHandleInvalid,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
)
_PIN_REFUSED = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange)


# --- configuration ---------------------------------------------------------------------------------------


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


# --- signature schemes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scheme:
    """How one C2PA algorithm maps onto a token mechanism."""

    algorithm: str
    mechanism: Mechanism
    digest: str | None  # hashed on the host before the token signs; None: the token signs the message

    @property
    def mechanism_param(self) -> tuple[Mechanism, MGF, int] | None:
        if self.mechanism is not Mechanism.RSA_PKCS_PSS or self.digest is None:
            return None
        return (_P11_HASH[self.digest], _P11_MGF[self.digest], hashlib.new(self.digest).digest_size)

    def payload(self, data: bytes) -> bytes:
        return hashlib.new(self.digest, data).digest() if self.digest else data


def _scheme(algorithm: str) -> _Scheme:
    if algorithm.startswith("es"):
        return _Scheme(algorithm, Mechanism.ECDSA, _HASHES[algorithm[2:]])
    if algorithm.startswith("ps"):
        return _Scheme(algorithm, Mechanism.RSA_PKCS_PSS, _HASHES[algorithm[2:]])
    return _Scheme(algorithm, Mechanism.EDDSA, None)


_MECHANISM_NAMES = {
    Mechanism.ECDSA: "CKM_ECDSA",
    Mechanism.RSA_PKCS_PSS: "CKM_RSA_PKCS_PSS",
    Mechanism.EDDSA: "CKM_EDDSA",
    Mechanism.EC_KEY_PAIR_GEN: "CKM_EC_KEY_PAIR_GEN",
    Mechanism.RSA_PKCS_KEY_PAIR_GEN: "CKM_RSA_PKCS_KEY_PAIR_GEN",
    Mechanism.EC_EDWARDS_KEY_PAIR_GEN: "CKM_EC_EDWARDS_KEY_PAIR_GEN",
}


# --- modules, tokens and the shared login ----------------------------------------------------------------


class _Token:
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
_TOKENS: dict[tuple[str, str], _Token] = {}
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


def _acquire(config: Pkcs11Config) -> _Token:
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
                shared = _Token(key, lib, token, lock, config.pin)
                _TOKENS[key] = shared
            elif not shared.pin_matches(config.pin):
                # The token is logged in with the right PIN already; a different one cannot be right.
                raise KeyringError(
                    f"PIN incorrect for PKCS#11 token '{config.token_label}'.",
                    hint="Check the configured PIN file or environment variable.",
                )
            shared.refs += 1
            return shared


def _release(shared: _Token) -> None:
    with _REGISTRY_LOCK, shared.lock:
        shared.refs -= 1
        if shared.refs == 0:
            if _TOKENS.get(shared.key) is shared:
                del _TOKENS[shared.key]
            shared.close()


@contextmanager
def _logged_in(config: Pkcs11Config) -> Iterator[_Token]:
    shared = _acquire(config)
    try:
        yield shared
    finally:
        _release(shared)


@contextmanager
def _token_errors(config: Pkcs11Config, doing: str) -> Iterator[None]:
    """Any PKCS#11 failure not handled closer to its cause becomes a KeyringError naming what we did."""
    try:
        yield
    except p11.PKCS11Error as exc:
        raise KeyringError(
            f"PKCS#11 token '{config.token_label}' failed while {doing} ({type(exc).__name__})."
        ) from None


def _require(shared: _Token, mechanism: Mechanism, why: str) -> None:
    if int(mechanism) not in shared.mechanisms:
        name = _MECHANISM_NAMES.get(mechanism, mechanism.name)
        raise KeyringError(
            f"PKCS#11 token '{shared.label}' does not offer {name}, which {why} needs.",
            hint="Use an algorithm the token supports (ES256 needs CKM_ECDSA).",
        )


# --- keys on the token -----------------------------------------------------------------------------------


def _find(session: Any, object_class: ObjectClass, config: Pkcs11Config) -> Any:
    what = "private key" if object_class is ObjectClass.PRIVATE_KEY else "public key"
    try:
        return session.get_key(object_class=object_class, label=config.key_label)
    except p11.NoSuchKey:
        raise KeyNotFoundError(
            f"No {what} labelled '{config.key_label}' in PKCS#11 token '{config.token_label}'.",
            hint="Check the key label (pkcs11-tool --list-objects) or generate the key first.",
        ) from None
    except p11.MultipleObjectsReturned:
        raise KeyringError(
            f"Several {what}s are labelled '{config.key_label}' in PKCS#11 token '{config.token_label}'.",
            hint="Give each key a distinct label.",
        ) from None


def _curve_oid(params: bytes) -> str:
    """The curve of CKA_EC_PARAMS: a named-curve OID, or a PrintableString such as 'edwards25519'."""
    try:
        value = core.load(params, strict=True)
    except ValueError:
        return "unknown"
    if isinstance(value, core.ObjectIdentifier):
        return str(value.dotted)
    if isinstance(value, core.PrintableString) and str(value.native) == "edwards25519":
        return _ED25519_OID
    return "unknown"


def _algorithm_of(key: Any, config: Pkcs11Config, requested: str | None) -> str:
    key_type = key[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        oid = _curve_oid(bytes(key[Attribute.EC_PARAMS]))
        if oid not in _CURVES:
            raise KeyringError(
                f"The token key '{config.key_label}' is on an elliptic curve C2PA cannot sign with ({oid}).",
                hint="Use P-256, P-384 or P-521.",
            )
        return _CURVES[oid][0]
    if key_type == KeyType.RSA:
        bits = len(bytes(key[Attribute.MODULUS]).lstrip(b"\0")) * 8
        if bits < 2048:
            raise KeyringError(
                f"The token key '{config.key_label}' is RSA-{bits}: too weak.", hint="Use 2048+."
            )
        return requested if requested in ("ps256", "ps384", "ps512") else "ps256"
    if key_type == KeyType.EC_EDWARDS and _curve_oid(bytes(key[Attribute.EC_PARAMS])) == _ED25519_OID:
        return "ed25519"
    raise KeyringError(
        f"The token key '{config.key_label}' is of a type C2PA cannot sign with.",
        hint="Use an EC (P-256/384/521), RSA (PSS) or Ed25519 key.",
    )


def _public_key(obj: Any) -> PublicKey:
    """A token public-key object as a cryptography public key."""
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(bytes(obj[Attribute.MODULUS]), "big")
        exponent = int.from_bytes(bytes(obj[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    oid = _curve_oid(bytes(obj[Attribute.EC_PARAMS]))
    point = _unwrap_point(bytes(obj[Attribute.EC_POINT]))
    try:
        if key_type == KeyType.EC_EDWARDS and oid == _ED25519_OID:
            return ed25519.Ed25519PublicKey.from_public_bytes(point)
        if key_type == KeyType.EC and oid in _CURVES:
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[oid][1], point)
    except ValueError:
        raise KeyringError("The token returned a public key that is not a valid point.") from None
    raise KeyringError("The token public key is of a type C2PA cannot sign with.")


def _unwrap_point(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point; a few modules store the bare point."""
    try:
        inner = bytes(core.OctetString.load(value, strict=True).native)
    except ValueError:
        return value
    # A bare uncompressed point also starts with 0x04: unwrap only when the result looks like a point.
    looks_like_point = len(inner) == 32 or (len(inner) % 2 == 1 and inner[:1] == b"\x04")
    return inner if looks_like_point else value


def _raw_sign(key: Any, scheme: _Scheme, data: bytes) -> bytes:
    signature: bytes = key.sign(
        scheme.payload(data), mechanism=scheme.mechanism, mechanism_param=scheme.mechanism_param
    )
    return signature


def _verify(public: object, scheme: _Scheme, signature: bytes, data: bytes) -> bool:
    """Does `signature` (as the token returns it) verify under `public`?"""
    try:
        if scheme.mechanism is Mechanism.ECDSA and isinstance(public, ec.EllipticCurvePublicKey):
            assert scheme.digest is not None
            algorithm = ec.ECDSA(_CRYPTO_HASH[scheme.digest]())
            public.verify(encode_ecdsa_signature(signature), data, algorithm)
            return True
        if scheme.mechanism is Mechanism.RSA_PKCS_PSS and isinstance(public, rsa.RSAPublicKey):
            assert scheme.digest is not None
            digest = _CRYPTO_HASH[scheme.digest]()
            public.verify(signature, data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
            return True
        if scheme.mechanism is Mechanism.EDDSA and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
            return True
    except InvalidSignature:
        pass
    return False


class Pkcs11KeySigner:
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
        chain = load_chain(chain_pem, source="the certificate chain")
        self._config = config
        self._chain_pem = chain_pem
        self._certificate = chain[0]
        self._key_id = key_id
        self._pid = os.getpid()
        self._closed = False
        self._shared = _acquire(config)
        try:
            with _token_errors(config, f"opening key '{config.key_label}'"), self._shared.lock:
                self._generation = self._shared.generation
                self._key = self._find_key()
                self._scheme = _scheme(_algorithm_of(self._key, config, algorithm))
                _require(self._shared, self._scheme.mechanism, self._scheme.algorithm.upper() + " signing")
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
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> str:
        return self._scheme.algorithm

    @property
    def chain_pem(self) -> bytes:
        return self._chain_pem

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def certificate_sha256(self) -> str:
        return sha256_fingerprint(self._certificate)

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
                    return _raw_sign(self._key, self._scheme, data)
            except _RECONNECTABLE as exc:
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
                _release(self._shared)

    # --- internals ------------------------------------------------------------------------------------

    def _find_key(self) -> Any:
        key = _find(self._shared.session, ObjectClass.PRIVATE_KEY, self._config)
        if not isinstance(key, SignMixin):
            raise KeyringError(
                f"The token key '{self._config.key_label}' is not allowed to sign (CKA_SIGN is false)."
            )
        return key

    def _check_certificate(self) -> None:
        """The token's private key must belong to the leaf: sign a probe and verify it with the leaf."""
        probe = b"hallmark pkcs11 key/certificate match probe " + secrets.token_bytes(16)
        if not _verify(self._certificate.public_key(), self._scheme, self.sign(probe), probe):
            raise CertificateProfileError(
                f"The token key '{self._config.key_label}' does not belong to the leaf certificate "
                f"({self._certificate.subject.rfc4514_string()}).",
                hint="The first certificate in the chain must be the one issued for this token key.",
            )


# --- key generation and certificate requests -------------------------------------------------------------


def generate_pkcs11_key(config: Pkcs11Config, alg: str = "es256") -> PublicKey:
    """Generate a key pair inside the token; return its public key. The private key never leaves the token.

    The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and not CKA_EXTRACTABLE, may only sign, and
    carries `config.key_label` (refused if an object with that label exists).
    """
    if alg not in GENERATED_ALGORITHMS:
        raise KeyringError(
            f"Cannot generate a token key for algorithm {alg!r}.",
            hint="Use one of " + ", ".join(GENERATED_ALGORITHMS) + ".",
        )
    scheme = _scheme(alg)
    key_id = secrets.token_bytes(16)  # CKA_ID pairs the public and the private object
    private_template = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    public_template: dict[Attribute, Any] = {Attribute.TOKEN: True}
    if alg.startswith("es"):
        key_type, generator, length = KeyType.EC, Mechanism.EC_KEY_PAIR_GEN, None
        public_template[Attribute.EC_PARAMS] = a_keys.ECDomainParameters(
            name="named", value=_CURVES[_ALG_CURVE[alg]][2]
        ).dump()
    elif alg.startswith("ps"):
        key_type, generator, length = KeyType.RSA, Mechanism.RSA_PKCS_KEY_PAIR_GEN, RSA_GENERATED_BITS
    else:
        key_type, generator, length = KeyType.EC_EDWARDS, Mechanism.EC_EDWARDS_KEY_PAIR_GEN, None
        public_template[Attribute.EC_PARAMS] = core.ObjectIdentifier(_ED25519_OID).dump()
    with _logged_in(config) as shared, shared.lock, _token_errors(config, "generating a key"):
        _require(shared, generator, f"generating an {alg.upper()} key")
        _require(shared, scheme.mechanism, f"{alg.upper()} signing")
        session = shared.token.open(rw=True)  # inherits the token-wide login
        try:
            if next(session.get_objects({Attribute.LABEL: config.key_label}), None) is not None:
                raise KeyringError(
                    f"PKCS#11 token '{config.token_label}' already holds an object labelled "
                    f"'{config.key_label}'.",
                    hint="Choose a new key label; Hallmark never overwrites a token key.",
                )
            public, _private = session.generate_keypair(
                key_type,
                length,
                id=key_id,
                label=config.key_label,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                mechanism=generator,
                public_template=public_template,
                private_template=private_template,
            )
            return _public_key(public)
        finally:
            session.close()


_CSR_SIGNATURE_ALGORITHMS = {
    "es256": {"algorithm": "sha256_ecdsa"},
    "es384": {"algorithm": "sha384_ecdsa"},
    "es512": {"algorithm": "sha512_ecdsa"},
    "ed25519": {"algorithm": "ed25519"},
}


def _csr_signature_algorithm(scheme: _Scheme) -> Any:
    if scheme.algorithm in _CSR_SIGNATURE_ALGORITHMS:
        return algos.SignedDigestAlgorithm(_CSR_SIGNATURE_ALGORITHMS[scheme.algorithm])
    assert scheme.digest is not None
    return algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": {
                "hash_algorithm": {"algorithm": scheme.digest},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": scheme.digest}},
                "salt_length": hashlib.new(scheme.digest).digest_size,
            },
        }
    )


def pkcs11_csr(config: Pkcs11Config, subject: x509.Name, alg: str | None = None) -> bytes:
    """A PEM certificate signing request for the token key, signed by the token.

    It asks for the C2PA claim-signer profile: KeyUsage digitalSignature (critical) and ExtendedKeyUsage
    emailProtection + C2PA claim signing. `alg` (default: what the key implies) picks the RSA-PSS hash; it
    must fit the key.
    """
    with _logged_in(config) as shared, shared.lock, _token_errors(config, "signing a certificate request"):
        private = _find(shared.session, ObjectClass.PRIVATE_KEY, config)
        public_object = _find(shared.session, ObjectClass.PUBLIC_KEY, config)
        scheme = _scheme(_algorithm_of(private, config, alg))
        if alg is not None and alg != scheme.algorithm:
            raise KeyringError(
                f"The token key '{config.key_label}' cannot sign {alg.upper()}; it signs "
                f"{scheme.algorithm.upper()}."
            )
        _require(shared, scheme.mechanism, f"{scheme.algorithm.upper()} signing")
        public = _public_key(public_object)
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        extensions = a_x509.Extensions(
            [
                {"extn_id": "key_usage", "critical": True, "extn_value": {"digital_signature"}},
                {
                    "extn_id": "extended_key_usage",
                    "critical": False,
                    "extn_value": [EMAIL_PROTECTION_EKU, C2PA_CLAIM_SIGNING_EKU],
                },
            ]
        )
        info = a_csr.CertificationRequestInfo(
            {
                "version": "v1",
                "subject": a_x509.Name.load(subject.public_bytes()),
                "subject_pk_info": a_keys.PublicKeyInfo.load(spki),
                "attributes": [{"type": "extension_request", "values": [extensions]}],
            }
        )
        to_sign = bytes(info.dump())
        signature = _raw_sign(private, scheme, to_sign)
    if not _verify(public, scheme, signature, to_sign):
        raise CertificateProfileError(
            f"The public and the private object labelled '{config.key_label}' are not one key pair."
        )
    if scheme.mechanism is Mechanism.ECDSA:
        signature = encode_ecdsa_signature(signature)  # X.509 wants DER ECDSA-Sig-Value, not r||s
    request = a_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": _csr_signature_algorithm(scheme),
            "signature": signature,
        }
    )
    pem_bytes = bytes(pem.armor("CERTIFICATE REQUEST", request.dump()))
    loaded = x509.load_pem_x509_csr(pem_bytes)
    if not loaded.is_signature_valid:
        raise KeyringError("The certificate request the token signed does not verify.")
    return pem_bytes
