"""Run one photo through the pipeline, with I/O: the function Celery, the CLI and the
benchmarks all call, and the policy that decides how every attempt ends.

Idempotence and fencing: a render takes a lease on the photo (:meth:`MetadataStore.start`),
writes its objects under keys that name its generation and lease, and commits its rows only if
the lease is still the photo's. The loser of a race deletes its own objects and nothing else;
the winner deletes what older leases left behind, after its commit. So no row ever points at a
missing object, and a crash leaves at worst orphans that the next render of the photo removes.

Every attempt ends in exactly one :class:`Outcome`:

==========  ==================================================================================
ready       the renditions are recorded
failed      recorded ``failed`` with a code: a verdict on the image (``ImageRejected``), a
            missing original, or the last attempt's own failure (``timeout``,
            ``out_of_memory``, ``internal_error``, ``storage_rejected``, ...) once
            ``max_attempts`` are spent, or ``unavailable`` after ``outage_patience``
retry       to be tried again after ``retry_in`` seconds: an attempt that failed for a reason
            of its own (counted), or an outage (not counted: ``refund`` names the lease whose
            attempt the next start gives back)
skipped     nothing to do: the job's generation is finished or superseded, or its photo is gone
superseded  a newer render of the photo took over while this one ran; its objects are deleted
==========  ==================================================================================
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pipeline.core import check_options, render
from pipeline.core.encode import CONTENT_TYPES
from pipeline.core.placeholder import Placeholder
from pipeline.core.spec import render_spec
from pipeline.errors import (
    ImageRejected,
    ObjectNotFound,
    PhotoNotFound,
    PhotopipeError,
    TransientError,
    classify,
)
from pipeline.metadata import MetadataStore, NewPhoto, PhotoRow, RenditionRow
from pipeline.records import Job
from pipeline.settings import Settings
from pipeline.storage import ObjectStore

__all__ = ["Job", "Measures", "Options", "Outcome", "backoff", "content_id", "file_id", "ingest",
           "lease_of", "original_key", "photo_prefix", "process", "reject", "rendition_key"]

Translate = Callable[[Exception], PhotopipeError]
log = logging.getLogger(__name__)
FIRST_LEASE = 1  # the lease of a photo's first start (every start takes the next one)


@dataclass(frozen=True)
class Options:
    """How a photo should be rendered."""

    ladder: str = "default"
    filter: str | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        check_options(self.ladder, self.filter, self.strength)


@dataclass(frozen=True)
class Measures:
    """What one attempt cost, for metrics and logs (no effect on what it did)."""

    # Seconds in each stage the attempt completed, in order: fetch (the original from the
    # store), decode, look, resize, encode, store (the renditions), record (the commit).
    timings: Mapping[str, float] = field(default_factory=dict)
    written: Mapping[str, int] = field(default_factory=dict)  # rendition bytes by format
    cpu_seconds: float = 0.0  # this process's CPU time over the attempt
    ladder: str | None = None  # how the photo was to be rendered (None before its row was read)
    look: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How one attempt at a job ended (see the module's table)."""

    status: Literal["ready", "failed", "retry", "skipped", "superseded"]
    job: Job
    code: str | None = None
    message: str | None = None
    attempt: int | None = None
    retry_in: float | None = None
    refund: int | None = None
    since: float | None = None
    measures: Measures = field(default_factory=Measures, compare=False)


def original_key(photo_id: int) -> str:
    """Where a photo's original upload is stored."""
    return f"originals/{photo_id}"


def rendition_key(photo_id: int, generation: int, lease: int, filename: str) -> str:
    """Where one rendition file of one render is stored (``filename`` like ``w1080.jpg``)."""
    return f"{photo_prefix(photo_id)}{generation}.{lease}/{filename}"


def content_id(data: bytes) -> int:
    """A positive 63-bit photo id derived from the upload's bytes (embedded mode).

    The same upload always gets the same id, so processing it again replaces its renditions.
    """
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> 1


def file_id(path: Path) -> int:
    """:func:`content_id` of a file, read in chunks (for files too large to load)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def reject(photo_id: int, options: Options, error: ImageRejected,
           db: MetadataStore) -> Outcome:
    """Record an upload refused before it was read (embedded mode): a failed row, no object."""
    job = Job(photo_id)
    try:
        job = db.create(NewPhoto(photo_id, original_key(photo_id), options.ladder,
                                 options.filter, options.strength), enqueue=False)
        claim = db.start(job)
        db.fail(photo_id, claim.lease, error.code, str(error))
    except PhotopipeError as exc:
        return Outcome("retry", job, exc.code, str(exc))
    return Outcome("failed", job, error.code, str(error), claim.row.attempts)


def backoff(retries: int, settings: Settings) -> float:
    """Seconds to wait before retry number ``retries + 1``: exponential, capped, with jitter
    (half fixed, half random, so a crowd of retries spreads out but none comes back at once)."""
    ceiling = min(settings.retry_backoff_max, settings.retry_backoff * 2 ** min(retries, 30))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


def process(job: Job, store: ObjectStore, db: MetadataStore, settings: Settings, *,
            refund: int | None = None, since: float | None = None, retries: int = 0,
            translate: Translate = classify) -> Outcome:
    """Render ``job``'s photo from its stored original and record how the attempt ended.

    Args:
        refund: the lease of an earlier attempt of this job that only waited out an outage;
            the start gives its attempt back.
        since: when the outage this job is waiting out began (``time.time()``), if it is.
        retries: how many times this job was retried already (sets the backoff).
        translate: turns an exception from outside photopipe's tree into one of its errors
            (the Celery task maps its time limit to ``TimedOut``); default :func:`classify`.

    Never raises for a failure of the job itself: every ending is an :class:`Outcome`.
    """
    return _Attempt(job, store, db, settings, refund, since, retries, translate).run()


def ingest(data: bytes, options: Options, store: ObjectStore, db: MetadataStore,
           settings: Settings) -> Outcome:
    """Process an upload in-process (the embedded default, no broker).

    The original is stored beside the renditions only when the upload renders; a rejected
    upload leaves its failed row and no object at all.
    """
    photo_id = content_id(data)
    attempt = _Attempt(Job(photo_id), store, db, settings, None, None, 0, classify)
    try:
        job = db.create(NewPhoto(photo_id, original_key(photo_id), options.ladder,
                                 options.filter, options.strength), enqueue=False)
    except PhotopipeError as exc:
        return attempt.outage(exc) if isinstance(exc, TransientError) else \
            Outcome("failed", Job(photo_id), exc.code, str(exc))
    return replace(attempt, job=job, data=data).run()


@dataclass
class _Trace:
    """What an attempt measures about itself as it goes (see :class:`Measures`)."""

    timings: dict[str, float] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    ladder: str | None = None
    look: str | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``; a block that raises is not a stage completed."""
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start


@dataclass(frozen=True)
class _Attempt:
    """One attempt at a job; :meth:`run` turns everything that can happen into an Outcome."""

    job: Job
    store: ObjectStore
    db: MetadataStore
    settings: Settings
    refund: int | None
    since: float | None
    retries: int
    translate: Translate
    data: bytes | None = None  # the upload itself, in-process (stored only if it renders)
    trace: _Trace = field(default_factory=_Trace)

    @property
    def notify(self) -> bool:
        """Whether an ending is also told to the web tier (its webhook, in its transaction)."""
        return self.settings.webhook_url is not None

    def run(self) -> Outcome:
        cpu = time.process_time()
        outcome = self.attempt()
        trace = self.trace
        return replace(outcome, measures=Measures(
            dict(trace.timings), dict(trace.written), time.process_time() - cpu,
            trace.ladder, trace.look))

    def attempt(self) -> Outcome:
        row: PhotoRow | None = None
        try:
            claim = self.db.start(self.job, refund=self.refund)
            if claim.skipped is not None:
                return Outcome("skipped", self.job, claim.skipped, attempt=claim.row.attempts)
            row = claim.row
            if row.attempts > self.settings.max_attempts:
                return self.end(row, row.last_error_code or "too_many_attempts",
                                f"tried {row.attempts - 1} times, the limit is "
                                f"{self.settings.max_attempts}; last: "
                                f"{row.last_error_message or 'no reason recorded'}")
            return self.render(row)
        except PhotoNotFound as exc:
            return Outcome("skipped", self.job, exc.code, str(exc))
        except Exception as exc:  # every ending is recorded: classified, never swallowed
            return self.after(row, self.translate(exc))

    def render(self, row: PhotoRow) -> Outcome:
        trace = self.trace
        trace.ladder, trace.look = row.ladder, row.filter
        with trace.stage("fetch"):
            data = self.data if self.data is not None else self.store.get(
                row.source_key, max_bytes=self.settings.limits.max_bytes)
        rendered = render(data, filter=row.filter, strength=row.strength, ladder=row.ladder,
                          limits=self.settings.limits, encoding=self.settings.encoding,
                          on_placeholder=lambda shown: self.show(row, shown))
        trace.timings.update(rendered.timings)
        written: list[RenditionRow] = []
        with trace.stage("store"):
            if self.data is not None:
                self.store.put(row.source_key, data, "application/octet-stream")
            for output in rendered.files:
                key = rendition_key(row.id, row.generation, row.lease, output.filename)
                self.store.put(key, output.data, CONTENT_TYPES[output.format])
                written.append(RenditionRow(output.name, output.format, key, output.width,
                                            output.height, len(output.data)))
                trace.written[output.format] = trace.written.get(output.format, 0) + \
                    len(output.data)
        spec = render_spec(row.ladder, row.filter, row.strength, self.settings.encoding)
        with trace.stage("record"):
            replaced = self.db.finish(
                row.id, row.lease, rendered.source, written, spec, notify=self.notify,
                placeholder=None if rendered.placeholder is None else rendered.placeholder.dump())
        if replaced is None:
            self.tidy(lambda: _delete(self.store, [r.key for r in written]))
            return Outcome("superseded", self.job, attempt=row.attempts)
        self.tidy(lambda: _delete_older(self.store, row, replaced))
        return Outcome("ready", self.job, attempt=row.attempts)

    def show(self, row: PhotoRow, shown: Placeholder) -> None:
        """Record the placeholder as soon as the render knows it (a page shows it while the
        renditions are encoded and stored). The finish records it too: a failure here only
        delays it."""
        with contextlib.suppress(PhotopipeError):
            self.db.set_placeholder(row.id, row.lease, shown.dump())

    def after(self, row: PhotoRow | None, error: PhotopipeError) -> Outcome:
        """The ending of an attempt that raised ``error`` (``row`` is None before a lease)."""
        if isinstance(error, TransientError) or row is None:
            return self.outage(error, row)
        if isinstance(error, ImageRejected | ObjectNotFound):
            return self.end(row, error.code, str(error))
        message = f"{type(error).__name__}: {error}"
        if row.attempts >= self.settings.max_attempts:
            return self.end(row, error.code, message)
        return self.record(row, error.code, message, retry_in=backoff(row.attempts - 1,
                                                                     self.settings))

    def outage(self, error: PhotopipeError, row: PhotoRow | None = None) -> Outcome:
        """Wait out an outage without spending an attempt, for ``outage_patience`` seconds."""
        now = time.time()
        since = self.since if self.since is not None else now
        if row is not None and now - since > self.settings.outage_patience:
            return self.end(row, "unavailable", f"still down after {now - since:.0f} s: "
                            f"{type(error).__name__}: {error}")
        refund = row.lease if row is not None else self.refund
        outcome = Outcome("retry", self.job, error.code, f"{type(error).__name__}: {error}",
                          row.attempts if row else None,
                          backoff(self.retries, self.settings), refund, since)
        if row is not None:  # back to queued while it waits, if the database is still up
            with contextlib.suppress(PhotopipeError):
                self.db.retry_later(row.id, row.lease, error.code, outcome.message or "")
        return outcome

    def record(self, row: PhotoRow, code: str, message: str, *, retry_in: float) -> Outcome:
        """Note an attempt's own failure on the row and schedule the retry it earned."""
        try:
            if not self.db.retry_later(row.id, row.lease, code, message):
                return Outcome("superseded", self.job, code, message, row.attempts)
        except PhotopipeError as exc:
            return self.outage(exc)
        return Outcome("retry", self.job, code, message, row.attempts, retry_in)

    def end(self, row: PhotoRow, code: str, message: str) -> Outcome:
        """Record the photo ``failed`` with ``code``; delete the renditions it had."""
        try:
            dropped = self.db.fail(row.id, row.lease, code, message, notify=self.notify)
        except PhotopipeError as exc:
            return self.outage(exc)
        if dropped is None:
            return Outcome("superseded", self.job, code, message, row.attempts)
        self.tidy(lambda: _delete(self.store, [r.key for r in dropped]))
        return Outcome("failed", self.job, code, message, row.attempts)

    def tidy(self, cleanup: Callable[[], None]) -> None:
        """Delete objects after the commit that decided the attempt's ending. The commit is the
        ending: a cleanup that fails (an S3 outage, the soft time limit) changes nothing but
        leaves orphans for the photo's next render or ``photopipe gc``, and says so."""
        try:
            cleanup()
        except Exception as exc:
            error = self.translate(exc)
            log.warning("photo %s: objects of older renders left for photopipe gc (%s: %s)",
                        self.job.photo_id, error.code, error)


def photo_prefix(photo_id: int) -> str:
    """Where every rendition object of a photo lives, whatever its render."""
    return f"photos/{photo_id}/"


def lease_of(key: str, photo_id: int) -> int | None:
    """The lease a rendition key was written under (None for keys of another layout)."""
    render_dir = key.removeprefix(photo_prefix(photo_id)).split("/", 1)[0]
    generation, _, lease = render_dir.partition(".")
    return int(lease) if generation.isdigit() and lease.isdigit() else None


def _delete_older(store: ObjectStore, row: PhotoRow, replaced: list[RenditionRow]) -> None:
    """After a commit: remove the renditions it replaced and whatever older leases left
    behind (attempts that died mid-write). Newer leases' objects are never touched: a render
    that started after this one may be writing them now."""
    stale = {r.key for r in replaced}
    if row.lease > FIRST_LEASE:  # a photo's first start has no earlier attempt to clean up
        for key in store.list(photo_prefix(row.id)):
            lease = lease_of(key, row.id)
            if lease is not None and lease < row.lease:
                stale.add(key)
    _delete(store, sorted(stale))


def _delete(store: ObjectStore, keys: list[str]) -> None:
    if keys:
        store.delete_many(keys)
