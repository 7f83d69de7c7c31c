"""Instagram's 2011 workload at twice its peak, and today's phones, on this one machine.

    python -m benchmarks.peak [--run WORKLOAD:S3:PHOTOS ...] [--threads T]

The whole production path on the machine's two cores: the web tier's ``submit`` (original to
S3, row and job in one transaction, publish after the commit) from T threads as fast as they
go, RabbitMQ, two ``photopipe worker`` processes rendering the classic ladder (sq612, sq306,
sq150) under the clarendon look (JPEG by jpegli, photopipe's default), PostgreSQL, and an S3
server over HTTP (SeaweedFS, moto's or Ceph's RADOS gateway), all on loopback.

Workloads: ``instagram2011``, what the 2011 app uploaded (612x612 JPEG q90, cropped on the
phone; made here from the camera photos in ../shared/photos/real), and ``phone``, today's 12 MP
phone JPEG. Each run warms up on 100 uploads, then times its own from the first submit to the
last photo's commit. Every process's CPU over the timed part comes from the kernel's
accounting (/proc), charged to its role, each process once: photopipe's own (the submitting
web tier, which is this process, and the workers' main and pool processes), the S3 server,
PostgreSQL, RabbitMQ.
Writes benchmarks/results/peak.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from benchmarks.api import Client
from benchmarks.common import machine, write
from benchmarks.queue_run import (
    S3_SERVERS,
    cpu_by_role,
    per_photo,
    production,
    start_workers,
    until_ready,
    versions,
)
from benchmarks.workload import corpus, instagram_2011, phone_photo, sha256
from pipeline.core import render
from pipeline.producer import Upload, submit
from pipeline.settings import Encoding, Settings
from tests.web.harness import cli, serve
from tests.workers.harness import Deployment
from workers.app import make_app
from workers.publisher import CeleryPublisher

LADDER, LOOK, WARMUP = "classic", "clarendon", 100
TARGETS = {"instagram2011": (50.0, 20.0), "phone": (None, 60.0)}  # photos/s, photopipe CPU ms
WORKLOADS = {"instagram2011": "612x612 JPEG q90, as Instagram's 2011 app uploaded",
             "phone": "12 MP phone JPEG (4032x3024 q92)"}
DOORS = {"api": "the HTTP API", "producer": "the producer API"}
DEFAULT_RUNS = ("instagram2011:seaweedfs:5000:api", "instagram2011:seaweedfs:1500:producer",
                "instagram2011:moto:1500:api", "instagram2011:ceph:1500:api",
                "phone:seaweedfs:1000:api")


def uploads(workload: str) -> list[bytes]:
    if workload == "phone":
        return [phone_photo(seed) for seed in (2011, 2012, 2013, 2014)]
    photos = corpus()
    if not photos:
        raise SystemExit("the instagram2011 workload is made from ../shared/photos/real")
    return [instagram_2011(path) for path in photos]


def measure(workload: str, s3: str, count: int, threads: int, concurrency: int, *,
            door: str) -> dict[str, Any]:
    data = uploads(workload)
    with ExitStack() as stack:
        deployment = production(stack, s3)
        env = {**deployment.env, "PHOTOPIPE_SECRET_KEY": "benchmark-key-0123456789"}
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # web tier
        start_workers(deployment, "--concurrency", str(concurrency))
        one = _door(stack, door, env, deployment, data)

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
    return {"workload": workload, "s3": s3, "door": door, "photos": count, "threads": threads,
            "concurrency": concurrency, "seconds": seconds, "photos_per_s": count / seconds,
            "submit_seconds": submitted, "cpu_ms_per_photo": _roles(cpu, door),
            "render_ms": _render_ms(data, Encoding()),
            "render_ms_libjpeg_turbo": _render_ms(data, Encoding(jpeg_encoder="libjpeg-turbo")),
            "uploads": len(data),
            "upload_bytes_mean": statistics.mean(len(u) for u in data),
            "uploads_sha256": [sha256(u) for u in data[:4]]}


def _door(stack: ExitStack, door: str, env: dict[str, str], deployment: Deployment,
          data: list[bytes]) -> Callable[[int], None]:
    """How upload ``index`` comes in: ``producer``, the web tier calling ``submit`` in this
    process; ``api``, a client (this process) sending it to ``photopipe serve``'s
    ``POST /v1/photos`` with a signed ticket, as a browser or a phone does."""
    if door == "api":
        server = stack.enter_context(serve(env, deployment.logs / "serve.log"))
        token = cli(env, "ticket", "--user-id", "7").stdout.strip()
        client = Client(server, token)

        def sent(index: int) -> None:
            client.upload(data[index % len(data)])
        return sent
    settings = Settings.from_env(env)
    publisher = CeleryPublisher(make_app(settings))

    def one(index: int) -> None:
        submit(Upload(user_id=index % 64, data=data[index % len(data)], filter=LOOK,
                      ladder=LADDER), deployment.store, deployment.db, publisher, settings)
    return one


def _roles(cpu: dict[str, float], door: str) -> dict[str, float]:
    """The roles with photopipe's own parts named: the web tier's submits (this process, with
    the producer; ``photopipe serve``, with the API, where this process is the clients)."""
    names = {"photopipe": "photopipe workers", "serve": "photopipe submit"}
    if door == "producer":
        names["benchmark"] = "photopipe submit"
    else:
        names["benchmark"] = "clients"
    found = {names.get(role, role): ms for role, ms in cpu.items()}
    found["photopipe"] = round(found.get("photopipe submit", 0.0)
                               + found.get("photopipe workers", 0.0), 1)
    return found


def _render_ms(data: list[bytes], encoding: Encoding) -> float:
    """``render()`` alone on the same uploads and options, in this process (median of 20)."""
    runs = []
    for index in range(21):
        started = time.process_time()
        render(data[index % len(data)], filter=LOOK, ladder=LADDER, encoding=encoding)
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
             "The classic ladder (sq612, sq306, sq150) under clarendon, JPEG by jpegli, "
             f"uploaded from {data['threads']} threads through a door (the HTTP API: "
             "`photopipe serve`'s `POST /v1/photos` with a signed ticket, the threads being its "
             "clients; or the producer API: the threads calling `submit` as the web tier), "
             f"RabbitMQ, two workers of {data['concurrency']} pool processes each, PostgreSQL "
             "and an S3 server over HTTP, all on the machine's two cores (`python -m "
             f"benchmarks.peak`). Each run warms up on {WARMUP} uploads first. CPU from the "
             "kernel's accounting, ms per photo; photopipe = its door (`serve`, or the "
             "submitting web tier) plus its workers (main and pool processes). `render()` "
             "alone: the same uploads in this process, with jpegli and with libjpeg-turbo (the "
             "JPEG encoder before it).", "",
             "| workload | door | S3 server | photos | photos/s | photopipe (door + workers) | "
             "S3 server | PostgreSQL | RabbitMQ | `render()` alone (jpegli; libjpeg-turbo) | "
             "targets |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for run in runs:
        cpu = run["cpu_ms_per_photo"]
        lines.append(
            f"| {run['workload']} | {DOORS[run['door']]} | {S3_SERVERS[run['s3']]} | "
            f"{run['photos']:,} | "
            f"{run['photos_per_s']:.1f} | {cpu['photopipe']:.1f} "
            f"({cpu.get('photopipe submit', 0):.1f} + {cpu.get('photopipe workers', 0):.1f}) | "
            f"{cpu.get('S3 server', 0):.1f} | {cpu.get('PostgreSQL', 0):.1f} | "
            f"{cpu.get('RabbitMQ', 0):.1f} | {run['render_ms']:.1f}; "
            f"{run['render_ms_libjpeg_turbo']:.1f} | {verdict(run)} |")
    lines += ["", "Targets (issue 22): instagram2011 at least 50 photos/s with photopipe's own "
              "CPU at most 20 ms a photo; phone at most 60 ms.", "",
              "Workloads: " + "; ".join(f"`{k}`: {v}" for k, v in WORKLOADS.items()) +
              " (instagram2011 is made from the 24 camera photos of ../shared/photos/real).", "",
              "Every role's CPU, ms per photo (idle: the two cores' idle time; steal: time "
              "the host ran something else on them, a busy host's sign):", ""]
    for run in runs:
        cells = ", ".join(f"{role} {ms:.1f}" for role, ms in run["cpu_ms_per_photo"].items())
        lines.append(f"- {run['workload']} through {DOORS[run['door']]} on "
                     f"{S3_SERVERS[run['s3']]}: {cells}")
    lines += ["", f"Machine: {data['machine']}", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="append", metavar="WORKLOAD:S3:PHOTOS:DOOR",
                        help=f"a run (again for more); default: {' '.join(DEFAULT_RUNS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes a worker")
    args = parser.parse_args()
    runs = []
    for spec in args.run or DEFAULT_RUNS:
        workload, s3, photos, door = spec.split(":")
        if workload not in WORKLOADS or s3 not in S3_SERVERS or door not in DOORS:
            parser.error(f"unknown workload, S3 server or door in {spec!r}")
        runs.append(measure(workload, s3, int(photos), args.threads, args.concurrency,
                            door=door))
        print(runs[-1], flush=True)
    data = {"threads": args.threads, "concurrency": args.concurrency, "runs": runs,
            "machine": machine(), "versions": versions({run["s3"] for run in runs})}
    markdown = table(data)
    write("peak", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
