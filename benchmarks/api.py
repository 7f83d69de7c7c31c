"""The HTTP API on the production path: RabbitMQ, two workers, PostgreSQL and an S3 server, a
`photopipe serve` in front, all on this machine's two cores (`python -m benchmarks.api`).

1. Uploads: 12 MP phone photos sent as one request each (`POST /v1/photos`) from a few client
   threads, with no worker running, so that `serve` has the cores: uploads per second, and
   `serve`'s CPU per upload (its process's own, from the kernel's accounting).
2. Capacity: the same uploads with the workers running, as fast as they come: photos per
   second, first byte to last photo ready.
3. Latency from an upload's 202 (its last byte received and committed) to its photo `ready`,
   p50 and p99, with uploads arriving on a fixed schedule at half and at nine tenths of that
   capacity.

Resumable (tus) uploads are not built yet: their half of the issue's measure is missing here.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import psycopg

from benchmarks.common import machine, write
from benchmarks.queue_run import cpu_by_role, per_photo, production, start_workers, until_ready
from benchmarks.workload import phone_photo
from tests.web.harness import Server, cli, serve

LOOK, LADDER = "clarendon", "classic"


class Client:
    """Uploads from threads, each on its own keep-alive connection."""

    def __init__(self, server: Server, token: str) -> None:
        self.server, self.headers = server, {"Authorization": f"Bearer {token}"}
        self.local = threading.local()

    def upload(self, data: bytes) -> tuple[int, float]:
        """The photo id, and when its 202 arrived (epoch seconds)."""
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                               timeout=120)
        connection = self.local.connection
        connection.request("POST", f"/v1/photos?filter={LOOK}&ladder={LADDER}", data,
                           self.headers)
        reply = connection.getresponse()
        body = reply.read()
        if reply.status != 202:
            raise RuntimeError(f"upload refused: {reply.status} {body[:200]!r}")
        return int(body.split(b'"photo_id":"', 1)[1].split(b'"', 1)[0]), time.time()


def measure(uploads: int, threads: int) -> dict[str, Any]:
    photos = [phone_photo(seed) for seed in (2011, 2012, 2013, 2014)]
    with ExitStack() as stack:
        deployment = production(stack)
        env = {**deployment.env, "PHOTOPIPE_SECRET_KEY": "benchmark-key-0123456789"}
        server = stack.enter_context(serve(env, deployment.logs / "serve.log"))
        client = Client(server, cli(env, "ticket", "--user-id", "7").stdout.strip())
        database = env["PHOTOPIPE_DATABASE_URL"]
        alone = _uploads(client, photos, uploads, threads)
        start_workers(deployment)
        until_ready(database, uploads)  # the first part's photos, before anything is timed
        capacity = _capacity(client, photos, uploads, threads, database)
        latency = {f"{share:g}": _latency(client, photos, uploads // 2,
                                          share * capacity["photos_per_s"], database)
                   for share in (0.5, 0.9)}
    return {"uploads": alone, "capacity": capacity, "latency": latency,
            "photo_bytes": [len(p) for p in photos], "machine": machine()}


def _uploads(client: Client, photos: list[bytes], count: int, threads: int) -> dict[str, Any]:
    before, started = cpu_by_role(), time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: client.upload(photos[i % len(photos)]), range(count)))
    seconds = time.monotonic() - started
    return {"count": count, "threads": threads, "per_s": count / seconds,
            "cpu_ms_per_upload": per_photo(cpu_by_role() - before, count)}


def _capacity(client: Client, photos: list[bytes], count: int, threads: int,
              database: str) -> dict[str, Any]:
    done = _ready_count(database)
    started = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: client.upload(photos[i % len(photos)]), range(count)))
    seconds = until_ready(database, done + count) - started
    return {"count": count, "seconds": seconds, "photos_per_s": count / seconds}


def _latency(client: Client, photos: list[bytes], count: int, rate: float,
             database: str) -> dict[str, Any]:
    """Uploads on a fixed schedule (open loop: one every 1/rate s, whatever came before)."""
    done = _ready_count(database)
    posted: dict[int, float] = {}
    lock, start = threading.Lock(), time.monotonic() + 0.5

    def one(index: int) -> None:
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        photo_id, at = client.upload(photos[index % len(photos)])
        with lock:
            posted[photo_id] = at

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, range(count)))
    until_ready(database, done + count)
    with psycopg.connect(database, autocommit=True) as conn:
        ready: dict[int, float] = dict(conn.execute(
            "SELECT id, extract(epoch FROM updated_at)::float FROM photos "
            "WHERE id = ANY(%s)", (list(posted),)).fetchall())
    waits = sorted(ready[i] - posted[i] for i in posted)
    return {"rate_per_s": rate, "count": count, "p50_s": statistics.median(waits),
            "p99_s": waits[min(len(waits) - 1, int(0.99 * len(waits)))]}


def _ready_count(database: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM photos WHERE status = 'ready'").fetchone()
    return int(row[0]) if row else 0


def table(data: dict[str, Any]) -> str:
    alone, capacity = data["uploads"], data["capacity"]
    lines = ["# The HTTP API on the production path", "",
             f"12 MP phone JPEGs ({data['photo_bytes'][0]:,} bytes and alike), one request "
             f"each, the {LADDER} ladder under {LOOK}; `photopipe serve` (one process) in "
             "front of RabbitMQ, two workers, PostgreSQL and moto's S3 server, all on the "
             "machine's two cores (`python -m benchmarks.api`). Resumable (tus) uploads are "
             "not built yet.", "",
             "| what | figure |", "| --- | ---: |",
             f"| uploads per second, no worker running ({alone['threads']} client threads) | "
             f"{alone['per_s']:.1f} |",
             f"| photos per second, uploads to ready, two workers | "
             f"{capacity['photos_per_s']:.2f} |"]
    for share, found in data["latency"].items():
        lines.append(f"| 202 to ready at {float(share):.0%} of that ({found['rate_per_s']:.2f}"
                     f"/s, {found['count']} photos): p50; p99 | {found['p50_s']:.2f} s; "
                     f"{found['p99_s']:.2f} s |")
    lines += ["", "CPU per upload with no worker running, ms, by process role (serve is "
              "`photopipe serve`: the body read, the sniff, the S3 PUT of the original, the "
              "two short transactions, the publish):", "", "| role | ms per upload |",
              "| --- | ---: |"]
    lines += [f"| {role} | {ms:.1f} |" for role, ms in alone["cpu_ms_per_upload"].items()]
    lines += ["", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    data = measure(args.uploads, args.threads)
    write("api", table(data), data)
    print(table(data))


if __name__ == "__main__":
    main()
