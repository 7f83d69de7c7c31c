"""The metadata port over the shard map: each call routed to its shard's database and schema,
and what spans shards fanned out, in parallel across databases, then merged.

Without a map in the catalog (``photopipe shards init`` never ran), every call goes to the
one database's own schema: the simple case, unchanged. The map is cached and its version
re-read every ``refresh`` seconds; a shard that answers that it moved (:class:`ShardMoved`)
makes the map be read again at once, and the call is made again where the map now says.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pipeline.errors import DatabaseRejected, DatabaseUnavailable
from pipeline.metadata.port import (
    STATUSES,
    Backlog,
    Claim,
    NewPhoto,
    PhotoRow,
    Publish,
    Reader,
    RenditionRow,
    Rerender,
    Run,
    Selection,
    Server,
    Status,
    UploadRow,
    Webhook,
)
from pipeline.metadata.postgres import Link, PostgresMetadata, ShardMoved, standby_link
from pipeline.metadata.shards import spanning
from pipeline.metadata.shards.catalog import Catalog
from pipeline.metadata.shards.map import ShardMap, schema
from pipeline.records import Job, SourceInfo

T = TypeVar("T")
RELAY_SWEEP = 64  # outboxes a relay round visits in turn, beyond those with jobs
UNION_CHUNK = 128  # shards' schemas per statement of a fan-out


@dataclass
class _Cached:
    """The shard map as last read, shared by a store and the readers it hands out."""

    map: ShardMap | None = None
    read_at: float = -1e9


class ShardedMetadata:
    """A :class:`~pipeline.metadata.MetadataStore` over the shard map in ``url``'s catalog.

    With ``standby_max_lag`` (reads from standbys on), each server whose URL lists several
    hosts gets a second connection, to a standby, for :meth:`reader`'s reads."""

    def __init__(self, url: str, *, statement_timeout_ms: int = 30_000,
                 lock_timeout_ms: int = 10_000, connect_timeout: int = 10,
                 refresh: float = 5.0, fan_out_timeout: float = 60.0,
                 parallel: int = 8, standby_max_lag: float | None = None) -> None:
        self.statement_timeout_ms, self.lock_timeout_ms = statement_timeout_ms, lock_timeout_ms
        self.connect_timeout, self.refresh = connect_timeout, refresh
        self.fan_out_timeout, self.standby_max_lag = fan_out_timeout, standby_max_lag
        self.catalog_store = PostgresMetadata(url, connect_timeout=connect_timeout,
                                              statement_timeout_ms=statement_timeout_ms,
                                              lock_timeout_ms=lock_timeout_ms,
                                              standby_max_lag=standby_max_lag)
        self.catalog = Catalog(self.catalog_store)
        self._links: dict[str, Link] = {url: self.catalog_store.link}
        self._standbys: dict[str, Link | None] = {url: self.catalog_store.standby}
        self._views: dict[tuple[int, str], PostgresMetadata] = {}
        self._cached = _Cached()
        self._reading: tuple[str | None] | None = None  # (after,) on the views reader() makes
        self._sweeps: dict[str, int] = {}  # where the next round of each outbox starts
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="photopipe-shards")

    def reader(self, *, after: str | None = None) -> Reader:
        """This store, its reads on each server's standby when fresh enough (``after``: a
        position from the server the reads go to, from :meth:`position`)."""
        if self.standby_max_lag is None:
            return self
        view = copy.copy(self)  # the same map, connections and pool
        view._reading = (after,)
        view.catalog_store = self.catalog_store.reading(after)
        return view

    def position(self, photo_id: int) -> str | None:
        return self._routed(photo_id, lambda s: s.position(photo_id))

    # -- the map ---------------------------------------------------------------------------

    def shard_map(self, *, now: bool = False) -> ShardMap | None:
        """The map as last read (again when ``refresh`` seconds passed, or ``now``); None when
        the catalog holds none."""
        cached = self._cached
        with self._lock:
            if now or time.monotonic() - cached.read_at >= self.refresh:
                version = self.catalog.version()
                if version is None:
                    cached.map = None
                elif cached.map is None or cached.map.version != version:
                    cached.map = self.catalog.read()
                cached.read_at = time.monotonic()
            return cached.map

    def view(self, shard: int, url: str | None = None) -> PostgresMetadata:
        """The store of logical shard ``shard`` on ``url`` (default: where the map says)."""
        shard_map = self.shard_map()
        if shard_map is None:
            raise ValueError("this database holds no shard map")
        url = url or shard_map.url(shard)
        with self._lock:
            view = self._views.get((shard, url))
            if view is None:
                view = self._new_view(url, schema(shard), shard)
                self._views[(shard, url)] = view
        return view if self._reading is None else view.reading(self._reading[0])

    def _new_view(self, url: str, name: str | None, shard: int) -> PostgresMetadata:
        """A store on ``url``'s shared connections (called holding the lock)."""
        link = self._links.setdefault(url, Link(url, connect_timeout=self.connect_timeout))
        if url not in self._standbys:
            self._standbys[url] = None if self.standby_max_lag is None else \
                standby_link(url, connect_timeout=self.connect_timeout)
        return PostgresMetadata(url, schema=name, shard=shard, link=link,
                                statement_timeout_ms=self.statement_timeout_ms,
                                lock_timeout_ms=self.lock_timeout_ms,
                                standby_max_lag=self.standby_max_lag,
                                standby=self._standbys[url])

    def _routed(self, photo_id: int, call: Callable[[PostgresMetadata], T]) -> T:
        """``call`` on the store holding ``photo_id``; once more where the map says if the
        shard answers that it moved."""
        shard_map = self.shard_map()
        if shard_map is None:
            return call(self.catalog_store)
        return self._on_shard(shard_map, shard_map.of_photo(photo_id), call)

    def _on_shard(self, shard_map: ShardMap, shard: int,
                  call: Callable[[PostgresMetadata], T]) -> T:
        try:
            return call(self.view(shard))
        except ShardMoved:
            fresh = self.shard_map(now=True)
            if fresh is None or fresh.url(shard) == shard_map.url(shard):
                raise  # moving now: transient, the caller retries
            return call(self.view(shard))

    def each_shard(self, call: Callable[[PostgresMetadata], T], *,
                   timeout: float | None = -1) -> list[T]:
        """``call``'s answer for every logical shard, in shard order (see :meth:`_each`;
        ``timeout`` None waits as long as it takes, for the tools' long operations)."""
        shard_map = self.shard_map()
        if shard_map is None:
            return []
        by_database = self._fan_out(shard_map, call, timeout)
        order = [s for shards in shard_map.databases().values() for s in shards]
        found = dict(zip(order, by_database, strict=True))
        return [found[shard] for shard in range(shard_map.logical)]

    def _each(self, call: Callable[[PostgresMetadata], T]) -> list[T]:
        """``call`` on every shard's store: one task per database, in parallel, each going
        through its shards in turn, all within ``fan_out_timeout``."""
        shard_map = self.shard_map()
        if shard_map is None:
            return [call(self.catalog_store)]
        try:
            return self._fan_out(shard_map, call)
        except ShardMoved:
            return self._fan_out(self.shard_map(now=True) or shard_map, call)

    def _fan_out(self, shard_map: ShardMap, call: Callable[[PostgresMetadata], T],
                 timeout: float | None = -1) -> list[T]:
        def one_database(url: str, shards: list[int]) -> list[T]:
            return [call(self.view(shard, url)) for shard in shards]

        futures = [self._pool.submit(one_database, url, shards)
                   for url, shards in shard_map.databases().items()]
        limit = self.fan_out_timeout if timeout == -1 else timeout
        pending = wait(futures, timeout=limit).not_done
        if pending:
            raise DatabaseUnavailable(f"{len(pending)} of {len(futures)} databases gave no "
                                      f"answer within {limit:.0f} s")
        return [result for future in futures for result in future.result()]

    # -- the port: by photo ------------------------------------------------------------------

    def upgrade(self) -> int:
        version = self.catalog_store.upgrade()  # the catalog's own schema: runs
        if self.shard_map(now=True) is not None:  # thousands of schemas: minutes, not seconds
            self.each_shard(lambda view: view.upgrade(), timeout=None)
        return version

    def allocate_id(self, user_id: int | None = None) -> int:
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.allocate_id()
        # No user to place by (a tool's own photo): logical shard 0.
        return self.view(shard_map.of_user(user_id) if user_id is not None else 0).allocate_id()

    def create(self, photo: NewPhoto, *, enqueue: bool = True,
               idempotency_key: str | None = None) -> Job:
        """Raises ValueError for a photo whose id is not on its user's shard (ids come from
        :meth:`allocate_id` with the user's id)."""
        shard_map = self.shard_map()
        if shard_map is not None and photo.user_id is not None and \
                shard_map.of_user(photo.user_id) != shard_map.of_photo(photo.id):
            raise ValueError(f"photo {photo.id} is on logical shard "
                             f"{shard_map.of_photo(photo.id)}, its user {photo.user_id} on "
                             f"{shard_map.of_user(photo.user_id)}: allocate the id with "
                             "allocate_id(user_id)")
        return self._routed(photo.id, lambda s: s.create(photo, enqueue=enqueue,
                                                         idempotency_key=idempotency_key))

    def count_upload(self, user_id: int) -> tuple[int, float]:
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.count_upload(user_id)
        return self._on_shard(shard_map, shard_map.of_user(user_id),
                              lambda s: s.count_upload(user_id))

    def keyed(self, user_id: int, key: str) -> int | None:
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.keyed(user_id, key)
        return self._on_shard(shard_map, shard_map.of_user(user_id),
                              lambda s: s.keyed(user_id, key))

    def start(self, job: Job, *, refund: int | None = None) -> Claim:
        return self._routed(job.photo_id, lambda s: s.start(job, refund=refund))

    def finish(self, photo_id: int, lease: int, source: SourceInfo,
               renditions: Sequence[RenditionRow], spec: str | None = None, *,
               notify: bool = False, placeholder: str | None = None
               ) -> list[RenditionRow] | None:
        return self._routed(photo_id, lambda s: s.finish(photo_id, lease, source, renditions,
                                                         spec, notify=notify,
                                                         placeholder=placeholder))

    def set_placeholder(self, photo_id: int, lease: int, placeholder: str) -> bool:
        return self._routed(photo_id, lambda s: s.set_placeholder(photo_id, lease,
                                                                  placeholder))

    def fail(self, photo_id: int, lease: int, code: str, message: str, *,
             notify: bool = False) -> list[RenditionRow] | None:
        return self._routed(photo_id, lambda s: s.fail(photo_id, lease, code, message,
                                                       notify=notify))

    def retry_later(self, photo_id: int, lease: int, code: str, message: str) -> bool:
        return self._routed(photo_id, lambda s: s.retry_later(photo_id, lease, code, message))

    def note(self, photo_id: int, code: str, message: str) -> None:
        self._routed(photo_id, lambda s: s.note(photo_id, code, message))

    def requeue(self, job: Job) -> bool:
        return self._routed(job.photo_id, lambda s: s.requeue(job))

    def get(self, photo_id: int) -> PhotoRow | None:
        return self._routed(photo_id, lambda s: s.get(photo_id))

    def delete(self, photo_id: int, *,
               notify: bool = False) -> tuple[PhotoRow, list[RenditionRow]] | None:
        return self._routed(photo_id, lambda s: s.delete(photo_id, notify=notify))

    def end_webhook(self, photo_id: int, webhook_id: int) -> None:
        self._routed(photo_id, lambda s: s.end_webhook(photo_id, webhook_id))

    def retry_webhook(self, photo_id: int, webhook_id: int, delay: float, error: str) -> None:
        self._routed(photo_id, lambda s: s.retry_webhook(photo_id, webhook_id, delay, error))

    def photos_of(self, user_id: int, before: int | None, limit: int) -> list[PhotoRow]:
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.photos_of(user_id, before, limit)
        return self._on_shard(shard_map, shard_map.of_user(user_id),
                              lambda s: s.photos_of(user_id, before, limit))

    def renditions(self, photo_id: int) -> list[RenditionRow]:
        return self._routed(photo_id, lambda s: s.renditions(photo_id))

    def open_upload(self, upload: UploadRow) -> None:
        self._routed(upload.photo_id, lambda s: s.open_upload(upload))

    def get_upload(self, photo_id: int) -> UploadRow | None:
        return self._routed(photo_id, lambda s: s.get_upload(photo_id))

    def put_upload(self, photo_id: int, version: int, state: str) -> bool:
        return self._routed(photo_id, lambda s: s.put_upload(photo_id, version, state))

    def drop_upload(self, photo_id: int) -> UploadRow | None:
        return self._routed(photo_id, lambda s: s.drop_upload(photo_id))

    # -- the port: across shards ------------------------------------------------------------

    def relay(self, publish: Publish, *, limit: int = 100, photo_id: int | None = None) -> int:
        if photo_id is not None:
            return self._routed(photo_id, lambda s: s.relay(publish, limit=limit,
                                                            photo_id=photo_id))
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.relay(publish, limit=limit)
        sent = 0  # one shard after another: publish is not called from two threads at once
        for shard in self._to_visit(shard_map, "outbox"):
            if sent >= limit:
                break
            sent += self.view(shard).relay(publish, limit=limit - sent)
        return sent

    def pending_outboxes(self, table: str = "outbox") -> set[int]:
        """The shards whose outbox (or ``webhooks``) holds rows, by the servers' statistics
        (which lag)."""
        return {int(row["schemaname"].removeprefix("shard_"))
                for row in self._per_database("SELECT 1",
                                              spanning.PENDING.format(table=table))}

    def _to_visit(self, shard_map: ShardMap, table: str) -> list[int]:
        """The shards whose ``table`` (an outbox) the server's statistics say holds rows, and
        the next ``RELAY_SWEEP`` shards in turn (statistics lag by up to seconds, and are lost
        in a crash): a round is a query per database and a few shards, not one transaction
        per logical shard, and every outbox is still visited every few rounds."""
        hinted = self.pending_outboxes(table)
        with self._lock:
            start = self._sweeps.get(table, 0) % shard_map.logical
            self._sweeps[table] = start + RELAY_SWEEP
        swept = {(start + n) % shard_map.logical
                 for n in range(min(RELAY_SWEEP, shard_map.logical))}
        return sorted(s for s in hinted | swept if s < shard_map.logical)

    def outbox_size(self) -> int:
        return self.backlog().outbox

    def due_webhooks(self, limit: int, lease: float) -> list[Webhook]:
        """From the shards visited as the relay visits outboxes (a webhook's id is its shard's
        own: the photo id routes the rest)."""
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.due_webhooks(limit, lease)
        found: list[Webhook] = []
        for shard in self._to_visit(shard_map, "webhooks"):
            if len(found) >= limit:
                break
            found += self.view(shard).due_webhooks(limit - len(found), lease)
        return found

    def expired_uploads(self, now: float, limit: int) -> list[UploadRow]:
        found = [u for shard in self._each(lambda s: s.expired_uploads(now, limit))
                 for u in shard]
        return sorted(found, key=lambda u: u.expires)[:limit]

    def backlog(self) -> Backlog:
        if self.shard_map() is None:
            return self.catalog_store.backlog()
        rows = self._per_database(spanning.BACKLOG_BRANCH, spanning.BACKLOG)
        def oldest(column: str) -> float | None:
            return spanning.oldest(spanning.age(r[column]) for r in rows)

        return Backlog(sum(int(r["q"] or 0) for r in rows), oldest("oq"),
                       sum(int(r["o"] or 0) for r in rows), oldest("oo"), oldest("ow"))

    def replication(self) -> list[Server]:
        """The catalog's server, then every shard server's, in the map's order."""
        shard_map = self.shard_map()
        urls = [] if shard_map is None else [
            u for u in shard_map.databases() if u != self.catalog_store.url]
        return [*self.catalog_store.replication(),
                *(s for u in urls for s in self._database(u).replication())]

    def stuck(self, queued_for: float, processing_for: float, limit: int) -> list[Job]:
        if self.shard_map() is None:
            return self.catalog_store.stuck(queued_for, processing_for, limit)
        rows = self._per_database(spanning.stuck_branch(queued_for, processing_for, limit),
                                  spanning.stuck(limit))
        rows.sort(key=lambda r: (r["updated_at"], r["id"]))
        return [Job(int(r["id"]), int(r["generation"])) for r in rows[:limit]]

    def requeue_stuck(self, jobs: Sequence[Job], queued_for: float,
                      processing_for: float) -> list[Job]:
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.requeue_stuck(jobs, queued_for, processing_for)
        by_shard: dict[int, list[Job]] = {}
        for job in jobs:
            by_shard.setdefault(shard_map.of_photo(job.photo_id), []).append(job)
        queued: list[Job] = []
        for group in by_shard.values():
            def requeue(store: PostgresMetadata, group: list[Job] = group) -> list[Job]:
                return store.requeue_stuck(group, queued_for, processing_for)

            queued += self._routed(group[0].photo_id, requeue)
        return queued

    def take_turn(self, name: str, holder: str, seconds: float) -> bool:
        return self.catalog_store.take_turn(name, holder, seconds)

    def counts(self) -> dict[str, int]:
        if self.shard_map() is None:
            return self.catalog_store.counts()
        found: dict[str, int] = {status: 0 for status in STATUSES}
        for row in self._per_database(spanning.COUNTS_BRANCH, spanning.COUNTS):
            found[row["status"]] += int(row["n"])
        return found

    def _per_database(self, branch: str, outer: str) -> list[dict[str, Any]]:
        """Statements over many shards at once (``branch`` for each shard's schema ``{s}``,
        joined by UNION ALL as ``{rows}`` in ``outer``): a round trip per ``UNION_CHUNK``
        shards of a database, not one per shard. The databases in parallel."""
        def run(shard_map: ShardMap) -> list[dict[str, Any]]:
            def one_database(url: str, shards: list[int]) -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = []
                # a statement locks every table it reads until its transaction ends: chunks
                # stay well inside the server's lock table (max_locks_per_transaction)
                for at in range(0, len(shards), UNION_CHUNK):
                    rows = " UNION ALL ".join(branch.format(s=f'"{schema(n)}"')
                                              for n in shards[at:at + UNION_CHUNK])
                    with self._database(url).transaction() as cur:
                        cur.execute(outer.format(rows=rows))
                        found += cur.fetchall()
                return found

            futures = [self._pool.submit(one_database, url, shards)
                       for url, shards in shard_map.databases().items()]
            if wait(futures, timeout=self.fan_out_timeout).not_done:
                raise DatabaseUnavailable(f"a database gave no answer within "
                                          f"{self.fan_out_timeout:.0f} s")
            return [row for future in futures for row in future.result()]

        shard_map = self.shard_map()
        assert shard_map is not None
        try:
            return run(shard_map)
        except DatabaseRejected:  # a schema gone: a shard moved since the map was read
            fresh = self.shard_map(now=True)
            if fresh is None or fresh.version == shard_map.version:
                raise
            return run(fresh)

    def _database(self, url: str) -> PostgresMetadata:
        """A store on ``url`` in no shard's schema, for statements naming their schemas."""
        with self._lock:
            view = self._views.get((-1, url))
            if view is None:
                view = self._new_view(url, None, 0)
                self._views[(-1, url)] = view
        return view if self._reading is None else view.reading(self._reading[0])

    def scan(self, selection: Selection, after: int, limit: int) -> list[PhotoRow]:
        shard_map = self.shard_map()
        if shard_map is not None and selection.user_id is not None:  # one user: one shard
            shard = shard_map.of_user(selection.user_id)
            return self.view(shard).scan(selection, after, limit)
        return spanning.merged(self._each(lambda s: s.scan(selection, after, limit)), limit)

    def regenerate(self, run_id: int, photos: Sequence[Rerender], *, cursor: int,
                   enqueue: bool = True) -> list[Job]:
        """Each shard's part in its own transaction, then the run's cursor in the catalog: a
        batch resumed after a crash skips the photos its run already regenerated."""
        shard_map = self.shard_map()
        if shard_map is None:
            return self.catalog_store.regenerate(run_id, photos, cursor=cursor,
                                                 enqueue=enqueue)
        groups: dict[int, list[Rerender]] = {}
        for photo in photos:
            groups.setdefault(shard_map.of_photo(photo.photo_id), []).append(photo)
        jobs: list[Job] = []
        for _, group in sorted(groups.items()):
            jobs += self._regenerate(run_id, group, cursor, enqueue)
        with self.catalog_store.transaction() as cur:
            cur.execute("UPDATE reprocess_runs SET cursor = %s, enqueued = enqueued + %s, "
                        "updated_at = now() WHERE id = %s", (cursor, len(jobs), run_id))
        return sorted(jobs, key=lambda j: j.photo_id)

    def _regenerate(self, run_id: int, group: list[Rerender], cursor: int,
                    enqueue: bool) -> list[Job]:
        def call(store: PostgresMetadata) -> list[Job]:
            return store.regenerate(run_id, group, cursor=cursor, enqueue=enqueue)

        return self._routed(group[0].photo_id, call)

    def create_run(self, key: str, selection: str, changes: str, mode: str) -> Run:
        return self.catalog_store.create_run(key, selection, changes, mode)

    def find_run(self, key: str) -> Run | None:
        return self.catalog_store.find_run(key)

    def get_run(self, run_id: int) -> Run | None:
        return self.catalog_store.get_run(run_id)

    def runs(self, limit: int = 50) -> list[Run]:
        return self.catalog_store.runs(limit)

    def end_run(self, run_id: int, state: Literal["done", "cancelled"]) -> None:
        self.catalog_store.end_run(run_id, state)

    def tally(self, run_id: int) -> dict[tuple[str, str | None], int]:
        total: dict[tuple[str, str | None], int] = {}
        for found in self._each(lambda s: s.tally(run_id)):
            for key, n in found.items():
                total[key] = total.get(key, 0) + n
        return total

    def run_photos(self, run_id: int, statuses: Sequence[Status], after: int,
                   limit: int) -> list[PhotoRow]:
        return spanning.merged(self._each(lambda s: s.run_photos(run_id, statuses, after, limit)),
                       limit)

    def close(self) -> None:
        with self._lock:
            links = [*self._links.values(), *(s for s in self._standbys.values() if s)]
        for link in links:
            link.close()

