"""The c2pa.soft-binding assertion for ISCC has the shape of the C2PA 2.x soft-binding-map, and the
declared bindings read back from a manifest exactly, refusing malformed or doubled declarations."""

from __future__ import annotations

from typing import Any

import pytest

import signing
from signing import FINGERPRINT_ASSERTION, SOFT_BINDING, PdqHash

ISCC = "ISCC:EEAXZP5RSE4PVFVC"
PDQ = PdqHash(bits=bytes(range(32)), quality=87)

# soft-binding.cddl (C2PA 2.x): soft-binding-map, soft-binding-block-map, soft-binding-scope-map.
MAP_REQUIRED = {"alg", "blocks"}
MAP_ALLOWED = MAP_REQUIRED | {"pad", "pad2", "name", "alg-params", "bindingMetadata", "url"}
BLOCK_KEYS = {"scope", "value"}
SCOPE_ALLOWED = {"extent", "timespan", "region"}


def test_iscc_soft_binding_has_the_spec_shape() -> None:
    data = signing.iscc_soft_binding(ISCC)
    assert MAP_REQUIRED <= set(data) <= MAP_ALLOWED
    assert data["alg"] == "io.iscc.v0"  # as on the C2PA soft-binding algorithm list
    assert isinstance(data["blocks"], list)
    assert len(data["blocks"]) == 1  # minItems 1; one block over the whole image
    block = data["blocks"][0]
    assert set(block) == BLOCK_KEYS
    assert set(block["scope"]) <= SCOPE_ALLOWED
    assert block["scope"] == {}  # empty scope: the whole asset
    assert block["value"] == ISCC
    assert isinstance(data["name"], str)


@pytest.mark.parametrize("bad", ["", "ISCC:KACYPXW445FTYNJ3", ISCC.lower()])
def test_iscc_soft_binding_refuses_anything_but_an_image_code(bad: str) -> None:
    with pytest.raises(ValueError, match="ISCC"):
        signing.iscc_soft_binding(bad)


def manifest(*assertions: dict[str, Any]) -> dict[str, Any]:
    return {"assertions": list(assertions)}


def fingerprints() -> list[dict[str, Any]]:
    return signing.soft_binding_assertions(signing.ImageFingerprints(iscc=ISCC, pdq=PDQ))


def watermark(payload_id: Any) -> dict[str, Any]:
    return {"label": "org.hallmark.watermark", "data": {"payloadId": payload_id}}


def test_declared_bindings_read_back_what_was_declared() -> None:
    assertions = fingerprints()
    assert [a["label"] for a in assertions] == [SOFT_BINDING, FINGERPRINT_ASSERTION]
    declared = signing.declared_bindings(manifest(*assertions, watermark("w-1")))
    assert declared == signing.DeclaredBindings(iscc=ISCC, pdq=PDQ, watermark_id="w-1")


def test_nothing_declared_reads_as_none() -> None:
    assert signing.declared_bindings({}) == signing.DeclaredBindings(None, None, None)
    assert signing.declared_bindings({"assertions": "junk"}) == signing.DeclaredBindings(None, None, None)


@pytest.mark.parametrize(
    "data",
    [
        {"alg": "com.example.other", "blocks": [{"scope": {}, "value": ISCC}]},
        {"alg": "io.iscc.v0", "blocks": []},
        {"alg": "io.iscc.v0", "blocks": [{"scope": {}, "value": "ISCC:NOTACODE"}]},
        {"alg": "io.iscc.v0", "blocks": [{"scope": {}, "value": 7}]},
        "not a map",
    ],
)
def test_a_malformed_soft_binding_declares_no_iscc(data: Any) -> None:
    declared = signing.declared_bindings(manifest({"label": SOFT_BINDING, "data": data}))
    assert declared.iscc is None


def test_two_declarations_of_one_kind_cancel_each_other() -> None:
    first, second = (signing.iscc_soft_binding(c) for c in (ISCC, "ISCC:EEAQAAAAAAAAAAAA"))
    doubled = manifest({"label": SOFT_BINDING, "data": first}, {"label": SOFT_BINDING, "data": second})
    assert signing.declared_bindings(doubled).iscc is None
    single = manifest({"label": SOFT_BINDING, "data": first})  # negative control
    assert signing.declared_bindings(single).iscc == ISCC


@pytest.mark.parametrize(
    "data", [{"pdq": "00" * 31, "pdqQuality": 80}, {"pdq": "zz" * 32, "pdqQuality": 80}, {"pdq": "00" * 32}]
)
def test_a_malformed_pdq_declaration_declares_no_pdq(data: dict[str, Any]) -> None:
    declared = signing.declared_bindings(manifest({"label": FINGERPRINT_ASSERTION, "data": data}))
    assert declared.pdq is None
