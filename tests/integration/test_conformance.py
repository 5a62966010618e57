"""The official C2PA conformance rubric (program 0.2, spec 2.4) over what the real core signs.

Every trait of `asset-rubric-conformance0.2-spec2.4.yml` is a json-formula expression over crJSON. It is
evaluated by the reference engine (@adobe/json-formula, pinned in tests/conformance/package-lock.json) through
tests/conformance/evaluate.mjs, on the crJSON the engine reports for each signed output. Our outputs must
pass every trait (no fail, no warn, no error); deliberately broken manifests must fail exactly the traits
they break, which shows that the evaluator can fail at all.

Needs `node` and tests/conformance/node_modules: `make test-deps` installs both. Missing ones fail the test.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import signing
from signing.manifest import build_manifest_definition, new_manifest_id
from tests.fixtures import CONFORMANCE

CONFORMANCE_DIR = Path(__file__).resolve().parent.parent / "conformance"
EVALUATOR = CONFORMANCE_DIR / "evaluate.mjs"
RUBRIC_NAME = "asset-rubric-conformance0.2-spec2.4.yml"
FIX = "Run `make test-deps` (installs nodejs/npm if missing, then `bash tests/conformance/setup.sh`)."
EVALUATOR_TIMEOUT_S = 120

# id, interop file, media type, whether the file already carries credentials (signing it is an edit)
FORMATS = [
    ("jpeg", "no_manifest.jpg", "image/jpeg", False),
    ("png", "sample1.png", "image/png", False),
    ("webp", "sample1.webp", "image/webp", False),
    ("gif", "sample1.gif", "image/gif", False),
    ("tiff", "test.tiff", "image/tiff", False),
    ("avif", "sample1.avif", "image/avif", False),
    ("wav", "sample1.wav", "audio/wav", False),
    ("mp3", "sample1.mp3", "audio/mpeg", False),
    ("mp4-edit", "video1.mp4", "video/mp4", True),
    ("jpeg-edit-foreign", "C.jpg", "image/jpeg", True),
    ("pdf-edit-foreign", "express-signed.pdf", "application/pdf", True),
]


# --- the evaluator ----------------------------------------------------------------------------------------


class Evaluator:
    def __init__(self, node: str, rubric: Path, out_dir: Path):
        self.node = node
        self.rubric = rubric
        self.out_dir = out_dir
        # Every expression statement of the rubric, in order: the evaluator must report each one.
        self.trait_ids = re.findall(r"^- id: (\S+)\s*$", rubric.read_text(encoding="utf-8"), re.MULTILINE)
        assert len(self.trait_ids) > 20, f"no traits found in {rubric}"

    def run(self, name: str, crjson: dict[str, Any], rubric: Path | None = None) -> dict[str, dict[str, Any]]:
        """Write `crjson` to OUT/<name>.crjson.json, evaluate the rubric over it; {trait id: result}."""
        path = self.out_dir / f"{name}.crjson.json"
        path.write_text(json.dumps(crjson, indent=2), encoding="utf-8")
        proc = subprocess.run(
            [self.node, str(EVALUATOR), str(rubric or self.rubric), str(path)],
            capture_output=True,
            text=True,
            timeout=EVALUATOR_TIMEOUT_S,
            cwd=CONFORMANCE_DIR,
            check=False,
        )
        assert proc.returncode == 0, f"evaluate.mjs failed ({proc.returncode}) on {path}:\n{proc.stderr}"
        results = json.loads(proc.stdout)
        by_id = {r["id"]: r for r in results}
        if rubric is None:
            assert [r["id"] for r in results] == self.trait_ids, f"not every trait was evaluated on {path}"
        for r in results:
            assert r["result"] in {"pass", "fail", "warn", "error"}, r
        return by_id


def _not_passed(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {tid: r["result"] for tid, r in results.items() if r["result"] != "pass"}


def _explain(results: dict[str, dict[str, Any]], crjson_path: Path) -> str:
    lines = [
        f"  {r['result'].upper():5} {tid}: matches={json.dumps(r.get('matches'))} {r.get('error') or ''}"
        for tid, r in results.items()
        if r["result"] != "pass"
    ]
    return f"rubric traits not passed on {crjson_path}:\n" + "\n".join(lines)


@pytest.fixture(scope="session")
def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.fail(f"`node` is not on PATH; the conformance rubric needs it. {FIX}", pytrace=False)
    pins = json.loads((CONFORMANCE_DIR / "package.json").read_text())["dependencies"]
    for package, version in pins.items():
        manifest = CONFORMANCE_DIR / "node_modules" / package / "package.json"
        if not manifest.is_file():
            pytest.fail(
                f"{package} is not installed in {CONFORMANCE_DIR / 'node_modules'}. {FIX}", pytrace=False
            )
        installed = json.loads(manifest.read_text())["version"]
        if installed != version:
            pytest.fail(f"{package} {installed} is installed but {version} is pinned. {FIX}", pytrace=False)
    return exe


@pytest.fixture(scope="session")
def rubric_path() -> Path:
    path = CONFORMANCE / RUBRIC_NAME
    if not path.is_file():
        pytest.fail(f"conformance rubric missing at {path}: it is part of the repository", pytrace=False)
    return path


@pytest.fixture(scope="session")
def evaluator(node: str, rubric_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Evaluator:
    return Evaluator(node, rubric_path, tmp_path_factory.mktemp("crjson"))


# --- helpers --------------------------------------------------------------------------------------------


def _sign(
    sign_ctx: signing.SignContext, source: bytes, generation: signing.GenerationInfo
) -> tuple[bytes, str]:
    dest = io.BytesIO()
    signed = signing.sign_asset(sign_ctx, io.BytesIO(source), dest, generation)
    return dest.getvalue(), signed.manifest_id


def _crjson(engine: signing.Engine, data: bytes) -> dict[str, Any]:
    stream = io.BytesIO(data)
    reading = engine.read(signing.sniff(stream).mime, stream)
    assert reading.kind == "manifest", reading
    return reading.crjson


def _actions(crjson: dict[str, Any]) -> list[str]:
    actions = crjson["manifests"][0]["assertions"]["c2pa.actions.v2"]["actions"]
    return [a["action"] for a in actions]


def _check_output(engine: signing.Engine, data: bytes, manifest_id: str, mime: str) -> dict[str, Any]:
    """The output verifies with the real core, and crJSON lists its active manifest first (the rubric's
    `manifests[0]`)."""
    report = signing.inspect_asset(engine, io.BytesIO(data))
    assert report.media_type == mime
    assert report.outcome is signing.Outcome.TRUSTED, report.summary
    assert report.integrity is signing.Integrity.INTACT
    assert report.manifest_id == manifest_id
    crjson = _crjson(engine, data)
    assert crjson["manifests"][0]["label"] == manifest_id, "crJSON does not list the active manifest first"
    return crjson


# --- our outputs pass every trait -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "mime", "is_edit"), [pytest.param(f, m, e, id=i) for i, f, m, e in FORMATS])
def test_signed_output_passes_every_trait(
    name: str,
    mime: str,
    is_edit: bool,
    interop_dir: Path,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    evaluator: Evaluator,
) -> None:
    data, manifest_id = _sign(sign_ctx, (interop_dir / name).read_bytes(), generation)
    crjson = _check_output(engine, data, manifest_id, mime)
    assert _actions(crjson) == (["c2pa.opened", "c2pa.edited"] if is_edit else ["c2pa.created"])
    results = evaluator.run(f"signed-{name}", crjson)
    assert not _not_passed(results), _explain(results, evaluator.out_dir / f"signed-{name}.crjson.json")


def test_edit_of_our_own_output_passes_every_trait(
    interop_dir: Path,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    evaluator: Evaluator,
) -> None:
    first, first_id = _sign(sign_ctx, (interop_dir / "no_manifest.jpg").read_bytes(), generation)
    second, second_id = _sign(sign_ctx, first, generation)
    crjson = _check_output(engine, second, second_id, "image/jpeg")
    assert _actions(crjson) == ["c2pa.opened", "c2pa.edited"]
    assert [m["label"] for m in crjson["manifests"]] == [second_id, first_id]
    results = evaluator.run("signed-own-edit.jpg", crjson)
    assert not _not_passed(results), _explain(results, evaluator.out_dir / "signed-own-edit.jpg.crjson.json")


# --- with soft bindings: watermark (before the hard binding), ISCC soft binding, PDQ ----------------------

WATERMARKED = [
    ("jpeg", "no_manifest.jpg", "image/jpeg", False),
    ("png", "sample1.png", "image/png", False),
    ("webp", "sample1.webp", "image/webp", False),
    ("jpeg-edit-foreign", "C.jpg", "image/jpeg", True),
]


@pytest.mark.parametrize(
    ("name", "mime", "is_edit"), [pytest.param(f, m, e, id=i) for i, f, m, e in WATERMARKED]
)
def test_watermarked_output_passes_every_trait(
    name: str,
    mime: str,
    is_edit: bool,
    interop_dir: Path,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    evaluator: Evaluator,
) -> None:
    key = signing.WatermarkKey("conformance", b"conformance-test watermark key!!")
    binder = signing.SoftBinder(signing.SpreadSpectrumWatermark(), key, (key,))
    ctx = dataclasses.replace(sign_ctx, soft_binder=binder)
    data, manifest_id = _sign(ctx, (interop_dir / name).read_bytes(), generation)
    crjson = _check_output(engine, data, manifest_id, mime)
    inception = ["c2pa.opened", "c2pa.edited"] if is_edit else ["c2pa.created"]
    assert _actions(crjson) == [*inception, "c2pa.watermarked.bound"]
    assertions = crjson["manifests"][0]["assertions"]
    assert assertions["c2pa.soft-binding"]["alg"] == "io.iscc.v0"
    assert assertions["org.hallmark.watermark"]["payloadId"]
    results = evaluator.run(f"watermarked-{name}", crjson)
    assert not _not_passed(results), _explain(results, evaluator.out_dir / f"watermarked-{name}.crjson.json")


# --- the evaluator can fail: deliberately non-conformant manifests --------------------------------------


def _actions_data(definition: dict[str, Any]) -> dict[str, Any]:
    (assertion,) = [a for a in definition["assertions"] if a["label"] == "c2pa.actions.v2"]
    data: dict[str, Any] = assertion["data"]
    return data


def _drop_all_actions_included(d: dict[str, Any]) -> None:
    del _actions_data(d)["allActionsIncluded"]


def _drop_spec_version(d: dict[str, Any]) -> None:
    del d["claim_generator_info"][0]["specVersion"]


def _drop_both(d: dict[str, Any]) -> None:
    _drop_all_actions_included(d)
    _drop_spec_version(d)


def _old_spec_version(d: dict[str, Any]) -> None:
    d["claim_generator_info"][0]["specVersion"] = "2.2"


def _deprecated_action(d: dict[str, Any]) -> None:
    _actions_data(d)["actions"].append({"action": "c2pa.copied"})


def _edit_without_source_type(d: dict[str, Any]) -> None:
    _actions_data(d)["actions"].append({"action": "c2pa.cropped"})


def _custom_action_without_namespace(d: dict[str, Any]) -> None:
    _actions_data(d)["actions"].append(
        {"action": "upscaled", "digitalSourceType": signing.TRAINED_ALGORITHMIC_MEDIA}
    )


def _legacy_parameter(d: dict[str, Any]) -> None:
    _actions_data(d)["actions"][0]["parameters"] = {"description": "made by a model"}


MANDATORY_AAI = "validation:mandatory_all_actions_included"
MANDATORY_SPEC = "validation:mandatory_spec_version"
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], dict[str, str]]] = [
    ("no-allActionsIncluded", _drop_all_actions_included, {MANDATORY_AAI: "fail"}),
    ("no-specVersion", _drop_spec_version, {MANDATORY_SPEC: "fail"}),
    ("neither", _drop_both, {MANDATORY_AAI: "fail", MANDATORY_SPEC: "fail"}),
    ("specVersion-2.2", _old_spec_version, {MANDATORY_SPEC: "fail"}),
    (
        "deprecated-action",
        _deprecated_action,
        {
            "validation:no_deprecated_actions": "fail",
            "validation:no_unsupported_actions": "fail",
            "validation:mandatory_dst_for_perceptible_transformations": "fail",
        },
    ),
    (
        "edit-without-digitalSourceType",
        _edit_without_source_type,
        {"validation:mandatory_dst_for_perceptible_transformations": "fail"},
    ),
    (
        "custom-action-without-namespace",
        _custom_action_without_namespace,
        {"validation:no_unrecognized_custom_actions": "fail"},
    ),
    ("legacy-parameter", _legacy_parameter, {"validation:discouraged_legacy_action_parameters": "warn"}),
]


@pytest.mark.parametrize(("mutate", "expected"), [pytest.param(m, e, id=i) for i, m, e in BROKEN])
def test_non_conformant_manifest_fails_exactly_the_broken_traits(
    mutate: Callable[[dict[str, Any]], None],
    expected: dict[str, str],
    request: pytest.FixtureRequest,
    interop_dir: Path,
    engine: signing.Engine,
    native_signer: signing.NativeSigner,
    generation: signing.GenerationInfo,
    evaluator: Evaluator,
) -> None:
    manifest_id = new_manifest_id()
    definition = build_manifest_definition(
        generation,
        manifest_id=manifest_id,
        generator=signing.ClaimGenerator("Hallmark", "test"),
        when=datetime.now(UTC),
        has_parent=False,
        default_title="broken.jpg",
    )
    broken = copy.deepcopy(definition)
    mutate(broken)
    assert broken != definition
    dest = io.BytesIO()
    with (interop_dir / "no_manifest.jpg").open("rb") as source:
        engine.sign(broken, native_signer, "image/jpeg", source, dest, parent=None, sidecar=False)
    crjson = _crjson(engine, dest.getvalue())
    assert crjson["manifests"][0]["label"] == manifest_id
    name = f"broken-{request.node.callspec.id}"
    results = evaluator.run(name, crjson)
    assert _not_passed(results) == expected, _explain(results, evaluator.out_dir / f"{name}.crjson.json")


def test_tampered_output_fails_integrity_trait(
    interop_dir: Path,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    evaluator: Evaluator,
) -> None:
    data, _ = _sign(sign_ctx, (interop_dir / "no_manifest.jpg").read_bytes(), generation)
    tampered = bytearray(data)
    tampered[-100] ^= 0xFF  # inside the entropy-coded image data, after the manifest
    results = evaluator.run("tampered.jpg", _crjson(engine, bytes(tampered)))
    assert _not_passed(results) == {"validation:valid_success": "fail"}
    assert results["validation:valid_success"]["matches"] == ["assertion.dataHash.mismatch"]


# --- the evaluator's own semantics (a small rubric written here) ----------------------------------------

PROBE_RUBRIC = """\
rubric_metadata: {name: probe, issuer: tests, date: '2026-01-01T00:00:00Z', version: '1.0'}
variables:
  $colours: [red, green]
expressions:
  _first: manifests[0]
  _label: $args[0].label
  _pair: '[$args[0], $args[1]]'
  _colourCount: length($colours)
  _hasLabel: length($args[0].manifests[?label == $args[1]]) == 1
  _restores: _label($args[0]) == "m1" && $args[1] == "b"
---
- id: zero_arg_sees_caller_data
  expression: _first().label == "m1"
- id: args_are_positional
  expression: _pair("a", _label(_first())) == ["a", "m1"]
- id: args_survive_filters
  expression: _hasLabel(@, "m2")
- id: args_restored_after_nested_call
  expression: _restores(_first(), "b")
- id: variables_visible
  expression: _colourCount() == 2 && $expected_spec_version == "2.4"
- id: profile_records_values
  expression: profile.zero_arg_sees_caller_data
- id: fail_if_matched
  failIfMatched: true
  expression: manifests[].label
- id: not_matched_passes
  failIfMatched: true
  expression: manifests[?label == "none"].label
- id: warn_if_matched
  warnIfMatched: true
  expression: '`["x"]`'
- id: falsy_fails
  expression: '`[]`'
- id: bad_function_is_error
  expression: noSuchFunction(1)
- id: syntax_error_is_error
  expression: 'manifests[?'
- title: information statements are skipped
  id: info
  reportText: hello
"""


def test_evaluator_semantics(evaluator: Evaluator, tmp_path: Path) -> None:
    rubric = tmp_path / "probe.yml"
    rubric.write_text(PROBE_RUBRIC, encoding="utf-8")
    results = evaluator.run("probe", {"manifests": [{"label": "m1"}, {"label": "m2"}]}, rubric=rubric)
    assert {tid: r["result"] for tid, r in results.items()} == {
        "zero_arg_sees_caller_data": "pass",
        "args_are_positional": "pass",
        "args_survive_filters": "pass",
        "args_restored_after_nested_call": "pass",
        "variables_visible": "pass",
        "profile_records_values": "pass",
        "fail_if_matched": "fail",
        "not_matched_passes": "pass",
        "warn_if_matched": "warn",
        "falsy_fails": "fail",
        "bad_function_is_error": "error",
        "syntax_error_is_error": "error",
    }
    assert results["fail_if_matched"]["matches"] == ["m1", "m2"]
    assert "noSuchFunction" in results["bad_function_is_error"]["error"]
