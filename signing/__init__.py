"""Hallmark's signing core: pure provenance logic. The adapters in app/ import only these names."""

from signing import keyring as keyring_rules
from signing._c2pa import BINDING_VERSION, ENGINE_VERSION, Engine, EngineConfig, NativeSigner
from signing.certs import DEV_ORGANIZATION, is_development, load_chain, public_key_sha256, sha256_fingerprint
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
    TimestampAuthorityError,
    UnsupportedMediaError,
    VerificationError,
)
from signing.hashing import sha256_stream
from signing.keyring import KeyEntry, KeyEvent, Keyring, KeyState
from signing.keys import (
    CertifiedSigner,
    CredentialFiles,
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
from signing.trust import PROFILE_FILE as TRUST_PROFILE_FILE
from signing.trust import PROFILE_SCHEMA as TRUST_PROFILE_SCHEMA
from signing.trust import TSA_ANCHORS_FILE as TRUST_TSA_ANCHORS_FILE
from signing.trust import TrustProfile, load_trust_dir, profile_from_pem, valid_eku
from signing.verify import inspect_asset, require_trusted
from signing.vocabulary import (
    DEFAULT_ALLOWED_SOURCE_TYPES,
    DIGITAL_SOURCE_TYPES,
    TRAINED_ALGORITHMIC_MEDIA,
    expand_source_type,
)

__all__ = [
    "BINDING_VERSION",
    "C2PA_CLAIM_SIGNING_EKU",
    "DEFAULT_ALLOWED_SOURCE_TYPES",
    "DEV_ORGANIZATION",
    "DIGITAL_SOURCE_TYPES",
    "DOCUMENT_SIGNING_EKU",
    "EMAIL_PROTECTION_EKU",
    "ENGINE_VERSION",
    "SUPPORTED_MEDIA",
    "TRAINED_ALGORITHMIC_MEDIA",
    "TRUST_ANCHORS_FILE",
    "TRUST_PROFILE_FILE",
    "TRUST_PROFILE_SCHEMA",
    "TRUST_TSA_ANCHORS_FILE",
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
    "CredentialFiles",
    "DevPki",
    "DoctorReport",
    "EmptyAssetError",
    "Engine",
    "EngineConfig",
    "Finding",
    "GenerationInfo",
    "HallmarkError",
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
    "MediaType",
    "NativeSigner",
    "Outcome",
    "OutputMode",
    "PemKeySigner",
    "RemoteManifest",
    "RevocationStatus",
    "SidecarUnavailableError",
    "SignContext",
    "SignedAsset",
    "SignerInfo",
    "SigningError",
    "StatusCode",
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
    "UnsupportedMediaError",
    "VerificationError",
    "VerificationReport",
    "algorithm_for_public_key",
    "build_csr",
    "certificate_pem",
    "check_validity",
    "dev_name",
    "diagnose",
    "expand_source_type",
    "graded_doctor_report",
    "inspect_asset",
    "is_development",
    "issue_dev_pki",
    "issue_leaf",
    "key_pem",
    "keyring_rules",
    "load_chain",
    "load_trust_dir",
    "new_key",
    "profile_from_pem",
    "public_key_sha256",
    "render_doctor_report",
    "require_trusted",
    "self_test",
    "sha256_fingerprint",
    "sha256_stream",
    "sign_asset",
    "sniff",
    "valid_eku",
    "validate_generation",
]
