"""`Content-Disposition` of a signed download: the upload's own name, made safe for a header (RFC 6266)."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_STEM_CHARS = 120
# RFC 5987 attr-char, the characters `filename*` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"


def content_disposition(upload_name: str | None, extension: str) -> str:
    """`attachment` named like the CLI's default output, `<stem>.signed.<ext>`: the stem of the uploaded
    file's name (no directories, quotes, backslashes or control characters), `ext` that of the detected
    type; `signed.<ext>` when no usable name came. Non-ASCII names travel in `filename*` (UTF-8), with an
    ASCII `filename` for older clients."""
    stem = _stem(upload_name)
    name = f"{stem}.signed.{extension}" if stem else f"signed.{extension}"
    ascii_name = "".join(c if c.isascii() else "_" for c in name)
    if ascii_name == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"


def _stem(upload_name: str | None) -> str:
    base = (upload_name or "").replace("\\", "/").rsplit("/", 1)[-1]  # a client may send a whole path
    clean = "".join(c for c in base if c != '"' and unicodedata.category(c)[0] != "C")
    stem = clean.rsplit(".", 1)[0] if "." in clean.lstrip(".") else clean
    return stem.strip(" .")[:MAX_STEM_CHARS].strip(" .")
