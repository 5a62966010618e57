"""report.build_report: hand-made engine readings in, an honest verification report out."""

from __future__ import annotations

import re
from typing import Any

import pytest

from signing.models import (
    ActionRecord,
    AnchorList,
    Integrity,
    Outcome,
    TimestampStatus,
    TrainingMiningPreference,
    VerificationReport,
)
from signing.reading import RawReading
from signing.report import build_report
from signing.trust import TrustProfile

URN = "urn:c2pa:3f2a6c1e-8d4b-4e0f-9a7c-1b2d3e4f5a6b"
PARENT_URN = "urn:c2pa:11111111-2222-4333-8444-555555555555"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AGENT = {"name": "test-diffusion", "version": "2.1"}
FORBIDDEN = re.compile(r"authentic|human[\s-]*made", re.IGNORECASE)


# A status as a bare code (about the active manifest), or the engine's full dict (code, url, explanation).
Code = str | dict[str, str]


def code(name: str, *, url: str = f"self#jumbf=/c2pa/{URN}/c2pa.signature", explanation: str = "") -> Code:
    return {"code": name, "url": url, "explanation": explanation or f"{name} happened"}


def profile(name: str, *, development: bool) -> TrustProfile:
    return TrustProfile(name, "", development, f"/trust/{name}.pem", "0" * 64, 1)


PROD = profile("production", development=False)
DEV = profile("development", development=True)


def action(name: str, dst: str | None = None, agent: Any = AGENT) -> dict[str, Any]:
    out: dict[str, Any] = {"action": name, "when": "2026-08-02T12:30:05Z", "softwareAgent": agent}
    if dst is not None:
        out["digitalSourceType"] = dst
    return out


def store(
    *,
    actions: list[dict[str, Any]] | None = None,
    provider: str | None = "Example AI",
    signature_info: dict[str, Any] | None = None,
    success: tuple[Code, ...] = ("claimSignature.validated", "assertion.dataHash.match"),
    informational: tuple[Code, ...] = (),
    failure: tuple[Code, ...] = (),
    ingredients: list[dict[str, Any]] | None = None,
    extra_assertions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    assertions: list[dict[str, Any]] = [
        {
            "label": "c2pa.actions.v2",
            "data": {
                "allActionsIncluded": True,
                "actions": [action("c2pa.created", IPTC + "trainedAlgorithmicMedia")]
                if actions is None
                else actions,
            },
        }
    ]
    if provider is not None:
        assertions.append({"label": "org.hallmark.generation", "data": {"provider": provider}})
    assertions += extra_assertions or []
    manifest: dict[str, Any] = {
        "title": "output.png",
        "claim_generator_info": [{"name": "Hallmark", "version": "0.1.0", "specVersion": "2.4.0"}],
        "assertions": assertions,
        "signature_info": signature_info
        if signature_info is not None
        else {
            "alg": "Es256",
            "issuer": "Example Signing Org",
            "common_name": "Example Signer",
            "cert_serial_number": "1234",
        },
        "ingredients": ingredients or [],
    }

    def codes(items: tuple[Code, ...]) -> list[dict[str, str]]:
        return [
            {"code": c, "url": "self#jumbf=/c2pa", "explanation": f"{c} happened"}
            if isinstance(c, str)
            else c
            for c in items
        ]

    return {
        "active_manifest": URN,
        "manifests": {URN: manifest},
        "validation_results": {
            "activeManifest": {
                "success": codes(success),
                "informational": codes(informational),
                "failure": codes(failure),
            }
        },
    }


def report_of(reading: RawReading, profiles: tuple[TrustProfile, ...] = (PROD,)) -> VerificationReport:
    """Every report in this file goes through here: the honesty rules hold for all of them."""
    report = build_report(reading, "image/png", profiles)
    assert report.media_type == "image/png"
    assert report.summary
    # Text the file supplied appears only inside quotation marks; Hallmark's own words never say it.
    assert not FORBIDDEN.search("".join(report.summary.split('"')[::2])), report.summary
    if report.outcome is Outcome.NONE:
        assert "says nothing about how the content was made" in report.summary
        assert "AI" not in report.summary
        assert "generated" not in report.summary
    return report


def manifest(
    state: str | None = "Trusted", trust_profile: str | None = "production", **kw: Any
) -> RawReading:
    return RawReading(kind="manifest", state=state, store=store(**kw), trust_profile=trust_profile)


# --- outcome and integrity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("Trusted", Outcome.TRUSTED),
        ("Valid", Outcome.VALID_UNTRUSTED),
        ("Invalid", Outcome.INVALID),
        (None, Outcome.INVALID),
        ("trusted", Outcome.INVALID),  # only the engine's exact words count
    ],
)
def test_outcome_mapping(state: str | None, outcome: Outcome) -> None:
    report = report_of(manifest(state))
    assert report.outcome is outcome
    assert report.integrity is Integrity.INTACT
    assert report.manifest_id == URN
    assert report.manifest_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        ("assertion.dataHash.mismatch",),
        ("claimSignature.mismatch",),
        ("assertion.hashedURI.mismatch",),
        ("signingCredential.untrusted", "assertion.bmffHash.mismatch"),
    ],
)
def test_tampered(failure: tuple[str, ...]) -> None:
    report = report_of(manifest("Invalid", failure=failure))
    assert report.outcome is Outcome.INVALID
    assert report.integrity is Integrity.TAMPERED
    assert "changed after signing" in report.summary
    assert "Do not rely" in report.summary
    assert all(code in report.summary for code in failure)
    assert [c.code for c in report.codes.failure] == list(failure)


@pytest.mark.parametrize(
    "failure",
    [("signingCredential.expired",), ("signingCredential.untrusted",), ("signingCredential.revoked",)],
)
def test_credential_failures_keep_integrity_intact(failure: tuple[str, ...]) -> None:
    report = report_of(manifest("Invalid", failure=failure))
    assert report.outcome is Outcome.INVALID
    assert report.integrity is Integrity.INTACT
    assert "signing credential is not valid" in report.summary
    assert failure[0] in report.summary


def test_absent() -> None:
    report = report_of(RawReading(kind="absent"))
    assert report.outcome is Outcome.NONE
    assert report.integrity is Integrity.ABSENT
    assert report.signer is None
    assert report.ai is None
    assert report.manifest_id is None
    assert report.timestamp.status is TimestampStatus.NONE


def test_remote_is_reported_not_fetched() -> None:
    url = "https://credentials.example.com/m/123.c2pa"
    report = report_of(RawReading(kind="remote", remote_url=url))
    assert report.outcome is Outcome.NONE
    assert report.integrity is Integrity.ABSENT
    assert report.remote_manifest is not None
    assert report.remote_manifest.url == url
    assert report.remote_manifest.fetched is False
    assert url in report.summary


def test_remote_without_url() -> None:
    report = report_of(RawReading(kind="remote"))
    assert report.remote_manifest is not None
    assert report.remote_manifest.url == ""
    assert report.remote_manifest.fetched is False
    assert "stored at an unknown location" in report.summary


def test_engine_error() -> None:
    report = report_of(RawReading(kind="error", error="Verify: claim could not be decoded"))
    assert report.outcome is Outcome.INVALID
    assert report.integrity is Integrity.UNREADABLE
    assert report.engine_error == "Verify: claim could not be decoded"
    assert "provenance as unknown" in report.summary


# --- signer and trust profiles ---------------------------------------------------------------------------


def test_trusted_by_production_profile() -> None:
    report = report_of(manifest("Trusted", "production"), (PROD, DEV))
    assert report.signer is not None
    assert report.signer.trusted is True
    assert report.signer.trust_profile == "production"
    assert report.signer.development is False
    assert report.development_trust is False
    assert report.signer.common_name == "Example Signer"
    assert report.signer.organization == "Example Signing Org"
    assert report.signer.algorithm == "Es256"
    assert report.signer.serial_number == "1234"
    assert "'production'" in report.summary
    assert "development" not in report.summary


def test_trusted_by_development_profile_is_flagged() -> None:
    report = report_of(manifest("Trusted", "development"), (PROD, DEV))
    assert report.signer is not None
    assert report.signer.trust_profile == "development"
    assert report.signer.development is True
    assert report.development_trust is True
    assert "not for production" in report.summary


def test_untrusted_signer_has_no_profile() -> None:
    report = report_of(manifest("Valid", "development"), (PROD, DEV))
    assert report.signer is not None
    assert report.signer.trusted is False
    assert report.signer.trust_profile is None
    assert report.signer.development is False
    assert report.development_trust is False
    assert "not on any trust list" in report.summary


def test_trusted_without_known_profile_does_not_print_none() -> None:
    report = report_of(manifest("Trusted", "gone"), (PROD,))
    assert report.outcome is Outcome.TRUSTED
    assert report.signer is not None
    assert (report.signer.trusted, report.signer.trust_profile) == (True, None)
    assert "trusted via a trust anchor." in report.summary
    assert "None" not in report.summary


def test_signer_subject_from_crjson() -> None:
    crjson = {
        "manifests": [
            {
                "label": URN,
                "signature": {
                    "certificateInfo": {
                        "subject": {"C": "US", "O": "Cert Org", "CN": "Cert Signer"},
                        "issuer": {"O": "Issuing CA", "CN": "Intermediate"},
                    }
                },
            }
        ]
    }
    reading = RawReading(kind="manifest", state="Valid", store=store(), crjson=crjson)
    signer = report_of(reading).signer
    assert signer is not None
    assert (signer.organization, signer.common_name) == ("Cert Org", "Cert Signer")
    assert signer.issuer == "O=Issuing CA, CN=Intermediate"


# --- AI declaration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "dst", "declared"),
    [
        ([action("c2pa.created", IPTC + "trainedAlgorithmicMedia")], IPTC + "trainedAlgorithmicMedia", True),
        (
            [action("c2pa.opened"), action("c2pa.edited", IPTC + "compositeWithTrainedAlgorithmicMedia")],
            IPTC + "compositeWithTrainedAlgorithmicMedia",
            True,
        ),
        ([action("c2pa.created", IPTC + "digitalCapture")], IPTC + "digitalCapture", False),
        (
            [
                action("c2pa.created", IPTC + "digitalCapture"),
                action("c2pa.edited", IPTC + "trainedAlgorithmicMedia"),
            ],
            IPTC + "trainedAlgorithmicMedia",
            True,
        ),
    ],
)
def test_ai_declaration(actions: list[dict[str, Any]], dst: str, declared: bool) -> None:
    report = report_of(manifest(actions=actions))
    assert report.ai is not None
    assert report.ai.declared is declared
    assert report.ai.digital_source_type == dst
    assert report.ai.actions == tuple(a["action"] for a in actions)
    assert 'model "test-diffusion" version "2.1"' in report.summary


def test_ai_words_in_summary() -> None:
    generated = report_of(manifest(actions=[action("c2pa.created", IPTC + "trainedAlgorithmicMedia")]))
    captured = report_of(manifest(actions=[action("c2pa.created", IPTC + "digitalCapture")]))
    assert "generated by an AI model" in generated.summary
    assert "captured by a device" in captured.summary
    assert captured.ai is not None
    assert captured.ai.description is not None
    assert "captured by a device" in captured.ai.description
    assert "AI" not in captured.summary


def test_unknown_source_type_named_by_code() -> None:
    report = report_of(manifest(actions=[action("c2pa.created", IPTC + "virtualRecording")]))
    assert report.ai is not None
    assert report.ai.declared is False
    assert "IPTC digital source type virtualRecording" in report.summary


def test_model_from_string_agent() -> None:
    report = report_of(
        manifest(actions=[action("c2pa.created", IPTC + "trainedAlgorithmicMedia", "Painter 3")])
    )
    assert report.ai is not None
    assert (report.ai.model_name, report.ai.model_version) == ("Painter 3", None)


def test_provider_from_hallmark_assertion_then_signer() -> None:
    ours = report_of(manifest(provider="Example AI"))
    assert ours.ai is not None
    assert ours.ai.provider == "Example AI"
    fallback = report_of(manifest(provider=None))
    assert fallback.ai is not None
    assert fallback.ai.provider == "Example Signing Org"


def test_no_actions_no_declaration() -> None:
    report = report_of(manifest(actions=[]))
    assert report.ai is not None
    assert report.ai.declared is False
    assert report.ai.digital_source_type is None
    assert "no declaration about AI" in report.summary


# --- timestamp, metadata, ingredients --------------------------------------------------------------------


TIME = "2026-08-02T12:30:06+00:00"
TS_TRUSTED = "timestamp cert trusted: Test TSA, trust list: "


@pytest.mark.parametrize(
    ("kw", "status", "profile_name", "trust_list"),
    [
        (
            {
                "success": (
                    "timeStamp.validated",
                    code("timeStamp.trusted", explanation=TS_TRUSTED + "hallmark-trust:tsa/tsa-prod"),
                )
            },
            TimestampStatus.TRUSTED,
            "tsa-prod",
            AnchorList.TSA,
        ),
        (
            {
                "success": (
                    code("timeStamp.trusted", explanation=TS_TRUSTED + "hallmark-trust:shared/prod/tsa-prod"),
                )
            },
            TimestampStatus.TRUSTED,
            "tsa-prod",
            AnchorList.TSA,
        ),
        (
            {
                "success": (
                    code("timeStamp.trusted", explanation=TS_TRUSTED + "hallmark-trust:signers/test-tsa"),
                )
            },
            TimestampStatus.TRUSTED,
            "test-tsa",
            AnchorList.SIGNERS,
        ),
        # The engine's word for a version 1 claim, whose authority it checks against no list.
        (
            {"success": (code("timeStamp.trusted", explanation="legacy timestamp cert trusted: Test TSA"),)},
            TimestampStatus.UNANCHORED,
            None,
            None,
        ),
        ({"informational": ("timeStamp.untrusted",)}, TimestampStatus.UNTRUSTED, None, None),
        ({"failure": ("timeStamp.mismatch",)}, TimestampStatus.UNTRUSTED, None, None),
        (
            {
                "success": (
                    code("timeStamp.trusted", explanation=TS_TRUSTED + "hallmark-trust:tsa/tsa-prod"),
                ),
                "failure": ("timeStamp.mismatch",),
            },
            TimestampStatus.UNTRUSTED,
            None,
            None,
        ),
        ({}, TimestampStatus.UNTRUSTED, None, None),
    ],
)
def test_timestamp_names_the_list_that_vouches_or_none(
    kw: dict[str, Any], status: TimestampStatus, profile_name: str | None, trust_list: AnchorList | None
) -> None:
    info = {"alg": "Es256", "issuer": "Org", "time": TIME}
    report = report_of(manifest("Valid", signature_info=info, **kw))
    assert report.timestamp.status is status
    assert report.timestamp.time == TIME
    assert report.timestamp.trust_profile == profile_name
    assert report.timestamp.trust_list is trust_list


def test_no_timestamp() -> None:
    report = report_of(manifest("Valid"))
    assert report.timestamp.status is TimestampStatus.NONE
    assert report.timestamp.time is None


def test_metadata_and_ingredients() -> None:
    ingredients = [
        {
            "title": "photo.jpg",
            "format": "image/jpeg",
            "relationship": "parentOf",
            "active_manifest": PARENT_URN,
            "validation_results": {"activeManifest": {"failure": [{"code": "signingCredential.expired"}]}},
        },
        {"title": "mask.png", "format": "image/png", "relationship": "componentOf"},
    ]
    report = report_of(manifest(ingredients=ingredients))
    assert report.title == "output.png"
    assert report.claim_generator == "Hallmark 0.1.0"
    first, second = report.ingredients
    assert (first.title, first.format, first.relationship, first.manifest_id) == (
        "photo.jpg",
        "image/jpeg",
        "parentOf",
        PARENT_URN,
    )
    assert first.validation_failures == ("signingCredential.expired",)
    assert (second.manifest_id, second.validation_failures) == (None, ())


# --- malformed engine output never raises ----------------------------------------------------------------


def _with(mutate: Any) -> dict[str, Any]:
    s = store()
    mutate(s, s["manifests"][URN])
    return s


MALFORMED_OK = {
    "empty": {},
    "active-none": {"active_manifest": None, "manifests": {URN: {}}},
    "active-int": {"active_manifest": 5},
    "active-unknown": {"active_manifest": "urn:c2pa:other", "manifests": {URN: {}}},
    "manifests-none": {"active_manifest": URN, "manifests": None},
    "results-none": _with(lambda s, m: s.update(validation_results=None)),
    "codes-junk": _with(
        lambda s, m: s["validation_results"].update(activeManifest={"failure": [None, "x", {"code": 5}]})
    ),
    "assertions-none": _with(lambda s, m: m.update(assertions=None)),
    "assertions-junk": _with(lambda s, m: m.update(assertions=[None, 1, "x", {"label": None}])),
    "actions-none": _with(lambda s, m: m["assertions"][0]["data"].update(actions=None)),
    "actions-junk": _with(lambda s, m: m["assertions"][0]["data"].update(actions=[None, "x", {"action": 5}])),
    "agent-int": _with(lambda s, m: m["assertions"][0]["data"]["actions"][0].update(softwareAgent=7)),
    "agent-junk-dict": _with(
        lambda s, m: m["assertions"][0]["data"]["actions"][0].update(softwareAgent={"name": 1})
    ),
    "dst-int": _with(lambda s, m: m["assertions"][0]["data"]["actions"][0].update(digitalSourceType=3)),
    "ours-data-list": _with(lambda s, m: m["assertions"][1].update(data=["provider"])),
    "signature-none": _with(lambda s, m: m.update(signature_info=None)),
    "signature-str": _with(lambda s, m: m.update(signature_info="Es256")),
    "signature-wrong-types": _with(lambda s, m: m.update(signature_info={"alg": 5, "issuer": [], "time": 7})),
    "ingredients-none": _with(lambda s, m: m.update(ingredients=None)),
    "ingredients-junk": _with(lambda s, m: m.update(ingredients=[None, "x", {"title": 5}])),
    "generator-junk": _with(lambda s, m: m.update(claim_generator_info=[None], title=5)),
    "generator-str": _with(lambda s, m: m.update(claim_generator_info="Hallmark", claim_generator=5)),
}

# Shapes that once crashed the report builder (.get() on non-dict engine JSON values).
MALFORMED_ONCE_RAISED = {
    "manifests-list": {"active_manifest": URN, "manifests": [{"label": URN}]},
    "manifest-none": {"active_manifest": URN, "manifests": {URN: None}},
    "results-list": _with(lambda s, m: s.update(validation_results=["x"])),
    "active-results-list": _with(lambda s, m: s["validation_results"].update(activeManifest=["x"])),
    "actions-data-list": _with(lambda s, m: m["assertions"][0].update(data=[{"action": "c2pa.created"}])),
    "custom-actions-label-str": _with(
        lambda s, m: m["assertions"].append({"label": "c2pa.actions.x", "data": "x"})
    ),
    "ingredient-results-list": _with(lambda s, m: m.update(ingredients=[{"validation_results": ["x"]}])),
}


STATE_OUTCOME = {"Trusted": Outcome.TRUSTED, "Valid": Outcome.VALID_UNTRUSTED, "Invalid": Outcome.INVALID}


@pytest.mark.parametrize("state", ["Trusted", "Valid", "Invalid", None])
@pytest.mark.parametrize("raw", MALFORMED_OK.values(), ids=MALFORMED_OK.keys())
def test_malformed_store_keeps_the_engines_state(raw: dict[str, Any], state: str | None) -> None:
    """A wrong shape is ignored where it stands: the outcome is still the engine's state, exactly."""
    report = report_of(RawReading(kind="manifest", state=state, store=raw, trust_profile="production"))
    assert report.outcome is STATE_OUTCOME.get(state or "", Outcome.INVALID)
    assert report.integrity is Integrity.INTACT  # no failure code survived the junk


@pytest.mark.parametrize("raw", MALFORMED_ONCE_RAISED.values(), ids=MALFORMED_ONCE_RAISED.keys())
def test_malformed_store_shapes_degrade_to_what_is_readable(raw: dict[str, Any]) -> None:
    """Each broken part reads as absent; every other part of the report is still read."""
    report = report_of(RawReading(kind="manifest", state="Valid", store=raw))
    assert report.outcome is Outcome.VALID_UNTRUSTED
    assert report.codes.failure == ()
    manifest_readable = isinstance(raw.get("manifests"), dict) and isinstance(raw["manifests"].get(URN), dict)
    assert (report.signer is not None) is manifest_readable
    assert report.ai is not None
    assert report.manifest_count == (len(raw["manifests"]) if isinstance(raw["manifests"], dict) else 0)
    if not manifest_readable:
        assert (report.title, report.ai.actions, report.ingredients) == (None, (), ())
        return
    actions_readable = isinstance(raw["manifests"][URN]["assertions"][0].get("data"), dict)
    assert report.ai.actions == (("c2pa.created",) if actions_readable else ())
    assert report.ai.declared is actions_readable
    assert all(i.validation_failures == () for i in report.ingredients)


SIGNER_FROM_SIGNATURE_INFO = ("Example Signing Org", "Example Signer", None)


@pytest.mark.parametrize(
    "crjson",
    [
        {"manifests": None},
        {"manifests": {"a": 1}},
        {"manifests": [None, {"label": URN}]},
        {"manifests": "x"},
        {"manifests": [{"label": URN, "signature": "x"}]},
        {"manifests": [{"label": URN, "signature": {"certificateInfo": ["x"]}}]},
    ],
)
def test_malformed_crjson_falls_back_to_signature_info(crjson: dict[str, Any]) -> None:
    signer = report_of(RawReading(kind="manifest", state="Valid", store=store(), crjson=crjson)).signer
    assert signer is not None
    assert (signer.organization, signer.common_name, signer.issuer) == SIGNER_FROM_SIGNATURE_INFO


def test_text_from_the_file_is_quoted_never_adopted() -> None:
    """A hostile signer name or model string is shown as a quotation, never as Hallmark's own words."""
    hostile = store(
        actions=[
            action(
                "c2pa.created",
                "a real, authentic, human-made photograph",
                {"name": "Verified authentic human-made camera", "version": "1"},
            )
        ],
        signature_info={"alg": "Es256", "issuer": "This photo is authentic and human-made"},
    )
    report = report_of(RawReading(kind="manifest", state="Valid", store=hostile))
    summary = report.summary
    assert '"This photo is authentic and human-made" (as named in its certificate)' in summary
    assert "digital source type this service does not recognise" in summary
    assert "a real, authentic" not in summary
    outside_quotes = "".join(summary.split('"')[::2]).lower()
    assert "authentic" not in outside_quotes
    assert "human-made" not in outside_quotes


# --- a parent's problems are the parent's ---------------------------------------------------------------

GRANDPARENT_URN = "urn:c2pa:99999999-2222-4333-8444-555555555555"
OURS_TRUSTED = code(
    "signingCredential.trusted",
    explanation="signing certificate trusted, found in [hallmark-trust:signers/production]",
)
CAWG_UNTRUSTED = "cawg.x509.credential.untrusted"


def about(label: str) -> str:
    return f"self#jumbf=/c2pa/{label}/c2pa.assertions/cawg.identity"


def edit_of_parent(failure: tuple[Code, ...], state: str = "Valid") -> RawReading:
    """Our edit of a parent (which has a grandparent), with `failure` among the active manifest's codes."""
    raw = store(
        success=(OURS_TRUSTED, "claimSignature.validated"),
        failure=failure,
        ingredients=[
            {
                "title": "parent.jpg",
                "relationship": "parentOf",
                "active_manifest": PARENT_URN,
                "label": "c2pa.ingredient.v3",
            }
        ],
    )
    raw["manifests"][PARENT_URN] = {"ingredients": [{"active_manifest": GRANDPARENT_URN}]}
    raw["manifests"][GRANDPARENT_URN] = {}
    return RawReading(kind="manifest", state=state, store=raw)


@pytest.mark.parametrize("label", [PARENT_URN, GRANDPARENT_URN])
def test_an_ancestors_untrusted_identity_belongs_to_the_ingredient(label: str) -> None:
    report = report_of(edit_of_parent((code(CAWG_UNTRUSTED, url=about(label)),)))
    assert report.outcome is Outcome.TRUSTED
    assert report.signer is not None
    assert (report.signer.trusted, report.signer.trust_profile) == (True, "production")
    assert report.codes.failure == ()
    (parent,) = report.ingredients
    assert parent.validation_failures == (CAWG_UNTRUSTED,)
    assert "trusted via the 'production' trust profile" in report.summary
    assert "1 of its 1 ingredients carries credentials with problems of their own" in report.summary


@pytest.mark.parametrize(
    "url",
    [about(URN), "self#jumbf=c2pa.assertions/cawg.identity", "", about("urn:c2pa:not-an-ingredient")],
)
def test_a_failure_about_the_active_or_an_unrelated_manifest_stays_the_active_manifests(url: str) -> None:
    report = report_of(edit_of_parent((code(CAWG_UNTRUSTED, url=url),)))
    assert report.outcome is Outcome.VALID_UNTRUSTED
    assert report.signer is not None
    assert report.signer.trusted is False
    assert [c.code for c in report.codes.failure] == [CAWG_UNTRUSTED]
    assert report.ingredients[0].validation_failures == ()
    assert "ingredients" not in report.summary


def test_an_own_failure_still_invalidates_beside_a_parents() -> None:
    failure = (code(CAWG_UNTRUSTED, url=about(PARENT_URN)), code("assertion.dataHash.mismatch"))
    report = report_of(edit_of_parent(failure, state="Invalid"))
    assert report.outcome is Outcome.INVALID
    assert report.integrity is Integrity.TAMPERED
    assert [c.code for c in report.codes.failure] == ["assertion.dataHash.mismatch"]
    assert report.ingredients[0].validation_failures == (CAWG_UNTRUSTED,)


def test_an_own_untrusted_credential_stays_untrusted_beside_a_parents_failure() -> None:
    raw = edit_of_parent((code(CAWG_UNTRUSTED, url=about(PARENT_URN)), code("signingCredential.untrusted")))
    raw.store["validation_results"]["activeManifest"]["success"] = []
    report = report_of(raw)
    assert report.outcome is Outcome.VALID_UNTRUSTED
    assert [c.code for c in report.codes.failure] == ["signingCredential.untrusted"]


def test_ingredient_delta_failures_belong_to_that_ingredient() -> None:
    raw = edit_of_parent(())
    raw.store["validation_results"]["ingredientDeltas"] = [
        {
            "ingredientAssertionURI": f"self#jumbf=/c2pa/{URN}/c2pa.assertions/c2pa.ingredient.v3",
            "validationDeltas": {"failure": [{"code": "assertion.dataHash.mismatch"}, None]},
        },
        {"ingredientAssertionURI": f"self#jumbf=/c2pa/{URN}/c2pa.assertions/c2pa.ingredient.v3__1"},
    ]
    report = report_of(raw)
    assert report.ingredients[0].validation_failures == ("assertion.dataHash.mismatch",)
    assert report.outcome is Outcome.VALID_UNTRUSTED  # the engine's state: no code moved out of it
    assert report.codes.failure == ()


# --- actions with their time, training and mining preferences ------------------------------------------


def test_each_action_keeps_its_when_and_source_type() -> None:
    report = report_of(
        manifest(
            actions=[
                action("c2pa.opened"),
                action("c2pa.edited", IPTC + "compositeWithTrainedAlgorithmicMedia"),
            ]
        )
    )
    assert report.ai is not None
    assert report.ai.action_details == (
        ActionRecord("c2pa.opened", "2026-08-02T12:30:05Z", None),
        ActionRecord("c2pa.edited", "2026-08-02T12:30:05Z", IPTC + "compositeWithTrainedAlgorithmicMedia"),
    )
    no_time = {"action": "c2pa.created", "when": 5}
    assert report_of(manifest(actions=[no_time])).ai.action_details == (ActionRecord("c2pa.created"),)  # type: ignore[union-attr]


def test_training_mining_preferences_are_reported() -> None:
    entries = {
        "cawg.ai_training": {"use": "notAllowed"},
        "cawg.data_mining": {"use": "constrained", "constraint_info": "ask first"},
        "cawg.ai_inference": {"use": 5},
        "cawg.junk": "x",
    }
    report = report_of(
        manifest(extra_assertions=[{"label": "cawg.training-mining", "data": {"entries": entries}}])
    )
    assert report.training_mining == (
        TrainingMiningPreference("cawg.ai_training", "notAllowed"),
        TrainingMiningPreference("cawg.data_mining", "constrained", "ask first"),
    )
    assert report_of(manifest()).training_mining == ()
