"""photopipe's side of "nothing acknowledged is lost" with a synchronous standby:

- a COMMIT waiting for its standby is never cancelled by photopipe's statement timeout (a
  cancelled wait reports success for a commit only the primary has; PostgreSQL disables the
  timeout before committing, and this holds photopipe to a server and client that do);
- a photo id is durable (on the standby) before it is handed out;
- a commit whose outcome was not seen (the connection lost during the COMMIT) is read back,
  not repeated: by ``submit``, and by a job whose ``finish`` landed unseen.

A private server stands in for a primary whose standby is gone: its
``synchronous_standby_names`` names a standby that never connects, so every commit that writes
waits, until the test lets it go by clearing the setting.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.errors import DatabaseUnavailable
from pipeline.jobs import Job, process
from pipeline.metadata import NewPhoto, RenditionRow
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.shards.admin import init
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.producer import Upload, submit
from pipeline.records import SourceInfo
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore
from tests import private
from tests.helpers import PHOTOS
from tests.pipeline.test_producer import Recorder

PHOTO = (PHOTOS / "real" / "casio_ex-s1.jpg").read_bytes()
FAST = Settings(retry_backoff=0.01, retry_backoff_max=0.05, submit_patience=5.0)


@pytest.fixture(scope="module")
def server() -> Iterator[private.Postgres]:
    with private.postgres() as found:
        yield found


def _standby_gone(url: str, gone: bool) -> None:
    """Make commits wait for a standby that is not there (``gone``), or stop waiting."""
    with psycopg.connect(url, autocommit=True) as conn:
        if gone:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        else:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)  # the reload reaches the backends at their next command


def _held(url: str, call: Callable[[], Any], hold: float = 1.5) -> tuple[float, Any]:
    """Run ``call`` while commits wait for the missing standby; after ``hold`` seconds, let
    them go. Returns how long ``call`` took and what it returned."""
    result: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        result["value"] = call()
        result["seconds"] = time.monotonic() - start

    _standby_gone(url, True)
    thread = threading.Thread(target=run)
    try:
        thread.start()
        thread.join(hold)
        still_waiting = thread.is_alive()
    finally:
        _standby_gone(url, False)
    thread.join(30)
    assert still_waiting, f"returned after {result.get('seconds')} s, before the standby had it"
    return result["seconds"], result["value"]


@pytest.fixture
def db(server: private.Postgres) -> Iterator[PostgresMetadata]:
    found = PostgresMetadata(server.url, statement_timeout_ms=300)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    found.upgrade()
    yield found
    found.close()


def test_a_commit_waiting_for_its_standby_outlasts_the_statement_timeout(
        server: private.Postgres, db: PostgresMetadata) -> None:
    photo = NewPhoto(41, "originals/41", "default", None, 1.0, 7)
    seconds, job = _held(server.url, lambda: db.create(photo))
    assert seconds > 1.5 and job == Job(41, 1)  # the timeout is 0.3 s
    row = db.get(41)
    assert row is not None and row.status == "queued"
    # the timeout still holds for the statements before the COMMIT
    with pytest.raises(DatabaseUnavailable, match="statement timeout"), \
            db.transaction() as cur:
        cur.execute("SELECT pg_sleep(2)")


def test_a_photo_id_is_on_the_standby_before_it_is_handed_out(
        server: private.Postgres, db: PostgresMetadata) -> None:
    # The first value after the schema's creation writes the sequence's WAL record, which
    # covers the next 32 values; the sequence itself takes a transaction id only then. A
    # value from inside that range must wait too: the record that covers it may not be on
    # the standby yet (another session's COMMIT may still be waiting for it).
    first = db.allocate_id()
    seconds, photo_id = _held(server.url, db.allocate_id)
    assert seconds > 1.5 and photo_id & 1023 == (first + 1) & 1023
    assert db.allocate_id() & 1023 == (first + 2) & 1023


def test_a_shards_reads_do_not_wait_for_the_standby(server: private.Postgres) -> None:
    """Reads take no transaction id (the fence is a plain read), so they go on while a
    cluster has no synchronous standby: `shards list`, `status` and the API's GET with them.
    """
    url = server.url.rsplit("/", 1)[0] + f"/t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {url.rsplit('/', 1)[1]}")
    store = ShardedMetadata(url)
    init(store, 4, [url])
    photo_id = store.allocate_id(user_id=2)
    store.create(NewPhoto(photo_id, f"originals/{photo_id}", user_id=2))
    answers: list[Any] = []
    _standby_gone(server.url, True)
    try:
        reader = threading.Thread(target=lambda: answers.extend(
            [store.get(photo_id), store.counts(), store.backlog()]))
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "a read waited for the standby"
    finally:
        _standby_gone(server.url, False)
        store.close()
    row, counts, backlog = answers
    assert row.status == "queued" and counts["queued"] == 1 and backlog.queued == 1


class LandsUnseen(SqliteMetadata):
    """A database whose commits of ``which`` land, and whose connection is lost before the
    client hears so (the first ``times`` times): what a failover during a COMMIT looks like."""

    def __init__(self, path: str, which: str, times: int = 1) -> None:
        super().__init__(path)
        self.which, self.times, self.calls = which, times, 0

    def _landed(self, name: str) -> None:
        if name == self.which:
            self.calls += 1
            if self.calls <= self.times:
                raise DatabaseUnavailable("server closed the connection unexpectedly")

    def create(self, photo: NewPhoto, *, enqueue: bool = True,
               idempotency_key: str | None = None) -> Job:
        job = super().create(photo, enqueue=enqueue, idempotency_key=idempotency_key)
        self._landed("create")
        return job

    def finish(self, photo_id: int, lease: int, source: SourceInfo,
               renditions: Any, spec: str | None = None, *, notify: bool = False,
               placeholder: str | None = None) -> list[RenditionRow] | None:
        replaced = super().finish(photo_id, lease, source, renditions, spec, notify=notify,
                                  placeholder=placeholder)
        self._landed("finish")
        return replaced


@pytest.mark.parametrize("key", [None, "request-1"])
def test_a_submit_whose_commit_landed_unseen_reads_it_back(tmp_path: Path,
                                                           key: str | None) -> None:
    db, store, broker = LandsUnseen(str(tmp_path / "m.db"), "create"), MemoryStore(), Recorder()
    photo_id = submit(Upload(user_id=3, data=PHOTO, idempotency_key=key), store, db, broker,
                      FAST)
    row = db.get(photo_id)
    assert db.calls == 1 and row is not None and row.generation == 1  # not inserted again
    assert broker.published == [Job(photo_id, 1)] and db.outbox_size() == 0
    assert store.exists(row.source_key) and db.counts()["queued"] == 1
    db.close()


def test_a_submit_whose_commit_was_lost_inserts_again(tmp_path: Path) -> None:
    class LostCommit(SqliteMetadata):
        creates = 0

        def create(self, photo: NewPhoto, *, enqueue: bool = True,
                   idempotency_key: str | None = None) -> Job:
            self.creates += 1
            if self.creates == 1:  # lost before it landed
                raise DatabaseUnavailable("server closed the connection unexpectedly")
            return super().create(photo, enqueue=enqueue, idempotency_key=idempotency_key)

    db, store, broker = LostCommit(str(tmp_path / "m.db")), MemoryStore(), Recorder()
    photo_id = submit(Upload(user_id=3, data=PHOTO), store, db, broker, FAST)
    assert db.creates == 2 and broker.published == [Job(photo_id, 1)]
    db.close()


def test_a_job_whose_finish_landed_unseen_is_skipped_when_delivered_again(
        tmp_path: Path) -> None:
    db, store = LandsUnseen(str(tmp_path / "m.db"), "finish"), MemoryStore()
    photo_id = submit(Upload(user_id=3, data=PHOTO), store, db, Recorder(), FAST)
    first = process(Job(photo_id, 1), store, db, FAST)
    assert first.status == "retry" and first.code == "unavailable"
    again = process(Job(photo_id, 1), store, db, FAST, refund=first.refund)
    row = db.get(photo_id)
    assert again.status == "skipped" and row is not None and row.status == "ready"
    assert row.attempts == 1 and row.lease == 1  # the finish was read back, not redone
    renditions = db.renditions(photo_id)
    assert renditions and all(store.exists(r.key) for r in renditions)
    db.close()
