"""Pure interpretation of what the engine said into Hallmark's verification report.

No engine calls here: input is the reader's JSON (dicts), so every rule is unit-testable. The report never
says "authentic" or "human-made": credentials tell who signed what and what they declare, nothing more.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from signing.attribution import ingredients, lineage, own_state, split_codes
from signing.jsonshape import as_dict as _dict
from signing.jsonshape import as_list as _list
from signing.jsonshape import as_str as _str
from signing.manifest import HALLMARK_ASSERTION
from signing.models import (
    ActionRecord,
    AiDeclaration,
    AnchorList,
    Codes,
    Integrity,
    Outcome,
    RemoteManifest,
    RevocationStatus,
    SignerInfo,
    StatusCode,
    TimestampInfo,
    TimestampStatus,
    TrainingMiningPreference,
    VerificationReport,
)
from signing.quoting import neutral_text, quoted
from signing.reading import RawReading
from signing.trust import TrustProfile, parse_trust_list_uri
from signing.vocabulary import AI_SOURCE_TYPES, IPTC_DST_BASE, SOURCE_TYPE_WORDS, expand_source_type

# Failures about the credential or its timestamp, not about the content or the manifest's structure.
_CREDENTIAL_PREFIXES = ("signingCredential.", "timeStamp.", "cawg.")
# ...except a timestamp that does not belong to the signature it claims to cover: that is an alteration.
_ALTERATION_CODES = frozenset({"timeStamp.mismatch"})

_TRAINING_MINING_LABELS = ("cawg.training-mining", "c2pa.training-mining")

NO_PROVENANCE = (
    "No content credentials were found in this file. That says nothing about how the content was made."
)


def build_report(
    reading: RawReading, media_type: str, profiles: tuple[TrustProfile, ...]
) -> VerificationReport:
    if reading.kind == "absent":
        return VerificationReport(Outcome.NONE, NO_PROVENANCE, media_type, Integrity.ABSENT)
    if reading.kind == "remote":
        # Hallmark's own words are never quoted as if the file had said them.
        where = quoted(reading.remote_url, 120) if reading.remote_url else "an unknown location"
        return VerificationReport(
            Outcome.NONE,
            "No embedded content credentials; the file points to credentials stored at "
            f"{where}, which Hallmark does not fetch. That says nothing about how the content was "
            "made.",
            media_type,
            Integrity.ABSENT,
            remote_manifest=RemoteManifest(url=reading.remote_url or "", fetched=False),
        )
    if reading.kind == "error":
        return VerificationReport(
            Outcome.INVALID,
            "The file carries content credentials that could not be validated "
            f"(engine: {quoted(reading.error or 'unknown error', 120)}). Treat its provenance as unknown.",
            media_type,
            Integrity.UNREADABLE,
            engine_error=reading.error,
        )
    return _manifest_report(reading, media_type, profiles)


def _manifest_report(
    reading: RawReading, media_type: str, profiles: tuple[TrustProfile, ...]
) -> VerificationReport:
    store = _dict(reading.store)
    active_id = _str(store.get("active_manifest"))
    manifests = _dict(store.get("manifests"))
    manifest = _dict(manifests.get(active_id)) if active_id else {}
    results = _dict(store.get("validation_results"))
    # The engine lists some statuses of ingredient manifests (a parent's CAWG identity) among the active
    # manifest's: each is judged where its URL points, so a parent's problem stays the parent's.
    ancestors = set(lineage(active_id, manifests)) - {active_id}
    codes, foreign = split_codes(_codes(_dict(results.get("activeManifest"))), ancestors)
    state = own_state(reading.state, codes, foreign)
    trusted, profile = _signer_trust(state, reading.trust_profile, results, codes, profiles)
    signer = _signer(manifest, _cr_manifest(reading.crjson, active_id), trusted, profile)
    failures = [c.code for c in codes.failure]
    integrity = Integrity.INTACT
    if any(code in _ALTERATION_CODES or not code.startswith(_CREDENTIAL_PREFIXES) for code in failures):
        integrity = Integrity.TAMPERED
    outcome = {"Trusted": Outcome.TRUSTED, "Valid": Outcome.VALID_UNTRUSTED}.get(state or "", Outcome.INVALID)
    if outcome is Outcome.TRUSTED and not trusted:
        # The engine trusted the signer through a timestamp authority's anchors: not a signer trust list.
        outcome = Outcome.VALID_UNTRUSTED
    ai = _ai(manifest, signer)
    report = VerificationReport(
        outcome=outcome,
        summary="",
        media_type=media_type,
        integrity=integrity,
        manifest_id=active_id,
        title=_str(manifest.get("title")),
        claim_generator=_generator(manifest),
        signer=signer,
        timestamp=_timestamp(manifest, codes),
        revocation=_revocation(codes),
        ai=ai,
        ingredients=ingredients(manifest, manifests, foreign, _list(results.get("ingredientDeltas"))),
        codes=codes,
        development_trust=bool(profile and profile.development and outcome is Outcome.TRUSTED),
        manifest_count=len(manifests),
        training_mining=_training_mining(manifest),
    )
    return _with_summary(report, failures)


def _codes(section: dict[str, Any]) -> Codes:
    def conv(items: Any) -> tuple[StatusCode, ...]:
        out = []
        for item in _list(items):
            if isinstance(item, dict) and isinstance(item.get("code"), str):
                out.append(
                    StatusCode(item["code"], str(item.get("explanation") or ""), str(item.get("url") or ""))
                )
        return tuple(out)

    return Codes(
        conv(section.get("success")), conv(section.get("informational")), conv(section.get("failure"))
    )


def _cr_manifest(crjson: dict[str, Any], label: Any) -> dict[str, Any]:
    for m in _list(_dict(crjson).get("manifests")):
        if isinstance(m, dict) and m.get("label") == label:
            return m
    return {}


def _dn(name: Any) -> str | None:
    if not isinstance(name, dict) or not name:
        return None
    return ", ".join(f"{k}={v}" for k, v in name.items() if isinstance(v, str))


def _signer(
    manifest: dict[str, Any], cr: dict[str, Any], trusted: bool, profile: TrustProfile | None
) -> SignerInfo | None:
    info = manifest.get("signature_info")
    if not isinstance(info, dict):
        return None
    cert = _dict(_dict(cr.get("signature")).get("certificateInfo"))
    subject = _dict(cert.get("subject"))
    return SignerInfo(
        common_name=_str(subject.get("CN")) or _str(info.get("common_name")),
        organization=_str(subject.get("O")) or _str(info.get("issuer")),
        issuer=_dn(cert.get("issuer")),
        algorithm=_str(info.get("alg")),
        serial_number=_str(info.get("cert_serial_number")),
        trusted=trusted,
        trust_profile=profile.name if trusted and profile else None,
        development=bool(trusted and profile and profile.development),
    )


def _signer_trust(
    state: str | None,
    reading_profile: str | None,
    results: dict[str, Any],
    codes: Codes,
    profiles: tuple[TrustProfile, ...],
) -> tuple[bool, TrustProfile | None]:
    """Whether a signer trust list trusted the signer, and which profile's.

    The engine names the anchor set that trusted the signer (`trustListUri`, and in the explanation of
    `signingCredential.trusted`). It keeps one anchor store for signers and timestamps, so a signer that
    chains to a timestamp authority's anchors comes back `Trusted`: Hallmark does not count that.
    Readings without a Hallmark trust-list URI (older settings, hand-made readings) keep the engine's word
    and the profile of the context that trusted them.
    """
    if state != "Trusted":
        return False, None
    named = parse_trust_list_uri(_str(results.get("trustListUri")) or "")
    if named is None:
        named = next(
            (
                parsed
                for c in codes.success
                if c.code == "signingCredential.trusted"
                and (parsed := parse_trust_list_uri(c.explanation)) is not None
            ),
            None,
        )
    if named is not None and named.signer_profile is None:
        return False, None
    if named is None and any(p.tsa_anchors_pem for p in profiles):
        # Fail closed: without the engine naming the list, a TSA anchor could be what vouched for it.
        return False, None
    name = named.signer_profile if named is not None else reading_profile
    return True, next((p for p in profiles if p.name == name), None)


def _timestamp(manifest: dict[str, Any], codes: Codes) -> TimestampInfo:
    """Which configured list vouches for the timestamp authority, or that none does.

    Only a `timeStamp.trusted` whose explanation names a Hallmark trust list ("..., trust list: <uri>")
    counts as trusted. The engine also says `timeStamp.trusted` for a version 1 claim without checking the
    authority against any list: with no list named, that is `unanchored`, never `trusted`.
    """
    time = _str(_dict(manifest.get("signature_info")).get("time"))
    seen = [c.code for c in (*codes.success, *codes.informational, *codes.failure)]
    failed = any(c.code.startswith("timeStamp.") for c in codes.failure)
    if "timeStamp.trusted" in seen and not failed:
        named = next(
            (
                parsed
                for c in (*codes.success, *codes.informational)
                if c.code == "timeStamp.trusted" and (parsed := parse_trust_list_uri(c.explanation))
            ),
            None,
        )
        if named is None:
            return TimestampInfo(TimestampStatus.UNANCHORED, time)
        # A profile's TSA anchors when they hold the authority's root; else the signer anchors the engine
        # used (it keeps one anchor pool for both purposes).
        if named.tsa_profile is not None:
            return TimestampInfo(TimestampStatus.TRUSTED, time, named.tsa_profile, AnchorList.TSA)
        return TimestampInfo(TimestampStatus.TRUSTED, time, named.signer_profile, AnchorList.SIGNERS)
    if any(code.startswith("timeStamp.") for code in seen) or time:
        return TimestampInfo(TimestampStatus.UNTRUSTED, time)
    return TimestampInfo(TimestampStatus.NONE)


# Revocation as the engine checked it (OCSP, only when responders are allow-listed). `ocsp.skipped`
# (fetching off), `ocsp.inaccessible` (responder not allowed or unreachable), `ocsp.unknown` and no OCSP
# code at all all mean the status is not known.
_REVOKED = "signingCredential.ocsp.revoked"
_NOT_REVOKED = "signingCredential.ocsp.notRevoked"


def _revocation(codes: Codes) -> RevocationStatus:
    if any(c.code == _REVOKED for c in (*codes.failure, *codes.informational, *codes.success)):
        return RevocationStatus.REVOKED
    if any(c.code == _NOT_REVOKED for c in codes.success):
        return RevocationStatus.GOOD
    return RevocationStatus.NOT_CHECKED


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for assertion in _list(manifest.get("assertions")):
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            out.extend(a for a in _list(_dict(assertion.get("data")).get("actions")) if isinstance(a, dict))
    return out


def _assertion(manifest: dict[str, Any], label: str) -> dict[str, Any]:
    for assertion in _list(manifest.get("assertions")):
        if isinstance(assertion, dict) and assertion.get("label") == label:
            return _dict(assertion.get("data"))
    return {}


def _ai(manifest: dict[str, Any], signer: SignerInfo | None) -> AiDeclaration:
    actions = _actions(manifest)
    typed = [a for a in actions if isinstance(a.get("digitalSourceType"), str)]
    chosen = next(
        (a for a in typed if a["digitalSourceType"] in AI_SOURCE_TYPES), typed[0] if typed else None
    )
    dst = chosen.get("digitalSourceType") if chosen else None
    agent = (chosen or {}).get("softwareAgent")
    model_name = _str(agent.get("name")) if isinstance(agent, dict) else _str(agent)
    model_version = _str(agent.get("version")) if isinstance(agent, dict) else None
    ours = _assertion(manifest, HALLMARK_ASSERTION)
    provider = _str(ours.get("provider")) or (signer.organization if signer else None)
    return AiDeclaration(
        declared=dst in AI_SOURCE_TYPES,
        digital_source_type=dst,
        description=SOURCE_TYPE_WORDS.get(dst or ""),
        model_name=model_name,
        model_version=model_version,
        provider=provider,
        actions=tuple(str(a.get("action")) for a in actions if a.get("action")),
        action_details=tuple(
            ActionRecord(
                action=str(a.get("action")),
                when=_str(a.get("when")),
                digital_source_type=_str(a.get("digitalSourceType")),
            )
            for a in actions
            if a.get("action")
        ),
    )


def _training_mining(manifest: dict[str, Any]) -> tuple[TrainingMiningPreference, ...]:
    out: list[TrainingMiningPreference] = []
    for label in _TRAINING_MINING_LABELS:
        for use, entry in _dict(_assertion(manifest, label).get("entries")).items():
            value = _str(_dict(entry).get("use"))
            if isinstance(use, str) and value is not None:
                constraint = _str(_dict(entry).get("constraint_info"))
                out.append(TrainingMiningPreference(use, value, constraint))
    return tuple(out)


def _generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        name, version = _str(info[0].get("name")), _str(info[0].get("version"))
        return f"{name} {version}" if name and version else name
    return _str(manifest.get("claim_generator"))


def _source_type_words(uri: str) -> str:
    """Only codes of the IPTC vocabulary are named; any other string is the file's text, not ours."""
    known = expand_source_type(uri) if uri.startswith(IPTC_DST_BASE) else None
    if known is not None:
        return f"has the IPTC digital source type {known.removeprefix(IPTC_DST_BASE)}"
    return "has a digital source type this service does not recognise"


def _with_summary(report: VerificationReport, failures: list[str]) -> VerificationReport:
    signer = report.signer
    name = (signer.organization or signer.common_name) if signer else None
    who = f"{quoted(name)} (as named in its certificate)" if name else "an unnamed signer"
    ai = report.ai
    declares = ""
    if ai and ai.digital_source_type:
        words = ai.description or _source_type_words(ai.digital_source_type)
        model = " ".join(
            part
            for part in (
                f"model {quoted(ai.model_name)}" if ai.model_name else "",
                f"version {quoted(ai.model_version, 40)}" if ai.model_version else "",
            )
            if part
        )
        declares = f" They declare that the content {words}" + (f" ({model})." if model else ".")
    elif ai is not None:
        declares = " They make no declaration about AI involvement."
    shown = ", ".join(neutral_text(code) for code in sorted(set(failures))[:4])
    because = f" ({shown})" if shown else ""
    if report.outcome is Outcome.TRUSTED:
        via = (
            f"the '{signer.trust_profile}' trust profile"
            if signer and signer.trust_profile
            else "a trust anchor"
        )
        dev = " (development trust: not for production use)" if report.development_trust else ""
        text = f"Content credentials are intact and signed by {who}, trusted via {via}{dev}.{declares}"
    elif report.outcome is Outcome.VALID_UNTRUSTED:
        text = (
            f"Content credentials are intact and signed by {who}, a signer not on any trust list this "
            f"service uses.{declares}"
        )
    elif report.integrity is Integrity.TAMPERED:
        text = (
            f"Content credentials are present but the file or its manifest changed after signing{because}."
            " Do not rely on what they declare."
        )
    elif shown:
        text = (
            f"Content credentials are present but the signing credential is not valid ({shown}). "
            "Do not rely on what they declare."
        )
    else:
        text = "Content credentials are present but did not validate. Do not rely on what they declare."
    flawed = sum(1 for i in report.ingredients if i.validation_failures)
    if flawed:
        text += (
            f" {flawed} of its {len(report.ingredients)} ingredients carr{'ies' if flawed == 1 else 'y'} "
            "credentials with problems of their own (see ingredients)."
        )
    return replace(report, summary=text)
