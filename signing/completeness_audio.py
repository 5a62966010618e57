"""Completeness of the frame-based audio formats: MP3 (a frame walk) and FLAC (metadata, then frames).

Neither format has a container length to compare with the file's, so the frames themselves are walked:
an MP3's frames must tile the file (after its ID3v2 tags, before an optional trailing tag); a FLAC's last
frame must end at the end of the file with a matching CRC-16, at the sample count STREAMINFO announces.
"""

from __future__ import annotations

from typing import IO

from signing.errors import ImplausibleMediaError, IncompleteAssetError
from signing.media import id3_end
from signing.models import MediaType

_WINDOW = 1 << 20
_MAX_FRAMES = 4_000_000  # about 29 hours of 44.1 kHz MP3; a larger count is refused, not walked


class _Reader:
    """Random access to a seekable stream through a 1 MiB window (frames are read 4 bytes at a time)."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.size = stream.seek(0, 2)
        self.base = 0
        self.buf = b""

    def at(self, pos: int, n: int) -> bytes:
        if pos < self.base or pos + n > self.base + len(self.buf):
            self.stream.seek(pos)
            self.base, self.buf = pos, self.stream.read(max(n, _WINDOW))
        return self.buf[pos - self.base : pos - self.base + n]


def _incomplete(media: MediaType, problem: str) -> IncompleteAssetError:
    return IncompleteAssetError.because(media.extension.upper(), media.mime, problem)


def _skip_id3(media: MediaType, reader: _Reader) -> int:
    """Where the audio starts, after any ID3v2 tags (the engine keeps its manifest in one)."""
    pos = 0
    while (end := id3_end(reader.at(pos, 10))) is not None:
        pos += end
    if pos > reader.size:
        raise _incomplete(media, "its ID3 tag runs past the end")
    return pos


# --- MP3 ------------------------------------------------------------------------------------------------

_KBPS = {
    (1, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_TRAILERS = (b"TAG", b"APETAGEX", b"LYRICSBEGIN")  # ID3v1, APEv2, Lyrics3: metadata after the last frame


def mp3_frame_length(header: bytes) -> int | None:
    """The length of the MPEG audio frame whose 4-byte header this is, or None if it is not one."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer == 0 or index in (0, 15) or rate_index == 3:
        return None  # reserved values, or a free-format bitrate whose frames have no length to walk
    bitrate = _KBPS[(1 if version == 3 else 2, layer)][index] * 1000
    rate = _RATES[version][rate_index]
    if layer == 3:  # Layer I: 4-byte slots
        return (12 * bitrate // rate + padding) * 4
    per_frame = 72 if layer == 1 and version != 3 else 144
    return per_frame * bitrate // rate + padding


def check_mp3(media: MediaType, stream: IO[bytes]) -> None:
    reader = _Reader(stream)
    pos = _skip_id3(media, reader)
    frames = 0
    for _ in range(_MAX_FRAMES):
        if pos == reader.size:
            break
        head = reader.at(pos, 11)
        length = mp3_frame_length(head)
        if length is None:
            if frames and head.startswith(_TRAILERS):
                break
            raise _incomplete(media, f"it has no audio frame where one must be (byte {pos})")
        if pos + length > reader.size:
            raise _incomplete(media, f"its last audio frame (byte {pos}) is cut short")
        pos += length
        frames += 1
    else:
        raise _incomplete(media, f"it has more than {_MAX_FRAMES} audio frames")
    if not frames:
        raise _incomplete(media, "it has no audio frames")


# --- FLAC -----------------------------------------------------------------------------------------------

_LAST_FRAME_CANDIDATES = 16  # sync codes near the end tried as the last frame's start


def _crc_table(poly: int, width: int) -> tuple[int, ...]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return tuple(table)


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ b]
    return crc


def flac_frame_header(data: bytes, p: int) -> tuple[int, int, bool] | None:
    """(frame or sample number, block size, variable block size) of the frame header at `data[p]`, or
    None when the bytes there are not a frame header with a valid CRC-8."""
    if len(data) < p + 6 or data[p] != 0xFF or data[p + 1] & 0xFE != 0xF8:
        return None
    variable = bool(data[p + 1] & 1)
    size_code, rate_code, channels = data[p + 2] >> 4, data[p + 2] & 0xF, data[p + 3] >> 4
    if size_code == 0 or rate_code == 15 or channels > 10 or data[p + 3] & 1:
        return None
    q, first = p + 4, data[p + 4]
    extra = next((n for n, lead in enumerate((0x80, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE, 0xFF)) if first < lead), 7)
    if extra == 7 or (extra == 1 and first < 0xC0):
        return None
    number = first & (0x3F >> extra) if extra else first
    for b in data[q + 1 : q + 1 + extra]:
        if b & 0xC0 != 0x80:
            return None
        number = (number << 6) | (b & 0x3F)
    q += 1 + extra
    if size_code == 1:
        block = 192
    elif size_code <= 5:
        block = 576 << (size_code - 2)
    elif size_code == 6:
        block, q = data[q] + 1 if q < len(data) else 0, q + 1
    elif size_code == 7:
        block, q = int.from_bytes(data[q : q + 2], "big") + 1, q + 2
    else:
        block = 256 << (size_code - 8)
    q += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if q >= len(data) or _crc8(data[p:q]) != data[q]:
        return None
    return number, block, variable


def check_flac(media: MediaType, stream: IO[bytes]) -> None:
    reader = _Reader(stream)
    pos = _skip_id3(media, reader)
    if reader.at(pos, 4) != b"fLaC":
        raise _incomplete(media, "it has no FLAC stream marker")
    pos += 4
    info = b""
    while True:  # metadata blocks: a 4-byte header (last-block flag, type, 24-bit length), then the body
        header = reader.at(pos, 4)
        if len(header) < 4:
            raise _incomplete(media, "it ends inside its metadata")
        length = int.from_bytes(header[1:4], "big")
        if pos + 4 + length > reader.size:
            raise _incomplete(media, f"the metadata block at byte {pos} runs past the end")
        if not info:
            if header[0] & 0x7F != 0 or length != 34:
                raise _incomplete(media, "it does not start with a STREAMINFO block")
            info = reader.at(pos + 4, 34)
        pos += 4 + length
        if header[0] & 0x80:
            break
    audio = pos
    if flac_frame_header(reader.at(audio, 16), 0) is None:
        raise _incomplete(media, "its audio frames do not start after the metadata")
    block_size = int.from_bytes(info[0:2], "big")
    max_frame = int.from_bytes(info[7:10], "big") or _WINDOW
    total = int.from_bytes(info[10:18], "big") & ((1 << 36) - 1)
    _last_frame_ends_the_file(media, reader, audio, min(max_frame + 16, _WINDOW), block_size, total)


def _last_frame_ends_the_file(
    media: MediaType, reader: _Reader, audio: int, window: int, block_size: int, total: int
) -> None:
    start = max(audio, reader.size - window)
    tail = reader.at(start, reader.size - start)
    stored = int.from_bytes(tail[-2:], "big")
    p, tried = len(tail), 0
    while tried < _LAST_FRAME_CANDIDATES and (p := tail.rfind(b"\xff", 0, p)) >= 0:
        header = flac_frame_header(tail, p)
        if header is None:
            continue
        tried += 1
        if _crc16(tail[p:-2]) != stored:
            continue
        number, block, variable = header
        first_sample = number if variable else number * block_size
        if total and first_sample + block != total:
            raise _incomplete(media, "its audio ends before the last sample its header announces")
        return
    raise _incomplete(media, "its last audio frame is cut short")


# --- parameters the fingerprint tools can afford ----------------------------------------------------------

# The highest sample rate audio is made at (768 kHz PCM). fpcalc resamples every input to 11025 Hz, and its
# resampler's work grows with the declared rate: a 17 KB WAV declaring 2 GHz kept it busy for over 20 s.
MAX_SAMPLE_RATE = 768_000
_MAX_RIFF_CHUNKS = 1000


def check_fingerprintable(media: MediaType, stream: IO[bytes]) -> None:
    """Refuse, before any tool decodes it, a WAV whose 'fmt ' chunk declares a sample rate or channel count
    no real audio has (`ImplausibleMediaError`, a `MediaFingerprintError`: no ISCC code is made, signing
    goes on without one).
    Other media types pass: their headers cannot declare such rates (MP3, FLAC) or are decoded by ffmpeg
    from codec data this check does not parse."""
    if media.mime != "audio/wav":
        return
    reader = _Reader(stream)
    pos = 12
    for _ in range(_MAX_RIFF_CHUNKS):
        header = reader.at(pos, 8)
        if len(header) < 8:
            return  # no 'fmt ' chunk: the tool fails fast on it
        length = int.from_bytes(header[4:8], "little")
        if header[:4] == b"fmt ":
            fmt = reader.at(pos + 8, 16)
            if len(fmt) < 16:
                return
            channels = int.from_bytes(fmt[2:4], "little")
            rate = int.from_bytes(fmt[4:8], "little")
            if not 1 <= rate <= MAX_SAMPLE_RATE or not 1 <= channels <= 64:
                raise ImplausibleMediaError(
                    f"The WAV file declares {rate} Hz and {channels} channel(s); no fingerprint is made for "
                    f"audio outside 1 to {MAX_SAMPLE_RATE} Hz and 1 to 64 channels.",
                    details={"sample_rate": rate, "channels": channels},
                )
            return
        pos += 8 + length + (length & 1)
