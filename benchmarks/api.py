"""The HTTP API on the production path: RabbitMQ, two workers, PostgreSQL and an S3 server, a
`photopipe serve` in front, all on this machine's two cores (`python -m benchmarks.api`).

1. Uploads: 12 MP phone photos sent as one request each (`POST /v1/photos`), and resumably
   (tus: `POST /v1/uploads`, then `PATCH`es of 5 MiB), from a few client threads, with no
   worker running, so that `serve` has the cores: uploads per second, and `serve`'s CPU per
   upload (its process's own, from the kernel's accounting). Both kinds are warmed up first:
   each of `serve`'s threads opens its own S3 client and database connection on its first
   request, tens of milliseconds of CPU that would otherwise count against whichever kind
   runs first.
2. Capacity: the same uploads with the workers running, as fast as they come: photos per
   second, first byte to last photo ready.
3. Latency from an upload's last answer (its last byte received and committed: the 202, or
   the last PATCH's 204) to its photo `ready`, p50 and p99, with uploads arriving on a fixed
   schedule at half and at nine tenths of that capacity, one-request and tus alike.
"""

from __future__ import annotations

import argparse
import base64
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
TUS_CHUNK = 5 * 1024 * 1024
WARM_UP = 16  # uploads of each kind before the first measure


class Client:
    """Uploads from threads, each on its own keep-alive connection."""

    def __init__(self, server: Server, token: str) -> None:
        self.server, self.headers = server, {"Authorization": f"Bearer {token}"}
        self.local = threading.local()

    def connection(self) -> http.client.HTTPConnection:
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                               timeout=120)
        connection: http.client.HTTPConnection = self.local.connection
        return connection

    def upload(self, data: bytes) -> tuple[int, float]:
        """The photo id, and when its 202 arrived (epoch seconds)."""
        body = self.call("POST", f"/v1/photos?filter={LOOK}&ladder={LADDER}", data, 202)[1]
        return int(body.split(b'"photo_id":"', 1)[1].split(b'"', 1)[0]), time.time()

    def call(self, method: str, path: str, body: bytes, status: int,
             headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        connection = self.connection()
        connection.request(method, path, body, {**self.headers, **(headers or {})})
        reply = connection.getresponse()
        answer = reply.read()
        if reply.status != status:
            raise RuntimeError(f"{method} {path} refused: {reply.status} {answer[:200]!r}")
        return reply, answer


class TusClient(Client):
    """Resumable uploads (tus 1.0.0) in chunks of ``chunk`` bytes."""

    def __init__(self, server: Server, token: str, chunk: int = TUS_CHUNK) -> None:
        super().__init__(server, token)
        self.chunk = chunk
        self.headers = {**self.headers, "Tus-Resumable": "1.0.0"}

    def upload(self, data: bytes) -> tuple[int, float]:
        """The photo id, and when the last PATCH's 204 arrived (epoch seconds)."""
        options = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                           for k, v in (("filter", LOOK), ("ladder", LADDER)))
        created = self.call("POST", "/v1/uploads", b"", 201, {
            "Upload-Length": str(len(data)), "Upload-Metadata": options})[0]
        location = str(created.getheader("Location"))
        reply = created
        for start in range(0, len(data), self.chunk):
            reply = self.call("PATCH", location, data[start:start + self.chunk], 204, {
                "Upload-Offset": str(start),
                "Content-Type": "application/offset+octet-stream"})[0]
        return int(str(reply.getheader("Photopipe-Photo-Id"))), time.time()


def measure(uploads: int, threads: int) -> dict[str, Any]:
    photos = [phone_photo(seed) for seed in (2011, 2012, 2013, 2014)]
    with ExitStack() as stack:
        deployment = production(stack)
        env = {**deployment.env, "PHOTOPIPE_SECRET_KEY": "benchmark-key-0123456789"}
        server = stack.enter_context(serve(env, deployment.logs / "serve.log"))
        token = cli(env, "ticket", "--user-id", "7").stdout.strip()
        clients = {"one request": Client(server, token), "tus": TusClient(server, token)}
        database = env["PHOTOPIPE_DATABASE_URL"]
        for client in clients.values():  # serve's threads open their stores and connections
            _uploads(client, photos, WARM_UP, threads)
        alone = {kind: _uploads(client, photos, uploads, threads)
                 for kind, client in clients.items()}
        start_workers(deployment)
        until_ready(database, 2 * (WARM_UP + uploads))  # all so far, before anything is timed
        capacity = _capacity(clients["one request"], photos, uploads, threads, database)
        latency = {kind: {f"{share:g}": _latency(client, photos, uploads // 2,
                                                 share * capacity["photos_per_s"], database)
                          for share in (0.5, 0.9)} for kind, client in clients.items()}
    return {"uploads": alone, "capacity": capacity, "latency": latency,
            "photo_bytes": [len(p) for p in photos], "tus_chunk": TUS_CHUNK,
            "machine": machine()}


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
    kinds = list(alone)
    lines = ["# The HTTP API on the production path", "",
             f"12 MP phone JPEGs ({data['photo_bytes'][0]:,} bytes and alike), the {LADDER} "
             f"ladder under {LOOK}, sent in one request each or resumably (tus, in "
             f"{data['tus_chunk'] // 2**20} MiB chunks: here one PATCH a photo, after the "
             "POST that creates the upload); `photopipe serve` (one process) in front of "
             "RabbitMQ, two workers, PostgreSQL and moto's S3 server, all on the machine's two "
             "cores (`python -m benchmarks.api`); both kinds measured in one run.", "",
             "| what | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds),
             f"| uploads per second, no worker running ({alone[kinds[0]]['threads']} client "
             "threads) | " + " | ".join(f"{alone[k]['per_s']:.1f}" for k in kinds) + " |",
             "| serve's CPU per upload, ms | " + " | ".join(
                 f"{alone[k]['cpu_ms_per_upload'].get('serve', 0):.1f}" for k in kinds) + " |"]
    for share in ("0.5", "0.9"):
        found = {k: data["latency"][k][share] for k in kinds}
        lines.append(f"| last byte to ready at {float(share):.0%} of capacity "
                     f"({found[kinds[0]]['rate_per_s']:.2f}/s, {found[kinds[0]]['count']} "
                     "photos): p50; p99 | " + " | ".join(
                         f"{found[k]['p50_s']:.2f} s; {found[k]['p99_s']:.2f} s"
                         for k in kinds) + " |")
    lines += ["", f"Capacity, uploads to ready with two workers (one request each): "
              f"{capacity['photos_per_s']:.2f} photos per second.", "",
              "CPU per upload with no worker running, ms, by process role (serve is "
              "`photopipe serve`: the bodies read, the sniff, the S3 writes of the original, "
              "the short transactions, the publish):", "",
              "| role | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds)]
    roles = sorted({r for k in kinds for r in alone[k]["cpu_ms_per_upload"]})
    lines += [f"| {role} | " + " | ".join(f"{alone[k]['cpu_ms_per_upload'].get(role, 0):.1f}"
                                          for k in kinds) + " |" for role in roles]
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
