"""What the engine needs of a claim signer: c2pa-rs as Hallmark configures it, measured on the pinned engine
(see C2PA-FACTS.md, "Certificates")."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from signing.doctor.findings import Check, Finding, cp_rule
from signing.doctor.x509util import (
    days_of,
    describe_key,
    eku_names,
    ext_of,
    is_ca,
    issued_by,
    key_type_problem,
    key_usage_bits,
    name_of,
)
from signing.oids import (
    C2PA_CLAIM_SIGNING_EKU,
    DOCUMENT_SIGNING_EKU,
    EKU_NAMES,
    SIGNATURE_ALGORITHMS,
    WEAK_SIGNATURE_ALGORITHMS,
)

# Extensions the engine accepts when marked critical, measured on c2pa-rs 0.91.3; any other critical one
# (the C2PA assurance-level or CPL-record extension, OCSP no-check, TLS feature, issuer alternative name,
# subject information access, freshest CRL, subject directory attributes, ...) makes it refuse the signer.
_KNOWN_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.POLICY_CONSTRAINTS,
    ExtensionOID.INHIBIT_ANY_POLICY,
    ExtensionOID.NAME_CONSTRAINTS,
    ExtensionOID.POLICY_MAPPINGS,
    x509.ObjectIdentifier("2.16.840.1.113730.1.1"),  # Netscape certificate type
}


def engine_checks_for(
    leaf: x509.Certificate,
    ordered: list[x509.Certificate],
    now: datetime,
    expiring_within_days: int,
    allowed: set[str],
) -> list[Check]:
    return [
        ("chain-order", lambda: _chain_links(ordered)),
        ("chain-validity", lambda: _chain_validity(ordered, now)),
        ("ca-flag", lambda: _engine_ca_flag(leaf)),
        ("key-usage", lambda: _engine_key_usage(leaf)),
        ("aki", lambda: _engine_aki(leaf)),
        ("eku", lambda: _engine_eku(leaf, allowed)),
        ("validity", lambda: _engine_validity(leaf, now, expiring_within_days)),
        ("key-strength", lambda: _engine_key_strength(leaf)),
        ("signature-algorithm", lambda: signature_algorithm_finding(leaf, profile=False)),
        ("critical-extension", lambda: _engine_critical(leaf)),
    ]


def _path(ordered: list[x509.Certificate]) -> list[int]:
    """Indices of the certificates on the path up from the leaf, each issued by the next."""
    path = [0]
    while True:
        parent = next(
            (j for j, c in enumerate(ordered) if j not in path and issued_by(ordered[path[-1]], c)), None
        )
        if parent is None:
            return path
        path.append(parent)


def _chain_links(ordered: list[x509.Certificate]) -> list[Finding]:
    out: list[Finding] = []
    broken = [i for i in range(len(ordered) - 1) if not issued_by(ordered[i], ordered[i + 1])]
    if broken:
        path = _path(ordered)
        stray = [i for i in range(len(ordered)) if i not in path]
        parts = []
        if path != list(range(len(path))):
            parts.append(
                "the chain is out of order (the path up from the leaf is certificates "
                + ", ".join(str(i + 1) for i in path)
                + ")"
            )
        if stray:
            parts.append(
                "; ".join(f"certificate {i + 1} ({name_of(ordered[i])})" for i in stray)
                + (" is" if len(stray) == 1 else " are")
                + " not on the leaf's path"
            )
        first = broken[0]
        out.append(
            Finding(
                "chain-order",
                "warning",
                f"Certificate {first + 2} did not issue certificate {first + 1} ({name_of(ordered[first])}): "
                f"{'; '.join(parts)}. The engine signs, but validators cannot build the path to a trust "
                "anchor: credentials show as untrusted.",
                "List each certificate followed by the one that issued it (leaf, intermediate(s)) and drop "
                "certificates that are not on the path.",
            )
        )
    last = ordered[-1]
    self_issued = last.issuer == last.subject and issued_by(last, last)
    if len(ordered) == 1 and self_issued:
        out.append(
            Finding(
                "self-signed",
                "warning",
                "The certificate is self-signed: signatures validate but show as untrusted everywhere except "
                "where this very certificate is configured as a trust anchor.",
                "Use a certificate issued by a CA (`hallmark keys init --dev` for development).",
            )
        )
    elif not self_issued and not any(issued_by(last, c) for c in ordered):
        if len(ordered) == 1:
            out.append(
                Finding(
                    "chain-incomplete",
                    "warning",
                    f"The chain file holds only the leaf; its issuer ({last.issuer.rfc4514_string()}) is "
                    "missing. Validators can build the path only if they hold that CA as a trust anchor.",
                    "Append the intermediate CA certificate(s) after the leaf in the chain file.",
                )
            )
    elif len(ordered) > 1 and self_issued and is_ca(last):
        out.append(
            Finding(
                "chain-root",
                "warning",
                f"The chain ends with the self-signed root ({name_of(last)}). C2PA signers leave the trust "
                "anchor out: validators take it from their trust list, and it only adds bytes to every file.",
                "Remove the root certificate from the chain file.",
            )
        )
    if not out:
        out.append(
            Finding(
                "chain-order",
                "ok",
                f"Leaf first; each of the {len(ordered)} certificates is issued by the next."
                if len(ordered) > 1
                else "The chain is the leaf alone.",
            )
        )
    return out


def _chain_validity(ordered: list[x509.Certificate], now: datetime) -> list[Finding]:
    out: list[Finding] = []
    for number, cert in enumerate(ordered[1:], 2):
        if now > cert.not_valid_after_utc:
            problem = f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        elif now < cert.not_valid_before_utc:
            problem = f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        else:
            continue
        out.append(
            Finding(
                "chain-validity",
                "warning",
                f"CA certificate {number} ({name_of(cert)}) {problem}: the engine signs, but validators "
                "cannot build a valid path, so credentials show as untrusted.",
                "Download the current CA certificates from your CA and rebuild the chain file.",
            )
        )
    return out


def _engine_ca_flag(leaf: x509.Certificate) -> Finding:
    if is_ca(leaf):
        return Finding(
            "ca-flag",
            "error",
            "The signing certificate is a CA certificate (basicConstraints CA:TRUE); the engine refuses a "
            "CA as a claim signer.",
            "Sign with an end-entity certificate (CA:FALSE) issued by the CA, never with the CA itself.",
        )
    return Finding("ca-flag", "ok", "The signing certificate is not a CA (CA:FALSE).")


def _engine_key_usage(leaf: x509.Certificate) -> Finding:
    ku = ext_of(leaf, x509.KeyUsage)
    fix = (
        "Ask the CA for key usage digitalSignature (+ nonRepudiation), critical, and nothing like "
        "keyCertSign."
    )
    if ku is None:
        return Finding(
            "key-usage",
            "error",
            "The certificate has no Key Usage extension; the engine needs one with digitalSignature.",
            fix,
        )
    bits = key_usage_bits(ku.value)
    if "keyCertSign" in bits:
        return Finding(
            "key-usage",
            "error",
            "The key usage includes keyCertSign (may issue certificates); the engine refuses it on a claim "
            "signer.",
            fix,
        )
    if not bits & {"digitalSignature", "nonRepudiation"}:
        return Finding(
            "key-usage",
            "error",
            f"The key usage ({', '.join(sorted(bits)) or 'empty'}) does not allow digital signatures.",
            fix,
        )
    if "digitalSignature" not in bits:
        return Finding(
            "key-usage",
            "warning",
            "The key usage has nonRepudiation but not digitalSignature: this engine accepts it, but the C2PA "
            "specification requires digitalSignature and other validators may refuse it.",
            fix,
        )
    return Finding("key-usage", "ok", f"Key usage: {', '.join(sorted(bits))}.")


def _engine_aki(leaf: x509.Certificate) -> Finding:
    if ext_of(leaf, x509.AuthorityKeyIdentifier) is None:
        return Finding(
            "aki",
            "error",
            "The certificate has no Authority Key Identifier; the engine refuses signers without one.",
            "Ask the CA to reissue it with authorityKeyIdentifier = keyid (every CA under the C2PA policy "
            "adds it).",
        )
    return Finding("aki", "ok", "The Authority Key Identifier is present.")


def _engine_eku(leaf: x509.Certificate, allowed: set[str]) -> Finding:
    eku = ext_of(leaf, x509.ExtendedKeyUsage)
    want = (
        " or ".join(EKU_NAMES.get(x509.ObjectIdentifier(o), o) + f" ({o})" for o in sorted(allowed))
        or "(nothing configured)"
    )
    fix = (
        "Ask the CA for EKU c2pa-kp-claimSigning (1.3.6.1.4.1.62558.2.1) + emailProtection "
        "(1.3.6.1.5.5.7.3.4): the engine accepts it and it fits the C2PA policy."
    )
    if eku is None:
        return Finding(
            "eku", "error", f"The certificate has no Extended Key Usage; the engine needs {want}.", fix
        )
    usages = list(eku.value)
    have = eku_names(usages)
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return Finding(
            "eku", "error", f"The EKU ({have}) includes anyExtendedKeyUsage, which the engine refuses.", fix
        )
    mixed = [
        n
        for o, n in (
            (ExtendedKeyUsageOID.TIME_STAMPING, "timeStamping"),
            (ExtendedKeyUsageOID.OCSP_SIGNING, "OCSPSigning"),
        )
        if o in usages
    ]
    if mixed:
        return Finding(
            "eku",
            "error",
            f"The EKU ({have}) also allows {' and '.join(mixed)}: a claim signer may not double as a "
            "time-stamping or OCSP signer, and the engine refuses it.",
            fix,
        )
    if not {o.dotted_string for o in usages} & allowed:
        extra = ""
        if C2PA_CLAIM_SIGNING_EKU in usages or DOCUMENT_SIGNING_EKU in usages:
            extra = (
                " Its c2pa-kp-claimSigning/documentSigning usage works only when the engine's trust "
                "configuration lists it on both the signing and the verifying side."
            )
        return Finding("eku", "error", f"The EKU is {have}; the engine needs {want}.{extra}", fix)
    return Finding("eku", "ok", f"Extended key usage: {have}.")


def _engine_validity(leaf: x509.Certificate, now: datetime, within: int) -> Finding:
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    renew = "Renew it: a new certificate for the key (or a new key + CSR: `hallmark keys generate`)."
    if now > end:
        return Finding(
            "validity",
            "error",
            f"The certificate expired on {end:%Y-%m-%d %H:%M} UTC; the engine refuses to sign with it.",
            renew,
        )
    if now < start:
        return Finding(
            "validity",
            "error",
            f"The certificate is not valid yet: it starts {start:%Y-%m-%d %H:%M} UTC (now "
            f"{now:%Y-%m-%d %H:%M} UTC); the engine refuses to sign with it.",
            "Check this machine's clock, or wait until the start date.",
        )
    left = end - now
    if left <= timedelta(days=within):
        return Finding(
            "expiring",
            "warning",
            f"The certificate expires on {end:%Y-%m-%d} UTC, in {days_of(left)} (within {within} days). "
            "Without a time-stamp every file it signed turns invalid then.",
            renew + " Sign with a time-stamp authority so signed files stay valid.",
        )
    return Finding("validity", "ok", f"Valid from {start:%Y-%m-%d} to {end:%Y-%m-%d} UTC.")


def _engine_key_strength(leaf: x509.Certificate) -> Finding:
    public = leaf.public_key()
    problem = key_type_problem(public)
    if problem is None:
        return Finding("key-strength", "ok", f"The certificate's key is {describe_key(public)}.")
    slug = "key-strength" if isinstance(public, rsa.RSAPublicKey) else "key-type"
    return Finding(
        slug,
        "error",
        f"The engine refuses this certificate: {problem}.",
        "Generate a new key (P-256: `hallmark keys generate --alg es256`) and get a certificate for it.",
    )


def signature_algorithm_finding(cert: x509.Certificate, *, profile: bool) -> Finding:
    oid = cert.signature_algorithm_oid
    if oid in SIGNATURE_ALGORITHMS:
        return Finding(
            "signature-algorithm", "ok", f"The CA signed the certificate with {SIGNATURE_ALGORITHMS[oid]}."
        )
    name = WEAK_SIGNATURE_ALGORITHMS.get(oid, oid.dotted_string)
    rule = (
        cp_rule("Signature Algorithm: RSA (PSS or SHA2 variants), ECDSA (SHA2 variants), or Ed25519")
        if profile
        else "The engine accepts certificates signed with SHA-256/384/512 (ECDSA, RSA, RSA-PSS) or Ed25519"
    )
    return Finding(
        "signature-algorithm",
        "error",
        f"{rule}; this one is signed with {name}.",
        "Ask the CA to reissue the certificate signed with SHA-256 or stronger.",
    )


def _engine_critical(leaf: x509.Certificate) -> Finding:
    unknown = [e.oid.dotted_string for e in leaf.extensions if e.critical and e.oid not in _KNOWN_CRITICAL]
    if unknown:
        return Finding(
            "critical-extension",
            "error",
            f"The certificate marks extension(s) {', '.join(unknown)} critical; the engine does not know "
            "them and refuses the certificate. (The C2PA assurance-level and CPL-record extensions must be "
            "non-critical.)",
            "Ask the CA to reissue the certificate with these extensions non-critical.",
        )
    return Finding("critical-extension", "ok", "No unknown critical extension.")
