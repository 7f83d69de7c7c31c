"""``photopipe serve``: the API over the deployment's own settings, stores and publisher, run
by uvicorn. Stateless: any number of processes and hosts behind a load balancer.

On the embedded default (no broker) each ``serve`` process renders in the background, in a
process pool of its own, so ``make demo``'s set-up is enough to try the API locally.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from pipeline import webhooks
from pipeline.core.startup import configure
from pipeline.documents import Links
from pipeline.errors import ConfigurationError
from pipeline.jobs import process
from pipeline.metadata import MetadataStore, open_metadata
from pipeline.observability import logs
from pipeline.producer import Publisher
from pipeline.records import Job
from pipeline.settings import Settings
from pipeline.storage import ObjectStore, open_store
from pipeline.web import tickets
from pipeline.web.app import Door, create_app
from pipeline.web.metrics import Observed
from pipeline.webhooks import Sender


def build(settings: Settings) -> Door:
    """The door over ``settings``' stores and publisher.

    Raises:
        ConfigurationError: no signing key (PHOTOPIPE_SECRET_KEY unset, not embedded).
    """
    return Door(settings, lambda: open_store(settings), lambda: open_metadata(settings),
                publisher(settings), tickets.key(settings))


def publisher(settings: Settings) -> Publisher:
    """Celery's with a broker; else a pool of this process's own that renders in the
    background."""
    if not settings.broker_url:
        return Background(settings)
    from workers.app import make_app
    from workers.publisher import CeleryPublisher

    return CeleryPublisher(make_app(settings))


def webhook_sender(settings: Settings) -> Callable[[], Sender]:
    """What makes a webhook sender in the thread that runs it: its own database connection,
    and rendition URLs as the API hands them out."""
    def make() -> Sender:
        try:
            key = tickets.key(settings)
        except ConfigurationError:  # only local file URLs are signed with it: none here
            key = b""
        links = Links(settings, open_store(settings), key)
        return Sender(open_metadata(settings), settings, links.url)
    return make


def start_webhooks(settings: Settings, stop: threading.Event) -> None:
    """The webhook sender in a thread of this process, counted in its metrics."""
    from pipeline.observability import metrics

    def report(outcomes: Counter[str]) -> None:
        for outcome, count in outcomes.items():
            metrics.WEBHOOKS.labels(outcome).inc(count)

    webhooks.start(webhook_sender(settings), stop, report=report)


def asgi() -> Observed:
    """uvicorn's factory: the app over the environment's settings (one per process),
    counted and logged."""
    settings = Settings.from_env()
    configure(settings.limits)
    logs.configure(settings)
    return Observed(create_app(build(settings)))


class Background:
    """The embedded default's publisher: each job rendered in a process pool, at once."""

    def __init__(self, settings: Settings, processes: int = 1) -> None:
        self.pool = ProcessPoolExecutor(processes, multiprocessing.get_context("spawn"),
                                        initializer=_open, initargs=(settings,))
        self.stop = threading.Event()  # no workers here: this process tells the webhooks
        if settings.webhook_url is not None:
            start_webhooks(settings, self.stop)

    def publish(self, job: Job) -> None:
        future: Future[str] = self.pool.submit(_render, job)
        future.add_done_callback(_surface)

    def close(self) -> None:
        """Stop the pool: renders running finish, queued ones are dropped (their photos stay
        queued, for the stuck sweep or a new submit)."""
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


log = logging.getLogger(__name__)
# A pool process's stores, opened once by its initializer.
_opened: list[tuple[ObjectStore, MetadataStore, Settings]] = []


def _open(settings: Settings) -> None:
    configure(settings.limits)
    _opened.append((open_store(settings), open_metadata(settings), settings))


def _render(job: Job) -> str:
    """In a pool process: the job, as a worker runs it; its ending is recorded on the row."""
    if not _opened:
        raise RuntimeError("the pool's initializer opens the stores first")
    return process(job, *_opened[0]).status


def _surface(future: Future[str]) -> None:
    error = future.exception()
    if error is not None:  # a pool process that died: the row says processing
        log.error("background render failed", exc_info=error)
