"""The outbox relay: publish the jobs that are committed but not yet on the broker.

Every ``photopipe worker`` runs one in a thread, and ``photopipe relay`` runs one on its own.
Many may run at once: each outbox entry is taken by one (``FOR UPDATE SKIP LOCKED``) and
removed only once the broker has confirmed it, so a crash in between publishes it again
(at least once), and the worker skips the duplicate.
"""

from __future__ import annotations

import logging
import threading

from pipeline.errors import PhotopipeError
from pipeline.metadata import MetadataStore, Publish

log = logging.getLogger(__name__)


def drain(db: MetadataStore, publish: Publish, *, batch: int = 100) -> int:
    """Publish everything the outbox holds now; return how many jobs were published."""
    total = 0
    while (sent := db.relay(publish, limit=batch)) > 0:
        total += sent
        if sent < batch:
            break
    return total


def run(db: MetadataStore, publish: Publish, stop: threading.Event, *,
        interval: float = 1.0) -> None:
    """Drain the outbox every ``interval`` seconds until ``stop`` is set. Outages are logged
    and waited out; nothing here ends the loop but ``stop``."""
    while not stop.is_set():
        try:
            sent = drain(db, publish)
            if sent:
                log.info("relay: published %d jobs from the outbox", sent)
        except PhotopipeError as exc:
            log.warning("relay: %s: %s", type(exc).__name__, exc)
        except Exception:  # a bug must not stop the relay thread of a worker for good
            log.exception("relay: unexpected error")
        stop.wait(interval)


def start(db: MetadataStore, publish: Publish, *, interval: float = 1.0) -> threading.Event:
    """Run :func:`run` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run, args=(db, publish, stop), kwargs={"interval": interval},
                     name="photopipe-relay", daemon=True).start()
    return stop
