"""The manifest repository on a real SQLite file: migration from 0003, put and the three lookups, the
in-memory index shared across worker processes through the table, and rows altered in the database."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from PIL import Image
from skimage import data

import signing
from app.store.db import alembic_config, is_current, make_engine, migrate
from app.store.manifests import SqlManifestRepository
from app.store.tables import metadata
from signing import ImageFingerprints, PdqHash, RepositoryEntry
from signing.manifest import build_manifest_definition, new_manifest_id


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


@dataclasses.dataclass(frozen=True)
class Signed:
    entry: RepositoryEntry
    altered: bytes  # the signed image, stripped and re-encoded at JPEG 75
    altered_fingerprints: ImageFingerprints


def sign_photo(engine: signing.Engine, signer: signing.NativeSigner, name: str, watermark_id: str) -> Signed:
    """Sign a skimage photo with the soft-binding assertions, keep the manifest store as a sidecar."""
    photo = Image.fromarray(getattr(data, name)()).convert("RGB")
    original = jpeg_bytes(photo, 90)
    fingerprints = signing.image_fingerprints(Image.open(io.BytesIO(original)))
    info = signing.validate_generation(
        model_name="test-diffusion", model_version="2.1", provider="Example AI", digital_source_type=None
    )
    manifest_id = new_manifest_id()
    definition = build_manifest_definition(
        info,
        manifest_id=manifest_id,
        generator=signing.ClaimGenerator("Hallmark", "test"),
        when=datetime.now(UTC),
        has_parent=False,
        default_title=f"{name}.jpg",
    )
    definition["assertions"] += signing.soft_binding_assertions(fingerprints)
    definition["assertions"].append({"label": "org.hallmark.watermark", "data": {"payloadId": watermark_id}})
    store = engine.sign(
        definition, signer, "image/jpeg", io.BytesIO(original), io.BytesIO(), parent=None, sidecar=True
    )
    entry = RepositoryEntry(
        manifest_id=manifest_id,
        manifest_store=store,
        media_type="image/jpeg",
        watermark_id=watermark_id,
        iscc=fingerprints.iscc,
        pdq=fingerprints.pdq,
        key_id="test-key",
        created_at=datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC),
    )
    altered = jpeg_bytes(Image.open(io.BytesIO(original)), 75)
    return Signed(entry, altered, signing.image_fingerprints(Image.open(io.BytesIO(altered))))


@pytest.fixture(scope="module")
def astronaut(engine: signing.Engine, native_signer: signing.NativeSigner) -> Signed:
    return sign_photo(engine, native_signer, "astronaut", "w-astronaut")


@pytest.fixture(scope="module")
def coffee(engine: signing.Engine, native_signer: signing.NativeSigner) -> Signed:
    return sign_photo(engine, native_signer, "coffee", "w-coffee")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hallmark.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def lookup(repo: SqlManifestRepository, fingerprints: ImageFingerprints) -> list[str]:
    return [m.entry.manifest_id for m in repo.nearest(iscc=fingerprints.iscc, pdq=fingerprints.pdq)]


# --- the migration ------------------------------------------------------------------------------------


def test_migration_0004_adds_the_repository_to_a_0003_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        command.upgrade(alembic_config(url), "0003")
        assert "manifests" not in sa.inspect(engine).get_table_names()
        assert not is_current(engine)
        migrate(engine)
        inspector = sa.inspect(engine)
        assert {c["name"] for c in inspector.get_columns("manifests")} == {
            "seq", "manifest_id", "manifest_store", "media_type", "watermark_id", "iscc", "pdq",
            "pdq_quality", "key_id", "created_at", "integrity", "confirmation",  # 0006 adds the last
        }  # fmt: skip
        assert {i["name"]: bool(i["unique"]) for i in inspector.get_indexes("manifests")} == {
            "ix_manifests_watermark_id": True
        }
        assert is_current(engine)
        command.downgrade(alembic_config(url), "0003")
        assert "manifests" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_tables_the_code_uses(db: sa.Engine) -> None:
    with db.connect() as conn:
        context = MigrationContext.configure(conn)
        assert compare_metadata(context, metadata) == []
        extra = sa.MetaData()  # negative control: a difference is reported
        for table in metadata.tables.values():
            table.to_metadata(extra)
        sa.Table("not_migrated", extra, sa.Column("id", sa.Integer, primary_key=True))
        assert [diff[0] for diff in compare_metadata(context, extra)] == ["add_table"]


# --- put and lookups ------------------------------------------------------------------------------------


def test_put_then_get_by_id_by_watermark_and_by_fingerprint(db: sa.Engine, astronaut: Signed) -> None:
    repo = SqlManifestRepository(db)
    repo.put(astronaut.entry)
    assert repo.get(astronaut.entry.manifest_id) == astronaut.entry
    assert repo.get("urn:c2pa:unknown") is None
    assert repo.by_watermark("w-astronaut") == astronaut.entry
    assert repo.by_watermark("w-unknown") is None
    [match] = repo.nearest(iscc=astronaut.altered_fingerprints.iscc, pdq=astronaut.altered_fingerprints.pdq)
    assert match.entry == astronaut.entry
    assert match.iscc_distance is not None
    assert match.iscc_distance <= signing.ISCC_MAX_DISTANCE
    assert match.pdq_distance is not None
    assert match.pdq_distance <= signing.PDQ_MAX_DISTANCE


def test_an_unrelated_photo_finds_nothing(db: sa.Engine, astronaut: Signed, coffee: Signed) -> None:
    repo = SqlManifestRepository(db)
    repo.put(astronaut.entry)
    assert lookup(repo, coffee.altered_fingerprints) == []
    assert lookup(repo, astronaut.altered_fingerprints) == [astronaut.entry.manifest_id]  # control


def test_a_manifest_id_is_stored_once(db: sa.Engine, astronaut: Signed) -> None:
    repo = SqlManifestRepository(db)
    repo.put(astronaut.entry)
    with pytest.raises(signing.StorageError):
        repo.put(dataclasses.replace(astronaut.entry, watermark_id="w-other"))
    assert repo.count() == 1


def test_other_workers_see_new_rows_and_a_restart_loads_them(
    db: sa.Engine, astronaut: Signed, coffee: Signed
) -> None:
    other_worker = SqlManifestRepository(db)  # started before the rows exist
    writer = SqlManifestRepository(db)
    writer.put(astronaut.entry)
    writer.put(coffee.entry)
    assert lookup(other_worker, coffee.altered_fingerprints) == [coffee.entry.manifest_id]
    restarted = SqlManifestRepository(db)
    assert lookup(restarted, astronaut.altered_fingerprints) == [astronaut.entry.manifest_id]


def test_a_low_quality_pdq_is_stored_but_never_matched(db: sa.Engine, astronaut: Signed) -> None:
    repo = SqlManifestRepository(db)
    pdq = astronaut.entry.pdq
    assert pdq is not None
    weak = dataclasses.replace(astronaut.entry, iscc=None, pdq=PdqHash(pdq.bits, signing.PDQ_MIN_QUALITY - 1))
    repo.put(weak)
    assert repo.get(weak.manifest_id) == weak
    assert repo.nearest(iscc=None, pdq=pdq) == []
    strong = dataclasses.replace(weak, manifest_id="urn:c2pa:strong", watermark_id=None, pdq=pdq)  # control
    repo.put(strong)
    assert [m.entry.manifest_id for m in repo.nearest(iscc=None, pdq=pdq)] == ["urn:c2pa:strong"]


# --- rows altered in the database ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("watermark_id", "w-astronaut-2"),
        ("iscc", "ISCC:EEAQAAAAAAAAAAAA"),
        ("pdq", bytes(32)),
        ("pdq_quality", 51),
        ("manifest_store", b"not the signed store"),
        ("key_id", "other-key"),
        ("created_at", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_row_altered_with_sql_is_never_offered(
    db: sa.Engine, astronaut: Signed, coffee: Signed, column: str, value: object
) -> None:
    repo = SqlManifestRepository(db)
    repo.put(astronaut.entry)
    repo.put(coffee.entry)
    with db.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE manifests SET {column} = :value WHERE manifest_id = :id"),
            {"value": value, "id": astronaut.entry.manifest_id},
        )
    fresh = SqlManifestRepository(db)
    for current in (repo, fresh):
        assert current.get(astronaut.entry.manifest_id) is None
        assert current.by_watermark("w-astronaut") is None
        assert lookup(current, astronaut.altered_fingerprints) == []
        # Negative control: the row nobody touched is still offered.
        assert current.get(coffee.entry.manifest_id) == coffee.entry
        assert current.by_watermark("w-coffee") == coffee.entry
        assert lookup(current, coffee.altered_fingerprints) == [coffee.entry.manifest_id]


def test_a_stored_entry_reverifies_against_the_stripped_file(
    engine: signing.Engine, astronaut: Signed
) -> None:
    check = signing.check_stored_entry(engine, astronaut.entry, "image/jpeg", io.BytesIO(astronaut.altered))
    assert check.faults == ()


def test_an_alteration_with_a_recomputed_digest_fails_reverification(
    db: sa.Engine, engine: signing.Engine, astronaut: Signed, coffee: Signed
) -> None:
    """Someone with write access to the database can recompute the row digest, not the manifest signature."""
    repo = SqlManifestRepository(db)
    repo.put(astronaut.entry)
    forged = dataclasses.replace(astronaut.entry, iscc=coffee.entry.iscc, pdq=coffee.entry.pdq)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE manifests SET iscc = :iscc, pdq = :pdq, integrity = :digest WHERE manifest_id = :id"
            ),
            {
                "iscc": forged.iscc,
                "pdq": forged.pdq.bits if forged.pdq else None,
                "digest": signing.entry_digest(forged),
                "id": forged.manifest_id,
            },
        )
    restarted = SqlManifestRepository(db)  # the index loads the forged fingerprints
    [match] = restarted.nearest(iscc=coffee.altered_fingerprints.iscc, pdq=coffee.altered_fingerprints.pdq)
    assert match.entry == forged  # the repository offers it as a candidate...
    check = signing.check_stored_entry(engine, match.entry, "image/jpeg", io.BytesIO(coffee.altered))
    assert check.faults == (signing.EntryFault.ISCC, signing.EntryFault.PDQ)  # ...the core refuses it
    transplanted = dataclasses.replace(coffee.entry, manifest_store=astronaut.entry.manifest_store)
    check = signing.check_stored_entry(engine, transplanted, "image/jpeg", io.BytesIO(coffee.altered))
    assert signing.EntryFault.MANIFEST_ID in check.faults
    assert not check.offerable


# --- the search near a blind read ------------------------------------------------------------------------


def flipped(word: bytes, count: int) -> bytes:
    """`word` with its first `count` bits inverted (a read with that many errors)."""
    value = int.from_bytes(word, "big") ^ (((1 << count) - 1) << (8 * len(word) - count))
    return value.to_bytes(len(word), "big")


def test_watermark_ids_are_found_near_a_read_the_code_could_not_correct(
    db: sa.Engine, astronaut: Signed, coffee: Signed
) -> None:
    repo = SqlManifestRepository(db)
    marked = dataclasses.replace(astronaut.entry, watermark_id="5a17c0debeef")
    other = dataclasses.replace(coffee.entry, watermark_id="0123456789ab")
    unmarked = dataclasses.replace(coffee.entry, manifest_id="urn:c2pa:unmarked", watermark_id=None)
    for entry in (marked, other, unmarked):
        repo.put(entry)
    word = signing.watermark_codeword(0x5A17C0DEBEEF)
    assert repo.watermark_count() == 2
    assert repo.near_watermarks(flipped(word, 30), 3) == [marked]  # 30 of 125 bits wrong
    assert repo.near_watermarks(flipped(word, signing.WATERMARK_WORD_RADIUS + 1), 3) == []
    assert repo.near_watermarks(None, 3) == []
    restarted = SqlManifestRepository(db)
    assert restarted.near_watermarks(flipped(word, 30), 3) == [marked]

    with db.begin() as conn:  # the row decides, digest-checked: an altered id is not offered
        conn.execute(
            sa.text("UPDATE manifests SET watermark_id = '5a17c0debeee' WHERE manifest_id = :id"),
            {"id": marked.manifest_id},
        )
    for current in (repo, SqlManifestRepository(db)):
        assert current.near_watermarks(word, 3) == []
        assert current.near_watermarks(signing.watermark_codeword(0x0123456789AB), 3) == [other]  # control


def test_pictures_past_the_match_threshold_are_candidates_within_the_wider_pdq_distance(
    db: sa.Engine, astronaut: Signed
) -> None:
    repo = SqlManifestRepository(db)
    repo.put(astronaut.entry)
    pdq = astronaut.entry.pdq
    assert pdq is not None
    turned = PdqHash(flipped(pdq.bits, 50), pdq.quality)  # as far as a 2 degree turn moves it
    assert repo.nearest(iscc=None, pdq=turned) == []  # no match
    assert repo.near_pictures(turned, 3) == [astronaut.entry]
    far = PdqHash(flipped(pdq.bits, signing.PDQ_CANDIDATE_DISTANCE + 1), pdq.quality)
    assert repo.near_pictures(far, 3) == []
    assert repo.near_pictures(PdqHash(turned.bits, signing.PDQ_MIN_QUALITY - 1), 3) == []
    assert repo.near_pictures(None, 3) == []
