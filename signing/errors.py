"""One error tree for the whole project.

Every error Hallmark raises on purpose is a `HallmarkError`. Subtrees follow the fault domain so that the
HTTP layer maps them to a status from one table and the CLI to an exit code. `diagnostics()` is the only
thing that may leave the process (logs, problem+json, CLI output): it never carries key material or raw
engine messages that could echo secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HallmarkError(Exception):
    """Root of every deliberate Hallmark error."""

    #: short machine-readable slug, used as the problem type suffix
    code = "hallmark-error"
    #: a title a person understands, the same for every instance of the class
    title = "Hallmark error"

    def __init__(self, message: str, *, hint: str | None = None, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})

    def diagnostics(self) -> dict[str, Any]:
        """A secret-free description: safe to log, print and return to a client."""
        out: dict[str, Any] = {"code": self.code, "title": self.title, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


# --- configuration -------------------------------------------------------------------------------------


class ConfigError(HallmarkError):
    code = "configuration"
    title = "Invalid configuration"


# --- keys and certificates ------------------------------------------------------------------------------


class KeyringError(HallmarkError):
    code = "keyring"
    title = "Signing key problem"


class KeyNotFoundError(KeyringError):
    code = "key-not-found"
    title = "Signing key not found"


class CertificateProfileError(KeyringError):
    code = "certificate-profile"
    title = "Certificate does not fit the C2PA claim-signer profile"


# --- the asset a client sent ----------------------------------------------------------------------------


class AssetError(HallmarkError):
    code = "asset"
    title = "Unusable file"


class UnsupportedMediaError(AssetError):
    code = "unsupported-media-type"
    title = "Unsupported media type"


class AssetTooLargeError(AssetError):
    code = "asset-too-large"
    title = "File too large"


class MalformedAssetError(AssetError):
    code = "malformed-asset"
    title = "Malformed file"


class SidecarUnavailableError(AssetError):
    code = "sidecar-unavailable"
    title = "Detached manifest not available for this file"


class IncompleteAssetError(MalformedAssetError):
    """The file is cut short or damaged: a structure runs past its end, or its content does not decode."""

    code = "incomplete-asset"
    title = "Incomplete or damaged file"

    @classmethod
    def because(cls, format_name: str, media_type: str, problem: str) -> IncompleteAssetError:
        return cls(
            f"The {format_name} file is incomplete or damaged: {problem}. Nothing was signed.",
            hint="Check that the upload or download was not cut short, then send the whole file.",
            details={"media_type": media_type, "problem": problem},
        )


class DamagedCredentialsError(MalformedAssetError):
    """The credentials the input already carries cannot be kept as its parent ingredient: the input's fault,
    never the operator's key (the engine's own error types cannot say which, so signing probes)."""

    code = "damaged-credentials"
    title = "Damaged content credentials"


class EmptyAssetError(MalformedAssetError):
    code = "empty-asset"
    title = "Empty file"


class AssetTooComplexError(MalformedAssetError):
    """The container structure (box, chunk or segment count, nesting depth) is past the server's limits:
    refused by a linear pre-scan before any decoder sees the file."""

    code = "asset-too-complex"
    title = "File structure too complex"


class IsolationLimitError(AssetError):
    """Decoding the file crashed its isolated worker process or hit the worker's memory or CPU-time limit:
    the worker was killed and replaced, the service is unaffected."""

    code = "too-complex-to-verify"
    title = "Too complex or unreadable to verify within this server's limits"


class UnmarkableImageError(AssetError):
    """The image is too small or too flat to hide a watermark (it can still be signed without one)."""

    code = "unmarkable-image"
    title = "Image cannot carry a watermark"


# --- audio/video fingerprinting (ffmpeg, fpcalc) ---------------------------------------------------------


class MediaFingerprintError(HallmarkError):
    """No ISCC audio/video code for this file: the tool could not decode it, found nothing to fingerprint
    (silence, a flat picture, no video stream), hit a resource limit, or printed something unusable.
    Signing goes on without the code; this class reaches a client only from a call that requires one."""

    code = "media-fingerprint-failed"
    title = "Audio/video fingerprint could not be computed"


class ImplausibleMediaError(MediaFingerprintError):
    """The file declares stream parameters no real media has (a WAV at 2 GHz): no tool is run on it."""

    code = "media-implausible"
    title = "Audio parameters out of range"


class MediaToolMissingError(MediaFingerprintError):
    code = "media-tool-missing"
    title = "Audio/video fingerprint tool not installed"


class MediaToolTimeoutError(MediaFingerprintError):
    code = "media-tool-timeout"
    title = "Audio/video fingerprint tool timed out"


# --- what the caller asked for --------------------------------------------------------------------------


class InvalidMetadataError(HallmarkError):
    code = "invalid-metadata"
    title = "Invalid generation metadata"


class InvalidQueryError(HallmarkError):
    """A soft-binding query (the resolution API) the service cannot parse: a malformed value or image."""

    code = "invalid-query"
    title = "Invalid query"


class UnsupportedAlgorithmError(InvalidQueryError):
    code = "unsupported-algorithm"
    title = "Soft-binding algorithm not supported"


class ManifestNotFoundError(HallmarkError):
    """The manifest repository holds no offerable manifest with the requested id."""

    code = "manifest-not-found"
    title = "Manifest not found"


# --- signing --------------------------------------------------------------------------------------------


class SigningError(HallmarkError):
    code = "signing-failed"
    title = "Signing failed"


class TimestampAuthorityError(SigningError):
    code = "timestamp-authority-unavailable"
    title = "Timestamp authority unavailable"


class LedgerError(SigningError):
    code = "ledger-unavailable"
    title = "Audit ledger unavailable"


class StorageError(HallmarkError):
    """The service's database could not store something other than a signature (feedback, the manifest
    repository): the request itself was fine."""

    code = "storage-unavailable"
    title = "Database unavailable"


class CapacityError(HallmarkError):
    code = "over-capacity"
    title = "Server busy"


class DecodeDeadlineError(HallmarkError):
    """Decoding the file in an isolated worker took longer than the wall-clock deadline: the worker was
    killed and replaced. Retrying later may succeed on a less busy server; the same file will likely not."""

    code = "decode-deadline"
    title = "The file took too long to process"


class ClientGoneError(HallmarkError):
    """The client closed its connection while its file was being processed: the work was stopped. Nobody
    reads the answer; it is logged and counted."""

    code = "client-closed-request"
    title = "Client closed the request"


# --- idempotent retries and per-API-key policies (app/idempotency.py, app/policies.py) ---------------------


class IdempotencyKeyError(HallmarkError):
    """The `Idempotency-Key` header is not a usable key (empty, too long, not printable ASCII)."""

    code = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


class IdempotencyMismatchError(HallmarkError):
    """The key was used before for a different request (other fields, other file, other options)."""

    code = "idempotency-key-reused"
    title = "Idempotency-Key used for a different request"


class IdempotencyInProgressError(HallmarkError):
    """A request with this key is still being processed (details: retry_after_seconds)."""

    code = "idempotency-key-in-progress"
    title = "A request with this Idempotency-Key is in progress"


class IdempotentResultTooLargeError(AssetTooLargeError):
    """The signed result is larger than the service keeps for replaying an idempotent request."""

    code = "idempotent-result-too-large"
    title = "Result too large to keep for an Idempotency-Key"


class PolicyRefusedError(HallmarkError):
    """The API key's policy does not allow this request (a digital source type or a media format)."""

    code = "api-key-policy"
    title = "Not allowed for this API key"


class RateLimitedError(HallmarkError):
    """The API key used up its request rate (details: retry_after_seconds)."""

    code = "api-key-rate-limited"
    title = "Too many requests for this API key"


class QuotaExceededError(RateLimitedError):
    """The API key used up its monthly quota of signatures (details: retry_after_seconds, until the next
    calendar month, UTC)."""

    code = "api-key-quota-exceeded"
    title = "Monthly quota of this API key used up"


# --- verification ---------------------------------------------------------------------------------------


class VerificationError(HallmarkError):
    """Raised only by `require_trusted`: inspecting an asset reports outcomes as data."""

    code = "not-trusted"
    title = "Content credentials are not trusted"


# --- fetching a file by URL for verification ----------------------------------------------------------


class UrlFetchError(HallmarkError):
    """The remote server could not deliver the file (unreachable, TLS, HTTP error, too many redirects)."""

    code = "url-fetch-failed"
    title = "The URL could not be fetched"


class UrlFetchDisabledError(UrlFetchError):
    """The operator has not switched verify-by-URL on: the service makes no request for a URL."""

    code = "url-fetch-disabled"
    title = "Verify by URL is switched off"


class UrlRefusedError(UrlFetchError):
    """The URL, or a redirect it leads to, names a destination the service will not contact."""

    code = "url-refused"
    title = "URL not allowed"


class UrlFetchTimeoutError(UrlFetchError):
    code = "url-fetch-timeout"
    title = "The URL took too long to fetch"
