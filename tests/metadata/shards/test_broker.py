"""Sharded metadata on the production path: RabbitMQ, two workers, S3, and 64 logical shards
over three PostgreSQL servers (the third behind pgbouncer in transaction mode). Photos land on
their users' shards; a shard moves while workers process its photos; a server stops and only
its photos wait."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from pipeline.errors import DatabaseUnavailable
from pipeline.metadata.shards.map import schema, shard_bits
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.producer import Upload, submit
from pipeline.settings import Settings
from tests.faults.harness import FAST_RETRIES
from tests.metadata.shards.cluster import Servers
from tests.metadata.shards.test_sharded import _direct, _schemas
from tests.services import S3Server
from tests.workers.harness import Deployment, photo, wait_until
from workers.app import make_app
from workers.publisher import CeleryPublisher

LOGICAL = 64


@pytest.fixture
def deployment(amqp_url: str, shard_urls: list[str], moto: S3Server,
               tmp_path: Path) -> Iterator[Deployment]:
    store = moto.store()
    env = {**os.environ, **moto.env(), **FAST_RETRIES, "PHOTOPIPE_BROKER_URL": amqp_url,
           "PHOTOPIPE_DATABASE_URL": shard_urls[0],
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    db = ShardedMetadata(shard_urls[0], refresh=0.5)
    found = Deployment(env, store, cast(Any, db), tmp_path)
    found.cli("shards", "init", "--logical", str(LOGICAL), *shard_urls)
    found.cli("db", "upgrade")
    yield found
    found.stop_all()
    db.close()


def _submit(deployment: Deployment, users: list[int], size: tuple[int, int] = (480, 360)
            ) -> dict[int, int]:
    """Photo id -> user, submitted through the producer API as the web tier does."""
    settings = Settings.from_env(deployment.env)
    publisher = CeleryPublisher(make_app(settings))
    return {submit(Upload(user, photo(n, size=size)), deployment.store, deployment.db,
                   publisher, settings): user for n, user in enumerate(users)}


def _ended(deployment: Deployment, ids: dict[int, int], seconds: float = 240) -> None:
    def done() -> bool:
        try:
            counts = deployment.db.counts()
        except DatabaseUnavailable:  # the test's own connection to a restarted server
            return False
        return counts["ready"] + counts["failed"] == len(ids) and counts["processing"] == 0
    wait_until(done, seconds, f"{len(ids)} photos to end")


def _commits(deployment: Deployment) -> Counter[str]:
    logs = "".join(p.read_text(errors="replace") for p in deployment.logs.glob("worker-*.log"))
    return Counter(re.findall(r"photo (\d+): ready", logs))


def _where(deployment: Deployment, photo_id: int, servers: Servers) -> str | None:
    """The server (client URL) whose shard schema holds the photo's row, looked up directly."""
    db = cast(ShardedMetadata, deployment.db)
    shard_map = db.shard_map(now=True)
    assert shard_map is not None
    for url in shard_map.databases():
        with psycopg.connect(_direct(url, servers), autocommit=True) as conn:
            found = conn.execute(f"SELECT to_regclass('{schema(shard_bits(photo_id))}.photos')"
                                 ).fetchone()
            if found and found[0] and conn.execute(
                    f"SELECT 1 FROM {schema(shard_bits(photo_id))}.photos WHERE id = %s",
                    (photo_id,)).fetchone():
                return url
    return None


def test_200_photos_land_on_their_users_shards_and_a_shard_moves_under_the_workers(
        deployment: Deployment, pg_servers: Servers, shard_urls: list[str]) -> None:
    db = cast(ShardedMetadata, deployment.db)
    shard_map = db.shard_map(now=True)
    assert shard_map is not None
    deployment.start_worker()
    deployment.start_worker()
    ids = _submit(deployment, list(range(200)))
    _ended(deployment, ids)
    assert deployment.status()["photos"] == {"queued": 0, "processing": 0, "ready": 200,
                                             "failed": 0}
    for photo_id, user in ids.items():
        assert shard_bits(photo_id) == user % LOGICAL
        assert _where(deployment, photo_id, pg_servers) == shard_map.url(user % LOGICAL)
    assert all(n == 1 for n in _commits(deployment).values())

    # a shard moved while the workers are rendering its photos
    shard, source = 5, shard_map.url(5)
    target = next(u for u in shard_urls if u != source)
    moving = _submit(deployment, [shard + LOGICAL * n for n in range(40)], size=(2400, 1800))
    wait_until(lambda: deployment.db.counts()["ready"] >= 204, 120, "the first renders")
    out = deployment.cli("shards", "move", str(shard), "--to", target, "--json")
    _ended(deployment, {**ids, **moving})
    for photo_id in moving:
        row = deployment.db.get(photo_id)
        assert row is not None and row.status == "ready" and row.error_code is None
    commits = _commits(deployment)
    assert all(commits[str(p)] == 1 for p in moving), commits  # each rendered once
    assert '"version": 2' in out.stdout
    assert schema(shard) not in _schemas(_direct(source, pg_servers))
    assert all(_where(deployment, p, pg_servers) == target for p in moving)
    assert deployment.db.outbox_size() == 0


def test_a_stopped_server_holds_up_only_its_own_photos(
        deployment: Deployment, pg_servers: Servers) -> None:
    db = cast(ShardedMetadata, deployment.db)
    shard_map = db.shard_map(now=True)
    assert shard_map is not None
    stopped = shard_map.url(30)  # the second server
    ids = _submit(deployment, list(range(0, 64, 2)))
    waiting = {p for p, user in ids.items() if shard_map.url(user % LOGICAL) == stopped}
    assert 0 < len(waiting) < len(ids)
    pg_servers.instances[1].stop("immediate")
    try:
        deployment.start_worker()
        deployment.start_worker()
        others = [p for p in ids if p not in waiting]
        wait_until(lambda: all((r := db.get(p)) is not None and r.status == "ready"
                               for p in others), 120, "the other servers' photos")
    finally:
        pg_servers.instances[1].start()
    _ended(deployment, ids, 180)
    for photo_id in waiting:
        row = db.get(photo_id)
        assert row is not None and row.status == "ready" and row.attempts == 1  # waited, free
