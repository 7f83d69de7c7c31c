"""pipeline.producer.submit: store, insert, commit, and only then publish."""

from __future__ import annotations

import pytest

from pipeline.errors import TooLarge
from pipeline.jobs import Job, original_key
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.producer import InProcess, Upload, submit
from pipeline.settings import Limits, Settings
from pipeline.storage.memory import MemoryStore
from tests.helpers import PHOTOS

PHOTO = (PHOTOS / "real" / "casio_ex-s1.jpg").read_bytes()


class CheckingPublisher:
    """Publishes nothing; checks, with a connection of its own, what is visible at publish."""

    def __init__(self, store: MemoryStore, postgres_url: str) -> None:
        self.store, self.observer = store, PostgresMetadata(postgres_url)
        self.seen: list[tuple[Job, str | None, bool]] = []

    def publish(self, job: Job) -> None:
        row = self.observer.get(job.photo_id)  # another session: sees only committed rows
        exists = row is not None and self.store.exists(row.source_key)
        self.seen.append((job, row.status if row else None, exists))


def test_submit_commits_row_and_original_before_publishing(postgres_url: str) -> None:
    db, store = PostgresMetadata(postgres_url), MemoryStore()
    db.upgrade()
    publisher = CheckingPublisher(store, postgres_url)
    photo_id = submit(Upload(user_id=7, data=PHOTO, filter="gingham", strength=0.5), store, db,
                      publisher, Settings())
    assert publisher.seen == [(Job(photo_id), "queued", True)]
    row = db.get(photo_id)
    assert row is not None and (row.user_id, row.filter, row.strength) == (7, "gingham", 0.5)
    assert store.get(original_key(photo_id)) == PHOTO
    db.close()


def test_submit_by_key_of_an_original_already_stored(sqlite_db: SqliteMetadata) -> None:
    store = MemoryStore()
    store.put("uploads/abc.jpg", PHOTO, "image/jpeg")
    photo_id = submit(Upload(user_id=1, source_key="uploads/abc.jpg"), store, sqlite_db,
                      InProcess(store, sqlite_db, Settings()), Settings())
    row = sqlite_db.get(photo_id)
    assert row is not None and row.status == "ready" and row.source_key == "uploads/abc.jpg"
    assert list(store.list("originals/")) == []


def test_refusals_store_and_publish_nothing(sqlite_db: SqliteMetadata) -> None:
    store = MemoryStore()
    published: list[Job] = []

    class Recorder:
        def publish(self, job: Job) -> None:
            published.append(job)

    with pytest.raises(TooLarge):
        submit(Upload(user_id=1, data=PHOTO), store, sqlite_db, Recorder(),
               Settings(limits=Limits(max_bytes=len(PHOTO) - 1)))
    for bad in ({"filter": "sparkle"}, {"ladder": "huge"}, {"strength": 2.0}, {}):
        with pytest.raises(ValueError, match=r"filter|ladder|strength|either"):
            Upload(user_id=1, data=None if not bad else PHOTO, **bad)
    assert list(store.list()) == [] and published == []
    assert sum(sqlite_db.counts().values()) == 0
