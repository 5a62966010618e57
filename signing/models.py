"""The core's typed values: what a caller asks for and what the core answers. Frozen, no behaviour."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class TrainingMining(enum.StrEnum):
    ALLOWED = "allowed"
    NOT_ALLOWED = "notAllowed"
    CONSTRAINED = "constrained"


class OutputMode(enum.StrEnum):
    EMBEDDED = "embedded"  # the asset with the manifest store inside it
    SIDECAR = "sidecar"  # a detached .c2pa manifest store for the unchanged asset (not every format)


@dataclass(frozen=True)
class GenerationInfo:
    """What made the asset. Validated by `manifest.validate_generation` before anything is signed."""

    model_name: str
    model_version: str
    provider: str
    digital_source_type: str  # full IPTC URI once validated
    # True when the caller named none: an edit of a credentialed input then declares an AI composite.
    source_type_defaulted: bool = False
    training_mining: TrainingMining | None = None
    training_mining_constraint: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class MediaType:
    """An allow-listed format, identified from the bytes."""

    mime: str
    extension: str
    kind: str  # image | video | audio | document


@dataclass(frozen=True)
class SignedAsset:
    """What a successful sign produced. The bytes themselves went to the caller's destination stream."""

    manifest_id: str
    media_type: MediaType
    output_mode: OutputMode
    input_sha256: str
    output_sha256: str
    output_size: int
    key_id: str
    certificate_sha256: str
    signed_at: datetime
    parent_manifest_id: str | None
    generation: GenerationInfo
    timestamped: bool = False
    timestamp_skipped_reason: str | None = None  # breaker_open | tsa_failed, under the best-effort policy
    watermark_id: str | None = None  # the payload id marked into the pixels (12 hex digits)
    watermark_skipped: str | None = (
        None  # why an image carries no mark (see softbinding.marking.WatermarkSkip)
    )


class Outcome(enum.StrEnum):
    TRUSTED = "trusted"
    VALID_UNTRUSTED = "valid_untrusted"
    INVALID = "invalid"
    NONE = "none"


class Integrity(enum.StrEnum):
    INTACT = "intact"
    TAMPERED = "tampered"
    UNREADABLE = "unreadable"
    ABSENT = "absent"


class TimestampStatus(enum.StrEnum):
    TRUSTED = "trusted"  # a configured trust profile vouches for the timestamp authority
    # The engine accepted the timestamp but named no configured trust list for its authority: c2pa-rs does
    # not check the authority of a version 1 claim's timestamp against any list.
    UNANCHORED = "unanchored"
    UNTRUSTED = "untrusted"  # checked, and no configured list vouches for the authority (or it is broken)
    NONE = "none"


class AnchorList(enum.StrEnum):
    """Which of a trust profile's anchor lists vouched for a timestamp authority."""

    TSA = "tsa"  # the profile's timestamp-authority anchors
    SIGNERS = "signers"  # the profile's signer anchors (the engine keeps one anchor pool for both)


class RevocationStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class StatusCode:
    """One C2PA validation status as the engine reported it."""

    code: str
    explanation: str = ""
    url: str = ""


@dataclass(frozen=True)
class Codes:
    success: tuple[StatusCode, ...] = ()
    informational: tuple[StatusCode, ...] = ()
    failure: tuple[StatusCode, ...] = ()


@dataclass(frozen=True)
class SignerInfo:
    common_name: str | None
    organization: str | None
    issuer: str | None
    algorithm: str | None
    serial_number: str | None
    trusted: bool
    trust_profile: str | None  # which trust profile made the signer trusted
    development: bool  # trusted only by a development profile


@dataclass(frozen=True)
class TimestampInfo:
    status: TimestampStatus
    time: str | None = None
    trust_profile: str | None = None  # which trust profile's anchors made the timestamp trusted
    trust_list: AnchorList | None = None  # which of that profile's lists; None when no list vouches


@dataclass(frozen=True)
class ActionRecord:
    """One action of the active manifest's actions assertions, as the file states it."""

    action: str
    when: str | None = None
    digital_source_type: str | None = None


@dataclass(frozen=True)
class TrainingMiningPreference:
    """One entry of a `cawg.training-mining` assertion: may the asset be used for `use`?"""

    use: str  # e.g. cawg.ai_training
    value: str  # allowed | notAllowed | constrained (as the file states it)
    constraint_info: str | None = None


@dataclass(frozen=True)
class AiDeclaration:
    declared: bool  # an AI-related digital source type is declared
    digital_source_type: str | None
    description: str | None
    model_name: str | None
    model_version: str | None
    provider: str | None
    actions: tuple[str, ...] = ()
    action_details: tuple[ActionRecord, ...] = ()  # the same actions, with when and source type


@dataclass(frozen=True)
class Ingredient:
    title: str | None
    format: str | None
    relationship: str | None
    manifest_id: str | None
    validation_failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoteManifest:
    url: str
    fetched: bool = False


class RecoveryStatus(enum.StrEnum):
    RECOVERED = "recovered"  # a watermark named a signed asset and the picture matches it
    SIMILAR = "similar"  # no usable watermark; the fingerprints are near one or more signed assets
    NOT_FOUND = "not_found"  # searched; nothing this service signed matches
    NOT_SEARCHED = "not_searched"  # see `reason`


class RecoveryMethod(enum.StrEnum):
    BOTH = "both"  # watermark, confirmed by ISCC/PDQ within their thresholds
    WATERMARK = "watermark"  # watermark, confirmed by the crop-tolerant confirmation print
    FINGERPRINT = "fingerprint"  # fingerprints alone: "similar to", a weaker statement


@dataclass(frozen=True)
class WatermarkFinding:
    """What the watermark detector concluded (its false-positive design is stated, not assumed)."""

    detected: bool
    algorithm: str
    watermark_id: str | None
    statistic: float
    threshold: float
    false_positive_bound: float
    # "blind": the id read from the pixels alone; "known-id": the pixels tested for the ids of the
    # repository's fingerprint neighbours (spread_spectrum / informed.py)
    test: str = "blind"


@dataclass(frozen=True)
class RecoveredCredentials:
    """A signed manifest from the repository, re-verified: what the original asset declared."""

    manifest_id: str
    outcome: Outcome  # of the stored manifest, checked again now (never offered unless it verifies)
    signed_at: datetime
    title: str | None
    signer: SignerInfo | None
    timestamp: TimestampInfo
    ai: AiDeclaration | None
    iscc_distance: int | None = None
    pdq_distance: int | None = None
    confirmation_score: float | None = None


@dataclass(frozen=True)
class Recovery:
    status: RecoveryStatus
    statement: str
    method: RecoveryMethod | None = None
    confidence: str | None = None  # high (watermark, confirmed) | low (fingerprints alone)
    watermark: WatermarkFinding | None = None
    matches: tuple[RecoveredCredentials, ...] = ()  # recovered: one; similar: nearest first
    reason: str | None = None  # why not searched, or why a watermark hit was refused


@dataclass(frozen=True)
class VerificationReport:
    outcome: Outcome
    summary: str
    media_type: str
    integrity: Integrity
    manifest_id: str | None = None
    title: str | None = None
    claim_generator: str | None = None
    signer: SignerInfo | None = None
    timestamp: TimestampInfo = field(default_factory=lambda: TimestampInfo(TimestampStatus.NONE))
    revocation: RevocationStatus = RevocationStatus.NOT_CHECKED
    ai: AiDeclaration | None = None
    ingredients: tuple[Ingredient, ...] = ()
    remote_manifest: RemoteManifest | None = None
    codes: Codes = field(default_factory=Codes)
    development_trust: bool = False
    engine_error: str | None = None
    manifest_count: int = 0
    training_mining: tuple[TrainingMiningPreference, ...] = ()
    # The whole manifest store as the engine read it (every manifest, ingredients included); only when a
    # caller asked for the detailed view.
    manifest_store: dict[str, Any] | None = None
    # When the file has no manifest or its hard binding fails: what the watermark and fingerprints recovered.
    recovery: Recovery | None = None
    extra: dict[str, Any] = field(default_factory=dict)
