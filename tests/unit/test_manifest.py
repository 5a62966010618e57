"""manifest.py: validation of what a caller sends, and the manifest definition built from it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from signing.errors import InvalidMetadataError
from signing.manifest import (
    MAX_CONSTRAINT_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TITLE_LENGTH,
    PARENT_INGREDIENT_LABEL,
    ClaimGenerator,
    build_manifest_definition,
    new_manifest_id,
    validate_generation,
)
from signing.models import GenerationInfo, TrainingMining
from signing.vocabulary import DEFAULT_ALLOWED_SOURCE_TYPES, DIGITAL_SOURCE_TYPES

GOLDEN = Path(__file__).parent / "golden"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# 14:30:05 at UTC+2 is 12:30:05 UTC: the definition must carry the UTC instant.
WHEN = datetime(2026, 8, 2, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TRAINING_USES = {"cawg.ai_generative_training", "cawg.ai_inference", "cawg.ai_training", "cawg.data_mining"}


def valid(**overrides: Any) -> GenerationInfo:
    fields: dict[str, Any] = {
        "model_name": "test-diffusion",
        "model_version": "2.1",
        "provider": "Example AI",
        "digital_source_type": None,
    }
    fields.update(overrides)
    return validate_generation(**fields)


def rejected(**overrides: Any) -> dict[str, Any]:
    with pytest.raises(InvalidMetadataError) as caught:
        valid(**overrides)
    diag = caught.value.diagnostics()
    assert diag["code"] == "invalid-metadata"
    return diag


def names_field(diag: dict[str, Any], field: str) -> bool:
    return diag.get("details", {}).get("field") == field or f"'{field}'" in diag["message"]


def build(
    info: GenerationInfo, *, has_parent: bool = False, manifest_id: str = "urn:c2pa:x"
) -> dict[str, Any]:
    return build_manifest_definition(
        info,
        manifest_id=manifest_id,
        generator=ClaimGenerator("Hallmark", "0.1.0"),
        when=WHEN,
        has_parent=has_parent,
        default_title="output.png",
    )


def actions_of(definition: dict[str, Any]) -> list[dict[str, Any]]:
    found = [a for a in definition["assertions"] if a["label"] == "c2pa.actions.v2"]
    assert len(found) == 1
    assert found[0]["data"]["allActionsIncluded"] is True
    actions: list[dict[str, Any]] = found[0]["data"]["actions"]
    return actions


# --- validate_generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["model_name", "model_version", "provider"])
@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_required_fields(field: str, value: str | None) -> None:
    diag = rejected(**{field: value})
    assert names_field(diag, field)
    assert "required" in diag["message"]


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("model_name", MAX_NAME_LENGTH),
        ("model_version", MAX_NAME_LENGTH),
        ("provider", MAX_NAME_LENGTH),
        ("title", MAX_TITLE_LENGTH),
    ],
)
def test_length_limits(field: str, limit: int) -> None:
    assert getattr(valid(**{field: "x" * limit}), field) == "x" * limit
    diag = rejected(**{field: "x" * (limit + 1)})
    assert diag["details"] == {"field": field, "limit": limit}


def test_constraint_length_limit() -> None:
    ok = valid(training_mining="constrained", training_mining_constraint="c" * MAX_CONSTRAINT_LENGTH)
    assert ok.training_mining_constraint == "c" * MAX_CONSTRAINT_LENGTH
    diag = rejected(
        training_mining="constrained", training_mining_constraint="c" * (MAX_CONSTRAINT_LENGTH + 1)
    )
    assert diag["details"]["field"] == "training_mining_constraint"


@pytest.mark.parametrize("field", ["model_name", "model_version", "provider", "title"])
@pytest.mark.parametrize("bad", ["a\x00b", "line1\nline2", "bell\x07", "esc\x1b[31m", "del\x7f"])
def test_control_characters_rejected(field: str, bad: str) -> None:
    diag = rejected(**{field: bad})
    assert diag["details"] == {"field": field}
    assert "control" in diag["message"]


def test_values_are_trimmed_and_unicode_kept() -> None:
    info = valid(model_name="  Bildgenerator ü  ", provider=" Exämple KI ")
    assert info.model_name == "Bildgenerator ü"
    assert info.provider == "Exämple KI"


NOT_AI = sorted(DIGITAL_SOURCE_TYPES - {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})


@pytest.mark.parametrize("code", NOT_AI)
def test_source_types_that_claim_no_trained_model_are_refused_by_default(code: str) -> None:
    diag = rejected(digital_source_type=code)
    assert diag["details"]["field"] == "digital_source_type"
    assert f"{code} is not allowed here" in diag["message"]
    assert "compositeWithTrainedAlgorithmicMedia, trainedAlgorithmicMedia" in diag["message"]


def test_the_default_allows_exactly_the_trained_model_types() -> None:
    assert {IPTC + "trainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia"} == set(
        DEFAULT_ALLOWED_SOURCE_TYPES
    )
    assert len(NOT_AI) == len(DIGITAL_SOURCE_TYPES) - 2


def test_an_explicitly_allowed_source_type_is_accepted_and_the_default_then_refused() -> None:
    allowed = frozenset({IPTC + "digitalCapture"})
    info = valid(digital_source_type="digitalCapture", allowed_source_types=allowed)
    assert info.digital_source_type == IPTC + "digitalCapture"
    diag = rejected(digital_source_type=None, allowed_source_types=allowed)
    assert "trainedAlgorithmicMedia is not allowed here" in diag["message"]
    assert "may declare only digitalCapture" in diag["message"]


def test_default_source_type_is_trained_algorithmic_media() -> None:
    assert valid().digital_source_type == IPTC + "trainedAlgorithmicMedia"
    assert valid(digital_source_type="  ").digital_source_type == IPTC + "trainedAlgorithmicMedia"


@pytest.mark.parametrize(
    "value", ["compositeWithTrainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia"]
)
def test_source_type_short_code_and_uri(value: str) -> None:
    assert (
        valid(digital_source_type=value).digital_source_type == IPTC + "compositeWithTrainedAlgorithmicMedia"
    )


@pytest.mark.parametrize(
    "value", ["aiGenerated", "TRAINEDALGORITHMICMEDIA", "https://cv.iptc.org/newscodes/digitalsourcetype/x"]
)
def test_unknown_source_type_names_field(value: str) -> None:
    diag = rejected(digital_source_type=value)
    assert diag["details"] == {"field": "digital_source_type"}
    assert "trainedAlgorithmicMedia" in diag["hint"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("allowed", TrainingMining.ALLOWED),
        ("notAllowed", TrainingMining.NOT_ALLOWED),
        ("constrained", TrainingMining.CONSTRAINED),
        (None, None),
    ],
)
def test_training_mining_values(value: str | None, expected: TrainingMining | None) -> None:
    assert valid(training_mining=value).training_mining is expected


@pytest.mark.parametrize("value", ["yes", "NotAllowed", "not_allowed", "denied", "allowed; notAllowed"])
def test_training_mining_rejects_others(value: str) -> None:
    diag = rejected(training_mining=value)
    assert diag["details"] == {"field": "training_mining"}
    assert "allowed, notAllowed, constrained" in diag["message"]


@pytest.mark.parametrize("mining", [None, "allowed", "notAllowed"])
def test_constraint_only_with_constrained(mining: str | None) -> None:
    diag = rejected(training_mining=mining, training_mining_constraint="research only")
    assert diag["details"] == {"field": "training_mining_constraint"}


def test_constraint_with_constrained() -> None:
    info = valid(training_mining="constrained", training_mining_constraint=" research only ")
    assert info.training_mining_constraint == "research only"


# --- build_manifest_definition ---------------------------------------------------------------------------


def test_golden_created() -> None:
    info = valid(
        training_mining="constrained",
        training_mining_constraint="Research use only; contact licensing@example.com",
    )
    got = build(info, manifest_id="urn:c2pa:3f2a6c1e-8d4b-4e0f-9a7c-1b2d3e4f5a6b")
    assert got == json.loads((GOLDEN / "created.json").read_text())


def test_golden_edited() -> None:
    info = valid(
        model_name="inpaint-xl",
        model_version="1.0.3",
        digital_source_type="compositeWithTrainedAlgorithmicMedia",
        title="Edited portrait",
    )
    got = build(info, has_parent=True, manifest_id="urn:c2pa:9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
    assert got == json.loads((GOLDEN / "edited.json").read_text())


@pytest.mark.parametrize("has_parent", [False, True])
def test_claim_generator_and_label(has_parent: bool) -> None:
    manifest_id = new_manifest_id()
    got = build(valid(), has_parent=has_parent, manifest_id=manifest_id)
    assert got["label"] == manifest_id
    assert got["claim_generator_info"][0] == {"name": "Hallmark", "version": "0.1.0", "specVersion": "2.4.0"}
    assert [a["label"] for a in got["assertions"]].count("c2pa.actions.v2") == 1
    assert not any(a["label"] == "c2pa.actions" for a in got["assertions"])  # deprecated v1


def test_created_action() -> None:
    [action] = actions_of(build(valid(digital_source_type="compositeWithTrainedAlgorithmicMedia")))
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert action["softwareAgent"] == {"name": "test-diffusion", "version": "2.1"}
    assert action["when"] == "2026-08-02T12:30:05Z"
    assert UTC_Z.match(action["when"])


def test_utc_time_renders_as_z() -> None:
    got = build_manifest_definition(
        valid(),
        manifest_id="urn:c2pa:x",
        generator=ClaimGenerator("Hallmark", "t"),
        when=datetime(2030, 1, 31, 23, 59, 59, tzinfo=UTC),
        has_parent=False,
        default_title="a.jpg",
    )
    assert actions_of(got)[0]["when"] == "2030-01-31T23:59:59Z"


def test_opened_then_edited_with_parent() -> None:
    opened, edited = actions_of(build(valid(), has_parent=True))
    assert opened["action"] == "c2pa.opened"
    assert "digitalSourceType" not in opened  # spec 2.4
    assert opened["parameters"]["ingredientIds"] == [PARENT_INGREDIENT_LABEL]
    assert edited["action"] == "c2pa.edited"
    assert edited["digitalSourceType"] == IPTC + "trainedAlgorithmicMedia"
    inception = [a for a in (opened, edited) if a["action"] in ("c2pa.created", "c2pa.opened")]
    assert inception == [opened]


def test_title_falls_back_to_default() -> None:
    assert build(valid())["title"] == "output.png"
    assert build(valid(title="Sunset"))["title"] == "Sunset"


def test_training_mining_only_when_given() -> None:
    labels = [a["label"] for a in build(valid())["assertions"]]
    assert "cawg.training-mining" not in labels


@pytest.mark.parametrize("value", ["allowed", "notAllowed"])
def test_training_mining_entries(value: str) -> None:
    [tm] = [
        a for a in build(valid(training_mining=value))["assertions"] if a["label"] == "cawg.training-mining"
    ]
    entries = tm["data"]["entries"]
    assert set(entries) == TRAINING_USES
    assert all(entry == {"use": value} for entry in entries.values())


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_no_personal_data_fields() -> None:
    got = build(valid(training_mining="allowed"), has_parent=True)
    personal = {"author", "creator", "email", "user", "username", "ip", "ipAddress", "prompt", "person"}
    assert not _keys(got) & personal
    assert not any("CreativeWork" in a["label"] for a in got["assertions"])


def test_new_manifest_id_shape_and_uniqueness() -> None:
    ids = [new_manifest_id() for _ in range(200)]
    assert all(re.fullmatch(r"urn:c2pa:[0-9a-f-]{36}", i) for i in ids)
    assert len(set(ids)) == len(ids)
