"""Thin Celery tasks: take a job, call :func:`pipeline.jobs.process`, do what its outcome says.

The pipeline decides how every attempt ends and records it on the photo row; this module only
translates Celery's own signals (the soft time limit, a lost worker process, the hard time
limit, a dead-lettered message) into photopipe's terms, and schedules the retries.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import os
import time
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded, WorkerLostError
from celery import Task
from celery.exceptions import Reject, Retry
from celery.worker.request import Request

from pipeline.core.startup import configure
from pipeline.errors import PhotopipeError, TimedOut, classify
from pipeline.jobs import Job, Outcome, process
from pipeline.metadata import MetadataStore, open_metadata
from pipeline.observability.report import report, running
from pipeline.settings import Settings
from pipeline.storage import ObjectStore, open_store
from workers.app import DEAD_QUEUE, TASK, make_app

log = logging.getLogger(__name__)
app = make_app(Settings.from_env())
_context: dict[int, tuple[ObjectStore, MetadataStore, Settings]] = {}
_LIBC = ctypes.util.find_library("c")
_MALLOC_TRIM = getattr(ctypes.CDLL(_LIBC), "malloc_trim", None) if _LIBC else None
# A 12 MP job peaks near 112 MB and the next job reuses that memory: the heap does not grow from
# job to job (80 jobs measured). Trimming after every job would only make the next one fault its
# pages back in, about 20 ms of CPU per photo; so memory goes back to the OS only after a job
# that left the process above this (a far larger upload).
TRIM_ABOVE_BYTES = 128 * 2**20


def context() -> tuple[ObjectStore, MetadataStore, Settings]:
    """This process's store, database connection and settings, made after the fork."""
    pid = os.getpid()
    if pid not in _context:
        settings = Settings.from_env()
        configure(settings.limits)
        _context.clear()
        _context[pid] = (open_store(settings), open_metadata(settings), settings)
    return _context[pid]


def translate(exc: Exception) -> PhotopipeError:
    """Celery's soft time limit is a timeout; everything else as :func:`classify` says."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return TimedOut(f"over the soft time limit ({exc})")
    return classify(exc)


class PhotoRequest(Request):
    """Runs in the worker's main process: records on the row the endings its pool process
    could not (killed mid-job, or past the hard time limit) before Celery requeues the job."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft:
            self._note("timeout", f"killed at the hard time limit of {timeout} s")
        super().on_timeout(soft, timeout)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, WorkerLostError | SystemExit):
            self._note("worker_lost", f"the worker process died during the job: {exc}")
        super().on_failure(exc_info, send_failed_event, return_ok)

    def _note(self, code: str, message: str) -> None:
        try:
            context()[1].note(int(self.args[0]), code, message)
        except (PhotopipeError, IndexError, ValueError) as exc:
            log.warning("photo %s: could not record %s: %s", self.args, code, exc)


@app.task(name=TASK, bind=True, Request=PhotoRequest, max_retries=None)
def process_photo(self: Task, photo_id: int, generation: int = 0,  # type: ignore[type-arg]
                  *, refund: int | None = None, since: float | None = None,
                  queued: float | None = None) -> str:
    """Render photo ``photo_id`` at ``generation``; return how the attempt ended.

    ``queued``: when the job was committed, or its retry fell due (seconds since the epoch).
    """
    store, db, settings = context()
    job = Job(photo_id, generation)
    if (self.request.delivery_info or {}).get("routing_key") == DEAD_QUEUE:
        return _requeue(db, job)
    waited = None if queued is None else time.time() - queued
    with running():
        try:
            outcome = process(job, store, db, settings, refund=refund, since=since,
                              retries=self.request.retries, translate=translate)
        finally:
            release_memory()
    report(outcome, waited)
    if outcome.status == "retry":
        _retry(self, outcome)
    return outcome.status


def _retry(task: Task, outcome: Outcome) -> None:  # type: ignore[type-arg]
    """Publish the retry (a new message, after ``retry_in`` seconds); if the broker cannot
    take it, hand the message back rather than ack it.

    RabbitMQ delays it in whole seconds (Celery's native delayed delivery for quorum queues
    refuses less than one), so the countdown is rounded up to a second at least.
    """
    countdown = max(1, math.ceil(outcome.retry_in or 0))
    kwargs = {"generation": outcome.job.generation, "refund": outcome.refund,
              "since": outcome.since, "queued": time.time() + countdown}
    try:
        raise task.retry(args=(outcome.job.photo_id,), kwargs=kwargs, countdown=countdown)
    except Retry:
        raise
    except Exception as exc:
        log.warning("photo %s: cannot schedule the retry (%s); requeueing",
                    outcome.job.photo_id, exc)
        raise Reject(exc, requeue=True) from exc


def _requeue(db: MetadataStore, job: Job) -> str:
    """A job the broker dead-lettered (delivery limit, or rejected): put it back through the
    outbox if it is still wanted; its next start records the ending if no attempt is left."""
    try:
        again = db.requeue(job)
    except PhotopipeError as exc:
        log.warning("photo %s: dead-lettered and cannot requeue yet: %s", job.photo_id, exc)
        raise Reject(exc, requeue=True) from exc
    log.warning("photo %s: dead-lettered; %s", job.photo_id,
                "requeued through the outbox" if again else "already finished")
    return "requeued" if again else "skipped"


def release_memory() -> None:
    """After an unusually large job, give the heap memory it freed back to the OS (glibc), so
    one big upload does not leave a long-lived worker big; a no-op where there is no
    malloc_trim."""
    if _MALLOC_TRIM is not None and resident_bytes() > TRIM_ABOVE_BYTES:
        _MALLOC_TRIM(0)


def resident_bytes() -> int:
    """This process's resident set size now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
