"""Failover drills measured, and what synchronous commits cost here.

    .venv/bin/python -m benchmarks.failover [RUNS] [SUBMITS]

Drills (the tests' own, tests/replicas/drills.py): one etcd member; the catalog and two shard
servers, each a Patroni cluster of two PostgreSQL nodes in ``synchronous_mode_strict``
(``ttl`` 8 s, ``loop_wait`` 1 s); RabbitMQ, two workers, moto; submits from three threads
into a ledger. On the second shard server, RUNS times each: the primary's PostgreSQL and
Patroni killed together (the node comes back once the standby has taken over), the primary's
Patroni frozen until the standby has taken over, a planned ``patronictl switchover``. Every run
ends with the ledger check (nothing lost, nothing twice, each render committed once), or the
benchmark stops. Per run: the write gap (the longest time without a submit completing on that
server, around the fault) and the longest single submit there.

Cost: producer submits (8 threads, originals in memory, a publisher that only records) and a
job's metadata calls (start, finish with five renditions; 8 threads), against one Patroni
cluster with synchronous replication, the same with asynchronous replication, and a lone
PostgreSQL with no standby, in one run. Every server here has ``fsync`` off (the tests' own
setting; a process crash loses nothing with it): the figures are replication's cost, not the
disk's.

Writes benchmarks/results/failover.{md,json}.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg

from benchmarks.common import in_threads, machine, write
from benchmarks.shards import THREADS, one_job, submits
from pipeline.metadata.shards.admin import init
from pipeline.metadata.shards.store import ShardedMetadata
from tests import private, services
from tests.replicas import drills, patroni

T = TypeVar("T")
FAULTS: dict[str, Callable[[patroni.Cluster], None]] = {
    "kill": drills.kill_primary, "freeze": drills.freeze_primary,
    "switchover": drills.switchover}


def run_drills(runs: int) -> dict[str, Any]:
    found: dict[str, list[dict[str, float]]] = {name: [] for name in FAULTS}
    with ExitStack() as stack:
        store = stack.enter_context(patroni.etcd())
        catalog, *shards = [stack.enter_context(patroni.cluster(name, store))
                            for name in ("catalog", "shard-a", "shard-b")]
        moto = stack.enter_context(_entered(services.moto_server()))
        for _ in range(runs):
            for name, fault in FAULTS.items():
                with _entered(services.rabbit_vhost()) as amqp, \
                        tempfile.TemporaryDirectory() as folder:
                    deployment = drills.deploy(Path(folder), amqp, moto, catalog, shards)
                    try:
                        figures = drills.drill(deployment, shards[1], fault)
                    finally:
                        deployment.stop_all()
                        cast(ShardedMetadata, deployment.db).close()
                print(f"{name}: {figures}", file=sys.stderr, flush=True)
                found[name].append(figures)
    return {name: _summary(runs_) for name, runs_ in found.items()}


@contextmanager
def _entered(generator: Iterator[T]) -> Iterator[T]:
    """A context manager over one of tests/services.py's generator fixtures."""
    yield from generator


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    def of(key: str) -> dict[str, float]:
        values = [r[key] for r in runs]
        return {"p50": statistics.median(values), "worst": max(values)}
    return {"runs": len(runs), "write_gap_s": of("write_gap"),
            "longest_wait_s": of("longest_wait"),
            "submits": sum(int(r["submits"]) for r in runs), "lost": 0, "duplicated": 0}


def _database(url: str) -> str:
    name = f"b_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


def jobs(url: str, count: int) -> dict[str, Any]:
    """A job's metadata calls from THREADS threads, each its own store."""
    store = ShardedMetadata(url)
    init(store, 64, [url])
    store.close()
    def worker(index: int) -> int:
        db = ShardedMetadata(url)
        for n in range(count // THREADS):
            user = index * 100_000 + n
            one_job(db, db.allocate_id(user), user)
        db.close()
        return count // THREADS

    done, seconds = in_threads(worker, THREADS)
    return {"jobs": done, "seconds": seconds, "per_second": done / seconds}


def cost(count: int) -> dict[str, Any]:
    with ExitStack() as stack:
        store = stack.enter_context(patroni.etcd())
        targets = {
            "synchronous": stack.enter_context(patroni.cluster("cost-sync", store)).url(),
            "asynchronous": stack.enter_context(
                patroni.cluster("cost-async", store, synchronous=False)).url(),
            "no standby": stack.enter_context(private.postgres()).url}
        found: dict[str, Any] = {name: {} for name in targets}
        for _ in range(2):  # alternated, the second round kept (the first warms up)
            for name, url in targets.items():
                found[name] = {"submits": submits([_database(url)], count),
                               "jobs": jobs(_database(url), count)}
    return found


def main(runs: int, count: int) -> None:
    result = {"machine": machine(), "runs": runs, "drills": run_drills(runs),
              "cost": cost(count)}
    write("failover", markdown(result), result)
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Failover drills and the cost of synchronous commits", "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; Patroni "
        "clusters of two PostgreSQL nodes on loopback (`ttl` 8 s, `loop_wait` 1 s, "
        "`synchronous_mode_strict`), one etcd member, RabbitMQ, two workers, moto "
        "(`python -m benchmarks.failover`).", "",
        f"| drill on one shard server, {result['runs']} runs | write gap p50 | worst | "
        "longest submit p50 | worst | submits | lost | twice |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, found in result["drills"].items():
        gap, wait = found["write_gap_s"], found["longest_wait_s"]
        lines.append(f"| {name} | {gap['p50']:.1f} s | {gap['worst']:.1f} s | "
                     f"{wait['p50']:.1f} s | {wait['worst']:.1f} s | {found['submits']} | "
                     f"{found['lost']} | {found['duplicated']} |")
    lines += [
        "", "The write gap is the longest time no submit completed on the failed server, from "
        "the last one before the fault. A kill waits out the leader key's `ttl`, the standby's "
        "promotion, and then the old node's return (with `synchronous_mode_strict` the new "
        "primary takes no writes until a standby is back: here the killed node restarts as "
        "soon as the standby has taken over, and rejoins with `pg_rewind`). A frozen Patroni's "
        "PostgreSQL keeps its clients until Patroni demotes it.", "",
        f"| {THREADS} threads | submits/s | / synchronous | jobs' metadata/s | "
        "/ synchronous |", "| --- | ---: | ---: | ---: | ---: |"]
    sync = result["cost"]["synchronous"]
    for name, found in result["cost"].items():
        lines.append(
            f"| {name} | {found['submits']['per_second']:.0f} | "
            f"{found['submits']['per_second'] / sync['submits']['per_second']:.2f} | "
            f"{found['jobs']['per_second']:.0f} | "
            f"{found['jobs']['per_second'] / sync['jobs']['per_second']:.2f} |")
    lines += ["", "A submit commits twice (its id, durable before use, then its row and job); a "
              "job's metadata calls commit twice (start, finish). Each synchronous COMMIT waits "
              "for the standby's flush over loopback.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5,
         int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
