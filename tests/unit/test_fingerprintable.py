"""A WAV's declared sample rate and channel count are checked before fpcalc decodes it: the mutation corpus
found a 17 KB WAV declaring 2 GHz that kept fpcalc busy past 20 s (its resampler's work grows with the
rate)."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from signing import MAX_SAMPLE_RATE, ImplausibleMediaError, MediaFingerprintError, check_fingerprintable
from signing.media import MP3, WAV


def wav(rate: int = 8000, channels: int = 1, *, junk_chunks: int = 0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 800)
    data = bytearray(out.getvalue())
    struct.pack_into("<HI", data, 22, channels, rate)  # the 'fmt ' chunk's channels and sample rate
    junk = b"junk\x02\x00\x00\x00ab" * junk_chunks
    return bytes(data[:12] + junk + data[12:])


@pytest.mark.parametrize("rate", [1, 8000, 44100, 192000, MAX_SAMPLE_RATE])
def test_real_sample_rates_pass(rate: int) -> None:
    check_fingerprintable(WAV, io.BytesIO(wav(rate)))


@pytest.mark.parametrize(
    ("rate", "channels"), [(MAX_SAMPLE_RATE + 1, 1), (2_046_824_256, 1), (0, 1), (8000, 0), (8000, 65)]
)
def test_absurd_parameters_are_refused_before_any_tool(rate: int, channels: int) -> None:
    with pytest.raises(ImplausibleMediaError) as raised:
        check_fingerprintable(WAV, io.BytesIO(wav(rate, channels)))
    assert raised.value.details == {"sample_rate": rate, "channels": channels}
    assert f"{rate} Hz" in raised.value.message
    assert isinstance(raised.value, MediaFingerprintError)  # sign goes on without the code; 422 if required


def test_the_fmt_chunk_is_found_after_other_chunks() -> None:
    with pytest.raises(MediaFingerprintError):
        check_fingerprintable(WAV, io.BytesIO(wav(10**9, junk_chunks=5)))
    check_fingerprintable(WAV, io.BytesIO(wav(48000, junk_chunks=5)))


def test_other_media_types_are_not_parsed_as_wav() -> None:
    check_fingerprintable(MP3, io.BytesIO(wav(10**9)))
