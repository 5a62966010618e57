"""What the doctor reports: a `Finding` per checked property, the `DoctorReport` with both verdicts, and the
`Check` each check module hands to the diagnosis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Severity = Literal["error", "warning", "ok"]

PROFILE_NAME = "C2PA Certificate Policy, claim-signing leaf profile (AL1)"
RULE_PREFIX = "C2PA policy"  # findings cite the profile rule after it


@dataclass(frozen=True)
class Finding:
    """One checked property: `check` is a stable slug, `message` plain words, `fix` how to repair it."""

    check: str
    severity: Severity
    message: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorReport:
    engine_accepts: bool
    engine_findings: tuple[Finding, ...]
    trust_list_issuable: bool
    profile_findings: tuple[Finding, ...]
    test_sign: str | None  # the validation state of the test sign + verify; None when it did not run/pass
    subject: str | None
    issuer: str | None
    not_after: datetime | None
    fingerprint: str | None  # SHA-256 of the leaf certificate (DER)

    @property
    def has_errors(self) -> bool:
        """Any ERROR finding: what makes `hallmark keys doctor` exit non-zero."""
        return any(f.severity == "error" for f in (*self.engine_findings, *self.profile_findings))


def graded(report: DoctorReport, *, production: bool) -> DoctorReport:
    """The report with severities for where the key is used. The profile findings (could a CA on the C2PA
    trust list issue it?) decide a production key; a development PKI never meets them, so in development
    they are warnings. The engine's findings count everywhere."""
    if production:
        return report
    lenient = tuple(
        replace(f, severity="warning") if f.severity == "error" else f for f in report.profile_findings
    )
    return replace(report, profile_findings=lenient)


def cp_rule(text: str) -> str:
    return f"{RULE_PREFIX}, {text}"


Check = tuple[str, Callable[[], Finding | list[Finding] | None]]
