"""The C2PA Certificate Policy's claim-signing leaf profile (cert-profiles/claimSigningLeaf.al1.cert.yaml; AL2
differs only in validity and the assurance-level value): what a CA on the C2PA trust list issues."""

from __future__ import annotations

import uuid
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from signing.doctor.engine_checks import signature_algorithm_finding
from signing.doctor.findings import Check, Finding, cp_rule
from signing.doctor.x509util import (
    assurance_level_value,
    days_of,
    der_tlv,
    describe_key,
    eku_names,
    ext_of,
    key_type_problem,
    key_usage_bits,
    missing_subject_parts,
    name_of,
    raw_ext_of,
)
from signing.oids import (
    C2PA_AL1,
    C2PA_AL2,
    C2PA_ASSURANCE_LEVEL,
    C2PA_CLAIM_SIGNING_EKU,
    C2PA_CPL_RECORD,
    C2PA_POLICY,
    DOCUMENT_SIGNING_EKU,
)

_AL_LIMITS = {C2PA_AL1: (366, "Assurance Level 1"), C2PA_AL2: (90, "Assurance Level 2")}

_CA_ISSUES_IT = (
    "Set by the issuing CA: get the certificate from a CA on the C2PA trust list, under the C2PA "
    "Certificate Policy (`hallmark keys generate` writes a CSR it accepts)."
)


def profile_checks_for(leaf: x509.Certificate, issuer: x509.Certificate | None) -> list[Check]:
    return [
        ("version", lambda: _p_version(leaf)),
        ("serial", lambda: _p_serial(leaf)),
        ("signature-algorithm", lambda: signature_algorithm_finding(leaf, profile=True)),
        ("validity-length", lambda: _p_validity_length(leaf)),
        ("subject", lambda: _p_subject(leaf)),
        ("key-type", lambda: _p_key_type(leaf)),
        ("ski", lambda: _p_ski(leaf)),
        ("aki", lambda: _p_aki(leaf, issuer)),
        ("key-usage", lambda: _p_key_usage(leaf)),
        ("ca-flag", lambda: _p_basic_constraints(leaf)),
        ("eku", lambda: _p_eku(leaf)),
        ("policy", lambda: _p_policy(leaf)),
        ("aia-ocsp", lambda: _p_aia(leaf)),
        ("crl-dp", lambda: _p_crl_dp(leaf)),
        ("assurance-level", lambda: _p_assurance_level(leaf)),
        ("cpl-record", lambda: _p_cpl_record(leaf)),
    ]


def _broken(slug: str, rule: str, problems: list[str]) -> Finding:
    """An error finding: the profile's rule, what this certificate gets wrong, and who can fix it."""
    return Finding(slug, "error", cp_rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)


def _verdict(slug: str, rule: str, problems: list[str], ok: str) -> Finding:
    return _broken(slug, rule, problems) if problems else Finding(slug, "ok", ok)


def _p_version(leaf: x509.Certificate) -> Finding:
    if leaf.version is x509.Version.v3:
        return Finding("version", "ok", "X.509 version 3.")
    return Finding("version", "error", cp_rule("Version: v3; this certificate is v1."), _CA_ISSUES_IT)


def _p_serial(leaf: x509.Certificate) -> Finding:
    serial = leaf.serial_number
    if serial > 0 and serial.bit_length() <= 159:
        return Finding("serial", "ok", "Serial number: a positive integer of at most 20 octets.")
    return Finding(
        "serial",
        "error",
        cp_rule("Serial Number: positive integer up to 20 octets; ")
        + ("this one is not positive." if serial <= 0 else f"this one has {serial.bit_length()} bits."),
        _CA_ISSUES_IT,
    )


def _declared_level(leaf: x509.Certificate) -> str | None:
    ext = raw_ext_of(leaf, C2PA_ASSURANCE_LEVEL)
    if ext is None or not isinstance(ext.value, x509.UnrecognizedExtension):
        return None
    return assurance_level_value(ext.value.value)


def _p_validity_length(leaf: x509.Certificate) -> Finding:
    level = _declared_level(leaf)
    limit, label = _AL_LIMITS.get(level or C2PA_AL1, _AL_LIMITS[C2PA_AL1])
    length = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if length > timedelta(days=limit):
        return Finding(
            "validity-length",
            "error",
            cp_rule(
                f"Validity Period: max {limit} days ({label}); "
                f"this certificate is valid for {days_of(length)}."
            ),
            f"Certificates under the C2PA policy live at most {limit} days: plan automatic renewal. "
            + _CA_ISSUES_IT,
        )
    return Finding("validity-length", "ok", f"Validity period {days_of(length)} (max {limit}, {label}).")


def _p_subject(leaf: x509.Certificate) -> Finding:
    missing = missing_subject_parts(leaf.subject)
    if missing:
        return Finding(
            "subject",
            "error",
            cp_rule(
                f"Subject Name: requires C, O and CN (matching the CPL entry); {', '.join(missing)} missing."
            ),
            "Request the certificate with country (C), organization (O) and common name (CN) exactly as in "
            "your Conforming Products List entry (`hallmark keys generate --org ... --cn ...`).",
        )
    return Finding(
        "subject",
        "ok",
        f"Subject {name_of(leaf)} has C, O and CN (it must also match your CPL entry; not checked here).",
    )


def _p_key_type(leaf: x509.Certificate) -> Finding:
    problem = key_type_problem(leaf.public_key())
    if problem:
        return Finding(
            "key-type",
            "error",
            cp_rule(f"Subject Public Key Info: RSA 2048+ bits, EC P-256/P-384/P-521 or Ed25519; {problem}."),
            "Generate a new key (`hallmark keys generate --alg es256`) and request a certificate for it.",
        )
    return Finding("key-type", "ok", f"Public key {describe_key(leaf.public_key())}.")


def _criticality(ext: x509.Extension[x509.ExtensionType], critical: bool) -> list[str]:
    """The problems with the extension's criticality: none, or one."""
    if ext.critical == critical:
        return []
    return ["it is marked critical" if ext.critical else "it is not marked critical"]


def _p_ski(leaf: x509.Certificate) -> Finding:
    rule = "Subject Key Identifier: MUST, non-critical, SHA-1 of the public key (RFC 5280 method 1)"
    ski = ext_of(leaf, x509.SubjectKeyIdentifier)
    if ski is None:
        return _broken("ski", rule, ["it is missing"])
    problems = _criticality(ski, False)
    if ski.value.digest != x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest:
        problems.append("its value is not the method-1 hash of the public key")
    return _verdict("ski", rule, problems, "Subject Key Identifier present (method 1).")


def _p_aki(leaf: x509.Certificate, issuer: x509.Certificate | None) -> Finding:
    rule = "Authority Key Identifier: MUST, non-critical, keyIdentifier matching the issuing CA's SKI"
    aki = ext_of(leaf, x509.AuthorityKeyIdentifier)
    if aki is None:
        return _broken("aki", rule, ["it is missing"])
    problems = _criticality(aki, False)
    if aki.value.key_identifier is None:
        problems.append("it has no keyIdentifier (only issuer/serial)")
    elif issuer is not None:
        issuer_ski = ext_of(issuer, x509.SubjectKeyIdentifier)
        expected = (
            issuer_ski.value.digest
            if issuer_ski is not None
            else x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
        )
        if aki.value.key_identifier != expected:
            problems.append(f"its keyIdentifier does not match the SKI of the issuer ({name_of(issuer)})")
    if problems:
        return _broken("aki", rule, problems)
    return Finding(
        "aki",
        "ok",
        "Authority Key Identifier matches the issuing CA."
        if issuer is not None
        else "Authority Key Identifier present (the issuing CA is not in the chain to compare).",
    )


def _p_key_usage(leaf: x509.Certificate) -> Finding:
    rule = "Key Usage: MUST, critical, digitalSignature and nonRepudiation (contentCommitment)"
    ku = ext_of(leaf, x509.KeyUsage)
    if ku is None:
        return _broken("key-usage", rule, ["it is missing"])
    bits = key_usage_bits(ku.value)
    problems = _criticality(ku, True)
    missing = [b for b in ("digitalSignature", "nonRepudiation") if b not in bits]
    if missing:
        problems.append(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
    extra = sorted(bits - {"digitalSignature", "nonRepudiation"})
    if extra:
        problems.append(f"it also allows {', '.join(extra)}")
    return _verdict("key-usage", rule, problems, "Key usage digitalSignature + nonRepudiation, critical.")


def _p_basic_constraints(leaf: x509.Certificate) -> Finding:
    rule = "Basic Constraints: MUST, critical, cA=FALSE"
    bc = ext_of(leaf, x509.BasicConstraints)
    if bc is None:
        return _broken("ca-flag", rule, ["it is missing"])
    problems = _criticality(bc, True)
    if bc.value.ca:
        problems.append("cA is TRUE")
    return _verdict("ca-flag", rule, problems, "Basic constraints cA=FALSE, critical.")


def _p_eku(leaf: x509.Certificate) -> Finding:
    rule = (
        "Extended Key Usage: MUST, non-critical, c2pa-kp-claimSigning (1.3.6.1.4.1.62558.2.1) plus "
        "emailProtection or documentSigning"
    )
    eku = ext_of(leaf, x509.ExtendedKeyUsage)
    if eku is None:
        return _broken("eku", rule, ["it is missing"])
    usages = list(eku.value)
    problems = _criticality(eku, False)
    if C2PA_CLAIM_SIGNING_EKU not in usages:
        problems.append("c2pa-kp-claimSigning is missing")
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in usages and DOCUMENT_SIGNING_EKU not in usages:
        problems.append("neither emailProtection nor documentSigning is present")
    if problems:
        return Finding(
            "eku",
            "error",
            cp_rule(f"{rule}; it has {eku_names(usages)}: {'; '.join(problems)}."),
            _CA_ISSUES_IT,
        )
    return Finding("eku", "ok", f"Extended key usage {eku_names(usages)}.")


def _p_policy(leaf: x509.Certificate) -> Finding:
    rule = (
        "Certificate Policies: MUST, non-critical, containing 1.3.6.1.4.1.62558.1.1 (c2pa-certificate-policy)"
    )
    policies = ext_of(leaf, x509.CertificatePolicies)
    if policies is None:
        return _broken("policy", rule, ["the extension is missing"])
    problems = _criticality(policies, False)
    ids = [p.policy_identifier for p in policies.value]
    if C2PA_POLICY not in ids:
        problems.append(f"it lists {', '.join(o.dotted_string for o in ids) or 'no policy'}")
    return _verdict("policy", rule, problems, "Certificate policy 1.3.6.1.4.1.62558.1.1 (C2PA) present.")


def _uri(name: x509.GeneralName) -> str | None:
    return name.value if isinstance(name, x509.UniformResourceIdentifier) else None


def _p_aia(leaf: x509.Certificate) -> list[Finding]:
    rule = (
        "Authority Information Access: MUST, non-critical, with an id-ad-ocsp entry whose location is an "
        "HTTP URI"
    )
    aia = ext_of(leaf, x509.AuthorityInformationAccess)
    if aia is None:
        return [_broken("aia-ocsp", rule, ["the extension is missing"])]
    problems = _criticality(aia, False)
    ocsp = [
        _uri(d.access_location) for d in aia.value if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    issuers = [
        _uri(d.access_location)
        for d in aia.value
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    ]
    if not ocsp:
        problems.append("it has no OCSP entry")
    elif not any(u and u.lower().startswith("http://") for u in ocsp):
        problems.append(f"the OCSP location is not an http:// URI ({', '.join(str(u) for u in ocsp)})")
    out = [
        _broken("aia-ocsp", rule, problems)
        if problems
        else Finding("aia-ocsp", "ok", f"OCSP responder {next(u for u in ocsp if u)}.")
    ]
    if not issuers:
        out.append(
            Finding(
                "aia-ca-issuers",
                "warning",
                cp_rule(
                    "Authority Information Access: SHOULD include an id-ad-caIssuers entry; there is none."
                ),
                _CA_ISSUES_IT,
            )
        )
    elif not all(u and u.lower().startswith("http://") for u in issuers):
        out.append(
            Finding(
                "aia-ca-issuers",
                "error",
                cp_rule(
                    "Authority Information Access: accessLocation must be an HTTP URI; the caIssuers "
                    f"entry is {', '.join(str(u) for u in issuers)}."
                ),
                _CA_ISSUES_IT,
            )
        )
    return out


def _p_crl_dp(leaf: x509.Certificate) -> Finding | None:
    cdp = ext_of(leaf, x509.CRLDistributionPoints)
    if cdp is None:
        return None  # optional
    rule = "CRL Distribution Points (optional): non-critical, with an HTTP URI"
    problems = _criticality(cdp, False)
    uris = [_uri(n) for dp in cdp.value for n in (dp.full_name or [])]
    if not any(u and u.lower().startswith("http://") for u in uris):
        problems.append("it has no http:// URI")
    return _verdict("crl-dp", rule, problems, "CRL distribution point over HTTP.")


def _p_assurance_level(leaf: x509.Certificate) -> Finding:
    rule = (
        "C2PA Assurance Level (1.3.6.1.4.1.62558.3): MUST, non-critical, value 1.3.6.1.4.1.62558.3.10 (AL1)"
    )
    ext = raw_ext_of(leaf, C2PA_ASSURANCE_LEVEL)
    if ext is None:
        return _broken("assurance-level", rule, ["the extension is missing"])
    problems = _criticality(ext, False)
    value = (
        assurance_level_value(ext.value.value) if isinstance(ext.value, x509.UnrecognizedExtension) else None
    )
    if value is None:
        problems.append("its value is not a DER-encoded OID")
    elif value not in _AL_LIMITS:
        problems.append(f"its value {value} is not a C2PA assurance level")
    if problems:
        return _broken("assurance-level", rule, problems)
    assert value is not None
    return Finding("assurance-level", "ok", f"Assurance level {value} ({_AL_LIMITS[value][1]}).")


def _p_cpl_record(leaf: x509.Certificate) -> Finding:
    rule = (
        "C2PA CPL Record ID (1.3.6.1.4.1.62558.4): MUST, non-critical, UTF8String of 36 characters "
        "(the CPL UUID)"
    )
    ext = raw_ext_of(leaf, C2PA_CPL_RECORD)
    if ext is None:
        return Finding(
            "cpl-record",
            "error",
            cp_rule(f"{rule}; the extension is missing."),
            "Get your product listed on the Conforming Products List; the CA copies its record id into the "
            "certificate. " + _CA_ISSUES_IT,
        )
    problems = _criticality(ext, False)
    text: str | None = None
    if isinstance(ext.value, x509.UnrecognizedExtension):
        try:
            tag, body, end = der_tlv(ext.value.value)
            if tag == 0x0C and end == len(ext.value.value):
                text = body.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            text = None
    if text is None:
        problems.append("its value is not a DER UTF8String")
    else:
        try:
            canonical = str(uuid.UUID(text)) == text.lower() and len(text) == 36
        except ValueError:
            canonical = False
        if not canonical:
            problems.append(f"{text!r} is not a 36-character UUID")
    return _verdict("cpl-record", rule, problems, f"CPL record id {text}.")
