"""The producer API for the web tier: accept an upload, queue its processing.

The order is what makes it safe: allocate the id, store the original, insert the ``queued``
row and commit, and only then publish the job. A crash before the publish leaves a queued row
that a sweep can re-publish; a job is never published for a row that does not exist. The message
carries the photo id, never the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pipeline.core import check_options
from pipeline.errors import TooLarge
from pipeline.jobs import Job, original_key, process
from pipeline.metadata import MetadataStore, NewPhoto
from pipeline.settings import Settings
from pipeline.storage import ObjectStore


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

    def __post_init__(self) -> None:
        if (self.data is None) == (self.source_key is None):
            raise ValueError("give either the upload's bytes or the key of a stored original")
        check_options(self.ladder, self.filter, self.strength)


def submit(upload: Upload, store: ObjectStore, db: MetadataStore, publisher: Publisher,
           settings: Settings) -> int:
    """Queue ``upload`` for processing and return its photo id.

    Raises:
        ValueError: the upload's options are wrong (unknown look or ladder, bad strength).
        TooLarge: the bytes are over ``PHOTOPIPE_MAX_BYTES`` (nothing is stored).
        TransientError: storage, database or broker trouble; nothing was published.
    """
    if upload.data is not None and len(upload.data) > settings.limits.max_bytes:
        raise TooLarge(f"{len(upload.data)} bytes is over the limit of "
                       f"{settings.limits.max_bytes}")
    photo_id = db.allocate_id()
    key = upload.source_key or original_key(photo_id)
    if upload.data is not None:
        store.put(key, upload.data, "application/octet-stream")
    db.create(NewPhoto(photo_id, key, upload.ladder, upload.filter, upload.strength,
                       upload.user_id))
    publisher.publish(Job(photo_id))
    return photo_id


class InProcess:
    """The publisher for the embedded default (no broker): run the job at once."""

    def __init__(self, store: ObjectStore, db: MetadataStore, settings: Settings) -> None:
        self.store, self.db, self.settings = store, db, settings

    def publish(self, job: Job) -> None:
        process(job, self.store, self.db, self.settings)
