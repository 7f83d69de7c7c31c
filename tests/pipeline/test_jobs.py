"""process() and ingest(): fenced, idempotent, and every ending recorded with its own code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import jobs
from pipeline.core import rendering
from pipeline.errors import (
    PhotopipeError,
    StorageRejected,
    StorageUnavailable,
    TimedOut,
    classify,
)
from pipeline.jobs import Job, Options, content_id, ingest, original_key, process, rendition_key
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Limits, Settings
from pipeline.storage import open_store
from pipeline.storage.memory import MemoryStore
from pipeline.sweep import sweep
from tests.helpers import PHOTOS

PHOTO = PHOTOS / "real" / "htc_desire_phone_gps.jpg"
FAST = Settings(retry_backoff=0.01, retry_backoff_max=0.02)


class FaultyStore(MemoryStore):
    """A memory store that calls ``hook(op, key)`` before each operation (to raise, or to run
    something in between)."""

    def __init__(self, hook: Callable[[str, str], None]) -> None:
        super().__init__()
        self.hook = hook

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.hook("put", key)
        super().put(key, data, content_type)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        self.hook("get", key)
        return super().get(key, max_bytes)

    def list(self, prefix: str = "") -> Iterator[str]:
        self.hook("list", prefix)
        return super().list(prefix)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.hook("delete", keys[0])
        super().delete_many(keys)


def _queued(store: MemoryStore, db: SqliteMetadata, photo_id: int = 1234,
            ladder: str = "default", data: bytes | None = None) -> Job:
    store.put(f"uploads/{photo_id}", data or PHOTO.read_bytes(), "image/jpeg")
    return db.create(NewPhoto(photo_id, f"uploads/{photo_id}", ladder, None, 1.0, user_id=5))


def _objects(store: MemoryStore, photo_id: int) -> list[str]:
    return sorted(store.list(f"photos/{photo_id}/"))


def _row_keys(db: SqliteMetadata, photo_id: int) -> list[str]:
    return sorted(r.key for r in db.renditions(photo_id))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteMetadata]:
    store = SqliteMetadata(str(tmp_path / "meta.db"))
    yield store
    store.close()


def test_ingest_stores_original_and_every_rendition(memory_store: MemoryStore,
                                                    db: SqliteMetadata) -> None:
    data = PHOTO.read_bytes()
    outcome = ingest(data, Options(), memory_store, db, Settings())
    assert outcome.status == "ready" and outcome.job == Job(content_id(data), 1)
    renditions = db.renditions(content_id(data))
    assert [r.key for r in renditions] == [
        rendition_key(content_id(data), 1, 1, name) for name in
        ("w1080.jpg", "w1080.webp", "w640.jpg", "w320.jpg", "sq150.jpg")]
    assert sorted(memory_store.list()) == sorted(
        [original_key(content_id(data))] + [r.key for r in renditions])
    for r in renditions:
        assert len(memory_store.get(r.key)) == r.bytes
        kind = "jpeg" if r.format == "jpg" else "webp"
        assert memory_store.content_type(r.key) == f"image/{kind}"
    assert memory_store.get(original_key(content_id(data))) == data


def test_running_twice_replaces_the_objects_of_the_first_run(memory_store: MemoryStore,
                                                             db: SqliteMetadata) -> None:
    data = PHOTO.read_bytes()
    first = ingest(data, Options(), memory_store, db, Settings())
    second = ingest(data, Options(ladder="classic"), memory_store, db, Settings())
    assert second.job == replace(first.job, generation=2) and second.status == "ready"
    assert _objects(memory_store, first.job.photo_id) == _row_keys(db, first.job.photo_id)
    assert len(_row_keys(db, first.job.photo_id)) == 3  # the classic ladder's three squares
    assert db.counts()["ready"] == 1


@pytest.mark.parametrize(("name", "code"), [("truncated_pixel6_ultrahdr_gps.jpg", "truncated"),
                                            ("bomb_4gpx.gif", "too_many_pixels")])
def test_a_rejected_upload_writes_no_object_and_no_rendition_row(
        name: str, code: str, memory_store: MemoryStore, db: SqliteMetadata) -> None:
    outcome = ingest((PHOTOS / "hostile" / name).read_bytes(), Options(), memory_store, db,
                     Settings())
    assert (outcome.status, outcome.code) == ("failed", code)
    row = db.get(outcome.job.photo_id)
    assert row is not None and row.status == "failed" and row.error_code == code
    assert list(memory_store.list()) == [] and db.renditions(row.id) == []


def test_process_renders_a_queued_photo_from_its_stored_original(
        memory_store: MemoryStore, db: SqliteMetadata) -> None:
    job = _queued(memory_store, db, ladder="classic")
    assert process(job, memory_store, db, Settings()).status == "ready"
    row = db.get(1234)
    assert row is not None and row.status == "ready" and row.source is not None
    assert [r.key for r in db.renditions(1234)] == [
        "photos/1234/1.1/sq612.jpg", "photos/1234/1.1/sq306.jpg", "photos/1234/1.1/sq150.jpg"]


@pytest.mark.parametrize("early", [True, False])
def test_the_placeholder_is_on_the_row_before_any_rendition_is_stored_when_they_are_large(
        db: SqliteMetadata, monkeypatch: pytest.MonkeyPatch, early: bool) -> None:
    """With a megapixel or more to encode (here: the bar lowered under this photo's) the row
    has the placeholder while the renditions are written; under it, it comes with the finish."""
    monkeypatch.setattr(rendering, "EARLY_PLACEHOLDER_PIXELS", 1 if early else 10**9)
    seen: list[tuple[str, str | None]] = []

    class Watching(MemoryStore):
        def put(self, key: str, data: bytes, content_type: str) -> None:
            if key.startswith("photos/"):
                row = db.get(1234)
                seen.append((row.status, row.placeholder) if row else ("gone", None))
            super().put(key, data, content_type)

    store = Watching()
    job = _queued(store, db, ladder="classic")
    assert process(job, store, db, Settings()).status == "ready"
    row = db.get(1234)
    assert row is not None and row.placeholder is not None
    shown = json.loads(row.placeholder)
    assert set(shown) == {"thumbhash", "color", "aspect"} and shown["aspect"] == 1.0
    assert seen and all(s == ("processing", row.placeholder if early else None) for s in seen)


def test_a_missing_photo_is_skipped_and_a_missing_original_fails(
        memory_store: MemoryStore, db: SqliteMetadata) -> None:
    outcome = process(Job(1, 1), memory_store, db, Settings())
    assert (outcome.status, outcome.code) == ("skipped", "no_such_photo")
    job = db.create(NewPhoto(2, "uploads/missing"))
    outcome = process(job, memory_store, db, Settings())
    assert (outcome.status, outcome.code) == ("failed", "missing_original")


def test_an_original_over_the_byte_limit_fails_before_it_is_read_whole(
        db: SqliteMetadata) -> None:
    reads: list[str] = []
    store = FaultyStore(lambda op, key: reads.append(op))
    data = PHOTO.read_bytes()
    job = _queued(store, db, data=data)
    settings = Settings(limits=Limits(max_bytes=len(data) - 1))
    outcome = process(job, store, db, settings)
    assert (outcome.status, outcome.code) == ("failed", "too_large")
    assert process(db.create(NewPhoto(1234, "uploads/1234")), store, db,
                   Settings(limits=Limits(max_bytes=len(data)))).status == "ready"


@pytest.mark.parametrize("limit", [1, 3])
def test_attempt_n_renders_and_attempt_n_plus_one_fails(limit: int, memory_store: MemoryStore,
                                                        db: SqliteMetadata) -> None:
    settings = Settings(max_attempts=limit)
    job = _queued(memory_store, db)
    for _ in range(limit - 1):
        db.start(job)  # earlier attempts died before they could record anything
    assert process(job, memory_store, db, settings).status == "ready"
    job = db.create(NewPhoto(1234, "uploads/1234"))
    for _ in range(limit):
        db.start(job)
    outcome = process(job, memory_store, db, settings)
    assert (outcome.status, outcome.code, outcome.attempt) == (
        "failed", "too_many_attempts", limit + 1)
    assert _objects(memory_store, 1234) == []  # the first render's objects went with it


def test_spent_attempts_end_with_the_reason_the_last_one_recorded(
        memory_store: MemoryStore, db: SqliteMetadata) -> None:
    job = _queued(memory_store, db)
    db.start(job)
    db.note(1234, "worker_lost", "the worker process died: signal 9 (SIGKILL)")
    outcome = process(job, memory_store, db, Settings(max_attempts=1))
    assert (outcome.status, outcome.code) == ("failed", "worker_lost")
    row = db.get(1234)
    assert row is not None and row.error_code == "worker_lost"
    assert "signal 9" in (row.error_message or "")


def test_an_outage_is_retried_without_spending_an_attempt(db: SqliteMetadata) -> None:
    down = {"on": True}

    def hook(op: str, key: str) -> None:
        if down["on"] and op == "put" and key.startswith("photos/"):
            raise StorageUnavailable("S3 503 SlowDown")

    store = FaultyStore(hook)
    job = _queued(store, db)
    outcome = process(job, store, db, FAST)
    assert (outcome.status, outcome.code, outcome.refund) == ("retry", "unavailable", 1)
    assert outcome.since is not None and 0 < (outcome.retry_in or 0) <= 0.02
    row = db.get(1234)
    assert row is not None and row.status == "queued"  # waiting, not stuck in processing
    for retries in range(1, 12):  # longer than ten backoff steps
        outcome = process(job, store, db, FAST, refund=outcome.refund, since=outcome.since,
                          retries=retries)
        assert outcome.status == "retry"
    down["on"] = False
    outcome = process(job, store, db, FAST, refund=outcome.refund, since=outcome.since)
    assert outcome.status == "ready"
    row = db.get(1234)
    assert row is not None and row.attempts == 1 and row.lease == 13
    assert _objects(store, 1234) == _row_keys(db, 1234)  # the failed leases left nothing


def test_an_outage_longer_than_the_patience_fails_as_unavailable(db: SqliteMetadata) -> None:
    def hook(op: str, key: str) -> None:
        if op == "get":
            raise StorageUnavailable("S3 unreachable")

    store = FaultyStore(hook)
    job = _queued(store, db)
    settings = replace(FAST, outage_patience=60)
    outcome = process(job, store, db, settings, since=time.time() - 30)
    assert outcome.status == "retry"
    outcome = process(job, store, db, settings, refund=outcome.refund,
                      since=time.time() - 61)
    assert (outcome.status, outcome.code) == ("failed", "unavailable")
    row = db.get(1234)
    assert row is not None and row.attempts == 1 and row.error_code == "unavailable"


@pytest.mark.parametrize(("raised", "code"), [
    (RuntimeError("a bug"), "internal_error"),
    (MemoryError(), "out_of_memory"),
    (StorageRejected("AccessDenied"), "storage_rejected"),
])
def test_own_failures_are_retried_within_the_bound_and_never_called_corrupt(
        raised: BaseException, code: str, db: SqliteMetadata) -> None:
    def hook(op: str, key: str) -> None:
        if op == "put" and key.startswith("photos/"):
            raise raised

    store = FaultyStore(hook)
    job = _queued(store, db)
    settings = replace(FAST, max_attempts=2)
    first = process(job, store, db, settings)
    assert (first.status, first.code) == ("retry", code) and first.refund is None
    row = db.get(1234)
    assert row is not None and (row.status, row.last_error_code) == ("queued", code)
    second = process(job, store, db, settings)
    assert (second.status, second.code, second.attempt) == ("failed", code, 2)
    row = db.get(1234)
    assert row is not None and row.error_code == code
    assert type(raised).__name__ in (row.error_message or "")


def test_the_task_layer_translates_its_own_time_limit(memory_store: MemoryStore,
                                                      db: SqliteMetadata) -> None:
    class SoftLimit(Exception):
        pass

    def hook(op: str, key: str) -> None:
        raise SoftLimit

    store = FaultyStore(hook)
    job = _queued(memory_store, db)
    store._objects = memory_store._objects
    outcome = process(job, store, db, replace(FAST, max_attempts=1),
                      translate=lambda exc: TimedOut("soft limit") if isinstance(
                          exc, SoftLimit) else classify(exc))
    assert (outcome.status, outcome.code) == ("failed", "timeout")


def test_a_resubmission_during_a_render_wins_and_the_loser_cleans_only_its_own(
        db: SqliteMetadata) -> None:
    state: dict[str, object] = {}

    def hook(op: str, key: str) -> None:
        if op == "put" and key.startswith("photos/") and "raced" not in state:
            state["raced"] = True  # the web tier resubmits with another ladder, mid-render
            newer = db.create(NewPhoto(1234, "uploads/1234", "classic"))
            state["newer"] = process(newer, store, db, Settings())

    store = FaultyStore(hook)
    job = _queued(store, db)
    outcome = process(job, store, db, Settings())
    assert outcome.status == "superseded"
    assert getattr(state["newer"], "status", None) == "ready"
    row = db.get(1234)
    assert row is not None and (row.status, row.ladder, row.generation) == ("ready", "classic", 2)
    assert _objects(store, 1234) == _row_keys(db, 1234)
    assert [k.rsplit("/", 1)[1] for k in _row_keys(db, 1234)] == [
        "sq150.jpg", "sq306.jpg", "sq612.jpg"]


def test_a_late_winner_never_deletes_a_newer_renders_objects(
        memory_store: MemoryStore, db: SqliteMetadata) -> None:
    job = _queued(memory_store, db)
    dead = db.start(job)  # an attempt that died after writing one object
    memory_store.put(rendition_key(1234, 1, dead.lease, "w1080.jpg"), b"partial", "image/jpeg")
    newer = rendition_key(1234, 1, 99, "w1080.jpg")  # a render that starts after ours
    outcome = process(job, memory_store, db, Settings())
    assert outcome.status == "ready"
    memory_store.put(newer, b"in progress", "image/jpeg")
    jobs._delete_older(memory_store, db.get(1234), [])  # type: ignore[arg-type]
    assert newer in _objects(memory_store, 1234)
    assert rendition_key(1234, 1, dead.lease, "w1080.jpg") not in _objects(memory_store, 1234)


def test_only_a_later_start_lists_the_photos_objects_for_leftovers(db: SqliteMetadata) -> None:
    ops: list[str] = []
    store = FaultyStore(lambda op, key: ops.append(op))
    assert process(_queued(store, db), store, db, Settings()).status == "ready"
    assert "list" not in ops  # the first start: no earlier attempt can have left anything
    job = _queued(store, db, photo_id=99)
    dead = db.start(job)  # the first start died after writing one object
    store.put(rendition_key(99, 1, dead.lease, "w1080.jpg"), b"partial", "image/jpeg")
    assert process(job, store, db, Settings()).status == "ready"  # the second start
    assert ops.count("list") == 1
    assert _objects(store, 99) == _row_keys(db, 99)


def test_a_failure_after_a_ready_render_deletes_the_old_objects(
        memory_store: MemoryStore, db: SqliteMetadata) -> None:
    job = _queued(memory_store, db)
    assert process(job, memory_store, db, Settings()).status == "ready"
    memory_store.put("uploads/1234", (PHOTOS / "hostile" / "truncated_pixel6_ultrahdr_gps.jpg")
                     .read_bytes(), "image/jpeg")
    again = db.create(NewPhoto(1234, "uploads/1234"))
    assert process(again, memory_store, db, Settings()).code == "truncated"
    assert _objects(memory_store, 1234) == [] and db.renditions(1234) == []


class SoftLimit(Exception):
    """Stands for Celery's soft time limit, which the task layer translates."""


def _soft_limit(exc: Exception) -> PhotopipeError:
    return TimedOut("soft limit") if isinstance(exc, SoftLimit) else classify(exc)


@pytest.mark.parametrize("raised", [StorageUnavailable("S3 stalled"), SoftLimit()])
@pytest.mark.parametrize("step", ["list", "delete"])
def test_a_cleanup_failing_after_the_commit_leaves_the_ending_as_committed(
        raised: Exception, step: str, db: SqliteMetadata,
        caplog: pytest.LogCaptureFixture) -> None:
    armed = {"on": False}

    def hook(op: str, key: str) -> None:
        if armed["on"] and op == step:
            raise raised

    store = FaultyStore(hook)
    job = _queued(store, db)
    dead = db.start(job)  # an attempt that died after writing one object
    leftover = rendition_key(1234, 1, dead.lease, "w1080.jpg")
    store.put(leftover, b"partial", "image/jpeg")
    armed["on"] = True
    outcome = process(job, store, db, FAST, translate=_soft_limit)
    assert (outcome.status, outcome.code) == ("ready", None)
    row = db.get(1234)
    assert row is not None and (row.status, row.attempts) == ("ready", 2)
    armed["on"] = False
    assert leftover in _objects(store, 1234)  # not deleted, and said so
    assert "objects of older renders left for photopipe gc" in caplog.text
    assert sweep(store, db).orphans == [leftover]
    assert _objects(store, 1234) == _row_keys(db, 1234)


def test_a_cleanup_failing_after_a_recorded_failure_leaves_it_failed(
        memory_store: MemoryStore, db: SqliteMetadata) -> None:
    job = _queued(memory_store, db)
    assert process(job, memory_store, db, Settings()).status == "ready"

    def hook(op: str, key: str) -> None:
        if op == "delete":
            raise StorageUnavailable("S3 stalled")

    store = FaultyStore(hook)
    store._objects = memory_store._objects
    store.put("uploads/1234", (PHOTOS / "hostile" / "truncated_pixel6_ultrahdr_gps.jpg")
              .read_bytes(), "image/jpeg")
    again = db.create(NewPhoto(1234, "uploads/1234"))
    outcome = process(again, store, db, Settings())
    assert (outcome.status, outcome.code) == ("failed", "truncated")
    assert db.renditions(1234) == [] and _objects(store, 1234) != []


def test_ingest_writes_files_to_the_local_directory(tmp_path: Path, settings: Settings) -> None:
    store, db = open_store(settings), SqliteMetadata(str(tmp_path / "m.db"))
    outcome = ingest(PHOTO.read_bytes(), Options(), store, db, settings)
    photo_id = outcome.job.photo_id
    assert (tmp_path / "objects" / "photos" / str(photo_id) / "1.1" / "w1080.webp").is_file()
    db.close()
