"""Photos per second through the production path: RabbitMQ, two `photopipe worker` processes,
PostgreSQL and S3 (moto's server), all on loopback.

The uploads are stored and their rows inserted first (with a publisher that holds the jobs back);
once both workers are ready, every job is published at once and the clock runs until the last
photo is ``ready``. So the rate is the queue's and the workers', not the upload's.

To tell what the queue costs from what storage and the database cost, the same jobs then run
without a broker: two forked processes call :func:`pipeline.jobs.process` on the same services.
Every process's CPU time is read from /proc around both runs and charged to its role.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import resource
import statistics
import subprocess
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import pycurl
from kombu import Connection
from PIL import features

from benchmarks.common import process_group_peak_rss_mb
from pipeline.core import render
from pipeline.jobs import Job, process
from pipeline.metadata import open_metadata
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.producer import Upload, submit
from pipeline.settings import Settings
from pipeline.storage import open_store
from tests import services
from tests.workers.harness import Deployment, wait_until
from workers.app import make_app
from workers.publisher import CeleryPublisher


class HeldBack:
    """A publisher that keeps the jobs, to release them all at once later."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def publish(self, job: Job) -> None:
        self.jobs.append(job)


def measure(upload: Path, count: int) -> dict[str, Any]:
    with ExitStack() as stack:
        deployment = production(stack)
        store, env = deployment.store, deployment.env
        database = env["PHOTOPIPE_DATABASE_URL"]
        held, settings, data = HeldBack(), Settings.from_env(env), upload.read_bytes()
        for _ in range(count):
            submit(Upload(user_id=1, data=data, filter="clarendon"), store, deployment.db, held,
                   settings)
        start_workers(deployment)
        publisher = CeleryPublisher(make_app(settings))
        before, started = cpu_by_role(), time.time()
        for job in held.jobs:
            publisher.publish(job)
        seconds = until_ready(database, count) - started
        queue_cpu = per_photo(cpu_by_role() - before, count)
        worker_rss = max(process_group_peak_rss_mb(w.pid) for w in deployment.workers)
        deployment.stop_all()
        direct = _without_broker(data, store, deployment.db, env, count)
        io = _io_share(data, store, deployment.db, settings)
    return {"photos": count, "seconds": seconds, "photos_per_s": count / seconds,
            "cpu_ms_per_photo": queue_cpu, "without_broker": direct,
            "worker_peak_rss_mb": worker_rss, **io}


S3_SERVERS = {"seaweedfs": "SeaweedFS", "moto": "moto's S3 server",
              "ceph": "Ceph's RADOS gateway"}


def production(stack: ExitStack, s3: str = "moto") -> Deployment:
    """An S3 server (``S3_SERVERS``), a RabbitMQ vhost and a PostgreSQL schema of the run's
    own, migrated, and the deployment that runs photopipe on them; all of it ends with
    ``stack``."""
    logs = Path(stack.enter_context(tempdir()))
    servers = {"ceph": lambda: contextmanager(services.ceph_gateway)(logs),
               "seaweedfs": lambda: contextmanager(services.seaweedfs)(logs / "seaweedfs"),
               "moto": contextmanager(services.moto_server)}
    server = stack.enter_context(servers[s3]())
    amqp = stack.enter_context(contextmanager(services.rabbit_vhost)())
    database = stack.enter_context(contextmanager(services.postgres_schema)())
    store = server.store()
    env = {**os.environ, **server.env(), "PHOTOPIPE_BROKER_URL": amqp,
           "PHOTOPIPE_DATABASE_URL": database,
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    deployment = Deployment(env, store, PostgresMetadata(database), logs)
    stack.callback(deployment.db.close)
    stack.callback(deployment.stop_all)
    deployment.cli("db", "upgrade")
    return deployment


def versions(s3_servers: set[str]) -> dict[str, str]:
    """What the production path ran: photopipe's libraries and the servers' own versions."""
    found = {name: metadata.version(name)
             for name in ("celery", "kombu", "psycopg", "uvicorn", "httptools", "pyjpegli")}
    found["libcurl"] = pycurl.version_info()[1]
    found["libjpeg-turbo"] = str(features.version("libjpeg_turbo"))
    with psycopg.connect(services.POSTGRES) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        found["PostgreSQL"] = str(row[0]) if row else "unknown"
    with Connection(f"amqp://guest:guest@{services.RABBIT_HOST}//") as amqp:
        amqp.connect()
        version = amqp.connection.server_properties.get("version", b"unknown")
        found["RabbitMQ"] = version.decode() if isinstance(version, bytes) else str(version)
    commands = {"seaweedfs": [str(services.WEED), "version"],
                "ceph": ["radosgw", "--version"]}
    for server in sorted(s3_servers):
        if server == "moto":
            found["moto"] = metadata.version("moto")
        else:
            out = subprocess.run(commands[server], check=True, capture_output=True, text=True)
            first = out.stdout.strip().splitlines()[0]
            found[S3_SERVERS[server]] = re.sub(r" \([0-9a-f]{40}\)", "", first)  # Ceph's commit
    return found


def start_workers(deployment: Deployment, *extra: str) -> None:
    """Two ``photopipe worker`` processes (``extra``: more arguments), once both are ready."""
    for _ in range(2):
        deployment.start_worker(*extra)
    logs = deployment.logs
    try:
        wait_until(lambda: all(" ready." in p.read_text() for p in logs.glob("worker-*.log"))
                   and len(list(logs.glob("worker-*.log"))) == 2, 60, "two ready workers")
    except AssertionError:
        for log in logs.glob("worker-*.log"):
            print(log.read_text()[-3000:])
        raise


def until_ready(database: str, count: int) -> float:
    """When the last of ``count`` photos became ready (epoch seconds, PostgreSQL's clock on this
    machine). Polled slowly, so the benchmark's own queries cost the two cores little."""
    deadline = time.monotonic() + 600
    with psycopg.connect(database, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*), extract(epoch FROM max(updated_at)) FROM photos "
                               "WHERE status = 'ready'").fetchone()
            if row is not None and row[0] == count:
                return float(row[1])
            time.sleep(0.25)
    raise TimeoutError(f"{count} photos were not ready within 600 s")


def _without_broker(data: bytes, store: Any, db: PostgresMetadata, env: dict[str, str],
                    count: int) -> dict[str, Any]:
    """The same jobs on the same services, two forked processes calling process() directly."""
    held, settings = HeldBack(), Settings.from_env(env)
    for _ in range(count):
        submit(Upload(user_id=1, data=data, filter="clarendon"), store, db, held, settings)
    jobs = held.jobs
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_run_jobs, args=(env, jobs[k::2])) for k in range(2)]
    before, started, own = cpu_by_role(), time.perf_counter(), _children_ticks()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    cpu = cpu_by_role() - before
    cpu["photopipe"] = _children_ticks() - own  # ended processes leave /proc: ask rusage
    return {"photos_per_s": count / seconds, "cpu_ms_per_photo": per_photo(cpu, count)}


def _children_ticks() -> int:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((usage.ru_utime + usage.ru_stime) * os.sysconf("SC_CLK_TCK"))


def _run_jobs(env: dict[str, str], jobs: list[Job]) -> None:
    os.environ.update(env)  # S3 credentials come from the environment, as in a worker
    settings = Settings.from_env(env)
    store, db = open_store(settings), open_metadata(settings)
    for job in jobs:
        process(job, store, db, settings)


def _io_share(data: bytes, store: Any, db: PostgresMetadata,
              settings: Settings) -> dict[str, float]:
    """In this process, on the same services: one job's wall time, how much of it is render(),
    and render()'s CPU time alone on the same upload (median of 9, after the queue run)."""
    totals, renders, cpu = [], [], []
    for _ in range(9):
        held = HeldBack()
        submit(Upload(user_id=1, data=data, filter="clarendon"), store, db, held, settings)
        started = time.perf_counter()
        process(held.jobs[0], store, db, settings)
        totals.append(time.perf_counter() - started)
        started, clock = time.perf_counter(), time.process_time()
        render(data, filter="clarendon")
        renders.append(time.perf_counter() - started)
        cpu.append(time.process_time() - clock)
    total, rendering = statistics.median(totals), statistics.median(renders)
    return {"job_ms": 1000 * total, "render_ms": 1000 * rendering,
            "render_cpu_ms": 1000 * statistics.median(cpu),
            "storage_and_database_ms": 1000 * (total - rendering)}


ROLES = (("pipeline.cli worker", "photopipe"), ("pipeline.cli serve", "serve"),
         ("moto.server", "S3 server"),
         ("radosgw", "S3 server"), ("ceph-", "S3 server"), ("weed server", "S3 server"),
         ("postgres", "PostgreSQL"), ("beam.smp", "RabbitMQ"))


def cpu_by_role() -> Counter[str]:
    """CPU clock ticks so far of every process on the machine, summed by role (with "idle" and
    "steal")."""
    ticks: Counter[str] = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue  # /proc/self and /proc/thread-self: this process again, or one thread of it
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or it ended meanwhile
        role = next((r for key, r in ROLES if key in command), "other")
        if entry.name == str(os.getpid()) or "-m benchmarks" in command:
            role = "benchmark"
        ticks[role] += int(fields[11]) + int(fields[12])
    with open("/proc/stat") as stat:
        total = stat.readline().split()
    ticks["idle"] = int(total[4]) + int(total[5])  # idle and waiting for I/O
    # the time the hypervisor ran something else on this machine's CPUs: the host's own load
    ticks["steal"] = int(total[8]) if len(total) > 8 else 0
    return ticks


def per_photo(ticks: Counter[str], count: int) -> dict[str, float]:
    """Milliseconds of CPU per photo, by role."""
    tick = os.sysconf("SC_CLK_TCK")
    return {role: round(1000 * value / tick / count, 1) for role, value in ticks.most_common()
            if value > 0}


@contextmanager
def tempdir() -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        yield folder
