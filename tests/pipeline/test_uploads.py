"""pipeline.uploads: resumable uploads, their bytes in the store as they arrive, their state a
row changed only by compare-and-set."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from pipeline.errors import DatabaseUnavailable, PhotoNotFound, TooLarge, UnsupportedFormat
from pipeline.jobs import Options, original_key
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.records import Job
from pipeline.settings import Settings
from pipeline.storage import PART_BYTES
from pipeline.storage.memory import MemoryStore
from pipeline.uploads import WRITE_LEASE, OffsetMismatch, State, UploadBusy, Uploads
from tests.helpers import PHOTOS
from tests.services import S3Server

PHOTO = (PHOTOS / "real" / "casio_ex-s1.jpg").read_bytes()
BIG = b"\xff\xd8\xff" + os.urandom(2 * PART_BYTES + 12345)  # three parts' worth
FAST = Settings(retry_backoff=0.01, retry_backoff_max=0.05, submit_patience=0.2,
                upload_expires=600)
OPTIONS = Options("classic", "clarendon", 0.5)


@dataclass
class Recorder:
    published: list[Job] = field(default_factory=list)

    def publish(self, job: Job) -> None:
        self.published.append(job)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []  # (method, bytes)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.calls.append(("put", len(data)))
        super().put(key, data, content_type)

    def put_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        self.calls.append(("put_part", len(data)))
        return super().put_part(key, upload, number, data)


def published(uploads: Uploads) -> list[Job]:
    assert isinstance(uploads.publisher, Recorder)
    return uploads.publisher.published


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uploads(tmp_path: Path, clock: Clock) -> Uploads:
    return Uploads(CountingStore(), SqliteMetadata(str(tmp_path / "meta.db")), Recorder(), FAST,
                   clock=clock)


def send(uploads: Uploads, photo_id: int, data: bytes, chunk: int, *, user: int = 7) -> None:
    for start in range(0, len(data), chunk):
        uploads.append(photo_id, user, start, data[start:start + chunk])


def test_small_chunks_make_the_original_and_the_last_one_submits(uploads: Uploads) -> None:
    begun = uploads.create(7, len(PHOTO), OPTIONS)
    assert (begun.offset, begun.length, begun.submitted) == (0, len(PHOTO), False)
    assert begun.expires == 1_000_000.0 + 600
    send(uploads, begun.photo_id, PHOTO[:-1000], 997)
    assert uploads.progress(begun.photo_id, 7).offset == len(PHOTO) - 1000
    assert uploads.db.get(begun.photo_id) is None  # nothing submitted before the last byte
    assert not uploads.store.exists(original_key(begun.photo_id))
    done = uploads.append(begun.photo_id, 7, len(PHOTO) - 1000, PHOTO[-1000:])
    assert (done.offset, done.submitted) == (len(PHOTO), True)
    assert uploads.store.get(original_key(begun.photo_id)) == PHOTO
    assert list(uploads.store.list()) == [original_key(begun.photo_id)]  # no tail left
    row = uploads.db.get(begun.photo_id)
    assert row is not None and (row.user_id, row.ladder, row.filter, row.strength) == \
        (7, "classic", "clarendon", 0.5)
    assert published(uploads) == [Job(begun.photo_id, 1)]
    # A retried last request (its answer was lost) changes nothing and says where it is.
    assert uploads.append(begun.photo_id, 7, len(PHOTO), b"").submitted
    assert published(uploads) == [Job(begun.photo_id, 1)]


def test_a_photo_larger_than_a_part_goes_up_as_parts(uploads: Uploads) -> None:
    begun = uploads.create(7, len(BIG), OPTIONS)
    send(uploads, begun.photo_id, BIG, 1024 * 1024)
    assert uploads.store.get(original_key(begun.photo_id)) == BIG
    parts = [size for call, size in uploads.store.calls if call == "put_part"]  # type: ignore[attr-defined]
    assert parts == [5 * 1024 * 1024, 5 * 1024 * 1024, len(BIG) - 10 * 1024 * 1024]
    assert list(uploads.store.list()) == [original_key(begun.photo_id)]


def test_a_chunk_of_a_part_or_more_goes_straight_to_a_part(uploads: Uploads) -> None:
    begun = uploads.create(7, len(BIG), OPTIONS)
    uploads.append(begun.photo_id, 7, 0, BIG[:PART_BYTES + 1])
    uploads.append(begun.photo_id, 7, PART_BYTES + 1, BIG[PART_BYTES + 1:])
    assert uploads.store.calls == [("put_part", PART_BYTES + 1),  # type: ignore[attr-defined]
                                   ("put_part", len(BIG) - PART_BYTES - 1)]
    assert uploads.store.get(original_key(begun.photo_id)) == BIG


def test_a_chunk_for_another_offset_is_refused_with_the_upload_s(uploads: Uploads) -> None:
    begun = uploads.create(7, len(PHOTO), OPTIONS)
    uploads.append(begun.photo_id, 7, 0, PHOTO[:100])
    for wrong in (0, 99, 101):
        with pytest.raises(OffsetMismatch) as caught:
            uploads.append(begun.photo_id, 7, wrong, PHOTO[wrong:wrong + 100])
        assert caught.value.offset == 100
    assert uploads.progress(begun.photo_id, 7).offset == 100


def test_a_chunk_past_the_length_is_refused_and_nothing_is_written(uploads: Uploads) -> None:
    begun = uploads.create(7, 1000, OPTIONS)
    uploads.append(begun.photo_id, 7, 0, PHOTO[:500])
    before = list(uploads.store.list())
    with pytest.raises(TooLarge):
        uploads.append(begun.photo_id, 7, 500, PHOTO[500:1001])  # one byte more
    assert list(uploads.store.list()) == before
    assert uploads.append(begun.photo_id, 7, 500, PHOTO[500:1000]).submitted  # exactly it
    with pytest.raises(TooLarge):  # after the end
        uploads.append(begun.photo_id, 7, 1000, b"x")


def test_over_the_byte_limit_is_refused_at_creation(uploads: Uploads) -> None:
    limit = FAST.limits.max_bytes
    uploads.create(7, limit, OPTIONS)
    with pytest.raises(TooLarge):
        uploads.create(7, limit + 1, OPTIONS)
    with pytest.raises(ValueError):
        uploads.create(7, 100, Options("classic", "no-such-look", 1.0))


def test_another_user_s_or_an_expired_upload_is_not_found(uploads: Uploads,
                                                            clock: Clock) -> None:
    begun = uploads.create(7, len(PHOTO), OPTIONS)
    with pytest.raises(PhotoNotFound):
        uploads.append(begun.photo_id, 8, 0, PHOTO[:100])
    with pytest.raises(PhotoNotFound):
        uploads.progress(begun.photo_id, 8)
    with pytest.raises(PhotoNotFound):
        uploads.abandon(begun.photo_id, 8)
    clock.now += 600  # its last moment
    uploads.append(begun.photo_id, 7, 0, PHOTO[:100])
    clock.now += 0.001
    with pytest.raises(PhotoNotFound, match="expired"):
        uploads.append(begun.photo_id, 7, 100, PHOTO[100:200])


def test_the_first_bytes_are_sniffed_however_small_the_chunks(uploads: Uploads) -> None:
    good = uploads.create(7, len(PHOTO), OPTIONS)
    send(uploads, good.photo_id, PHOTO[:16], 2)  # a signature two bytes at a time
    text = uploads.create(7, 100, OPTIONS)
    with pytest.raises(UnsupportedFormat):
        uploads.append(text.photo_id, 7, 0, b"hello, world")
    uploads.append(text.photo_id, 7, 0, b"\xff\xd8")
    with pytest.raises(UnsupportedFormat):  # the third byte breaks the JPEG signature
        uploads.append(text.photo_id, 7, 2, b"\x00" * 20)


def test_a_write_in_progress_holds_the_upload_until_its_lease_ends(uploads: Uploads,
                                                                   clock: Clock) -> None:
    begun = uploads.create(7, len(PHOTO), OPTIONS)
    row = uploads.db.get_upload(begun.photo_id)
    assert row is not None
    held = replace(State.load(row.state), writer="another", writer_until=clock.now + WRITE_LEASE)
    assert uploads.db.put_upload(begun.photo_id, row.version, held.dump())
    with pytest.raises(UploadBusy):
        uploads.append(begun.photo_id, 7, 0, PHOTO[:100])
    clock.now += WRITE_LEASE + 0.1  # its process died mid-write
    assert uploads.append(begun.photo_id, 7, 0, PHOTO[:100]).offset == 100


class LostCommit(SqliteMetadata):
    """The database goes away for good once the photo is to be created."""

    def create(self, photo: NewPhoto, *, enqueue: bool = True,
               idempotency_key: str | None = None) -> Job:
        raise DatabaseUnavailable("the database system is shutting down")


def test_a_complete_upload_whose_submit_failed_is_submitted_when_next_asked(
        tmp_path: Path, clock: Clock) -> None:
    down = Uploads(MemoryStore(), LostCommit(str(tmp_path / "m.db")), Recorder(), FAST,
                   clock=clock)
    begun = down.create(7, len(PHOTO), OPTIONS)
    with pytest.raises(DatabaseUnavailable):
        send(down, begun.photo_id, PHOTO, 64 * 1024)
    back = replace(down, db=SqliteMetadata(str(tmp_path / "m.db")))
    progress = back.progress(begun.photo_id, 7)
    assert (progress.offset, progress.submitted) == (len(PHOTO), True)
    assert back.db.get(begun.photo_id) is not None
    assert back.store.get(original_key(begun.photo_id)) == PHOTO
    back.progress(begun.photo_id, 7)
    assert published(back) == [Job(begun.photo_id, 1)]


def test_an_abandoned_upload_leaves_nothing(uploads: Uploads) -> None:
    begun = uploads.create(7, len(BIG), OPTIONS)
    send(uploads, begun.photo_id, BIG[:PART_BYTES + 3 * 1024 * 1024], 1024 * 1024)
    assert list(uploads.store.list()) != []  # a tail
    assert uploads.store._parts  # type: ignore[attr-defined]  # and a part
    uploads.abandon(begun.photo_id, 7)
    assert list(uploads.store.list()) == []
    assert not uploads.store._parts  # type: ignore[attr-defined]
    with pytest.raises(PhotoNotFound):
        uploads.append(begun.photo_id, 7, PART_BYTES + 3 * 1024 * 1024,
                       BIG[PART_BYTES + 3 * 1024 * 1024:])


def test_collect_removes_expired_uploads_and_keeps_submitted_photos(uploads: Uploads,
                                                                    clock: Clock) -> None:
    stalled = uploads.create(7, len(PHOTO), OPTIONS)
    uploads.append(stalled.photo_id, 7, 0, PHOTO[:1000])
    finished = uploads.create(7, len(PHOTO), OPTIONS)
    send(uploads, finished.photo_id, PHOTO, 100_000)
    fresh = uploads.create(7, len(PHOTO), OPTIONS)
    clock.now += 300
    later = uploads.create(7, len(PHOTO), OPTIONS)
    clock.now += 300.001  # the first three have expired; the last one has 300 s to go
    assert uploads.collect() == 3
    assert uploads.collect() == 0
    assert list(uploads.store.list()) == [original_key(finished.photo_id)]
    assert uploads.db.get(finished.photo_id) is not None
    for gone in (stalled, finished, fresh):
        assert uploads.db.get_upload(gone.photo_id) is None
    assert uploads.progress(later.photo_id, 7).offset == 0


def test_strays_are_chunks_no_upload_names_unless_a_write_is_under_way(
        uploads: Uploads, clock: Clock) -> None:
    begun = uploads.create(7, len(PHOTO), OPTIONS)
    uploads.append(begun.photo_id, 7, 0, PHOTO[:1000])
    named = list(uploads.store.list("uploads/"))
    stray = f"uploads/{begun.photo_id}/000000001000-deadbeef"  # written, never recorded
    gone = "uploads/123/000000000000-deadbeef"  # of an upload with no row
    for key in (stray, gone):
        uploads.store.put(key, b"x", "application/octet-stream")
    row = uploads.db.get_upload(begun.photo_id)
    assert row is not None
    writing = replace(State.load(row.state), writer="w", writer_until=clock.now + 5)
    assert uploads.db.put_upload(begun.photo_id, row.version, writing.dump())
    assert uploads.strays() == [gone]  # the upload being written to is left alone
    clock.now += 6
    assert uploads.strays(delete=False) == [stray]
    assert uploads.strays() == [stray]
    assert list(uploads.store.list("uploads/")) == named


def test_an_expired_upload_s_s3_multipart_upload_is_aborted(moto: S3Server, tmp_path: Path,
                                                            clock: Clock) -> None:
    store = moto.store()
    uploads = Uploads(store, SqliteMetadata(str(tmp_path / "s3.db")), Recorder(), FAST,
                      clock=clock)
    begun = uploads.create(7, len(BIG), OPTIONS)
    send(uploads, begun.photo_id, BIG[:PART_BYTES + 2 * 1024 * 1024], 1024 * 1024)
    pending = store.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert [u["Key"] for u in pending] == [f"pp/{original_key(begun.photo_id)}"]
    assert list(store.list("uploads/")) != []
    clock.now += FAST.upload_expires + 1
    assert uploads.collect() == 1
    assert store.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert list(store.list()) == []


def test_photopipe_gc_collects_expired_uploads(tmp_path: Path) -> None:
    from tests.web.harness import cli, embedded

    env = embedded(tmp_path / "data")
    settings = Settings.from_env({**env, "PHOTOPIPE_UPLOAD_EXPIRES": "0.01"})
    from pipeline.metadata import open_metadata
    from pipeline.storage import open_store

    uploads = Uploads(open_store(settings), open_metadata(settings), Recorder(), settings)
    begun = uploads.create(7, len(PHOTO), OPTIONS)
    uploads.append(begun.photo_id, 7, 0, PHOTO[:1000])
    time.sleep(0.05)
    dry = cli(env, "gc", "--dry-run", "--json")
    assert json.loads(dry.stdout)["expired_uploads"] == 1, dry.stderr
    assert list(uploads.store.list("uploads/")) != []
    done = json.loads(cli(env, "gc", "--json").stdout)
    assert (done["expired_uploads"], done["stray_chunks"]) == (1, 0)
    assert list(uploads.store.list("uploads/")) == []
    assert uploads.db.get_upload(begun.photo_id) is None
