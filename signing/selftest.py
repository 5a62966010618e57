"""Start-up self test: a garbage certificate is accepted when the signer is made and only fails at the
first sign, so every process signs and verifies a tiny image before it declares itself ready."""

from __future__ import annotations

import io

from signing._c2pa import Engine, NativeSigner
from signing.errors import ConfigError, HallmarkError
from signing.manifest import ClaimGenerator
from signing.models import GenerationInfo
from signing.ports import LedgerEntry, SystemClock
from signing.reading import RawReading
from signing.sign import SignContext, sign_asset
from signing.tiny_png import tiny_png
from signing.vocabulary import TRAINED_ALGORITHMIC_MEDIA


class _DiscardLedger:
    def record(self, entry: LedgerEntry) -> None:
        return None


def self_test(engine: Engine, signer: NativeSigner, generator: ClaimGenerator) -> str:
    """Sign and verify a tiny PNG; return the validation state or raise ConfigError naming the problem."""
    ctx = SignContext(engine, signer, _DiscardLedger(), SystemClock(), generator)
    out = io.BytesIO()
    info = GenerationInfo("hallmark-self-test", "0", "Hallmark", TRAINED_ALGORITHMIC_MEDIA)
    try:
        sign_asset(ctx, io.BytesIO(tiny_png()), out, info)
    except HallmarkError as exc:
        raise ConfigError(
            f"The signing key '{signer.key.key_id}' cannot sign: {exc.message}",
            hint=exc.hint
            or "Check that the chain is leaf-first, unexpired, with EKU emailProtection, "
            "KeyUsage digitalSignature, an Authority Key Identifier, and that the key matches it.",
            details=exc.details,
        ) from None
    reading: RawReading = engine.read("image/png", out)
    if reading.kind != "manifest" or reading.state not in ("Valid", "Trusted"):
        raise ConfigError(
            f"The signing key '{signer.key.key_id}' produced credentials that do not validate "
            f"({reading.state or reading.kind}).",
            hint="The certificate chain is probably incomplete or not issued for this key.",
        )
    return str(reading.state)
