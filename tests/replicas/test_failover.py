"""Failover drills under load: the catalog and two shard servers, each a Patroni cluster of two
PostgreSQL nodes in ``synchronous_mode_strict``, one etcd member; RabbitMQ, two workers, moto.

Submits run from several threads (the web tier); each id a submit returned is written to a
ledger. Then, on one shard server: (a) its primary's PostgreSQL and Patroni are killed
together, (b) its primary's Patroni is frozen (SIGSTOP) until the standby has taken over, (c) a
planned ``patronictl switchover``. Afterwards every ledger id is a row, every row ended
``ready`` once with its objects, no id names two photos, the outbox is empty and the workers'
logs show each render committed once.

The negative control runs the same drill against asynchronous replication with the standby's
WAL receiver stopped before the kill: acknowledged submits are lost, and the ledger check says
so (it can fail).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import pytest

from pipeline.metadata.shards.map import shard_bits
from pipeline.metadata.shards.store import ShardedMetadata
from tests.replicas import patroni
from tests.replicas.drills import (
    HA,
    LOGICAL,
    Load,
    deploy,
    drill,
    freeze_primary,
    kill_primary,
    missing,
    switchover,
    users_on,
    wait_new_leader,
    wal_receiver,
)
from tests.services import S3Server
from tests.workers.harness import wait_until


@pytest.fixture(scope="module")
def ha() -> Iterator[HA]:
    with ExitStack() as stack:
        store = stack.enter_context(patroni.etcd())
        clusters = [stack.enter_context(patroni.cluster(name, store))
                    for name in ("catalog", "shard-a", "shard-b")]
        yield HA(store, clusters[0], clusters[1:])


@pytest.mark.parametrize("fault", [kill_primary, freeze_primary, switchover],
                         ids=["kill", "freeze", "switchover"])
def test_a_failover_under_load_loses_and_duplicates_nothing(
        ha: HA, amqp_url: str, moto: S3Server, tmp_path: Path,
        fault: Callable[[patroni.Cluster], None]) -> None:
    deployment = deploy(tmp_path, amqp_url, moto, ha.catalog, ha.shards)
    try:
        figures = drill(deployment, ha.shards[1], fault)
    finally:
        deployment.stop_all()
        cast(ShardedMetadata, deployment.db).close()
    print(f"{fault.__name__}: {figures}")


def test_the_ledger_check_fails_with_asynchronous_replication(
        ha: HA, amqp_url: str, moto: S3Server, tmp_path: Path) -> None:
    """The negative control: the standby of an asynchronous cluster stops receiving WAL, the
    primary is killed, the standby takes over: submits that returned ids are gone."""
    with patroni.cluster("shard-async", ha.etcd, synchronous=False) as lossy:
        deployment = deploy(tmp_path, amqp_url, moto, ha.catalog, [ha.shards[0], lossy])
        try:
            users = users_on(deployment, lossy)
            deployment.start_worker()
            load = Load(deployment)
            load.start()
            try:
                time.sleep(1)
                old, standby = lossy.leader(), lossy.replica()
                receiver = wal_receiver(standby)
                os.kill(receiver, signal.SIGSTOP)  # the standby receives nothing more
                time.sleep(1.5)
                old.kill()
                os.kill(receiver, signal.SIGKILL)  # what it had not read is gone with it
                wait_new_leader(lossy, old)
                wait_until(lambda: any(ok for *_, ok in load.on(users, time.monotonic() - 1)),
                           60, "a submit on the promoted standby")
            finally:
                load.finish()
            acknowledged = [p for p in load.ledger if shard_bits(p) in
                            {u % LOGICAL for u in users}]
            lost = missing(deployment, load.ledger)
            print(f"control: {len(lost)} of {len(acknowledged)} acknowledged submits on the "
                  "asynchronous server lost (WAL receiver stopped 1.5 s before the kill)")
            assert lost and set(lost) <= set(acknowledged)
        finally:
            deployment.stop_all()
            cast(ShardedMetadata, deployment.db).close()
