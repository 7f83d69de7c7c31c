"""One contract, every metadata store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.decode import SourceInfo
from pipeline.errors import PhotoNotFound
from pipeline.metadata import MetadataStore, NewPhoto, RenditionRow, open_metadata
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Settings

SOURCE = SourceInfo("JPEG", 4032, 3024, 2_000_000, 1, 6)
ROWS = [RenditionRow("w1080", "jpg", "photos/7/w1080.jpg", 1080, 1440, 200_000),
        RenditionRow("w1080", "webp", "photos/7/w1080.webp", 1080, 1440, 120_000),
        RenditionRow("sq150", "jpg", "photos/7/sq150.jpg", 150, 150, 9_000)]


@pytest.fixture(params=["sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    store = SqliteMetadata(str(tmp_path / "meta.db"))
    yield store
    store.close()


def test_photo_moves_queued_processing_ready(db: MetadataStore) -> None:
    db.create(NewPhoto(7, "originals/7", "default", "clarendon", 0.5, user_id=42))
    row = db.get(7)
    assert row is not None and row.status == "queued" and row.attempts == 0
    assert (row.filter, row.strength, row.user_id) == ("clarendon", 0.5, 42)
    assert db.start(7).status == "processing"
    db.finish(7, SOURCE, ROWS)
    row = db.get(7)
    assert row is not None and row.status == "ready" and row.attempts == 1
    assert row.source == SOURCE and row.error_code is None
    assert db.renditions(7) == ROWS


def test_rerun_replaces_renditions_and_counts_attempts(db: MetadataStore) -> None:
    db.create(NewPhoto(7, "originals/7"))
    db.start(7)
    db.finish(7, SOURCE, ROWS)
    db.create(NewPhoto(7, "originals/7", "classic"))
    db.start(7)
    db.finish(7, SOURCE, ROWS[2:])
    row = db.get(7)
    assert row is not None and row.attempts == 2 and row.ladder == "classic"
    assert db.renditions(7) == ROWS[2:]


def test_fail_records_the_code_and_drops_renditions(db: MetadataStore) -> None:
    db.create(NewPhoto(8, "originals/8"))
    db.start(8)
    db.finish(8, SOURCE, [RenditionRow("sq150", "jpg", "photos/8/sq150.jpg", 150, 150, 1)])
    db.start(8)
    db.fail(8, "truncated", "the JPEG data ends before the picture does")
    row = db.get(8)
    assert row is not None and row.status == "failed" and row.error_code == "truncated"
    assert db.renditions(8) == []


def test_counts_cover_every_status(db: MetadataStore) -> None:
    assert db.counts() == {"queued": 0, "processing": 0, "ready": 0, "failed": 0}
    for photo_id in (1, 2, 3):
        db.create(NewPhoto(photo_id, f"originals/{photo_id}"))
    db.start(2)
    db.start(3)
    db.fail(3, "corrupt", "x")
    assert db.counts() == {"queued": 1, "processing": 1, "ready": 0, "failed": 1}


def test_unknown_photo(db: MetadataStore) -> None:
    assert db.get(99) is None
    assert db.renditions(99) == []
    with pytest.raises(PhotoNotFound):
        db.start(99)


def test_open_metadata_by_url(tmp_path: Path) -> None:
    store = open_metadata(Settings(database_url=f"sqlite:///{tmp_path}/x/m.db"))
    assert isinstance(store, SqliteMetadata)
    store.close()
    assert (tmp_path / "x" / "m.db").exists()
    with pytest.raises(ValueError, match="mysql"):
        open_metadata(Settings(database_url="mysql://x/y"))


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    first = SqliteMetadata(path)
    first.create(NewPhoto(1, "originals/1"))
    first.close()
    again = SqliteMetadata(path)
    assert again.upgrade() == 1 and again.get(1) is not None
    again.close()
