"""The structural sniff accepts every real sample of every allow-listed format, and the signed interop files;
a real MP3's audio behind a long ID3 tag is still found, and the same tag in front of junk is refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from signing.errors import UnsupportedMediaError
from signing.media import id3_end, sniff
from tests.media_samples import SAMPLES, Sample, SampleStore

SIGNED = ("C.jpg", "CA.jpg", "express-signed.pdf", "video1.mp4", "legacy.mp4", "sample1.mp3")


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_every_real_sample_is_sniffed_as_its_type(samples: SampleStore, sample: Sample) -> None:
    with samples.path(sample).open("rb") as fh:
        assert sniff(fh).mime == sample.mime


@pytest.mark.parametrize("name", SIGNED)
def test_signed_interop_files_are_sniffed(interop_dir: Path, name: str) -> None:
    with (interop_dir / name).open("rb") as fh:
        assert sniff(fh).extension in name.rsplit(".", 1)[1]


def test_real_mp3_audio_behind_a_long_tag(interop_dir: Path) -> None:
    mp3 = (interop_dir / "sample1.mp3").read_bytes()
    end = id3_end(mp3)
    audio = mp3[end:] if end is not None else mp3
    padding = b"\x00" * 20_000
    n = len(padding)
    tag = (
        b"ID3\x04\x00\x00" + bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F]) + padding
    )
    assert sniff(io.BytesIO(tag + audio)).mime == "audio/mpeg"
    with pytest.raises(UnsupportedMediaError):
        sniff(io.BytesIO(tag + b"<html>" + audio))
