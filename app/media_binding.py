"""The ISCC audio/video code of an upload being signed: the file goes to a private temporary file (the
tools read paths), fpcalc or ffmpeg runs under limits (`app.media_features`), and the file is removed."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.media_features import MediaTools, media_iscc_outcome
from app.settings import Settings
from app.temp_sweep import prefix as temp_prefix
from signing import HallmarkError, iscc_kind_of, sniff


@dataclass(frozen=True)
class MediaCode:
    iscc: str | None
    reason: str | None  # why there is none, for a media type that should have one

    def header(self) -> str | None:
        if self.iscc is not None:
            return self.iscc
        return f"none; reason={self.reason}" if self.reason else None


def media_code(stream: IO[bytes], settings: Settings) -> MediaCode:
    """The code of an audio or video upload; (None, None) for anything else, or a file sign will refuse."""
    try:
        media = sniff(stream)
    except HallmarkError:
        return MediaCode(None, None)  # sign refuses it with the right error
    finally:
        stream.seek(0)
    if media.kind not in ("audio", "video") or iscc_kind_of(media) is None:
        return MediaCode(None, None)
    with tempfile.TemporaryDirectory(prefix=temp_prefix("media")) as folder:
        path = Path(folder) / f"upload.{media.extension}"
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out)
        stream.seek(0)
        outcome = media_iscc_outcome(path, media, tools=MediaTools.from_settings(settings))
    return MediaCode(outcome.iscc, outcome.error.code if outcome.error else None)
