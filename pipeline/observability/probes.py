"""The readiness probes of a photopipe process: the metadata store, the object store and,
when there is one, the broker. Each opens its own client, on its checker thread, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pipeline.metadata import Backlog, MetadataStore, Server, open_metadata
from pipeline.observability.health import Health, Probe
from pipeline.settings import Settings
from pipeline.storage import ObjectStore, open_store

T = TypeVar("T")
READY_PREFIX = "photopipe-readyz/"  # listed, never written: any answer means S3 is there


class _Lazy(Generic[T]):
    """A client made on first use, in the thread that uses it."""

    def __init__(self, make: Callable[[], T]) -> None:
        self.make = make
        self._client: T | None = None

    def get(self) -> T:
        if self._client is None:
            self._client = self.make()
        return self._client


def probes(settings: Settings, *, backlog_from_standby: bool = False) -> list[Probe]:
    """``metadata`` (its backlog), ``storage`` (a listing), ``replication`` (every database
    server's standbys, PostgreSQL only) and ``broker`` (queue depths).

    ``backlog_from_standby`` (the exporter): the backlog is read where reads may go to a
    standby; a worker's readiness asks the primary it works with."""
    db: _Lazy[MetadataStore] = _Lazy(lambda: open_metadata(settings))
    store: _Lazy[ObjectStore] = _Lazy(lambda: open_store(settings))

    def metadata() -> Backlog:
        return db.get().reader().backlog() if backlog_from_standby else db.get().backlog()

    def storage() -> None:
        next(iter(store.get().list(READY_PREFIX)), None)

    found = [Probe("metadata", metadata), Probe("storage", storage)]
    if not settings.database_url.startswith("sqlite"):
        found.append(Probe("replication", _replication(settings)))
    if settings.broker_url:
        found.append(Probe("broker", _broker(settings)))
    return found


def _replication(settings: Settings) -> Callable[[], list[Server]]:
    db: _Lazy[MetadataStore] = _Lazy(lambda: open_metadata(settings))

    def replication() -> list[Server]:
        return db.get().replication()

    return replication


def unprotected(health: Health) -> list[str]:
    """The database servers given as clusters (their URLs list several hosts) that have no
    synchronous standby now: with ``synchronous_mode_strict`` their writes wait, without it
    they run unprotected. Not a readiness matter (a worker serves every other shard), but
    ``photopipe health`` fails on it and an alert pages."""
    result = health.get("replication")
    servers = result.value if result is not None and result.ok else []
    return [s.url for s in servers if s.ha and not s.synchronous]


def _broker(settings: Settings) -> Callable[[], dict[str, int]]:
    from workers.app import consumed_queues, make_app, queue_depth

    app: _Lazy[Any] = _Lazy(lambda: _quick(make_app(settings)))
    queues = consumed_queues(settings.broker_url or "")

    def broker() -> dict[str, int]:
        return {queue: queue_depth(app.get(), queue) for queue in queues}

    return broker


def _quick(app: Any) -> Any:
    """The app with a short connect timeout, its queues declared (a check before the first
    worker ever started must not read a missing queue as a broker that is down)."""
    from workers.app import declare_topology

    app.conf.broker_connection_timeout = 2
    declare_topology(app)
    return app
