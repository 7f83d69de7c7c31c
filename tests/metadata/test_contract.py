"""One contract, every metadata store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.errors import BrokerUnavailable, PhotoNotFound
from pipeline.metadata import (
    Backlog,
    MetadataStore,
    NewPhoto,
    RenditionRow,
    Rerender,
    Selection,
    UploadRow,
    open_metadata,
    reads,
)
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.shards.admin import init
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.records import EPOCH_MS, Job, SourceInfo
from pipeline.relay import drain
from pipeline.settings import Settings

SOURCE = SourceInfo("JPEG", 4032, 3024, 2_000_000, 1, 6)
ROWS = [RenditionRow("w1080", "jpg", "photos/7/w1080.jpg", 1080, 1440, 200_000),
        RenditionRow("w1080", "webp", "photos/7/w1080.webp", 1080, 1440, 120_000),
        RenditionRow("sq150", "jpg", "photos/7/sq150.jpg", 150, 150, 9_000)]


@pytest.fixture(params=["sqlite", "postgresql", "sharded"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    store: MetadataStore
    if request.param == "sqlite":
        store = SqliteMetadata(str(tmp_path / "meta.db"))
    elif request.param == "postgresql":
        store = PostgresMetadata(request.getfixturevalue("postgres_url"))
        store.upgrade()
    else:  # 8 logical shards over three servers, the third behind pgbouncer
        urls = request.getfixturevalue("shard_urls")
        store = ShardedMetadata(urls[0])
        init(store, 8, urls)
    yield store
    store.close()


def _ready(db: MetadataStore, photo: NewPhoto, rows: list[RenditionRow] = ROWS) -> Job:
    job = db.create(photo)
    assert db.finish(photo.id, db.start(job).lease, SOURCE, rows) is not None
    return job


def test_photo_moves_queued_processing_ready(db: MetadataStore) -> None:
    # users whose photos a map of 8 logical shards places on shard 0, with these ids
    job = db.create(NewPhoto(7, "originals/7", "default", "clarendon", 0.5, user_id=40))
    assert job == Job(7, 1)
    row = db.get(7)
    assert row is not None and row.status == "queued" and row.attempts == 0
    assert (row.filter, row.strength, row.user_id, row.generation) == ("clarendon", 0.5, 40, 1)
    claim = db.start(job)
    assert claim.skipped is None and claim.row.status == "processing"
    assert (claim.row.attempts, claim.lease) == (1, 1)
    assert db.finish(7, claim.lease, SOURCE, ROWS) == []
    row = db.get(7)
    assert row is not None and row.status == "ready" and row.attempts == 1
    assert row.source == SOURCE and row.error_code is None
    assert db.renditions(7) == ROWS


def test_resubmission_is_a_new_generation_and_supersedes_the_old_job(db: MetadataStore) -> None:
    first = _ready(db, NewPhoto(7, "originals/7"))
    second = db.create(NewPhoto(7, "originals/7", "classic"))
    assert second == Job(7, 2)
    row = db.get(7)
    assert row is not None and (row.status, row.attempts, row.ladder) == ("queued", 0, "classic")
    stale = db.start(first)
    assert stale.skipped == "superseded" and stale.row.attempts == 0
    claim = db.start(second)
    assert db.finish(7, claim.lease, SOURCE, ROWS[2:]) == ROWS  # what it replaced
    assert db.renditions(7) == ROWS[2:]
    assert db.start(second).skipped == "done"  # a duplicate delivery renders nothing
    row = db.get(7)
    assert row is not None and row.attempts == 1 and row.lease == claim.lease


def test_only_the_latest_lease_commits(db: MetadataStore) -> None:
    job = db.create(NewPhoto(5, "originals/5"))
    early, late = db.start(job), db.start(job)  # the same job delivered twice, both running
    assert (early.lease, late.lease) == (1, 2) and late.row.attempts == 2
    assert db.finish(5, early.lease, SOURCE, ROWS) is None  # the loser changes nothing
    assert db.fail(5, early.lease, "corrupt", "x") is None
    assert not db.retry_later(5, early.lease, "timeout", "x")
    row = db.get(5)
    assert row is not None and row.status == "processing" and db.renditions(5) == []
    assert db.finish(5, late.lease, SOURCE, ROWS) == []
    assert db.finish(5, late.lease, SOURCE, ROWS) is None  # and only once


def test_fail_records_the_code_and_returns_the_dropped_renditions(db: MetadataStore) -> None:
    job = _ready(db, NewPhoto(8, "originals/8"), ROWS[2:])
    job = db.create(NewPhoto(8, "originals/8"))
    claim = db.start(job)
    assert db.fail(8, claim.lease, "truncated", "the JPEG data ends early") == ROWS[2:]
    row = db.get(8)
    assert row is not None and row.status == "failed" and row.error_code == "truncated"
    assert row.error_message == "the JPEG data ends early" and db.renditions(8) == []
    assert db.start(job).skipped == "done"


def test_retry_later_requeues_and_refund_gives_the_attempt_back(db: MetadataStore) -> None:
    job = db.create(NewPhoto(9, "originals/9"))
    claim = db.start(job)
    assert db.retry_later(9, claim.lease, "timeout", "over the soft time limit")
    row = db.get(9)
    assert row is not None and (row.status, row.last_error_code) == ("queued", "timeout")
    waited = db.start(job, refund=claim.lease)  # that attempt only waited out an outage
    assert (waited.row.attempts, waited.lease) == (1, 2)
    counted = db.start(job, refund=claim.lease)  # the refund was for lease 1, not 2
    assert counted.row.attempts == 2 and counted.row.last_error_code == "timeout"


def test_note_records_why_a_running_attempt_ended(db: MetadataStore) -> None:
    job = db.create(NewPhoto(4, "originals/4"))
    db.note(4, "worker_lost", "signal 9")  # not processing: nothing to note
    row = db.get(4)
    assert row is not None and row.last_error_code is None
    db.start(job)
    db.note(4, "worker_lost", "signal 9")
    row = db.get(4)
    assert row is not None and (row.last_error_code, row.last_error_message) == (
        "worker_lost", "signal 9")


def test_outbox_holds_each_request_until_it_is_published(db: MetadataStore) -> None:
    jobs = [db.create(NewPhoto(i, f"originals/{i}")) for i in (3, 1, 2)]
    db.create(NewPhoto(6, "originals/6"), enqueue=False)
    assert db.outbox_size() == 3
    seen: list[Job] = []
    assert db.relay(seen.append, photo_id=1) == 1 and seen == [Job(1, 1)]
    assert db.relay(seen.append) == 2 and seen[1:] == [jobs[0], jobs[2]]  # oldest first
    assert db.outbox_size() == 0 and db.relay(seen.append) == 0


def test_a_failing_publish_keeps_what_it_did_not_send(db: MetadataStore) -> None:
    for i in range(4):
        db.create(NewPhoto(i, f"originals/{i}"))
    sent: list[Job] = []

    def publish(job: Job) -> None:
        if len(sent) == 2:
            raise BrokerUnavailable("down")
        sent.append(job)

    with pytest.raises(BrokerUnavailable):
        db.relay(publish)
    assert db.outbox_size() == 2 and [j.photo_id for j in sent] == [0, 1]
    assert db.relay(sent.append) == 2 and [j.photo_id for j in sent] == [0, 1, 2, 3]


def test_requeue_only_what_is_still_wanted(db: MetadataStore) -> None:
    job = _ready(db, NewPhoto(2, "originals/2"))
    db.relay(lambda j: None)
    assert not db.requeue(job)  # finished
    newer = db.create(NewPhoto(2, "originals/2", "classic"))
    db.relay(lambda j: None)
    assert not db.requeue(job)  # superseded
    assert db.requeue(newer) and db.outbox_size() == 1


def test_relayed_jobs_carry_when_they_were_committed(db: MetadataStore) -> None:
    before = time.time()
    db.create(NewPhoto(5, "originals/5"))
    seen: list[Job] = []
    db.relay(seen.append)
    assert seen[0].queued_at is not None
    # the database's clock, to the millisecond; loopback, so within a second of ours
    assert before - 1 <= seen[0].queued_at <= time.time() + 1


def test_backlog_counts_what_waits_and_how_long_the_oldest_has(db: MetadataStore) -> None:
    assert db.backlog() == Backlog(0, None, 0, None)
    first = db.create(NewPhoto(1, "originals/1"))
    time.sleep(0.4)
    db.create(NewPhoto(2, "originals/2"))
    db.create(NewPhoto(3, "originals/3"), enqueue=False)
    backlog = db.backlog()
    assert (backlog.queued, backlog.outbox) == (3, 2)
    assert backlog.oldest_queued is not None and backlog.oldest_outbox is not None
    assert 0.35 <= backlog.oldest_queued < 5 and 0.35 <= backlog.oldest_outbox < 5
    # photo 3 was queued with no job, after the wait of the others began
    assert backlog.oldest_without_job is not None and backlog.oldest_without_job < 0.35
    db.relay(lambda job: None)
    db.start(first)  # processing: no longer waiting; the oldest waiting is now photo 2
    backlog = db.backlog()
    assert (backlog.queued, backlog.outbox, backlog.oldest_outbox) == (2, 0, None)
    assert backlog.oldest_queued is not None and backlog.oldest_queued < 0.35
    assert backlog.oldest_without_job == pytest.approx(backlog.oldest_queued, abs=0.05)


def _lost(db: MetadataStore, photo: NewPhoto) -> Job:
    """A photo queued whose job left the outbox and never reached a worker."""
    job = db.create(photo)
    db.relay(lambda j: None, photo_id=photo.id)
    return job


def test_stuck_finds_photos_no_job_will_render_longest_waiting_first(db: MetadataStore) -> None:
    lost = _lost(db, NewPhoto(7, "originals/7"))
    db.create(NewPhoto(9, "originals/9"))  # its job still in the outbox: on its way
    _ready(db, NewPhoto(10, "originals/10"))
    db.relay(lambda j: None, photo_id=10)
    running = db.create(NewPhoto(8, "originals/8"))
    db.relay(lambda j: None, photo_id=8)
    db.create(NewPhoto(11, "originals/11"))
    time.sleep(0.3)
    db.start(running)  # processing since now
    db.relay(lambda j: None, photo_id=11)  # published too, after the others' waits began
    assert db.stuck(0.2, 0.2, 10) == [lost, Job(11, 1)]  # 8's lease is newer than 0.2 s
    assert db.stuck(0.2, 0.0, 10) == [lost, Job(11, 1), running]
    assert db.stuck(0.2, 0.0, 1) == [lost]
    assert db.stuck(3600, 0.0, 10) == [running]  # each bound to its own status
    assert db.stuck(3600, 3600, 10) == []
    fail = db.start(Job(11, 1))
    db.fail(11, fail.lease, "corrupt", "bad bytes")
    assert db.stuck(0.0, 3600, 10) == [lost]  # failed and ready photos are never stuck


def test_requeue_stuck_queues_each_lost_job_once_and_restarts_its_wait(
        db: MetadataStore) -> None:
    lost = _lost(db, NewPhoto(7, "originals/7"))
    old = _lost(db, NewPhoto(8, "originals/8"))
    newer = _lost(db, NewPhoto(8, "originals/8", "classic"))  # generation 2
    time.sleep(0.6)
    assert db.stuck(0.5, 0.5, 10) == [lost, newer]
    assert db.requeue_stuck([lost, old], 0.5, 0.5) == [lost]  # 8's job is of generation 2
    assert db.requeue_stuck([lost], 0.0, 0.0) == []  # its job waits in the outbox now
    assert db.stuck(0.5, 0.5, 10) == [newer]
    seen: list[Job] = []
    db.relay(seen.append)
    assert seen == [lost] and db.stuck(0.5, 0.5, 10) == [newer]  # 7 waits anew
    assert db.requeue_stuck([newer], 0.5, 0.5) == [newer] and db.outbox_size() == 1


def test_one_holder_at_a_time_takes_a_turn_until_it_expires(db: MetadataStore) -> None:
    assert db.take_turn("stuck", "worker-a", 0.5)
    assert not db.take_turn("stuck", "worker-b", 0.5)
    assert db.take_turn("stuck", "worker-a", 0.5)  # its own turn, renewed
    assert db.take_turn("other", "worker-b", 0.5)  # turns of other names are apart
    time.sleep(0.6)
    assert db.take_turn("stuck", "worker-b", 30)
    assert not db.take_turn("stuck", "worker-a", 30)


def test_counts_cover_every_status(db: MetadataStore) -> None:
    assert db.counts() == {"queued": 0, "processing": 0, "ready": 0, "failed": 0}
    jobs = [db.create(NewPhoto(photo_id, f"originals/{photo_id}")) for photo_id in (1, 2, 3)]
    db.start(jobs[1])
    db.fail(3, db.start(jobs[2]).lease, "corrupt", "x")
    assert db.counts() == {"queued": 1, "processing": 1, "ready": 0, "failed": 1}


def test_unknown_photo(db: MetadataStore) -> None:
    assert db.get(99) is None
    assert db.renditions(99) == []
    with pytest.raises(PhotoNotFound):
        db.start(Job(99, 1))


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
    assert again.upgrade() == 11 and again.get(1) is not None
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


def test_scan_pages_through_a_selection_by_id(db: MetadataStore) -> None:
    for photo_id in range(1, 11):
        job = db.create(NewPhoto(photo_id, f"originals/{photo_id}",
                                 filter="gingham" if photo_id % 2 else None,
                                 user_id=photo_id % 3 * 8))  # on shard 0 when sharded
        if photo_id > 6:
            db.fail(photo_id, db.start(job).lease, "corrupt", "x")
    everything = Selection()
    assert [r.id for r in db.scan(everything, 0, 4)] == [1, 2, 3, 4]
    assert [r.id for r in db.scan(everything, 4, 4)] == [5, 6, 7, 8]
    assert [r.id for r in db.scan(everything, 8, 4)] == [9, 10]
    assert [r.id for r in db.scan(Selection(from_id=3, to_id=5), 0, 100)] == [3, 4, 5]
    assert [r.id for r in db.scan(Selection(statuses=("failed",)), 0, 100)] == [7, 8, 9, 10]
    assert [r.id for r in db.scan(Selection(user_id=8), 0, 100)] == [1, 4, 7, 10]
    assert [r.id for r in db.scan(Selection(look="none"), 0, 100)] == [2, 4, 6, 8, 10]
    assert [r.id for r in db.scan(Selection(look="gingham", statuses=("queued",)), 0, 100)] \
        == [1, 3, 5]


def test_a_run_regenerates_its_batch_and_moves_its_cursor_in_one_commit(
        db: MetadataStore) -> None:
    first = [db.create(NewPhoto(i, f"originals/{i}")) for i in (1, 2, 3)]
    for job in first:
        db.finish(job.photo_id, db.start(job).lease, SOURCE, [], "oldspec")
    db.relay(lambda j: None)
    run = db.create_run("k", "{}", "{}", "broker")
    assert db.find_run("k") == run and run.cursor == 0 and run.state == "running"
    jobs = db.regenerate(run.id, [Rerender(1, "classic", "rise", 0.5),
                                  Rerender(2, "default", None, 1.0)], cursor=2)
    assert jobs == [Job(1, 2), Job(2, 2)] and db.outbox_size() == 2
    row = db.get(1)
    assert row is not None and (row.status, row.ladder, row.filter, row.strength, row.run_id,
                                row.spec) == ("queued", "classic", "rise", 0.5, run.id,
                                              "oldspec")
    again = db.get_run(run.id)
    assert again is not None and (again.cursor, again.enqueued) == (2, 2)
    assert db.start(first[0]).skipped == "superseded"  # the old generation's job
    db.finish(1, db.start(jobs[0]).lease, SOURCE, [], "newspec")
    assert db.tally(run.id) == {("ready", None): 1, ("queued", None): 1}
    db.create(NewPhoto(2, "originals/2", "classic"))  # the web tier takes photo 2 over
    assert db.tally(run.id) == {("ready", None): 1}
    assert [r.id for r in db.run_photos(run.id, ("ready",), 0, 10)] == [1]
    assert db.regenerate(run.id, [], cursor=3) == []  # nothing wanted: the cursor still moves
    again = db.get_run(run.id)
    assert again is not None and again.cursor == 3
    db.end_run(run.id, "done")
    assert db.find_run("k") is None and [r.id for r in db.runs()] == [run.id]
    assert db.regenerate(run.id, [Rerender(99, "default", None, 1.0)], cursor=4) == []


@pytest.mark.parametrize("waiting", [0, 1, 99, 100, 101, 250])
def test_one_drain_empties_an_outbox_of_many_batches(db: MetadataStore, waiting: int) -> None:
    for i in range(waiting):
        db.create(NewPhoto(i + 1, f"originals/{i + 1}"))
    seen: list[int] = []
    assert drain(db, lambda job: seen.append(job.photo_id), batch=100) == waiting
    assert sorted(seen) == list(range(1, waiting + 1)) and db.outbox_size() == 0


@pytest.fixture(params=["postgresql", "sharded"])
def two_relays(request: pytest.FixtureRequest) -> Iterator[tuple[MetadataStore, ...]]:
    """Two stores on the same PostgreSQL outbox, each with its own connections."""
    stores: tuple[MetadataStore, ...]
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        stores = (PostgresMetadata(url), PostgresMetadata(url))
        stores[0].upgrade()
    else:
        urls = request.getfixturevalue("shard_urls")
        first = ShardedMetadata(urls[0])
        init(first, 8, urls)
        stores = (first, ShardedMetadata(urls[0]))
    yield stores
    for store in stores:
        store.close()


def test_two_relays_draining_one_outbox_publish_each_job_once(
        two_relays: tuple[MetadataStore, MetadataStore]) -> None:
    first, second = two_relays
    ids = list(range(1, 301))
    for photo_id in ids:
        first.create(NewPhoto(photo_id, f"originals/{photo_id}"))
    published: dict[int, list[int]] = {0: [], 1: []}
    lock = threading.Lock()

    def relay(index: int, store: MetadataStore) -> None:
        def publish(job: Job) -> None:
            time.sleep(0.001)  # a broker's confirm: the two relays overlap
            with lock:
                published[index].append(job.photo_id)

        drain(store, publish, batch=20)

    threads = [threading.Thread(target=relay, args=(i, s)) for i, s in enumerate(two_relays)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert published[0] and published[1], "the relays did not overlap: nothing was tested"
    assert sorted(published[0] + published[1]) == ids  # each exactly once
    assert first.outbox_size() == 0 and second.outbox_size() == 0


def test_a_run_regenerating_a_photo_again_changes_nothing(db: MetadataStore) -> None:
    """A batch resumed, or the same run launched twice at once, asks again for photos it
    already regenerated: no second job, and the generation stays."""
    job = _ready(db, NewPhoto(4, "originals/4"))
    db.relay(lambda j: None)
    run = db.create_run("k", "{}", "{}", "broker")
    change = [Rerender(4, "classic", "rise", 0.5)]
    assert db.regenerate(run.id, change, cursor=4) == [Job(4, job.generation + 1)]
    assert db.regenerate(run.id, change, cursor=4) == []
    row = db.get(4)
    assert row is not None and row.generation == job.generation + 1 and db.outbox_size() == 1
    other = db.create_run("k2", "{}", "{}", "broker")  # another run is another request
    assert db.regenerate(other.id, change, cursor=4) == [Job(4, job.generation + 2)]


def test_delete_removes_the_photo_its_renditions_and_its_jobs(db: MetadataStore) -> None:
    job = _ready(db, NewPhoto(7, "originals/7", user_id=40))
    db.create(NewPhoto(7, "originals/7", "classic", user_id=40))  # a job in the outbox too
    gone = db.delete(7)
    assert gone is not None and gone[0].id == 7 and gone[0].source_key == "originals/7"
    assert gone[1] == ROWS  # the renditions it had: their objects are the caller's to delete
    assert db.get(7) is None and db.renditions(7) == [] and db.outbox_size() == 0
    assert db.delete(7) is None
    with pytest.raises(PhotoNotFound):
        db.start(job)  # a job that turns up later: nothing to render


def test_a_render_running_while_its_photo_is_deleted_commits_nothing(db: MetadataStore) -> None:
    claim = db.start(db.create(NewPhoto(8, "originals/8")))
    assert db.delete(8) is not None
    assert db.finish(8, claim.lease, SOURCE, ROWS) is None and db.get(8) is None


def test_a_users_photos_newest_first_by_keyset(db: MetadataStore) -> None:
    ids = [db.allocate_id(40) for _ in range(5)]
    other = db.allocate_id(48)
    for photo_id in ids:
        db.create(NewPhoto(photo_id, f"originals/{photo_id}", user_id=40))
    db.create(NewPhoto(other, f"originals/{other}", user_id=48))
    newest = sorted(ids, reverse=True)
    assert [r.id for r in db.photos_of(40, None, 3)] == newest[:3]
    assert [r.id for r in db.photos_of(40, newest[2], 3)] == newest[3:]
    assert db.photos_of(40, newest[-1], 3) == []
    assert [r.id for r in db.photos_of(48, None, 10)] == [other]
    assert db.photos_of(41, None, 10) == []


def test_an_idempotency_key_names_the_photo_the_first_request_made(db: MetadataStore) -> None:
    first = db.allocate_id(40)
    job = db.create(NewPhoto(first, "originals/a", user_id=40), idempotency_key="k-1")
    assert job.photo_id == first and db.keyed(40, "k-1") == first
    retried = db.allocate_id(40)
    again = db.create(NewPhoto(retried, "originals/b", user_id=40), idempotency_key="k-1")
    assert again == Job(first, job.generation) and db.get(retried) is None
    assert db.outbox_size() == 1  # the retry queued nothing
    assert db.keyed(40, "k-2") is None and db.keyed(48, "k-1") is None  # per user
    other = db.allocate_id(48)
    assert db.create(NewPhoto(other, "originals/c", user_id=48),
                     idempotency_key="k-1").photo_id == other
    db.delete(first)
    assert db.keyed(40, "k-1") is None  # a deleted photo's keys go with it


def test_uploads_are_counted_per_user_and_minute(db: MetadataStore) -> None:
    if 60 - time.time() % 60 < 5:  # not across a minute's edge (loopback: the same clock)
        time.sleep(60 - time.time() % 60 + 0.2)
    counted = [db.count_upload(40) for _ in range(3)]
    assert [n for n, _ in counted] == [1, 2, 3]
    assert all(0 < wait <= 60 for _, wait in counted)
    assert counted[0][1] >= counted[2][1]  # the same minute's end, drawing nearer
    assert db.count_upload(48)[0] == 1  # another user's minute is theirs


def test_an_upload_changes_only_from_the_version_it_was_read_at(db: MetadataStore) -> None:
    ids = [db.allocate_id(user_id=u) for u in (3, 4, 5)]  # each on its user's shard
    for user, photo_id in zip((3, 4, 5), ids, strict=True):
        db.open_upload(UploadRow(photo_id, user, 1000.0 + user, 0, f'{{"user": {user}}}'))
    assert db.get_upload(ids[0]) == UploadRow(ids[0], 3, 1003.0, 0, '{"user": 3}')
    assert db.put_upload(ids[0], 0, '{"offset": 10}')
    assert not db.put_upload(ids[0], 0, '{"offset": 99}')  # a writer that read version 0
    assert db.get_upload(ids[0]) == UploadRow(ids[0], 3, 1003.0, 1, '{"offset": 10}')
    assert db.get_upload(ids[1]) == UploadRow(ids[1], 4, 1004.0, 0, '{"user": 4}')  # untouched
    assert db.drop_upload(ids[1]) == UploadRow(ids[1], 4, 1004.0, 0, '{"user": 4}')
    assert db.drop_upload(ids[1]) is None and db.get_upload(ids[1]) is None
    assert not db.put_upload(ids[1], 0, "{}")


def test_expired_uploads_are_found_longest_expired_first(db: MetadataStore) -> None:
    rows = [UploadRow(db.allocate_id(user_id=u), u, expires, 0, "{}")
            for u, expires in ((1, 50.0), (2, 10.0), (3, 30.0), (4, 100.0))]
    for row in rows:
        db.open_upload(row)
    assert [u.user_id for u in db.expired_uploads(100.0, 10)] == [2, 3, 1]  # 100 is not before
    assert [u.user_id for u in db.expired_uploads(100.0, 2)] == [2, 3]
    assert db.expired_uploads(10.0, 10) == []


def test_endings_write_webhooks_only_when_asked(db: MetadataStore) -> None:
    quiet, told, failed = (db.allocate_id(user_id=u) for u in (1, 2, 3))
    for photo_id, user in ((quiet, 1), (told, 2), (failed, 3)):
        db.create(NewPhoto(photo_id, f"originals/{photo_id}", user_id=user))
    assert db.finish(quiet, db.start(Job(quiet, 1)).lease, SOURCE, keyed(quiet)) is not None
    assert db.finish(told, db.start(Job(told, 1)).lease, SOURCE, keyed(told),
                     notify=True) is not None
    assert db.fail(failed, db.start(Job(failed, 1)).lease, "corrupt", "x", notify=True) == []
    assert db.fail(failed, 99, "corrupt", "x", notify=True) is None  # a lost lease: nothing
    assert db.delete(quiet, notify=True) is not None
    due = db.due_webhooks(10, 30)
    assert sorted((w.photo_id, w.user_id, w.generation, w.event, w.attempts) for w in due) == \
        sorted([(told, 2, 1, "photo.ready", 0), (failed, 3, 1, "photo.failed", 0),
                (quiet, 1, 1, "photo.deleted", 0)])
    assert all(0 <= w.age < 60 for w in due)
    assert db.due_webhooks(10, 30) == []  # taken for 30 s


def keyed(photo_id: int) -> list[RenditionRow]:
    return [RenditionRow(r.name, r.format, f"photos/{photo_id}/{r.name}.{r.format}", r.width,
                         r.height, r.bytes) for r in ROWS]


def test_a_webhook_waits_for_its_photo_s_older_ones(db: MetadataStore) -> None:
    photo_id = db.allocate_id(user_id=5)
    db.create(NewPhoto(photo_id, "originals/x", user_id=5))
    db.finish(photo_id, db.start(Job(photo_id, 1)).lease, SOURCE, keyed(photo_id), notify=True)
    db.create(NewPhoto(photo_id, "originals/x", user_id=5))  # generation 2
    db.fail(photo_id, db.start(Job(photo_id, 2)).lease, "corrupt", "x", notify=True)
    db.delete(photo_id, notify=True)
    order = []
    for _ in range(3):
        (due,) = db.due_webhooks(10, 0.2)  # one at a time: the oldest left
        order.append((due.generation, due.event))
        db.end_webhook(photo_id, due.id)
    assert order == [(1, "photo.ready"), (2, "photo.failed"), (2, "photo.deleted")]
    assert db.due_webhooks(10, 0.2) == []


def test_a_failed_delivery_is_due_again_after_its_delay(db: MetadataStore) -> None:
    photo_id = db.allocate_id(user_id=6)
    db.create(NewPhoto(photo_id, "originals/x", user_id=6))
    db.finish(photo_id, db.start(Job(photo_id, 1)).lease, SOURCE, keyed(photo_id), notify=True)
    (first,) = db.due_webhooks(10, 0.2)
    time.sleep(0.3)  # its taker died: the lease ran out
    (again,) = db.due_webhooks(10, 30)
    assert again.id == first.id and again.attempts == 0
    db.retry_webhook(photo_id, again.id, 0.5, "receiver answered 503")
    assert db.due_webhooks(10, 30) == []
    time.sleep(0.6)
    (third,) = db.due_webhooks(10, 30)
    assert third.id == first.id and third.attempts == 1


def test_a_placeholder_is_its_render_s_and_a_new_generation_clears_it(
        db: MetadataStore) -> None:
    photo_id = db.allocate_id(user_id=8)
    job = db.create(NewPhoto(photo_id, "originals/p", user_id=8))
    lease = db.start(job).lease
    assert not db.set_placeholder(photo_id, lease + 1, '{"a": 1}')  # not that render's
    assert db.set_placeholder(photo_id, lease, '{"color": "#102030"}')
    row = db.get(photo_id)
    assert row is not None and (row.status, row.placeholder) == ("processing",
                                                                '{"color": "#102030"}')
    db.finish(photo_id, lease, SOURCE, keyed(photo_id))  # none given: kept
    assert (db.get(photo_id) or row).placeholder == '{"color": "#102030"}'
    assert not db.set_placeholder(photo_id, lease, "{}")  # ready: no render is running
    again = db.create(NewPhoto(photo_id, "originals/p", user_id=8))  # generation 2
    assert (db.get(photo_id) or row).placeholder is None
    second = db.start(again).lease
    db.finish(photo_id, second, SOURCE, keyed(photo_id), placeholder='{"color": "#405060"}')
    assert (db.get(photo_id) or row).placeholder == '{"color": "#405060"}'
    db.regenerate(0, [Rerender(photo_id, "classic", None, 1.0)], cursor=photo_id)
    assert (db.get(photo_id) or row).placeholder is None


def test_replication_lists_every_server_written_to(db: MetadataStore) -> None:
    servers = db.replication()
    if isinstance(db, SqliteMetadata):
        assert servers == []  # a file, no server
        return
    expected = 3 if isinstance(db, ShardedMetadata) else 1  # the catalog's server is a shard's
    assert len(servers) == expected and len({s.primary for s in servers}) == expected
    for server in servers:  # the tests' servers: lone, single-host URLs
        assert server.standbys == () and not server.ha and not server.synchronous
        assert "@" not in server.url and server.primary.startswith("127.0.0.1:")


def test_a_reader_reads_what_the_store_reads(db: MetadataStore) -> None:
    """``reader()`` answers as the store does where no standby lags; with reads from standbys
    off it is the store's own reads (counted nowhere), on, each read is counted by the role
    that answered (these servers have no standby: the primary), and ``position()`` gives a
    WAL position only then."""
    photo = NewPhoto(db.allocate_id(4), "originals/r", user_id=4)
    db.create(photo)
    lease = db.start(Job(photo.id, 1)).lease
    db.finish(photo.id, lease, SourceInfo("JPEG", 8, 6, 100, 1, 1),
              [RenditionRow("w8", "jpg", "r/w8.jpg", 8, 6, 50)])
    db.create(NewPhoto(db.allocate_id(4), "originals/s", user_id=4))
    reading: MetadataStore = db
    if isinstance(db, PostgresMetadata):
        reading = PostgresMetadata(db.url, standby_max_lag=5.0)
    elif isinstance(db, ShardedMetadata):
        reading = ShardedMetadata(db.catalog_store.url, standby_max_lag=5.0)
    assert db.position(photo.id) is None
    position = reading.position(photo.id)
    assert (position is None) == isinstance(db, SqliteMetadata)
    assert position is None or reads.valid(position)
    seen: list[str] = []
    stop = reads.observe(seen.append)
    try:
        for reader, counted in ((db.reader(), False), (reading.reader(), True),
                                (reading.reader(after=position), True)):
            seen.clear()
            assert reader.get(photo.id) == db.get(photo.id)
            assert reader.renditions(photo.id) == db.renditions(photo.id) != []
            assert reader.counts() == db.counts() and db.counts()["ready"] == 1
            assert reader.photos_of(4, None, 10) == db.photos_of(4, None, 10)
            assert reader.scan(Selection(), 0, 10) == db.scan(Selection(), 0, 10)
            assert reader.backlog().queued == db.backlog().queued == 1
            expect_counted = counted and not isinstance(db, SqliteMetadata)
            assert (seen != [] and set(seen) == {"primary"}) if expect_counted else seen == []
    finally:
        stop()
        if reading is not db:
            reading.close()
