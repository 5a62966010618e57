"""Streaming digests of seekable streams (never the whole file in one buffer)."""

from __future__ import annotations

import hashlib
from typing import IO

CHUNK = 1 << 20


def sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    """SHA-256 hex digest and size of a seekable stream; leaves it at offset 0."""
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size
