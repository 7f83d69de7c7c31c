"""The sharded metadata store on three real PostgreSQL servers (the third behind pgbouncer in
transaction mode): schemas per logical shard, placement by user, routing by id, fan-out,
a shard moved whole under writes, a server stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest

from pipeline.errors import DatabaseUnavailable
from pipeline.metadata import NewPhoto, RenditionRow, Selection, UploadRow
from pipeline.metadata.shards.admin import init
from pipeline.metadata.shards.catalog import MapExists
from pipeline.metadata.shards.map import schema, shard_bits
from pipeline.metadata.shards.move import MoveRefused, move
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.records import SourceInfo
from tests.metadata.shards.cluster import Servers
from tests.workers.harness import ROOT

T = TypeVar("T")
SOURCE = SourceInfo("JPEG", 4032, 3024, 2_000_000, 1, 1)


@pytest.fixture
def store(shard_urls: list[str]) -> Iterator[ShardedMetadata]:
    found = ShardedMetadata(shard_urls[0], refresh=0.2)
    init(found, 64, shard_urls)
    yield found
    found.close()


def _direct(url: str, servers: Servers) -> str:
    """The URL of the same database, not through pgbouncer."""
    for client, direct in zip(servers.client, servers.direct, strict=True):
        url = url.replace(f":{client}/", f":{direct}/")
    return url


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname ~ '^shard_[0-9]+$'")
        return {r[0] for r in rows}


def _photo(store: ShardedMetadata, user: int, ready: bool = True) -> int:
    photo_id = store.allocate_id(user)
    job = store.create(NewPhoto(photo_id, f"originals/{photo_id}", user_id=user))
    if ready:
        lease = store.start(job).lease
        store.finish(photo_id, lease, SOURCE, [RenditionRow(
            "w1080", "jpg", f"photos/{photo_id}/1.1/w1080.jpg", 1080, 810, 1000)])
    return photo_id


def test_each_server_holds_the_schemas_of_its_shards_with_their_own_ids(
        store: ShardedMetadata, shard_urls: list[str], pg_servers: Servers) -> None:
    shard_map = store.shard_map(now=True)
    assert shard_map is not None and shard_map.logical == 64 and shard_map.version == 1
    for url, shards in shard_map.databases().items():
        assert _schemas(_direct(url, pg_servers)) == {schema(s) for s in shards}
    for user in (0, 21, 22, 42, 63, 64 + 42):
        photo_id = store.allocate_id(user)
        assert shard_bits(photo_id) == user % 64
    with pytest.raises(MapExists):
        init(store, 64, shard_urls)


def test_photos_live_on_their_users_shard_and_every_call_routes_by_id(
        store: ShardedMetadata, pg_servers: Servers) -> None:
    shard_map = store.shard_map(now=True)
    assert shard_map is not None
    ids = {user: _photo(store, user, ready=user % 5 != 0) for user in range(0, 200, 3)}
    for user, photo_id in ids.items():
        url = _direct(shard_map.url(user % 64), pg_servers)
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute(f"SELECT user_id FROM {schema(user % 64)}.photos "
                                 "WHERE id = %s", (photo_id,)).fetchall()
        assert found == [(user,)]
        row = store.get(photo_id)
        assert row is not None and row.user_id == user
    counts = store.counts()
    assert counts["ready"] + counts["queued"] == len(ids) == sum(counts.values())
    assert counts["queued"] == sum(1 for u in ids if u % 5 == 0)
    everything = [r.id for r in store.scan(Selection(), 0, 1000)]
    assert everything == sorted(ids.values())
    paged, after = [], 0
    while page := store.scan(Selection(), after, 7):
        paged += [r.id for r in page]
        after = page[-1].id
    assert paged == everything
    assert [r.id for r in store.scan(Selection(user_id=42), 0, 10)] == [ids[42]]
    assert store.backlog().queued == counts["queued"] and store.outbox_size() == len(ids)
    published: list[int] = []
    assert store.relay(lambda job: published.append(job.photo_id), limit=1000) == len(ids)
    assert sorted(published) == sorted(ids.values())


def test_a_photo_off_its_users_shard_is_refused(store: ShardedMetadata) -> None:
    photo_id = store.allocate_id(3)
    with pytest.raises(ValueError, match="allocate_id"):
        store.create(NewPhoto(photo_id, "originals/x", user_id=4))


def test_a_shard_moves_whole_under_writes_and_the_old_copy_is_dropped(
        store: ShardedMetadata, shard_urls: list[str], pg_servers: Servers) -> None:
    shard_map = store.shard_map(now=True)
    assert shard_map is not None
    shard, source = 5, shard_map.url(5)
    target = next(u for u in shard_urls if u != source)
    before = [_photo(store, shard + 64 * n) for n in range(20)]
    other = _photo(store, 6)
    keyed, uploading, told = _the_rest(store, shard)
    writer = ShardedMetadata(shard_urls[0], refresh=0.2)  # another process's view of the map
    written, transient, stop = [], [], threading.Event()

    def retried(call: Callable[[], T]) -> T:
        while True:  # as a job would: a transient error is tried again
            try:
                return call()
            except DatabaseUnavailable:
                transient.append(1)
                time.sleep(0.05)

    def write_one(user: int) -> None:
        photo_id = retried(lambda: writer.allocate_id(user))
        job = retried(lambda: writer.create(NewPhoto(photo_id, "originals/x", user_id=user)))
        written.append(photo_id)
        lease = retried(lambda: writer.start(job).lease)
        retried(lambda: writer.finish(photo_id, lease, SOURCE, []))

    def keep_writing() -> None:
        n = 100
        while not stop.is_set():
            write_one(shard + 64 * n)
            n += 1

    thread = threading.Thread(target=keep_writing)
    thread.start()
    time.sleep(0.5)
    report = move(store, shard, target)
    time.sleep(0.5)
    stop.set()
    thread.join(30)
    writer.close()
    assert report["version"] == 2 and report["photos"] >= 20 and not report["resumed"]
    moved = store.shard_map(now=True)
    assert moved is not None and moved.url(shard) == target and moved.url(6) == shard_map.url(6)
    assert schema(shard) not in _schemas(_direct(source, pg_servers))
    assert schema(shard) in _schemas(_direct(target, pg_servers))
    for photo_id in before + written:  # every write landed once, on the new copy
        row = store.get(photo_id)
        assert row is not None and row.status == "ready", photo_id
    assert len(written) > 5 and store.get(other) is not None  # writes went on throughout
    with psycopg.connect(_direct(target, pg_servers), autocommit=True) as conn:
        count = conn.execute(f"SELECT count(*) FROM {schema(shard)}.photos").fetchone()
        counted = conn.execute(f"SELECT n FROM {schema(shard)}.upload_counts").fetchall()
    assert count == (len(before) + len(written) + 1,) and counted == [(1,)]
    assert store.keyed(shard, "retry-1") == keyed
    assert store.get_upload(uploading) == UploadRow(uploading, shard, 2e9, 3, '{"offset": 7}')
    assert [(w.photo_id, w.event) for w in store.due_webhooks(10, 30)
            if w.photo_id == told] == [(told, "photo.deleted")]


def _the_rest(store: ShardedMetadata, shard: int) -> tuple[int, int, int]:
    """What else a shard holds, one of each: an idempotency key, a minute's upload count, an
    upload in progress, a webhook waiting (every table of the schema goes with a move)."""
    keyed = store.allocate_id(shard)
    store.create(NewPhoto(keyed, "originals/k", user_id=shard), idempotency_key="retry-1")
    store.count_upload(shard)
    uploading = store.allocate_id(shard)
    store.open_upload(UploadRow(uploading, shard, 2e9, 3, '{"offset": 7}'))
    told = _photo(store, shard)
    store.delete(told, notify=True)
    return keyed, uploading, told


def test_a_move_resumes_after_a_crash_and_refuses_to_run_twice(
        store: ShardedMetadata, shard_urls: list[str]) -> None:
    shard_map = store.shard_map(now=True)
    assert shard_map is not None
    target = next(u for u in shard_urls if u != shard_map.url(9))
    photo_id = _photo(store, 9)
    with store.catalog_store.transaction() as cur:  # a mover that died mid-copy long ago
        cur.execute("INSERT INTO shardmap.moves (shard, source, target, state, owner, "
                    "updated_at) VALUES (9, %s, %s, 'copying', 'gone:1:x', "
                    "now() - interval '5 minutes')", (shard_map.url(9), target))
    report = move(store, 9, target)
    assert report["resumed"] and report["photos"] == 1 and store.get(photo_id) is not None
    with store.catalog_store.transaction() as cur:  # one running right now, elsewhere
        cur.execute("INSERT INTO shardmap.moves (shard, source, target, state, owner) "
                    "VALUES (10, %s, %s, 'copying', 'busy:2:y')",
                    (shard_map.url(10), target))
    with pytest.raises(MoveRefused, match="being moved"):
        move(store, 11, target)
    with pytest.raises(MoveRefused, match="is running"):
        move(store, 10, target)


def test_a_stopped_server_stalls_only_its_shards(
        store: ShardedMetadata, pg_servers: Servers) -> None:
    shard_map = store.shard_map(now=True)
    assert shard_map is not None
    on_second = shard_map.databases()[shard_map.url(30)]
    elsewhere = [u for u in range(64) if u not in on_second][:5]
    pending = _photo(store, on_second[0], ready=False)
    pg_servers.instances[1].stop("immediate")
    try:
        for user in elsewhere:  # the other servers' shards carry on
            assert store.get(_photo(store, user)) is not None
        with pytest.raises(DatabaseUnavailable):
            store.get(pending)
        with pytest.raises(DatabaseUnavailable):
            store.counts()
    finally:
        pg_servers.instances[1].start()
    row = store.get(pending)
    assert row is not None and row.status == "queued"


def test_shards_commands(shard_urls: list[str]) -> None:
    env = {**os.environ, "PHOTOPIPE_DATABASE_URL": shard_urls[0]}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", "shards", *args], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              check=False)

    assert cli("list").returncode == 1  # no map yet
    made = cli("init", "--logical", "16", *shard_urls)
    assert made.returncode == 0, made.stderr
    assert "16 logical shards" in made.stdout
    assert cli("init", "--logical", "16", *shard_urls).returncode == 1
    listed: dict[str, Any] = json.loads(cli("list", "--json").stdout)
    assert (listed["version"], listed["logical"]) == (1, 16)
    assert [s["url"] for s in listed["shards"]] == [shard_urls[n * 3 // 16] for n in range(16)]
    moved = cli("move", "0", "--to", shard_urls[2], "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["version"] == 2
    assert json.loads(cli("list", "--json").stdout)["shards"][0]["url"] == shard_urls[2]
    upgraded = subprocess.run([sys.executable, "-m", "pipeline.cli", "db", "upgrade"], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              check=False)
    assert upgraded.returncode == 0, upgraded.stderr


def test_a_relay_round_finds_outboxes_with_jobs_beyond_its_sweep(
        store: ShardedMetadata, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.metadata.shards import store as sharded

    monkeypatch.setattr(sharded, "RELAY_SWEEP", 4)
    ids = {store.allocate_id(user) for user in (10, 40)}
    for photo_id in ids:
        store.create(NewPhoto(photo_id, "originals/x", user_id=sharded_user(photo_id)))

    deadline = time.monotonic() + 20
    while not {10, 40} <= store.pending_outboxes():  # the statistics lag by about a second
        assert time.monotonic() < deadline, "statistics never showed the outboxes"
        time.sleep(0.2)
    store._sweeps["outbox"] = 0  # the next round sweeps shards 0-3 only
    published: list[int] = []
    assert store.relay(lambda job: published.append(job.photo_id)) == 2
    assert set(published) == ids


def sharded_user(photo_id: int) -> int:
    return shard_bits(photo_id)
