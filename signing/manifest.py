"""Pure builder of the manifest definition for AI output.

The engine does not schema-check assertion contents, so every field is validated here, before signing.
The result follows the conformance findings (spec 2.4): `specVersion` in claim_generator_info,
`allActionsIncluded` in the actions assertion, exactly one inception action first, no deprecated labels.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signing.errors import InvalidMetadataError
from signing.models import GenerationInfo, TrainingMining
from signing.vocabulary import (
    DEFAULT_ALLOWED_SOURCE_TYPES,
    IPTC_DST_BASE,
    TRAINING_MINING_USES,
    expand_source_type,
)

SPEC_VERSION = "2.4.0"  # SemVer, as the spec's generator-info-map requires (semver-string)
GENERATOR_NAME = "Hallmark"
HALLMARK_ASSERTION = "org.hallmark.generation"
PARENT_INGREDIENT_LABEL = "parent"

MAX_NAME_LENGTH = 200
MAX_TITLE_LENGTH = 500
MAX_CONSTRAINT_LENGTH = 1000
# Control, invisible format (bidi overrides, zero-width), line and paragraph separator characters.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


@dataclass(frozen=True)
class ClaimGenerator:
    name: str
    version: str


def _clean(field_name: str, value: str | None, *, required: bool, max_length: int) -> str | None:
    # Ordinary surrounding whitespace is trimmed; nothing else is silently dropped.
    text = (value or "").strip(" \t\r\n")
    if not text or text.isspace():
        if required:
            raise InvalidMetadataError(
                f"'{field_name}' is required and must not be empty.", details={"field": field_name}
            )
        return None
    # Control characters (NUL, newlines) and invisible format characters (bidi overrides, zero-width
    # spaces) have no place in a label a person reads: they allow spoofed names.
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text):
        raise InvalidMetadataError(
            f"'{field_name}' contains control or invisible formatting characters.",
            details={"field": field_name},
        )
    if len(text) > max_length:
        raise InvalidMetadataError(
            f"'{field_name}' is {len(text)} characters long; the limit is {max_length}.",
            details={"field": field_name, "limit": max_length},
        )
    return text


def validate_generation(
    *,
    model_name: str | None,
    model_version: str | None,
    provider: str | None,
    digital_source_type: str | None,
    training_mining: str | None = None,
    training_mining_constraint: str | None = None,
    title: str | None = None,
    allowed_source_types: frozenset[str] = DEFAULT_ALLOWED_SOURCE_TYPES,
) -> GenerationInfo:
    """Turn what a caller sent into a `GenerationInfo`, or raise `InvalidMetadataError` naming the field.

    `allowed_source_types` (full IPTC URIs) are the digital source types this signer may declare: by
    default only those naming a trained model's involvement (see `vocabulary.DEFAULT_ALLOWED_SOURCE_TYPES`).
    """
    name = _clean("model_name", model_name, required=True, max_length=MAX_NAME_LENGTH)
    version = _clean("model_version", model_version, required=True, max_length=MAX_NAME_LENGTH)
    prov = _clean("provider", provider, required=True, max_length=MAX_NAME_LENGTH)
    dst_raw = _clean("digital_source_type", digital_source_type, required=False, max_length=MAX_NAME_LENGTH)
    dst = expand_source_type(dst_raw or "trainedAlgorithmicMedia")
    if dst is None:
        raise InvalidMetadataError(
            f"'digital_source_type' {dst_raw!r} is not an IPTC digital source type.",
            hint="Use a code such as trainedAlgorithmicMedia or compositeWithTrainedAlgorithmicMedia.",
            details={"field": "digital_source_type"},
        )
    if dst not in allowed_source_types:
        allowed = ", ".join(sorted(t.removeprefix(IPTC_DST_BASE) for t in allowed_source_types))
        raise InvalidMetadataError(
            f"'digital_source_type' {dst.removeprefix(IPTC_DST_BASE)} is not allowed here: this service "
            f"signs AI-generated media and may declare only {allowed or 'no source type'}.",
            hint="Declare one of the allowed types, or ask the operator to allow this one explicitly.",
            details={"field": "digital_source_type", "allowed": sorted(allowed_source_types)},
        )
    tm: TrainingMining | None = None
    tm_raw = _clean("training_mining", training_mining, required=False, max_length=MAX_NAME_LENGTH)
    if tm_raw is not None:
        try:
            tm = TrainingMining(tm_raw)
        except ValueError:
            allowed = ", ".join(v.value for v in TrainingMining)
            raise InvalidMetadataError(
                f"'training_mining' must be one of {allowed}.", details={"field": "training_mining"}
            ) from None
    constraint = _clean(
        "training_mining_constraint",
        training_mining_constraint,
        required=False,
        max_length=MAX_CONSTRAINT_LENGTH,
    )
    if constraint is not None and tm is not TrainingMining.CONSTRAINED:
        raise InvalidMetadataError(
            "'training_mining_constraint' is only meaningful with training_mining=constrained.",
            details={"field": "training_mining_constraint"},
        )
    return GenerationInfo(
        model_name=name or "",
        model_version=version or "",
        provider=prov or "",
        digital_source_type=dst,
        source_type_defaulted=dst_raw is None,
        training_mining=tm,
        training_mining_constraint=constraint,
        title=_clean("title", title, required=False, max_length=MAX_TITLE_LENGTH),
    )


def utc_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest_definition(
    info: GenerationInfo,
    *,
    manifest_id: str,
    generator: ClaimGenerator,
    when: datetime,
    has_parent: bool,
    default_title: str,
    extra_actions: list[dict[str, Any]] | None = None,
    extra_assertions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest definition (c2pa Builder JSON) for one AI output.

    Without a parent: one `c2pa.created` action carrying the digital source type. With a parent that
    already carries credentials: `c2pa.opened` (no digital source type, spec 2.4) referencing the parent
    ingredient, then `c2pa.edited` carrying the digital source type.
    """
    agent = {"name": info.model_name, "version": info.model_version}
    stamp = utc_timestamp(when)
    actions: list[dict[str, Any]]
    if has_parent:
        actions = [
            {
                "action": "c2pa.opened",
                "when": stamp,
                "softwareAgent": agent,
                "parameters": {"ingredientIds": [PARENT_INGREDIENT_LABEL]},
            },
            {
                "action": "c2pa.edited",
                "when": stamp,
                "softwareAgent": agent,
                "digitalSourceType": info.digital_source_type,
            },
        ]
    else:
        actions = [
            {
                "action": "c2pa.created",
                "when": stamp,
                "softwareAgent": agent,
                "digitalSourceType": info.digital_source_type,
            }
        ]
    actions.extend(extra_actions or [])
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions.v2", "data": {"allActionsIncluded": True, "actions": actions}},
        {
            "label": HALLMARK_ASSERTION,
            "data": {
                "provider": info.provider,
                "model": {"name": info.model_name, "version": info.model_version},
                "digitalSourceType": info.digital_source_type,
            },
        },
    ]
    if info.training_mining is not None:
        entry: dict[str, Any] = {"use": info.training_mining.value}
        if info.training_mining_constraint:
            entry["constraint_info"] = info.training_mining_constraint
        assertions.append(
            {
                "label": "cawg.training-mining",
                "data": {"entries": {use: dict(entry) for use in TRAINING_MINING_USES}},
            }
        )
    assertions.extend(extra_assertions or [])
    return {
        # We choose the URN (urn:c2pa:<uuid>) so the id is known without reading the output back.
        "label": manifest_id,
        "claim_generator_info": [
            {"name": generator.name, "version": generator.version, "specVersion": SPEC_VERSION}
        ],
        "title": info.title or default_title,
        "assertions": assertions,
    }


def new_manifest_id() -> str:
    return f"urn:c2pa:{uuid.uuid4()}"


def parent_ingredient_definition(title: str) -> dict[str, Any]:
    return {"title": title, "relationship": "parentOf", "label": PARENT_INGREDIENT_LABEL}
