"""pipeline.producer.submit: store, then row and outbox in one commit, then publish."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.errors import BrokerUnavailable, DatabaseUnavailable, TooLarge
from pipeline.jobs import Job, original_key
from pipeline.metadata import NewPhoto
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.producer import InProcess, Upload, submit
from pipeline.settings import Limits, Settings
from pipeline.storage.memory import MemoryStore
from tests.helpers import PHOTOS

PHOTO = (PHOTOS / "real" / "casio_ex-s1.jpg").read_bytes()
FAST = Settings(retry_backoff=0.01, retry_backoff_max=0.05, submit_patience=1.0)


class CheckingPublisher:
    """Publishes nothing; checks, with a connection of its own, what is visible at publish."""

    def __init__(self, store: MemoryStore, postgres_url: str) -> None:
        self.store, self.observer = store, PostgresMetadata(postgres_url)
        self.seen: list[tuple[Job, str | None, bool]] = []

    def publish(self, job: Job) -> None:
        row = self.observer.get(job.photo_id)  # another session: sees only committed rows
        exists = row is not None and self.store.exists(row.source_key)
        self.seen.append((job, row.status if row else None, exists))


class Recorder:
    def __init__(self, down: bool = False) -> None:
        self.published: list[Job] = []
        self.down = down

    def publish(self, job: Job) -> None:
        if self.down:
            raise BrokerUnavailable("connection refused")
        self.published.append(job)


class FlakyDb(SqliteMetadata):
    """Fails ``create`` with a transient error the first ``failures`` times, and checks that
    the original is already stored when the row is inserted."""

    def __init__(self, path: str, store: MemoryStore, failures: int) -> None:
        super().__init__(path)
        self.store, self.failures, self.creates = store, failures, 0

    def create(self, photo: NewPhoto, *, enqueue: bool = True,
               idempotency_key: str | None = None) -> Job:
        assert self.store.exists(photo.source_key), "the row was inserted before the original"
        self.creates += 1
        if self.creates <= self.failures:
            raise DatabaseUnavailable("the database system is shutting down")
        return super().create(photo, enqueue=enqueue, idempotency_key=idempotency_key)


def test_submit_commits_row_and_original_before_publishing(postgres_url: str) -> None:
    db, store = PostgresMetadata(postgres_url), MemoryStore()
    db.upgrade()
    publisher = CheckingPublisher(store, postgres_url)
    photo_id = submit(Upload(user_id=7, data=PHOTO, filter="gingham", strength=0.5), store, db,
                      publisher, Settings())
    assert publisher.seen == [(Job(photo_id, 1), "queued", True)]
    row = db.get(photo_id)
    assert row is not None and (row.user_id, row.filter, row.strength) == (7, "gingham", 0.5)
    assert store.get(original_key(photo_id)) == PHOTO and db.outbox_size() == 0
    db.close()


def test_submit_succeeds_while_the_broker_is_down_and_the_relay_catches_up(
        sqlite_db: SqliteMetadata) -> None:
    store, broker = MemoryStore(), Recorder(down=True)
    ids = [submit(Upload(user_id=1, data=PHOTO), store, sqlite_db, broker, Settings())
           for _ in range(3)]
    assert broker.published == [] and sqlite_db.outbox_size() == 3
    assert sqlite_db.counts()["queued"] == 3
    broker.down = False
    assert sqlite_db.relay(broker.publish) == 3
    assert broker.published == [Job(i, 1) for i in ids] and sqlite_db.outbox_size() == 0


def test_a_transient_database_error_is_retried_after_the_original_is_stored(
        tmp_path: pytest.TempPathFactory) -> None:
    store = MemoryStore()
    db = FlakyDb(f"{tmp_path}/m.db", store, failures=2)
    broker = Recorder()
    photo_id = submit(Upload(user_id=1, data=PHOTO), store, db, broker, FAST)
    assert db.creates == 3 and broker.published == [Job(photo_id, 1)]
    db.close()


def test_a_submit_that_gives_up_leaves_no_original_behind(
        tmp_path: pytest.TempPathFactory) -> None:
    store = MemoryStore()
    db = FlakyDb(f"{tmp_path}/m.db", store, failures=10_000)
    with pytest.raises(DatabaseUnavailable):
        submit(Upload(user_id=1, data=PHOTO), store, db, Recorder(),
               replace(FAST, submit_patience=0.3))
    assert db.creates > 2 and list(store.list()) == []
    db.close()


def test_submit_by_key_of_an_original_already_stored(sqlite_db: SqliteMetadata) -> None:
    store = MemoryStore()
    store.put("uploads/abc.jpg", PHOTO, "image/jpeg")
    photo_id = submit(Upload(user_id=1, source_key="uploads/abc.jpg"), store, sqlite_db,
                      InProcess(store, sqlite_db, Settings()), Settings())
    row = sqlite_db.get(photo_id)
    assert row is not None and row.status == "ready" and row.source_key == "uploads/abc.jpg"
    assert list(store.list("originals/")) == [] and sqlite_db.outbox_size() == 0


def test_an_original_by_key_is_bounded_by_the_byte_limit(sqlite_db: SqliteMetadata) -> None:
    store = MemoryStore()
    store.put("uploads/big.jpg", PHOTO, "image/jpeg")
    settings = Settings(limits=Limits(max_bytes=len(PHOTO) - 1))
    photo_id = submit(Upload(user_id=1, source_key="uploads/big.jpg"), store, sqlite_db,
                      InProcess(store, sqlite_db, settings), settings)
    row = sqlite_db.get(photo_id)
    assert row is not None and (row.status, row.error_code) == ("failed", "too_large")


def test_refusals_store_and_publish_nothing(sqlite_db: SqliteMetadata) -> None:
    store, broker = MemoryStore(), Recorder()
    with pytest.raises(TooLarge):
        submit(Upload(user_id=1, data=PHOTO), store, sqlite_db, broker,
               Settings(limits=Limits(max_bytes=len(PHOTO) - 1)))
    submit(Upload(user_id=1, data=PHOTO), store, sqlite_db, broker,
           Settings(limits=Limits(max_bytes=len(PHOTO))))  # exactly the limit is accepted
    assert len(broker.published) == 1
    for bad in ({"filter": "sparkle"}, {"ladder": "huge"}, {"strength": 2.0}, {}):
        with pytest.raises(ValueError, match=r"filter|ladder|strength|either"):
            Upload(user_id=1, data=None if not bad else PHOTO, **bad)
    assert len(list(store.list())) == 1 and sum(sqlite_db.counts().values()) == 1
