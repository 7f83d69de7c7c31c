"""Where the glue's time goes: the CPU of each call around ``render()``, in this process.

    python -m benchmarks.glue [--rounds N]

A job on the Instagram-2011 workload (a 612x612 upload, the classic ladder under clarendon)
makes one S3 GET (the original), three S3 PUTs (its renditions), and its metadata calls
(``start``, ``set_placeholder``, ``finish``); the web tier's ``submit`` makes one PUT (the
original), an id and a row with its job, and the relay's publish. Each is timed here against
SeaweedFS and PostgreSQL on loopback (CPU of this process, median of N), with the variants the
speed issue asks about measured side by side in the same run:

- photopipe's S3Store, whose puts and gets go through libcurl, against MinIO's client (which
  made them before), boto3 as photopipe configures it for its other calls (checksums only where
  the API requires them), boto3's defaults (a CRC32 of every body sent, and responses'
  checksums validated), and without botocore's parameter validation;
- SigV4 over plain HTTP signs a SHA-256 of the body: its cost, per body size;
- psycopg: the round trips (statements, and BEGIN/COMMIT) of a job's metadata calls;
- the web tier's whole ``submit``, from one thread and from two, nothing else running;
- ``photopipe serve``'s CPU an upload (612 and 12 MP) with each of uvicorn's HTTP parsers:
  two servers running side by side, sent batches in turn, so both see the same machine;
- Pillow reading a JPEG from memory in 64 KB blocks (its default) or in one.

Writes benchmarks/results/glue.{md,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, ClassVar

import boto3
import psycopg
import urllib3
from botocore.config import Config
from minio import Minio
from PIL import Image

from benchmarks.api import Client
from benchmarks.common import cpu_seconds, machine, write
from benchmarks.workload import corpus, instagram_2011, phone_photo
from pipeline.cli.web import PARSERS
from pipeline.core import render
from pipeline.metadata import NewPhoto, RenditionRow
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.producer import Upload, submit
from pipeline.records import Job, SourceInfo
from pipeline.settings import Settings
from pipeline.storage.s3 import client
from tests import services
from tests.web.harness import Server, cli, serve
from workers.app import make_app
from workers.publisher import CeleryPublisher


def cpu_ms(call: Callable[[], Any], rounds: int) -> float:
    """Median CPU milliseconds of ``call`` in this process, after two warm-up calls."""
    call()
    call()
    runs = []
    for _ in range(rounds):
        started = time.process_time()
        call()
        runs.append(time.process_time() - started)
    return 1000 * statistics.median(runs)


def s3_clients(server: services.S3Server) -> dict[str, Any]:
    defaults = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name="us-east-1",
        config=Config(signature_version="s3v4"))
    unvalidated = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name="us-east-1",
        config=Config(signature_version="s3v4", parameter_validation=False,
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))
    return {"MinIO's client (photopipe's before)": MinioPair(server),
            "boto3 as photopipe sets it": client(server.endpoint, server.access_key,
                                                 server.secret_key),
            "boto3's defaults": defaults, "boto3, no parameter validation": unvalidated}


class MinioPair:
    """MinIO's client as photopipe's S3Store used it for its puts and gets before libcurl:
    urllib3 without retries, one PUT whatever the size; boto3's call names, to be timed alike."""

    def __init__(self, server: services.S3Server) -> None:
        self.minio = Minio(server.endpoint.removeprefix("http://"), server.access_key,
                           server.secret_key, secure=False, region="us-east-1",
                           http_client=urllib3.PoolManager(retries=False, maxsize=10))

    def put_object(self, **call: Any) -> None:
        body = call["Body"]
        self.minio.put_object(call["Bucket"], call["Key"], io.BytesIO(body), len(body),
                              call["ContentType"], part_size=max(len(body), 5 * 2**20))

    def get_object(self, **call: Any) -> dict[str, Any]:
        response = self.minio.get_object(call["Bucket"], call["Key"])
        try:
            return {"Body": io.BytesIO(response.read())}
        finally:
            response.close()
            response.release_conn()


def measure_s3(server: services.S3Server, rounds: int) -> dict[str, dict[str, float]]:
    """Each client's PUT and GET of each body; photopipe's own is its S3Store, whose puts and
    gets go through libcurl (boto3 made them, then MinIO's client)."""
    store = server.store()
    rendition = render(instagram_2011(corpus()[0]), filter="clarendon",
                       ladder="classic").files[0].data
    bodies = {"rendition (sq612)": rendition, "original 612 upload": instagram_2011(corpus()[1]),
              "original 12 MP": phone_photo()}
    ours: dict[str, float] = {}
    for what, body in bodies.items():
        key = what.replace(" ", "-").replace("(", "").replace(")", "")

        def store_put(key: str = key, body: bytes = body) -> None:
            store.put(key, body, "image/jpeg")

        def store_get(key: str = key) -> None:
            store.get(key)

        ours[f"PUT {what}"], ours[f"GET {what}"] = (cpu_ms(store_put, rounds),
                                                    cpu_ms(store_get, rounds))
    found: dict[str, dict[str, float]] = {"photopipe's S3Store (libcurl)": ours}
    for name, s3 in s3_clients(server).items():
        row: dict[str, float] = {}
        for what, body in bodies.items():
            def put(s3: Any = s3, body: bytes = body, what: str = what) -> None:
                s3.put_object(Bucket=store.bucket, Key=what, Body=body, ContentType="image/jpeg")

            def get(s3: Any = s3, what: str = what) -> None:
                s3.get_object(Bucket=store.bucket, Key=what)["Body"].read()

            row[f"PUT {what}"] = cpu_ms(put, rounds)
            row[f"GET {what}"] = cpu_ms(get, rounds)
        found[name] = row
    found["SHA-256 of the body (SigV4 over HTTP)"] = {
        f"PUT {what}": cpu_ms(_hashing(body), rounds) for what, body in bodies.items()}
    return found


def _hashing(body: bytes) -> Callable[[], bytes]:
    return lambda: hashlib.sha256(body).digest()


class Counted(psycopg.Cursor[Any]):
    """A cursor that counts the statements it sends (in ``sent``, shared by all)."""

    sent: ClassVar[list[int]] = [0]

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.sent[0] += 1
        return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        self.sent[0] += 1
        return super().executemany(*args, **kwargs)


class Transactions:
    """Counts the transactions psycopg opens on a connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.count, begin = 0, conn.transaction

        def transaction(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return begin(*args, **kwargs)

        conn.transaction = transaction  # type: ignore[method-assign]


def measure_metadata(database: str, rounds: int) -> dict[str, float]:
    db = PostgresMetadata(database)
    db.upgrade()
    source = SourceInfo("JPEG", 612, 612, 60_000, 1, 1)

    def renditions(photo_id: int) -> list[RenditionRow]:
        return [RenditionRow(n, "jpg", f"k/{photo_id}/{n}", s, s, 9_000)
                for n, s in (("sq612", 612), ("sq306", 306), ("sq150", 150))]

    ids = iter(range(1, 10**6))

    shown = '{"color": "#000000"}'

    def job() -> None:
        photo_id = next(ids)
        db.create(NewPhoto(photo_id, f"o/{photo_id}", "classic", "clarendon", 1.0, 7))
        claim = db.start(Job(photo_id, 1))
        db.finish(photo_id, claim.lease, source, renditions(photo_id), "spec",
                  placeholder=shown)

    def submit_side() -> None:
        photo_id = db.allocate_id(7)
        db.create(NewPhoto(photo_id, f"o/{photo_id}", "classic", "clarendon", 1.0, 7))

    def worker_side(early: bool) -> None:
        """A job's calls: a 612 classic job records its placeholder with the finish; one
        with a megapixel or more to encode (a 12 MP photo's default ladder) records it first."""
        photo_id = next(ids) + 500_000
        db.create(NewPhoto(photo_id, f"o/{photo_id}", "classic", "clarendon", 1.0, 7),
                  enqueue=False)
        started = time.process_time()
        claim = db.start(Job(photo_id, 1))
        if early:
            db.set_placeholder(photo_id, claim.lease, shown)
        db.finish(photo_id, claim.lease, source, renditions(photo_id), "spec",
                  placeholder=None if early else shown)
        spent[early].append(time.process_time() - started)

    spent: dict[bool, list[float]] = {False: [], True: []}
    job()  # connect
    conn = db.link.conn
    assert conn is not None
    conn.cursor_factory = Counted
    opened, sent = Transactions(conn), Counted.sent[0]
    for _ in range(rounds):
        worker_side(False)
    # each create (the set-up, not timed) is one transaction of two statements
    statements = (Counted.sent[0] - sent) / rounds - 2
    transactions = opened.count / rounds - 1
    for _ in range(rounds):
        worker_side(True)
    found = {"worker's metadata calls, a 612 classic job (start, finish), CPU ms":
             1000 * statistics.median(spent[False]),
             "the same with the placeholder first (start, set_placeholder, finish), CPU ms":
             1000 * statistics.median(spent[True]),
             "worker's transactions a 612 job": transactions,
             "worker's round trips a 612 job (statements, BEGIN and COMMIT)":
             statements + 2 * transactions,
             "submit's metadata calls (allocate_id, create), CPU ms": cpu_ms(submit_side,
                                                                              rounds)}
    db.close()
    return found


def measure_pillow(rounds: int) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, data, draft in (("612 upload", instagram_2011(corpus()[0]), None),
                              ("12 MP, full size", phone_photo(), None),
                              ("12 MP, drafted to 1/4", phone_photo(), (1008, 756))):
        for block in (None, "whole"):
            def load(data: bytes = data, block: str | None = block,
                     draft: tuple[int, int] | None = draft) -> None:
                with Image.open(io.BytesIO(data)) as image:
                    if block:
                        image.decodermaxblock = len(data) + 1
                    if draft:
                        image.draft("RGB", draft)
                    image.load()

            found[f"{name}, {'one block' if block else '64 KB blocks'}"] = cpu_ms(load, rounds)
    return found


def measure_submit(server: services.S3Server, database: str, amqp: str,
                   rounds: int) -> dict[str, float]:
    """The web tier's whole ``submit`` of a 612 upload (PUT, id, row and job, publish with
    RabbitMQ's confirms, the outbox emptied), CPU per submit from one thread and from two,
    with nothing else running (the peak benchmark measures it while workers run too)."""
    data = [instagram_2011(path) for path in corpus()]
    store, db = server.store(), PostgresMetadata(database)
    db.upgrade()
    settings = Settings(database_url=database, broker_url=amqp)
    publisher = CeleryPublisher(make_app(settings))

    def one(index: int) -> None:
        submit(Upload(user_id=index % 64, data=data[index % len(data)], filter="clarendon",
                      ladder="classic"), store, db, publisher, settings)

    for index in range(20):
        one(index)
    found = {}
    for threads in (1, 2):
        started = time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(rounds * 5)))
        found[f"submit from {threads} thread{'s' if threads > 1 else ''}, CPU ms"] = \
            1000 * (time.process_time() - started) / (rounds * 5)
    db.close()
    return found


def measure_parsers(server: services.S3Server, database: str, amqp: str,
                    rounds: int) -> dict[str, dict[str, float]]:
    """``photopipe serve``'s CPU per upload (from the kernel's accounting of its process) with
    each HTTP parser, ``rounds`` batches in turn on servers running side by side."""
    store = server.store()
    env = {**os.environ, **server.env(), "PHOTOPIPE_BROKER_URL": amqp,
           "PHOTOPIPE_DATABASE_URL": database, "PHOTOPIPE_SECRET_KEY": "glue-key-0123456789",
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    workloads = {"612 upload": ([instagram_2011(path) for path in corpus()], 50),
                 "12 MP upload": ([phone_photo(seed) for seed in (2011, 2012)], 8)}
    cpu = {parser: dict.fromkeys(workloads, 0.0) for parser in PARSERS}
    cli(env, "db", "upgrade")
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        servers = {parser: stack.enter_context(serve(env, Path(folder) / f"{parser}.log",
                                                     "--http", parser)) for parser in PARSERS}
        token = cli(env, "ticket", "--user-id", "7").stdout.strip()
        for one in servers.values():  # each thread's connections and clients
            _send(one, token, workloads["612 upload"][0], 100)
        for _ in range(rounds):
            for workload, (bodies, batch) in workloads.items():
                for parser, one in servers.items():
                    before = cpu_seconds(one.process.pid)
                    _send(one, token, bodies, batch)
                    cpu[parser][workload] += cpu_seconds(one.process.pid) - before
    return {parser: {workload: 1000 * seconds / (rounds * workloads[workload][1])
                     for workload, seconds in found.items()} for parser, found in cpu.items()}


def _send(server: Server, token: str, bodies: list[bytes], count: int) -> None:
    """``count`` uploads of ``bodies`` in turn from two client threads."""
    client = Client(server, token)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda index: client.upload(bodies[index % len(bodies)]), range(count)))


@contextmanager
def services_up() -> Iterator[tuple[services.S3Server, str, str]]:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        server = stack.enter_context(contextmanager(services.seaweedfs)(Path(folder)))
        database = stack.enter_context(contextmanager(services.postgres_schema)())
        amqp = stack.enter_context(contextmanager(services.rabbit_vhost)())
        yield server, database, amqp


def table(data: dict[str, Any]) -> str:
    lines = ["# Where the glue's time goes", "",
             "CPU milliseconds of this process per call (median of "
             f"{data['rounds']}), against SeaweedFS and PostgreSQL on loopback "
             "(`python -m benchmarks.glue`).", "", "## S3 calls", ""]
    s3 = data["s3"]
    calls = list(next(iter(s3.values())))
    names = list(s3)
    lines += ["| call | " + " | ".join(names) + " |",
              "| --- |" + " ---: |" * len(names)]
    for call in calls:
        cells = [f"{s3[n][call]:.3f}" if call in s3[n] else "" for n in names]
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    lines += ["", "## Metadata (psycopg) and the web tier's submit", "", "| what | figure |",
              "| --- | ---: |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in data["metadata"].items()]
    parsers = data["parsers"]
    workloads = list(next(iter(parsers.values())))
    lines += ["", "## `photopipe serve`'s CPU an upload by HTTP parser (side by side, batches "
              "in turn)", "", "| parser | " + " | ".join(workloads) + " |",
              "| --- |" + " ---: |" * len(workloads)]
    lines += [f"| {parser} | " + " | ".join(f"{found[w]:.2f}" for w in workloads) + " |"
              for parser, found in parsers.items()]
    lines += ["", "## Pillow reading a JPEG held in memory", "", "| decode | CPU ms |",
              "| --- | ---: |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in data["pillow"].items()]
    lines += ["", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    with services_up() as (server, database, amqp):
        data = {"rounds": args.rounds, "s3": measure_s3(server, args.rounds),
                "metadata": {**measure_metadata(database, args.rounds),
                             **measure_submit(server, database, amqp, args.rounds)},
                "parsers": measure_parsers(server, database, amqp, max(4, args.rounds // 6)),
                "pillow": measure_pillow(max(5, args.rounds // 4)), "machine": machine()}
    markdown = table(data)
    write("glue", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
