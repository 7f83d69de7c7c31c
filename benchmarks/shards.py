"""Sharded metadata: what routing costs a job, and producer submits per second on one
PostgreSQL server and on three.

    .venv/bin/python -m benchmarks.shards [JOBS] [SUBMITS] [LOGICAL]

Private PostgreSQL servers on loopback (initdb + pg_ctl, as the tests start them). Routing: the
metadata calls of one job (start, then finish with five renditions) on the single-database
store, and on the sharded store with 64 logical shards on the same server, alternated job by
job in one run. Submits: ``pipeline.producer.submit`` from 8 threads (each its own store, as
web-tier processes would be; originals in memory, a publisher that only records), against a map
of 64 shards on one server, and on three.

Writes benchmarks/results/shards.{md,json}.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any

import psycopg

from benchmarks.common import in_threads, machine, write
from pipeline.metadata import MetadataStore, NewPhoto, RenditionRow
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.shards.admin import init
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.producer import Upload, submit
from pipeline.records import Job, SourceInfo
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore
from tests import private

SOURCE = SourceInfo("JPEG", 4032, 3024, 2_500_000, 1, 1)
THREADS = 8


def database(port: int) -> str:
    name = f"b_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:{port}/{name}"


def one_job(db: MetadataStore, photo_id: int, user: int) -> float:
    """Seconds of the job's metadata calls: start, finish with five renditions."""
    job = db.create(NewPhoto(photo_id, f"originals/{photo_id}", user_id=user))
    started = time.perf_counter()
    lease = db.start(Job(photo_id, job.generation)).lease
    db.finish(photo_id, lease, SOURCE, [
        RenditionRow(name, fmt, f"photos/{photo_id}/1.1/{name}.{fmt}", 100, 100, 1000)
        for name, fmt in (("w1080", "jpg"), ("w1080", "webp"), ("w640", "jpg"),
                          ("w320", "jpg"), ("sq150", "jpg"))])
    return time.perf_counter() - started


def routing(port: int, jobs: int) -> dict[str, Any]:
    single = PostgresMetadata(database(port))
    single.upgrade()
    sharded_url = database(port)
    sharded = ShardedMetadata(sharded_url)
    init(sharded, 64, [sharded_url])
    runs: dict[str, list[float]] = {"single": [], "sharded": []}
    for n in range(jobs + 20):
        user = n % 997
        pair: list[tuple[str, MetadataStore, int]] = [
            ("single", single, single.allocate_id()),
            ("sharded", sharded, sharded.allocate_id(user))]
        for name, db, photo_id in (pair if n % 2 else pair[::-1]):
            seconds = one_job(db, photo_id, user)
            if n >= 20:  # warm-up: connections, plans, caches
                runs[name].append(seconds)
    single.close()
    sharded.close()
    medians = {name: statistics.median(r) * 1000 for name, r in runs.items()}
    means = {name: statistics.mean(r) * 1000 for name, r in runs.items()}
    return {"jobs": jobs, "median_ms": medians, "mean_ms": means,
            "routing_ms": medians["sharded"] - medians["single"]}


class Recorder:
    def publish(self, job: Job) -> None:
        pass


def submits(urls: list[str], count: int) -> dict[str, Any]:
    catalog = ShardedMetadata(urls[0])
    init(catalog, 64, urls)
    catalog.close()
    settings = Settings(database_url=urls[0], submit_patience=30)
    data = b"\xff\xd8\xff" + b"0" * 2000  # an original's bytes (never decoded here)
    def worker(index: int) -> int:
        db, store = ShardedMetadata(urls[0]), MemoryStore()
        for n in range(count // THREADS):
            submit(Upload(index * 100_000 + n, data), store, db, Recorder(), settings)
        db.close()
        return count // THREADS

    done, seconds = in_threads(worker, THREADS)
    return {"submits": done, "seconds": seconds, "per_second": done / seconds}


def scale(ports: list[int], logical: int) -> dict[str, Any]:
    """The default map (8192 logical shards over three servers): how long init takes, and
    what the calls that span every shard cost at that size."""
    urls = [database(port) for port in ports]
    store = ShardedMetadata(urls[0])
    started = time.perf_counter()
    init(store, logical, urls)
    init_seconds = time.perf_counter() - started
    for user in range(0, logical, 41):
        store.create(NewPhoto(store.allocate_id(user), "originals/x", user_id=user))

    def median_ms(call: Any) -> float:
        runs = []
        for _ in range(5):
            began = time.perf_counter()
            call()
            runs.append(time.perf_counter() - began)
        return statistics.median(runs) * 1000

    found: dict[str, Any] = {"logical": logical, "init_seconds": init_seconds,
                             "counts_ms": median_ms(store.counts),
                             "backlog_ms": median_ms(store.backlog),
                             "photos": sum(store.counts().values())}
    began = time.perf_counter()
    drained = 0
    while sent := store.relay(lambda job: None, limit=1000):
        drained += sent
    found["drain_seconds"], found["drained"] = time.perf_counter() - began, drained
    found["relay_round_ms"] = median_ms(lambda: store.relay(lambda job: None))  # idle
    store.close()
    return found


def main(jobs: int, count: int, logical: int) -> None:
    with ExitStack() as stack:
        servers = [stack.enter_context(private.postgres()) for _ in range(3)]
        route = routing(servers[0].port, jobs)
        one = submits([database(servers[0].port)], count)
        three = submits([database(s.port) for s in servers], count)
        wide = scale([s.port for s in servers], logical)
    result = {"machine": machine(), "routing": route, "submits_one_server": one,
              "submits_three_servers": three, "scale": wide}
    write("shards", markdown(result), result)
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    route, one, three = (result["routing"], result["submits_one_server"],
                         result["submits_three_servers"])
    wide = result["scale"]
    return "\n".join([
        "# Sharded metadata: routing cost and producer submits", "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; private "
        "PostgreSQL servers on loopback, one run (`python -m benchmarks.shards`).", "",
        f"| a job's metadata calls (start, finish), {route['jobs']} jobs each, alternated | "
        "median | mean |", "| --- | ---: | ---: |",
        f"| one database | {route['median_ms']['single']:.3f} ms | "
        f"{route['mean_ms']['single']:.3f} ms |",
        f"| 64 logical shards, same server | {route['median_ms']['sharded']:.3f} ms | "
        f"{route['mean_ms']['sharded']:.3f} ms |",
        f"| routing cost | {route['routing_ms']:.3f} ms | "
        f"{route['mean_ms']['sharded'] - route['mean_ms']['single']:.3f} ms |", "",
        "Routing is the map lookup, the shard's `SET LOCAL search_path` and its fence read "
        "(one more statement in the same round trip's transaction); target: under 1 ms.", "",
        f"| producer submits, {THREADS} threads, 64 logical shards | submits | per second | "
        "/ one server |", "| --- | ---: | ---: | ---: |",
        f"| one server | {one['submits']} | {one['per_second']:.0f} | 1.00 |",
        f"| three servers | {three['submits']} | {three['per_second']:.0f} | "
        f"{three['per_second'] / one['per_second']:.2f} |", "",
        "All three servers share this machine's two cores with the submitting threads, so a "
        "third server adds connections and WAL writers, not CPU; on separate hosts each "
        "server's share of the load is a third.", "",
        f"| {wide['logical']} logical shards over three servers | |", "| --- | ---: |",
        f"| `shards init` (every schema created and migrated) | {wide['init_seconds']:.0f} s |",
        f"| `counts()` over every shard ({wide['photos']} photos) | {wide['counts_ms']:.0f} ms |",
        f"| `backlog()` (what a scrape reads) | {wide['backlog_ms']:.0f} ms |",
        f"| the relay draining {wide['drained']} jobs from their outboxes | "
        f"{wide['drain_seconds'] * 1000:.0f} ms |",
        f"| an idle relay round (statistics, then 64 outboxes in turn) | "
        f"{wide['relay_round_ms']:.0f} ms |", "",
        "What spans shards is one statement per server (a UNION ALL over its schemas), so it "
        "costs a round trip per server, not per logical shard.", ""])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400,
         int(sys.argv[2]) if len(sys.argv) > 2 else 4000,
         int(sys.argv[3]) if len(sys.argv) > 3 else 8192)
