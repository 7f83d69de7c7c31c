"""Thin Celery tasks: take a photo id, call :func:`pipeline.jobs.process`, let errors decide.

Transient errors (storage, database) retry with exponential backoff and jitter; permanent ones
were already recorded on the photo row by the pipeline, or concern a photo that does not exist.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from celery import Task

from pipeline.errors import PermanentError, TransientError
from pipeline.jobs import Job, process
from pipeline.metadata import MetadataStore, open_metadata
from pipeline.settings import Settings
from pipeline.startup import configure
from pipeline.storage import ObjectStore, open_store
from workers.app import TASK, make_app

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
        configure(settings)
        _context.clear()
        _context[pid] = (open_store(settings), open_metadata(settings), settings)
    return _context[pid]


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


@app.task(name=TASK, bind=True, autoretry_for=(TransientError,), retry_backoff=2,
          retry_backoff_max=300, retry_jitter=True, max_retries=None)
def process_photo(self: Task, photo_id: int) -> str:  # type: ignore[type-arg]
    """Render photo ``photo_id``; return its final status."""
    store, db, settings = context()
    try:
        row = process(Job(photo_id), store, db, settings)
    except PermanentError as exc:
        log.error("photo %s: %s: %s", photo_id, type(exc).__name__, exc)
        return "failed"
    finally:
        release_memory()
    log.info("photo %s: %s (attempt %s)", photo_id, row.status, row.attempts)
    return row.status
