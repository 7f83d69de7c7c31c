"""The failover drills' parts, shared by tests/replicas/test_failover.py and
benchmarks/failover.py: a deployment on Patroni clusters, the submitting load and its ledger,
the three faults, and the ledger check."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import psycopg

from pipeline.errors import PhotopipeError
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.producer import Upload, submit
from pipeline.settings import Settings
from tests.faults.harness import FAST_RETRIES
from tests.replicas import patroni
from tests.services import S3Server
from tests.workers.harness import Deployment, photo, wait_until
from workers.app import make_app
from workers.publisher import CeleryPublisher

LOGICAL = 8
USERS = 64


@dataclass
class HA:
    etcd: patroni.Etcd
    catalog: patroni.Cluster
    shards: list[patroni.Cluster]


def deploy(tmp_path: Path, amqp_url: str, moto: S3Server, catalog: patroni.Cluster,
            shards: list[patroni.Cluster]) -> Deployment:
    name = f"t_{uuid.uuid4().hex[:10]}"
    catalog_url = catalog.create_database(name)
    shard_urls = [c.create_database(name) if c is not catalog else catalog_url
                  for c in shards]
    store = moto.store()
    env = {**os.environ, **moto.env(), **FAST_RETRIES, "PHOTOPIPE_BROKER_URL": amqp_url,
           "PHOTOPIPE_DATABASE_URL": catalog_url, "PHOTOPIPE_SUBMIT_PATIENCE": "120",
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    found = Deployment(env, store, cast(Any, ShardedMetadata(catalog_url, refresh=0.5)),
                       tmp_path)
    found.cli("shards", "init", "--logical", str(LOGICAL), *shard_urls)
    found.cli("db", "upgrade")
    return found


@dataclass
class Load:
    """Submits from ``threads`` threads until stopped; the ledger holds every id returned."""

    deployment: Deployment
    threads: int = 3
    pause: float = 0.05
    ledger: list[int] = field(default_factory=list)
    # (user, when the submit began, when it returned, whether it returned an id)
    calls: list[tuple[int, float, float, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self.running.append(thread)

    def _run(self, index: int) -> None:
        settings = Settings.from_env(self.deployment.env)
        publisher = CeleryPublisher(make_app(settings))
        db = ShardedMetadata(settings.database_url, refresh=0.5)
        n = index
        while not self.stop.is_set():
            user, began = n % USERS, time.monotonic()
            try:
                photo_id = submit(Upload(user, photo(n, size=(96, 72))), self.deployment.store,
                                  db, publisher, settings)
            except PhotopipeError:
                self.calls.append((user, began, time.monotonic(), False))
            else:
                self.ledger.append(photo_id)
                self.calls.append((user, began, time.monotonic(), True))
            n += self.threads
            time.sleep(self.pause)
        db.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.running:
            thread.join(180)
            assert not thread.is_alive(), "a submit still waiting 180 s after the drill"

    def on(self, users: set[int], after: float) -> list[tuple[int, float, float, bool]]:
        return [c for c in self.calls if c[0] in users and c[1] >= after]


def users_on(deployment: Deployment, cluster: patroni.Cluster) -> set[int]:
    """The users whose logical shard lives on ``cluster``."""
    db = cast(ShardedMetadata, deployment.db)
    shard_map = db.shard_map(now=True)
    assert shard_map is not None
    ports = {str(n.pg_port) for n in cluster.nodes}
    return {u for u in range(USERS)
            if set(re.findall(r":(\d+)", shard_map.url(u % LOGICAL))) & ports}


def commits(deployment: Deployment) -> Counter[str]:
    logs = "".join(p.read_text(errors="replace") for p in deployment.logs.glob("worker-*.log"))
    return Counter(re.findall(r"photo (\d+): ready", logs))


def missing(deployment: Deployment, ledger: list[int]) -> list[int]:
    """The ids of the ledger with no row (acknowledged and lost)."""
    return [p for p in ledger if deployment.db.get(p) is None]


def all_ready(deployment: Deployment, load: Load) -> None:
    """Every row ended ready once with its objects; nothing acknowledged is missing."""
    db = deployment.db

    def ended() -> bool:
        with suppress(PhotopipeError):
            counts = db.counts()
            return counts["queued"] + counts["processing"] == 0
        return False
    wait_until(ended, 240, "every photo to end")
    assert len(set(load.ledger)) == len(load.ledger), "an id was handed out twice"
    assert missing(deployment, load.ledger) == []
    counts = db.counts()
    assert counts["failed"] == 0 and counts["ready"] >= len(load.ledger), counts
    keys = set(deployment.store.list("photos/"))
    rendered = commits(deployment)
    for photo_id in load.ledger:
        row = db.get(photo_id)
        assert row is not None and row.status == "ready" and row.generation == 1, row
        renditions = db.renditions(photo_id)
        assert renditions and {r.key for r in renditions} <= keys
        assert rendered[str(photo_id)] == 1, (photo_id, rendered[str(photo_id)])
    assert db.outbox_size() == 0


def drill(deployment: Deployment, cluster: patroni.Cluster,
           fault: Callable[[patroni.Cluster], None]) -> dict[str, float]:
    """Load, ``fault`` on ``cluster``, load until the cluster is healthy and written to again;
    then the ledger check. Returns the recovery figures."""
    users = users_on(deployment, cluster)
    assert 0 < len(users) < USERS
    deployment.start_worker()
    deployment.start_worker()
    load = Load(deployment)
    load.start()
    try:
        time.sleep(2)
        before = cluster.leader().name
        fault_at = time.monotonic()
        fault(cluster)
        cluster.wait_healthy(120)
        wait_until(lambda: any(ok for *_, ok in load.on(users, fault_at)), 60,
                   "a submit on the failed shard server after the fault")
        time.sleep(1)
    finally:
        load.finish()
    assert cluster.leader().name != before, "no failover happened"
    during = load.on(users, fault_at - 1)
    assert during, "no submit went to the failed shard server during the drill"
    all_ready(deployment, load)
    # the longest time without a submit completing on the failed server, from the last one
    # before the fault to the first after it (or later, if writes stalled again)
    ends = sorted(end for _, _, end, ok in load.on(users, fault_at - 5) if ok)
    return {"write_gap": max(b - a for a, b in pairwise(ends) if b >= fault_at),
            "longest_wait": max(end - began for _, began, end, _ in during),
            "submits": len(load.ledger), "failed_submits": sum(not c[3] for c in load.calls)}


def kill_primary(cluster: patroni.Cluster) -> None:
    """(a) The primary's PostgreSQL and Patroni SIGKILLed together; once the standby has taken
    over, the lost node comes back (as a replaced host would) and rejoins as the standby."""
    old = cluster.leader()
    old.kill()
    wait_new_leader(cluster, old)
    old.start()


def freeze_primary(cluster: patroni.Cluster) -> None:
    """(b) The primary's Patroni SIGSTOPped: its PostgreSQL runs on (commits wait: its
    synchronous standby is leaving), the leader key expires, the standby takes over; then
    Patroni resumes, finds itself demoted, and turns its PostgreSQL into the new standby."""
    old = cluster.leader()
    old.freeze()
    try:
        wait_new_leader(cluster, old)
    finally:
        old.thaw()


def switchover(cluster: patroni.Cluster) -> None:
    """(c) A planned switchover to the standby."""
    old, new = cluster.leader(), cluster.replica()
    cluster.patronictl("switchover", "--leader", old.name, "--candidate", new.name, "--force")
    wait_new_leader(cluster, old)


def wait_new_leader(cluster: patroni.Cluster, old: patroni.Node) -> None:
    def moved() -> bool:
        with suppress(StopIteration):
            return cluster.leader() is not old
        return False
    wait_until(moved, 60, "the standby to take over")


def wal_receiver(node: patroni.Node) -> int:
    with psycopg.connect(node.url, autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_wal_receiver").fetchone()
    assert row is not None, "the standby has no WAL receiver"
    return int(row[0])
