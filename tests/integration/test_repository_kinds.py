"""The manifest repository on a real SQLite file keeps ISCC codes apart by kind: an audio code finds audio
entries only, even when an image or a video entry has the very same 64-bit body, and each kind is matched
under its own threshold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.store.db import make_engine, migrate
from app.store.manifests import SqlManifestRepository
from signing import IsccKind, RepositoryEntry, iscc_code

BODY = bytes.fromhex("93c1d07e55aa0f3c")


def flip(body: bytes, bits: int) -> bytes:
    return (int.from_bytes(body, "big") ^ ((1 << bits) - 1)).to_bytes(len(body), "big")


def entry(kind: IsccKind, body: bytes = BODY) -> RepositoryEntry:
    return RepositoryEntry(
        manifest_id=f"urn:c2pa:{kind}-{body.hex()}",
        manifest_store=f"store of {kind}".encode(),
        media_type={IsccKind.IMAGE: "image/jpeg", IsccKind.AUDIO: "audio/wav", IsccKind.VIDEO: "video/mp4"}[
            kind
        ],
        watermark_id=None,
        iscc=iscc_code(body, kind),
        pdq=None,
        key_id="test-key",
        created_at=datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hallmark.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def found(repo: SqlManifestRepository, code: str) -> list[str]:
    return [m.entry.manifest_id for m in repo.nearest(iscc=code, pdq=None)]


def test_a_code_finds_only_entries_of_its_own_kind(db: sa.Engine) -> None:
    repo = SqlManifestRepository(db)
    for kind in IsccKind:
        repo.put(entry(kind))
    for kind in IsccKind:
        assert found(repo, iscc_code(BODY, kind)) == [entry(kind).manifest_id]
    # A second worker process loads the same rows from the table into the same per-kind indexes.
    restarted = SqlManifestRepository(db)
    for kind in IsccKind:
        assert found(restarted, iscc_code(flip(BODY, 2), kind)) == [entry(kind).manifest_id]


def test_each_kind_is_matched_under_its_own_threshold(db: sa.Engine) -> None:
    repo = SqlManifestRepository(db)
    audio, video = entry(IsccKind.AUDIO), entry(IsccKind.VIDEO)
    repo.put(audio)
    repo.put(video)
    seven_bits_off = flip(BODY, 7)  # beyond audio's 6, within video's 12
    assert found(repo, iscc_code(seven_bits_off, IsccKind.AUDIO)) == []
    assert found(repo, iscc_code(seven_bits_off, IsccKind.VIDEO)) == [video.manifest_id]
    assert found(repo, iscc_code(flip(BODY, 6), IsccKind.AUDIO)) == [audio.manifest_id]  # negative control
