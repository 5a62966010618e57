"""Soft bindings for one image being signed: the watermark goes into the pixels before the hard binding is
computed (the signed bytes are the marked bytes), the fingerprints are taken from the final pixels, and the
manifest declares both.

The marked file keeps the input's format and quality: JPEG reuses the input's quantisation tables and chroma
subsampling (the same quality, not a guess), PNG and lossless WebP stay lossless, lossy WebP is written at
`webp_quality`. EXIF, ICC profile and XMP are carried over; other metadata segments are not. The mark is
embedded in the upright picture (EXIF orientation applied, then undone), because platforms that strip
metadata usually rotate the pixels first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any, Final

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin

from signing.errors import UnmarkableImageError
from signing.models import MediaType
from signing.softbinding.binding_assertions import (
    CONFIRMATION_FIELD,
    FINGERPRINT_ASSERTION,
    WATERMARK_ASSERTION,
    WATERMARK_ID_FIELD,
    iscc_assertion,
    soft_binding_assertions,
)
from signing.softbinding.confirmation import ConfirmationPrint, confirmation_print
from signing.softbinding.fingerprint import ImageFingerprints, image_fingerprints
from signing.softbinding.orientation import exif_orientation, to_upright
from signing.softbinding.payload import new_payload_id
from signing.softbinding.port import WatermarkEngine, WatermarkKey
from signing.softbinding.repository import ManifestRepository

WATERMARK_ACTION: Final = "c2pa.watermarked.bound"
_FORMATS: Final = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_MODES: Final = frozenset({"L", "RGB", "RGBA"})
# EXIF orientation -> the transpose that undoes `ImageOps.exif_transpose` (rotations swap, the rest are
# their own inverse).
_UNDO: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


class WatermarkSkip(StrEnum):
    """Why an image was signed without a watermark (the `Hallmark-Watermark` response header says it)."""

    OFF = "off"  # no active watermark key
    SIDECAR = "sidecar"  # a detached manifest leaves the caller's bytes as they are
    FORMAT = "format"  # not a still JPEG, PNG or WebP, or not an image
    PIXEL_FORMAT = "pixel-format"  # not 8-bit grey, RGB or RGBA (palette, 16-bit, CMYK...)
    ANIMATED = "animated"
    UNMARKABLE = "unmarkable"  # too small or too flat to hide a mark
    TOO_LARGE = "too-large"  # over the soft-binding pixel limit
    ALREADY_MARKED = "already-marked"  # the input (an edit of a signed file) carries one of our marks


@dataclass(frozen=True)
class SoftBindings:
    """What soft binding did to one asset: the bytes to sign (None: the input as is) and what to declare."""

    asset: IO[bytes] | None = None
    watermark_id: str | None = None
    watermark_skipped: WatermarkSkip | None = None
    fingerprints: ImageFingerprints | None = None
    confirmation: ConfirmationPrint | None = None  # kept in the repository; its digest goes in the manifest
    media_iscc: str | None = None  # audio/video: the ISCC code the adapter computed with fpcalc/ffmpeg
    watermark_algorithm: str = ""
    watermark_version: int = 0

    def assertions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if self.media_iscc is not None:
            found.append(iscc_assertion(self.media_iscc))
        if self.fingerprints is not None:
            found.extend(soft_binding_assertions(self.fingerprints))
            if self.confirmation is not None:
                prints = next(a for a in found if a["label"] == FINGERPRINT_ASSERTION)
                prints["data"][CONFIRMATION_FIELD] = self.confirmation.sha256
        if self.watermark_id is not None:
            data = {"alg": self.watermark_algorithm, "version": self.watermark_version}
            found.append(
                {"label": WATERMARK_ASSERTION, "data": {**data, WATERMARK_ID_FIELD: self.watermark_id}}
            )
        return found

    def actions(self, when: str, agent: dict[str, str]) -> list[dict[str, Any]]:
        if self.watermark_id is None:
            return []
        return [
            {
                "action": WATERMARK_ACTION,
                "when": when,
                "softwareAgent": agent,
                "description": "Invisible watermark carrying the key of this manifest in the repository.",
            }
        ]


@dataclass(frozen=True)
class SoftBinder:
    """Everything soft binding needs for one sign: the engine, the key that marks (None: no marking), the
    keys that detect (to leave a mark we already made alone), the repository (fresh ids), and limits."""

    engine: WatermarkEngine
    key: WatermarkKey | None
    detection_keys: tuple[WatermarkKey, ...] = ()
    repository: ManifestRepository | None = None
    max_pixels: int = 24_000_000
    webp_quality: int = 90
    png_compress_level: int = 6
    # Audio and video: the ISCC code of this request's file, made outside the core (fpcalc, ffmpeg).
    media_iscc: str | None = None

    def bind(self, media: MediaType, source: IO[bytes], *, sidecar: bool, has_parent: bool) -> SoftBindings:
        if media.kind != "image":
            return SoftBindings(watermark_skipped=WatermarkSkip.FORMAT, media_iscc=self.media_iscc)
        source.seek(0)
        try:
            image = Image.open(source)
            image.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            return SoftBindings(watermark_skipped=WatermarkSkip.FORMAT)  # not a raster Pillow reads
        if image.width * image.height > self.max_pixels:
            return SoftBindings(watermark_skipped=WatermarkSkip.TOO_LARGE)
        skip = self._why_not(media, image, sidecar=sidecar, has_parent=has_parent)
        if skip is not None:
            return SoftBindings(watermark_skipped=skip, fingerprints=image_fingerprints(image))
        assert self.key is not None  # _why_not said OFF otherwise
        watermark_id = self._fresh_id()
        try:
            marked = self._embed(image, int(watermark_id, 16), self.key)
        except UnmarkableImageError:
            return SoftBindings(
                watermark_skipped=WatermarkSkip.UNMARKABLE, fingerprints=image_fingerprints(image)
            )
        encoded = _encode(marked, image, _FORMATS[media.mime], self, lossless=_lossless_webp(source))
        final = Image.open(io.BytesIO(encoded.getvalue()))
        return SoftBindings(
            asset=encoded,
            watermark_id=watermark_id,
            fingerprints=image_fingerprints(final),
            confirmation=confirmation_print(final),
            watermark_algorithm=self.engine.algorithm,
            watermark_version=int(getattr(self.engine, "version", 1)),
        )

    def _why_not(
        self, media: MediaType, image: Image.Image, *, sidecar: bool, has_parent: bool
    ) -> WatermarkSkip | None:
        if sidecar:
            return WatermarkSkip.SIDECAR
        if self.key is None:
            return WatermarkSkip.OFF
        if media.mime not in _FORMATS:
            return WatermarkSkip.FORMAT
        if getattr(image, "n_frames", 1) > 1:
            return WatermarkSkip.ANIMATED
        if image.mode not in _MODES:
            return WatermarkSkip.PIXEL_FORMAT
        if has_parent and self.detection_keys:
            upright = np.asarray(to_upright(image))
            if self.engine.detect(upright, self.detection_keys).detected:
                return WatermarkSkip.ALREADY_MARKED
        return None

    def _fresh_id(self) -> str:
        """A random id the repository does not hold yet (a 48-bit collision is rare, not impossible)."""
        while True:
            candidate = format_watermark_id(new_payload_id())
            if self.repository is None or self.repository.by_watermark(candidate) is None:
                return candidate

    def _embed(self, image: Image.Image, payload_id: int, key: WatermarkKey) -> Image.Image:
        orientation = exif_orientation(image)
        upright = to_upright(image)
        marked = Image.fromarray(self.engine.embed(np.asarray(upright), payload_id, key), mode=image.mode)
        undo = _UNDO.get(orientation)
        return marked.transpose(undo) if undo is not None else marked


def format_watermark_id(payload_id: int) -> str:
    """The watermark id as the repository and the manifest write it: 12 lower-case hex digits."""
    return f"{payload_id:012x}"


def _encode(
    marked: Image.Image, original: Image.Image, fmt: str, binder: SoftBinder, *, lossless: bool
) -> io.BytesIO:
    info = original.info
    options: dict[str, Any] = {}
    for name in ("exif", "icc_profile", "xmp", "dpi"):
        if info.get(name):
            options[name] = info[name]
    if fmt == "JPEG":
        assert isinstance(original, JpegImagePlugin.JpegImageFile)
        options["qtables"] = original.quantization
        sampling = JpegImagePlugin.get_sampling(original)
        if sampling >= 0:
            options["subsampling"] = sampling
        options["progressive"] = bool(info.get("progressive") or info.get("progression"))
        options["optimize"] = False
    elif fmt == "PNG":
        options["compress_level"] = binder.png_compress_level
        text = getattr(original, "text", {})
        if text:
            chunks = PngImagePlugin.PngInfo()
            for name, value in text.items():
                chunks.add_itxt(name, value)
            options["pnginfo"] = chunks
    else:
        options.update({"lossless": True, "exact": True} if lossless else {"quality": binder.webp_quality})
    out = io.BytesIO()
    marked.save(out, fmt, **options)
    out.seek(0)
    return out


def _lossless_webp(source: IO[bytes]) -> bool:
    """A WebP whose image chunk is VP8L (lossless) stays lossless; the RIFF chunks are walked to the first
    image chunk (a few at most: VP8X, ICCP, ANIM, ALPH come first)."""
    source.seek(0)
    head = source.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return False
    for _ in range(16):
        chunk = source.read(8)
        if len(chunk) < 8:
            return False
        if chunk[:4] in (b"VP8 ", b"VP8L"):
            return chunk[:4] == b"VP8L"
        size = int.from_bytes(chunk[4:8], "little")
        source.seek(size + (size & 1), io.SEEK_CUR)
    return False
