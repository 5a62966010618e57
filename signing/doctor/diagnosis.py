"""The diagnosis: `diagnose` runs every check, each guarded so that a broken credential never makes it raise,
then the optional test sign through the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from signing.certs import sha256_fingerprint
from signing.doctor.engine_checks import engine_checks_for
from signing.doctor.findings import Check, DoctorReport, Finding
from signing.doctor.inputs import order_chain, read_chain, read_key
from signing.doctor.key_checks import key_checks_for
from signing.doctor.profile_checks import profile_checks_for
from signing.doctor.x509util import as_aware, issued_by
from signing.errors import HallmarkError
from signing.keys import KeySigner
from signing.oids import DEFAULT_ENGINE_EKUS


def diagnose(
    chain_pem: bytes,
    key_pem: bytes | None = None,
    *,
    passphrase: bytes | None = None,
    public_key_only: KeySigner | None = None,
    now: datetime,
    expiring_within_days: int = 30,
    test_sign: Callable[[], str] | None = None,
    algorithm: str | None = None,
    allowed_ekus: Iterable[str | x509.ObjectIdentifier] = DEFAULT_ENGINE_EKUS,
) -> DoctorReport:
    """Check a chain (leaf first, PEM) and its private key (PKCS#8 PEM), or a `KeySigner` whose key lives
    in a token (`public_key_only`). `algorithm` is the configured signing algorithm (es256, ps384, ...);
    `allowed_ekus` the EKUs the engine's trust_config adds (the trust profiles' `allowed_ekus`; the
    engine always accepts emailProtection)."""
    now = as_aware(now)
    # emailProtection always works (measured: also when trust_config lists other EKUs).
    allowed = {o.dotted_string if isinstance(o, x509.ObjectIdentifier) else o for o in allowed_ekus}
    allowed |= set(DEFAULT_ENGINE_EKUS)
    engine: list[Finding] = []
    profile: list[Finding] = []

    chain = _guarded("chain-format", engine, lambda: read_chain(chain_pem, engine)) or []
    key: PrivateKeyTypes | None = None
    if key_pem is not None:
        key = _guarded("key-format", engine, lambda: read_key(key_pem, passphrase, engine))
    elif public_key_only is None:
        engine.append(
            Finding(
                "key-format",
                "warning",
                "No private key was given: the key format and the key/certificate match were not checked.",
                "Pass the key file too (--key FILE), or the key id of a configured key.",
            )
        )
    if algorithm is None and public_key_only is not None:
        algorithm = public_key_only.algorithm

    leaf: x509.Certificate | None = None
    if chain:
        key_public = key.public_key() if key is not None else None
        ordered = _guarded("chain-order", engine, lambda: order_chain(chain, key_public, engine)) or chain
        leaf = ordered[0]
        issuer = ordered[1] if len(ordered) > 1 and issued_by(leaf, ordered[1]) else None
        _run_checks(engine, engine_checks_for(leaf, ordered, now, expiring_within_days, allowed))
        _run_checks(engine, key_checks_for(leaf, ordered, key, public_key_only, algorithm))
        _run_checks(profile, profile_checks_for(leaf, issuer))
    else:
        profile.append(
            Finding(
                "chain-format",
                "error",
                "There is no readable certificate to compare with the profile.",
                "Provide the certificate chain as PEM, leaf first.",
            )
        )

    state: str | None = None
    if test_sign is not None:
        static_errors = [f.check for f in engine if f.severity == "error"]
        state, finding = _run_test_sign(test_sign, static_errors)
        engine.append(finding)
        if state is not None and static_errors:
            engine.append(
                Finding(
                    "engine-test",
                    "warning",
                    f"The engine signed with this credential although these checks failed: "
                    f"{', '.join(static_errors)}. This engine build is more lenient than Hallmark's rules "
                    "(or the test used another key); other validators may refuse the result.",
                    "Fix the errors above anyway.",
                )
            )

    subject, issuer_name, not_after, fingerprint = _identity(leaf)
    return DoctorReport(
        engine_accepts=not any(f.severity == "error" for f in engine),
        engine_findings=_without_contradictions(engine),
        trust_list_issuable=not any(f.severity == "error" for f in profile),
        profile_findings=_without_contradictions(profile),
        test_sign=state,
        subject=subject,
        issuer=issuer_name,
        not_after=not_after,
        fingerprint=fingerprint,
    )


def _without_contradictions(findings: list[Finding]) -> tuple[Finding, ...]:
    """Drop an "ok" for a check that also found a problem (e.g. the links of a chain that had to be
    reordered first)."""
    flagged = {f.check for f in findings if f.severity != "ok"}
    return tuple(f for f in findings if f.severity != "ok" or f.check not in flagged)


def _identity(leaf: x509.Certificate | None) -> tuple[str | None, str | None, datetime | None, str | None]:
    if leaf is None:
        return None, None, None, None
    return (
        _safe(lambda: leaf.subject.rfc4514_string()),  # noqa: PLW0108 (the attribute access may raise)
        _safe(lambda: leaf.issuer.rfc4514_string()),  # noqa: PLW0108
        _safe(lambda: leaf.not_valid_after_utc),
        _safe(lambda: sha256_fingerprint(leaf)),
    )


_T = TypeVar("_T")


def _safe(fn: Callable[[], _T]) -> _T | None:
    try:
        return fn()
    except Exception:
        return None


def _guarded(slug: str, out: list[Finding], fn: Callable[[], _T]) -> _T | None:
    try:
        return fn()
    except Exception as exc:
        out.append(_uncheckable(slug, exc))
        return None


def _uncheckable(slug: str, exc: Exception) -> Finding:
    detail = exc.message if isinstance(exc, HallmarkError) else f"{type(exc).__name__}: {exc}"
    return Finding(
        slug,
        "error",
        f"This could not be checked: the certificate or key is malformed ({detail[:200]}).",
        "Re-export the certificate chain and key from their source (PEM, leaf first).",
    )


def _run_checks(out: list[Finding], checks: Sequence[Check]) -> None:
    for slug, check in checks:
        try:
            result = check()
        except Exception as exc:
            out.append(_uncheckable(slug, exc))
            continue
        if isinstance(result, Finding):
            out.append(result)
        elif result:
            out.extend(result)


# --- the engine test ------------------------------------------------------------------------------------


def _run_test_sign(test_sign: Callable[[], str], static_errors: list[str]) -> tuple[str | None, Finding]:
    first_fix = "Fix the errors above, then run the doctor again." if static_errors else None
    try:
        state = test_sign()
    except HallmarkError as exc:
        said = exc.details.get("engine")
        return None, Finding(
            "engine-test",
            "error",
            f"The test sign + verify through the engine failed: {exc.message}"
            + (f" (the engine said: {said})" if said else ""),
            first_fix or exc.hint or "Check the certificate chain and key against the findings above.",
        )
    except Exception as exc:
        return None, Finding(
            "engine-test",
            "error",
            f"The test sign + verify through the engine failed unexpectedly ({type(exc).__name__}).",
            first_fix or "Report this with the doctor's output.",
        )
    if state == "Trusted":
        return state, Finding(
            "engine-test", "ok", "Signed and verified a test image: Trusted by the configured trust anchors."
        )
    if state == "Valid":
        return state, Finding(
            "engine-test",
            "warning",
            "Signed and verified a test image: Valid, but not Trusted: the chain does not lead to a "
            "configured trust anchor.",
            "Add the chain's root (or issuing CA) to the trust configuration, or complete the chain with its "
            "intermediate CA(s).",
        )
    return None, Finding(
        "engine-test",
        "error",
        f"The test image signed with this credential validates as {state!r}.",
        first_fix or "Check the certificate chain and key against the findings above.",
    )
