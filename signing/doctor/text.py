"""Text for the CLI: the report as readable lines, the two verdicts first."""

from __future__ import annotations

from signing.doctor.findings import PROFILE_NAME, DoctorReport

_MARK = {"error": "ERROR", "warning": "WARN ", "ok": "ok   "}


def render(report: DoctorReport) -> str:
    """A readable multi-line report: the two verdicts, the certificate, then the findings with fixes."""

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    lines = [
        f"Engine accepts this credential: {yes(report.engine_accepts)}",
        f"A CA on the C2PA trust list could issue it: {yes(report.trust_list_issuable)}",
        "",
        f"  Certificate  {report.subject or '-'}",
        f"  Issuer       {report.issuer or '-'}",
        f"  Expires      {report.not_after:%Y-%m-%d %H:%M} UTC" if report.not_after else "  Expires      -",
        f"  SHA-256      {report.fingerprint or '-'}",
        f"  Test sign    {(report.test_sign or 'failed') if _ran_test(report) else 'not run'}",
    ]
    sections = (
        ("What the engine needs (c2pa-rs as Hallmark runs it)", report.engine_findings),
        (f"What a CA on the C2PA trust list issues ({PROFILE_NAME})", report.profile_findings),
    )
    for title, findings in sections:
        lines += ["", f"{title}:"]
        for severity in ("error", "warning", "ok"):
            for f in findings:
                if f.severity != severity:
                    continue
                lines.append(f"  {_MARK[severity]} {f.check}: {f.message}")
                if f.fix and severity != "ok":
                    lines.append(f"         fix: {f.fix}")
        if not findings:
            lines.append("  (nothing checked)")
    return "\n".join(lines) + "\n"


def _ran_test(report: DoctorReport) -> bool:
    return any(f.check == "engine-test" for f in report.engine_findings)
