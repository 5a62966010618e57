"""Hallmark's signing core: pure provenance logic. The adapters in app/ import only these names."""

import importlib
from typing import TYPE_CHECKING

from signing import keyring as keyring_rules
from signing._c2pa import BINDING_VERSION, ENGINE_VERSION, Engine, EngineConfig, NativeSigner
from signing.certs import DEV_ORGANIZATION, is_development, load_chain, public_key_sha256, sha256_fingerprint
from signing.completeness import DEFAULT_MAX_PIXELS as DEFAULT_MAX_IMAGE_PIXELS
from signing.csr import build_csr
from signing.devpki import DevPki, dev_name, issue_dev_pki, issue_leaf, key_pem, new_key
from signing.devpki import pem as certificate_pem
from signing.doctor import DoctorReport, Finding, diagnose
from signing.doctor import graded as graded_doctor_report
from signing.doctor import render as render_doctor_report
from signing.errors import (
    AssetError,
    AssetTooLargeError,
    CapacityError,
    CertificateProfileError,
    ConfigError,
    DamagedCredentialsError,
    EmptyAssetError,
    HallmarkError,
    IncompleteAssetError,
    InvalidMetadataError,
    KeyNotFoundError,
    KeyringError,
    LedgerError,
    MalformedAssetError,
    SidecarUnavailableError,
    SigningError,
    StorageError,
    TimestampAuthorityError,
    UnmarkableImageError,
    UnsupportedMediaError,
    UrlFetchDisabledError,
    UrlFetchError,
    UrlFetchTimeoutError,
    UrlRefusedError,
    VerificationError,
)
from signing.hashing import sha256_stream
from signing.keyring import KeyEntry, KeyEvent, Keyring, KeyState
from signing.keys import (
    CertifiedSigner,
    KeySigner,
    PemKeySigner,
    algorithm_for_public_key,
    check_validity,
)
from signing.manifest import ClaimGenerator, validate_generation
from signing.media import SUPPORTED as SUPPORTED_MEDIA
from signing.media import sniff
from signing.models import (
    ActionRecord,
    AiDeclaration,
    AnchorList,
    Codes,
    GenerationInfo,
    Ingredient,
    Integrity,
    MediaType,
    Outcome,
    OutputMode,
    RemoteManifest,
    RevocationStatus,
    SignedAsset,
    SignerInfo,
    StatusCode,
    TimestampInfo,
    TimestampStatus,
    TrainingMining,
    TrainingMiningPreference,
    VerificationReport,
)
from signing.oids import C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU, EMAIL_PROTECTION_EKU
from signing.ports import Breaker, Clock, Ledger, LedgerEntry, SystemClock
from signing.selftest import self_test
from signing.sign import SignContext, Timestamping, sign_asset
from signing.timestamp import BreakerRules, BreakerState, TimestampGuard, TimestampOutcome, TimestampPolicy
from signing.trust import ANCHORS_FILE as TRUST_ANCHORS_FILE
from signing.trust import MAX_PROFILE_JSON as TRUST_PROFILE_MAX_BYTES
from signing.trust import PROFILE_FILE as TRUST_PROFILE_FILE
from signing.trust import PROFILE_SCHEMA as TRUST_PROFILE_SCHEMA
from signing.trust import TSA_ANCHORS_FILE as TRUST_TSA_ANCHORS_FILE
from signing.trust import TrustProfile, profile_from_bundle, profile_from_pem, valid_eku
from signing.verify import inspect_asset, require_trusted
from signing.vocabulary import (
    DEFAULT_ALLOWED_SOURCE_TYPES,
    DIGITAL_SOURCE_TYPES,
    TRAINED_ALGORITHMIC_MEDIA,
    expand_source_type,
)

# Soft bindings (watermark, fingerprints, the repository port) pull in numpy, scipy, faiss and iscc-core:
# about half a second that every CLI call would pay. They load on first use instead (PEP 562).
if TYPE_CHECKING:
    from signing.softbinding.binding_assertions import (
        FINGERPRINT_ASSERTION,
        SOFT_BINDING,
        DeclaredBindings,
        declared_bindings,
        iscc_soft_binding,
        soft_binding_assertions,
    )
    from signing.softbinding.fingerprint import (
        ISCC_ALG,
        ISCC_BITS,
        ISCC_MAX_DISTANCE,
        PDQ_BITS,
        PDQ_MAX_DISTANCE,
        PDQ_MIN_QUALITY,
        ImageFingerprints,
        PdqHash,
        hamming,
        image_fingerprints,
        iscc_body,
        iscc_code,
        iscc_image_code,
        pdq_hash,
    )
    from signing.softbinding.payload import ID_BITS as WATERMARK_ID_BITS
    from signing.softbinding.payload import new_payload_id
    from signing.softbinding.port import Pixels, WatermarkDetection, WatermarkEngine, WatermarkKey
    from signing.softbinding.repository import (
        EntryCheck,
        EntryFault,
        FingerprintMatch,
        ManifestRepository,
        RepositoryEntry,
        check_entry,
        digest_matches,
        entry_digest,
        fingerprint_match,
        match_rank,
    )
    from signing.softbinding.reverify import check_stored_entry
    from signing.softbinding.spread_spectrum import ALGORITHM as WATERMARK_ALGORITHM
    from signing.softbinding.spread_spectrum import FALSE_POSITIVE_TARGET as WATERMARK_FALSE_POSITIVE_TARGET
    from signing.softbinding.spread_spectrum import SpreadSpectrumWatermark

_LAZY: dict[str, tuple[str, str]] = {
    "DeclaredBindings": ("signing.softbinding.binding_assertions", "DeclaredBindings"),
    "EntryCheck": ("signing.softbinding.repository", "EntryCheck"),
    "EntryFault": ("signing.softbinding.repository", "EntryFault"),
    "FINGERPRINT_ASSERTION": ("signing.softbinding.binding_assertions", "FINGERPRINT_ASSERTION"),
    "FingerprintMatch": ("signing.softbinding.repository", "FingerprintMatch"),
    "ISCC_ALG": ("signing.softbinding.fingerprint", "ISCC_ALG"),
    "ISCC_BITS": ("signing.softbinding.fingerprint", "ISCC_BITS"),
    "ISCC_MAX_DISTANCE": ("signing.softbinding.fingerprint", "ISCC_MAX_DISTANCE"),
    "ImageFingerprints": ("signing.softbinding.fingerprint", "ImageFingerprints"),
    "ManifestRepository": ("signing.softbinding.repository", "ManifestRepository"),
    "PDQ_BITS": ("signing.softbinding.fingerprint", "PDQ_BITS"),
    "PDQ_MAX_DISTANCE": ("signing.softbinding.fingerprint", "PDQ_MAX_DISTANCE"),
    "PDQ_MIN_QUALITY": ("signing.softbinding.fingerprint", "PDQ_MIN_QUALITY"),
    "PdqHash": ("signing.softbinding.fingerprint", "PdqHash"),
    "Pixels": ("signing.softbinding.port", "Pixels"),
    "RepositoryEntry": ("signing.softbinding.repository", "RepositoryEntry"),
    "SOFT_BINDING": ("signing.softbinding.binding_assertions", "SOFT_BINDING"),
    "SpreadSpectrumWatermark": ("signing.softbinding.spread_spectrum", "SpreadSpectrumWatermark"),
    "WATERMARK_ALGORITHM": ("signing.softbinding.spread_spectrum", "ALGORITHM"),
    "WATERMARK_FALSE_POSITIVE_TARGET": ("signing.softbinding.spread_spectrum", "FALSE_POSITIVE_TARGET"),
    "WATERMARK_ID_BITS": ("signing.softbinding.payload", "ID_BITS"),
    "WatermarkDetection": ("signing.softbinding.port", "WatermarkDetection"),
    "WatermarkEngine": ("signing.softbinding.port", "WatermarkEngine"),
    "WatermarkKey": ("signing.softbinding.port", "WatermarkKey"),
    "check_entry": ("signing.softbinding.repository", "check_entry"),
    "check_stored_entry": ("signing.softbinding.reverify", "check_stored_entry"),
    "declared_bindings": ("signing.softbinding.binding_assertions", "declared_bindings"),
    "digest_matches": ("signing.softbinding.repository", "digest_matches"),
    "entry_digest": ("signing.softbinding.repository", "entry_digest"),
    "fingerprint_match": ("signing.softbinding.repository", "fingerprint_match"),
    "hamming": ("signing.softbinding.fingerprint", "hamming"),
    "image_fingerprints": ("signing.softbinding.fingerprint", "image_fingerprints"),
    "iscc_body": ("signing.softbinding.fingerprint", "iscc_body"),
    "iscc_code": ("signing.softbinding.fingerprint", "iscc_code"),
    "iscc_image_code": ("signing.softbinding.fingerprint", "iscc_image_code"),
    "iscc_soft_binding": ("signing.softbinding.binding_assertions", "iscc_soft_binding"),
    "match_rank": ("signing.softbinding.repository", "match_rank"),
    "new_payload_id": ("signing.softbinding.payload", "new_payload_id"),
    "pdq_hash": ("signing.softbinding.fingerprint", "pdq_hash"),
    "soft_binding_assertions": ("signing.softbinding.binding_assertions", "soft_binding_assertions"),
}


def __getattr__(name: str) -> object:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'signing' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


__all__ = [
    "BINDING_VERSION",
    "C2PA_CLAIM_SIGNING_EKU",
    "DEFAULT_ALLOWED_SOURCE_TYPES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEV_ORGANIZATION",
    "DIGITAL_SOURCE_TYPES",
    "DOCUMENT_SIGNING_EKU",
    "EMAIL_PROTECTION_EKU",
    "ENGINE_VERSION",
    "FINGERPRINT_ASSERTION",
    "ISCC_ALG",
    "ISCC_BITS",
    "ISCC_MAX_DISTANCE",
    "PDQ_BITS",
    "PDQ_MAX_DISTANCE",
    "PDQ_MIN_QUALITY",
    "SOFT_BINDING",
    "SUPPORTED_MEDIA",
    "TRAINED_ALGORITHMIC_MEDIA",
    "TRUST_ANCHORS_FILE",
    "TRUST_PROFILE_FILE",
    "TRUST_PROFILE_MAX_BYTES",
    "TRUST_PROFILE_SCHEMA",
    "TRUST_TSA_ANCHORS_FILE",
    "WATERMARK_ALGORITHM",
    "WATERMARK_FALSE_POSITIVE_TARGET",
    "WATERMARK_ID_BITS",
    "ActionRecord",
    "AiDeclaration",
    "AnchorList",
    "AssetError",
    "AssetTooLargeError",
    "Breaker",
    "BreakerRules",
    "BreakerState",
    "CapacityError",
    "CertificateProfileError",
    "CertifiedSigner",
    "ClaimGenerator",
    "Clock",
    "Codes",
    "ConfigError",
    "DamagedCredentialsError",
    "DeclaredBindings",
    "DevPki",
    "DoctorReport",
    "EmptyAssetError",
    "Engine",
    "EngineConfig",
    "EntryCheck",
    "EntryFault",
    "Finding",
    "FingerprintMatch",
    "GenerationInfo",
    "HallmarkError",
    "ImageFingerprints",
    "IncompleteAssetError",
    "Ingredient",
    "Integrity",
    "InvalidMetadataError",
    "KeyEntry",
    "KeyEvent",
    "KeyNotFoundError",
    "KeySigner",
    "KeyState",
    "Keyring",
    "KeyringError",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "MalformedAssetError",
    "ManifestRepository",
    "MediaType",
    "NativeSigner",
    "Outcome",
    "OutputMode",
    "PdqHash",
    "PemKeySigner",
    "Pixels",
    "RemoteManifest",
    "RepositoryEntry",
    "RevocationStatus",
    "SidecarUnavailableError",
    "SignContext",
    "SignedAsset",
    "SignerInfo",
    "SigningError",
    "SpreadSpectrumWatermark",
    "StatusCode",
    "StorageError",
    "SystemClock",
    "TimestampAuthorityError",
    "TimestampGuard",
    "TimestampInfo",
    "TimestampOutcome",
    "TimestampPolicy",
    "TimestampStatus",
    "Timestamping",
    "TrainingMining",
    "TrainingMiningPreference",
    "TrustProfile",
    "UnmarkableImageError",
    "UnsupportedMediaError",
    "UrlFetchDisabledError",
    "UrlFetchError",
    "UrlFetchTimeoutError",
    "UrlRefusedError",
    "VerificationError",
    "VerificationReport",
    "WatermarkDetection",
    "WatermarkEngine",
    "WatermarkKey",
    "algorithm_for_public_key",
    "build_csr",
    "certificate_pem",
    "check_entry",
    "check_stored_entry",
    "check_validity",
    "declared_bindings",
    "dev_name",
    "diagnose",
    "digest_matches",
    "entry_digest",
    "expand_source_type",
    "fingerprint_match",
    "graded_doctor_report",
    "hamming",
    "image_fingerprints",
    "inspect_asset",
    "is_development",
    "iscc_body",
    "iscc_code",
    "iscc_image_code",
    "iscc_soft_binding",
    "issue_dev_pki",
    "issue_leaf",
    "key_pem",
    "keyring_rules",
    "load_chain",
    "match_rank",
    "new_key",
    "new_payload_id",
    "pdq_hash",
    "profile_from_bundle",
    "profile_from_pem",
    "public_key_sha256",
    "render_doctor_report",
    "require_trusted",
    "self_test",
    "sha256_fingerprint",
    "sha256_stream",
    "sign_asset",
    "sniff",
    "soft_binding_assertions",
    "valid_eku",
    "validate_generation",
]
