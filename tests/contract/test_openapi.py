"""The committed OpenAPI document is what the app serves, and it describes the public contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.openapi import document, render

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "openapi" / "openapi.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_committed_document_has_not_drifted() -> None:
    assert COMMITTED.is_file(), "openapi/openapi.json is missing: run `make openapi` and commit it"
    assert render() == COMMITTED.read_text(encoding="utf-8"), (
        "openapi/openapi.json differs from the app's OpenAPI document: run `make openapi` and commit it"
    )


def test_paths(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    assert "post" in paths["/v1/sign"]
    assert "post" in paths["/v1/verify"]
    assert "get" in paths["/healthz"]
    assert "get" in paths["/readyz"]


def test_sign_takes_multipart_with_required_model_fields(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/sign"]["post"]
    assert op["requestBody"]["required"] is True
    body = resolve(doc, op["requestBody"]["content"]["multipart/form-data"]["schema"])
    assert {"file", "model_name", "model_version"} <= set(body["required"])
    file_field = resolve(doc, body["properties"]["file"])
    assert file_field["type"] == "string"
    assert doc["openapi"].startswith("3.1.")
    assert file_field["contentMediaType"] == "application/octet-stream"  # OpenAPI 3.1's form of a binary file
    for optional in ("provider", "digital_source_type", "training_mining", "title"):
        assert optional in body["properties"]
        assert optional not in body["required"]
    assert "Hallmark-Manifest-Id" in op["responses"]["200"]["headers"]


def test_sign_requires_a_bearer_api_key(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/sign"]["post"]
    schemes = doc["components"]["securitySchemes"]
    names = [name for requirement in op["security"] for name in requirement]
    assert names, "POST /v1/sign declares no security requirement"
    for name in names:
        assert schemes[name]["type"] == "http"
        assert schemes[name]["scheme"].lower() == "bearer"
    assert "401" in op["responses"]
    assert "403" in op["responses"]


def test_verify_is_public_multipart(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/verify"]["post"]
    assert not op.get("security"), "verification is public by default"
    body = resolve(doc, op["requestBody"]["content"]["multipart/form-data"]["schema"])
    assert body["required"] == ["file"]
    assert "manifest" in body["properties"]
    # The plain report, or with ?detail=full the same report plus the engine's manifest store.
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    detailed, plain = (resolve(doc, s) for s in schema["anyOf"])
    for report in (detailed, plain):
        assert set(report["properties"]["outcome"]["enum"]) == {
            "trusted",
            "valid_untrusted",
            "invalid",
            "none",
        }
    assert set(detailed["properties"]) - set(plain["properties"]) == {"manifest_store"}
    detail = next(p for p in op["parameters"] if p["name"] == "detail")
    assert (detail["in"], resolve(doc, detail["schema"])["enum"]) == ("query", ["summary", "full"])


def test_problem_responses_are_problem_json(doc: dict[str, Any]) -> None:
    responses = doc["paths"]["/v1/sign"]["post"]["responses"]
    for status in ("401", "403", "413", "415", "422", "503"):
        assert "application/problem+json" in responses[status]["content"], status


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    found = sorted(set(refs(doc)))
    assert len(found) > 5, "the document uses $ref for its schemas: none found means refs() is broken"
    with pytest.raises(KeyError):  # the control: a dangling reference is caught
        resolve(doc, {"$ref": "#/components/schemas/NoSuchSchema"})
    dangling = []
    for ref in found:
        try:
            resolve(doc, {"$ref": ref})
        except (KeyError, TypeError):
            dangling.append(ref)
    assert dangling == []
