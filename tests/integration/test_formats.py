"""Format round trips: every media type the engine signs, signed and verified with the real c2pa engine.

For each format: sign an unsigned sample, verify it is `trusted` with intact integrity and the AI
declaration as given, check the ledger entry, and decode the output with the standard decoder (Pillow,
ffmpeg, an XML parser, pypdf) to the same content as the original. Then, per format: sidecar output,
re-signing a signed output (the first manifest becomes the parent ingredient), credentials from another
implementation kept as the parent, and a tampered JPEG.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Protocol

import pytest
from pypdf.errors import PdfReadError

import signing
from tests.media_samples import (
    PDF_PAGES,
    SAMPLES,
    Sample,
    SampleStore,
    decode_pdf,
    fail_if_missing_tool,
    flip_jpeg_scan_byte,
    pdf_with_text,
)

COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"

# Known bugs in signing/ (strict: the test fails once the bug is fixed, so the mark gets removed).
KNOWN_BUGS: dict[tuple[str, str], str] = {}
# Formats whose handler rewrites the asset even without embedding: a sidecar is refused for them.
NO_SIDECAR = frozenset({"mp3", "flac", "pdf"})


class RecordingLedger(Protocol):
    """The in-memory ledger fake of tests/conftest.py."""

    entries: list[signing.LedgerEntry]


def formats(test: str) -> list[Any]:
    """Every sample as a parameter with a readable id, with a strict xfail where a known bug bites."""
    params = []
    for s in SAMPLES:
        reason = KNOWN_BUGS.get((test, s.id))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(s, id=s.id, marks=marks))
    return params


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(
    ctx: signing.SignContext,
    data: bytes,
    generation: signing.GenerationInfo,
    mode: signing.OutputMode = signing.OutputMode.EMBEDDED,
) -> tuple[signing.SignedAsset, bytes]:
    source, dest = io.BytesIO(data), io.BytesIO()
    signed = signing.sign_asset(ctx, source, dest, generation, mode=mode)
    assert source.getvalue() == data, "signing modified the caller's source stream"
    return signed, dest.getvalue()


def inspect(
    engine: signing.Engine, data: bytes, manifest_data: bytes | None = None
) -> signing.VerificationReport:
    return signing.inspect_asset(engine, io.BytesIO(data), manifest_data=manifest_data)


def decode(sample: Sample, path: Path) -> str:
    """Decode a signed output with the sample's standard decoder: a digest of the decoded content."""
    check = sample.decode
    assert check is not None, f"sample {sample.id} has no standard decoder"
    return fail_if_missing_tool(lambda: check(path))


def assert_trusted(report: signing.VerificationReport, manifest_id: str) -> None:
    failures = [c.code for c in report.codes.failure]
    assert report.outcome is signing.Outcome.TRUSTED, f"{report.summary} failures={failures}"
    assert report.integrity is signing.Integrity.INTACT, failures
    assert report.manifest_id == manifest_id
    assert report.signer is not None
    assert report.signer.trusted
    assert report.signer.trust_profile == "test-root"


def assert_ai_declared(
    report: signing.VerificationReport, generation: signing.GenerationInfo, actions: tuple[str, ...]
) -> None:
    ai = report.ai
    assert ai is not None
    assert ai.declared
    # Without a named source type, a fresh file is fully generated and an edit of a credentialed input
    # is an AI composite.
    edited = "c2pa.opened" in actions
    expected = COMPOSITE if edited else signing.TRAINED_ALGORITHMIC_MEDIA
    assert ai.digital_source_type == expected
    assert ai.model_name == generation.model_name
    assert ai.model_version == generation.model_version
    assert ai.provider == generation.provider
    assert ai.actions == actions


def assert_ledger_entry(
    entry: signing.LedgerEntry,
    signed: signing.SignedAsset,
    *,
    mime: str,
    input_bytes: bytes,
    output_bytes: bytes,
    mode: signing.OutputMode = signing.OutputMode.EMBEDDED,
    parent_manifest_id: str | None = None,
) -> None:
    assert entry.manifest_id == signed.manifest_id
    assert entry.media_type == mime
    assert entry.output_mode == mode.value
    assert entry.input_sha256 == sha256(input_bytes)
    assert entry.output_sha256 == sha256(output_bytes)
    assert entry.parent_manifest_id == parent_manifest_id
    assert signed.input_sha256 == entry.input_sha256
    assert signed.output_sha256 == entry.output_sha256
    assert signed.output_size == len(output_bytes)


def test_every_signable_format_has_a_sample() -> None:
    covered = {s.mime for s in SAMPLES}
    # HEIF (mif1 brand without a HEVC brand) shares the HEIC code path; the issue lists HEIC.
    wanted = {m.mime for m in signing.SUPPORTED_MEDIA} - {"image/heif"}
    assert wanted <= covered, f"no round-trip sample for {sorted(wanted - covered)}"


@pytest.mark.parametrize("sample", formats("round_trip"))
def test_round_trip(
    sample: Sample,
    samples: SampleStore,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    ledger: RecordingLedger,
    tmp_path: Path,
) -> None:
    original = samples.data(sample)
    assert signing.sniff(io.BytesIO(original)).mime == sample.mime
    assert inspect(engine, original).outcome is signing.Outcome.NONE, "the sample must be unsigned"

    signed, output = sign(sign_ctx, original, generation)

    assert signed.media_type.mime == sample.mime
    assert signed.parent_manifest_id is None
    assert output != original
    report = inspect(engine, output)
    assert_trusted(report, signed.manifest_id)
    assert_ai_declared(report, generation, ("c2pa.created",))
    assert report.ingredients == ()
    assert report.manifest_count == 1

    [entry] = ledger.entries
    assert_ledger_entry(entry, signed, mime=sample.mime, input_bytes=original, output_bytes=output)

    out_path = tmp_path / f"signed-{samples.path(sample).name}"
    out_path.write_bytes(output)
    assert decode(sample, out_path) == samples.decoded(sample), "the signed file decodes to other content"

    # Last, so that every other check runs for a format whose signed form is misidentified.
    assert signing.sniff(io.BytesIO(output)).mime == sample.mime
    assert report.media_type == sample.mime


@pytest.mark.parametrize("sample", formats("sidecar"))
def test_sidecar(
    sample: Sample,
    samples: SampleStore,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    ledger: RecordingLedger,
) -> None:
    original = samples.data(sample)
    if sample.id in NO_SIDECAR:
        with pytest.raises(signing.SidecarUnavailableError, match="detached manifest cannot be made"):
            sign(sign_ctx, original, generation, mode=signing.OutputMode.SIDECAR)
        assert ledger.entries == [], "a refused sidecar must leave no ledger row"
        return

    signed, sidecar = sign(sign_ctx, original, generation, mode=signing.OutputMode.SIDECAR)

    assert signed.output_mode is signing.OutputMode.SIDECAR
    # A C2PA manifest store: a JUMBF superbox whose description box is labelled "c2pa".
    assert sidecar[4:8] == b"jumb"
    assert sidecar[12:16] == b"jumd"
    assert b"c2pa" in sidecar[:64]
    assert samples.data(sample) == original, "sidecar signing touched the original file"
    assert inspect(engine, original).outcome is signing.Outcome.NONE

    report = inspect(engine, original, manifest_data=sidecar)
    assert_trusted(report, signed.manifest_id)
    assert_ai_declared(report, generation, ("c2pa.created",))

    [entry] = ledger.entries
    assert_ledger_entry(
        entry,
        signed,
        mime=sample.mime,
        input_bytes=original,
        output_bytes=sidecar,
        mode=signing.OutputMode.SIDECAR,
    )


@pytest.mark.parametrize("sample", formats("resign"))
def test_resign_keeps_first_manifest_as_parent(
    sample: Sample,
    samples: SampleStore,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    ledger: RecordingLedger,
) -> None:
    original = samples.data(sample)
    first, once = sign(sign_ctx, original, generation)

    second, twice = sign(sign_ctx, once, generation)

    assert second.manifest_id != first.manifest_id
    assert second.parent_manifest_id == first.manifest_id
    report = inspect(engine, twice)
    assert_trusted(report, second.manifest_id)
    assert_ai_declared(report, generation, ("c2pa.opened", "c2pa.edited"))
    assert report.manifest_count == 2
    assert len(report.ingredients) == 1
    parent = report.ingredients[0]
    assert parent.relationship == "parentOf"
    assert parent.manifest_id == first.manifest_id
    assert parent.validation_failures == ()

    first_entry, second_entry = ledger.entries
    assert_ledger_entry(first_entry, first, mime=sample.mime, input_bytes=original, output_bytes=once)
    assert_ledger_entry(
        second_entry,
        second,
        mime=sample.mime,
        input_bytes=once,
        output_bytes=twice,
        parent_manifest_id=first.manifest_id,
    )


def test_credentials_from_another_implementation_become_the_parent(
    interop_dir: Path,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
    ledger: RecordingLedger,
) -> None:
    foreign = (interop_dir / "C.jpg").read_bytes()
    before = inspect(engine, foreign)
    assert before.outcome is signing.Outcome.VALID_UNTRUSTED, before.summary
    assert before.manifest_id

    signed, output = sign(sign_ctx, foreign, generation)

    assert signed.parent_manifest_id == before.manifest_id
    report = inspect(engine, output)
    assert_trusted(report, signed.manifest_id)
    assert_ai_declared(report, generation, ("c2pa.opened", "c2pa.edited"))
    assert report.manifest_count >= 2
    assert len(report.ingredients) == 1
    assert report.ingredients[0].relationship == "parentOf"
    assert report.ingredients[0].manifest_id == before.manifest_id

    [entry] = ledger.entries
    assert_ledger_entry(
        entry,
        signed,
        mime="image/jpeg",
        input_bytes=foreign,
        output_bytes=output,
        parent_manifest_id=before.manifest_id,
    )


def test_one_flipped_byte_in_jpeg_image_data_is_tampering(
    samples: SampleStore,
    sign_ctx: signing.SignContext,
    engine: signing.Engine,
    generation: signing.GenerationInfo,
) -> None:
    signed, output = sign(sign_ctx, samples.data("jpeg"), generation)
    assert inspect(engine, output).outcome is signing.Outcome.TRUSTED

    tampered = flip_jpeg_scan_byte(output)

    assert len(tampered) == len(output)
    assert sum(a != b for a, b in zip(tampered, output, strict=True)) == 1
    report = inspect(engine, tampered)
    assert report.outcome is signing.Outcome.INVALID, report.summary
    assert report.integrity is signing.Integrity.TAMPERED
    assert report.manifest_id == signed.manifest_id
    assert "assertion.dataHash.mismatch" in {c.code for c in report.codes.failure}


@pytest.mark.parametrize("name", ["no_manifest.jpg", "sample1.png"])
def test_manifest_presence_shortcut_agrees_with_the_engine(
    name: str, interop_dir: Any, sign_ctx: signing.SignContext, generation: signing.GenerationInfo
) -> None:
    """The cheap JPEG/PNG segment walk that skips a reader must never miss an embedded manifest."""
    from signing.media import may_embed_manifest

    original = (interop_dir / name).read_bytes()
    media = signing.sniff(io.BytesIO(original))
    assert may_embed_manifest(media, io.BytesIO(original)) is False
    _, signed = sign(sign_ctx, original, generation)
    assert may_embed_manifest(media, io.BytesIO(signed)) is True
    assert may_embed_manifest(media, io.BytesIO(original[:40])) is True  # truncated: let the engine decide


def test_a_key_failure_inside_the_engine_callback_keeps_its_own_error(
    sign_ctx: signing.SignContext, generation: signing.GenerationInfo, interop_dir: Any
) -> None:
    """The engine swallows callback exceptions ('COSE signature invalid'); the key's own error comes back."""

    class UnpluggedToken:
        def __init__(self, inner: signing.KeySigner) -> None:
            self.inner = inner
            self.key_id, self.algorithm = inner.key_id, inner.algorithm
            self.chain_pem, self.certificate = inner.chain_pem, inner.certificate

        def sign(self, data: bytes) -> bytes:
            raise signing.KeyringError("The token was removed.")

    broken = signing.NativeSigner(UnpluggedToken(sign_ctx.signer.key))
    ctx = signing.SignContext(sign_ctx.engine, broken, sign_ctx.ledger, sign_ctx.clock, sign_ctx.generator)
    with pytest.raises(signing.KeyringError, match="token was removed"):
        signing.sign_asset(
            ctx, io.BytesIO((interop_dir / "no_manifest.jpg").read_bytes()), io.BytesIO(), generation
        )


def test_a_hostile_parent_label_never_reaches_headers_or_the_ledger() -> None:
    from signing.sign import printable_label

    assert printable_label("urn:c2pa:8b7e0e6c-0f0a-4c3e-9d61-2f5a1c7e9b10") is not None
    for hostile in ("urn:c2pa:x\r\nSet-Cookie: a=b", "urn:c2pa:\u00fc", "", "x" * 201, None, 42):
        assert printable_label(hostile) is None


def test_the_pdf_decoder_sees_pages_and_text(tmp_path: Path) -> None:
    """The control for the PDF round trip: other text, fewer pages or a broken file change the answer."""
    path = tmp_path / "a.pdf"

    def decoded(data: bytes) -> str:
        path.write_bytes(data)
        return decode_pdf(path)

    original = decoded(pdf_with_text(PDF_PAGES))
    assert decoded(pdf_with_text(PDF_PAGES)) == original
    assert decoded(pdf_with_text((PDF_PAGES[0], "Hallmark test sample, page 2"))) != original
    assert decoded(pdf_with_text(PDF_PAGES[:1])) != original
    with pytest.raises(PdfReadError):
        decoded(pdf_with_text(PDF_PAGES)[:-40])  # no cross-reference table any more
