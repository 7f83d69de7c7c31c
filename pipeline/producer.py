"""The producer API for the web tier: accept an upload, queue its processing.

The order is what makes it safe: allocate the id, store the original, then insert the
``queued`` row together with its job in the outbox, in one transaction. Publishing comes after
the commit and may fail: the relay (:mod:`pipeline.relay`, run by every worker and by
``photopipe relay``) publishes whatever the outbox still holds, so a broker outage or a crash
after the commit delays a job and never loses it, and ``submit`` succeeds while the broker is
down. A job is never published for a row that does not exist, and the message carries the
photo id and generation, never the picture.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pipeline.core import check_options
from pipeline.errors import PhotoNotFound, PhotopipeError, TooLarge, TransientError
from pipeline.jobs import Job, Options, backoff, original_key, photo_prefix, process
from pipeline.metadata import MetadataStore, NewPhoto
from pipeline.settings import Settings
from pipeline.storage import ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class Publisher(Protocol):
    """Where jobs go: a Celery queue in production, straight to the pipeline without a broker."""

    def publish(self, job: Job) -> None:
        """Hand ``job`` over; returns once the broker has confirmed it (or it has run)."""


@dataclass(frozen=True)
class Upload:
    """One photo to submit: its bytes, or the key of an original the web tier already stored."""

    user_id: int
    data: bytes | None = None
    source_key: str | None = None
    filter: str | None = None
    strength: float = 1.0
    ladder: str = "default"
    # A retried request carries the same key: it gets the photo the first one created.
    idempotency_key: str | None = None
    # An id reserved earlier with ``allocate_id(user_id)`` (a resumable upload's), else new.
    photo_id: int | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.source_key is None):
            raise ValueError("give either the upload's bytes or the key of a stored original")
        check_options(self.ladder, self.filter, self.strength)


def submit(upload: Upload, store: ObjectStore, db: MetadataStore, publisher: Publisher,
           settings: Settings) -> int:
    """Queue ``upload`` for processing and return its photo id.

    Transient trouble (a database restart, an S3 hiccup) is retried with backoff for up to
    ``settings.submit_patience`` seconds. An original stored by a submit that then gives up is
    deleted again. An original given by key is bounded by the worker, which reads at most
    ``PHOTOPIPE_MAX_BYTES`` of it. An upload with an ``idempotency_key`` the user has used
    already returns that photo's id and queues nothing (the key is recorded with the row, in
    its transaction, so of two racing requests one photo is made).

    Raises:
        ValueError: the upload's options are wrong (unknown look or ladder, bad strength).
        TooLarge: the bytes are over ``PHOTOPIPE_MAX_BYTES`` (nothing is stored).
        TransientError: storage or database trouble outlasted the patience; nothing is queued.
        ConfigurationError: the store or database refuses photopipe (see the message).
    """
    data = upload.data
    if data is not None and len(data) > settings.limits.max_bytes:
        raise TooLarge(f"{len(data)} bytes is over the limit of {settings.limits.max_bytes}")
    earlier = _keyed(upload, db, settings)
    if earlier is not None:
        return earlier
    photo_id = upload.photo_id or retrying(lambda: db.allocate_id(upload.user_id), settings)
    key = upload.source_key or original_key(photo_id)
    if data is not None:
        retrying(lambda: store.put(key, data, "application/octet-stream"), settings)
    inline = isinstance(publisher, InProcess)
    photo = NewPhoto(photo_id, key, upload.ladder, upload.filter, upload.strength,
                     upload.user_id)
    try:
        job = _record(photo, db, settings, enqueue=not inline,
                      idempotency_key=upload.idempotency_key)
    except PhotopipeError:
        if data is not None:
            _forget(store, key)
        raise
    if job.photo_id != photo_id:  # a request with the same key got there first: its photo
        if data is not None:
            _forget(store, key)
        return job.photo_id
    if inline:
        publisher.publish(job)
    else:
        _publish_now(db, publisher, photo_id)
    return photo_id


def _record(photo: NewPhoto, db: MetadataStore, settings: Settings, *, enqueue: bool,
            idempotency_key: str | None) -> Job:
    """Insert the photo's row (and its job) once. A transient error may hide a commit that
    landed (the connection was lost while the COMMIT was under way, or a failover came
    between): before trying again, read back. Repeating the insert blindly would make the
    row's generation 2 and render the photo twice."""
    tried = False

    def attempt() -> Job:
        nonlocal tried
        if tried:
            landed = db.get(photo.id)
            if landed is not None and landed.source_key == photo.source_key:
                return Job(photo.id, landed.generation)
        tried = True
        return db.create(photo, enqueue=enqueue, idempotency_key=idempotency_key)
    return retrying(attempt, settings)


def _keyed(upload: Upload, db: MetadataStore, settings: Settings) -> int | None:
    """The photo an earlier upload with the same idempotency key created, if any."""
    idempotency_key = upload.idempotency_key
    if idempotency_key is None:
        return None
    return retrying(lambda: db.keyed(upload.user_id, idempotency_key), settings)


def resubmit(photo_id: int, options: Options, db: MetadataStore, publisher: Publisher,
             settings: Settings) -> Job:
    """Render an existing photo again with other options (the user picked another look): a new
    generation of its row, and its job through the outbox. A render of the old generation
    still running loses to it; the photo ends on the newest generation, complete.

    Raises:
        PhotoNotFound: no such photo.
    """
    row = retrying(lambda: db.get(photo_id), settings)
    if row is None:
        raise PhotoNotFound(f"no photo {photo_id}")
    photo = NewPhoto(photo_id, row.source_key, options.ladder, options.filter,
                     options.strength, row.user_id)
    job = retrying(lambda: db.create(photo), settings)
    _publish_now(db, publisher, photo_id)
    return job


def retrying(call: Callable[[], T], settings: Settings) -> T:
    """``call()``, retried with backoff while it raises TransientError, for up to
    ``settings.submit_patience`` seconds."""
    deadline = time.monotonic() + settings.submit_patience
    for retries in range(1_000_000):
        try:
            return call()
        except TransientError:
            pause = backoff(retries, settings)
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def _publish_now(db: MetadataStore, publisher: Publisher, photo_id: int) -> None:
    """Publish the photo's job at once, if the broker takes it; else the relay will (and a
    broker that refuses photopipe is the operator's to fix: the job waits in the outbox)."""
    try:
        db.relay(publisher.publish, photo_id=photo_id)
    except PhotopipeError as exc:
        log.warning("photo %s: queued in the outbox, not yet published: %s: %s", photo_id,
                    type(exc).__name__, exc)


def _forget(store: ObjectStore, key: str) -> None:
    try:
        store.delete(key)
    except PhotopipeError as exc:
        log.warning("could not delete the original %s of a failed submit: %s", key, exc)


class InProcess:
    """The publisher for the embedded default (no broker): run the job at once."""

    def __init__(self, store: ObjectStore, db: MetadataStore, settings: Settings) -> None:
        self.store, self.db, self.settings = store, db, settings

    def publish(self, job: Job) -> None:
        process(job, self.store, self.db, self.settings)


def delete(photo_id: int, store: ObjectStore, db: MetadataStore, settings: Settings) -> bool:
    """Delete the photo, its renditions and its original; False when there was no such photo.

    The original goes first (a photo still shown loses nothing by it, and a DELETE retried
    after a failure finds the row again), then the row (a render still running loses its
    lease), then every object under the photo's key prefix: what an outage leaves there has no
    row any more, and ``photopipe gc`` removes it.

    Raises:
        TransientError: storage or database trouble outlasted ``submit_patience``.
    """
    row = retrying(lambda: db.get(photo_id), settings)
    if row is None:
        return False
    if row.source_key == original_key(photo_id):  # ours; a key the web tier gave stays its own
        retrying(lambda: store.delete(row.source_key), settings)
    gone = retrying(lambda: db.delete(photo_id, notify=settings.webhook_url is not None),
                    settings)
    if gone is None:
        return False
    try:
        keys = {r.key for r in gone[1]} | set(store.list(photo_prefix(photo_id)))
        store.delete_many(sorted(keys))
    except PhotopipeError as exc:
        log.warning("photo %s deleted; its renditions are left for photopipe gc: %s: %s",
                    photo_id, type(exc).__name__, exc)
    return True
