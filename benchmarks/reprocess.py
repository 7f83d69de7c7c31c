"""Batch reprocessing at scale: the selection and dry run over 1,000,000 photo rows in
PostgreSQL (inserted directly, not rendered), and a run through the queue beside the same
photos submitted normally, with live uploads timed during a run.

    .venv/bin/python -m benchmarks.reprocess [ROWS] [PHOTOS]

Writes benchmarks/results/reprocess.{md,json}.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import ROOT, machine, write
from pipeline.core.spec import render_spec
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.records import EPOCH_MS
from pipeline.settings import Encoding
from tests import services
from tests.faults.harness import deploy, files, settle, submit
from tests.workers.harness import Deployment, wait_until

LOOKS = (None, "clarendon", "gingham", "rise")


def insert_rows(url: str, count: int) -> None:
    """``count`` ready photo rows with recorded specs, a quarter of them stale, by COPY."""
    fresh = {look: render_spec("default", look, 1.0, Encoding()) for look in LOOKS}
    base = (int(time.time() * 1000) - EPOCH_MS - 86_400_000) << 23
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur, cur.copy(
            "COPY photos (id, status, source_key, ladder, filter, strength, user_id, "
            "generation, lease, attempts, spec, source_format, source_width, source_height, "
            "source_bytes, source_frames, orientation) FROM STDIN") as copy:
        for n in range(count):
            look = LOOKS[n % len(LOOKS)]
            spec = "0ldspec0ldsp" if n % 4 == 3 else fresh[look]
            copy.write_row((base + (n << 10), "ready", f"originals/{n}", "default", look, 1.0,
                            n % 10_000, 1, 1, 1, spec, "JPEG", 4032, 3024, 2_500_000, 1, 1))


def dry_run(env: dict[str, str], *args: str) -> dict[str, float]:
    """Seconds and the command's own peak RSS (from wait4) of one `reprocess --dry-run`."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "reprocess", "--dry-run",
                              "--json", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    assert status == 0, output
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024,
            "photos": float(json.loads(output)["photos"])}


def selection(rows: int) -> dict[str, Any]:
    """Dry runs over a tenth of the rows and over all of them: time, and memory flat in N."""
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        url = stack.enter_context(contextmanager(services.postgres_schema)())
        store = PostgresMetadata(url)
        store.upgrade()
        store.close()
        env = {**os.environ, "PHOTOPIPE_DATABASE_URL": url}
        for count in (rows // 10, rows):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE photos CASCADE")
            began = time.perf_counter()
            insert_rows(url, count)
            inserted = time.perf_counter() - began
            results[str(count)] = {
                "insert_seconds": inserted,
                "all": dry_run(env, "--set-filter", "clarendon"),
                "stale": dry_run(env, "--stale"),
            }
    return results


def through_the_queue(photos: int) -> dict[str, Any]:
    """The same photos submitted normally, then reprocessed with the same options (the same
    renders), both timed from the first command to the last photo's commit; then live uploads
    timed alone and during a run that keeps the queue at most 2 deep."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        moto = stack.enter_context(contextmanager(services.moto_server)())
        amqp = stack.enter_context(contextmanager(services.rabbit_vhost)())
        url = stack.enter_context(contextmanager(services.postgres_schema)())
        tmp = Path(folder)
        deployment = deploy(tmp, amqp, url, moto)
        stack.callback(deployment.db.close)
        stack.callback(deployment.stop_all)
        for _ in range(2):
            deployment.start_worker()
        wait_until(lambda: len([p for p in tmp.glob("worker-*.log") if " ready." in
                                p.read_text()]) == 2, 60, "two ready workers")
        uploads = files(tmp, photos, size=(2000, 1500))
        began = time.perf_counter()
        ids = submit(deployment, uploads, "--filter", "clarendon")
        settle(deployment, ids, 900)
        submitted = time.perf_counter() - began
        began = time.perf_counter()  # the same jobs again: same photos, same look
        deployment.cli("reprocess", "--set-filter", "clarendon", "--json")
        reprocessed = time.perf_counter() - began
        alone = _live(deployment, tmp, 10, "alone")
        run = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "reprocess",
                                "--set-filter", "gingham", "--max-queue-depth", "2", "--json"],
                               env=deployment.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(2)
        during = _live(deployment, tmp, 10, "during")
        run.wait(timeout=900)
    return {"photos": photos, "submitted_photos_per_s": photos / submitted,
            "reprocessed_photos_per_s": photos / reprocessed,
            "ratio": submitted / reprocessed, "live_alone_s": alone, "live_during_s": during,
            "live_ratio": statistics.median(during) / statistics.median(alone)}


def _live(deployment: Deployment, tmp: Path, count: int, tag: str) -> list[float]:
    """Seconds from submit to ready of ``count`` uploads sent one after another."""
    latencies = []
    (tmp / tag).mkdir()
    for index, path in enumerate(files(tmp / tag, count, start=10_000, size=(2000, 1500))):
        began = time.perf_counter()
        (photo_id,) = submit(deployment, [path])

        def ready(photo_id: int = photo_id) -> bool:
            row = deployment.db.get(photo_id)
            return row is not None and row.status == "ready"

        wait_until(ready, 120, f"live upload {index}")
        latencies.append(time.perf_counter() - began)
    return latencies


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Batch reprocessing", "", f"Machine: {data['machine']}", "",
             "## Selection and dry run (PostgreSQL, rows inserted directly)", "",
             "| rows | selection | seconds | photos selected | peak RSS of the command |",
             "| ---: | --- | ---: | ---: | ---: |"]
    for rows, result in data["selection"].items():
        for name in ("all", "stale"):
            r = result[name]
            lines.append(f"| {int(rows):,} | {name} | {r['seconds']:.1f} | {int(r['photos']):,} "
                         f"| {r['peak_rss_mb']:.0f} MB |")
    queue = data["queue"]
    lines += ["", "## Through the queue (RabbitMQ, 2 workers, PostgreSQL, moto S3)", "",
              f"{queue['photos']} photos of 3 MP with clarendon: submitted normally "
              f"{queue['submitted_photos_per_s']:.2f} photos/s, reprocessed "
              f"{queue['reprocessed_photos_per_s']:.2f} photos/s: **{queue['ratio']:.2f}x** "
              "(target 0.95x).", "",
              f"Live uploads, submit to ready, median of 10: alone "
              f"{statistics.median(queue['live_alone_s']):.2f} s, during a run with "
              f"`--max-queue-depth 2` {statistics.median(queue['live_during_s']):.2f} s: "
              f"**{queue['live_ratio']:.2f}x** (target at most 2x)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    photos = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    data = {"machine": machine(), "selection": selection(rows), "queue": through_the_queue(
        photos)}
    write("reprocess", markdown(data), data)
    print(markdown(data))


if __name__ == "__main__":
    main()
