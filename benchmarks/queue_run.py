"""Photos per second through the production path: RabbitMQ, two `photopipe worker` processes,
PostgreSQL and S3 (moto's server), all on loopback.

The uploads are stored and their rows inserted first (with a publisher that holds the jobs back);
once both workers are ready, every job is published at once and the clock runs until the last
photo is ``ready``. So the rate is the queue's and the workers', not the upload's.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import process_group_peak_rss_mb
from pipeline.core import render
from pipeline.jobs import Job, process
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.producer import Upload, submit
from pipeline.settings import Settings
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
        moto = stack.enter_context(contextmanager(services.moto_server)())
        amqp = stack.enter_context(contextmanager(services.rabbit_vhost)())
        database = stack.enter_context(contextmanager(services.postgres_schema)())
        logs = Path(stack.enter_context(_tempdir()))
        store = moto.store()
        env = {**os.environ, **moto.env(), "PHOTOPIPE_BROKER_URL": amqp,
               "PHOTOPIPE_DATABASE_URL": database,
               "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
        deployment = Deployment(env, store, PostgresMetadata(database), logs)
        stack.callback(deployment.db.close)
        stack.callback(deployment.stop_all)
        deployment.cli("db", "upgrade")
        held, settings, data = HeldBack(), Settings.from_env(env), upload.read_bytes()
        for _ in range(count):
            submit(Upload(user_id=1, data=data, filter="clarendon"), store, deployment.db, held,
                   settings)
        for _ in range(2):
            deployment.start_worker()
        try:
            wait_until(lambda: all(" ready." in p.read_text() for p in logs.glob("worker-*.log"))
                       and len(list(logs.glob("worker-*.log"))) == 2, 60, "two ready workers")
        except AssertionError:
            for log in logs.glob("worker-*.log"):
                print(log.read_text()[-3000:])
            raise
        publisher = CeleryPublisher(make_app(settings))
        moto_cpu = _cpu_seconds(moto.pid)
        started = time.perf_counter()
        for job in held.jobs:
            publisher.publish(job)
        wait_until(lambda: deployment.db.counts()["ready"] == count, 600, "every photo ready")
        seconds = time.perf_counter() - started
        moto_cpu = _cpu_seconds(moto.pid) - moto_cpu
        worker_rss = max(process_group_peak_rss_mb(w.pid) for w in deployment.workers)
        io = _io_share(data, store, deployment.db, settings)
    return {"photos": count, "seconds": seconds, "photos_per_s": count / seconds,
            "s3_server_cpu_ms_per_photo": 1000 * moto_cpu / count,
            "worker_peak_rss_mb": worker_rss, **io}


def _io_share(data: bytes, store: Any, db: PostgresMetadata,
              settings: Settings) -> dict[str, float]:
    """In this process, on the same services: one job's wall time, and how much is render()."""
    totals, renders = [], []
    for _ in range(5):
        held = HeldBack()
        submit(Upload(user_id=1, data=data, filter="clarendon"), store, db, held, settings)
        started = time.perf_counter()
        process(held.jobs[0], store, db, settings)
        totals.append(time.perf_counter() - started)
        started = time.perf_counter()
        render(data, filter="clarendon")
        renders.append(time.perf_counter() - started)
    total, rendering = statistics.median(totals), statistics.median(renders)
    return {"job_ms": 1000 * total, "render_ms": 1000 * rendering,
            "storage_and_database_ms": 1000 * (total - rendering)}


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _tempdir() -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        yield folder
