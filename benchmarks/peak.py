"""Instagram's 2011 workload at twice its peak, and today's phones, on this one machine.

    python -m benchmarks.peak [--run WORKLOAD:S3:PHOTOS ...] [--threads T]

The whole production path on the machine's two cores: the web tier's ``submit`` (original to
S3, row and job in one transaction, publish after the commit) from T threads as fast as they
go, RabbitMQ, two ``photopipe worker`` processes rendering the classic ladder (sq612, sq306,
sq150) under the clarendon look, PostgreSQL, and an S3 server over HTTP (SeaweedFS, moto's or
Ceph's RADOS gateway), all on loopback.

Workloads: ``instagram2011``, what the 2011 app uploaded (612x612 JPEG q90, cropped on the
phone; made here from the camera photos in ../shared/photos/real), and ``phone``, today's 12 MP
phone JPEG. Each run warms up on 100 uploads, then times its own from the first submit to the
last photo's commit. Every process's CPU over the timed part comes from the kernel's
accounting (/proc), charged to its role: photopipe's own (the submitting web tier, which is
this process, and the workers' main and pool processes), the S3 server, PostgreSQL, RabbitMQ.
Writes benchmarks/results/peak.{md,json}.
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
from benchmarks.workload import corpus, instagram_2011, phone_photo, sha256
from pipeline.core import render
from pipeline.producer import Upload, submit
from pipeline.settings import Settings
from workers.app import make_app
from workers.publisher import CeleryPublisher

LADDER, LOOK, WARMUP = "classic", "clarendon", 100
TARGETS = {"instagram2011": (50.0, 20.0), "phone": (None, 60.0)}  # photos/s, photopipe CPU ms
WORKLOADS = {"instagram2011": "612x612 JPEG q90, as Instagram's 2011 app uploaded",
             "phone": "12 MP phone JPEG (4032x3024 q92)"}
DEFAULT_RUNS = ("instagram2011:seaweedfs:5000", "instagram2011:moto:1500",
                "instagram2011:ceph:1500", "phone:seaweedfs:1000")


def uploads(workload: str) -> list[bytes]:
    if workload == "phone":
        return [phone_photo(seed) for seed in (2011, 2012, 2013, 2014)]
    photos = corpus()
    if not photos:
        raise SystemExit("the instagram2011 workload is made from ../shared/photos/real")
    return [instagram_2011(path) for path in photos]


def measure(workload: str, s3: str, count: int, threads: int,
            concurrency: int) -> dict[str, Any]:
    data = uploads(workload)
    with ExitStack() as stack:
        deployment = production(stack, s3)
        store, env = deployment.store, deployment.env
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # web tier
        start_workers(deployment, "--concurrency", str(concurrency))
        settings = Settings.from_env(env)
        publisher = CeleryPublisher(make_app(settings))

        def one(index: int) -> None:
            submit(Upload(user_id=index % 64, data=data[index % len(data)], filter=LOOK,
                          ladder=LADDER), store, deployment.db, publisher, settings)

        def batch(first: int, n: int) -> None:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, range(first, first + n)))

        database = env["PHOTOPIPE_DATABASE_URL"]
        batch(0, WARMUP)
        until_ready(database, WARMUP)
        before, started = cpu_by_role(), time.time()
        batch(WARMUP, count)
        submitted = time.time() - started
        seconds = until_ready(database, WARMUP + count) - started
        cpu = per_photo(cpu_by_role() - before, count)
    return {"workload": workload, "s3": s3, "photos": count, "threads": threads,
            "concurrency": concurrency, "seconds": seconds, "photos_per_s": count / seconds,
            "submit_seconds": submitted, "cpu_ms_per_photo": _roles(cpu),
            "render_ms": _render_ms(data), "uploads": len(data),
            "upload_bytes_mean": statistics.mean(len(u) for u in data),
            "uploads_sha256": [sha256(u) for u in data[:4]]}


def _roles(cpu: dict[str, float]) -> dict[str, float]:
    """The roles with photopipe's own parts named: this process submits as the web tier."""
    names = {"benchmark": "photopipe submit", "photopipe": "photopipe workers"}
    found = {names.get(role, role): ms for role, ms in cpu.items()}
    found["photopipe"] = round(found.get("photopipe submit", 0.0)
                               + found.get("photopipe workers", 0.0), 1)
    return found


def _render_ms(data: list[bytes]) -> float:
    """``render()`` alone on the same uploads and options, in this process (median of 20)."""
    runs = []
    for index in range(21):
        started = time.process_time()
        render(data[index % len(data)], filter=LOOK, ladder=LADDER)
        runs.append(time.process_time() - started)
    return 1000 * statistics.median(runs[1:])


def verdict(run: dict[str, Any]) -> str:
    rate, cpu = TARGETS[run["workload"]]
    own = run["cpu_ms_per_photo"]["photopipe"]
    parts = [] if rate is None else [
        f"{rate:g}/s {'met' if run['photos_per_s'] >= rate else 'MISSED'}"]
    parts.append(f"{cpu:g} ms {'met' if own <= cpu else 'MISSED'}")
    return ", ".join(parts)


def table(data: dict[str, Any]) -> str:
    runs = data["runs"]
    lines = ["# Instagram's 2011 workload, and today's phones, on this machine", "",
             "The classic ladder (sq612, sq306, sq150) under clarendon, submitted from "
             f"{data['threads']} threads, through RabbitMQ, two workers of "
             f"{data['concurrency']} pool processes each, PostgreSQL and an S3 server over "
             "HTTP, all on the machine's two cores (`python -m benchmarks.peak`). Each run "
             f"warms up on {WARMUP} uploads first. CPU from the kernel's accounting, ms per "
             "photo; photopipe = its submitting web tier plus its workers (main and pool "
             "processes).", "",
             "| workload | S3 server | photos | photos/s | photopipe (submit + workers) | "
             "S3 server | PostgreSQL | RabbitMQ | `render()` alone | targets |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for run in runs:
        cpu = run["cpu_ms_per_photo"]
        lines.append(
            f"| {run['workload']} | {S3_SERVERS[run['s3']]} | {run['photos']:,} | "
            f"{run['photos_per_s']:.1f} | {cpu['photopipe']:.1f} "
            f"({cpu.get('photopipe submit', 0):.1f} + {cpu.get('photopipe workers', 0):.1f}) | "
            f"{cpu.get('S3 server', 0):.1f} | {cpu.get('PostgreSQL', 0):.1f} | "
            f"{cpu.get('RabbitMQ', 0):.1f} | {run['render_ms']:.1f} | {verdict(run)} |")
    lines += ["", "Targets (issue 22): instagram2011 at least 50 photos/s with photopipe's own "
              "CPU at most 20 ms a photo; phone at most 60 ms.", "",
              "Workloads: " + "; ".join(f"`{k}`: {v}" for k, v in WORKLOADS.items()) +
              " (instagram2011 is made from the 24 camera photos of ../shared/photos/real).", "",
              "Every role's CPU, ms per photo:", ""]
    for run in runs:
        cells = ", ".join(f"{role} {ms:.1f}" for role, ms in run["cpu_ms_per_photo"].items())
        lines.append(f"- {run['workload']} on {S3_SERVERS[run['s3']]}: {cells}")
    lines += ["", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="append", metavar="WORKLOAD:S3:PHOTOS",
                        help=f"a run (again for more); default: {' '.join(DEFAULT_RUNS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes a worker")
    args = parser.parse_args()
    runs = []
    for spec in args.run or DEFAULT_RUNS:
        workload, s3, photos = spec.split(":")
        if workload not in WORKLOADS or s3 not in S3_SERVERS:
            parser.error(f"unknown workload or S3 server in {spec!r}")
        runs.append(measure(workload, s3, int(photos), args.threads, args.concurrency))
        print(runs[-1], flush=True)
    data = {"threads": args.threads, "concurrency": args.concurrency, "runs": runs,
            "machine": machine()}
    markdown = table(data)
    write("peak", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
