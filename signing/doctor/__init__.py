"""The key doctor: checks a signing credential and names each broken property in plain words, with a fix.

Two separate verdicts:

* *the engine accepts it*: what c2pa-rs (as Hallmark configures it) needs of a claim signer, measured on the
  pinned engine (see C2PA-FACTS.md, "Certificates"), plus what Hallmark's key loader needs (PKCS#8);
* *a CA on the C2PA trust list could issue it*: the C2PA Certificate Policy's claim-signing leaf profile
  (cert-profiles/claimSigningLeaf.al1.cert.yaml; AL2 differs only in validity and the assurance-level value).

Pure core: cryptography only, no environment, no engine. The caller may pass `test_sign`, a callback that
signs and verifies through the real engine (e.g. `signing.self_test`), whose outcome is one more finding.
A broken credential never makes `diagnose` raise: every problem is a `Finding`.

Engine checks (slugs): chain-format, chain-order, chain-incomplete, chain-root, chain-validity, self-signed,
ca-flag, key-usage, aki, eku, validity, expiring, key-strength, key-type, signature-algorithm,
critical-extension, key-format, key-unreadable, key-mismatch, algorithm, engine-test.
Profile checks (slugs): version, serial, signature-algorithm, validity-length, subject, key-type, ski, aki,
key-usage, ca-flag, eku, policy, aia-ocsp, aia-ca-issuers, crl-dp, assurance-level, cpl-record.
"""

from signing.doctor.diagnosis import diagnose
from signing.doctor.findings import PROFILE_NAME, RULE_PREFIX, Check, DoctorReport, Finding, Severity, graded
from signing.doctor.text import render
from signing.doctor.x509util import eku_names, key_kind, key_type_problem, key_usage_bits

__all__ = [
    "PROFILE_NAME",
    "RULE_PREFIX",
    "Check",
    "DoctorReport",
    "Finding",
    "Severity",
    "diagnose",
    "eku_names",
    "graded",
    "key_kind",
    "key_type_problem",
    "key_usage_bits",
    "render",
]
