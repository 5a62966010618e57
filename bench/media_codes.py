"""ISCC audio and video codes: Hamming distances after re-encodes and between unrelated media, and the time
one code takes per 10 s of audio and per 10 s of 720p video (Debian's fpcalc and ffmpeg, as the service
runs them: one thread, with its limits).

Run: `.venv/bin/python -m bench.media_codes` (about three minutes on 2 cores). The audio and video
thresholds in signing/softbinding/iscc.py are chosen from its output. Audio: 15 s passages of the
interop corpus's song (sample1.mp3) and its other recording (sample1.wav). Video: 10 s 1280x720 slow
zooms into scikit-image photos, plus ffmpeg's testsrc2 and mandelbrot patterns.

`--reference DIR` also checks the codes against the ones iscc-sdk's own tests publish for the sample files
of the `iscc-samples` package (DIR: its `files` folder; the package is not a dependency).
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data

from app.media_features import MediaTools, media_iscc
from signing import IsccKind, MediaType, iscc_distance
from signing.media import M4A, MOV, MP3, MP4, WAV
from tests.fixtures import INTEROP
from tests.media_samples import generate, make_photo_video, transcode

TOOLS = MediaTools(timeout_seconds=600)
AUDIO_STARTS = (0, 15, 30, 45, 60, 75, 90, 105)  # seconds into the 122 s song
AUDIO_ATTACKS: dict[str, tuple[str, MediaType, tuple[str, ...]]] = {
    "mp3 128k": ("mp3", MP3, ("-c:a", "libmp3lame", "-b:a", "128k")),
    "mp3 64k": ("mp3", MP3, ("-c:a", "libmp3lame", "-b:a", "64k")),
    "mp3 32k": ("mp3", MP3, ("-c:a", "libmp3lame", "-b:a", "32k")),
    "aac 64k": ("m4a", M4A, ("-c:a", "aac", "-b:a", "64k", "-f", "ipod")),
    "aac 24k mono": ("m4a", M4A, ("-c:a", "aac", "-b:a", "24k", "-ac", "1", "-f", "ipod")),
    "wav 16 kHz mono": ("wav", WAV, ("-ar", "16000", "-ac", "1")),
    "volume +50 %": ("wav", WAV, ("-af", "volume=1.5")),
}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
PATTERNS = {
    "testsrc2": "testsrc2=size=1280x720:rate=25:duration=10",
    "mandelbrot": "mandelbrot=size=1280x720:rate=25",
}
H264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
VIDEO_ATTACKS: dict[str, tuple[str, MediaType, tuple[str, ...]]] = {
    "h264 crf 35": ("mp4", MP4, (*H264, "-crf", "35")),
    "360p 300k": ("mp4", MP4, ("-vf", "scale=640:360", *H264, "-b:v", "300k")),
    "480p crf 28": ("mp4", MP4, ("-vf", "scale=854:480", *H264, "-crf", "28")),
    "mpeg4 in mov": ("mov", MOV, ("-c:v", "mpeg4", "-q:v", "10", "-f", "mov")),
}
PUBLISHED = {  # iscc-sdk tests/test_audio.py, tests/test_video.py (v0.9.5)
    "audio/demo.mp3": (MP3, "ISCC:EIAWUJFCEZZOJYVD"),
    "audio/demo.wav": (WAV, "ISCC:EIAWUJFCEZZOJYVD"),
    "video/demo.mp4": (MP4, "ISCC:EMAV4DUD6QORW4X4"),
}


def distance(a: str, b: str) -> int:
    found = iscc_distance(a, b)
    assert found is not None
    return found


def robustness(
    work: Path,
    kind: IsccKind,
    originals: dict[str, tuple[Path, MediaType]],
    attacks: dict[str, tuple[str, MediaType, tuple[str, ...]]],
) -> None:
    codes = {name: media_iscc(path, media, tools=TOOLS) for name, (path, media) in originals.items()}
    print(f"{kind} codes: {len(codes)} originals, threshold <= {kind.max_distance}")
    for attack, (suffix, media, options) in attacks.items():
        worst = 0
        for name, (path, _) in originals.items():
            attacked = work / f"{path.stem}.{attack.replace(' ', '_')}.{suffix}"  # never beside a fixture
            transcode(path, attacked, *options)
            worst = max(worst, distance(codes[name], media_iscc(attacked, media, tools=TOOLS)))
        print(f"  {attack:16} max distance {worst}")
    pairs = [(distance(codes[a], codes[b]), a, b) for a, b in itertools.combinations(codes, 2)]
    for label, same in (("other source", False), ("same source", True)):
        chosen = [p for p in pairs if (p[1].split("@")[0] == p[2].split("@")[0]) == same]
        if chosen:
            d, a, b = min(chosen)
            print(f"  nearest pair, {label:12} {d:2d}  ({a} / {b}, of {len(chosen)} pairs)")


def per_ten_seconds(label: str, path: Path, media: MediaType, seconds: float, runs: int = 5) -> None:
    wall, cpu = [], []
    for _ in range(runs):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        media_iscc(path, media, tools=TOOLS)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall.append(time.perf_counter() - start)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    scale = 10 / seconds
    print(
        f"  {label:28} p50 {statistics.median(wall) * scale:.2f} s wall, "
        f"{statistics.median(cpu) * scale:.2f} s CPU per 10 s"
    )


def reference(files: Path) -> None:
    print("against the codes iscc-sdk's tests publish for iscc-samples:")
    for name, (media, expected) in PUBLISHED.items():
        ours = media_iscc(files / name, media, tools=TOOLS)
        print(
            f"  {name:16} ours {ours}  published {expected}  {'equal' if ours == expected else 'DIFFERENT'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="iscc-samples' files folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        song = INTEROP / "sample1.mp3"
        audio: dict[str, tuple[Path, MediaType]] = {}
        for start in AUDIO_STARTS:
            clip = work / f"song-{start:03d}s.wav"
            transcode(song, clip, "-ss", str(start), "-t", "15")
            audio[f"song@{start}s"] = (clip, WAV)
        audio["other recording"] = (INTEROP / "sample1.wav", WAV)
        robustness(work, IsccKind.AUDIO, audio, AUDIO_ATTACKS)
        video: dict[str, tuple[Path, MediaType]] = {}
        for name in PHOTOS:
            photo, clip = work / f"{name}.png", work / f"{name}.mp4"
            Image.fromarray(getattr(data, name)()).convert("RGB").save(photo)
            make_photo_video(clip, photo, seconds=10, size="1280x720")
            video[name] = (clip, MP4)
        for name, source in PATTERNS.items():
            clip = work / f"{name}.mp4"
            generate(clip, source, "-t", "10", *H264)
            video[name] = (clip, MP4)
        robustness(work, IsccKind.VIDEO, video, VIDEO_ATTACKS)
        print("time per code (one thread per tool, machine shared):")
        per_ten_seconds("audio, 15 s WAV", audio["song@0s"][0], WAV, 15)
        mp3 = work / "song.mp3"
        transcode(audio["song@0s"][0], mp3, "-c:a", "libmp3lame", "-b:a", "128k")
        per_ten_seconds("audio, 15 s MP3 128k", mp3, MP3, 15)
        per_ten_seconds("video, 10 s 720p H.264", video["astronaut"][0], MP4, 10)
        if args.reference:
            reference(args.reference)


if __name__ == "__main__":
    main()
