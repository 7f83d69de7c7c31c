"""Instagram's 2011 upload peak (about 25 photos a second) on this one machine.

    python -m benchmarks.peak [--photos N] [--threads T]

The whole production path on the machine's two cores: the web tier's ``submit`` (original to
S3, row and job in one transaction, publish after the commit) from T threads as fast as they
go, RabbitMQ, two ``photopipe worker`` processes rendering the classic ladder (sq612, sq306,
sq150) under the clarendon look, PostgreSQL, and S3 over HTTP (moto's server), all on loopback.
The rate runs from the first submit to the last photo's commit. Every process's CPU over the
run is charged to its role, and ``render()`` alone is timed in this process on the same upload,
so the results say where the time goes. Writes benchmarks/results/peak.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from benchmarks.common import machine, write
from benchmarks.queue_run import (
    S3_SERVERS,
    cpu_by_role,
    per_photo,
    production,
    start_workers,
    until_ready,
)
from benchmarks.workload import phone_photo, sha256
from pipeline.core import render
from pipeline.producer import Upload, submit
from pipeline.settings import Settings
from workers.app import make_app
from workers.publisher import CeleryPublisher

LADDER, LOOK, TARGET = "classic", "clarendon", 25.0


def measure(count: int, threads: int, concurrency: int, s3: str = "moto") -> dict[str, Any]:
    uploads = [phone_photo(seed) for seed in (2011, 2012, 2013, 2014)]
    with ExitStack() as stack:
        deployment = production(stack, s3)
        store, env = deployment.store, deployment.env
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # web tier
        start_workers(deployment, "--concurrency", str(concurrency))
        settings = Settings.from_env(env)
        publisher = CeleryPublisher(make_app(settings))

        def one(index: int) -> None:
            submit(Upload(user_id=index % 64, data=uploads[index % len(uploads)],
                          filter=LOOK, ladder=LADDER), store, deployment.db, publisher,
                   settings)

        before, started = cpu_by_role(), time.time()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(count)))
        submitted = time.time() - started
        seconds = until_ready(env["PHOTOPIPE_DATABASE_URL"], count) - started
        cpu = per_photo(cpu_by_role() - before, count)
    return {"photos": count, "threads": threads, "concurrency": concurrency, "s3": s3,
            "seconds": seconds,
            "photos_per_s": count / seconds, "submit_seconds": submitted,
            "cpu_ms_per_photo": cpu, "render_ms": _render_ms(uploads),
            "upload_bytes": [len(u) for u in uploads],
            "uploads_sha256": [sha256(u) for u in uploads], "machine": machine()}


def _render_ms(uploads: list[bytes]) -> float:
    """``render()`` alone on the same uploads and options, in this process (median of 20)."""
    runs = []
    for index in range(21):
        started = time.process_time()
        render(uploads[index % len(uploads)], filter=LOOK, ladder=LADDER)
        runs.append(time.process_time() - started)
    return 1000 * statistics.median(runs[1:])


def table(data: dict[str, Any]) -> str:
    rate, cpu = data["photos_per_s"], data["cpu_ms_per_photo"]
    lines = ["# Instagram's 2011 upload peak on this machine", "",
             f"{data['photos']} phone uploads (4032x3024 JPEG, {data['upload_bytes'][0]:,} "
             f"bytes and alike), the classic ladder (sq612, sq306, sq150) under {LOOK}, "
             f"submitted from {data['threads']} threads, through RabbitMQ, two workers of "
             f"{data['concurrency']} pool process(es) each, "
             f"PostgreSQL and {S3_SERVERS[data.get('s3', 'moto')]}, all on the machine's two "
             "cores (`python -m benchmarks.peak`).", "",
             "| what | figure |", "| --- | ---: |",
             f"| photos per second, first submit to last commit | {rate:.1f} |",
             f"| target (Instagram's 2011 peak) | {TARGET:g} "
             f"({'met' if rate >= TARGET else 'MISSED'}) |",
             f"| seconds in all; of which submitting | {data['seconds']:.1f}; "
             f"{data['submit_seconds']:.1f} |",
             f"| `render()` alone, CPU ms per photo | {data['render_ms']:.1f} |", "",
             "Where the CPU went, ms per photo (2 cores give "
             f"{2000 / rate:.0f} ms a photo at this rate; at {TARGET:g}/s they give "
             f"{2000 / TARGET:.0f}):", "", "| role | ms per photo |", "| --- | ---: |"]
    lines += [f"| {role} | {ms:.1f} |" for role, ms in cpu.items()]
    lines += ["", "photopipe = the worker processes; benchmark = the submitting web tier "
              "(this process); idle = both cores' idle time.", "",
              f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes a worker")
    parser.add_argument("--s3", choices=sorted(S3_SERVERS), default="moto")
    args = parser.parse_args()
    data = measure(args.photos, args.threads, args.concurrency, args.s3)
    markdown = table(data)
    write("peak", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
