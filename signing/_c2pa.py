"""The only module that talks to the c2pa engine.

It builds Contexts (one per trust profile, made in the process that uses them: contexts do not survive a
fork), Signers and per-call Builders/Readers, and turns every `C2paError` into the project's error tree or
into data. Nothing here decides provenance semantics; it reports what the engine said.
"""

from __future__ import annotations

import io
import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import IO, Any

import c2pa

from signing.certs import sha256_fingerprint
from signing.errors import (
    DamagedCredentialsError,
    HallmarkError,
    MalformedAssetError,
    SigningError,
    TimestampAuthorityError,
    UnsupportedMediaError,
)
from signing.keys import KeySigner
from signing.reading import RawReading
from signing.tiny_png import tiny_png
from signing.trust import TrustProfile, engine_trust_settings

ENGINE_VERSION: str = c2pa.sdk_version()
BINDING_VERSION: str = str(c2pa.__version__)

_ALGS = {
    "es256": c2pa.C2paSigningAlg.ES256,
    "es384": c2pa.C2paSigningAlg.ES384,
    "es512": c2pa.C2paSigningAlg.ES512,
    "ps256": c2pa.C2paSigningAlg.PS256,
    "ps384": c2pa.C2paSigningAlg.PS384,
    "ps512": c2pa.C2paSigningAlg.PS512,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}
# The URL is data shown to the reader, never what decides the class of an error.
_REMOTE_URL = re.compile(r"(https?://\S+)")
# Engine errors are classified by the binding's `C2paError` subclass only, never by message text. The
# binding maps the native "Remote:" prefix to no subclass: an untyped `C2paError` that carries a URL is
# that remote reference (the only untyped native error seen on the whole interop corpus).
_INPUT_ERRORS = (c2pa.C2paError.Io, c2pa.C2paError.Other, c2pa.C2paError.Decoding, c2pa.C2paError.Encoding)
_MANIFEST_ERRORS = (
    c2pa.C2paError.Verify,
    c2pa.C2paError.Json,
    c2pa.C2paError.Manifest,
    c2pa.C2paError.Assertion,
    c2pa.C2paError.AssertionNotFound,
    c2pa.C2paError.ResourceNotFound,
)
_PROBE_DEFINITION: dict[str, Any] = {
    "claim_generator_info": [{"name": "Hallmark signing probe", "version": "0"}],
    "assertions": [
        {
            "label": "c2pa.actions.v2",
            "data": {
                "actions": [
                    {
                        "action": "c2pa.created",
                        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                        "trainedAlgorithmicMedia",
                    }
                ]
            },
        }
    ],
}


@dataclass(frozen=True)
class EngineConfig:
    trust: tuple[TrustProfile, ...] = ()
    thumbnails: bool = False
    backing_store_threshold_mb: int = 1
    # OCSP responders (`host:port`, or `scheme://host:port`) the engine may ask about revocation while
    # verifying. Empty: revocation is not checked and verification makes no network request at all.
    ocsp_responders: tuple[str, ...] = ()


def _settings(config: EngineConfig, anchors: str | None) -> dict[str, Any]:
    # OCSP only where something is verified against trust (not in a fresh signing context), and only
    # towards the allow-listed responders: the engine takes the URL from the certificate's AIA.
    ocsp = bool(config.ocsp_responders) and anchors is not None
    settings: dict[str, Any] = {
        # Verification never touches the network: no remote manifests (SSRF), no hosts allowed, no OCSP
        # unless responders are allow-listed.
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": ocsp, "verify_timestamp_trust": True},
        "core": {
            "allowed_network_hosts": list(config.ocsp_responders) if ocsp else [],
            "backing_store_memory_threshold_in_mb": config.backing_store_threshold_mb,
        },
        "builder": {
            # Conformance (spec 2.4): the actions assertion must be a created assertion.
            "created_assertion_labels": ["c2pa.actions", "c2pa.actions.v2"],
            "thumbnail": {"enabled": config.thumbnails},
        },
    }
    trust = engine_trust_settings(config.trust, anchors)
    if trust:
        settings["trust"] = trust
    return settings


def _context(config: EngineConfig, anchors: str | None) -> Any:
    try:
        return c2pa.Context.from_dict(_settings(config, anchors))
    except c2pa.C2paError as exc:
        raise HallmarkError(
            "The C2PA engine refused its configuration.", details={"engine": _short(exc)}
        ) from None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


class NativeSigner:
    """A c2pa Signer bound to one `KeySigner`. Reusable; one per key per process."""

    def __init__(self, key: KeySigner, tsa_url: str | None = None):
        alg = _ALGS.get(key.algorithm)
        if alg is None:
            raise SigningError(f"Signing algorithm {key.algorithm!r} is not supported by the engine.")
        self.key = key
        self.tsa_url = tsa_url
        # The engine swallows an exception raised in the callback ("COSE signature invalid"): keep it,
        # per thread (the callback runs on the signing thread, in its context), so the real cause can be
        # reported.
        self._failure: ContextVar[Exception | None] = ContextVar(f"signer-failure-{id(self)}", default=None)

        def sign(data: bytes) -> bytes:
            try:
                return key.sign(data)
            except Exception as exc:
                self._failure.set(exc)
                raise

        try:
            self._signer = c2pa.Signer.from_callback(sign, alg, key.chain_pem.decode("ascii"), tsa_url)
        except c2pa.C2paError as exc:
            raise SigningError(
                "The engine refused the signing certificate chain.", details={"engine": _short(exc)}
            ) from None

        self._plain: NativeSigner | None = None

    @cached_property
    def certificate_sha256(self) -> str:
        """SHA-256 of the leaf certificate's DER, hex: what every sign records (its ledger row, its intent).
        Computed once per signer (one per key per process), not once per sign."""
        return sha256_fingerprint(self.key.certificate)

    @property
    def handle(self) -> Any:
        return self._signer

    def untimestamped(self) -> NativeSigner:
        """The same key without a TSA: what the failure probes sign with (they never contact the TSA)."""
        if self.tsa_url is None:
            return self
        if self._plain is None:
            self._plain = NativeSigner(self.key)
        return self._plain

    def take_failure(self) -> Exception | None:
        exc = self._failure.get()
        self._failure.set(None)
        return exc


class Engine:
    """Per-process engine state: signing contexts and one verifying context holding every trust profile's
    anchors, each tagged with its profile (the report attributes trust from the tag the engine quotes)."""

    def __init__(self, config: EngineConfig):
        self.config = config
        # Any non-None value asks for every profile's anchors (see trust.engine_trust_settings).
        anchors = "".join(p.anchors_pem for p in config.trust) if config.trust else None
        # Edits embed the parent's validation results, which must reflect our trust; a fresh file has no
        # parent, and trust anchors cost its verify-after-sign ~0.5 ms for nothing.
        self._edit_context = _context(config, anchors)
        self._fresh_context = _context(config, None) if anchors is not None else self._edit_context
        self._verify_context = self._edit_context if anchors is not None else _context(config, None)

    # --- signing -----------------------------------------------------------------------------------

    def sign(
        self,
        definition: dict[str, Any],
        signer: NativeSigner,
        mime: str,
        source: IO[bytes],
        dest: IO[bytes],
        *,
        parent: dict[str, Any] | None,
        sidecar: bool,
        parent_source: IO[bytes] | None = None,
    ) -> bytes:
        """Sign `source` into `dest`; returns the manifest store bytes. The parent ingredient is read from
        `parent_source` (default: `source`): a watermarked asset no longer holds the parent's manifest."""
        try:
            return self._sign_once(
                definition,
                signer,
                mime,
                source,
                dest,
                parent=parent,
                sidecar=sidecar,
                parent_source=parent_source,
            )
        except c2pa.C2paError as exc:
            raise self._sign_failure(
                exc, definition, signer, mime, parent_source or source, parent, sidecar
            ) from None

    def _sign_once(
        self,
        definition: dict[str, Any],
        signer: NativeSigner,
        mime: str,
        source: IO[bytes],
        dest: IO[bytes],
        *,
        parent: dict[str, Any] | None,
        sidecar: bool,
        parent_source: IO[bytes] | None = None,
    ) -> bytes:
        context = self._fresh_context if parent is None else self._edit_context
        builder = c2pa.Builder(definition, context=context)
        if sidecar:
            builder.set_no_embed()
        if parent is not None:
            ingredient = parent_source or source
            ingredient.seek(0)
            builder.add_ingredient(parent, mime, ingredient)
        source.seek(0)
        data: bytes = builder.sign(signer.handle, mime, source, dest)
        return data

    def _probe(
        self,
        definition: dict[str, Any],
        signer: NativeSigner,
        mime: str,
        source: IO[bytes],
        parent: dict[str, Any] | None,
        sidecar: bool,
    ) -> c2pa.C2paError | None:
        """Sign once more, output discarded, to see which part of a failed sign is at fault."""
        try:
            self._sign_once(definition, signer, mime, source, io.BytesIO(), parent=parent, sidecar=sidecar)
        except c2pa.C2paError as exc:
            return exc
        return None

    def _sign_failure(
        self,
        exc: c2pa.C2paError,
        definition: dict[str, Any],
        signer: NativeSigner,
        mime: str,
        source: IO[bytes],
        parent: dict[str, Any] | None,
        sidecar: bool,
    ) -> HallmarkError:
        """The engine's error types cannot tell a damaged parent, a failed TSA and a bad key apart (all three
        can raise `Signature`), so each suspect is ruled out by signing again without it. Only failures
        pay for the probes; their output is discarded and never leaves the process."""
        own = _callback_failure(signer)
        if own is not None or isinstance(exc, c2pa.C2paError.NotSupported):
            return own or _classify(exc, has_parent=False)
        plain = signer.untimestamped()
        if plain is not signer:
            retry = self._probe(definition, plain, mime, source, parent, sidecar)
            if retry is None:
                return TimestampAuthorityError(
                    "The timestamp authority did not answer in time.", details={"engine": _short(exc)}
                )
            exc = retry
        if parent is None:
            return _callback_failure(plain) or _classify(exc, has_parent=False)
        # With a parent: can this key sign a clean file at all? If so, the parent is what failed.
        clean = self._probe(_PROBE_DEFINITION, plain, "image/png", io.BytesIO(tiny_png()), None, False)
        if clean is not None:
            return _callback_failure(plain) or _classify(clean, has_parent=False)
        return _classify(exc, has_parent=True)

    # --- reading -----------------------------------------------------------------------------------

    def read(self, mime: str, stream: IO[bytes], manifest_data: bytes | None = None) -> RawReading:
        """Read and validate once against every trust profile."""
        return self._read_once(mime, stream, manifest_data, self._verify_context)

    @staticmethod
    def _read_once(mime: str, stream: IO[bytes], manifest_data: bytes | None, context: Any) -> RawReading:
        stream.seek(0)
        try:
            with c2pa.Reader(mime, stream, manifest_data, context=context) as reader:
                return RawReading(
                    kind="manifest",
                    state=reader.get_validation_state(),
                    store=json.loads(reader.json()),
                    crjson=json.loads(reader.crjson()),
                )
        except c2pa.C2paError.ManifestNotFound:
            return RawReading(kind="absent")
        except c2pa.C2paError.NotSupported:
            raise UnsupportedMediaError("The C2PA engine does not support this file's format.") from None
        except c2pa.C2paError as exc:
            message = _short(exc)
            url = _REMOTE_URL.search(message)
            if isinstance(exc, c2pa.C2paError.RemoteManifest) or (type(exc) is c2pa.C2paError and url):
                return RawReading(kind="remote", remote_url=url.group(1) if url else None)
            if isinstance(exc, _INPUT_ERRORS):
                raise MalformedAssetError(
                    "The file, or the content credentials in it, could not be parsed as the media type its "
                    "bytes announce.",
                    details={"engine": message},
                ) from None
            return RawReading(kind="error", error=message)
        finally:
            stream.seek(0)


def _callback_failure(signer: NativeSigner) -> HallmarkError | None:
    cause = signer.take_failure()
    if isinstance(cause, HallmarkError):
        return cause  # e.g. a token that went away: the key's own error (503), not a bad signature
    if cause is not None:
        return SigningError("The signing key failed to sign.", details={"cause": type(cause).__name__})
    return None


def _classify(exc: c2pa.C2paError, *, has_parent: bool) -> HallmarkError:
    """By the binding's error subclass only. `has_parent` means a probe proved the key signs a clean file and
    no TSA was involved: whatever failed is the credentials the input already carries."""
    message = _short(exc)
    if has_parent:
        return DamagedCredentialsError(
            "The content credentials already in your file are damaged, so Hallmark cannot keep them as "
            "its parent ingredient (Hallmark never strips incoming credentials). Nothing was signed.",
            hint="Verify the file to see what failed; sign the original asset instead.",
            details={"engine": message},
        )
    if isinstance(exc, c2pa.C2paError.NotSupported):
        return UnsupportedMediaError("The C2PA engine cannot sign this file's format.")
    if isinstance(exc, _INPUT_ERRORS):
        return MalformedAssetError(
            "The file could not be parsed as the media type its bytes announce.", details={"engine": message}
        )
    if isinstance(exc, c2pa.C2paError.Signature):
        return SigningError(
            "The engine refused the signing credential.",
            hint="Run `hallmark keys list` and check the certificate profile (EKU, key usage, validity).",
            details={"engine": message},
        )
    if isinstance(exc, _MANIFEST_ERRORS):
        # The engine refused our manifest definition: our fault, not the client's file.
        return SigningError("The engine refused the manifest Hallmark built.", details={"engine": message})
    return SigningError("The engine could not sign this file.", details={"engine": message})
