"""Run one photo through the pipeline, with I/O: the function Celery, the CLI and the
benchmarks all call.

Idempotence is by design: object keys are derived from the photo id and the file name, so a
second run overwrites the first; every object is written before the transaction that records it
commits, so no row ever points at a missing object; a rejected upload writes no rendition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.core import Rendered, check_options, render
from pipeline.encode import CONTENT_TYPES
from pipeline.errors import ImageRejected, ObjectNotFound, PhotoNotFound, TooManyAttempts
from pipeline.metadata import MetadataStore, NewPhoto, PhotoRow, RenditionRow
from pipeline.settings import Settings
from pipeline.storage import ObjectStore


@dataclass(frozen=True)
class Job:
    """What a queue message carries: only the photo id, never the picture."""

    photo_id: int


@dataclass(frozen=True)
class Options:
    """How a photo should be rendered."""

    ladder: str = "default"
    filter: str | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        check_options(self.ladder, self.filter, self.strength)


def original_key(photo_id: int) -> str:
    """Where a photo's original upload is stored."""
    return f"originals/{photo_id}"


def rendition_key(photo_id: int, filename: str) -> str:
    """Where one rendition file of a photo is stored (``filename`` like ``w1080.jpg``)."""
    return f"photos/{photo_id}/{filename}"


def content_id(data: bytes) -> int:
    """A positive 63-bit photo id derived from the upload's bytes (embedded mode).

    The same upload always gets the same id, so processing it again replaces its renditions.
    """
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> 1


def process(job: Job, store: ObjectStore, db: MetadataStore, settings: Settings) -> PhotoRow:
    """Render a queued photo from its stored original and record the result.

    Returns the photo's row afterwards: ``ready``, or ``failed`` with its error code.

    A missing original fails the photo (``missing_original``), and so does an attempts count
    past ``settings.max_attempts`` (``too_many_attempts``): the backstop for a job that keeps
    coming back.

    Raises:
        PhotoNotFound: the job names a photo that has no row.
        TransientError: storage or database trouble; the job may be retried as it is.
    """
    photo = db.start(job.photo_id)
    if photo.attempts > settings.max_attempts:
        error = TooManyAttempts(f"tried {photo.attempts - 1} times, the limit is "
                                f"{settings.max_attempts}")
        db.fail(photo.id, error.code, str(error))
        return _reload(db, photo.id)
    try:
        data = store.get(photo.source_key)
    except ObjectNotFound as exc:
        db.fail(photo.id, "missing_original", str(exc))
        return _reload(db, photo.id)
    return _complete(photo, data, store, db, settings, keep_original=False)


def ingest(data: bytes, options: Options, store: ObjectStore, db: MetadataStore,
           settings: Settings) -> PhotoRow:
    """Process an upload in-process (the embedded default, no broker).

    The original is stored beside the renditions only when the upload renders; a rejected
    upload leaves its failed row and no object at all.
    """
    photo_id = content_id(data)
    db.create(NewPhoto(photo_id, original_key(photo_id), options.ladder, options.filter,
                       options.strength))
    photo = db.start(photo_id)
    return _complete(photo, data, store, db, settings, keep_original=True)


def _complete(photo: PhotoRow, data: bytes, store: ObjectStore, db: MetadataStore,
              settings: Settings, *, keep_original: bool) -> PhotoRow:
    try:
        rendered = render(data, filter=photo.filter, strength=photo.strength,
                          ladder=photo.ladder, limits=settings.limits,
                          encoding=settings.encoding)
    except ImageRejected as exc:
        db.fail(photo.id, exc.code, str(exc))
    else:
        if keep_original:
            store.put(photo.source_key, data, "application/octet-stream")
        previous = db.renditions(photo.id)
        current = _store_renditions(photo.id, rendered, store)
        db.finish(photo.id, rendered.source, current)
        _delete_stale(store, previous, current)
    return _reload(db, photo.id)


def _delete_stale(store: ObjectStore, previous: list[RenditionRow],
                  current: list[RenditionRow]) -> None:
    """Remove objects of an earlier run that the new rows no longer name (ladder changed).

    Runs after the new rows commit, so a crash in between leaves orphans, never dangling rows.
    """
    keep = {r.key for r in current}
    for row in previous:
        if row.key not in keep:
            store.delete(row.key)


def _store_renditions(photo_id: int, rendered: Rendered, store: ObjectStore) -> list[RenditionRow]:
    rows = []
    for output in rendered.files:
        key = rendition_key(photo_id, output.filename)
        store.put(key, output.data, CONTENT_TYPES[output.format])
        rows.append(RenditionRow(output.name, output.format, key, output.width, output.height,
                                 len(output.data)))
    return rows


def _reload(db: MetadataStore, photo_id: int) -> PhotoRow:
    row = db.get(photo_id)
    if row is None:
        raise PhotoNotFound(f"photo {photo_id} disappeared while it was processed")
    return row
