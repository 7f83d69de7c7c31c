"""process() and ingest(): idempotent, all-or-nothing, through real stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PhotoNotFound
from pipeline.jobs import Job, Options, content_id, ingest, original_key, process
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Settings
from pipeline.storage import open_store
from pipeline.storage.memory import MemoryStore
from tests.helpers import PHOTOS

PHOTO = PHOTOS / "real" / "htc_desire_phone_gps.jpg"


def test_ingest_stores_original_and_every_rendition(
        memory_store: MemoryStore, sqlite_db: SqliteMetadata, settings: Settings) -> None:
    data = PHOTO.read_bytes()
    row = ingest(data, Options(), memory_store, sqlite_db, settings)
    assert row.status == "ready" and row.id == content_id(data) and row.attempts == 1
    renditions = sqlite_db.renditions(row.id)
    assert [f"{r.name}.{r.format}" for r in renditions] == [
        "w1080.jpg", "w1080.webp", "w640.jpg", "w320.jpg", "sq150.jpg"]
    assert sorted(memory_store.list()) == sorted(
        [original_key(row.id)] + [r.key for r in renditions])
    for r in renditions:
        assert len(memory_store.get(r.key)) == r.bytes
        kind = "jpeg" if r.format == "jpg" else "webp"
        assert memory_store.content_type(r.key) == f"image/{kind}"
    assert memory_store.get(original_key(row.id)) == data


def test_running_twice_overwrites_rather_than_duplicates(
        memory_store: MemoryStore, sqlite_db: SqliteMetadata, settings: Settings) -> None:
    data = PHOTO.read_bytes()
    first = ingest(data, Options(), memory_store, sqlite_db, settings)
    keys = list(memory_store.list())
    second = ingest(data, Options(), memory_store, sqlite_db, settings)
    assert second.id == first.id and second.attempts == 2
    assert list(memory_store.list()) == keys
    assert len(sqlite_db.renditions(first.id)) == 5
    assert sqlite_db.counts()["ready"] == 1


@pytest.mark.parametrize("name", ["truncated_pixel6_ultrahdr_gps.jpg", "bomb_4gpx.gif",
                                  "png_with_jpg_extension.jpg"])
def test_a_rejected_upload_writes_no_object_and_no_rendition_row(
        name: str, memory_store: MemoryStore, sqlite_db: SqliteMetadata,
        settings: Settings) -> None:
    row = ingest((PHOTOS / "hostile" / name).read_bytes(), Options(), memory_store, sqlite_db,
                 settings)
    if name == "png_with_jpg_extension.jpg":  # the control: a valid PNG under a wrong name
        assert row.status == "ready"
        return
    assert row.status == "failed" and row.error_code in ("truncated", "too_many_pixels")
    assert list(memory_store.list()) == []
    assert sqlite_db.renditions(row.id) == []


def test_process_renders_a_queued_photo_from_its_stored_original(
        memory_store: MemoryStore, sqlite_db: SqliteMetadata, settings: Settings) -> None:
    memory_store.put("uploads/abc", PHOTO.read_bytes(), "image/jpeg")
    sqlite_db.create(NewPhoto(1234, "uploads/abc", "classic", None, 1.0, user_id=5))
    row = process(Job(1234), memory_store, sqlite_db, settings)
    assert row.status == "ready" and row.source is not None and row.source.format == "JPEG"
    assert [r.key for r in sqlite_db.renditions(1234)] == [
        "photos/1234/sq612.jpg", "photos/1234/sq306.jpg", "photos/1234/sq150.jpg"]


def test_process_of_missing_things(
        memory_store: MemoryStore, sqlite_db: SqliteMetadata, settings: Settings) -> None:
    with pytest.raises(PhotoNotFound):
        process(Job(1), memory_store, sqlite_db, settings)
    sqlite_db.create(NewPhoto(2, "uploads/missing"))
    row = process(Job(2), memory_store, sqlite_db, settings)
    assert row.status == "failed" and row.error_code == "missing_original"


def test_attempts_past_the_limit_fail_the_photo_without_rendering(
        memory_store: MemoryStore, sqlite_db: SqliteMetadata) -> None:
    settings = Settings(max_attempts=2)
    memory_store.put("uploads/a", PHOTO.read_bytes(), "image/jpeg")
    sqlite_db.create(NewPhoto(3, "uploads/a"))
    sqlite_db.start(3)
    sqlite_db.start(3)  # two attempts died before they could record anything
    row = process(Job(3), memory_store, sqlite_db, settings)
    assert (row.status, row.error_code, row.attempts) == ("failed", "too_many_attempts", 3)
    assert list(memory_store.list("photos/")) == []


def test_ingest_writes_files_to_the_local_directory(tmp_path: Path, settings: Settings) -> None:
    store, db = open_store(settings), SqliteMetadata(str(tmp_path / "m.db"))
    row = ingest(PHOTO.read_bytes(), Options(), store, db, settings)
    assert (tmp_path / "objects" / "photos" / str(row.id) / "w1080.webp").is_file()
    db.close()


def test_changing_the_ladder_removes_the_old_ladders_files(
        memory_store: MemoryStore, sqlite_db: SqliteMetadata, settings: Settings) -> None:
    data = PHOTO.read_bytes()
    ingest(data, Options(), memory_store, sqlite_db, settings)
    row = ingest(data, Options(ladder="classic"), memory_store, sqlite_db, settings)
    keys = [r.key for r in sqlite_db.renditions(row.id)]
    assert sorted(memory_store.list("photos/")) == sorted(keys)
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["sq150.jpg", "sq306.jpg", "sq612.jpg"]
