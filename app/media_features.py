"""ISCC audio and video codes of a file on disk: runs Debian's `fpcalc` and `ffmpeg` the way iscc-sdk does,
and hands their output to the core (signing/softbinding/media_codes.py).

Each tool runs without a shell, with no stdin, a minimal environment, a wall-clock timeout and resource
limits set in the child (CPU seconds, address space, size of any file it writes, no core dump). Its output
goes to files in a private temporary directory, so the size limit bounds what is read back. ffmpeg reads
only the local file, with the demuxer of the media type the file was sniffed as (never a guessed one that
could follow a playlist). Nothing is downloaded: the tools are the system's, or the configured paths.
"""

from __future__ import annotations

import math
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.settings import Settings
from app.temp_sweep import prefix as temp_prefix
from signing import (
    VIDEO_FPS,
    IsccKind,
    MediaFingerprintError,
    MediaToolMissingError,
    MediaToolTimeoutError,
    MediaType,
    audio_iscc,
    check_fingerprintable,
    chromaprint_fingerprint,
    frame_signatures,
    iscc_kind_of,
    video_iscc,
)

MiB: Final = 1024 * 1024
# The most a tool may write (its printed features, its signature file, its messages): at 5 frames a
# second a signature takes 86 bytes a frame, Chromaprint JSON about 100 bytes a second of audio, so this
# is more than a day of media.
MAX_OUTPUT_BYTES: Final = 16 * MiB
_ENV: Final = {"LC_ALL": "C"}
# fpcalc exits 3 for "non-critical" decoding errors after it has printed a fingerprint; Debian 12's
# Chromaprint 1.5.1 with FFmpeg 5 does so at the end of every file (chromaprint issues 122 and 137).
_FPCALC_OK: Final = frozenset({0, 3})
# ffmpeg's demuxer for each media type Hallmark signs (the format is forced, never probed).
_DEMUXER: Final = {
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "audio/mp4": "mov",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
}
_SIGNATURE_FILE: Final = "signature.bin"


@dataclass(frozen=True)
class MediaTools:
    """Where the tools are and what each run may use."""

    fpcalc: str = "fpcalc"  # a path, or a name looked up on PATH
    ffmpeg: str = "ffmpeg"
    timeout_seconds: float = 60.0  # wall clock per run; the CPU limit is the same number of seconds
    memory_bytes: int = 2048 * MiB  # address space per run
    max_output_bytes: int = MAX_OUTPUT_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaTools:
        return cls(
            fpcalc=settings.fpcalc_path,
            ffmpeg=settings.ffmpeg_path,
            timeout_seconds=settings.media_fingerprint_timeout_seconds,
            memory_bytes=settings.media_fingerprint_memory_bytes,
        )


@dataclass(frozen=True)
class MediaIsccOutcome:
    """An ISCC audio/video code, or the error that explains why there is none (never both)."""

    iscc: str | None
    error: MediaFingerprintError | None

    @property
    def reason(self) -> str | None:
        return self.error.message if self.error else None


def media_iscc(path: Path, media: MediaType, *, tools: MediaTools) -> str:
    """The canonical 64-bit ISCC audio code (audio) or video code (video) of the file at `path`, which was
    sniffed as `media`. Raises `MediaFingerprintError` (or its subclasses `MediaToolMissingError`,
    `MediaToolTimeoutError`)."""
    kind = iscc_kind_of(media)
    with path.open("rb") as stream:
        check_fingerprintable(media, stream)  # before a tool spends minutes on an absurd declared rate
    if kind is IsccKind.AUDIO:
        return audio_iscc(chromaprint_fingerprint(_fpcalc(path, tools)))
    if kind is IsccKind.VIDEO and media.mime in _DEMUXER:
        return video_iscc(frame_signatures(_ffmpeg_signature(path, _DEMUXER[media.mime], tools)))
    raise MediaFingerprintError(
        f"No ISCC audio/video code is made for {media.mime} files.", details={"media_type": media.mime}
    )


def media_iscc_outcome(path: Path, media: MediaType, *, tools: MediaTools) -> MediaIsccOutcome:
    """`media_iscc`, for a caller that signs without the code when it cannot be made."""
    try:
        return MediaIsccOutcome(media_iscc(path, media, tools=tools), None)
    except MediaFingerprintError as exc:
        return MediaIsccOutcome(None, exc)


def _fpcalc(path: Path, tools: MediaTools) -> bytes:
    # iscc-sdk's arguments: raw integers, JSON, signed, the whole file (-length 0).
    args = ["-raw", "-json", "-signed", "-length", "0", str(path.absolute())]
    with tempfile.TemporaryDirectory(prefix=temp_prefix("av")) as work:
        return _run("fpcalc", tools.fpcalc, args, Path(work), tools, ok=_FPCALC_OK)


def _ffmpeg_signature(path: Path, demuxer: str, tools: MediaTools) -> bytes:
    # iscc-sdk's filter chain: resample to 5 frames a second, then the MPEG-7 signature in binary form.
    args = [
        "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1", "-filter_threads", "1",
        "-protocol_whitelist", "file", "-f", demuxer, "-i", f"file:{path.absolute()}",
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", f"fps=fps={VIDEO_FPS},signature=format=binary:filename={_SIGNATURE_FILE}",
        "-f", "null", "-",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=temp_prefix("av")) as work:
        _run("ffmpeg", tools.ffmpeg, args, Path(work), tools, ok=frozenset({0}))
        signature = Path(work) / _SIGNATURE_FILE
        if not signature.is_file():
            raise MediaFingerprintError(
                "ffmpeg wrote no video signature.", details={"tool": "ffmpeg", "problem": "no signature"}
            )
        return _read_bounded(signature, tools.max_output_bytes, "ffmpeg")


def _run(
    tool: str, executable: str, args: list[str], work: Path, tools: MediaTools, *, ok: frozenset[int]
) -> bytes:
    """Run one tool in `work`; its stdout (bounded), or the error that says why not."""
    binary = shutil.which(executable)
    if binary is None:
        raise _missing(tool, executable)
    stdout, stderr = work / "stdout", work / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        try:
            done = subprocess.run(  # noqa: S603 (no shell; the arguments are ours and the file's path)
                [binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=work,
                env=_ENV,
                timeout=tools.timeout_seconds,
                preexec_fn=_limits(tools),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise MediaToolTimeoutError(
                f"{tool} took longer than {tools.timeout_seconds:g} s and was stopped.",
                hint="Raise HALLMARK_MEDIA_FINGERPRINT_TIMEOUT_SECONDS for long files.",
                details={"tool": tool, "timeout_seconds": tools.timeout_seconds},
            ) from None
        except OSError:
            raise _missing(tool, executable) from None
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise MediaToolTimeoutError(
            f"{tool} used up its CPU time limit and was stopped.",
            details={"tool": tool, "cpu_seconds": _cpu_seconds(tools)},
        )
    if done.returncode == -signal.SIGXFSZ:
        raise MediaFingerprintError(
            f"{tool} wrote more than {tools.max_output_bytes} bytes and was stopped.",
            details={"tool": tool, "problem": "output too large"},
        )
    if done.returncode not in ok:
        raise MediaFingerprintError(
            f"{tool} could not fingerprint the file (exit status {done.returncode}).",
            hint="The file may be damaged, or hold no stream of the kind its type says.",
            details={"tool": tool, "exit_status": done.returncode},
        )
    return _read_bounded(stdout, tools.max_output_bytes, tool)


def _limits(tools: MediaTools) -> Callable[[], None]:
    cpu, memory, output = _cpu_seconds(tools), tools.memory_bytes, tools.max_output_bytes

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL a second later
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))  # SIGXFSZ past it
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _cpu_seconds(tools: MediaTools) -> int:
    return max(1, math.ceil(tools.timeout_seconds))


def _read_bounded(path: Path, limit: int, tool: str) -> bytes:
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise MediaFingerprintError(
            f"{tool} wrote more than {limit} bytes.", details={"tool": tool, "problem": "output too large"}
        )
    return data


def _missing(tool: str, executable: str) -> MediaToolMissingError:
    package = {"fpcalc": "libchromaprint-tools", "ffmpeg": "ffmpeg"}[tool]
    return MediaToolMissingError(
        f"{tool} is not installed or not executable at '{executable}': no ISCC audio/video code.",
        hint=f"Install Debian's {package} (scripts/test-deps.sh does), or set HALLMARK_{tool.upper()}_PATH.",
        details={"tool": tool},
    )
