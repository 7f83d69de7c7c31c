"""One contract, every metadata store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.decode import SourceInfo
from pipeline.errors import DatabaseUnavailable, PhotoNotFound
from pipeline.metadata import MetadataStore, NewPhoto, RenditionRow, open_metadata
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.sqlite import EPOCH_MS, SqliteMetadata
from pipeline.settings import Settings
from tests import services

SOURCE = SourceInfo("JPEG", 4032, 3024, 2_000_000, 1, 6)
ROWS = [RenditionRow("w1080", "jpg", "photos/7/w1080.jpg", 1080, 1440, 200_000),
        RenditionRow("w1080", "webp", "photos/7/w1080.webp", 1080, 1440, 120_000),
        RenditionRow("sq150", "jpg", "photos/7/sq150.jpg", 150, 150, 9_000)]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    store: MetadataStore
    if request.param == "sqlite":
        store = SqliteMetadata(str(tmp_path / "meta.db"))
    else:
        store = PostgresMetadata(request.getfixturevalue("postgres_url"))
        store.upgrade()
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
    assert again.upgrade() == 2 and again.get(1) is not None
    again.close()


def test_ids_follow_the_instagram_layout_and_sort_by_time(db: MetadataStore) -> None:
    before = int(time.time() * 1000) - EPOCH_MS
    ids = [db.allocate_id() for _ in range(50)]
    after = int(time.time() * 1000) - EPOCH_MS
    assert ids == sorted(ids) and len(set(ids)) == 50
    for photo_id in ids:
        assert 0 < photo_id < 2**63
        assert before - 5 <= photo_id >> 23 <= after + 5  # 41 bits of milliseconds
        assert (photo_id >> 10) & 0x1FFF == 0  # logical shard 0
    sequences = [i & 0x3FF for i in ids]  # 10 bits of a per-shard sequence
    assert len(set(sequences)) == 50


def test_upgrade_is_idempotent(db: MetadataStore) -> None:
    version = db.upgrade()
    assert db.upgrade() == version >= 1


def test_postgres_column_default_is_the_id_function(postgres_url: str) -> None:
    store = PostgresMetadata(postgres_url)
    store.upgrade()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO photos (status, source_key, ladder, strength) "
                           "VALUES ('queued', 'k', 'default', 1) RETURNING id").fetchone()
        shard = conn.execute("SELECT next_photo_id(4095)").fetchone()
    assert row is not None and row[0] >> 23 > 0
    assert shard is not None and (shard[0] >> 10) & 0x1FFF == 4095
    store.close()


def test_postgres_outage_is_transient_and_reconnects(postgres_url: str) -> None:
    store = PostgresMetadata(postgres_url)
    store.upgrade()
    store.create(NewPhoto(1, "originals/1"))
    with psycopg.connect(services.POSTGRES, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE pid <> pg_backend_pid() AND datname = 'test' "
                      "AND application_name = ''")
    with pytest.raises(DatabaseUnavailable):
        store.get(1)
    row = store.get(1)  # the next call opens a new connection
    assert row is not None and row.status == "queued"
    store.close()
    unreachable = PostgresMetadata(f"postgresql://postgres@127.0.0.1:{services.free_port()}/x",
                                   connect_timeout=2)
    with pytest.raises(DatabaseUnavailable):
        unreachable.counts()
