"""HTTP shapes of the core's results (pydantic, for validation-free serialisation and the OpenAPI doc)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from signing import VerificationReport


class StatusCodeOut(BaseModel):
    code: str
    explanation: str = ""
    url: str = ""


class CodesOut(BaseModel):
    success: list[StatusCodeOut] = []
    informational: list[StatusCodeOut] = []
    failure: list[StatusCodeOut] = []


class SignerOut(BaseModel):
    common_name: str | None
    organization: str | None
    issuer: str | None = Field(description="Distinguished name of the certificate's issuer.")
    algorithm: str | None
    serial_number: str | None
    trusted: bool
    trust_profile: str | None = Field(description="The trust profile whose anchors made the signer trusted.")
    development: bool = Field(description="Trusted only through a development trust profile.")


class TimestampOut(BaseModel):
    status: Literal["trusted", "unanchored", "untrusted", "none"] = Field(
        description="trusted: a configured trust profile vouches for the timestamp authority (trust_profile "
        "and trust_list say which); unanchored: the engine accepted the timestamp but no configured list "
        "vouches for its authority (the engine checks none for a version 1 claim); untrusted: no configured "
        "list vouches for it, or the timestamp is broken; none: no timestamp."
    )
    time: str | None = None
    trust_profile: str | None = Field(
        None,
        description="The trust profile whose anchors vouch for the timestamp authority; null when none does.",
    )
    trust_list: Literal["tsa", "signers"] | None = Field(
        None,
        description="Which of that profile's anchor lists vouches: its timestamp-authority anchors, or its "
        "signer anchors (the engine keeps one anchor pool for both).",
    )


class ActionOut(BaseModel):
    action: str
    when: str | None = Field(description="When the action happened, as the manifest states it.")
    digital_source_type: str | None


class TrainingMiningOut(BaseModel):
    use: str = Field(description="The use, e.g. cawg.ai_training, cawg.ai_generative_training.")
    value: str = Field(description="allowed, notAllowed or constrained, as the manifest states it.")
    constraint_info: str | None = None


class AiOut(BaseModel):
    declared: bool = Field(description="An AI-related IPTC digital source type is declared.")
    digital_source_type: str | None
    description: str | None
    model_name: str | None
    model_version: str | None
    provider: str | None
    actions: list[str] = []
    action_details: list[ActionOut] = Field(
        [], description="The active manifest's actions in order, with when and digital source type."
    )


class IngredientOut(BaseModel):
    title: str | None
    format: str | None
    relationship: str | None
    manifest_id: str | None
    validation_failures: list[str] = []


class RemoteManifestOut(BaseModel):
    url: str
    fetched: bool = Field(description="Always false: verification never fetches remote manifests.")


class WatermarkFindingOut(BaseModel):
    detected: bool
    algorithm: str
    watermark_id: str | None = Field(description="The payload id read from the pixels (12 hex digits).")
    statistic: float = Field(description="The standardised synchronisation statistic the detector saw.")
    threshold: float = Field(
        description="What it had to reach: set so an unmarked image reaches it with "
        "probability <= 1e-6 per check."
    )
    false_positive_bound: float = Field(
        description="Upper bound on the probability that an unmarked image scores this high in this check."
    )
    test: Literal["blind", "known-id"] = Field(
        description="blind: the id was read from the pixels alone. known-id: the pixels were tested for the "
        "watermark ids of the repository's most similar assets (a stronger test for a known id, used when "
        "the blind read finds nothing); statistic and threshold are then that test's."
    )


class RecoveredCredentialsOut(BaseModel):
    manifest_id: str
    outcome: Literal["trusted", "valid_untrusted", "invalid", "none"] = Field(
        description="The stored manifest, verified again now (only a trusted one is offered)."
    )
    signed_at: datetime
    title: str | None
    signer: SignerOut | None
    timestamp: TimestampOut
    ai: AiOut | None
    iscc_distance: int | None = Field(description="Hamming distance of the ISCC image codes (of 64 bits).")
    pdq_distance: int | None = Field(description="Hamming distance of the PDQ hashes (of 256 bits).")
    confirmation_score: float | None = None


class RecoveryOut(BaseModel):
    status: Literal["recovered", "similar", "not_found", "not_searched"] = Field(
        description="recovered: a watermark names credentials this service signed and the picture matches "
        "them; similar: no usable watermark, fingerprints near signed assets (weaker); not_found; "
        "not_searched (see reason)."
    )
    statement: str = Field(description="What this means, in plain words.")
    method: Literal["both", "watermark", "fingerprint"] | None = None
    confidence: Literal["high", "low"] | None = None
    watermark: WatermarkFindingOut | None = None
    matches: list[RecoveredCredentialsOut] = Field(
        [], description="recovered: the one asset; similar: the nearest assets first."
    )
    reason: str | None = Field(None, description="Why nothing was searched, or why a watermark was refused.")


class VerificationReportOut(BaseModel):
    outcome: Literal["trusted", "valid_untrusted", "invalid", "none"] = Field(
        description="trusted: intact, signer on a trust profile; valid_untrusted: intact, signer unknown; "
        "invalid: present but failed validation; none: no credentials found (says nothing about the content)."
    )
    summary: str
    media_type: str
    integrity: Literal["intact", "tampered", "unreadable", "absent"]
    manifest_id: str | None = None
    title: str | None = None
    claim_generator: str | None = None
    signer: SignerOut | None = None
    timestamp: TimestampOut
    revocation: Literal["good", "revoked", "not_checked"]
    ai: AiOut | None = None
    ingredients: list[IngredientOut] = []
    remote_manifest: RemoteManifestOut | None = None
    codes: CodesOut
    development_trust: bool
    engine_error: str | None = None
    manifest_count: int = 0
    training_mining: list[TrainingMiningOut] = Field(
        [], description="The active manifest's cawg.training-mining preferences, one per use."
    )
    recovery: RecoveryOut | None = Field(
        None,
        description="Only when the file has no manifest or its manifest no longer matches it: what the "
        "invisible watermark and the fingerprints recovered from this service's manifest repository. "
        "`integrity` still describes this file.",
    )

    @classmethod
    def from_report(cls, report: VerificationReport) -> VerificationReportOut:
        data = asdict(report)
        data.pop("extra", None)
        data.pop("manifest_store", None)
        return cls.model_validate(data)


class DetailedVerificationReportOut(VerificationReportOut):
    """The report plus everything the engine read (`?detail=full`)."""

    manifest_store: dict[str, Any] | None = Field(
        description="The whole manifest store as the engine read it: every manifest, ingredients included. "
        "Null when the file carries no readable manifest store."
    )

    @classmethod
    def from_report(cls, report: VerificationReport) -> DetailedVerificationReportOut:
        data = asdict(report)
        data.pop("extra", None)
        return cls.model_validate(data)


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    key_id: str | None = None
    certificate_not_after: str | None = None
    warnings: list[str] = []
    problem: str | None = None


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    hint: str | None = None
    request_id: str | None = Field(
        None, description="This request's id (also in the X-Request-Id response header and the server log)."
    )


Outcome = Literal["trusted", "valid_untrusted", "invalid", "none"]


class FeedbackIn(BaseModel):
    """An answer to "Was this result right?" about one verify report."""

    model_config = {"extra": "forbid"}

    manifest_id: str | None = Field(None, max_length=200, description="The report's manifest_id, if any.")
    outcome: Outcome = Field(description="The report's outcome.")
    verdict_correct: StrictBool = Field(description="Whether the person thinks the result was right.")
    comment: str | None = Field(None, max_length=500, description="Optional short comment.")


class FeedbackOut(BaseModel):
    """Exactly what was stored: no address, no user agent, no file, no time finer than the UTC day."""

    day: str = Field(description="The UTC day the feedback arrived (YYYY-MM-DD).")
    outcome: Outcome
    verdict_correct: bool
    manifest_id: str | None
    comment: str | None


MAX_URL_CHARS = 4096


class VerifyUrlIn(BaseModel):
    """Verify the file at a URL (POST /v1/verify with Content-Type application/json)."""

    model_config = {"extra": "forbid"}

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="An http or https URL of the file. Fetched only when the operator turned verify-by-URL "
        "on (HALLMARK_URL_FETCH), only from public internet addresses or allow-listed hosts, without "
        "credentials; the file is not kept.",
    )


class VerifyOptionsOut(BaseModel):
    """What the public verify endpoint accepts on this server (the verify page asks before it shows them)."""

    url_input: bool = Field(description="Whether POST /v1/verify accepts a JSON body with a URL.")
    max_file_bytes: int = Field(description="The largest file, uploaded or fetched, that is verified.")
