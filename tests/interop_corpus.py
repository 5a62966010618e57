"""What Hallmark answers for the interop corpus's hostile or malformed files (EXPECTED.tsv `Error:Other`).

The reference only says "error"; Hallmark answers each of these files in exactly one way, listed here so that
a test checks that one answer: the file itself is refused as malformed (MalformedAssetError, HTTP 422), or it
is read and its manifest reported unreadable (outcome `invalid`, integrity `unreadable`).
"""

from __future__ import annotations

# The engine raises one error type (`Other`) for all five, and Hallmark classifies engine errors by type
# only: each is refused as a file that could not be parsed (prerelease and unknown-algorithm credentials
# included; the engine's type cannot single them out).
MALFORMED = frozenset(
    {"nested_moov_1000.mp4", "sample3.invalid.wav", "tiff_poc.tiff", "no_alg.jpg", "prerelease.jpg"}
)
UNREADABLE_MANIFEST: frozenset[str] = frozenset()
# Refused over HTTP by the structure pre-scan (signing/structure.py, HALLMARK_PRESCAN_*) before the engine
# reads them: 1000 nested RIFF lists (the reference finds no manifest in it). nested_moov_1000.mp4 is refused
# by the pre-scan too, with the same status as the engine's own refusal (422).
PRESCAN_REFUSED = frozenset({"riff_bomb_1000.wav", "nested_moov_1000.mp4"})


def refused_as_malformed(name: str) -> bool:
    """True for a file refused as malformed, False for one reported unreadable; fails for any other file."""
    assert name in MALFORMED | UNREADABLE_MANIFEST, (
        f"{name} is an `Error:Other` row not listed in tests/interop_corpus.py: add it to one of the sets"
    )
    return name in MALFORMED
